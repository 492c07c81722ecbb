//! The registrar's handler against fakes of its ports, fed by the samples in `events/`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control::batch::{Answer, BatchResponse, Outcome};
use ecs_control::config::RegistrarConfig;
use ecs_control::domain::registration::{
    HealthState, RegisteredTarget, ServiceTasks, Target, TaskInfo,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{EcsTasks, FailureKind, PortError, TargetGroups};
use ecs_control::testing::{assert_clear_refusal, changed};
use lambda_runtime::Diagnostic;
use registrar::events::{parse, Trigger};
use registrar::handler::{Registrar, RegistrarRecord};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const TG_PEERED: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-peered-vpc/fedcba9876543210";
const CONFIG: &str = include_str!("../../../infra/registrar-config.json");
const TASK_ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:task/demo/0f9d3c5e4b2a4d6f8e1c2b3a4d5e6f70";

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/registrar/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 10, 0)
        .single()
        .unwrap_or_default()
}

fn running_task(arn: &str, ip: &str) -> TaskInfo {
    TaskInfo {
        task_arn: arn.into(),
        last_status: "RUNNING".into(),
        desired_status: "RUNNING".into(),
        version: Some(3),
        private_ip: Some(ip.into()),
        private_ipv6: None,
        started_at: Some(now() - TimeDelta::minutes(10)),
        stop_code: None,
        availability_zone: None,
        drain_hold_until: None,
    }
}

fn web() -> ServiceRef {
    ServiceRef::new("demo", "web")
}

/// ECS in memory: each task belongs to a service; tasks can be listed but not
/// described (MISSING), and a service's listing can fail.
#[derive(Default)]
struct FakeEcs {
    tasks: Mutex<BTreeMap<String, (ServiceRef, TaskInfo)>>,
    missing: Mutex<Vec<String>>,
    failing: Mutex<HashMap<ServiceRef, PortError>>,
}

impl FakeEcs {
    /// Tasks of demo/web.
    fn with(tasks: Vec<TaskInfo>) -> Self {
        let fake = Self::default();
        for t in tasks {
            fake.put(t);
        }
        fake
    }

    fn put(&self, task: TaskInfo) {
        self.put_for(&web(), task);
    }

    fn put_for(&self, service: &ServiceRef, task: TaskInfo) {
        self.tasks
            .lock()
            .unwrap()
            .insert(task.task_arn.clone(), (service.clone(), task));
    }

    fn fail(&self, service: &ServiceRef, kind: FailureKind) {
        self.failing.lock().unwrap().insert(
            service.clone(),
            PortError::new(kind, "ecs:ListTasks", format!("injected for {service}")),
        );
    }
}

impl EcsTasks for FakeEcs {
    async fn service_tasks(&self, service: &ServiceRef) -> Result<ServiceTasks, PortError> {
        if let Some(e) = self.failing.lock().unwrap().get(service) {
            return Err(e.clone());
        }
        let missing = self.missing.lock().unwrap().clone();
        let mut listed = ServiceTasks::default();
        for (owner, task) in self.tasks.lock().unwrap().values() {
            if owner != service || task.desired_status != "RUNNING" {
                continue;
            }
            if missing.contains(&task.task_arn) {
                listed.missing.push(task.task_arn.clone());
            } else {
                listed.tasks.push(task.clone());
            }
        }
        Ok(listed)
    }

    async fn describe_task(&self, cluster: &str, arn: &str) -> Result<Option<TaskInfo>, PortError> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .get(arn)
            .filter(|(owner, _)| owner.cluster == cluster)
            .map(|(_, task)| task.clone()))
    }
}

/// Target groups in memory; registering makes a target `initial`, deregistering `draining`.
#[derive(Default)]
struct FakeElb {
    groups: Mutex<HashMap<String, BTreeMap<Target, HealthState>>>,
    calls: Mutex<Vec<(String, String, usize, bool)>>,
    /// Fail the Nth (1-based) call of an operation, once.
    fail_call: Mutex<Option<(&'static str, usize, FailureKind)>>,
    /// IPs RegisterTargets refuses: as ELBv2, the whole call fails.
    refuse: Mutex<Vec<String>>,
    /// How long DescribeTargetHealth takes to answer.
    slow: Mutex<Option<std::time::Duration>>,
    /// DescribeTargetHealth calls, by group.
    reads: Mutex<BTreeMap<String, usize>>,
}

impl FakeElb {
    fn with_groups(arns: &[&str]) -> Self {
        let fake = Self::default();
        for arn in arns {
            fake.groups
                .lock()
                .unwrap()
                .insert((*arn).to_string(), BTreeMap::new());
        }
        fake
    }

    fn set(&self, arn: &str, ip: &str, port: u16, state: HealthState) {
        self.groups
            .lock()
            .unwrap()
            .get_mut(arn)
            .expect("group")
            .insert(Target::new(ip, port), state);
    }

    fn state(&self, arn: &str, ip: &str, port: u16) -> Option<HealthState> {
        self.groups.lock().unwrap()[arn]
            .get(&Target::new(ip, port))
            .copied()
    }

    fn writes(&self) -> Vec<(String, String, usize, bool)> {
        self.calls.lock().unwrap().clone()
    }

    fn change(
        &self,
        operation: &'static str,
        arn: &str,
        targets: &[Target],
        state: HealthState,
    ) -> Result<(), PortError> {
        let nth = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == operation)
            .count()
            + 1;
        let failing = {
            let mut fail = self.fail_call.lock().unwrap();
            match *fail {
                Some((op, n, kind)) if op == operation && n == nth => {
                    *fail = None;
                    Some(kind)
                }
                _ => None,
            }
        };
        self.calls.lock().unwrap().push((
            operation.into(),
            arn.into(),
            targets.len(),
            failing.is_none(),
        ));
        if let Some(kind) = failing {
            return Err(PortError::new(kind, operation, "injected"));
        }
        let refused = self.refuse.lock().unwrap().clone();
        if let Some(bad) = targets.iter().find(|t| refused.contains(&t.ip)) {
            if operation == "register" {
                return Err(PortError::new(
                    FailureKind::Rejected,
                    operation,
                    format!(
                        "InvalidTarget: The IP address {} is not a valid target for this group",
                        bad.ip
                    ),
                ));
            }
        }
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(arn).ok_or_else(|| {
            PortError::new(FailureKind::NotFound, operation, "TargetGroupNotFound")
        })?;
        for t in targets {
            group.insert(t.clone(), state);
        }
        Ok(())
    }
}

