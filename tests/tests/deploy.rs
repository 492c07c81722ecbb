//! The deploy, proven without an AWS account: a fleet's documents render
//! within every limit AWS sets on what a deploy sends (at 1 service and at
//! 300), the samples' placeholders are refused naming the file to edit, and
//! the deploy command runs the real SAM CLI, which creates the stack on the
//! emulator. (`make deploy-rehearsal` also builds the functions, as the
//! README's steps do.)

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::{installed, workspace_root, Emulator};
use ecs_control::config::{verify, DrillConfig, ProbeConfig, RegistrarConfig, ScalerConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Actions a policy may grant on `*`, each for an AWS reason: they support no
/// resource-level permissions.
const STAR_ACTIONS: &[&str] = &[
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "ecs:ListTasks",
    "ecs:DescribeTaskDefinition",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTargetGroups",
    // AWSLambdaBasicExecutionRole is managed; SAM adds no inline `*` of its own.
];

/// Mutating actions on `*` must also carry a condition that scopes them.
const STAR_NEEDS_CONDITION: &[&str] = &["cloudwatch:PutMetricData", "ecs:ListTasks"];

fn python() -> PathBuf {
    installed(
        ".venv/bin/python",
        "run `make test` (or tests/scripts/setup.sh --with-sam)",
    )
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the command starts")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ecs-control-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A team's documents folder for `services` services.
fn fleet(services: u32) -> PathBuf {
    let dir = temp_dir(&format!("fleet{services}"));
    let out = run(Command::new(python())
        .arg(workspace_root().join("tests/scripts/fleet_documents.py"))
        .args(["--services", &services.to_string(), "--out"])
        .arg(&dir));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn deploy_py(args: &[&str], folder: &Path) -> Output {
    run(Command::new(python())
        .arg(workspace_root().join("infra/deploy.py"))
        .arg(args[0])
        .arg(folder)
        .args(&args[1..]))
}

fn render(folder: &Path) -> Value {
    let out = deploy_py(&["render"], folder);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("render prints JSON")
}

/// What each function's cold start does with the documents, run here on the
/// same files: every document parses and stays within the IAM prefixes.
fn cold_starts_accept(folder: &Path, rendered: &Value) {
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).expect(name);
    let params = &rendered["parameters"];
    let alarm_prefix = params["AlarmNamePrefix"].as_str().unwrap();
    let group_prefix = params["TargetGroupNamePrefix"].as_str().unwrap();
    let scaler = ScalerConfig::parse(&read("scaler-policies.json")).expect("scaler policies");
    verify::alarms_match_prefix(&scaler, alarm_prefix).expect("alarms in the prefix");
    let registrar =
        RegistrarConfig::parse(&read("registrar-config.json")).expect("registrar document");
    registrar
        .check_target_group_prefix(group_prefix)
        .expect("groups in the prefix");
    registrar
        .check_service_prefix(params["ManagedServicePrefix"].as_str().unwrap_or_default())
        .expect("services in the prefix");
    ProbeConfig::parse(&read("probe-config.json")).expect("probe document");
    let drills = DrillConfig::parse(&read("drills.json")).expect("drill document");
    verify::drill_alarms_match_prefix(&drills, alarm_prefix).expect("drill alarms");
    verify::drill_groups_match_prefix(&drills, group_prefix).expect("drill groups");
    verify::drill_services_match_prefix(
        &drills,
        params["DrillServicePrefix"].as_str().unwrap_or_default(),
    )
    .expect("drill services");
}

/// Every limit AWS sets on what the deploy sends and creates.
fn assert_within_limits(rendered: &Value) {
    let limits = &rendered["limits"];
    let limit = |name: &str| limits[name].as_u64().unwrap();
    for value in rendered["parameters"].as_object().unwrap().values() {
        let value = value.as_str().unwrap();
        assert!(
            value.len() as u64 <= limit("parameter_value_bytes"),
            "{value}"
        );
        assert!(
            !value.contains(char::is_whitespace),
            "a parameter is one word: {value:?}"
        );
    }
    let functions = rendered["functions"].as_object().unwrap();
    assert_eq!(functions.len(), 4, "{functions:?}");
    for (name, function) in functions {
        let bytes = function["environment_bytes"].as_u64().unwrap();
        assert!(
            bytes <= limit("environment_bytes"),
            "{name}: {bytes} bytes of environment"
        );
        let environment = function["environment"].as_object().unwrap();
        // The documents arrive as files in the layer, never in a variable.
        for (key, value) in environment {
            let value = value.as_str().unwrap();
            assert!(
                !value.trim_start().starts_with('{'),
                "{name}.{key} holds JSON"
            );
            if key.ends_with("_FILE") {
                assert!(
                    value.starts_with("/opt/ecs-control/"),
                    "{name}.{key} = {value}"
                );
            }
        }
        assert!(
            !function["layers"].as_array().unwrap().is_empty(),
            "{name}: no layer"
        );
    }
    let roles = rendered["roles"].as_object().unwrap();
    assert_eq!(roles.len(), 4, "{roles:?}");
    for (role, facts) in roles {
        let characters = facts["inline_policy_characters"].as_u64().unwrap();
        assert!(
            characters <= limit("role_inline_policy_characters"),
            "{role}: {characters} characters of inline policy"
        );
        assert!(
            facts["managed_policies"].as_array().unwrap().len() <= 10,
            "{role}"
        );
        for statement in facts["statements"].as_array().unwrap() {
            let list = |v: &Value| -> Vec<String> {
                match v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().unwrap().to_string())
                        .collect(),
                    other => panic!("{role}: {other}"),
                }
            };
            let actions = list(&statement["Action"]);
            for resource in list(&statement["Resource"]) {
                if resource == "*" {
                    for action in &actions {
                        assert!(
                            STAR_ACTIONS.contains(&action.as_str()),
                            "{role}: {action} on *"
                        );
                        if STAR_NEEDS_CONDITION.contains(&action.as_str()) {
                            assert!(
                                statement.get("Condition").is_some(),
                                "{role}: {action} on * unscoped"
                            );
                        }
                    }
                } else {
                    assert!(
                        resource.starts_with("arn:aws:") && resource.split(':').count() >= 6,
                        "{role}: {resource:?} is not an ARN"
                    );
                }
            }
        }
    }
    // sam deploy always uploads the template to S3 (--resolve-s3), where
    // CloudFormation's limit is 1 MB, not the 51,200 bytes of an inline body.
    let template = rendered["template_bytes"].as_u64().unwrap();
    assert!(
        template <= limit("template_s3_bytes"),
        "template is {template} bytes"
    );
    let transformed = rendered["transformed_template_bytes"].as_u64().unwrap();
    assert!(transformed <= limit("template_s3_bytes"), "{transformed}");
}

