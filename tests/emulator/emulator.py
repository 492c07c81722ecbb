"""Local AWS emulator: moto server with a CloudWatch Smithy RPC v2 CBOR bridge.

Current aws-sdk-cloudwatch speaks Smithy RPC v2 CBOR, which moto does not serve.
Moto does serve CloudWatch's awsJson1_0 protocol, so the bridge rewrites each CBOR
request into the equivalent JSON request, lets moto answer it, and encodes the
answer back as CBOR (timestamps as CBOR tag 1, `smithy-protocol` header set).
Every other request goes to moto untouched.

ECS tasks are kept RUNNING until stopped (see keep_tasks_running).

Usage: emulator.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin]
Prints `READY <endpoint url>` on stdout once it accepts connections.
"""

import argparse
import datetime as dt
import io
import json
import signal
import sys
import threading

import cbor2
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.moto_api import state_manager
from werkzeug.serving import make_server

CBOR_PATH_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
JSON_TARGET_PREFIX = "GraniteServiceVersion20100801."
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _to_json_value(value):
    """CBOR-decoded request value -> value moto's JSON parser accepts."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return (value - EPOCH).total_seconds()
    if isinstance(value, dict):
        return {k: _to_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    return value


def _epoch_seconds(value):
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return (parsed - EPOCH).total_seconds()
    return value


def _is_timestamp_key(key):
    return key.endswith("Timestamp") or key in ("StartTime", "EndTime", "Timestamp")


def _to_cbor_value(value, key=""):
    """JSON response value -> CBOR value; timestamps become tag 1 (epoch seconds)."""
    if isinstance(value, dict):
        return {k: _to_cbor_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "Timestamps":
            return [cbor2.CBORTag(1, _epoch_seconds(v)) for v in value]
        return [_to_cbor_value(v) for v in value]
    if _is_timestamp_key(key) and value is not None:
        return cbor2.CBORTag(1, _epoch_seconds(value))
    return value


class CborBridge:
    """WSGI middleware that serves CloudWatch CBOR requests through moto's JSON protocol."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CBOR_PATH_PREFIX):
            return self.app(environ, start_response)
        operation = path[len(CBOR_PATH_PREFIX):]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        request = cbor2.loads(raw) if raw else {}
        body = json.dumps(_to_json_value(request)).encode()

        inner = dict(environ)
        inner.update(
            {
                "PATH_INFO": "/",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_X_AMZ_TARGET": JSON_TARGET_PREFIX + operation,
                "wsgi.input": io.BytesIO(body),
            }
        )
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            return lambda _chunk: None

        answer = b"".join(self.app(inner, capture))
        decoded = json.loads(answer) if answer.strip() else {}
        if "__type" in decoded:
            # Smithy clients read the bare shape name as the error code.
            decoded["__type"] = decoded["__type"].split("#")[-1]
        payload = cbor2.dumps(_to_cbor_value(decoded))
        start_response(
            captured.get("status", "500 Internal Server Error"),
            [
                ("Content-Type", "application/cbor"),
                ("Content-Length", str(len(payload))),
                ("smithy-protocol", "rpc-v2-cbor"),
            ],
        )
        return [payload]


def keep_tasks_running():
    """Moto advances an ECS task one lifecycle state per read by default
    (RUNNING -> DEACTIVATING -> ... after a single DescribeTasks). Real tasks
    stay RUNNING until stopped, so make the progression effectively never fire;
    StopTask still moves a task to STOPPED at once."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10**12}
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="stop when standard input closes (the parent process went away)",
    )
    args = parser.parse_args()

    keep_tasks_running()
    app = CborBridge(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_stdin:

        def watch_stdin():
            sys.stdin.read()
            stop()

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
