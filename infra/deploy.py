"""Deploys the stack from one folder of documents: `make deploy DOCUMENTS=<folder>`.

The folder holds the four documents and the stack's few plain settings:

    scaler-policies.json  registrar-config.json  probe-config.json  drills.json
    stack.json            {"stack_name", "region", "architecture", "parameters": {...}}

Commands (run with the Python in .venv, which has the SAM CLI):

    deploy.py check  FOLDER            the checks alone; prints each problem with its file
    deploy.py render FOLDER            what a deploy sends, as JSON: parameters, each
                                       function's environment and IAM policies, sizes
    deploy.py deploy FOLDER [--yes] [--skip-build] [-- SAM-DEPLOY-ARGS...]
                                       check, stage the documents layer, sam build, sam deploy

The documents travel in a Lambda layer (/opt/ecs-control/<name>.json), never in
parameters or environment variables, so nothing here grows with the fleet but
the layer. Parameters are passed to SAM as separate arguments, never through a
shell, and each value is checked to be one plain word first.
"""

import argparse
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

INFRA = pathlib.Path(__file__).resolve().parent
ROOT = INFRA.parent
TEMPLATE = INFRA / "template.yaml"
STAGE = ROOT / "target" / "deploy" / "documents"
LAYER_FOLDER = "ecs-control"
DOCUMENTS = ("scaler-policies.json", "registrar-config.json", "probe-config.json", "drills.json")
SETTINGS = "stack.json"
# The samples' placeholders: a deploy with them would fail at the first cold start.
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_CLUSTER = "demo"
# AWS's limits on what a deploy sends (CloudFormation, Lambda and IAM quotas).
PARAMETER_VALUE_LIMIT = 4096
ENVIRONMENT_LIMIT = 4096
ROLE_INLINE_POLICIES_LIMIT = 10240
# sam deploy uploads the template to S3 (--resolve-s3), where CloudFormation
# takes up to 1 MB; 51,200 bytes is the limit of a template passed inline.
TEMPLATE_BODY_LIMIT = 51200
TEMPLATE_S3_LIMIT = 1024 * 1024
ARCHITECTURES = ("arm64", "x86_64")


class Problem(Exception):
    """A mistake in the folder, with the file to edit."""


def fail(where, message):
    raise Problem(f"{where}: {message}")


def template_parameters():
    """The template's parameter names, read from its Parameters section."""
    names, inside = [], False
    for line in TEMPLATE.read_text().splitlines():
        if line == "Parameters:":
            inside = True
        elif inside and re.match(r"^\S", line):
            break
        elif inside and (m := re.match(r"^  (\w+):$", line)):
            names.append(m.group(1))
    return names


def read_json(path):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        fail(path, f"cannot read it ({e.strerror}); the folder needs {', '.join(DOCUMENTS + (SETTINGS,))}")
    except ValueError as e:
        fail(path, f"not JSON: {e}")


