//! Least privilege, proven against what the functions really call: each
//! function runs through its real adapters against the emulator, in a region
//! of its own, over the events that exercise its paths (every sample of
//! `events/<function>/` that applies, its cold-start check, and for the scaler
//! a drain-first scale-in, cancelled once and carried through once; for the
//! drill, a drill of each kind and the sweep). What it called is the ground
//! truth: the emulator's count of calls in its region, each call's service
//! read from the signing scope of the client that sent it
//! (`e2e::call_log`), the two agreeing call for call.
//!
//! Then, for each function's role in `infra/template.yaml`:
//! - every action called is granted;
//! - every action granted is called, or granted for something other than the
//!   code (`NOT_CALLED_BY_CODE`), or called only on a path the run cannot
//!   reach (`NOT_REACHED`, with the reason);
//! - nothing is granted on `Resource: "*"` unless AWS offers no narrower
//!   resource (`STAR_EXCEPTIONS`), and an exception that says a condition
//!   scopes it has that condition;
//! - every condition a statement carries is the one `CONDITIONS` claims, and
//!   the calls of the run meet it: the tag keys each TagResource and
//!   UntagResource wrote, the cluster each ListTasks named, the namespaces
//!   the probe published to.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::StateValue;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use drill::handler::Driller;
use e2e::call_log::{Call, CallLog};
use e2e::drill_world::{self, LOCAL_SETTLE};
use e2e::site::TestSite;
use e2e::{sample_event, workspace_root, Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{DrillConfig, ProbeConfig, RegistrarConfig, ScalerConfig};
use probe::handler::Prober;
use probe::http::HttpAdapter;
use registrar::handler::Registrar;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
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

/// (function's resource, action, why): granted actions the code calls only
/// on paths these runs cannot reach. Empty: every granted action is called.
const NOT_REACHED: &[(&str, &str, &str)] = &[];

/// Actions granted on `Resource: "*"` because AWS offers no narrower
/// resource: the condition key that scopes the grant instead, if any.
const STAR_EXCEPTIONS: &[(&str, Option<&str>, &str)] = &[
    (
        "cloudwatch:PutMetricData",
        Some("cloudwatch:namespace"),
        "no resource-level permissions; scoped by the cloudwatch:namespace condition",
    ),
    (
        "cloudwatch:GetMetricData",
        None,
        "no resource-level permissions or condition keys",
    ),
    (
        "ecs:ListTasks",
        Some("ecs:cluster"),
        "no resource-level permissions; scoped by the ecs:cluster condition",
    ),
    (
        "ecs:DescribeTaskDefinition",
        None,
        "no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetHealth",
        None,
        "ELBv2 Describe* actions support no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetGroups",
        None,
        "ELBv2 Describe* actions support no resource-level permissions",
    ),
];

/// A condition a statement claims: `Condition: {operator: {key: values}}`.
struct Claim {
    resource: &'static str,
    sid: &'static str,
    operator: &'static str,
    key: &'static str,
    values: &'static [&'static str],
}

const CLUSTER_ARN: &str =
    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${ManagedClusterName}";

/// Every condition the functions' policies carry, and only these.
const CONDITIONS: &[Claim] = &[
    // The scaler tags a service with its own keys only.
    Claim {
        resource: "ScalerFunction",
        sid: "RememberScalingInServiceTags",
        operator: "ForAllValues:StringLike",
        key: "aws:TagKeys",
        values: &["ecs-scaler:*"],
    },
    Claim {
        resource: "ScalerFunction",
        sid: "ListTasksOfTheClusterForDrains",
        operator: "ArnEquals",
        key: "ecs:cluster",
        values: &[CLUSTER_ARN],
    },
    // A task, with the drain's hold only.
    Claim {
        resource: "ScalerFunction",
        sid: "HoldDrainedTasksInTaskTags",
        operator: "ForAllValues:StringEquals",
        key: "aws:TagKeys",
        values: &["ecs-scaler:drain-hold-until"],
    },
    Claim {
        resource: "RegistrarFunction",
        sid: "ListTasksOfTheCluster",
        operator: "ArnEquals",
        key: "ecs:cluster",
        values: &[CLUSTER_ARN],
    },
    // `!Ref ProbeNamespace`: the parameter's value.
    Claim {
        resource: "ProbeFunction",
        sid: "PublishProbeMetrics",
        operator: "StringEquals",
        key: "cloudwatch:namespace",
        values: &["ProbeNamespace"],
    },
    Claim {
        resource: "DrillFunction",
        sid: "KeepTheDrillLockInServiceTags",
        operator: "ForAllValues:StringLike",
        key: "aws:TagKeys",
        values: &["ecs-drill:*"],
    },
    Claim {
        resource: "DrillFunction",
        sid: "ListTasksOfTheCluster",
        operator: "ArnEquals",
        key: "ecs:cluster",
        values: &[CLUSTER_ARN],
    },
    Claim {
        resource: "DrillFunction",
        sid: "HoldGracefullyStoppedTasks",
        operator: "ForAllValues:StringEquals",
        key: "aws:TagKeys",
        values: &["ecs-scaler:drain-hold-until"],
    },
];