impl TargetGroups for FakeElb {
    async fn targets(&self, arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(arn.to_string())
            .or_default() += 1;
        let slow = *self.slow.lock().unwrap();
        if let Some(delay) = slow {
            tokio::time::sleep(delay).await;
        }
        let groups = self.groups.lock().unwrap();
        let group = groups.get(arn).ok_or_else(|| {
            PortError::new(
                FailureKind::NotFound,
                "elasticloadbalancing:DescribeTargetHealth",
                format!("TargetGroupNotFound: {arn}"),
            )
        })?;
        Ok(group
            .iter()
            .map(|(target, state)| RegisteredTarget {
                target: target.clone(),
                state: *state,
                reason: None,
            })
            .collect())
    }

    async fn register(
        &self,
        arn: &str,
        targets: &[Target],
        _outside: bool,
    ) -> Result<(), PortError> {
        self.change("register", arn, targets, HealthState::Initial)
    }

    async fn deregister(
        &self,
        arn: &str,
        targets: &[Target],
        _outside: bool,
    ) -> Result<(), PortError> {
        self.change("deregister", arn, targets, HealthState::Draining)
    }
}

fn registrar(ecs: FakeEcs, elb: FakeElb) -> Registrar<FakeEcs, FakeElb> {
    Registrar::new(
        RegistrarConfig::parse(CONFIG).expect("config"),
        ecs,
        elb,
        false,
    )
}

fn elb(r: &Registrar<FakeEcs, FakeElb>) -> &FakeElb {
    r.ports().1
}

