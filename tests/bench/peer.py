"""The functions as a user would otherwise write them: Python and boto3.

`make bench` runs this beside the Rust functions, against the same emulator and
the same documents, for comparison only. It is deliberately plain: what one
would write in an afternoon, with boto3's defaults. The loop at the bottom
stands in for the Lambda Python runtime (it speaks the same runtime API), so
the process start to the first `next` request covers the interpreter, the
imports and the clients, as a Python cold start does.

    python peer.py scaler|registrar|probe|drill
"""

import concurrent.futures
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request

import boto3

FUNCTION = sys.argv[1]
# The clients a function uses, made at import as a Lambda module makes them.
ecs = boto3.client("ecs") if FUNCTION in ("scaler", "registrar", "drill") else None
cloudwatch = boto3.client("cloudwatch") if FUNCTION in ("scaler", "probe") else None
elbv2 = boto3.client("elbv2") if FUNCTION in ("registrar", "drill") else None


def scaler(event):
    """Step scaling on an alarm state change, as Application Auto Scaling does."""
    policies = json.loads(os.environ["SCALER_POLICIES"])["policies"]
    detail = event["detail"]
    name = detail["alarmName"]
    if detail["state"]["value"] != "ALARM":
        return {"ignored": f"{name} is {detail['state']['value']}"}
    policy = next(p for p in policies if p.get("alarm") == name)
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    if alarm["StateValue"] != "ALARM":
        return {"ignored": f"{name} is no longer in ALARM"}
    now = datetime.datetime.now(datetime.timezone.utc)
    period = alarm["Period"]
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": alarm["Namespace"],
                        "MetricName": alarm["MetricName"],
                        "Dimensions": alarm["Dimensions"],
                    },
                    "Period": period,
                    "Stat": alarm["Statistic"],
                },
            }
        ],
        StartTime=now - datetime.timedelta(seconds=period * (alarm["EvaluationPeriods"] + 1)),
        EndTime=now + datetime.timedelta(seconds=period),
    )
    values = data["MetricDataResults"][0]["Values"]
    breach = (values[0] if values else alarm["Threshold"]) - alarm["Threshold"]
    adjustment = 0
    for step in policy["steps"]:
        lower = step.get("metric_interval_lower_bound", float("-inf"))
        upper = step.get("metric_interval_upper_bound", float("inf"))
        if lower <= breach < upper:
            adjustment = step["scaling_adjustment"]
    service = ecs.describe_services(cluster=policy["cluster"], services=[policy["service"]])
    desired = service["services"][0]["desiredCount"]
    wanted = max(policy["min_capacity"], min(policy["max_capacity"], desired + adjustment))
    if wanted != desired:
        ecs.update_service(cluster=policy["cluster"], service=policy["service"], desiredCount=wanted)
    return {"service": policy["service"], "from": desired, "to": wanted}


def registrar(event):
    """Registers every running task's IP in its target group, removes the rest."""
    config = json.loads(os.environ["REGISTRAR_CONFIG"])
    changes = []
    for binding in config["services"]:
        arns = []
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=binding["cluster"], serviceName=binding["service"], desiredStatus="RUNNING"
        ):
            arns.extend(page["taskArns"])
        ips = set()
        for i in range(0, len(arns), 100):
            tasks = ecs.describe_tasks(cluster=binding["cluster"], tasks=arns[i : i + 100])["tasks"]
            for task in tasks:
                for attachment in task.get("attachments", []):
                    for detail in attachment.get("details", []):
                        if detail["name"] == "privateIPv4Address":
                            ips.add(detail["value"])
        for group in binding["target_groups"]:
            arn, port = group["target_group_arn"], group["port"]
            health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            registered = {t["Target"]["Id"] for t in health if t["Target"].get("Port") == port}
            missing = sorted(ips - registered)
            extra = sorted(registered - ips)
            for i in range(0, len(missing), 200):
                batch = [{"Id": ip, "Port": port} for ip in missing[i : i + 200]]
                elbv2.register_targets(TargetGroupArn=arn, Targets=batch)
            for i in range(0, len(extra), 200):
                batch = [{"Id": ip, "Port": port} for ip in extra[i : i + 200]]
                elbv2.deregister_targets(TargetGroupArn=arn, Targets=batch)
            changes.append({"group": arn, "registered": len(missing), "deregistered": len(extra)})
    return {"changes": changes}


