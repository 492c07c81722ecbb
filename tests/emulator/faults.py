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
(0..1) with `seed` to fail that share of matching calls. Kinds:

- `throttle`: 400 with the service's throttling error code;
- `server_error`: 500 with an internal-failure code;
- `timeout`: holds the request `delay_seconds` (default 30) and closes the
  connection without an answer;
- `slow`: holds the request `delay_seconds` (default 2), then answers normally;
- `lost_answer`: the call takes effect, then the connection closes without an
  answer (what a caller sees when a connection drops after AWS acted).

The error body is in the calling protocol (awsJson, rpc-v2-cbor or query XML).
"""

import io
import json
import random
import re
import socket
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


class Fault:
    def __init__(self, spec):
        self.operation = spec.get("operation", "*")
        self.region = spec.get("region")
        self.kind = spec.get("kind", "throttle")
        if self.kind not in ("throttle", "server_error", "timeout", "slow", "lost_answer"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self.remaining = int(spec.get("times", 1)) if "share" not in spec else None
        self.share = float(spec["share"]) if "share" in spec else None
        self.random = random.Random(spec.get("seed", 0))
        default_delay = 30 if self.kind == "timeout" else 2
        self.delay = float(spec.get("delay_seconds", default_delay))

    def matches(self, operation, region):
        if self.operation not in ("*", operation):
            return False
        if self.region is not None and self.region != region:
            return False
        if self.share is not None:
            return self.random.random() < self.share
        if self.remaining > 0:
            self.remaining -= 1
            return True
        return False


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
        if fault.kind == "timeout":
            time.sleep(fault.delay)
            return self.drop_connection(environ, start_response)
        if fault.kind == "lost_answer":
            answer = self.app(environ, lambda *_: (lambda _data: None))
            try:
                for _ in answer:
                    pass
            finally:
                getattr(answer, "close", lambda: None)()
            return self.drop_connection(environ, start_response)
        return self.error(environ, start_response, fault.kind, service, operation)

    @staticmethod
    def drop_connection(environ, start_response):
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