#[test]
fn every_sample_is_told_apart_by_shape() {
    for (name, kind) in [
        ("task-running", "task_change"),
        ("task-stopping", "task_change"),
        ("task-stopped", "task_change"),
        ("task-spot-termination", "task_change"),
        ("task-unconfigured-service", "task_change"),
        ("reconcile-schedule", "reconcile"),
        ("manual-reconcile-dry-run", "reconcile"),
    ] {
        let invocation = parse(sample(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_value(&invocation.trigger).expect("json");
        assert_eq!(json["kind"], kind, "{name}");
    }
    match parse(sample("task-running")).expect("parses").trigger {
        Trigger::TaskChange {
            cluster,
            service,
            task,
        } => {
            assert_eq!(
                (cluster.as_str(), service.as_deref()),
                ("demo", Some("web"))
            );
            assert_eq!(task.private_ip.as_deref(), Some("10.0.1.23"));
            assert_eq!(task.version, Some(3));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        parse(sample("manual-reconcile-dry-run"))
            .expect("parses")
            .dry_run
    );
}

#[test]
fn the_ip_is_read_from_container_interfaces_when_there_is_no_eni_attachment() {
    let mut event = sample("task-running");
    event["detail"]["attachments"] = serde_json::json!([]);
    event["detail"]["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] =
        "10.0.9.9".into();
    match parse(event).expect("parses").trigger {
        Trigger::TaskChange { task, .. } => {
            assert_eq!(task.private_ip.as_deref(), Some("10.0.9.9"))
        }
        other => panic!("{other:?}"),
    }
}

/// Two services, web and api, sharing the web group on 8080.
const SHARED: &str = r#"{"services": [
    {"cluster": "demo", "service": "web", "target_groups": [
        {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef", "port": 8080}]},
    {"cluster": "demo", "service": "api", "target_groups": [
        {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef", "port": 8080}]}
]}"#;

fn api() -> ServiceRef {
    ServiceRef::new("demo", "api")
}

fn shared_registrar(ecs: FakeEcs, elb: FakeElb) -> Registrar<FakeEcs, FakeElb> {
    Registrar::new(
        RegistrarConfig::parse(SHARED).expect("config"),
        ecs,
        elb,
        false,
    )
}

fn task_arn(n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/demo/{n:032x}")
}

fn reconcile_command(services: &[&ServiceRef], force: bool) -> Value {
    serde_json::json!({
        "command": "reconcile",
        "services": services.iter().map(|s| serde_json::json!({"cluster": s.cluster, "service": s.service})).collect::<Vec<_>>(),
        "force": force,
    })
}

#[tokio::test]
async fn a_manual_reconcile_of_one_service_keeps_its_neighbours_in_a_shared_group() {
    let ecs = FakeEcs::default();
    ecs.put_for(&web(), running_task(&task_arn(1), "10.0.0.1"));
    ecs.put_for(&api(), running_task(&task_arn(2), "10.0.0.2"));
    let groups = FakeElb::with_groups(&[TG]);
    groups.set(TG, "10.0.0.1", 8080, HealthState::Healthy);
    groups.set(TG, "10.0.0.2", 8080, HealthState::Healthy);
    let r = shared_registrar(ecs, groups);
    let record = r
        .handle(reconcile_command(&[&web()], false), now())
        .await
        .expect("reconciled");
    assert!(
        record.groups[0].diff.deregister.is_empty(),
        "{:?}",
        record.groups[0].diff
    );
    assert_eq!(record.groups[0].services, [web(), api()]);
    assert_eq!(
        elb(&r).state(TG, "10.0.0.2", 8080),
        Some(HealthState::Healthy)
    );
}

#[tokio::test]
async fn one_unreadable_service_does_not_stop_the_others_and_the_run_is_retried() {
    let config = r#"{"services": [
        {"cluster": "demo", "service": "gone", "target_groups": [
            {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef", "port": 8080}]},
        {"cluster": "demo", "service": "web", "target_groups": [
            {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef", "port": 8080}]}
    ]}"#;
    let gone_tg =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef";
    let ecs = FakeEcs::with(vec![running_task(&task_arn(1), "10.0.0.1")]);
    ecs.fail(&ServiceRef::new("demo", "gone"), FailureKind::Retryable);
    let groups = FakeElb::with_groups(&[TG, gone_tg]);
    groups.set(gone_tg, "10.0.0.7", 8080, HealthState::Healthy);
    let r = Registrar::new(
        RegistrarConfig::parse(config).expect("config"),
        ecs,
        groups,
        false,
    );
    let err = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect_err("one service skipped");
    assert!(err.is_retryable(), "{err}");
    // web was reconciled; gone's group lost nothing.
    assert_eq!(
        elb(&r).state(TG, "10.0.0.1", 8080),
        Some(HealthState::Initial)
    );
    assert_eq!(
        elb(&r).state(gone_tg, "10.0.0.7", 8080),
        Some(HealthState::Healthy)
    );
}

#[tokio::test]
async fn a_listed_but_missing_task_keeps_its_target() {
    let ecs = FakeEcs::with(vec![
        running_task(&task_arn(1), "10.0.0.1"),
        running_task(&task_arn(2), "10.0.0.2"),
    ]);
    ecs.missing.lock().unwrap().push(task_arn(2));
    let groups = FakeElb::with_groups(&[TG, TG_PEERED]);
    groups.set(TG, "10.0.0.1", 8080, HealthState::Healthy);
    groups.set(TG, "10.0.0.2", 8080, HealthState::Healthy);
    let r = registrar(ecs, groups);
    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("ran");
    let group = record
        .groups
        .iter()
        .find(|g| g.target_group_arn == TG)
        .expect("group");
    assert_eq!(group.held_back, [Target::new("10.0.0.2", 8080)]);
    assert!(group
        .note
        .as_deref()
        .is_some_and(|n| n.contains("missing from DescribeTasks")));
    assert_eq!(
        elb(&r).state(TG, "10.0.0.2", 8080),
        Some(HealthState::Healthy)
    );
}

#[tokio::test]
async fn a_reconcile_never_removes_most_of_a_group_unless_forced() {
    // Two tasks running, ten targets registered: eight would go (80%).
    let ecs = FakeEcs::with(vec![
        running_task(&task_arn(1), "10.0.0.1"),
        running_task(&task_arn(2), "10.0.0.2"),
    ]);
    let groups = FakeElb::with_groups(&[TG, TG_PEERED]);
    for i in 1..=10 {
        groups.set(TG, &format!("10.0.0.{i}"), 8080, HealthState::Healthy);
    }
    let r = registrar(ecs, groups);
    let record = r
        .handle(reconcile_command(&[&web()], false), now())
        .await
        .expect("ran");
    let group = record
        .groups
        .iter()
        .find(|g| g.target_group_arn == TG)
        .expect("group");
    assert_eq!((group.diff.deregister.len(), group.held_back.len()), (5, 3));
    assert!(group
        .note
        .as_deref()
        .is_some_and(|n| n.contains("held back 3")));
    let draining = |r: &Registrar<FakeEcs, FakeElb>| {
        (1..=10)
            .filter(|i| {
                elb(r).state(TG, &format!("10.0.0.{i}"), 8080) == Some(HealthState::Draining)
            })
            .count()
    };
    assert_eq!(draining(&r), 5);
    // The operator looks, then forces the rest.
    r.handle(reconcile_command(&[&web()], true), now())
        .await
        .expect("forced");
    assert_eq!(draining(&r), 8);
}

#[tokio::test]
async fn a_late_stopped_event_does_not_remove_the_task_that_reused_its_ip() {
    let mut event = sample("task-stopped");
    let stopped_arn = event["detail"]["taskArn"].as_str().unwrap().to_string();
    let ip = event["detail"]["attachments"][0]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "privateIPv4Address")
        .and_then(|d| d["value"].as_str())
        .unwrap()
        .to_string();
    event["detail"]["taskArn"] = stopped_arn.clone().into();
    // A new task of the same service now holds the IP.
    let ecs = FakeEcs::with(vec![running_task(&task_arn(9), &ip)]);
    let groups = FakeElb::with_groups(&[TG, TG_PEERED]);
    groups.set(TG, &ip, 8080, HealthState::Healthy);
    let r = registrar(ecs, groups);
    let record = r.handle(event, now()).await.expect("handled");
    assert!(
        record.groups[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&task_arn(9))),
        "{:?}",
        record.groups[0].note
    );
    assert_eq!(elb(&r).state(TG, &ip, 8080), Some(HealthState::Healthy));
    assert!(elb(&r).writes().is_empty());
}

#[tokio::test]
async fn an_ipv6_group_takes_the_task_ipv6_address() {
    let config = r#"{"services": [{"cluster": "demo", "service": "web", "target_groups": [
        {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef", "port": 8080},
        {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-peered-vpc/fedcba9876543210", "port": 8080, "address_family": "ipv6"}
    ]}]}"#;
    let mut task = running_task(TASK_ARN, "10.0.1.23");
    task.private_ipv6 = Some("2600:1f18::17".into());
    let ecs = FakeEcs::with(vec![task]);
    let r = Registrar::new(
        RegistrarConfig::parse(config).expect("config"),
        ecs,
        FakeElb::with_groups(&[TG, TG_PEERED]),
        false,
    );
    let mut event = sample("task-running");
    event["detail"]["attachments"][0]["details"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "privateIPv6Address", "value": "2600:1f18::17"}));
    r.handle(event, now()).await.expect("handled");
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Initial)
    );
    assert_eq!(
        elb(&r).state(TG_PEERED, "2600:1f18::17", 8080),
        Some(HealthState::Initial)
    );
}

#[tokio::test]
async fn a_running_task_is_registered_in_every_group_with_its_port() {
    let r = registrar(
        FakeEcs::with(vec![running_task(TASK_ARN, "10.0.1.23")]),
        FakeElb::with_groups(&[TG, TG_PEERED]),
    );
    let record = r
        .handle(sample("task-running"), now())
        .await
        .expect("handled");
    assert_eq!(record.groups.len(), 2);
    for arn in [TG, TG_PEERED] {
        assert_eq!(
            elb(&r).state(arn, "10.0.1.23", 8080),
            Some(HealthState::Initial)
        );
    }
    let metrics = registrar::handler::controller_metrics(&record);
    let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
    assert_eq!(value("Registrations"), Some(2.0));
    assert_eq!(value("Deregistrations"), Some(0.0));
    // A repeat finds the target registered and calls nothing.
    let calls_before = elb(&r).writes().len();
    let again = r
        .handle(sample("task-running"), now())
        .await
        .expect("again");
    assert!(again
        .groups
        .iter()
        .all(|g| g.calls.is_empty() && g.diff.unchanged == 1));
    assert_eq!(elb(&r).writes().len(), calls_before);
}

#[tokio::test]
async fn stopping_stopped_and_spot_interrupted_tasks_are_deregistered_with_their_port() {
    for event in ["task-stopping", "task-stopped", "task-spot-termination"] {
        let elb_fake = FakeElb::with_groups(&[TG, TG_PEERED]);
        elb_fake.set(TG, "10.0.1.23", 8080, HealthState::Healthy);
        elb_fake.set(TG_PEERED, "10.0.1.23", 8080, HealthState::Healthy);
        let r = registrar(FakeEcs::default(), elb_fake);
        r.handle(sample(event), now()).await.expect(event);
        assert_eq!(
            elb(&r).state(TG, "10.0.1.23", 8080),
            Some(HealthState::Draining),
            "{event}"
        );
        // Once draining, a repeat does nothing.
        let writes = elb(&r).writes().len();
        r.handle(sample(event), now()).await.expect(event);
        assert_eq!(elb(&r).writes().len(), writes, "{event}");
    }
}

#[tokio::test]
async fn a_late_running_event_after_the_stop_registers_nothing() {
    let mut stopped = running_task(TASK_ARN, "10.0.1.23");
    stopped.last_status = "STOPPED".into();
    stopped.desired_status = "STOPPED".into();
    stopped.version = Some(6);
    let r = registrar(
        FakeEcs::with(vec![stopped]),
        FakeElb::with_groups(&[TG, TG_PEERED]),
    );
    r.handle(sample("task-stopped"), now()).await.expect("stop");
    let record = r.handle(sample("task-running"), now()).await.expect("late");
    let ignored = record.ignored.expect("ignored");
    assert!(
        ignored.contains("stale event (task version 3)"),
        "{ignored}"
    );
    assert!(
        ignored.contains("desired status STOPPED (version 6)"),
        "{ignored}"
    );
    assert_eq!(elb(&r).state(TG, "10.0.1.23", 8080), None);
}

#[tokio::test]
async fn unconfigured_services_are_ignored_with_a_reason() {
    let r = registrar(FakeEcs::default(), FakeElb::with_groups(&[TG, TG_PEERED]));
    let record = r
        .handle(sample("task-unconfigured-service"), now())
        .await
        .expect("handled");
    assert_eq!(
        record.ignored.as_deref(),
        Some("service demo/batch-worker is not configured")
    );
    assert!(elb(&r).writes().is_empty());
}

#[tokio::test]
async fn reconcile_repairs_drift_both_ways_and_leaves_foreign_and_draining_alone() {
    let ecs = FakeEcs::with(vec![
        running_task("arn:t1", "10.0.0.1"),
        running_task("arn:t2", "10.0.0.2"),
    ]);
    let elb_fake = FakeElb::with_groups(&[TG, TG_PEERED]);
    elb_fake.set(TG, "10.0.0.1", 8080, HealthState::Healthy);
    elb_fake.set(TG, "10.0.0.7", 8080, HealthState::Healthy); // stale
    elb_fake.set(TG, "10.0.0.8", 8080, HealthState::Draining); // draining
    elb_fake.set(TG, "10.0.0.9", 9090, HealthState::Healthy); // foreign port
    let r = registrar(ecs, elb_fake);
    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("reconciled");
    let e = elb(&r);
    assert_eq!(e.state(TG, "10.0.0.2", 8080), Some(HealthState::Initial));
    assert_eq!(e.state(TG, "10.0.0.7", 8080), Some(HealthState::Draining));
    assert_eq!(e.state(TG, "10.0.0.9", 9090), Some(HealthState::Healthy));
    assert_eq!(
        e.state(TG_PEERED, "10.0.0.1", 8080),
        Some(HealthState::Initial)
    );
    let main = record
        .groups
        .iter()
        .find(|g| g.target_group_arn == TG)
        .expect("group");
    assert_eq!((main.diff.foreign, main.diff.draining), (1, 1));
    assert_eq!(main.running, 2);
}

#[tokio::test]
async fn a_task_the_scaler_is_draining_is_held_out_until_its_hold_ends() {
    let held = |until: DateTime<Utc>| TaskInfo {
        drain_hold_until: Some(until),
        ..running_task(TASK_ARN, "10.0.1.23")
    };
    let ecs = FakeEcs::with(vec![held(now() + TimeDelta::minutes(5))]);
    let r = registrar(ecs, FakeElb::with_groups(&[TG, TG_PEERED]));

    // A RUNNING event for it registers nothing, and says why.
    let record = r
        .handle(sample("task-running"), now())
        .await
        .expect("handled");
    assert!(elb(&r).writes().is_empty(), "{:?}", elb(&r).writes());
    let note = record.ignored.clone().unwrap_or_default();
    assert!(note.contains("draining this task"), "{record:?}");

    // A reconcile does not count it as running: its target, still
    // registered, is deregistered (the drain's first step, made again).
    elb(&r).set(TG, "10.0.1.23", 8080, HealthState::Healthy);
    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("reconciled");
    let main = record
        .groups
        .iter()
        .find(|g| g.target_group_arn == TG)
        .expect("group");
    assert_eq!((main.running, main.held_for_drain), (0, 1));
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Draining)
    );

    // Once the hold has passed (a drain a crash left behind), the task
    // returns to its groups.
    let later = now() + TimeDelta::minutes(6);
    elb(&r).set(TG, "10.0.1.23", 8080, HealthState::Unused);
    let record = r
        .handle(sample("task-running"), later)
        .await
        .expect("handled");
    assert_eq!(record.ignored, None, "{record:?}");
    assert_eq!(
        elb(&r).state(TG_PEERED, "10.0.1.23", 8080),
        Some(HealthState::Initial)
    );
}

#[tokio::test]
async fn reconcile_batches_two_hundred_targets_a_call() {
    let tasks = (0..450)
        .map(|i| {
            running_task(
                &format!("arn:t{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
            )
        })
        .collect();
    let r = registrar(FakeEcs::with(tasks), FakeElb::with_groups(&[TG, TG_PEERED]));
    r.handle(sample("reconcile-schedule"), now())
        .await
        .expect("reconciled");
    let to_main: Vec<usize> = elb(&r)
        .writes()
        .iter()
        .filter(|c| c.1 == TG)
        .map(|c| c.2)
        .collect();
    assert_eq!(to_main, [200, 200, 50]);
}

#[tokio::test]
async fn a_failed_batch_is_reported_and_the_retry_does_only_what_is_left() {
    let tasks = (0..450)
        .map(|i| {
            running_task(
                &format!("arn:t{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
            )
        })
        .collect();
    let elb_fake = FakeElb::with_groups(&[TG, TG_PEERED]);
    *elb_fake.fail_call.lock().unwrap() = Some(("register", 2, FailureKind::Retryable));
    let r = registrar(FakeEcs::with(tasks), elb_fake);
    let err = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect_err("one batch failed");
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("200 targets not changed ("),
        "{err}"
    );
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.PartialFailure");

    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("retry");
    let left: usize = record.groups.iter().map(|g| g.diff.register.len()).sum();
    let unchanged: usize = record.groups.iter().map(|g| g.diff.unchanged).sum();
    assert_eq!(left, 200, "only the failed batch is left");
    assert_eq!(unchanged, 450 + 250);
}

#[tokio::test]
async fn dry_run_reports_the_diff_and_calls_nothing() {
    let r = registrar(
        FakeEcs::with(vec![running_task("arn:t1", "10.0.0.1")]),
        FakeElb::with_groups(&[TG, TG_PEERED]),
    );
    let record = r
        .handle(sample("manual-reconcile-dry-run"), now())
        .await
        .expect("dry run");
    assert!(record.dry_run);
    assert!(record
        .groups
        .iter()
        .all(|g| g.diff.register.len() == 1 && g.calls.is_empty()));
    assert!(elb(&r).writes().is_empty());
}

#[tokio::test]
async fn unknown_target_groups_and_services_are_clear_non_retryable_errors() {
    let r = registrar(
        FakeEcs::with(vec![running_task(TASK_ARN, "10.0.1.23")]),
        FakeElb::with_groups(&[TG]),
    );
    let err = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect_err("peered group missing");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("TargetGroupNotFound"), "{err}");
    // The group that exists was still reconciled.
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Initial)
    );

    let mut command = sample("manual-reconcile-dry-run");
    command["services"][0]["service"] = "payments".into();
    let err = r.handle(command, now()).await.expect_err("unknown service");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.RejectedCommand"
    );

    let err = r
        .handle(
            serde_json::json!({"detail-type": "ECS Deployment State Change"}),
            now(),
        )
        .await
        .expect_err("unsupported");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.MalformedEvent"
    );
}

