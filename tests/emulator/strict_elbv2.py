"""ELBv2 target groups as strict as AWS where the registrar depends on it.

moto keys targets by id alone, removes a deregistered target at once and calls
every new target healthy. Here:

- a target is its id **and** port (the same IP on two ports is two targets);
- a new target is `initial` (Elb.RegistrationInProgress) for
  `--healthy-seconds`, then `healthy`;
- a deregistered target is `draining` (Target.DeregistrationInProgress) for the
  group's `deregistration_delay.timeout_seconds`, then gone; registering it
  again brings it back as `initial`;
- deregistering a target that is not registered succeeds and changes nothing.

When recording (`POST /_emulator/target-changes {"record": true}`), every
target a RegisterTargets or DeregisterTargets call changes is logged with the
wall-clock time the change landed, for benchmarks that time event to target.
"""

import datetime as dt
import threading
import time

from moto.core.utils import utcnow
from moto.elbv2 import models as elb_models

LOCK = threading.RLock()
SETTINGS = {"healthy_seconds": 1.0}
# [epoch seconds, "register" | "deregister", group ARN, id, port] while recording.
CHANGES = []
RECORDING = {"on": False}


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
    return group._strict_registered, group._strict_draining


def _port(group, target):
    return int(target.get("Port") or group.port)


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


def register(self, targets):
    with LOCK:
        registered, draining = _state(self)
        now = utcnow()
        for target in targets:
            key = (target["Id"], _port(self, target))
            draining.pop(key, None)
            if key not in registered and RECORDING["on"]:
                CHANGES.append([time.time(), "register", self.arn, key[0], key[1]])
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
                draining[key] = until
                if RECORDING["on"]:
                    CHANGES.append([time.time(), "deregister", self.arn, key[0], key[1]])
        _sync(self)


def health(group, target_id, port):
    registered, draining = _state(group)
    key = (target_id, port)
    status = elb_models.FakeHealthStatus
    if key in registered:
        ready = registered[key] + dt.timedelta(seconds=SETTINGS["healthy_seconds"])
        if utcnow() < ready:
            return status(
                target_id,
                port,
                group.health_check_port,
                "initial",
                "Elb.RegistrationInProgress",
                "Target registration is in progress",
            )
        return status(target_id, port, group.health_check_port, "healthy")
    if key in draining:
        return status(
            target_id,
            port,
            group.health_check_port,
            "draining",
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress",
        )
    return status(
        target_id,
        port,
        group.health_check_port,
        "unused",
        "Target.NotRegistered",
        "Target is not registered to the target group",
    )


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


def install():
    elb_models.FakeTargetGroup.register = register
    elb_models.FakeTargetGroup.deregister = deregister
    elb_models.ELBv2Backend.describe_target_health = describe_target_health