const FUNCTIONS: [&str; 4] = [
    "ScalerFunction",
    "RegistrarFunction",
    "ProbeFunction",
    "DrillFunction",
];

/// The emulator's account (moto's default).
const ACCOUNT: &str = "123456789012";
const CLUSTER: &str = "demo";
const SERVICE: &str = "web";

// Each function in a region no other test of this binary uses.
const SCALER_REGION: &str = "ap-northeast-1";
const REGISTRAR_REGION: &str = "ap-northeast-2";
const PROBE_REGION: &str = "ap-northeast-3";
const DRILL_REGION: &str = "ca-central-1";

// ---------------------------------------------------------------- template

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn template() -> Yaml {
    YamlLoader::load_from_str(&read(&workspace_root().join("infra/template.yaml")))
        .expect("template parses")
        .remove(0)
}

/// The statements of a function's policies; `!If [Condition, statement,
/// !Ref AWS::NoValue]` as the statement granted when the condition holds.
fn statements<'a>(template: &'a Yaml, resource: &str) -> Vec<&'a Yaml> {
    let policies = &template["Resources"][resource]["Properties"]["Policies"];
    let mut found = Vec::new();
    for policy in policies.as_vec().expect("Policies") {
        for statement in policy["Statement"].as_vec().expect("Statement") {
            let statement = match statement {
                Yaml::Array(branches) => &branches[1],
                statement => statement,
            };
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{resource}");
            found.push(statement);
        }
    }
    found
}

/// A string or a list of strings (YAML tags such as `!Sub` are dropped).
fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).expect("a string"))
            .collect(),
        other => panic!("expected strings, found {other:?}"),
    }
}

/// Action → the resources the function's policy grants it on.
fn granted(template: &Yaml, resource: &str) -> BTreeMap<String, Vec<String>> {
    let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in statements(template, resource) {
        for action in strings(&statement["Action"]) {
            grants
                .entry(action)
                .or_default()
                .extend(strings(&statement["Resource"]));
        }
    }
    grants
}

/// A statement's condition as (operator, key, values).
fn conditions(statement: &Yaml) -> Vec<(String, String, Vec<String>)> {
    let mut found = Vec::new();
    if let Some(blocks) = statement["Condition"].as_hash() {
        for (operator, keys) in blocks {
            for (key, values) in keys.as_hash().expect("condition keys") {
                found.push((
                    operator.as_str().expect("operator").to_string(),
                    key.as_str().expect("key").to_string(),
                    strings(values),
                ));
            }
        }
    }
    found
}

/// `*` and `?` as IAM reads them in resources and `...Like` conditions.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The template's parameters as a run sets them.
struct Parameters(BTreeMap<String, String>);

impl Parameters {
    fn new(template: &Yaml, region: &str, set: &[(&str, &str)]) -> Self {
        let mut values: BTreeMap<String, String> = template["Parameters"]
            .as_hash()
            .expect("Parameters")
            .iter()
            .filter_map(|(name, p)| {
                let default = match &p["Default"] {
                    Yaml::String(s) => s.clone(),
                    Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    _ => return None,
                };
                Some((name.as_str()?.to_string(), default))
            })
            .collect();
        for (name, value) in [
            ("AWS::Partition", "aws"),
            ("AWS::Region", region),
            ("AWS::AccountId", ACCOUNT),
        ]
        .into_iter()
        .chain(set.iter().copied())
        {
            values.insert(name.to_string(), value.to_string());
        }
        Self(values)
    }

