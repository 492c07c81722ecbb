"""Request rates as AWS enforces them, and a set latency on every call.

AWS throttles each account's API requests per Region with token buckets: a
bucket holds at most its capacity (the burst), every request takes one token,
and a set number of tokens is added back every second (the sustained rate)
until the bucket is full again. A request that finds the bucket empty is
refused with HTTP 400 and the service's throttling code (ECS
`ThrottlingException`, ELBv2 and CloudWatch `Throttling`).

Both are off by default, so tests keep their timing. `emulator.py --rates aws
--latency-ms 30` turns them on at start; `POST /_emulator/rates
{"rates": "aws" | "off", "latency_ms": 30}` at any time (every bucket is full
again, and its seconds count from its next call); `GET /_emulator/rates`
tells the settings and how many calls of each operation were refused.

Refill is whole tokens each whole second since the bucket started, as the
ECS and ELB pages describe it: a burst of the bucket's capacity succeeds, the
next call in the same second is refused, and one second later exactly the
refill's worth of calls succeeds again.

For tests that must not depend on how fast the machine is, the buckets can
keep a manual clock: `{"clock": "manual"}` stops their time, and
`{"advance_seconds": 1}` moves it on (`{"clock": "real"}` goes back).
"""

import math
import threading
import time

# (service signing name, family) -> (bucket capacity, tokens added a second, operations)
AWS_RATES = {
    # Request throttling for the Amazon ECS API, "Throttling quotas" table
    # (docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html):
    # bucket maximum capacity (burst) and bucket refill rate (sustained), per
    # account and Region, for every Region.
    ("ecs", "cluster-modify"): (
        20,
        1,
        ("CreateCluster", "DeleteCluster", "PutClusterCapacityProviders", "UpdateCluster",
         "UpdateClusterSettings"),
    ),
    ("ecs", "cluster-read"): (50, 20, ("DescribeClusters", "ListClusters")),
    ("ecs", "task-definition-modify"): (
        20,
        1,
        ("DeregisterTaskDefinition", "RegisterTaskDefinition"),
    ),
    ("ecs", "task-definition-read"): (
        50,
        20,
        ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"),
    ),
    ("ecs", "tag-modify"): (20, 10, ("TagResource", "UntagResource")),
    ("ecs", "tag-read"): (50, 20, ("ListTagsForResource",)),
    ("ecs", "cluster-resource-modify"): (
        100,
        40,
        ("DeleteAttributes", "DeregisterContainerInstance", "ExecuteCommand", "PutAttributes",
         "RunTask", "StartTask", "StopTask", "UpdateContainerAgent",
         "UpdateContainerInstancesStates"),
    ),
    ("ecs", "cluster-resource-read"): (
        100,
        20,
        ("DescribeContainerInstances", "DescribeTasks", "ListAttributes",
         "ListContainerInstances", "ListTasks"),
    ),
    ("ecs", "service-modify"): (50, 5, ("CreateService", "DeleteService", "UpdateService")),
    ("ecs", "service-read"): (100, 20, ("DescribeServices", "ListServices")),
    ("ecs", "task-protection"): (200, 80, ("UpdateTaskProtection", "GetTaskProtection")),
    # Request throttling for the ELB API
    # (docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html):
    # "the token bucket size for non-mutating API actions is 40 tokens ... a
    # refill rate of 10 tokens per second", ELB API version 2 with its own
    # buckets. The `Describe*` family is every ELBv2 operation starting with
    # Describe (matched by prefix below).
    ("elasticloadbalancing", "describe"): (40, 10, ()),
    # The same page's table of mutating actions could not be read here; target
    # registration is given the non-mutating bucket, an assumption to replace
    # with the page's figure.
    ("elasticloadbalancing", "targets"): (40, 10, ("RegisterTargets", "DeregisterTargets")),
    # CloudWatch service quotas
    # (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html):
    # transactions per second per account and Region, adjustable: PutMetricData
    # 500, GetMetricData 50, DescribeAlarms 9. A TPS quota is a bucket of one
    # second's worth, refilled each second.
    ("monitoring", "put-metric-data"): (500, 500, ("PutMetricData",)),
    ("monitoring", "get-metric-data"): (50, 50, ("GetMetricData",)),
    ("monitoring", "describe-alarms"): (9, 9, ("DescribeAlarms",)),
}


def family_of(service, operation):
    """The (service, family) whose bucket `operation` takes from, or None."""
    for key, (_, _, operations) in AWS_RATES.items():
        if key[0] == service and operation in operations:
            return key
    if service == "elasticloadbalancing" and operation.startswith("Describe"):
        return ("elasticloadbalancing", "describe")
    return None


class Bucket:
    def __init__(self, capacity, refill, now):
        self.capacity = capacity
        self.refill = refill
        self.tokens = float(capacity)
        self.started = now
        self.seconds_refilled = 0

    def take(self, now):
        seconds = math.floor(now - self.started)
        if seconds > self.seconds_refilled:
            added = (seconds - self.seconds_refilled) * self.refill
            self.tokens = min(float(self.capacity), self.tokens + added)
            self.seconds_refilled = seconds
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Rates:
    """Token buckets per account (one here), Region and API family."""

    def __init__(self):
        self.lock = threading.Lock()
        self.enforced = False
        self.latency_ms = 0.0
        self.buckets = {}
        self.throttled = {}
        # None: the real monotonic clock; else the manual clock's reading.
        self.manual_now = None

    def now(self):
        return time.monotonic() if self.manual_now is None else self.manual_now

    def configure(self, rates=None, latency_ms=None, clock=None, advance_seconds=None):
        with self.lock:
            if advance_seconds is not None:
                if self.manual_now is None:
                    raise ValueError("advance_seconds needs the manual clock")
                self.manual_now += float(advance_seconds)
                return self.describe_locked()
            if clock is not None:
                if clock not in ("real", "manual"):
                    raise ValueError(f"clock must be 'real' or 'manual', not {clock!r}")
                self.manual_now = None if clock == "real" else 0.0
            if rates is not None:
                if rates not in ("aws", "off"):
                    raise ValueError(f"rates must be 'aws' or 'off', not {rates!r}")
                self.enforced = rates == "aws"
            if latency_ms is not None:
                latency = float(latency_ms)
                if not 0 <= latency <= 60_000:
                    raise ValueError("latency_ms must be between 0 and 60000")
                self.latency_ms = latency
            self.buckets.clear()
            self.throttled.clear()
            return self.describe_locked()

    def describe(self):
        with self.lock:
            return self.describe_locked()

    def describe_locked(self):
        return {
            "rates": "aws" if self.enforced else "off",
            "latency_ms": self.latency_ms,
            "clock": "real" if self.manual_now is None else "manual",
            "throttled": dict(self.throttled),
        }

    def admit(self, service, operation, region):
        """Sleeps the set latency; False when the call's bucket is empty."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        if not self.enforced:
            return True
        family = family_of(service, operation)
        if family is None:
            return True
        capacity, refill, _ = AWS_RATES[family]
        with self.lock:
            now = self.now()
            key = (region, family)
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = Bucket(capacity, refill, now)
            if bucket.take(now):
                return True
            name = f"{region}/{operation}"
            self.throttled[name] = self.throttled.get(name, 0) + 1
            return False