def check(spec):
    started = time.monotonic()
    try:
        request = urllib.request.Request(spec["url"], method=spec.get("method", "GET"))
        with urllib.request.urlopen(request, timeout=spec.get("timeout_ms", 5000) / 1000) as answer:
            answer.read(256 * 1024)
            ok = answer.status in spec.get("expected_status", [200])
    except (urllib.error.URLError, OSError):
        ok = False
    return spec["name"], ok, (time.monotonic() - started) * 1000


def probe(event):
    """Checks every endpoint in threads and publishes success and latency."""
    config = json.loads(os.environ["PROBE_CONFIG"])
    checks = config["checks"]
    workers = min(len(checks), 256) or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(check, checks))
    data = []
    for name, ok, latency in results:
        dimensions = [{"Name": "Check", "Value": name}]
        data.append({"MetricName": "CheckSuccess", "Dimensions": dimensions, "Value": float(ok)})
        data.append(
            {"MetricName": "CheckLatency", "Dimensions": dimensions, "Value": latency, "Unit": "Milliseconds"}
        )
    for i in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace=config["namespace"], MetricData=data[i : i + 1000])
    return {"checks": len(results), "failed": sum(1 for _, ok, _ in results if not ok)}


def drill(event):
    """Plans a drill that stops a share of a service's tasks: lock, steady state, plan."""
    drills = {d["name"]: d for d in json.loads(os.environ["DRILLS"])["drills"]}
    spec = drills[event["drill"]]
    cluster, name = spec["cluster"], spec["service"]
    service = ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"][0]
    if any(tag["key"] == "ecs-drill:lock" for tag in service.get("tags", [])):
        return {"outcome": "refused", "why": "another drill holds the service"}
    arns = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, serviceName=name):
        arns.extend(page["taskArns"])
    running = 0
    for i in range(0, len(arns), 100):
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
        running += sum(1 for task in tasks if task["lastStatus"] == "RUNNING")
    state = spec.get("steady_state", {})
    broken = []
    if state.get("running_equals_desired", True) and running != service["desiredCount"]:
        broken.append(f"running {running}, desired {service['desiredCount']}")
    for floor in state.get("target_groups", []):
        health = elbv2.describe_target_health(TargetGroupArn=floor["target_group_arn"])
        healthy = sum(1 for t in health["TargetHealthDescriptions"] if t["TargetHealth"]["State"] == "healthy")
        if healthy < floor["min_healthy"]:
            broken.append(f"{healthy} healthy targets, fewer than {floor['min_healthy']}")
    if broken:
        return {"outcome": "refused", "why": "; ".join(broken)}
    stop = max(1, running * spec["kind"]["percent"] // 100)
    return {"outcome": "planned", "stop_tasks": stop, "of": running}


HANDLERS = {"scaler": scaler, "registrar": registrar, "probe": probe, "drill": drill}


def main():
    handler = HANDLERS[FUNCTION]
    api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
    while True:
        with urllib.request.urlopen(f"{api}/invocation/next") as invocation:
            request_id = invocation.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.load(invocation)
        try:
            body, outcome = json.dumps(handler(event)).encode(), "response"
        except Exception as error:  # reported to the runtime API, as Lambda does
            body = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
            outcome = "error"
        urllib.request.urlopen(
            urllib.request.Request(f"{api}/invocation/{request_id}/{outcome}", data=body, method="POST")
        ).close()


if __name__ == "__main__":
    main()