class Fleet:
    """One documents folder, read and checked."""

    def __init__(self, folder):
        self.folder = pathlib.Path(folder).resolve()
        if not self.folder.is_dir():
            fail(folder, "not a folder: give the folder holding your documents")
        self.raw = {name: (self.folder / name).read_bytes() if (self.folder / name).is_file() else None
                    for name in DOCUMENTS + (SETTINGS,)}
        self.docs = {name: read_json(self.folder / name) for name in DOCUMENTS}
        self.settings = read_json(self.folder / SETTINGS)

    def where(self, name):
        return self.folder / name

    def check(self):
        """Every problem found, each naming its file; empty when the folder deploys."""
        problems = []
        for check in (self._placeholders, self._settings, self._agreement):
            try:
                check()
            except Problem as e:
                problems.append(str(e))
        return problems

    # -- the checks -----------------------------------------------------------

    def _placeholders(self):
        sample = "copy the samples (cp infra/*.json my-fleet/) and write your own account's values there"
        for name in DOCUMENTS + (SETTINGS,):
            text = (self.raw[name] or b"").decode("utf-8", "replace")
            if f":{PLACEHOLDER_ACCOUNT}:" in text:
                fail(self.where(name), f"names account {PLACEHOLDER_ACCOUNT}, the samples' placeholder: {sample}")
        for name, path, value in self._clusters():
            if value == PLACEHOLDER_CLUSTER:
                fail(self.where(name), f"{path} is cluster {PLACEHOLDER_CLUSTER!r}, the samples' placeholder: {sample}")

    def _clusters(self):
        """(file, field path, cluster) for every cluster a document or the settings name."""
        found = [(SETTINGS, "parameters.ManagedClusterName",
                  self.settings.get("parameters", {}).get("ManagedClusterName"))]
        for i, p in enumerate(self.docs["scaler-policies.json"].get("policies", [])):
            found.append(("scaler-policies.json", f"policies[{i}].cluster", p.get("cluster")))
        for key in ("target_tracking", "windows", "budgets", "paces"):
            for i, p in enumerate(self.docs["scaler-policies.json"].get(key, []) or []):
                if isinstance(p, dict) and "cluster" in p:
                    found.append(("scaler-policies.json", f"{key}[{i}].cluster", p.get("cluster")))
        for i, s in enumerate(self.docs["registrar-config.json"].get("services", [])):
            found.append(("registrar-config.json", f"services[{i}].cluster", s.get("cluster")))
        for i, d in enumerate(self.docs["drills.json"].get("drills", [])):
            found.append(("drills.json", f"drills[{i}].cluster", d.get("cluster")))
        return found

    def _settings(self):
        s = self.settings
        known = {"stack_name", "region", "architecture", "parameters"}
        for key in s:
            if key not in known:
                fail(self.where(SETTINGS), f"unknown setting {key!r}; known: {', '.join(sorted(known))}")
        for key in ("stack_name", "region"):
            if not isinstance(s.get(key), str) or not s[key]:
                fail(self.where(SETTINGS), f"{key} is required (a string)")
        # The FIFO queues are named <stack>-registrar-dlq.fifo, at most 80 characters.
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,47}", s["stack_name"]):
            fail(self.where(SETTINGS), f"stack_name {s['stack_name']!r} is not a stack name of at most "
                 "48 letters, digits and hyphens, starting with a letter")
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", s["region"]):
            fail(self.where(SETTINGS), f"region {s['region']!r} is not a Region name such as eu-west-1")
        if s.get("architecture", "arm64") not in ARCHITECTURES:
            fail(self.where(SETTINGS), f"architecture must be one of {ARCHITECTURES}")
        params = s.get("parameters")
        if not isinstance(params, dict):
            fail(self.where(SETTINGS), "parameters is required: an object of template parameters")
        names = template_parameters()
        for required in ("ManagedClusterName", "AlarmNamePrefix", "TargetGroupNamePrefix", "ProbeAlarmCheckName"):
            if not params.get(required):
                fail(self.where(SETTINGS), f"parameters.{required} is required")
        # Paging by default: every alarm of the stack notifies someone.
        if not params.get("AlertTopicArn") and not params.get("AlertEmail"):
            fail(self.where(SETTINGS), "set parameters.AlertEmail (an address to page) or "
                 "parameters.AlertTopicArn (an SNS topic): every alarm of the stack notifies it")
        for key, value in params.items():
            if key not in names:
                fail(self.where(SETTINGS), f"parameters.{key} is not a template parameter")
            if key in ("Architecture", "ProbeNamespace"):
                fail(self.where(SETTINGS), f"parameters.{key} is derived (architecture from "
                     "'architecture', the namespace from probe-config.json); remove it")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                fail(self.where(SETTINGS), f"parameters.{key} must be a string or a number")
            text = str(value)
            # One plain word: SAM's --parameter-overrides splits on spaces and
            # keeps quotes, so such a value could not arrive intact.
            if re.search(r"[\s\"'\\]", text):
                fail(self.where(SETTINGS), f"parameters.{key} holds a space, quote or backslash, "
                     "which a parameter cannot carry intact; documents belong in their files")
            if len(text.encode()) > PARAMETER_VALUE_LIMIT:
                fail(self.where(SETTINGS), f"parameters.{key} is over {PARAMETER_VALUE_LIMIT} bytes")

    def _agreement(self):
        params = self.settings["parameters"]
        cluster = params["ManagedClusterName"]
        for name, path, value in self._clusters()[1:]:
            if value != cluster:
                fail(self.where(name), f"{path} is {value!r}, but the stack manages cluster {cluster!r} "
                     f"(stack.json parameters.ManagedClusterName)")
        alarm_prefix = params["AlarmNamePrefix"]
        for i, p in enumerate(self.docs["scaler-policies.json"].get("policies", [])):
            if not str(p.get("alarm", "")).startswith(alarm_prefix):
                fail(self.where("scaler-policies.json"),
                     f"policies[{i}].alarm {p.get('alarm')!r} does not start with AlarmNamePrefix {alarm_prefix!r}")
        group_prefix = params["TargetGroupNamePrefix"]

        def group_covered(file, path, arn):
            m = re.fullmatch(r"arn:[\w-]+:elasticloadbalancing:[\w-]+:\d{12}:targetgroup/([^/]+)/[^/]+", str(arn))
            if not m:
                fail(self.where(file), f"{path} {arn!r} is not a target group ARN")
            if not m.group(1).startswith(group_prefix):
                fail(self.where(file), f"{path}: target group {m.group(1)!r} does not start with "
                     f"TargetGroupNamePrefix {group_prefix!r}, so IAM would not let the functions change it")

        service_prefix = str(params.get("ManagedServicePrefix", ""))
        for i, s in enumerate(self.docs["registrar-config.json"].get("services", [])):
            if not str(s.get("service", "")).startswith(service_prefix):
                fail(self.where("registrar-config.json"), f"services[{i}].service {s.get('service')!r} does "
                     f"not start with ManagedServicePrefix {service_prefix!r}, so the rule would never "
                     f"pass its task events on")
            for j, g in enumerate(s.get("target_groups", [])):
                group_covered("registrar-config.json", f"services[{i}].target_groups[{j}].target_group_arn",
                              g.get("target_group_arn"))
        drill_service_prefix = str(params.get("DrillServicePrefix", ""))
        for i, d in enumerate(self.docs["drills.json"].get("drills", [])):
            if not str(d.get("service", "")).startswith(drill_service_prefix):
                fail(self.where("drills.json"), f"drills[{i}].service {d.get('service')!r} does not start "
                     f"with DrillServicePrefix {drill_service_prefix!r}, so IAM would not let the drill change it")
            kind = d.get("kind", {})
            if kind.get("type") == "alarm" and not str(kind.get("alarm", "")).startswith(alarm_prefix):
                fail(self.where("drills.json"), f"drills[{i}].kind.alarm does not start with "
                     f"AlarmNamePrefix {alarm_prefix!r}")
            if kind.get("type") == "drain_target":
                group_covered("drills.json", f"drills[{i}].kind.target_group_arn", kind.get("target_group_arn"))
        probe = self.docs["probe-config.json"]
        checks = probe.get("checks", [])
        if params["ProbeAlarmCheckName"] not in [c.get("name") for c in checks]:
            fail(self.where(SETTINGS), f"parameters.ProbeAlarmCheckName {params['ProbeAlarmCheckName']!r} "
                 "is not a check in probe-config.json")
        secrets_path = params.get("ProbeSecretsPath", "")
        for i, c in enumerate(checks):
            for header, value in (c.get("headers") or {}).items():
                if not isinstance(value, dict):
                    continue
                field = f"checks[{i}].headers.{header}"
                if not secrets_path:
                    fail(self.where("probe-config.json"), f"{field} names a secret, but stack.json sets no "
                         "parameters.ProbeSecretsPath (the path the probe may read secrets under)")
                if not params.get("ParametersSecretsExtensionLayerArn"):
                    fail(self.where(SETTINGS), f"probe-config.json {field} names a secret: set "
                         "parameters.ParametersSecretsExtensionLayerArn (the AWS Parameters and Secrets "
                         "Lambda Extension layer of your Region and architecture)")
                name = value.get("secretsmanager") or value.get("ssm") or ""
                name = re.sub(r"^arn:[^:]+:(secretsmanager:[^:]+:\d{12}:secret:|ssm:[^:]+:\d{12}:parameter/)",
                              "", str(name)).lstrip("/")
                if not name.startswith(secrets_path):
                    fail(self.where("probe-config.json"), f"{field} names {name!r}, outside "
                         f"ProbeSecretsPath {secrets_path!r}")

    # -- what a deploy sends --------------------------------------------------

    def architecture(self):
        return self.settings.get("architecture", "arm64")

    def parameters(self):
        """The template parameters, as sam deploy receives them (empty values omitted)."""
        params = {k: str(v) for k, v in self.settings["parameters"].items() if str(v) != ""}
        params["Architecture"] = self.architecture()
        params["ProbeNamespace"] = self.docs["probe-config.json"].get("namespace", "EcsControl/Probe")
        return params

    def stage(self):
        """Copies the documents, byte for byte, into the layer's folder."""
        if STAGE.exists():
            shutil.rmtree(STAGE)
        (STAGE / LAYER_FOLDER).mkdir(parents=True)
        for name in DOCUMENTS:
            shutil.copyfile(self.where(name), STAGE / LAYER_FOLDER / name)
        return STAGE


