"""ECS as strict as AWS where the functions depend on it.

- Tags follow ECS's rules: key 1-128 characters, value at most 256, both from
  `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, no `aws:` prefix, at most 50 a resource;
  anything else is an InvalidParameterException, as ECS answers.
- Deployments finish: a service's deployment is IN_PROGRESS for a set time
  (`--deployment-seconds`), then COMPLETED, and the deployments it replaced
  go away. A new task definition (or forceNewDeployment) starts a new
  deployment; a desired-count change alone does not.
- Tasks stay RUNNING until stopped (moto advances them one state per read).
"""

import datetime as dt
import threading
import unicodedata

from moto.core.utils import utcnow
from moto.ecs import models as ecs_models
from moto.ecs.exceptions import InvalidParameterException
from moto.moto_api import state_manager
from moto.moto_api._internal import mock_random

TAG_KEY_LIMIT = 128
TAG_VALUE_LIMIT = 256
TAGS_PER_RESOURCE = 50
TAG_PUNCTUATION = set("_.:/=+-@")
LOCK = threading.RLock()
SETTINGS = {"deployment_seconds": 5.0}
# Deployment id -> when its rollout completes.
COMPLETES_AT = {}


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
        return
    for old in service.deployments:
        old["status"] = "ACTIVE"
    deployment = _deployment(service)
    COMPLETES_AT[deployment["id"]] = deployment["createdAt"] + dt.timedelta(
        seconds=SETTINGS["deployment_seconds"]
    )
    service.deployments = [deployment] + list(service.deployments)


def settle(service):
    """Completes deployments whose time has come."""
    now = utcnow()
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is not None:
        primary["desiredCount"] = service.desired_count
        primary["runningCount"] = service.running_count
        due = COMPLETES_AT.get(primary["id"])
        if primary.get("rolloutState") == "IN_PROGRESS" and due is not None and now >= due:
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
            primary["updatedAt"] = now
            service.deployments = [primary]


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
            if force or service.task_definition != old_definition:
                start_deployment(service)
            return service

    original_describe = backend.describe_services

    def describe_services(self, cluster_str, names):
        with LOCK:
            services, failures = original_describe(self, cluster_str, names)
            for service in services:
                settle(service)
            return services, failures

    backend.tag_resource = tag_resource
    backend.create_service = create_service
    backend.update_service = update_service
    backend.describe_services = describe_services

