"""ELBv2 target groups as strict as AWS where the registrar depends on it.

moto keys targets by id alone, removes a deregistered target at once, calls
every new target healthy whether or not anything serves it, and registers any
address on any port. Here:

- a target is its id **and** port (the same IP on two ports is two targets);
- a deregistered target is `draining` (Target.DeregistrationInProgress) for the
  group's `deregistration_delay.timeout_seconds`, then gone; registering it
  again brings it back; deregistering a target that is not registered succeeds
  and changes nothing;
- a target of a group that no listener or rule of any load balancer forwards to
  is `unused` (Target.NotInUse): ELB health-checks only targets a load balancer
  uses (DescribeTargetHealth's TargetHealth.Reason);
- a group with health checks disabled reports its targets `unavailable`
  (Target.HealthCheckDisabled). ELB allows that only for `lambda` groups (they
  start with checks off); `instance`/`ip`/`alb` groups always check
  (CreateTargetGroup's HealthCheckEnabled);
- health comes from the target where the emulator can reach it. A target on a
  loopback address (127.0.0.0/8, ::1) is really health-checked: an HTTP GET of
  the group's HealthCheckPath (default `/`) on its IP and the health-check port
  (the target's port for `traffic-port`), expecting the group's Matcher codes.
  It is `initial` (Elb.RegistrationInProgress, then Elb.InitialHealthChecking)
  until HealthyThresholdCount checks in a row pass (then `healthy`) or
  UnhealthyThresholdCount fail (then `unhealthy`, reason
  Target.ResponseCodeMismatch for a wrong code, Target.Timeout when no answer
  came within the timeout, Target.FailedHealthChecks for a refused connection
  or a malformed answer); a healthy target needs UnhealthyThresholdCount
  failures in a row to go unhealthy and an unhealthy one HealthyThresholdCount
  passes to come back. One HealthCheckIntervalSeconds lasts `check_seconds` of
  wall time (`POST /_emulator/target-health {"check_seconds": 0.2}`, 0.5 by
  default), the timeout scales with it (at least 0.5 s, loopback servers in a
  busy test process must not time out by accident).
  Why loopback only: the other targets tests register are made-up VPC
  addresses nothing listens on (task IPs of the emulator's fake ENIs); checking
  them would only time out. They keep the emulator's clock instead: `initial`
  (Elb.RegistrationInProgress) for `--healthy-seconds`, then `healthy`. A test
  that wants health from a target runs an HTTP server on 127.0.0.x and
  registers that address, so no opt-in is needed and no other test changes;
- RegisterTargets refuses what ELB refuses: a port outside 1-65535
  (ValidationError, the API's Port range), and an `ip` target in none of the
  subnets of the group's VPC (nor the address of one of its network
  interfaces: moto gives task ENIs random 10.x addresses outside their
  subnet) without an AvailabilityZone (ValidationError "The
  Availability Zone is required for IP address ... because it is not in the
  VPC", as ELB answers; TargetDescription.AvailabilityZone: "If the IP address
  is outside the VPC, this parameter is required", for ALB groups `all`). With
  an AvailabilityZone an outside address must still be private (RFC 1918 or
  RFC 6598, "You can't specify publicly routable IP addresses"); loopback
  addresses are accepted as well, as the emulator's stand-in for a target the
  test serves (AWS would refuse them). The whole call is refused, nothing of
  it registered.

Controls (registered by `install()`):

    POST /_emulator/target-health {"check_seconds": 0.2}  (answers the settings)
    GET  /_emulator/target-health
    GET  /_emulator/vpc-subnets?region=..&vpc_id=..  ({"subnets": [ids]}: where a
         test fixture puts the load balancer in front of its group)

When recording (`POST /_emulator/target-changes {"record": true}`), every
target a RegisterTargets or DeregisterTargets call changes is logged with the
wall-clock time the change landed, for benchmarks that time event to target.
"""

import datetime as dt
import http.client
import ipaddress
import re
import socket
import threading
import time

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.elbv2 import exceptions as elb_errors
from moto.elbv2 import models as elb_models

