"""Fault layer: makes chosen AWS calls fail, and counts every call.

Tests drive it over HTTP on the emulator's own port:

    POST   /_emulator/faults  {"operation": "UpdateService", "kind": "throttle",
                               "times": 3, "region": "us-east-1"}
    DELETE /_emulator/faults  (clears every fault)
    GET    /_emulator/calls   ({"<region>/<Operation>": count, ...})
    DELETE /_emulator/calls   (resets the counts)
    POST   /_emulator/settings {"deployment_seconds": 2, "healthy_seconds": 1,
                                "stop_seconds": 0, "protection_minute_seconds": 60,
                                "scale_in_stops_tasks": false}
    POST   /_emulator/missing-tasks {"task_arns": [...], "times": 1}
    POST   /_emulator/rates {"rates": "aws", "latency_ms": 30}  (rates.py; also
           {"clock": "manual"} and {"advance_seconds": 1} for the buckets)
    GET    /_emulator/rates   (the settings, and calls refused per operation)
    POST   /_emulator/target-changes {"record": true}  (strict_elbv2.py)
    GET    /_emulator/target-changes  ([[epoch seconds, "register", arn, id, port], ...])
    POST   /_emulator/network {"region": "us-east-1", "ipv6": false,
                               "subnet_cidr": "10.0.0.0/20"}
           (a VPC with DNS hostnames, a subnet and a security group, for
           awsvpc tasks: {"vpc_id", "subnet_id", "security_group_id"})

`operation` is the API name (`*` for any), `region` optional (every region
when absent), `times` how many matching calls fail (default 1), or `share`
(0..1) with `seed` to fail that share of matching calls. Kinds, from AWS's
kindest failure to its worst:

- `throttle`: 400 with the service's throttling error code;
- `server_error`: 500 with the service's internal error code, nothing done;
- `slow`: holds the request `delay_seconds` (default 2), then answers normally;
- `hang`: no answer at all: the request is held `delay_seconds` (default 60,
  longer than any sane client waits) and then the connection is closed, nothing
  done. `timeout` is the same fault with a 30-second default, kept for the
  tests that name it;
- `lost_answer`: the call takes effect, then the connection closes without an
  answer (what a caller sees when a connection drops after AWS acted);
- `server_error_after_apply`: the call takes effect, then the caller gets a 500
  with the service's internal error code: the change is made and the answer
  says it failed, so a retry repeats an applied change;
- `connection_reset`: the call takes effect, the answer starts (status line,
  headers and half the body) and then the connection is reset (SO_LINGER 0,
  an RST) in the middle of the body.

    GET /_emulator/faults  ({"faults": [{"operation", "region", "kind",
                            "times_left" | "share", "fired", "consumed"}, ...]})

lists every fault added since the last DELETE, in order: `fired` counts the
calls it failed, `consumed` is true once a `times` fault has no times left (a
`share` fault is never consumed), so a test can prove its fault was used.

The error body is in the calling protocol (awsJson, rpc-v2-cbor or query XML).
"""

import io
import json
import random
import re
import socket
import struct
import threading
import time
from urllib.parse import parse_qs

import cbor2

import bus
import strict_ecs
import strict_elbv2
from rates import Rates

# Controls other modules add: (method, name) -> handler(request, query) -> answer.
# A module registers its own (`register_control`), so this file need not know it.
CONTROLS = {}


def register_control(method, name, handler):
    CONTROLS[(method, name)] = handler

CONTROL_PREFIX = "/_emulator/"
CBOR_PATH_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/")

THROTTLE_CODES = {"ecs": "ThrottlingException", "monitoring": "Throttling"}
SERVER_ERROR_CODES = {"ecs": "ServerException", "monitoring": "InternalServiceError"}


KINDS = (
    "throttle",
    "server_error",
    "slow",
    "hang",
    "timeout",
    "lost_answer",
    "server_error_after_apply",
    "connection_reset",
)
DEFAULT_DELAY_SECONDS = {"hang": 60, "timeout": 30, "slow": 2}