def overrides(params):
    """`--parameter-overrides` arguments: one `Key=Value` argument each."""
    return [f"{k}={v}" for k, v in params.items()]


# -- rendering: the packaged template, transformed as CloudFormation would ---

def render(fleet):
    """What a deploy of `fleet` sends and creates, with the sizes AWS limits."""
    from samcli.yamlhelper import yaml_parse

    text = TEMPLATE.read_text()
    template = yaml_parse(text)
    # As sam package leaves it: code and layer content in S3.
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if "CodeUri" in props:
            props["CodeUri"] = "s3://deploy-bucket/0123456789abcdef0123456789abcdef"
        if "ContentUri" in props:
            props["ContentUri"] = "s3://deploy-bucket/fedcba9876543210fedcba9876543210"
    params = fleet.parameters()
    transformed = sam_transform(template, params, fleet.settings["region"], Resolver.ACCOUNT)
    resolver = Resolver(transformed, params, fleet.settings["region"])
    functions, roles = {}, {}
    for name, resource in transformed["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            variables = resolver.resolve(resource["Properties"].get("Environment", {}).get("Variables", {}))
            functions[name] = {
                "environment": variables,
                # Lambda counts keys and values together.
                "environment_bytes": sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items()),
                "layers": resolver.resolve(resource["Properties"].get("Layers", [])),
            }
        if resource["Type"] == "AWS::IAM::Role":
            policies = resolver.resolve(resource["Properties"].get("Policies", []))
            documents = [p["PolicyDocument"] for p in policies]
            roles[name] = {
                "statements": [s for d in documents for s in d["Statement"]],
                # IAM counts a policy's characters without whitespace.
                "inline_policy_characters": sum(len(json.dumps(d, separators=(",", ":"))) for d in documents),
                "managed_policies": resource["Properties"].get("ManagedPolicyArns", []),
            }
    layer_bytes = sum(len(fleet.raw[name]) for name in DOCUMENTS)
    return {
        "stack_name": fleet.settings["stack_name"],
        "region": fleet.settings["region"],
        "parameters": params,
        "parameter_overrides": overrides(params),
        "functions": functions,
        "roles": roles,
        "template_bytes": len(text.encode()),
        "transformed_template_bytes": len(json.dumps(transformed, separators=(",", ":")).encode()),
        "documents_layer_bytes": layer_bytes,
        "limits": {
            "parameter_value_bytes": PARAMETER_VALUE_LIMIT,
            "environment_bytes": ENVIRONMENT_LIMIT,
            "role_inline_policy_characters": ROLE_INLINE_POLICIES_LIMIT,
            "template_body_bytes": TEMPLATE_BODY_LIMIT,
            "template_s3_bytes": TEMPLATE_S3_LIMIT,
        },
    }


