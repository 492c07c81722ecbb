//! The registrar's handler against fakes of its ports, fed by the samples in `events/`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control::config::RegistrarConfig;
use ecs_control::domain::policy::ServiceRef;
use ecs_control::domain::registration::{HealthState, RegisteredTarget, Target, TaskInfo};
use ecs_control::ports::{EcsTasks, FailureKind, PortError, TargetGroups};
use lambda_runtime::Diagnostic;
use registrar::events::{parse, Trigger};
use registrar::handler::Registrar;
use serde_json::Value;
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
        started_at: Some(now() - TimeDelta::minutes(10)),
        stop_code: None,
    }
}

#[derive(Default)]
struct FakeEcs {
    tasks: Mutex<BTreeMap<String, TaskInfo>>,
}

impl FakeEcs {
    fn with(tasks: Vec<TaskInfo>) -> Self {
        let fake = Self::default();
        for t in tasks {
            fake.put(t);
        }
        fake
    }

    fn put(&self, task: TaskInfo) {
        self.tasks
            .lock()
            .unwrap()
            .insert(task.task_arn.clone(), task);
    }
}

impl EcsTasks for FakeEcs {
    async fn service_tasks(&self, _service: &ServiceRef) -> Result<Vec<TaskInfo>, PortError> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.desired_status == "RUNNING")
            .cloned()
            .collect())
    }

    async fn describe_task(
        &self,
        _cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskInfo>, PortError> {
        Ok(self.tasks.lock().unwrap().get(arn).cloned())
    }
}

/// Target groups in memory; registering makes a target `initial`, deregistering `draining`.
#[derive(Default)]
struct FakeElb {
    groups: Mutex<HashMap<String, BTreeMap<Target, HealthState>>>,
    calls: Mutex<Vec<(String, String, usize, bool)>>,
    /// Fail the Nth (1-based) call of an operation, once.
    fail_call: Mutex<Option<(&'static str, usize, FailureKind)>>,
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
