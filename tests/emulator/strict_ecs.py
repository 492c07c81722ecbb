"""ECS as strict as AWS where the functions depend on it.

- Tags follow ECS's rules: key 1-128 characters, value at most 256, both from
  `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, no `aws:` prefix, at most 50 a resource;
  anything else is an InvalidParameterException, as ECS answers.
- Deployments finish: a service's deployment is IN_PROGRESS for a set time
  (`--deployment-seconds`), then COMPLETED, and the deployments it replaced
  go away. A new task definition (or forceNewDeployment) starts a new
  deployment; a desired-count change alone does not.
- Tasks stay RUNNING until stopped (moto advances them one state per read).
- StopTask, with `stop_seconds` set above 0, leaves the task RUNNING with
  desired status STOPPED for that long, as ECS does while the containers
  take SIGTERM and the stop timeout (30 s by default) runs out, with its
  network interface still attached; then it is STOPPED. 0 (the default)
  stops it at once, as moto does.
- ListTasks without `desiredStatus` lists tasks meant to run (RUNNING), as
  ECS does, not every task.
- ListTasks filters by serviceName (a task belongs to service X when its group
  is `service:X`) and pages: at most 100 ARNs (`maxResults`), `nextToken`.
- DescribeTasks refuses more than 100 tasks and reports every ARN it does not
  describe as a `MISSING` failure; `missing_tasks` makes listed tasks go
  missing a chosen number of times, as ECS does for a moment after listing.
- DescribeServices refuses more than 10 services.
- A task in a subnet with an IPv6 CIDR gets a `privateIPv6Address` on its ENI.
- A task's `availabilityZone` is its subnet's.
- Task scale-in protection, as ECS serves it: UpdateTaskProtection (at most
  10 tasks, `expiresInMinutes` 1-2880, 120 by default; a task that is not a
  service's is a TASK_NOT_VALID failure, an unknown one MISSING) and
  GetTaskProtection. Protection expires by itself; `protection_minute_seconds`
  (60 by default) is how long a minute of it lasts, for tests.
- With `scale_in_stops_tasks` on, ECS's scheduler follows a lower desired
  count: it stops the service's unprotected tasks, newest first, and never a
  protected one; when protection expires, it stops what is still in excess.
  (ECS chooses by its placement strategy; here the order is the task ARN's.)
- Task lifecycle (docs: "Amazon ECS task lifecycle"): a task goes
  PROVISIONING -> PENDING -> RUNNING, and once told to stop (desiredStatus
  STOPPED, lastStatus still RUNNING for `stop_seconds`) STOPPING ->
  DEPROVISIONING -> STOPPED. Each state lasts its setting
  (`provisioning_seconds`, `pending_seconds`, `stop_seconds`,
  `stopping_seconds`, `deprovisioning_seconds`); a state that lasts 0 is
  skipped. Every change emits "ECS Task State Change" on the default bus
  (bus.py), with `version` counting the task's changes, as DescribeTasks
  reports it too. StopTask stops with stopCode UserInitiated, the scheduler
  with ServiceSchedulerInitiated.
- The service scheduler (`scheduler` on): a service keeps `desiredCount`
  tasks of its PRIMARY deployment (group `service:<name>`, startedBy the
  deployment id), starts what is missing, stops the unprotected excess,
  newest first, and once a new deployment's tasks run, the replaced ones.
  A deployment completes when `deployment_seconds` have passed and its tasks
  all run.
- Deployments that fail or stick (`next_deployment`): a failing deployment's
  tasks stop at the end of PENDING (stopCode TaskFailedToStart) and count as
  failedTasks; with deploymentCircuitBreaker.enable, at the threshold
  (half the desired count, at least 3, at most 200) its rolloutState is FAILED
  and it launches no more tasks; with rollback, a new deployment of the last
  completed task definition replaces it. A sticking deployment's tasks stay
  PENDING and it stays IN_PROGRESS.

    POST /_emulator/ecs-lifecycle {"region": "eu-west-3", "scheduler": true,
         "provisioning_seconds": 1, "pending_seconds": 1, "stop_seconds": 1,
         "stopping_seconds": 1, "deprovisioning_seconds": 1}
         (without "region": the default of every region; answers the settings)
    POST /_emulator/ecs-lifecycle {"region", "cluster", "service",
         "next_deployment": "fail" | "stick" | null}
"""

import datetime as dt
import ipaddress
import json
import math
import threading
import time
import unicodedata

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.moto_api import state_manager
from moto.moto_api._internal import mock_random