def sam_transform(template, params, region, account):
    """The template as CloudFormation's AWS::Serverless transform expands it."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"}
    # The template names no managed policy by name, so none need looking up.
    return translator.translate(copy.deepcopy(template), parameter_values={**params, **pseudo},
                                get_managed_policy_map=lambda: {})


class Resolver:
    """Resolves the intrinsic functions the template uses, with the stack's
    parameters, pseudo parameters and conditions; attributes of resources the
    stack creates become ARNs of their real shape."""

    ACCOUNT = "111122223333"

    def __init__(self, template, params, region):
        self.template = template
        self.params = dict(params)
        for name, spec in template.get("Parameters", {}).items():
            if name not in self.params and "Default" in spec:
                self.params[name] = str(spec["Default"])
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": self.ACCOUNT, "AWS::Partition": "aws",
                       "AWS::StackName": "stack", "AWS::URLSuffix": "amazonaws.com"}
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        return self.arn(name)

    def arn(self, logical, attribute="Arn"):
        kind = self.template["Resources"][logical]["Type"]
        r, a = self.pseudo["AWS::Region"], self.ACCOUNT
        if kind == "AWS::SQS::Queue":
            name = f"stack-{logical}-0123456789AB" + (".fifo" if self.template["Resources"][logical]
                                                     ["Properties"].get("FifoQueue") else "")
            return name if attribute == "QueueName" else f"arn:aws:sqs:{r}:{a}:{name}"
        if kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{r}:{a}:function:stack-{logical}-0123456789AB"
        if kind == "AWS::Lambda::LayerVersion":
            return f"arn:aws:lambda:{r}:{a}:layer:{logical}0123456789AB:1"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{a}:role/stack-{logical}-0123456789AB"
        if kind == "AWS::Events::Rule":
            return f"arn:aws:events:{r}:{a}:rule/stack-{logical}-0123456789AB"
        if kind == "AWS::CloudWatch::Alarm":
            return f"arn:aws:cloudwatch:{r}:{a}:alarm:stack-{logical}-0123456789AB"
        return f"stack-{logical}-0123456789AB"

    def resolve(self, value):
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.arn(logical, attribute)
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}",
                              lambda m: str(extra[m.group(1)] if m.group(1) in extra else
                                            self.arn(*m.group(1).split(".", 1)) if "." in m.group(1) and
                                            not m.group(1).startswith("AWS::") else self.ref(m.group(1))),
                              text)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
        return {k: self.resolve(v) for k, v in value.items() if self.resolve(v) is not NO_VALUE}


NO_VALUE = object()


# -- deploy -----------------------------------------------------------------

def tools_env():
    """The environment sam runs in: the set-up script's tools first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("SAM_CLI_TELEMETRY", "0")
    return env