#[tokio::test]
async fn unhealthy_and_stuck_initial_targets_are_reported() {
    let elb_fake = FakeElb::with_groups(&[TG, TG_PEERED]);
    elb_fake.set(TG, "10.0.0.1", 8080, HealthState::Initial);
    elb_fake.set(TG, "10.0.0.2", 8080, HealthState::Unhealthy);
    let r = registrar(
        FakeEcs::with(vec![
            running_task("arn:t1", "10.0.0.1"),
            running_task("arn:t2", "10.0.0.2"),
        ]),
        elb_fake,
    );
    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("ok");
    let main = record
        .groups
        .iter()
        .find(|g| g.target_group_arn == TG)
        .expect("group");
    let concerns: Vec<(&str, HealthState)> = main
        .health_concerns
        .iter()
        .map(|c| (c.target.ip.as_str(), c.state))
        .collect();
    assert_eq!(
        concerns,
        [
            ("10.0.0.1", HealthState::Initial),
            ("10.0.0.2", HealthState::Unhealthy)
        ]
    );
    assert_eq!(main.health_concerns[0].task_running_seconds, Some(600));
}

#[tokio::test]
async fn hostile_inputs_get_a_clear_answer_and_are_never_echoed_whole() {
    let huge = "x".repeat(1 << 20);
    let with = |name: &str, change: &dyn Fn(&mut Value)| changed(sample(name), change);
    // (payload, what the answer must say): every one an error, none echoing a megabyte.
    let cases: Vec<(Value, &str)> = vec![
        (
            with("task-running", &|e| {
                e["detail"]["taskArn"] = huge.clone().into()
            }),
            "the task ARN is 1048576 characters; at most 2048",
        ),
        (
            with("task-running", &|e| {
                e["detail"]["group"] = format!("service:{huge}").into()
            }),
            "the service name is 1048576 characters",
        ),
        (
            with("task-running", &|e| {
                e["detail"]["clusterArn"] = huge.clone().into()
            }),
            "the cluster name is 1048576 characters",
        ),
        (
            with("task-running", &|e| {
                e["detail"]["attachments"][0]["details"][4]["value"] = huge.clone().into()
            }),
            "a task address is 1048576 characters",
        ),
        (
            with("task-running", &|e| e["detail"]["version"] = "three".into()),
            "invalid type: string",
        ),
        (
            with("task-running", &|e| {
                e["detail"]["version"] = u64::MAX.into()
            }),
            "invalid value",
        ),
        (
            with("task-running", &|e| e["detail"]["lastStatus"] = 42.into()),
            "invalid type: integer",
        ),
        (
            with("manual-reconcile-dry-run", &|e| {
                e["services"][0]["service"] = huge.clone().into()
            }),
            "a service name is 1048576 characters",
        ),
        (
            with("manual-reconcile-dry-run", &|e| {
                e["command"] = huge.clone().into()
            }),
            "bytes, cut)",
        ),
        (serde_json::json!({ huge.clone(): 1 }), "unrecognised"),
        (serde_json::json!("a string"), "expected a JSON object"),
    ];
    let r = registrar(
        FakeEcs::with(vec![running_task(TASK_ARN, "10.0.1.23")]),
        FakeElb::with_groups(&[TG, TG_PEERED]),
    );
    for (payload, says) in cases {
        let err = r.handle(payload, now()).await.expect_err("refused");
        assert_clear_refusal(err, says, "NonRetryable.MalformedEvent");
    }
    // A task of another account or region under a same-named cluster and
    // service is not this registrar's to register.
    for task_arn in [
        "arn:aws:ecs:eu-west-1:123456789012:task/demo/0f9d3c5e4b2a4d6f8e1c2b3a4d5e6f70",
        "arn:aws:ecs:us-east-1:999999999999:task/demo/0f9d3c5e4b2a4d6f8e1c2b3a4d5e6f70",
    ] {
        let event = with("task-running", &|e| {
            e["detail"]["taskArn"] = task_arn.into()
        });
        let record = r.handle(event, now()).await.expect("answered");
        let ignored = record.ignored.expect("ignored");
        assert!(
            ignored.contains("target groups are in account 123456789012, region us-east-1"),
            "{ignored}"
        );
    }
    assert!(elb(&r).writes().is_empty());
    // An unknown service named by hand is refused, not obeyed.
    let unknown = with("manual-reconcile-dry-run", &|e| {
        e["services"][0]["service"] = "someone-elses".into()
    });
    let err = r.handle(unknown, now()).await.expect_err("refused");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.RejectedCommand"
    );
}