#[test]
fn a_300_service_fleet_and_a_1_service_fleet_render_within_every_limit() {
    let large = fleet(300);
    let small = fleet(1);
    let (large_render, small_render) = (render(&large), render(&small));
    for (folder, rendered) in [(&large, &large_render), (&small, &small_render)] {
        cold_starts_accept(folder, rendered);
        assert_within_limits(rendered);
    }
    // The layer carries the fleet; nothing else grows with it.
    assert!(large_render["documents_layer_bytes"].as_u64().unwrap() > 400_000);
    for field in ["functions", "roles"] {
        assert_eq!(
            large_render[field], small_render[field],
            "{field} grew with the fleet"
        );
    }
    println!(
        "300 services: layer {} bytes, template {} bytes, largest role {} characters",
        large_render["documents_layer_bytes"],
        large_render["template_bytes"],
        large_render["roles"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["inline_policy_characters"].as_u64().unwrap())
            .max()
            .unwrap()
    );
    let _ = std::fs::remove_dir_all(large);
    let _ = std::fs::remove_dir_all(small);
}

#[test]
fn the_samples_are_refused_naming_the_file_to_edit() {
    let out = deploy_py(&["check"], &workspace_root().join("infra"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("placeholder"), "{stderr}");
    assert!(stderr.contains("infra/"), "{stderr}");
    assert!(stderr.contains("cp infra/*.json my-fleet/"), "{stderr}");
}

#[test]
fn mistakes_in_a_folder_name_their_file_and_field() {
    let folder = fleet(2);
    let edit = |name: &str, change: &dyn Fn(&mut Value)| {
        let path = folder.join(name);
        let mut doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        change(&mut doc);
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    };
    let check = || {
        let out = deploy_py(&["check"], &folder);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(check().0, Some(0), "{}", check().1);
    // A value SAM's --parameter-overrides could not carry intact.
    edit("stack.json", &|d| {
        d["parameters"]["ProbeAdhocAllowedHosts"] = "a.example.com b.example.com".into()
    });
    let (code, stderr) = check();
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("stack.json") && stderr.contains("ProbeAdhocAllowedHosts"),
        "{stderr}"
    );
    edit("stack.json", &|d| {
        d["parameters"]
            .as_object_mut()
            .unwrap()
            .remove("ProbeAdhocAllowedHosts");
    });
    // A group outside the prefix IAM grants.
    edit("registrar-config.json", &|d| {
        d["services"][1]["target_groups"][0]["target_group_arn"] =
            "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/other/0123".into();
    });
    let (code, stderr) = check();
    assert_eq!(code, Some(2));
    assert!(stderr.contains("registrar-config.json"), "{stderr}");
    assert!(
        stderr.contains("services[1].target_groups[0].target_group_arn"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(folder);
}

/// A build as `sam build` leaves it, with a stand-in bootstrap per function:
/// the compile is the one step this test leaves to `make deploy-rehearsal`.
fn stand_in_build(dir: &Path) -> PathBuf {
    let template = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    let mut resource = String::new();
    let mut built = String::new();
    for line in template.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                resource = name.to_string();
            }
        }
        if line.trim() == "CodeUri: .." {
            let code = dir.join(&resource);
            std::fs::create_dir_all(&code).unwrap();
            std::fs::write(code.join("bootstrap"), "#!/bin/sh\n").unwrap();
            built.push_str(&line.replace("..", code.to_str().unwrap()));
        } else if line.trim() == "ContentUri: ../target/deploy/documents" {
            let staged = workspace_root().join("target/deploy/documents");
            built.push_str(&line.replace("../target/deploy/documents", staged.to_str().unwrap()));
        } else {
            built.push_str(line);
        }
        built.push('\n');
    }
    let path = dir.join("template.yaml");
    std::fs::write(&path, built).unwrap();
    path
}