    /// A `!Sub` string with its `${...}` filled in, or a `!Ref`'s value.
    fn resolve(&self, text: &str) -> String {
        if let Some(value) = self.0.get(text) {
            return value.clone();
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            let name = &rest[start + 2..end];
            out.push_str(
                self.0
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for ${{{name}}} in {text}")),
            );
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

// ---------------------------------------------------------------- runs

/// One function's run: its calls, as its clients sent them and as the
/// emulator counted them.
struct Run {
    resource: &'static str,
    region: &'static str,
    log: CallLog,
    /// The emulator's count of calls in the region while the function ran.
    counted: BTreeMap<String, u64>,
    /// CloudWatch namespaces holding metrics in the region after the run.
    namespaces: BTreeSet<String>,
    parameters: Vec<(&'static str, String)>,
}

impl Run {
    fn new(resource: &'static str, region: &'static str) -> Self {
        Self {
            resource,
            region,
            log: CallLog::new(),
            counted: BTreeMap::new(),
            namespaces: BTreeSet::new(),
            parameters: vec![("ManagedClusterName", CLUSTER.to_string())],
        }
    }

    /// Runs one invocation (or cold-start check) of the function, counting
    /// the emulator's calls in the region meanwhile; nothing else may call
    /// AWS in the region while it runs.
    async fn step<T, E: std::fmt::Debug>(
        &mut self,
        what: &str,
        invocation: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let emulator = Emulator::shared();
        let before = emulator.calls(self.region);
        let sent = self.log.calls().len();
        let result = invocation.await;
        for (operation, count) in emulator.calls(self.region) {
            let new = count - before.get(&operation).copied().unwrap_or(0);
            if new > 0 {
                *self.counted.entry(operation).or_insert(0) += new;
            }
        }
        let actions: BTreeSet<String> = self.log.calls()[sent..].iter().map(Call::action).collect();
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("failed: {e:?}"),
        };
        println!(
            "{} {what}: {outcome}; {actions:?}",
            self.resource.trim_end_matches("Function")
        );
        result.ok()
    }

    fn sdk(&self) -> aws_config::SdkConfig {
        Emulator::shared().sdk_config(self.region)
    }

    fn ecs(&self) -> EcsAdapter {
        EcsAdapter::new(self.log.ecs(&self.sdk()))
    }

    fn elbv2(&self) -> Elbv2Adapter {
        Elbv2Adapter::new(self.log.elbv2(&self.sdk()))
    }

    fn alarms(&self) -> CloudWatchAlarms {
        CloudWatchAlarms::new(self.log.cloudwatch(&self.sdk()))
    }

    fn metrics(&self) -> CloudWatchMetrics {
        CloudWatchMetrics::new(self.log.cloudwatch(&self.sdk()))
    }

    /// The actions called, once the emulator's count and the clients' log
    /// are known to agree call for call.
    fn actions(&self) -> BTreeSet<String> {
        let calls = self.log.calls();
        assert!(!calls.is_empty(), "{}: no AWS calls", self.resource);
        for call in &calls {
            assert_eq!(call.region, self.region, "{}: {call:?}", self.resource);
        }
        assert_eq!(
            self.counted,
            self.log.counts(self.region),
            "{}: the emulator counted other calls than the function's clients sent",
            self.resource
        );
        calls.iter().map(Call::action).collect()
    }

    /// Asserts the function's role against what the run called.
    fn check(&self) {
        let template = template();
        let resource = self.resource;
        let observed = self.actions();
        println!("{resource} called {observed:?}");
        let grants = granted(&template, resource);
        let missing: Vec<&String> = observed
            .iter()
            .filter(|a| !grants.contains_key(*a))
            .collect();
        assert!(
            missing.is_empty(),
            "{resource} calls {missing:?}, which its policy does not grant"
        );
        for action in grants.keys() {
            let other_use = NOT_CALLED_BY_CODE.iter().any(|(a, _)| a == action);
            let unreached = NOT_REACHED
                .iter()
                .any(|(r, a, _)| *r == resource && a == action);
            assert!(
                observed.contains(action) || other_use || unreached,
                "{resource} grants {action}, which the {} never called in its run",
                resource.trim_end_matches("Function").to_lowercase()
            );
            assert!(
                !(observed.contains(action) && unreached),
                "{resource}: {action} is listed in NOT_REACHED but the run called it"
            );
        }
        let set: Vec<(&str, &str)> = self
            .parameters
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let parameters = Parameters::new(&template, self.region, &set);
        let statements = statements(&template, resource);
        for call in self.log.calls() {
            if let Err(why) = self.allowed(&call, &statements, &parameters) {
                panic!("{resource}: {why}");
            }
        }
    }

    /// Whether some statement granting the call's action, on its resource
    /// where the call names one, has every condition met by the call.
    fn allowed(
        &self,
        call: &Call,
        statements: &[&Yaml],
        parameters: &Parameters,
    ) -> Result<(), String> {
        let action = call.action();
        let arn = call.json.as_ref().and_then(|j| j["resourceArn"].as_str());
        let granting: Vec<&&Yaml> = statements
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&action))
            .filter(|s| {
                arn.is_none_or(|arn| {
                    strings(&s["Resource"])
                        .iter()
                        .any(|r| glob(&parameters.resolve(r), arn))
                })
            })
            .collect();
        if granting.is_empty() {
            return Err(format!("no statement grants {action} on {arn:?}"));
        }
        let mut refusals = Vec::new();
        for statement in granting {
            let unmet: Vec<String> = conditions(statement)
                .into_iter()
                .filter_map(|(operator, key, values)| {
                    let values: Vec<String> =
                        values.iter().map(|v| parameters.resolve(v)).collect();
                    let context = self.context(call, &key);
                    let meets = |v: &String| {
                        values.iter().any(|allowed| {
                            match operator.trim_start_matches("ForAllValues:") {
                                "StringEquals" | "ArnEquals" => allowed == v,
                                "StringLike" | "ArnLike" => glob(allowed, v),
                                other => panic!("operator {other} not understood here"),
                            }
                        })
                    };
                    // Multi-valued keys (ForAllValues) and single ones alike:
                    // every value the call brings must be allowed.
                    (context.is_empty() || !context.iter().all(meets))
                        .then(|| format!("{operator} {key} {values:?} refuses {context:?}"))
                })
                .collect();
            if unmet.is_empty() {
                return Ok(());
            }
            refusals.push(format!(
                "{}: {unmet:?}",
                statement["Sid"].as_str().unwrap_or("?")
            ));
        }
        Err(format!("{action} ({call:?}) is refused: {refusals:?}"))
    }

    /// The values a call brings for a condition key.
    fn context(&self, call: &Call, key: &str) -> Vec<String> {
        let body = call.json.clone().unwrap_or(Value::Null);
        match key {
            "aws:TagKeys" => body["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["key"].as_str())
                .chain(
                    body["tagKeys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                )
                .map(str::to_string)
                .collect(),
            "ecs:cluster" => {
                let cluster = body["cluster"].as_str().unwrap_or("default");
                vec![if cluster.starts_with("arn:") {
                    cluster.to_string()
                } else {
                    format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{cluster}", self.region)
                }]
            }
            // The rpc-v2-cbor body is not read here: the namespaces that
            // hold metrics after the run are those it published to.
            "cloudwatch:namespace" => self.namespaces.iter().cloned().collect(),
            other => panic!("condition key {other} not understood here"),
        }
    }
}

/// Emulator settings every run here shares: quick deployments and health
/// checks, and ECS's scheduler stopping unprotected tasks on a scale-in
/// (what a drain-first scale-in relies on).
fn settings() {
    Emulator::shared().control(
        "POST",
        "settings",
        &json!({"deployment_seconds": 0.3, "scale_in_stops_tasks": true,
                "protection_minute_seconds": 2, "healthy_seconds": 1}),
    );
}

/// The sample events of `events/<function>/` (not its subfolders).
fn samples(function: &str) -> Vec<(String, Value)> {
    let dir = workspace_root().join("events").join(function);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("events folder")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json")
                .then(|| path.file_name()?.to_str().map(str::to_string))
                .flatten()
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let event = sample_event(&format!("{function}/{name}"));
            (name, event)
        })
        .collect()
}

/// A sample's time: the samples are of 2026-11-21, some 20 s after each alarm.
fn sample_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 3, 0)
        .single()
        .unwrap_or_default()
}

