"""EventBridge delivery of the events AWS services emit on their own.

CloudWatch emits "CloudWatch Alarm State Change" and ECS "ECS Task State
Change" to the account's default event bus. `emit` does the same here: the
event goes through moto's EventBridge, so a rule with an SQS target receives
it, and into a log a test reads over the control API:

    GET    /_emulator/events?source=aws.ecs&detail_type=...&since=<index>
           ({"events": [<envelope>, ...], "next": <index>})
    DELETE /_emulator/events   (forgets the log)
"""

import datetime as dt
import json
import threading
import uuid

from moto.core import DEFAULT_ACCOUNT_ID
from moto.events.models import events_backends

LOCK = threading.RLock()
LOG = []


def _iso(at):
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(region, source, detail_type, resources, detail, at=None):
    """Puts one event on `region`'s default bus and in the log; returns its envelope."""
    at = at or dt.datetime.now(dt.timezone.utc)
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": DEFAULT_ACCOUNT_ID,
        "time": _iso(at),
        "region": region,
        "resources": list(resources),
        "detail": detail,
    }
    with LOCK:
        LOG.append(envelope)
    backend = events_backends[DEFAULT_ACCOUNT_ID][region]
    backend.put_events(
        [
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Resources": list(resources),
                "Time": at.timestamp(),
            }
        ]
    )
    return envelope


def logged(source=None, detail_type=None, since=0):
    with LOCK:
        events = LOG[since:]
        following = len(LOG)
    chosen = [
        e
        for e in events
        if (source is None or e["source"] == source)
        and (detail_type is None or e["detail-type"] == detail_type)
    ]
    return {"events": chosen, "next": following}


def forget():
    with LOCK:
        LOG.clear()