/// A record as the FIFO queue's event source mapping delivers it, carrying `body`.
fn queued(message_id: &str, body: &Value) -> Value {
    let mut record = sample("sqs-batch")["Records"][0].clone();
    record["messageId"] = message_id.into();
    record["body"] = body.to_string().into();
    record
}

fn sqs_batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn batch_answer(answer: Answer<RegistrarRecord>) -> BatchResponse {
    match answer {
        Answer::Batch(batch) => batch,
        Answer::Direct(record) => panic!("a decision record, not a batch answer: {record:?}"),
    }
}

fn outcomes(answer: &BatchResponse) -> Vec<(Option<&str>, Outcome)> {
    answer
        .summary
        .messages
        .iter()
        .map(|m| (m.message_id.as_deref(), m.outcome))
        .collect()
}

fn serving_registrar() -> Registrar<FakeEcs, FakeElb> {
    registrar(
        FakeEcs::with(vec![running_task(TASK_ARN, "10.0.1.23")]),
        FakeElb::with_groups(&[TG, TG_PEERED]),
    )
}

/// A sample event, changed.
fn with(name: &str, change: &dyn Fn(&mut Value)) -> Value {
    changed(sample(name), change)
}

/// Both groups of web hold the sample task's target, healthy.
fn serving_registered_registrar() -> Registrar<FakeEcs, FakeElb> {
    let r = serving_registrar();
    for arn in [TG, TG_PEERED] {
        elb(&r).set(arn, "10.0.1.23", 8080, HealthState::Healthy);
    }
    r
}

