//! Least privilege, proven: each function's IAM policy in `infra/template.yaml`
//! grants exactly the AWS actions its code makes, and no mutating action on
//! `Resource: "*"` unless AWS allows no narrower scope (listed with the reason).
//!
//! Which actions a function makes is read from the code: the port methods its
//! sources call (`self.<port>.<method>(`), and the IAM action names each
//! adapter method in `shared/src/aws/` names for its calls.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::workspace_root;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// Actions granted for something other than the code's own calls.
const NOT_CALLED_BY_CODE: &[(&str, &str)] = &[
    (
        "sqs:SendMessage",
        "Lambda's on-failure destination sends to the failure queue with the function's role",
    ),
    (
        "sqs:ReceiveMessage",
        "the event source mapping reads the function's queue with the function's role",
    ),
    (
        "sqs:DeleteMessage",
        "the event source mapping deletes handled messages with the function's role",
    ),
    (
        "sqs:GetQueueAttributes",
        "the event source mapping reads the queue's settings with the function's role",
    ),
    (
        "secretsmanager:GetSecretValue",
        "the Parameters and Secrets extension reads the probe's secrets with the function's role",
    ),
    (
        "ssm:GetParameter",
        "the Parameters and Secrets extension reads the probe's SecureStrings with the function's role",
    ),
];

/// Actions granted on `Resource: "*"` because AWS offers no narrower resource.
const STAR_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "cloudwatch:PutMetricData",
        "no resource-level permissions; scoped by the cloudwatch:namespace condition",
    ),
    (
        "cloudwatch:GetMetricData",
        "no resource-level permissions or condition keys",
    ),
    (
        "ecs:ListTasks",
        "no resource-level permissions; scoped by the ecs:cluster condition",
    ),
    (
        "ecs:DescribeTaskDefinition",
        "no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetHealth",
        "ELBv2 Describe* actions support no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetGroups",
        "ELBv2 Describe* actions support no resource-level permissions",
    ),
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(read(&path));
        }
    }
    found
}