/// Waits until none of the group's targets is draining.
async fn wait_drained(aws: &Aws, group: &str) {
    for _ in 0..100 {
        if !aws
            .targets(group)
            .await
            .iter()
            .any(|(_, _, s)| s == "draining")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("targets never drained");
}

fn registrar_document(target_group: &str) -> RegistrarConfig {
    RegistrarConfig::parse(
        &json!({"services": [{"cluster": CLUSTER, "service": SERVICE,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]}]})
        .to_string(),
    )
    .expect("registrar document")
}

fn target_group_name(arn: &str) -> String {
    arn.split(":targetgroup/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a target group ARN")
        .to_string()
}

// ---------------------------------------------------------------- scaler

#[tokio::test(flavor = "multi_thread")]
async fn the_scaler_is_granted_exactly_what_it_calls() {
    settings();
    let mut run = Run::new("ScalerFunction", SCALER_REGION);
    let aws = Aws::new(&run.sdk());
    let (network, group) = aws.awsvpc_service_with_group(CLUSTER, SERVICE, 6).await;
    for (_, ip) in aws.run_service_tasks(CLUSTER, SERVICE, &network, 6).await {
        aws.register_target(&group, &ip, TASK_PORT).await;
    }
    aws.wait_until_healthy(&group).await;
    aws.demo_alarms().await;
    aws.set_alarm_state("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    run.parameters.extend([
        ("AlarmNamePrefix", "web-".to_string()),
        ("TargetGroupNamePrefix", target_group_name(&group)),
    ]);

    // The deployed policies, a budget (the task size is read for it), and
    // the registrar's document (a scale-in drains first).
    let mut document: Value =
        serde_json::from_str(&read(&workspace_root().join("infra/scaler-policies.json")))
            .expect("policies");
    document["services"] =
        json!([{"cluster": CLUSTER, "service": SERVICE, "max_hourly_cost": 100.0}]);
    let registrar = registrar_document(&group);
    let scaler = Scaler::new(
        ScalerConfig::parse(&document.to_string()).expect("policies"),
        run.ecs(),
        run.alarms(),
        false,
    )
    .with_target_groups(run.elbv2(), Some(&registrar))
    .expect("bindings");

    run.step("cold start", scaler.verify_configuration()).await;
    // Every sample, at its own time; the suspension last, after the drains.
    let (suspend, events): (Vec<_>, Vec<_>) = samples("scaler")
        .into_iter()
        .partition(|(name, _)| name == "manual-suspend.json");
    for (i, (name, event)) in events.into_iter().enumerate() {
        let at = sample_time() + TimeDelta::minutes(i64::try_from(i).expect("few"));
        run.step(&name, scaler.invoke(event, &name, || at)).await;
    }

    // Drain-first scale-in, in real time (ECS's task protection expires in
    // real time): started and cancelled, then started and carried through.
    aws.set_desired_count(CLUSTER, SERVICE, 6).await;
    let t0 = Utc::now();
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);
    let set = |count: u32, id: &str| {
        json!({"command": "set_desired_count", "cluster": CLUSTER, "service": SERVICE,
               "desired_count": count, "reason": "least privilege", "request_id": id})
    };
    let tick = |id: &str| {
        let mut event = sample_event("scaler/recheck-schedule.json");
        event["id"] = id.into();
        event
    };
    run.step(
        "scale-in to 4",
        scaler.handle(set(4, "in-1"), "in-1", at(0)),
    )
    .await;
    run.step(
        "scale-out to 7, cancelling the drain",
        scaler.handle(set(7, "out-1"), "out-1", at(1)),
    )
    .await;
    aws.wait_until_healthy(&group).await;
    run.step(
        "scale-in to 4",
        scaler.handle(set(4, "in-2"), "in-2", at(2)),
    )
    .await;
    wait_drained(&aws, &group).await;
    run.step(
        "tick: drained, lower",
        scaler.handle(tick("t1"), "t1", at(3)),
    )
    .await;
    run.step(
        "tick: stopped, lift protection",
        scaler.handle(tick("t2"), "t2", at(4)),
    )
    .await;
    for (name, event) in suspend {
        run.step(&name, scaler.handle(event, &name, at(5))).await;
    }
    run.check();
}