/// The sample batch holds the task's RUNNING event, then its STOPPING one:
/// handled together, the task is acted on at its newest state only.
#[tokio::test]
async fn an_sqs_batch_acts_once_on_each_tasks_newest_state_and_lists_nothing_when_all_is_done() {
    let r = serving_registered_registrar();
    let answer = r
        .invoke(sample("sqs-batch"), now)
        .await
        .expect("a batch answers");
    let json = serde_json::to_value(&answer).expect("serialises");
    assert_eq!(json["batchItemFailures"], json!([]));
    assert_eq!(batch_answer(answer).summary.handled, 2);
    // No registration for a task already told to stop: one removal a group.
    let operations: Vec<String> = elb(&r).writes().into_iter().map(|w| w.0).collect();
    assert_eq!(operations, ["deregister", "deregister"]);
    for arn in [TG, TG_PEERED] {
        assert_eq!(
            elb(&r).state(arn, "10.0.1.23", 8080),
            Some(HealthState::Draining)
        );
        assert_eq!(elb(&r).reads.lock().unwrap()[arn], 1, "one read a group");
    }
}

/// Ten events of ten tasks in one batch: each group is read once and written
/// once for each kind of change, whatever the number of events.
#[tokio::test]
async fn a_batch_of_task_events_reads_each_group_once_and_writes_each_change_in_one_call() {
    let ecs = FakeEcs::default();
    let groups = FakeElb::with_groups(&[TG, TG_PEERED]);
    let mut records = Vec::new();
    for i in 1..=10u32 {
        let ip = format!("10.0.2.{i}");
        let mut task = running_task(&task_arn(100 + i), &ip);
        let stopping = i > 5;
        if stopping {
            // The old tasks of a deploy: registered, now told to stop.
            task.desired_status = "STOPPED".into();
            task.version = Some(4);
            for arn in [TG, TG_PEERED] {
                groups.set(arn, &ip, 8080, HealthState::Healthy);
            }
        }
        ecs.put(task);
        let event = with(
            if stopping {
                "task-stopping"
            } else {
                "task-running"
            },
            &|e| {
                e["detail"]["taskArn"] = task_arn(100 + i).into();
                e["detail"]["attachments"][0]["details"] = json!([
                    {"name": "privateIPv4Address", "value": ip.clone()}
                ]);
                e["detail"]["containers"][0]["networkInterfaces"] =
                    json!([{"privateIpv4Address": ip.clone()}]);
            },
        );
        records.push(queued(&format!("m{i}"), &event));
    }
    let r = registrar(ecs, groups);
    let answer = batch_answer(r.invoke(sqs_batch(records), now).await.expect("answers"));
    assert!(answer.failed_ids().is_empty(), "{:?}", answer.summary);
    assert_eq!(answer.summary.handled, 10);
    let mut writes: Vec<(String, String, usize)> = elb(&r)
        .writes()
        .into_iter()
        .map(|w| (w.0, w.1, w.2))
        .collect();
    writes.sort();
    let mut expected: Vec<(String, String, usize)> = ["deregister", "register"]
        .iter()
        .flat_map(|op| [TG, TG_PEERED].map(|arn| (op.to_string(), arn.to_string(), 5)))
        .collect();
    expected.sort();
    assert_eq!(writes, expected);
    for arn in [TG, TG_PEERED] {
        assert_eq!(elb(&r).reads.lock().unwrap()[arn], 1, "one read a group");
        for i in 1..=10u32 {
            let expected = if i > 5 {
                HealthState::Draining
            } else {
                HealthState::Initial
            };
            assert_eq!(
                elb(&r).state(arn, &format!("10.0.2.{i}"), 8080),
                Some(expected)
            );
        }
    }
}

/// Events of one task out of order across a batch: the highest version wins,
/// and a stop is final whatever order it came in.
#[tokio::test]
async fn events_out_of_order_in_a_batch_end_at_the_tasks_newest_state() {
    let r = serving_registered_registrar();
    let mut stopping = running_task(TASK_ARN, "10.0.1.23");
    stopping.desired_status = "STOPPED".into();
    stopping.version = Some(4);
    r.ports().0.put(stopping);
    // The STOPPING event first, then the older RUNNING one, arriving late.
    let batch = sqs_batch(vec![
        queued("m1", &sample("task-stopping")),
        queued("m2", &sample("task-running")),
    ]);
    let answer = batch_answer(r.invoke(batch, now).await.expect("answers"));
    assert!(answer.failed_ids().is_empty());
    let operations: Vec<String> = elb(&r).writes().into_iter().map(|w| w.0).collect();
    assert_eq!(operations, ["deregister", "deregister"]);
    for arn in [TG, TG_PEERED] {
        assert_eq!(
            elb(&r).state(arn, "10.0.1.23", 8080),
            Some(HealthState::Draining)
        );
    }
}

/// A batch's run and the next batch: the second, carrying a late RUNNING
/// event of a task the first deregistered, cannot undo it (ECS says the task
/// is stopping, so it is not registered again).
#[tokio::test]
async fn a_later_batch_with_a_stale_running_event_cannot_undo_an_earlier_stop() {
    let r = serving_registered_registrar();
    let mut stopping = running_task(TASK_ARN, "10.0.1.23");
    stopping.desired_status = "STOPPED".into();
    stopping.version = Some(4);
    r.ports().0.put(stopping);
    let first = sqs_batch(vec![queued("m1", &sample("task-stopping"))]);
    batch_answer(r.invoke(first, now).await.expect("answers"));
    let writes = elb(&r).writes();
    let second = sqs_batch(vec![queued("m2", &sample("task-running"))]);
    let answer = batch_answer(r.invoke(second, now).await.expect("answers"));
    assert!(answer.failed_ids().is_empty());
    assert_eq!(elb(&r).writes(), writes, "the stale event changed nothing");
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Draining)
    );
}

#[tokio::test]
async fn a_payload_sent_directly_is_answered_as_before() {
    let r = serving_registrar();
    let answer = r
        .invoke(sample("task-running"), now)
        .await
        .expect("handled");
    let json = serde_json::to_value(&answer).expect("serialises");
    assert_eq!(json["trigger"]["kind"], "task_change", "{json:#}");
    assert!(json.get("batchItemFailures").is_none());
    let err = r
        .invoke(json!({"command": "reboot"}), now)
        .await
        .expect_err("refused");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.MalformedEvent"
    );
}