TAG_KEY_LIMIT = 128
TAG_VALUE_LIMIT = 256
TAGS_PER_RESOURCE = 50
TAG_PUNCTUATION = set("_.:/=+-@")
LOCK = threading.RLock()
SETTINGS = {
    "deployment_seconds": 5.0,
    "stop_seconds": 0.0,
    "protection_minute_seconds": 60.0,
    "scale_in_stops_tasks": False,
}
# Task ARN -> when its scale-in protection expires.
PROTECTED_UNTIL = {}
PROTECTION_BATCH_LIMIT = 10
PROTECTION_MINUTES_DEFAULT = 120
PROTECTION_MINUTES_LIMIT = 2880
# Deployment id -> when its rollout completes.
COMPLETES_AT = {}
# Deployments that completed (a rollback goes back to the latest of them).
COMPLETED_DEPLOYMENTS = set()
# (region, cluster, service) -> how its next deployment goes: "fail" or "stick".
NEXT_DEPLOYMENT = {}
# Deployment id -> "fail" or "stick".
DEPLOYMENT_MODE = {}
# Task lifecycle and scheduler settings: every region's, and a region's own.
LIFECYCLE_DEFAULTS = {
    "scheduler": False,
    "provisioning_seconds": 0.0,
    "pending_seconds": 0.0,
    "stopping_seconds": 0.0,
    "deprovisioning_seconds": 0.0,
}
LIFECYCLE_REGIONS = {}
# Task ARN -> its lifecycle: version, and the state changes still to come.
TRACKS = {}
TICK_SECONDS = 0.05
# Task ARN -> how many more DescribeTasks calls report it MISSING.
MISSING_TASKS = {}
PAGE_LIMIT = 100
DESCRIBE_SERVICES_LIMIT = 10


def _tag_char_allowed(c):
    return unicodedata.category(c)[0] in "LZN" or c in TAG_PUNCTUATION


def check_tags(tags, existing=()):
    """Raises InvalidParameterException for a tag ECS would refuse."""
    keys = set(existing)
    for tag in tags or []:
        key = tag.get("key") or ""
        value = tag.get("value")
        value = "" if value is None else value
        if not 1 <= len(key) <= TAG_KEY_LIMIT:
            raise InvalidParameterException(
                f"Tag key '{key[:40]}' must be 1 to {TAG_KEY_LIMIT} characters long."
            )
        if len(value) > TAG_VALUE_LIMIT:
            raise InvalidParameterException(
                f"Tag value for key '{key}' must be at most {TAG_VALUE_LIMIT} characters long."
            )
        for part, text in (("key", key), ("value", value)):
            bad = next((c for c in text if not _tag_char_allowed(c)), None)
            if bad is not None:
                raise InvalidParameterException(
                    f"Invalid tag {part} '{text[:40]}': character {bad!r} does not satisfy "
                    "the pattern [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*"
                )
        if key.lower().startswith("aws:"):
            raise InvalidParameterException(f"Tag key '{key}' uses the reserved prefix aws:")
        keys.add(key)
    if len(keys) > TAGS_PER_RESOURCE:
        raise InvalidParameterException(
            f"A resource can have at most {TAGS_PER_RESOURCE} tags; this request would leave {len(keys)}."
        )


def _deployment(service):
    deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
    now = utcnow()
    return {
        "id": deployment_id,
        "status": "PRIMARY",
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": service.running_count,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        "networkConfiguration": service.network_configuration,
        "platformFamily": "EC2" if service.launch_type == "EC2" else "FARGATE",
    }


def start_deployment(service):
    """A new PRIMARY deployment; the one before it becomes ACTIVE until this one completes."""
    if service.deployment_controller.get("type", "ECS") != "ECS":
        service.deployments = []
        return None
    for old in service.deployments:
        old["status"] = "ACTIVE"
    deployment = _deployment(service)
    COMPLETES_AT[deployment["id"]] = deployment["createdAt"] + dt.timedelta(
        seconds=SETTINGS["deployment_seconds"]
    )
    mode = NEXT_DEPLOYMENT.pop((service.region_name, service.cluster_name, service.name), None)
    if mode:
        DEPLOYMENT_MODE[deployment["id"]] = mode
    service.deployments = [deployment] + list(service.deployments)
    return deployment


def _primary(service):
    return next((d for d in service.deployments if d["status"] == "PRIMARY"), None)


def _circuit_breaker(service):
    config = getattr(service, "deployment_configuration", None) or {}
    return config.get("deploymentCircuitBreaker") or {}


def failure_threshold(desired):
    """The circuit breaker's threshold: half the desired count, 3 to 200."""
    return min(200, max(3, math.ceil(0.5 * desired)))