LOCK = threading.RLock()
SETTINGS = {"healthy_seconds": 1.0, "check_seconds": 0.5}
# [epoch seconds, "register" | "deregister", group ARN, id, port] while recording.
CHANGES = []
RECORDING = {"on": False}
# Groups holding loopback targets, by ARN: the checker's work list.
CHECKED_GROUPS = {}
MIN_CHECK_TIMEOUT = 0.5
PRIVATE_RANGES = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
]


def record_changes(on):
    with LOCK:
        RECORDING["on"] = bool(on)
        CHANGES.clear()


def recorded_changes():
    with LOCK:
        return list(CHANGES)


def _state(group):
    """The group's targets: {(id, port): {...}} registered and draining."""
    if not hasattr(group, "_strict_registered"):
        group._strict_registered = {}
        group._strict_draining = {}
        group._strict_checks = {}
    return group._strict_registered, group._strict_draining


def _port(group, target):
    port = target.get("Port")
    if port is None:
        port = group.port
    return None if port is None else int(port)


def _loopback(target_id):
    try:
        return ipaddress.ip_address(target_id).is_loopback
    except ValueError:
        return False


def _backend(group):
    return elb_models.elbv2_backends[group.account_id][group.region_name]


def _in_use(group):
    """Whether a listener's default action or a rule forwards to the group."""
    return _backend(group)._any_listener_using(group.arn)


def _sync(group):
    """Keeps moto's own view (keyed by id) for the code of moto that reads it."""
    registered, _ = _state(group)
    group.targets.clear()
    for target_id, port in registered:
        group.targets[f"{target_id}:{port}"] = {"Id": target_id, "Port": port}


def _settle(group):
    now = utcnow()
    _, draining = _state(group)
    for key, until in list(draining.items()):
        if now >= until:
            del draining[key]


def _validation(message):
    return elb_errors.ValidationError(message)


def _vpc_networks(group):
    """The CIDR blocks (IPv4 and IPv6) of the subnets of the group's VPC."""
    ec2 = ec2_backends[group.account_id][group.region_name]
    networks = []
    for subnet in ec2.describe_subnets(filters={"vpc-id": [group.vpc_id]}):
        networks.append(ipaddress.ip_network(subnet.cidr_block))
        for association in subnet.ipv6_cidr_block_associations.values():
            block = association.get("ipv6CidrBlock")
            if block:
                networks.append(ipaddress.ip_network(block))
    return networks


def _vpc_eni_addresses(group):
    """Private IPs of the network interfaces in the group's VPC. moto gives a
    task's ENI a random 10.x address outside its subnet's CIDR; in AWS an ENI's
    address is always in its subnet, so an ENI of the VPC counts as in it."""
    ec2 = ec2_backends[group.account_id][group.region_name]
    addresses = set()
    for eni in ec2.enis.values():
        subnet = getattr(eni, "subnet", None)
        if subnet is not None and subnet.vpc_id == group.vpc_id and eni.private_ip_address:
            addresses.add(ipaddress.ip_address(eni.private_ip_address))
    return addresses


def _validate(group, targets):
    """Refuses the call as ELB does, before anything of it is registered."""
    networks = enis = None
    for index, target in enumerate(targets, start=1):
        port = target.get("Port")
        if port is not None and group.target_type != "lambda":
            port = int(port)
            if port < 1:
                raise _validation(
                    f"1 validation error detected: Value '{port}' at 'targets.{index}.member.port'"
                    " failed to satisfy constraint: Member must have value greater than or equal to 1"
                )
            if port > 65535:
                raise _validation(
                    f"1 validation error detected: Value '{port}' at 'targets.{index}.member.port'"
                    " failed to satisfy constraint: Member must have value less than or equal to 65535"
                )
        if group.target_type != "ip":
            continue
        try:
            address = ipaddress.ip_address(target["Id"])
        except ValueError:
            raise elb_errors.InvalidTargetError() from None
        if networks is None:
            networks, enis = _vpc_networks(group), _vpc_eni_addresses(group)
        if address in enis or any(address in network for network in networks):
            continue
        if not target.get("AvailabilityZone"):
            raise _validation(
                f"The Availability Zone is required for IP address '{address}'"
                " because it is not in the VPC"
            )
        if address.version == 4 and not (
            address.is_loopback or any(address in n for n in PRIVATE_RANGES)
        ):
            raise _validation(
                f"The IP address '{address}' is outside the VPC and not in a private range"
                " (RFC 1918 or RFC 6598)"
            )