#[tokio::test]
async fn a_retryable_failure_returns_that_message_and_every_later_one_in_order() {
    let r = serving_registrar();
    r.ports().0.put(running_task(&task_arn(7), "10.0.1.24"));
    *elb(&r).fail_call.lock().unwrap() = Some(("register", 1, FailureKind::Retryable));
    let m2 = queued("m2", &sample("task-running"));
    let m3 = queued(
        "m3",
        &with("task-running", &|e| {
            e["detail"]["taskArn"] = task_arn(7).into();
            e["detail"]["attachments"][0]["details"] =
                json!([{"name": "privateIPv4Address", "value": "10.0.1.24"}]);
            e["detail"]["containers"][0]["networkInterfaces"] =
                json!([{"privateIpv4Address": "10.0.1.24"}]);
        }),
    );
    let batch = sqs_batch(vec![
        queued("m1", &sample("task-unconfigured-service")),
        m2.clone(),
        m3.clone(),
    ]);
    let answer = batch_answer(r.invoke(batch, now).await.expect("answers"));
    assert_eq!(answer.failed_ids(), ["m2", "m3"]);
    assert_eq!(
        outcomes(&answer),
        [
            (Some("m1"), Outcome::Handled),
            (Some("m2"), Outcome::Failed),
            (Some("m3"), Outcome::Deferred),
        ]
    );
    assert_eq!(
        answer.summary.messages[1].error_type.as_deref(),
        Some("Retryable.PartialFailure")
    );

    // SQS redelivers the two, in order: both tasks end registered in both groups.
    let answer = batch_answer(
        r.invoke(sqs_batch(vec![m2, m3]), now)
            .await
            .expect("answers"),
    );
    assert!(answer.failed_ids().is_empty());
    assert_eq!(answer.summary.handled, 2);
    for arn in [TG, TG_PEERED] {
        for ip in ["10.0.1.23", "10.0.1.24"] {
            assert_eq!(
                elb(&r).state(arn, ip, 8080),
                Some(HealthState::Initial),
                "{arn} {ip}"
            );
        }
    }
}

#[tokio::test]
async fn a_malformed_or_rejected_message_is_dropped_and_the_rest_are_handled() {
    let r = serving_registrar();
    let unknown =
        json!({"command": "reconcile", "services": [{"cluster": "demo", "service": "payments"}]});
    let mut not_json = queued("m4", &json!({}));
    not_json["body"] = "not json".into();
    let batch = sqs_batch(vec![
        queued("m1", &sample("task-running")),
        queued("m2", &json!({"command": "reboot"})),
        queued("m3", &unknown),
        not_json,
        queued("m5", &sample("task-stopping")),
    ]);
    let answer = batch_answer(r.invoke(batch, now).await.expect("answers"));
    assert!(
        answer.failed_ids().is_empty(),
        "a message that fails on every delivery never goes back"
    );
    assert_eq!(
        outcomes(&answer),
        [
            (Some("m1"), Outcome::Handled),
            (Some("m2"), Outcome::Rejected),
            (Some("m3"), Outcome::Rejected),
            (Some("m4"), Outcome::Rejected),
            (Some("m5"), Outcome::Handled),
        ]
    );
    let error_type = |i: usize| answer.summary.messages[i].error_type.as_deref();
    assert_eq!(error_type(1), Some("NonRetryable.MalformedEvent"));
    assert_eq!(error_type(2), Some("NonRetryable.RejectedCommand"));
    assert_eq!(error_type(3), Some("NonRetryable.MalformedEvent"));
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Draining)
    );
}

#[tokio::test]
async fn the_same_sqs_message_delivered_twice_acts_once() {
    let r = serving_registered_registrar();
    let batch = sample("sqs-batch");
    let first = batch_answer(r.invoke(batch.clone(), now).await.expect("first"));
    assert_eq!(first.summary.handled, 2);
    let writes = elb(&r).writes();
    // The world the STOPPING event announced: ECS now says the task is stopping.
    let mut stopping = running_task(TASK_ARN, "10.0.1.23");
    stopping.desired_status = "STOPPED".into();
    stopping.version = Some(4);
    r.ports().0.put(stopping);

    let later = || now() + TimeDelta::minutes(5);
    let again = batch_answer(r.invoke(batch, later).await.expect("again"));
    assert!(again.failed_ids().is_empty());
    assert_eq!(again.summary.handled, 2);
    assert_eq!(
        elb(&r).writes(),
        writes,
        "the second delivery changed nothing"
    );
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Draining)
    );
}

#[tokio::test]
async fn an_envelope_that_is_not_a_readable_batch_fails_the_invocation_without_retry() {
    let r = serving_registrar();
    for payload in [
        json!({"Records": 5}),
        json!({"Records": []}),
        // No record says it comes from SQS.
        json!({"Records": [{"messageId": "m1", "body": "{}"}]}),
    ] {
        let err = r.invoke(payload.clone(), now).await.expect_err("refused");
        assert_eq!(
            Diagnostic::from(err).error_type,
            "NonRetryable.MalformedEvent",
            "{payload}"
        );
    }
}

#[test]
fn an_sqs_batch_given_to_the_parser_as_one_event_is_refused() {
    let err = parse(sample("sqs-batch")).expect_err("not one event");
    assert!(
        err.to_string().contains("an SQS batch is not one event"),
        "{err}"
    );
}

/// ELBv2 keeps a deregistered target `draining` for the group's deregistration
/// delay; a running task on that IP and port waits for it to drain.
#[tokio::test]
async fn a_running_ip_whose_target_drains_is_registered_only_once_drained() {
    let r = serving_registrar();
    for arn in [TG, TG_PEERED] {
        elb(&r).set(arn, "10.0.1.23", 8080, HealthState::Draining);
    }
    let record = r
        .handle(sample("task-running"), now())
        .await
        .expect("handled");
    assert!(elb(&r).writes().is_empty(), "{:?}", elb(&r).writes());
    assert_eq!(
        record.groups[0].diff.wait_for_drain,
        [Target::new("10.0.1.23", 8080)]
    );
    assert!(record.groups[0]
        .note
        .as_deref()
        .is_some_and(|n| n.contains("still draining")));
    let record = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect("reconciled");
    assert!(elb(&r).writes().is_empty(), "{:?}", elb(&r).writes());
    assert!(record
        .groups
        .iter()
        .all(|g| g.diff.wait_for_drain.len() == 1));

    // Drained (gone from the group): the next reconcile registers it.
    for arn in [TG, TG_PEERED] {
        elb(&r)
            .groups
            .lock()
            .unwrap()
            .get_mut(arn)
            .unwrap()
            .remove(&Target::new("10.0.1.23", 8080));
    }
    r.handle(sample("reconcile-schedule"), now())
        .await
        .expect("reconciled");
    assert_eq!(
        elb(&r).state(TG, "10.0.1.23", 8080),
        Some(HealthState::Initial)
    );
}