// ---------------------------------------------------------------- registrar

#[tokio::test(flavor = "multi_thread")]
async fn the_registrar_is_granted_exactly_what_it_calls() {
    settings();
    let mut run = Run::new("RegistrarFunction", REGISTRAR_REGION);
    let aws = Aws::new(&run.sdk());
    let (network, group) = aws.awsvpc_service_with_group(CLUSTER, SERVICE, 3).await;
    let tasks = aws.run_service_tasks(CLUSTER, SERVICE, &network, 3).await;
    // A target of no task: the reconcile deregisters it.
    aws.register_target(&group, "10.0.250.250", TASK_PORT).await;
    run.parameters
        .push(("TargetGroupNamePrefix", target_group_name(&group)));
    let registrar = Registrar::new(registrar_document(&group), run.ecs(), run.elbv2(), false);

    run.step("cold start", registrar.verify_configuration())
        .await;
    // The samples' task, made one of this region's running tasks: a task
    // of another region is ignored.
    let (task_arn, ip) = &tasks[0];
    let task_id = task_arn.rsplit('/').next().expect("a task id");
    for (name, event) in samples("registrar") {
        let text = event
            .to_string()
            .replace("us-east-1", REGISTRAR_REGION)
            .replace("0f9d3c5e4b2a4d6f8e1c2b3a4d5e6f70", task_id)
            .replace("10.0.1.23", ip);
        let event: Value = serde_json::from_str(&text).expect("JSON");
        run.step(&name, registrar.invoke(event, Utc::now)).await;
    }
    run.check();
}