def register(self, targets):
    with LOCK:
        _validate(self, targets)
        registered, draining = _state(self)
        now = utcnow()
        for target in targets:
            key = (target["Id"], _port(self, target))
            draining.pop(key, None)
            if key not in registered:
                self._strict_checks.pop(key, None)
                if RECORDING["on"]:
                    CHANGES.append([time.time(), "register", self.arn, key[0], key[1]])
                if _loopback(key[0]):
                    CHECKED_GROUPS[self.arn] = self
            registered.setdefault(key, now)
        _sync(self)


def deregister(self, targets):
    with LOCK:
        registered, draining = _state(self)
        delay = int(self.attributes.get("deregistration_delay.timeout_seconds", 300))
        until = utcnow() + dt.timedelta(seconds=delay)
        for target in targets:
            key = (target["Id"], _port(self, target))
            if registered.pop(key, None) is not None:
                self._strict_checks.pop(key, None)
                draining[key] = until
                if RECORDING["on"]:
                    CHANGES.append([time.time(), "deregister", self.arn, key[0], key[1]])
        _sync(self)


# ---- health checks of loopback targets ------------------------------------


def _codes(group):
    """The Matcher's HTTP codes as a predicate ("200", "200,202", "200-299")."""
    spec = str((getattr(group, "matcher", None) or {}).get("HttpCode") or "200")
    ranges = []
    for part in re.split(r"\s*,\s*", spec.strip()):
        low, _, high = part.partition("-")
        ranges.append((int(low), int(high or low)))
    return lambda code: any(low <= code <= high for low, high in ranges)


def _check_once(group, target_id, port):
    """One health check: None when it passed, else (reason, description)."""
    check_port = group.health_check_port
    if check_port in (None, "", "traffic-port"):
        check_port = port
    interval = float(group.health_check_interval_seconds or 30)
    timeout = float(group.health_check_timeout_seconds or 6)
    wall_timeout = max(MIN_CHECK_TIMEOUT, timeout * SETTINGS["check_seconds"] / interval)
    host = target_id if ":" not in target_id else f"[{target_id}]"
    connection = http.client.HTTPConnection(target_id, int(check_port), timeout=wall_timeout)
    try:
        connection.request(
            "GET",
            group.health_check_path or "/",
            headers={"Host": host, "User-Agent": "ELB-HealthChecker/2.0"},
        )
        status = connection.getresponse().status
    except (socket.timeout, TimeoutError):
        return "Target.Timeout", "Request timed out"
    except (OSError, http.client.HTTPException):
        return "Target.FailedHealthChecks", "Health checks failed"
    finally:
        connection.close()
    if _codes(group)(status):
        return None
    return "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"


def _record(group, key, failure):
    """Moves a target's health by one check, as the thresholds say."""
    healthy_after = int(group.healthy_threshold_count or 5)
    unhealthy_after = int(group.unhealthy_threshold_count or 2)
    with LOCK:
        registered, _ = _state(group)
        if key not in registered:
            return
        check = group._strict_checks.setdefault(
            key, {"state": "initial", "passed": 0, "failed": 0, "reason": None, "checks": 0}
        )
        check["checks"] += 1
        if failure is None:
            check["passed"] += 1
            check["failed"] = 0
            if check["passed"] >= healthy_after:
                check["state"], check["reason"] = "healthy", None
        else:
            check["failed"] += 1
            check["passed"] = 0
            if check["state"] == "unhealthy" or check["failed"] >= unhealthy_after:
                check["state"], check["reason"] = "unhealthy", failure


def _check_and_record(group, key):
    try:
        _record(group, key, _check_once(group, key[0], key[1]))
    finally:
        with LOCK:
            check = group._strict_checks.get(key)
            if check is not None:
                check.pop("running", None)


