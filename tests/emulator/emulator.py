"""Local AWS emulator: moto server with a CloudWatch Smithy RPC v2 CBOR bridge.

Current aws-sdk-cloudwatch speaks Smithy RPC v2 CBOR, which moto does not serve.
Moto does serve CloudWatch's awsJson1_0 protocol, so the bridge rewrites each CBOR
request into the equivalent JSON request, lets moto answer it, and encodes the
answer back as CBOR (timestamps as CBOR tag 1, `smithy-protocol` header set).
Every other request goes to moto untouched.

Where moto is kinder than AWS, strict layers patch it (strict_ecs.py,
strict_elbv2.py, strict_cloudwatch.py); strict_cloudformation.py runs the SAM
transform, so `sam deploy` can create the stack here; a fault layer in front of everything makes chosen calls
fail and counts every call (faults.py).

Usage: emulator.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin]
                   [--deployment-seconds 5] [--healthy-seconds 1]
                   [--rates off|aws] [--latency-ms 0] [--plain]
                   [--alarm-evaluation-seconds 60]
Prints `READY <endpoint url>` on stdout once it accepts connections.
"""

import argparse
import datetime as dt
import gzip
import io
import json
import signal
import sys
import threading

import cbor2
from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

import clock
import faults
import strict_cloudformation
import strict_cloudwatch
import strict_ecs
import strict_elbv2
from faults import CREDENTIAL_SCOPE, FaultLayer

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
    """WSGI middleware that serves CloudWatch CBOR requests through moto's JSON
    protocol, and the CloudWatch calls moto gets wrong (in either protocol)
    through strict_cloudwatch."""

    def __init__(self, app, strict=True):
        self.app = app
        self.strict = strict

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if path.startswith(CBOR_PATH_PREFIX):
            operation = path[len(CBOR_PATH_PREFIX):]
            cbor = True
        elif target.startswith(JSON_TARGET_PREFIX):
            operation = target[len(JSON_TARGET_PREFIX):]
            cbor = False
        else:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if self.strict and operation == "PutMetricData":
            # 1 MB counts the body as sent, gzipped or not.
            try:
                strict_cloudwatch.check_body_size(len(raw))
            except strict_cloudwatch.RequestTooLarge as e:
                respond = self._respond if cbor else self._respond_json
                answer = {"__type": e.code, "message": e.message}
                return respond(start_response, e.status, answer)
        # The SDK gzips PutMetricData bodies over 10 KB, as CloudWatch accepts.
        if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        if cbor:
            request = cbor2.loads(raw) if raw else {}
        else:
            request = json.loads(raw) if raw.strip() else {}
        respond = self._respond if cbor else self._respond_json
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = scope.group(1) if scope else "us-east-1"
        backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][region]
        extra = {}
        try:
            with strict_cloudwatch.LOCK:
                if not self.strict:
                    pass
                elif operation == "GetMetricData":
                    answer = strict_cloudwatch.get_metric_data(backend, request)
                    return respond(start_response, "200 OK", answer)
                elif operation == "PutCompositeAlarm":
                    answer = strict_cloudwatch.put_composite_alarm(backend, request)
                    return respond(start_response, "200 OK", answer)
                elif operation == "DescribeAlarms":
                    page, next_token = strict_cloudwatch.describe_alarms(backend, request)
                    if not page:
                        answer = {"MetricAlarms": [], "CompositeAlarms": []}
                        return respond(start_response, "200 OK", answer)
                    request = {"AlarmNames": [a.name for a in page]}
                    extra = {"NextToken": next_token} if next_token else {}
        except ValidationError as e:
            answer = {"__type": "ValidationError", "message": e.message}
            return respond(start_response, "400 Bad Request", answer)
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
        inner.pop("HTTP_CONTENT_ENCODING", None)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            return lambda _chunk: None

        answer = b"".join(self.app(inner, capture))
        decoded = json.loads(answer) if answer.strip() else {}
        if "__type" in decoded:
            # Smithy clients read the bare shape name as the error code.
            decoded["__type"] = decoded["__type"].split("#")[-1]
        else:
            decoded.update(extra)
        return respond(
            start_response, captured.get("status", "500 Internal Server Error"), decoded
        )

    @staticmethod
    def _respond_json(start_response, status, answer):
        payload = json.dumps(answer, default=str).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(payload))),
            ],
        )
        return [payload]

    @staticmethod
    def _respond(start_response, status, answer):
        payload = cbor2.dumps(_to_cbor_value(answer))
        start_response(
            status,
            [
                ("Content-Type", "application/cbor"),
                ("Content-Length", str(len(payload))),
                ("smithy-protocol", "rpc-v2-cbor"),
            ],
        )
        return [payload]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="stop when standard input closes (the parent process went away)",
    )
    parser.add_argument(
        "--deployment-seconds",
        type=float,
        default=strict_ecs.SETTINGS["deployment_seconds"],
        help="how long an ECS deployment stays IN_PROGRESS before it completes",
    )
    parser.add_argument(
        "--healthy-seconds",
        type=float,
        default=strict_elbv2.SETTINGS["healthy_seconds"],
        help="how long a newly registered target stays initial before it is healthy",
    )
    parser.add_argument(
        "--rates",
        choices=("off", "aws"),
        default="off",
        help="enforce AWS's documented request rates as token buckets (rates.py)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="added to every AWS call before it is answered",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="moto with the CloudWatch bridge and the control API only: no strict layer",
    )
    parser.add_argument(
        "--alarm-evaluation-seconds",
        type=float,
        default=clock.SETTINGS["alarm_evaluation_seconds"],
        help="real seconds between two evaluations of every alarm (clock.py)",
    )
    args = parser.parse_args()

    strict_ecs.SETTINGS["deployment_seconds"] = args.deployment_seconds
    strict_elbv2.SETTINGS["healthy_seconds"] = args.healthy_seconds
    clock.set_evaluation_seconds(args.alarm_evaluation_seconds)
    clock.register(faults.register_control)
    if not args.plain:
        strict_ecs.install()
        strict_elbv2.install()
        strict_cloudwatch.install()
        strict_cloudformation.install()
    app = FaultLayer(CborBridge(DomainDispatcherApplication(create_backend_app), not args.plain))
    app.rates.configure(args.rates, args.latency_ms)
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