/// Port method → the IAM actions its adapter names, including those of the
/// adapter's own helpers it calls (`self.describe_tasks(`).
fn adapter_actions() -> BTreeMap<String, BTreeSet<String>> {
    let method = Regex::new(r"async fn (\w+)\(").unwrap();
    let action = Regex::new(r#""((?:ecs|cloudwatch|elasticloadbalancing):[A-Z]\w+)""#).unwrap();
    let helper = Regex::new(r"self\.(\w+)\(").unwrap();
    let mut actions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut helpers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in rust_files(&workspace_root().join("shared/src/aws")) {
        let starts: Vec<(usize, String)> = method
            .captures_iter(&source)
            .map(|c| (c.get(0).unwrap().start(), c[1].to_string()))
            .collect();
        for (i, (start, name)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(source.len(), |(s, _)| *s);
            let body: String = source[*start..end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            actions
                .entry(name.clone())
                .or_default()
                .extend(action.captures_iter(&body).map(|c| c[1].to_string()));
            helpers
                .entry(name.clone())
                .or_default()
                .extend(helper.captures_iter(&body).map(|c| c[1].to_string()));
        }
    }
    // Fold each helper's actions into its callers until nothing changes.
    loop {
        let mut changed = false;
        for (name, called) in &helpers {
            let inherited: BTreeSet<String> = called
                .iter()
                .filter_map(|h| actions.get(h))
                .flatten()
                .cloned()
                .collect();
            let own = actions.entry(name.clone()).or_default();
            let before = own.len();
            own.extend(inherited);
            changed |= own.len() != before;
        }
        if !changed {
            return actions;
        }
    }
}

/// The port methods a function's sources call, on `self`'s ports or on ports
/// passed in (the cold-start checks).
fn port_calls(function: &str) -> BTreeSet<String> {
    let ports = read(&workspace_root().join("shared/src/ports.rs"));
    let port_methods: BTreeSet<String> = Regex::new(r"fn (\w+)\(\s*&self")
        .unwrap()
        .captures_iter(&ports)
        .map(|c| c[1].to_string())
        .collect();
    let call = Regex::new(r"\.(\w+)\(").unwrap();
    rust_files(
        &workspace_root()
            .join("functions")
            .join(function)
            .join("src"),
    )
    .iter()
    .flat_map(|source| {
        let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        call.captures_iter(&compact)
            .map(|c| c[1].to_string())
            .collect::<Vec<_>>()
    })
    .filter(|m| port_methods.contains(m))
    .collect()
}

/// Action → the resources the function's policy grants it on.
fn granted(template: &Yaml, resource: &str) -> BTreeMap<String, Vec<String>> {
    let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let policies = &template["Resources"][resource]["Properties"]["Policies"];
    for policy in policies.as_vec().expect("Policies") {
        for statement in policy["Statement"].as_vec().expect("Statement") {
            // `!If [Condition, statement, !Ref AWS::NoValue]`: the statement
            // as granted when the condition holds.
            let statement = match statement {
                Yaml::Array(branches) => &branches[1],
                statement => statement,
            };
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            let list = |y: &Yaml| -> Vec<String> {
                match y {
                    Yaml::String(s) => vec![s.clone()],
                    Yaml::Array(items) => items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                    other => panic!("{resource}: unexpected {other:?}"),
                }
            };
            for action in list(&statement["Action"]) {
                grants
                    .entry(action)
                    .or_default()
                    .extend(list(&statement["Resource"]));
            }
        }
    }
    grants
}

fn is_mutating(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or_default();
    !["Describe", "List", "Get"]
        .iter()
        .any(|read| verb.starts_with(read))
}

#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let template = YamlLoader::load_from_str(&read(&workspace_root().join("infra/template.yaml")))
        .expect("template parses")
        .remove(0);
    let adapters = adapter_actions();
    for (function, resource) in [
        ("scaler", "ScalerFunction"),
        ("registrar", "RegistrarFunction"),
        ("probe", "ProbeFunction"),
        ("drill", "DrillFunction"),
    ] {
        let calls = port_calls(function);
        assert!(!calls.is_empty(), "{function}: no port calls found");
        let used: BTreeSet<String> = calls
            .iter()
            .flat_map(|m| adapters.get(m).cloned().unwrap_or_default())
            .collect();
        let grants = granted(&template, resource);
        for action in &used {
            assert!(
                grants.contains_key(action),
                "{function} calls {action} (via {calls:?}) but {resource}'s policy does not grant it"
            );
        }
        for (action, resources) in &grants {
            let reason = NOT_CALLED_BY_CODE.iter().find(|(a, _)| a == action);
            assert!(
                used.contains(action) || reason.is_some(),
                "{resource} grants {action}, which the {function}'s code never calls"
            );
            if resources.iter().any(|r| r == "*") && is_mutating(action) {
                assert!(
                    STAR_EXCEPTIONS.iter().any(|(a, _)| a == action),
                    "{resource} grants the mutating {action} on \"*\""
                );
            }
            if resources.iter().any(|r| r == "*") {
                assert!(
                    STAR_EXCEPTIONS.iter().any(|(a, _)| a == action),
                    "{resource} grants {action} on \"*\" with no AWS reason listed"
                );
            }
        }
    }
}

#[test]
fn update_service_is_scoped_to_the_managed_services() {
    let template = YamlLoader::load_from_str(&read(&workspace_root().join("infra/template.yaml")))
        .expect("template parses")
        .remove(0);
    let grants = granted(&template, "ScalerFunction");
    let resources = &grants["ecs:UpdateService"];
    assert!(
        resources
            .iter()
            .all(|r| r.contains(":service/${ManagedClusterName}/")),
        "{resources:?}"
    );
}

#[test]
fn the_reading_of_the_code_finds_the_calls_it_should() {
    // Guards the test itself: the scaler's known calls are found.
    let adapters = adapter_actions();
    assert!(adapters["set_desired_count"].contains("ecs:UpdateService"));
    assert!(adapters["task_size"].contains("ecs:DescribeTaskDefinition"));
    let calls = port_calls("scaler");
    for method in [
        "describe_service",
        "remember",
        "set_desired_count",
        "metric_data",
    ] {
        assert!(calls.contains(method), "{calls:?}");
    }
}

#[test]
fn drain_first_grants_are_scoped_to_the_managed_cluster_and_its_hold_tag() {
    let template = YamlLoader::load_from_str(&read(&workspace_root().join("infra/template.yaml")))
        .expect("template parses")
        .remove(0);
    let grants = granted(&template, "ScalerFunction");
    for action in [
        "ecs:UpdateTaskProtection",
        "ecs:GetTaskProtection",
        "ecs:UntagResource",
        "ecs:DescribeTasks",
    ] {
        let resources = &grants[action];
        assert!(
            resources
                .iter()
                .all(|r| r.contains(":task/${ManagedClusterName}/")),
            "{action}: {resources:?}"
        );
    }
    for action in [
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
    ] {
        let resources = &grants[action];
        assert!(
            resources
                .iter()
                .all(|r| r.contains(":targetgroup/${TargetGroupNamePrefix}*/")),
            "{action}: {resources:?}"
        );
    }
    // Tagging a task is allowed for the hold's one key only; tagging a
    // service, for the scaler's own keys only.
    let statements = template["Resources"]["ScalerFunction"]["Properties"]["Policies"][0]
        ["Statement"]
        .as_vec()
        .expect("statements");
    let tagging: Vec<&Yaml> = statements
        .iter()
        .filter(|s| {
            let actions = &s["Action"];
            actions.as_str() == Some("ecs:TagResource")
                || actions
                    .as_vec()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("ecs:TagResource")))
        })
        .collect();
    assert_eq!(tagging.len(), 2);
    for statement in tagging {
        let resource = statement["Resource"].as_str().expect("one resource");
        let condition = &statement["Condition"];
        if resource.contains(":task/") {
            let keys = &condition["ForAllValues:StringEquals"]["aws:TagKeys"];
            assert_eq!(
                keys.as_vec()
                    .map(|k| k.iter().filter_map(Yaml::as_str).collect::<Vec<_>>()),
                Some(vec!["ecs-scaler:drain-hold-until"])
            );
        } else {
            assert!(
                resource.contains(":service/${ManagedClusterName}/"),
                "{resource}"
            );
            let keys = &condition["ForAllValues:StringLike"]["aws:TagKeys"];
            assert_eq!(keys[0].as_str(), Some("ecs-scaler:*"));
        }
    }
}