def _fail_deployment(service, deployment, now):
    """The circuit breaker trips: FAILED, and with rollback a new deployment of
    the last completed task definition."""
    breaker = _circuit_breaker(service)
    deployment["rolloutState"] = "FAILED"
    deployment["updatedAt"] = now
    completed = next(
        (d for d in service.deployments if d is not deployment and d["id"] in COMPLETED_DEPLOYMENTS),
        None,
    )
    if breaker.get("rollback") and completed is not None:
        service.task_definition = completed["taskDefinition"]
        rollback = start_deployment(service)
        deployment["rolloutStateReason"] = (
            f"ECS deployment circuit breaker: rolling back to deploymentId {rollback['id']}."
        )
    else:
        deployment["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."


def settle(service):
    """Completes (or fails) deployments whose time has come."""
    now = utcnow()
    primary = _primary(service)
    if primary is None:
        return
    scheduled = _lifecycle(service.region_name)["scheduler"]
    if scheduled:
        _count_tasks(service)
    primary["desiredCount"] = service.desired_count
    if not scheduled:
        primary["runningCount"] = service.running_count
    if primary.get("rolloutState") != "IN_PROGRESS":
        return
    mode = DEPLOYMENT_MODE.get(primary["id"])
    if _circuit_breaker(service).get("enable") and (
        primary["failedTasks"] >= failure_threshold(service.desired_count)
    ):
        _fail_deployment(service, primary, now)
        return
    due = COMPLETES_AT.get(primary["id"])
    if due is None or now < due or mode == "stick":
        return
    if mode == "fail":
        if not scheduled and primary["failedTasks"] == 0:
            # No tasks to fail here: the failures all come at once.
            primary["failedTasks"] = failure_threshold(service.desired_count)
            if _circuit_breaker(service).get("enable"):
                _fail_deployment(service, primary, now)
        return
    if scheduled and primary["runningCount"] < service.desired_count:
        return
    primary["rolloutState"] = "COMPLETED"
    primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    primary["updatedAt"] = now
    COMPLETED_DEPLOYMENTS.add(primary["id"])
    service.deployments = [primary]


def mark_missing(task_arns, times):
    with LOCK:
        for arn in task_arns:
            MISSING_TASKS[arn] = int(times)


def _still_missing(arn):
    with LOCK:
        left = MISSING_TASKS.get(arn, 0)
        if left <= 0:
            return False
        MISSING_TASKS[arn] = left - 1
        return True


def list_tasks_response(self):
    """ListTasks, filtered by service and paged as ECS does."""
    max_results = self._get_param("maxResults") or PAGE_LIMIT
    if not 1 <= int(max_results) <= PAGE_LIMIT:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    service_name = self._get_param("serviceName")
    tick()
    _settle_scale_in(self.ecs_backend)
    tasks = self.ecs_backend.list_tasks(
        self._get_param("cluster", "default"),
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        None,
        # ECS lists tasks meant to run when no desired status is named.
        self._get_param("desiredStatus") or "RUNNING",
    )
    if service_name:
        self.ecs_backend._get_service(self._get_param("cluster", "default"), service_name)
        tasks = [t for t in tasks if t.group == f"service:{service_name.split('/')[-1]}"]
    arns = sorted(t.task_arn for t in tasks)
    try:
        offset = int(self._get_param("nextToken") or 0)
    except ValueError:
        raise InvalidParameterException("The nextToken is not valid.")
    page = arns[offset : offset + int(max_results)]
    result = {"taskArns": page}
    if offset + int(max_results) < len(arns):
        result["nextToken"] = str(offset + int(max_results))
    return ActionResult(result)


def describe_tasks_response(self):
    """DescribeTasks: at most 100 tasks; what it cannot describe is a MISSING failure."""
    cluster = self._get_param("cluster", "default")
    requested = self._get_param("tasks", [])
    if len(requested) > PAGE_LIMIT:
        raise InvalidParameterException("Tasks cannot be longer than 100.")
    if not requested:
        raise InvalidParameterException("Tasks cannot be empty.")
    # ECS matches a task by its ARN or ID in the one cluster; moto's own lookup
    # scans every task of every cluster against every request, by substring.
    cluster_name = self.ecs_backend._get_cluster(cluster).name
    wanted = {arn.split("/")[-1] for arn in requested}
    tick()
    found = []
    for task in list(self.ecs_backend.tasks.get(cluster_name, {}).values()):
        if task.task_arn.split("/")[-1] in wanted:
            task.advance()
            found.append(task)
    tasks = [t for t in found if not _still_missing(t.task_arn)]
    described = {t.task_arn for t in tasks} | {t.task_arn.split("/")[-1] for t in tasks}
    failures = [
        {"arn": arn, "reason": "MISSING"}
        for arn in requested
        if arn not in described and arn.split("/")[-1] not in described
    ]
    body = {"tasks": [_task_json(self, t) for t in tasks], "failures": failures}
    return json.dumps(body)


# Task ARN -> (the task's state when serialized, its JSON). moto's model-driven
# serializer takes about half a millisecond a task, which would make the
# emulator, not the caller, most of the time of a 1,000-task describe.
_SERIALIZED = {}


def _task_state(task):
    fields = {k: v for k, v in vars(task).items() if k not in ("_tick", "_backend")}
    return (task.last_status, repr(fields), repr([vars(c) for c in task.containers]))


def _task_json(response, task):
    state = _task_state(task)
    cached = _SERIALIZED.get(task.task_arn)
    if cached is not None and cached[0] == state:
        return cached[1]
    _, _, body = response.serialized(ActionResult({"tasks": [task], "failures": []}))
    value = json.loads(body)["tasks"][0]
    _SERIALIZED[task.task_arn] = (state, value)
    return value


def create_network(region, ipv6, subnet_cidr="10.0.0.0/20"):
    """A VPC (DNS hostnames on, as task ENIs' private DNS names need), a subnet
    (`subnet_cidr`, inside 10.0.0.0/16) and a security group for awsvpc tasks;
    with `ipv6`, the VPC gets a /56 and the subnet its first /64, so tasks are
    dual-stack."""
    from moto.core import DEFAULT_ACCOUNT_ID

    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    vpc = ec2.create_vpc("10.0.0.0/16", amazon_provided_ipv6_cidr_block=ipv6)
    ec2.modify_vpc_attribute(vpc.id, "enable_dns_hostnames", True)
    ipv6_block = None
    if ipv6:
        block = vpc.ipv6_cidr_block_association_set[0]["ipv6CidrBlock"]
        ipv6_block = block.replace("/56", "/64")
    # moto puts a subnet with no zone named in us-east-1a, whatever the region.
    zone = ec2.describe_availability_zones()[0].name
    subnet = ec2.create_subnet(
        vpc.id, subnet_cidr, ipv6_cidr_block=ipv6_block, availability_zone=zone
    )
    group = ec2.create_security_group("tasks", "tasks", vpc_id=vpc.id)
    return {"vpc_id": vpc.id, "subnet_id": subnet.id, "security_group_id": group.id}


def _add_ipv6(task):
    """An IPv6 address on the task's ENI when its subnet has an IPv6 CIDR."""
    for attachment in task.attachments:
        details = attachment.get("details", [])
        subnet_id = next((d["value"] for d in details if d["name"] == "subnetId"), None)
        if subnet_id is None:
            continue
        ec2 = ec2_backends[task._account_id][task.region_name]
        subnet = ec2.get_subnet(subnet_id)
        blocks = [
            a["ipv6CidrBlock"]
            for a in subnet.ipv6_cidr_block_associations.values()
            if a.get("ipv6CidrBlockState", {}).get("State") == "associated"
        ]
        if blocks:
            network = ipaddress.IPv6Network(blocks[0])
            host = network[mock_random.randint(16, 2**32)]
            details.append({"name": "privateIPv6Address", "value": str(host)})


def _protected(task):
    until = PROTECTED_UNTIL.get(task.task_arn)
    if until is None:
        return False
    if utcnow() >= until:
        del PROTECTED_UNTIL[task.task_arn]
        return False
    return True


def _service_tasks(backend, service):
    """The service's tasks meant to run."""
    group = f"service:{service.name}"
    return [
        t
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if t.group == group and t.desired_status == "RUNNING"
    ]


def scale_in(backend, service):
    """ECS's scheduler on a lower count: stops unprotected tasks in excess."""
    if not SETTINGS["scale_in_stops_tasks"]:
        return
    with LOCK:
        running = _service_tasks(backend, service)
        excess = len(running) - service.desired_count
        if excess <= 0:
            return
        free = [t for t in running if not _protected(t)]
        # moto keeps no start time: the task ARN orders them, the same every time.
        free.sort(key=lambda t: t.task_arn, reverse=True)
        primary = _primary(service)
        reason = f"Scaling activity initiated by (deployment {primary['id'] if primary else 'ecs-svc'})"
        for task in free[:excess]:
            stop(task, reason, "ServiceSchedulerInitiated")


def _protection_json(task):
    until = PROTECTED_UNTIL.get(task.task_arn)
    body = {"taskArn": task.task_arn, "protectionEnabled": until is not None}
    if until is not None:
        body["expirationDate"] = until.timestamp()
    return body


def _find_task(backend, cluster, arn):
    return next(
        (
            t
            for t in backend.tasks.get(cluster.name, {}).values()
            if t.task_arn == arn or t.task_arn.split("/")[-1] == arn.split("/")[-1]
        ),
        None,
    )


def update_task_protection_response(self):
    """UpdateTaskProtection, as ECS serves it."""
    cluster = self.ecs_backend._get_cluster(self._get_param("cluster", "default"))
    requested = self._get_param("tasks", [])
    if not requested or len(requested) > PROTECTION_BATCH_LIMIT:
        raise InvalidParameterException(
            f"tasks must hold 1 to {PROTECTION_BATCH_LIMIT} task IDs or ARNs."
        )
    enabled = self._get_param("protectionEnabled")
    if enabled is None:
        raise InvalidParameterException("protectionEnabled is required.")
    minutes = self._get_param("expiresInMinutes")
    if minutes is None:
        minutes = PROTECTION_MINUTES_DEFAULT
    if enabled and not 1 <= int(minutes) <= PROTECTION_MINUTES_LIMIT:
        raise InvalidParameterException(
            f"expiresInMinutes must be between 1 and {PROTECTION_MINUTES_LIMIT}."
        )
    protected, failures = [], []
    with LOCK:
        for arn in requested:
            task = _find_task(self.ecs_backend, cluster, arn)
            if task is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            if not (task.group or "").startswith("service:") or task.desired_status != "RUNNING":
                failures.append(
                    {
                        "arn": task.task_arn,
                        "reason": "TASK_NOT_VALID",
                        "detail": "The task is not a running task of a service.",
                    }
                )
                continue
            if enabled:
                PROTECTED_UNTIL[task.task_arn] = utcnow() + dt.timedelta(
                    seconds=int(minutes) * SETTINGS["protection_minute_seconds"]
                )
            else:
                PROTECTED_UNTIL.pop(task.task_arn, None)
            protected.append(_protection_json(task))
        if not enabled:
            for service in list(self.ecs_backend.services.values()):
                if service.cluster_name == cluster.name:
                    scale_in(self.ecs_backend, service)
    return json.dumps({"protectedTasks": protected, "failures": failures})


def get_task_protection_response(self):
    """GetTaskProtection: each named task's protection now."""
    cluster = self.ecs_backend._get_cluster(self._get_param("cluster", "default"))
    requested = self._get_param("tasks", [])
    protected, failures = [], []
    with LOCK:
        for arn in requested:
            task = _find_task(self.ecs_backend, cluster, arn)
            if task is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            _protected(task)
            protected.append(_protection_json(task))
    return json.dumps({"protectedTasks": protected, "failures": failures})


def _settle_scale_in(backend, cluster_name=None):
    """Protection that expired lets the scheduler stop what is in excess."""
    if not SETTINGS["scale_in_stops_tasks"]:
        return
    for service in list(backend.services.values()):
        if cluster_name is None or service.cluster_name == cluster_name:
            scale_in(backend, service)


def _add_zone(task):
    """The task's Availability Zone: its subnet's."""
    for attachment in task.attachments:
        details = attachment.get("details", [])
        subnet_id = next((d["value"] for d in details if d["name"] == "subnetId"), None)
        if subnet_id is None:
            continue
        ec2 = ec2_backends[task._account_id][task.region_name]
        task.availability_zone = ec2.get_subnet(subnet_id).availability_zone
        return


def _lifecycle(region):
    """The lifecycle settings in `region`."""
    return {
        **LIFECYCLE_DEFAULTS,
        "stop_seconds": SETTINGS["stop_seconds"],
        **LIFECYCLE_REGIONS.get(region, {}),
    }


def _iso(at):
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


CONTAINER_STATUS = {
    "PROVISIONING": "PENDING",
    "PENDING": "PENDING",
    "ACTIVATING": "PENDING",
    "RUNNING": "RUNNING",
    "DEACTIVATING": "RUNNING",
    "STOPPING": "RUNNING",
    "DEPROVISIONING": "STOPPED",
    "STOPPED": "STOPPED",
}


def _event_detail(task):
    """The detail of an "ECS Task State Change" event, as ECS sends it."""
    attachments = [
        {
            "id": a.get("id"),
            "type": "eni",
            "status": a.get("status"),
            "details": list(a.get("details", [])),
        }
        for a in task.attachments
    ]
    interfaces = [
        {
            "attachmentId": a.get("id"),
            **{
                key: d["value"]
                for d in a.get("details", [])
                for name, key in (
                    ("privateIPv4Address", "privateIpv4Address"),
                    ("privateIPv6Address", "ipv6Address"),
                )
                if d.get("name") == name
            },
        }
        for a in task.attachments
    ]
    containers = [
        {
            "containerArn": c.container_arn,
            "lastStatus": c.last_status,
            "name": c.name,
            "image": c.image,
            "taskArn": task.task_arn,
            "networkInterfaces": interfaces,
            "cpu": str(c.cpu or 0),
            **({"memory": str(c.memory)} if c.memory is not None else {}),
        }
        for c in task.containers
    ]
    detail = {
        "attachments": attachments,
        "clusterArn": task.cluster_arn,
        "containers": containers,
        "createdAt": _iso(task.created_at),
        "desiredStatus": task.desired_status,
        "group": task.group,
        "launchType": task.launch_type or "EC2",
        "lastStatus": task.last_status,
        "startedBy": task.started_by,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": _iso(task.updated_at),
        "version": task.version,
    }
    zone = getattr(task, "availability_zone", None)
    if zone:
        detail["availabilityZone"] = zone
    for key, attr in (
        ("pullStartedAt", "pull_started_at"),
        ("pullStoppedAt", "pull_stopped_at"),
        ("startedAt", "started_at"),
        ("stoppingAt", "stopping_at"),
        ("executionStoppedAt", "execution_stopped_at"),
        ("stoppedAt", "stopped_at"),
    ):
        at = getattr(task, attr, None)
        if at is not None:
            detail[key] = _iso(at)
    if task.desired_status == "STOPPED":
        detail["stopCode"] = getattr(task, "stop_code", None)
        detail["stoppedReason"] = task.stopped_reason
    return detail


def _changed(task, now):
    """One change of the task: its version counts it, and ECS sends the event."""
    task.version = getattr(task, "version", 0) + 1
    task.updated_at = now
    # Imported here: bus imports moto's events backend, which strict_ecs need not.
    import bus

    bus.emit(
        task.region_name,
        "aws.ecs",
        "ECS Task State Change",
        [task.task_arn],
        _event_detail(task),
        at=now.replace(tzinfo=dt.timezone.utc),
    )


def _enter(task, status, now):
    """The task enters `status` (a marker "FAIL" stops a task that fails to start)."""
    if status == "FAIL":
        _count_failure(task)
        stop(task, "Task failed to start", "TaskFailedToStart", now=now)
        return
    task.last_status = status
    for container in task.containers:
        container.last_status = CONTAINER_STATUS.get(status, container.last_status)
    if status == "PENDING":
        task.pull_started_at = now
    if status == "RUNNING":
        if getattr(task, "pull_started_at", None) is not None:
            task.pull_stopped_at = now
        task.started_at = now
    if status == "DEPROVISIONING":
        task.execution_stopped_at = now
    if status == "STOPPED":
        task.execution_stopped_at = getattr(task, "execution_stopped_at", None) or now
        task.stopped_at = now
    _changed(task, now)


def _plan(task, steps, now):
    """Schedules `steps` ((status, seconds it lasts or None for ever), ...):
    a state that lasts 0 is skipped, the first is entered now."""
    at = now
    plan = []
    for status, seconds in steps:
        if seconds is None or seconds > 0 or status in ("FAIL", "STOPPED"):
            plan.append((at, status))
        if seconds is None:
            break
        at = at + dt.timedelta(seconds=seconds)
    TRACKS[task.task_arn] = {"task": task, "plan": plan}
    _advance(task.task_arn, now)


def _advance(arn, now):
    track = TRACKS.get(arn)
    while track is not None and track["plan"] and track["plan"][0][0] <= now:
        _, status = track["plan"].pop(0)
        _enter(track["task"], status, now)
        track = TRACKS.get(arn)
    if track is not None and not track["plan"]:
        TRACKS.pop(arn, None)


def start(task):
    """A new task: PROVISIONING -> PENDING -> RUNNING (or failing, or sticking)."""
    now = utcnow()
    settings = _lifecycle(task.region_name)
    task.created_at = now
    task.version = 0
    mode = DEPLOYMENT_MODE.get(task.started_by)
    steps = [
        ("PROVISIONING", settings["provisioning_seconds"]),
        ("PENDING", None if mode == "stick" else settings["pending_seconds"]),
    ]
    if mode == "fail":
        steps.append(("FAIL", 0))
    elif mode != "stick":
        steps.append(("RUNNING", None))
    with LOCK:
        _plan(task, steps, now)


def stop(task, reason, code, now=None):
    """Tells a task to stop: desiredStatus STOPPED at once, then, from RUNNING,
    `stop_seconds` still RUNNING, STOPPING, DEPROVISIONING, STOPPED."""
    now = now or utcnow()
    with LOCK:
        if task.desired_status == "STOPPED":
            return
        settings = _lifecycle(task.region_name)
        TRACKS.pop(task.task_arn, None)
        task.desired_status = "STOPPED"
        task.stopping_at = now
        task.stop_code = code
        task.stopped_reason = reason
        steps = []
        if task.last_status == "RUNNING":
            steps.append(("RUNNING", settings["stop_seconds"]))
        steps += [
            ("STOPPING", settings["stopping_seconds"]),
            ("DEPROVISIONING", settings["deprovisioning_seconds"]),
            ("STOPPED", None),
        ]
        # The change of desired status is a change: ECS sends it.
        _changed(task, now)
        first = steps[0][0]
        if first == task.last_status:
            steps = steps[1:]
            at = now + dt.timedelta(seconds=settings["stop_seconds"])
        else:
            at = now
        plan = []
        for status, seconds in steps:
            if seconds is None or seconds > 0 or status == "STOPPED":
                plan.append((at, status))
            if seconds:
                at = at + dt.timedelta(seconds=seconds)
        TRACKS[task.task_arn] = {"task": task, "plan": plan}
        _advance(task.task_arn, now)


def _service_of(task):
    if not (task.group or "").startswith("service:"):
        return None
    backend = ecs_models.ecs_backends[task._account_id][task.region_name]
    return backend.services.get(f"{task.cluster_name}:{task.group[len('service:'):]}")


def _count_failure(task):
    service = _service_of(task)
    if service is None:
        return
    deployment = next((d for d in service.deployments if d["id"] == task.started_by), None)
    if deployment is not None:
        deployment["failedTasks"] = deployment.get("failedTasks", 0) + 1


def _count_tasks(service):
    """Running and pending counts, the service's and each deployment's, from its tasks."""
    backend = service._backend
    tasks = _service_tasks(backend, service)
    service.running_count = sum(t.last_status == "RUNNING" for t in tasks)
    service.pending_count = len(tasks) - service.running_count
    for deployment in service.deployments:
        mine = [t for t in tasks if t.started_by == deployment["id"]]
        deployment["runningCount"] = sum(t.last_status == "RUNNING" for t in mine)
        deployment["pendingCount"] = len(mine) - deployment["runningCount"]


def _stop_excess(tasks, excess, reason):
    free = [t for t in tasks if not _protected(t)]
    free.sort(key=lambda t: (t.created_at, t.task_arn), reverse=True)
    for task in free[: max(0, excess)]:
        stop(task, reason, "ServiceSchedulerInitiated")


def reconcile(backend, service):
    """ECS's service scheduler: the PRIMARY deployment's tasks at the desired
    count, and the replaced deployments' tasks stopped once they run."""
    if service.status != "ACTIVE" or not _lifecycle(service.region_name)["scheduler"]:
        return
    primary = _primary(service)
    if primary is None:
        return
    tasks = _service_tasks(backend, service)
    mine = [t for t in tasks if t.started_by == primary["id"]]
    others = [t for t in tasks if t.started_by != primary["id"]]
    reason = f"Scaling activity initiated by (deployment {primary['id']})"
    missing = service.desired_count - len(mine)
    if missing > 0 and primary.get("rolloutState") != "FAILED":
        definition = backend.describe_task_definition(primary["taskDefinition"])
        awsvpc = definition.network_mode == "awsvpc"
        # Tasks need container instances to run on EC2; without any, on Fargate.
        on_instances = service.launch_type in ("EC2", "EXTERNAL") and backend.container_instances.get(
            service.cluster_name
        )
        launch_type = service.launch_type if on_instances else "FARGATE"
        backend.run_task(
            service.cluster_name,
            primary["taskDefinition"],
            missing,
            None,
            primary["id"],
            None,
            launch_type,
            networking_configuration=service.network_configuration if awsvpc else None,
            group=f"service:{service.name}",
        )
    elif missing < 0:
        _stop_excess(mine, -missing, reason)
    running = sum(t.last_status == "RUNNING" for t in mine)
    if others and running >= service.desired_count:
        _stop_excess(others, len(others), reason)
    _count_tasks(service)


def tick():
    """Every state change that is due, and the scheduler's work."""
    with LOCK:
        now = utcnow()
        for arn in list(TRACKS):
            _advance(arn, now)
        for region, settings in list(LIFECYCLE_REGIONS.items()):
            if not {**LIFECYCLE_DEFAULTS, **settings}["scheduler"]:
                continue
            backend = ecs_models.ecs_backends[DEFAULT_ACCOUNT_ID][region]
            for service in list(backend.services.values()):
                settle(service)
                reconcile(backend, service)


def _ticker():
    while True:
        time.sleep(TICK_SECONDS)
        try:
            tick()
        except Exception:  # noqa: BLE001 - the next tick tries again
            pass


LIFECYCLE_KEYS = (
    "provisioning_seconds",
    "pending_seconds",
    "stop_seconds",
    "stopping_seconds",
    "deprovisioning_seconds",
)


def lifecycle_control(request, _query):
    """POST /_emulator/ecs-lifecycle: settings of a region (or every region's
    default), and how a service's next deployment goes."""
    region = request.get("region")
    with LOCK:
        if "next_deployment" in request:
            mode = request["next_deployment"]
            if mode not in (None, "fail", "stick"):
                raise ValueError(f"next_deployment {mode!r}: fail, stick or null")
            key = (region, request.get("cluster", "default"), request["service"])
            if mode is None:
                NEXT_DEPLOYMENT.pop(key, None)
            else:
                NEXT_DEPLOYMENT[key] = mode
        target = LIFECYCLE_REGIONS.setdefault(region, {}) if region else LIFECYCLE_DEFAULTS
        for key in LIFECYCLE_KEYS:
            if key in request:
                value = float(request[key])
                if value < 0:
                    raise ValueError(f"{key} must be 0 or more")
                target[key] = value
        if "scheduler" in request:
            target["scheduler"] = bool(request["scheduler"])
        answer = _lifecycle(region)
    if answer["scheduler"] and region:
        tick()
    return answer


def create_service_response(self):
    """CreateService, keeping the deploymentConfiguration moto drops."""
    answer = ORIGINAL_CREATE_SERVICE_RESPONSE(self)
    config = self._get_param("deploymentConfiguration")
    if config is not None:
        service = self.ecs_backend._get_service(
            self._get_param("cluster", "default"), self._get_param("serviceName")
        )
        service.deployment_configuration = config
    return answer


ORIGINAL_CREATE_SERVICE_RESPONSE = ecs_responses.EC2ContainerServiceResponse.create_service


def install():
    """Patches moto's ECS backend."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10**12}
    )
    backend = ecs_models.EC2ContainerServiceBackend

    original_tag = backend.tag_resource

    def tag_resource(self, arn, tags):
        parsed = self._parse_resource_arn(arn)
        resource = self._get_resource(arn, parsed)
        check_tags(
            [{"key": k, "value": v} for k, v in tags.items()],
            existing=[t["key"] for t in (resource.tags or [])],
        )
        return original_tag(self, arn, tags)

    original_create = backend.create_service

    def create_service(self, *args, **kwargs):
        check_tags(kwargs.get("tags"))
        with LOCK:
            service = original_create(self, *args, **kwargs)
            service.deployments = []
            start_deployment(service)
            reconcile(self, service)
            return service

    original_update = backend.update_service

    def update_service(self, properties):
        with LOCK:
            cluster = properties.get("cluster", "default")
            name = properties.get("service", "").split("/")[-1]
            before = self._get_service(cluster, name)
            old_definition = before.task_definition
            force = properties.get("force_new_deployment", False)
            service = original_update(self, properties)
            settle(service)
            scale_in(self, service)
            if force or service.task_definition != old_definition:
                start_deployment(service)
            reconcile(self, service)
            settle(service)
            return service

    original_describe = backend.describe_services

    def describe_services(self, cluster_str, names):
        if len(names) > DESCRIBE_SERVICES_LIMIT:
            raise InvalidParameterException("services can have at most 10 items.")
        with LOCK:
            services, failures = original_describe(self, cluster_str, names)
            tick()
            for service in services:
                settle(service)
                scale_in(self, service)
                reconcile(self, service)
            return services, failures

    original_stop = backend.stop_task

    def stop_task(self, cluster_str, task_str, reason):
        cluster = self._get_cluster(cluster_str)
        before = _find_task(self, cluster, task_str)
        state = (before.last_status, before.desired_status) if before else None
        task = original_stop(self, cluster_str, task_str, reason)
        if state is not None:
            # moto stops it at once; ECS goes through the stop lifecycle.
            task.last_status, task.desired_status = state
            stop(task, reason, "UserInitiated")
        return task

    backend.stop_task = stop_task
    backend.tag_resource = tag_resource
    backend.create_service = create_service
    backend.update_service = update_service
    backend.describe_services = describe_services
    ecs_responses.EC2ContainerServiceResponse.list_tasks = list_tasks_response
    ecs_responses.EC2ContainerServiceResponse.describe_tasks = describe_tasks_response
    ecs_responses.EC2ContainerServiceResponse.update_task_protection = (
        update_task_protection_response
    )
    ecs_responses.EC2ContainerServiceResponse.get_task_protection = get_task_protection_response

    original_task_init = ecs_models.Task.__init__

    def task_init(self, *args, **kwargs):
        original_task_init(self, *args, **kwargs)
        _add_ipv6(self)
        _add_zone(self)
        for container in self.containers:
            # moto names the task definition here; ECS names the task.
            container.task_arn = self.task_arn
        start(self)

    ecs_models.Task.__init__ = task_init
    ecs_responses.EC2ContainerServiceResponse.create_service = create_service_response
    # Imported here: faults imports this module.
    import faults

    faults.register_control("POST", "ecs-lifecycle", lifecycle_control)
    threading.Thread(target=_ticker, name="ecs-lifecycle", daemon=True).start()