def run(argv, env):
    print("+ " + " ".join(argv), flush=True)
    code = subprocess.call(argv, cwd=INFRA, env=env)
    if code != 0:
        sys.exit(f"deploy: {argv[0]} {argv[1]} failed (exit {code})")


def installed_rust_targets():
    try:
        out = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True)
        return out.stdout.split()
    except OSError:
        return []


def deploy(fleet, build, confirm, extra):
    env = tools_env()
    arch = fleet.architecture()
    if build and arch == "arm64" and "aarch64-unknown-linux-gnu" not in installed_rust_targets():
        sys.exit(f"deploy: {fleet.where(SETTINGS)} says architecture arm64, but this toolchain has no "
                 "aarch64 standard library: run `rustup target add aarch64-unknown-linux-gnu`, "
                 "or set \"architecture\": \"x86_64\"")
    staged = fleet.stage()
    print(f"deploy: documents staged for the layer in {staged}", flush=True)
    params = fleet.parameters()
    if build:
        run(["sam", "build", "--beta-features", "--parameter-overrides", f"Architecture={arch}"], env)
    argv = ["sam", "deploy",
            "--stack-name", fleet.settings["stack_name"],
            "--region", fleet.settings["region"],
            "--capabilities", "CAPABILITY_IAM",
            "--resolve-s3",
            "--no-fail-on-empty-changeset",
            "--confirm-changeset" if confirm else "--no-confirm-changeset",
            "--parameter-overrides", *overrides(params), *extra]
    run(argv, env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "render", "deploy"):
        p = sub.add_parser(name)
        p.add_argument("folder", help="the folder holding the documents and stack.json")
        if name == "deploy":
            p.add_argument("--yes", action="store_true", help="execute the change set without asking")
            p.add_argument("--skip-build", action="store_true",
                           help="deploy what the last sam build left in infra/.aws-sam")
    # Arguments after "--" go to sam deploy as they are.
    argv = sys.argv[1:]
    sam_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = parser.parse_args(argv)
    try:
        fleet = Fleet(args.folder)
    except Problem as e:
        sys.exit(f"deploy: {e}")
    problems = fleet.check()
    if problems:
        for p in problems:
            print(f"deploy: {p}", file=sys.stderr)
        sys.exit(2)
    if args.command == "check":
        print(f"deploy: {fleet.folder} is ready to deploy")
    elif args.command == "render":
        json.dump(render(fleet), sys.stdout, indent=1, default=str)
        print()
    else:
        deploy(fleet, build=not args.skip_build, confirm=not args.yes, extra=sam_args)


if __name__ == "__main__":
    main()