// ---------------------------------------------------------------- probe

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_is_granted_exactly_what_it_calls() {
    settings();
    let mut run = Run::new("ProbeFunction", PROBE_REGION);
    let aws = Aws::new(&run.sdk());
    let site = TestSite::start().await;
    let network = aws.network().await;
    let group = aws.ip_target_group(SERVICE, &network.vpc_id).await;
    aws.register_target(&group, "10.0.0.7", TASK_PORT).await;
    // The namespace the stack deploys with: the template's default.
    let namespace = Parameters::new(&template(), PROBE_REGION, &[]).resolve("ProbeNamespace");
    let document = json!({
        "namespace": namespace,
        "checks": [{"name": "web-health", "url": format!("{}/ok", site.http)}],
        "target_groups": [{"name": SERVICE, "target_group_arn": group}]
    });
    let prober = Prober::new(
        ProbeConfig::parse(&document.to_string()).expect("probe document"),
        HttpAdapter::new(),
        run.elbv2(),
        run.metrics(),
    );
    for (name, event) in samples("probe") {
        run.step(&name, prober.handle(event, Utc::now(), None))
            .await;
    }
    let listed = aws
        .cloudwatch
        .list_metrics()
        .send()
        .await
        .expect("list_metrics");
    run.namespaces = listed
        .metrics()
        .iter()
        .filter_map(|m| m.namespace().map(str::to_string))
        .collect();
    assert!(!run.namespaces.is_empty(), "the probe published nothing");
    run.check();
}

// ---------------------------------------------------------------- drill

#[tokio::test(flavor = "multi_thread")]
async fn the_drill_is_granted_exactly_what_it_calls() {
    settings();
    let mut run = Run::new("DrillFunction", DRILL_REGION);
    let w = drill_world::world(DRILL_REGION).await;
    w.aws.demo_alarms().await;
    run.parameters.extend([
        ("AlarmNamePrefix", "web-".to_string()),
        ("TargetGroupNamePrefix", target_group_name(&w.target_group)),
    ]);
    // One drill of each kind, named as the samples name them.
    let drill = |name: &str, kind: Value, max_seconds: u32| {
        json!({
            "name": name, "cluster": CLUSTER, "service": SERVICE, "kind": kind,
            "steady_state": {
                "running_equals_desired": true,
                "target_groups": [{"target_group_arn": w.target_group, "min_healthy": 1}],
                "probe_checks": [{"name": "site", "url": format!("{}/ok", w.site.http)}]
            },
            "abort_alarms": ["web-memory-high"],
            "max_duration_seconds": max_seconds, "poll_seconds": 1, "rollback": "always"
        })
    };
    let document = json!({"drills": [
        drill("scale-web-up", json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}), 10),
        drill("drain-one-web-target", json!({"type": "drain_target",
            "target_group_arn": w.target_group, "port": TASK_PORT, "hold_seconds": 1}), 10),
        drill("web-cpu-alarm", json!({"type": "alarm", "alarm": "web-cpu-high"}), 4),
        drill("stop-a-third-of-web", json!({"type": "stop_tasks", "count": 1,
            "stop": "graceful", "max_drain_seconds": 10}), 6),
    ]});
    let driller = Driller::new(
        DrillConfig::parse(&document.to_string()).expect("drill document"),
        run.ecs(),
        run.elbv2(),
        run.alarms(),
        HttpAdapter::new(),
        run.metrics(),
    )
    .with_lock_settle(LOCAL_SETTLE)
    .with_target_bindings(Some(&registrar_document(&w.target_group)))
    .expect("bindings");

    let execute = |name: &str| json!({"command": "start", "drill": name, "mode": "execute"});
    let mut events = samples("drill");
    events.insert(
        1,
        (
            "start scale-web-up in execute".into(),
            execute("scale-web-up"),
        ),
    );
    // The stop last: nothing replaces the stopped task here, so the steady
    // state no longer holds for a drill after it.
    events.sort_by_key(|(name, _)| {
        [
            "start-scale-plan.json",
            "start scale-web-up in execute",
            "start-drain-target.json",
            "start-alarm.json",
            "start-stop-tasks.json",
            "continue.json",
            "sweep-schedule.json",
        ]
        .iter()
        .position(|n| n == name)
        .unwrap_or(usize::MAX)
    });
    for (name, event) in events {
        run.step(&name, driller.handle(event, None)).await;
    }
    run.check();
}