/// DescribeTasks may report a task ListTasks just returned as `MISSING`; it
/// may hold the IP, so a STOPPED event deregisters nothing, as a reconcile.
#[tokio::test]
async fn a_stopped_event_deregisters_nothing_while_a_listed_task_is_missing() {
    let ecs = FakeEcs::with(vec![running_task(&task_arn(9), "10.0.1.23")]);
    ecs.missing.lock().unwrap().push(task_arn(9));
    let groups = FakeElb::with_groups(&[TG, TG_PEERED]);
    groups.set(TG, "10.0.1.23", 8080, HealthState::Healthy);
    let r = registrar(ecs, groups);
    let record = r
        .handle(sample("task-stopped"), now())
        .await
        .expect("handled");
    assert!(elb(&r).writes().is_empty(), "{:?}", elb(&r).writes());
    assert_eq!(record.groups[0].held_back, [Target::new("10.0.1.23", 8080)]);
    assert!(
        record.groups[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("missing from DescribeTasks")),
        "{:?}",
        record.groups[0].note
    );
}

/// ELBv2 refuses a RegisterTargets call whole when one target is invalid; the
/// refused target is isolated and the other 449 register.
#[tokio::test]
async fn a_refused_target_is_isolated_and_its_peers_register() {
    let ip = |i: usize| format!("10.1.{}.{}", i / 250, i % 250);
    let tasks = (0..450)
        .map(|i| running_task(&format!("arn:t{i}"), &ip(i)))
        .collect();
    let elb_fake = FakeElb::with_groups(&[TG, TG_PEERED]);
    elb_fake.refuse.lock().unwrap().push(ip(300));
    let r = registrar(FakeEcs::with(tasks), elb_fake);
    let err = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect_err("one target refused");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&ip(300)), "{err}");
    for i in (0..450).filter(|i| *i != 300) {
        assert_eq!(elb(&r).state(TG, &ip(i), 8080), Some(HealthState::Initial));
    }
    assert_eq!(elb(&r).state(TG, &ip(300), 8080), None);
    // Halving 200 targets isolates one in 8 splits of two calls each.
    let to_main = elb(&r).writes().iter().filter(|w| w.1 == TG).count();
    assert_eq!(to_main, 3 + 2 * 8, "{:?}", elb(&r).writes());
}

/// ECS answers ServiceNotFoundException for a deleted service: none of its
/// tasks runs, so its targets leave (draining first), at most the capped share
/// a run; the run is not retried, and the record says which service is gone.
#[tokio::test]
async fn a_deleted_service_is_reported_not_retried_and_its_targets_leave_within_the_cap() {
    let gone = ServiceRef::new("demo", "api");
    let ecs = FakeEcs::with(vec![running_task(&task_arn(1), "10.0.0.1")]);
    ecs.fail(&gone, FailureKind::NotFound);
    let groups = FakeElb::with_groups(&[TG]);
    groups.set(TG, "10.0.0.1", 8080, HealthState::Healthy);
    for i in 2..=5 {
        groups.set(TG, &format!("10.0.0.{i}"), 8080, HealthState::Healthy);
    }
    let r = shared_registrar(ecs, groups);
    let draining = |r: &Registrar<FakeEcs, FakeElb>| {
        (2..=5)
            .filter(|i| {
                elb(r).state(TG, &format!("10.0.0.{i}"), 8080) == Some(HealthState::Draining)
            })
            .count()
    };
    let err = r
        .handle(sample("reconcile-schedule"), now())
        .await
        .expect_err("a deleted service is reported");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("service demo/api is deleted"),
        "{err}"
    );
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.PartialFailure"
    );
    // Five owned targets, four stale: half of five may go in one run.
    assert_eq!(draining(&r), 2);
    // Then half of what is left (one of three), then the last (one of two).
    for expected in [3, 4] {
        r.handle(sample("reconcile-schedule"), now())
            .await
            .expect_err("still deleted");
        assert_eq!(draining(&r), expected);
    }
    assert_eq!(
        elb(&r).state(TG, "10.0.0.1", 8080),
        Some(HealthState::Healthy)
    );
}

/// CloudWatch Logs caps one log event at 256 KB: the record of a 5,000-task
/// reconcile keeps every count and names at most a few hundred targets.
#[tokio::test]
async fn the_record_of_a_fleet_reconcile_is_bounded_and_keeps_every_count() {
    let tasks = (0..5_000)
        .map(|i| {
            running_task(
                &format!("arn:t{i}"),
                &format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256),
            )
        })
        .collect();
    let r = registrar(FakeEcs::with(tasks), FakeElb::with_groups(&[TG, TG_PEERED]));
    let answer = r
        .invoke(sample("reconcile-schedule"), now)
        .await
        .expect("reconciled");
    let text = serde_json::to_string(&answer).expect("serialises");
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    let json: Value = serde_json::from_str(&text).expect("json");
    let named = text.matches("\"ip\":").count();
    assert!(named <= registrar::handler::TARGETS_NAMED, "{named} named");
    assert_eq!(
        json["targets_not_named"].as_u64().unwrap() + named as u64,
        2 * (5_000 + 5_000),
        "each group: its diff and its calls"
    );
    for group in json["groups"].as_array().unwrap() {
        assert_eq!(group["counts"]["register"], 5_000);
        assert_eq!(group["counts"]["calls"], 25);
        assert_eq!(group["calls"][24]["count"], 200);
    }
}

/// Lambda ends an invocation at its timeout without a word: the registrar stops
/// first, logs its record, and fails retryably, so the work comes back.
#[tokio::test]
async fn work_stops_at_the_deadline_and_comes_back() {
    use std::time::{Duration, Instant};
    let r = serving_registrar();
    *elb(&r).slow.lock().unwrap() = Some(Duration::from_secs(30));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let err = r
        .handle_before(sample("task-running"), now(), Some(deadline))
        .await
        .expect_err("stopped at the deadline");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("before the Lambda timeout"),
        "{err}"
    );

    // In a batch, that message and every later one go back, in order.
    let batch = sqs_batch(vec![
        queued("m1", &sample("task-running")),
        queued("m2", &sample("task-stopping")),
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let answer = batch_answer(
        r.invoke_before(batch, now, Some(deadline))
            .await
            .expect("answers"),
    );
    assert_eq!(answer.failed_ids(), ["m1", "m2"]);
    assert!(elb(&r).writes().is_empty());
}

#[test]
fn the_deadline_leaves_a_margin_before_the_lambda_timeout() {
    use registrar::handler::{stop_at, DEADLINE_MARGIN};
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now();
    let before = tokio::time::Instant::now();
    let at = stop_at(now + Duration::from_secs(120), now).expect("a deadline");
    let after = tokio::time::Instant::now();
    assert!(at - after <= Duration::from_secs(120) - DEADLINE_MARGIN);
    assert!(at - before >= Duration::from_secs(114));
    // A short invocation keeps half its time for work.
    let at = stop_at(now + Duration::from_secs(4), now).expect("a deadline");
    assert!(at - before >= Duration::from_millis(1_900));
    // Lambda never hands out a deadline already past: a local runtime's stand-in.
    assert!(stop_at(SystemTime::UNIX_EPOCH + Duration::from_millis(600_000), now).is_none());
}
