"""Writes the documents folder of a fleet of N services, as a team would keep
it: two step policies, one target group and one probe check a service, and a
drill for every tenth. Used by the deploy tests (at 1 and 300 services) and by
the deploy rehearsal.

    fleet_documents.py --services 300 --out DIR [--architecture x86_64]
"""

import argparse
import json
import pathlib

ACCOUNT = "111122223333"
REGION = "eu-west-1"
CLUSTER = "prod"


def group_arn(i):
    return f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/prod-svc{i:03d}/{i:016x}"


def documents(services, architecture):
    names = [f"svc{i:03d}" for i in range(services)]
    policies, bindings, checks, drills = [], [], [], []
    for i, name in enumerate(names):
        policies.append({
            "alarm": f"prod-{name}-cpu-high", "cluster": CLUSTER, "service": name,
            "adjustment_type": "ChangeInCapacity",
            "steps": [{"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 15, "scaling_adjustment": 1},
                      {"metric_interval_lower_bound": 15, "scaling_adjustment": 3}],
            "min_capacity": 2, "max_capacity": 40,
            "scale_out_cooldown_seconds": 60, "scale_in_cooldown_seconds": 300,
        })
        policies.append({
            "alarm": f"prod-{name}-cpu-low", "cluster": CLUSTER, "service": name,
            "adjustment_type": "PercentChangeInCapacity",
            "steps": [{"metric_interval_upper_bound": 0, "scaling_adjustment": -25}],
            "min_adjustment_magnitude": 1, "min_capacity": 2, "max_capacity": 40,
            "scale_out_cooldown_seconds": 60, "scale_in_cooldown_seconds": 300,
        })
        bindings.append({"cluster": CLUSTER, "service": name,
                         "target_groups": [{"target_group_arn": group_arn(i), "port": 8080}]})
        checks.append({"name": f"{name}-health", "url": f"https://{name}.prod.example.net/health",
                       "expected_status": [200], "timeout_ms": 2000})
        if i % 10 == 0:
            drills.append({
                "name": f"stop-a-tenth-of-{name}", "cluster": CLUSTER, "service": name,
                "kind": {"type": "stop_tasks", "percent": 10},
                "steady_state": {"running_equals_desired": True,
                                 "target_groups": [{"target_group_arn": group_arn(i), "min_healthy": 2}]},
                "abort_alarms": [f"prod-{name}-5xx-high"],
                "max_duration_seconds": 600, "poll_seconds": 10, "rollback": "always",
            })
    return {
        "scaler-policies.json": {"policies": policies},
        "registrar-config.json": {"services": bindings, "initial_grace_seconds": 300},
        "probe-config.json": {"namespace": "Prod/Probe", "checks": checks},
        "drills.json": {"drills": drills},
        "stack.json": {
            "stack_name": "prod-ecs-control", "region": REGION, "architecture": architecture,
            "parameters": {"ManagedClusterName": CLUSTER, "AlarmNamePrefix": "prod-",
                           "TargetGroupNamePrefix": "prod-", "ProbeAlarmCheckName": f"{names[0]}-health",
                           "AlertEmail": "oncall@prod.example.net"},
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--architecture", default="x86_64")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, document in documents(args.services, args.architecture).items():
        (out / name).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
