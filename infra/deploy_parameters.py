"""Prints the `--parameter-overrides` for `sam deploy` that come from the
documents in this folder, so each fact has one source: the registrar's target
groups (RegistrarTargetGroupArns, which scopes its IAM policy) are derived from
its document, and the alarms and target groups drills may touch from the drill
document, rather than kept by hand.

    sam deploy --parameter-overrides $(python3 infra/deploy_parameters.py) \
        ManagedClusterName=prod AlarmNamePrefix=prod- ProbeAlarmCheckName=web-health
"""

import json
import pathlib
import shlex
import sys

HERE = pathlib.Path(__file__).resolve().parent


def document(name):
    path = HERE / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: {e}")


def main():
    scaler = document(sys.argv[1] if len(sys.argv) > 1 else "scaler-policies.json")
    registrar = document(sys.argv[2] if len(sys.argv) > 2 else "registrar-config.json")
    probe = document(sys.argv[3] if len(sys.argv) > 3 else "probe-config.json")
    drills = document(sys.argv[4] if len(sys.argv) > 4 else "drills.json")
    groups = []
    for service in registrar.get("services", []):
        for group in service.get("target_groups", []):
            if group["target_group_arn"] not in groups:
                groups.append(group["target_group_arn"])
    # What drills may touch is derived from the drill document too.
    alarms, drained = [], []
    for drill in drills.get("drills", []):
        kind = drill.get("kind", {})
        if kind.get("type") == "alarm" and kind["alarm"] not in alarms:
            alarms.append(kind["alarm"])
        if kind.get("type") == "drain_target" and kind["target_group_arn"] not in drained:
            drained.append(kind["target_group_arn"])
    compact = lambda d: json.dumps(d, separators=(",", ":"))
    overrides = {
        "ScalerPolicies": compact(scaler),
        "RegistrarConfig": compact(registrar),
        "RegistrarTargetGroupArns": ",".join(groups),
        "ProbeConfig": compact(probe),
        "ProbeNamespace": probe.get("namespace", "EcsControl/Probe"),
        "DrillsDocument": compact(drills),
        "DrillAlarmNames": ",".join(alarms) or "-",
        "DrillTargetGroupArns": ",".join(drained) or "-",
    }
    print(" ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()))


if __name__ == "__main__":
    main()