class Fault:
    def __init__(self, spec):
        self.operation = spec.get("operation", "*")
        self.region = spec.get("region")
        self.kind = spec.get("kind", "throttle")
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self.remaining = int(spec.get("times", 1)) if "share" not in spec else None
        self.share = float(spec["share"]) if "share" in spec else None
        self.random = random.Random(spec.get("seed", 0))
        self.delay = float(spec.get("delay_seconds", DEFAULT_DELAY_SECONDS.get(self.kind, 2)))
        self.fired = 0

    def matches(self, operation, region):
        if self.operation not in ("*", operation):
            return False
        if self.region is not None and self.region != region:
            return False
        if self.share is not None:
            hit = self.random.random() < self.share
        elif self.remaining > 0:
            self.remaining -= 1
            hit = True
        else:
            hit = False
        self.fired += hit
        return hit

    def describe(self):
        described = {
            "operation": self.operation,
            "region": self.region,
            "kind": self.kind,
            "fired": self.fired,
            "consumed": self.remaining == 0,
        }
        if self.share is None:
            described["times_left"] = self.remaining
        else:
            described["share"] = self.share
        return described


class FaultLayer:
    """WSGI middleware in front of the whole emulator."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.faults = []
        self.calls = {}
        self.rates = Rates()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response, path[len(CONTROL_PREFIX) :])
        operation, region, service = self.identify(environ)
        if operation is None:
            return self.app(environ, start_response)
        with self.lock:
            key = f"{region}/{operation}"
            self.calls[key] = self.calls.get(key, 0) + 1
            fault = next((f for f in self.faults if f.matches(operation, region)), None)
        if not self.rates.admit(service, operation, region):
            return self.error(environ, start_response, "throttle", service, operation)
        if fault is None:
            return self.app(environ, start_response)
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return self.app(environ, start_response)
        if fault.kind in ("hang", "timeout"):
            time.sleep(fault.delay)
            return self.drop_connection(environ, start_response)
        if fault.kind == "lost_answer":
            self.apply(environ)
            return self.drop_connection(environ, start_response)
        if fault.kind == "server_error_after_apply":
            self.apply(environ)
            return self.error(environ, start_response, "server_error", service, operation)
        if fault.kind == "connection_reset":
            status, headers, body = self.apply(environ)
            return self.reset_mid_answer(environ, start_response, status, headers, body)
        return self.error(environ, start_response, fault.kind, service, operation)

    def apply(self, environ):
        """Runs the call for its effect; returns its (status, headers, body)."""
        answer = {}

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None

        chunks = self.app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return answer.get("status", "200 OK"), answer.get("headers", []), body

    @staticmethod
    def reset_mid_answer(environ, start_response, status, headers, body):
        """Sends the status, headers and half the body, then resets the connection."""
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(body)))])

        def chunks():
            yield body[: max(1, len(body) // 2)]
            time.sleep(0.05)  # the client reads the head before the reset
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # close() waits for werkzeug's file objects on the socket;
                    # the descriptor itself must close now, with linger 0: an RST.
                    sock._real_close()
                except OSError:
                    pass

        return chunks()

    @staticmethod
    def drop_connection(environ, start_response):
        """Closes the connection with no answer (the 504 below is never sent)."""
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        start_response("504 Gateway Timeout", [("Content-Length", "0")])
        return [b""]

    @staticmethod
    def identify(environ):
        """(operation, region, service) of an AWS call, or Nones for anything else."""
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope is None:
            return None, None, None
        region, service = scope.group(1), scope.group(2)
        path = environ.get("PATH_INFO", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if path.startswith(CBOR_PATH_PREFIX):
            return path[len(CBOR_PATH_PREFIX) :], region, service
        if target:
            return target.split(".")[-1], region, service
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
        if action is None:
            action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [None])[0]
        return action, region, service

    @staticmethod
    def error(environ, start_response, kind, service, operation):
        if kind == "throttle":
            status = "400 Bad Request"
            code = THROTTLE_CODES.get(service, "Throttling")
            message = "Rate exceeded"
        else:
            status = "500 Internal Server Error"
            code = SERVER_ERROR_CODES.get(service, "InternalFailure")
            message = f"injected internal failure in {operation}"
        path = environ.get("PATH_INFO", "")
        if path.startswith(CBOR_PATH_PREFIX):
            body = cbor2.dumps({"__type": code, "message": message})
            headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        elif environ.get("HTTP_X_AMZ_TARGET"):
            body = json.dumps({"__type": code, "message": message}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1")]
        else:
            body = (
                "<ErrorResponse><Error><Type>"
                + ("Sender" if kind == "throttle" else "Receiver")
                + f"</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def control(self, environ, start_response, what):
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            request = json.loads(raw) if raw.strip() else {}
            with self.lock:
                if what == "faults" and method == "POST":
                    specs = request if isinstance(request, list) else [request]
                    self.faults.extend(Fault(s) for s in specs)
                    answer = {"faults": len(self.faults)}
                elif what == "faults" and method == "GET":
                    answer = {"faults": [f.describe() for f in self.faults]}
                elif what == "faults" and method == "DELETE":
                    self.faults.clear()
                    answer = {"faults": 0}
                elif what == "calls" and method == "GET":
                    answer = dict(self.calls)
                elif what == "calls" and method == "DELETE":
                    self.calls.clear()
                    answer = {}
                elif what == "settings" and method == "POST":
                    if "deployment_seconds" in request:
                        strict_ecs.SETTINGS["deployment_seconds"] = float(
                            request["deployment_seconds"]
                        )
                    if "stop_seconds" in request:
                        strict_ecs.SETTINGS["stop_seconds"] = float(request["stop_seconds"])
                    if "protection_minute_seconds" in request:
                        strict_ecs.SETTINGS["protection_minute_seconds"] = float(
                            request["protection_minute_seconds"]
                        )
                    if "scale_in_stops_tasks" in request:
                        strict_ecs.SETTINGS["scale_in_stops_tasks"] = bool(
                            request["scale_in_stops_tasks"]
                        )
                    if "healthy_seconds" in request:
                        strict_elbv2.SETTINGS["healthy_seconds"] = float(
                            request["healthy_seconds"]
                        )
                    answer = {**strict_ecs.SETTINGS, **strict_elbv2.SETTINGS}
                elif what == "rates" and method == "POST":
                    answer = self.rates.configure(
                        request.get("rates"),
                        request.get("latency_ms"),
                        request.get("clock"),
                        request.get("advance_seconds"),
                    )
                elif what == "rates" and method == "GET":
                    answer = self.rates.describe()
                elif what == "target-changes" and method == "POST":
                    strict_elbv2.record_changes(request.get("record", True))
                    answer = {"recording": bool(request.get("record", True))}
                elif what == "target-changes" and method == "GET":
                    answer = strict_elbv2.recorded_changes()
                elif what == "network" and method == "POST":
                    answer = strict_ecs.create_network(
                        request.get("region", "us-east-1"),
                        bool(request.get("ipv6")),
                        request.get("subnet_cidr", "10.0.0.0/20"),
                    )
                elif what == "events" and method == "GET":
                    query = parse_qs(environ.get("QUERY_STRING", ""))
                    first = lambda key: query.get(key, [None])[0]  # noqa: E731
                    answer = bus.logged(
                        first("source"), first("detail_type"), int(first("since") or 0)
                    )
                elif what == "events" and method == "DELETE":
                    bus.forget()
                    answer = {}
                elif (method, what) in CONTROLS:
                    query = parse_qs(environ.get("QUERY_STRING", ""))
                    answer = CONTROLS[(method, what)](request, query)
                elif what == "missing-tasks" and method == "POST":
                    strict_ecs.mark_missing(request["task_arns"], request.get("times", 1))
                    answer = {"missing": len(request["task_arns"])}
                else:
                    raise ValueError(f"no control {method} {what}")
            status = "200 OK"
        except (ValueError, TypeError, KeyError) as e:
            status, answer = "400 Bad Request", {"error": str(e)}
        body = json.dumps(answer).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