#[test]
fn the_deploy_command_creates_the_stack_on_the_emulator() {
    let emulator = Emulator::start();
    let folder = fleet(3);
    let build = stand_in_build(&temp_dir("build"));
    let out = run(Command::new(python())
        .arg(workspace_root().join("infra/deploy.py"))
        .arg("deploy")
        .arg(&folder)
        .args(["--yes", "--skip-build", "--", "--template-file"])
        .arg(&build)
        .env("AWS_ENDPOINT_URL", emulator.endpoint())
        .env("AWS_ACCESS_KEY_ID", "deploy-test")
        .env("AWS_SECRET_ACCESS_KEY", "deploy-test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Successfully created/updated stack - prod-ecs-control"),
        "{stdout}"
    );
    // What the stack made, read back from the emulator.
    let script = r#"
import boto3, json, sys
cfn = boto3.client("cloudformation", region_name="eu-west-1")
lam = boto3.client("lambda", region_name="eu-west-1")
sqs = boto3.client("sqs", region_name="eu-west-1")
stack = cfn.describe_stacks(StackName="prod-ecs-control")["Stacks"][0]
functions = {}
for f in lam.list_functions()["Functions"]:
    functions[f["FunctionName"]] = {
        "environment": f.get("Environment", {}).get("Variables", {}),
        "layers": [l["Arn"] for l in f.get("Layers", [])],
        "architectures": f.get("Architectures", []),
    }
queues = sqs.list_queues().get("QueueUrls", [])
print(json.dumps({"status": stack["StackStatus"], "functions": functions, "queues": queues}))
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL", emulator.endpoint())
        .env("AWS_ACCESS_KEY_ID", "deploy-test")
        .env("AWS_SECRET_ACCESS_KEY", "deploy-test"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["status"], "CREATE_COMPLETE", "{made}");
    let functions = made["functions"].as_object().unwrap();
    assert_eq!(functions.len(), 4, "{made}");
    let variables: Vec<&str> = functions
        .values()
        .flat_map(|f| {
            f["environment"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
        })
        .collect();
    for expected in [
        "SCALER_POLICIES_FILE",
        "REGISTRAR_CONFIG_FILE",
        "PROBE_CONFIG_FILE",
        "DRILLS_FILE",
    ] {
        assert!(variables.contains(&expected), "{variables:?}");
    }
    for function in functions.values() {
        assert_eq!(
            function["architectures"],
            serde_json::json!(["x86_64"]),
            "{function}"
        );
        assert!(
            !function["layers"].as_array().unwrap().is_empty(),
            "{function}"
        );
    }
    let queues = made["queues"].as_array().unwrap();
    for queue in [
        "prod-ecs-control-scaler.fifo",
        "prod-ecs-control-registrar.fifo",
    ] {
        assert!(
            queues.iter().any(|q| q.as_str().unwrap().ends_with(queue)),
            "{queues:?}"
        );
    }
    // The layer holds the documents as they are in the folder, byte for byte.
    for name in [
        "scaler-policies.json",
        "registrar-config.json",
        "probe-config.json",
        "drills.json",
    ] {
        let staged = workspace_root()
            .join("target/deploy/documents/ecs-control")
            .join(name);
        assert_eq!(
            std::fs::read(staged).unwrap(),
            std::fs::read(folder.join(name)).unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(folder);
}