def _checker():
    """Starts each loopback target's check every `check_seconds`."""
    due = {}
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        with LOCK:
            work = []
            for arn, group in list(CHECKED_GROUPS.items()):
                if arn not in _backend(group).target_groups:
                    del CHECKED_GROUPS[arn]
                    continue
                if not group.health_check_enabled or not _in_use(group):
                    continue
                registered, _ = _state(group)
                for key in registered:
                    if not _loopback(key[0]) or now < due.get((arn, key), 0):
                        continue
                    check = group._strict_checks.setdefault(
                        key,
                        {"state": "initial", "passed": 0, "failed": 0, "reason": None, "checks": 0},
                    )
                    if check.get("running"):
                        continue
                    check["running"] = True
                    due[(arn, key)] = now + SETTINGS["check_seconds"]
                    work.append((group, key))
        for group, key in work:
            threading.Thread(target=_check_and_record, args=(group, key), daemon=True).start()


# ---- DescribeTargetHealth ----------------------------------------------------


def health(group, target_id, port):
    registered, draining = _state(group)
    key = (target_id, port)

    def status(state, reason=None, description=None):
        return elb_models.FakeHealthStatus(
            target_id, port, group.health_check_port, state, reason, description
        )

    if key in draining:
        return status(
            "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
        )
    if key not in registered:
        return status(
            "unused", "Target.NotRegistered", "Target is not registered to the target group"
        )
    if not _in_use(group):
        return status(
            "unused",
            "Target.NotInUse",
            "Target group is not configured to receive traffic from the load balancer",
        )
    if not group.health_check_enabled:
        return status("unavailable", "Target.HealthCheckDisabled", "Health checks disabled")
    if _loopback(target_id):
        check = group._strict_checks.get(key) or {}
        state = check.get("state", "initial")
        if state == "healthy":
            return status("healthy")
        if state == "unhealthy":
            return status("unhealthy", *check["reason"])
        if check.get("checks"):
            return status(
                "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
            )
        return status(
            "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
        )
    ready = registered[key] + dt.timedelta(seconds=SETTINGS["healthy_seconds"])
    if utcnow() < ready:
        return status("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    return status("healthy")


def describe_target_health(self, target_group_arn, targets):
    group = self.target_groups.get(target_group_arn)
    if group is None:
        raise elb_models.TargetGroupNotFoundError()
    with LOCK:
        _settle(group)
        registered, draining = _state(group)
        if targets:
            keys = [(t["Id"], _port(group, t)) for t in targets]
        else:
            keys = list(registered) + [k for k in draining if k not in registered]
        return [health(group, target_id, port) for target_id, port in keys]


# ---- controls ----------------------------------------------------------------


def _target_health_settings(request, _query):
    if "check_seconds" in request:
        seconds = float(request["check_seconds"])
        if seconds <= 0:
            raise ValueError("check_seconds must be positive")
        SETTINGS["check_seconds"] = seconds
    return dict(SETTINGS)


def _vpc_subnets(_request, query):
    first = lambda key: query.get(key, [None])[0]  # noqa: E731
    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][first("region") or "us-east-1"]
    subnets = ec2.describe_subnets(filters={"vpc-id": [first("vpc_id")]})
    return {"subnets": [s.id for s in subnets]}


_ORIGINAL_GROUP_INIT = elb_models.FakeTargetGroup.__init__


def _group_init(self, *args, **kwargs):
    """A `lambda` group starts with health checks off, as ELB creates it."""
    if kwargs.get("target_type") == "lambda" and kwargs.get("healthcheck_enabled") is None:
        kwargs["healthcheck_enabled"] = "false"
    _ORIGINAL_GROUP_INIT(self, *args, **kwargs)


def install():
    import faults  # here, not at the top: faults imports this module

    elb_models.FakeTargetGroup.__init__ = _group_init
    elb_models.FakeTargetGroup.register = register
    elb_models.FakeTargetGroup.deregister = deregister
    elb_models.ELBv2Backend.describe_target_health = describe_target_health
    faults.register_control("POST", "target-health", _target_health_settings)
    faults.register_control("GET", "target-health", _target_health_settings)
    faults.register_control("GET", "vpc-subnets", _vpc_subnets)
    threading.Thread(target=_checker, name="elb-health-checks", daemon=True).start()