// ---------------------------------------------------------------- the template alone

#[test]
fn every_condition_is_the_one_claimed_and_star_grants_are_exceptions() {
    let template = template();
    let mut carried = BTreeSet::new();
    for resource in FUNCTIONS {
        for statement in statements(&template, resource) {
            let sid = statement["Sid"].as_str().unwrap_or("?");
            let found = conditions(statement);
            if !found.is_empty() {
                carried.insert((resource, sid.to_string()));
            }
            let claims: Vec<&Claim> = CONDITIONS
                .iter()
                .filter(|c| c.resource == resource && c.sid == sid)
                .collect();
            let claimed: Vec<(String, String, Vec<String>)> = claims
                .iter()
                .map(|c| {
                    (
                        c.operator.to_string(),
                        c.key.to_string(),
                        c.values.iter().map(|v| (*v).to_string()).collect(),
                    )
                })
                .collect();
            assert_eq!(
                found, claimed,
                "{resource}/{sid}: the condition it carries is not the one claimed"
            );
            let resources = strings(&statement["Resource"]);
            if resources.iter().any(|r| r == "*") {
                for action in strings(&statement["Action"]) {
                    let exception = STAR_EXCEPTIONS.iter().find(|(a, _, _)| *a == action);
                    let Some((_, key, _)) = exception else {
                        panic!(
                            "{resource}/{sid} grants {action} on \"*\" with no AWS reason listed"
                        );
                    };
                    let keys: Vec<&str> = found.iter().map(|(_, k, _)| k.as_str()).collect();
                    assert_eq!(
                        keys,
                        key.iter().copied().collect::<Vec<_>>(),
                        "{resource}/{sid}: {action} on \"*\" must be scoped by {key:?}, as its exception says"
                    );
                }
            }
        }
    }
    let claimed: BTreeSet<(&str, String)> = CONDITIONS
        .iter()
        .map(|c| (c.resource, c.sid.to_string()))
        .collect();
    assert_eq!(
        carried, claimed,
        "the statements carrying conditions are not those claimed"
    );
}

#[test]
fn update_service_is_scoped_to_the_managed_services() {
    let grants = granted(&template(), "ScalerFunction");
    let resources = &grants["ecs:UpdateService"];
    assert!(
        resources
            .iter()
            .all(|r| r.contains(":service/${ManagedClusterName}/")),
        "{resources:?}"
    );
}

#[test]
fn drain_first_grants_are_scoped_to_the_managed_cluster_and_the_prefixed_groups() {
    let grants = granted(&template(), "ScalerFunction");
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
}

#[test]
fn the_glob_and_the_parameters_read_as_iam_does() {
    assert!(glob("ecs-scaler:*", "ecs-scaler:last-target"));
    assert!(!glob("ecs-scaler:*", "ecs-drill:lock"));
    assert!(glob("a*b?d", "aXXbcd"));
    assert!(!glob("abc", "abcd"));
    let parameters = Parameters::new(&template(), "eu-west-1", &[("ManagedClusterName", "demo")]);
    assert_eq!(
        parameters.resolve(CLUSTER_ARN),
        format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/demo")
    );
    assert_eq!(parameters.resolve("ProbeNamespace"), "EcsControl/Probe");
}
