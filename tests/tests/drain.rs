//! Drain-first scale-in end to end: the scaler and the registrar through
//! their real adapters on the emulator, which serves ECS task scale-in
//! protection as ECS does and runs ECS's scheduler on a lower count (it
//! stops unprotected tasks only).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, Utc};
use e2e::{sample_event, Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{RegistrarConfig, ScalerConfig};
use registrar::handler::Registrar;
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";

type DrainingScaler = Scaler<EcsAdapter, CloudWatchAlarms, Elbv2Adapter>;

struct World {
    aws: Aws,
    region: String,
    target_group: String,
    scaler: DrainingScaler,
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
    t0: DateTime<Utc>,
}

/// A service of 6 running tasks, all registered and healthy in an `ip`
/// group the registrar manages; the scaler knows the registrar's document.
async fn world(region: &str, scaler_config: &aws_config::SdkConfig) -> World {
    let emulator = Emulator::shared();
    emulator.control(
        "POST",
        "settings",
        &json!({"scale_in_stops_tasks": true, "protection_minute_seconds": 2, "healthy_seconds": 1}),
    );
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    let (network, target_group) = aws.awsvpc_service_with_group(CLUSTER, SERVICE, 6).await;
    aws.run_service_tasks(CLUSTER, SERVICE, &network, 6).await;
    let registrar_document = RegistrarConfig::parse(
        &json!({"services": [{"cluster": CLUSTER, "service": SERVICE,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]}]})
        .to_string(),
    )
    .expect("registrar document");
    let policies = json!({"policies": [{
        "alarm": "web-cpu-high", "cluster": CLUSTER, "service": SERVICE,
        "adjustment_type": "ChangeInCapacity",
        "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
        "min_capacity": 1, "max_capacity": 10}]});
    let scaler = Scaler::new(
        ScalerConfig::parse(&policies.to_string()).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(scaler_config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(scaler_config)),
        false,
    )
    .with_target_groups(
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(scaler_config)),
        Some(&registrar_document),
    )
    .expect("bindings");
    let registrar = Registrar::new(
        registrar_document,
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        false,
    );
    // The scaler's clock is the emulator's: task protection expires in
    // real time there, and the drain compares its expiry with its own.
    let t0 = Utc::now();
    registrar
        .handle(sample_event("registrar/reconcile-schedule.json"), t0)
        .await
        .expect("reconcile");
    aws.wait_until_healthy(&target_group).await;
    assert_eq!(aws.targets(&target_group).await.len(), 6);
    World {
        aws,
        region: region.to_string(),
        target_group,
        scaler,
        registrar,
        t0,
    }
}

fn set_count(count: u32, request: &str) -> Value {
    json!({"command": "set_desired_count", "cluster": CLUSTER, "service": SERVICE,
           "desired_count": count, "reason": "e2e", "request_id": request})
}

fn tick(id: &str) -> Value {
    let mut event = sample_event("scaler/recheck-schedule.json");
    event["id"] = id.into();
    event
}

impl World {
    async fn scale(&self, event: Value, minute: i64) -> DecisionRecord {
        self.scaler
            .handle(event, "e2e", self.t0 + TimeDelta::minutes(minute))
            .await
            .expect("scaler")
    }

    /// Tasks ECS lists as meant to run (ListTasks without a status filter
    /// lists RUNNING, as ECS does).
    async fn running(&self) -> BTreeSet<String> {
        let out = self
            .aws
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(SERVICE)
            .send()
            .await
            .expect("list_tasks");
        out.task_arns().iter().cloned().collect()
    }

    async fn protection(&self, tasks: &BTreeSet<String>) -> Vec<bool> {
        let out = self
            .aws
            .ecs
            .get_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(tasks.iter().cloned().collect()))
            .send()
            .await
            .expect("get_task_protection");
        out.protected_tasks()
            .iter()
            .map(|t| t.protection_enabled())
            .collect()
    }

    async fn states(&self) -> Vec<String> {
        let mut states: Vec<String> = self
            .aws
            .targets(&self.target_group)
            .await
            .into_iter()
            .map(|(_, _, state)| state)
            .collect();
        states.sort();
        states
    }

    /// Waits until no target drains (the group's 2 s delay).
    async fn wait_drained(&self) {
        for _ in 0..50 {
            if !self.states().await.iter().any(|s| s == "draining") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("targets never drained");
    }
}

fn chosen(record: &DecisionRecord) -> BTreeSet<String> {
    record.services[0]
        .drain
        .as_ref()
        .expect("drain report")
        .chosen
        .iter()
        .map(|c| c.task_arn.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scale_in_drains_first_then_ecs_stops_exactly_the_drained_tasks() {
    let region = "eu-north-1";
    let w = world(region, &Emulator::shared().sdk_config(region)).await;
    let before = w.running().await;
    assert_eq!(before.len(), 6);

    let started = w.scale(set_count(2, "in"), 0).await;
    assert_eq!(started.services[0].action, Action::Draining, "{started:?}");
    let drained = chosen(&started);
    assert_eq!(drained.len(), 4);
    assert_eq!(w.aws.desired_count(CLUSTER, SERVICE).await, 6);
    assert_eq!(
        w.states().await,
        ["draining", "draining", "draining", "draining", "healthy", "healthy"]
    );
    // A reconcile meanwhile leaves the drained targets out.
    let reconciled = w
        .registrar
        .handle(
            sample_event("registrar/reconcile-schedule.json"),
            w.t0 + TimeDelta::seconds(30),
        )
        .await
        .expect("reconcile");
    assert_eq!(reconciled.groups[0].held_for_drain, 4);
    assert!(reconciled.groups[0].diff.register.is_empty());

    w.wait_drained().await;
    let lowered = w.scale(tick("t1"), 1).await;
    let d = &lowered.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert_eq!(d.after, Some(2));
    let left = w.running().await;
    assert_eq!(
        left,
        &before - &drained,
        "ECS stopped exactly the drained tasks"
    );
    assert_eq!(w.protection(&left).await, [true, true]);

    let finished = w.scale(tick("t2"), 2).await;
    assert!(
        finished.services[0]
            .notes
            .iter()
            .any(|n| n.contains("lifting protection")),
        "{finished:?}"
    );
    assert_eq!(w.protection(&left).await, [false, false]);
    assert_eq!(w.states().await, ["healthy", "healthy"]);
    let calls = Emulator::shared().calls(&w.region);
    assert!(calls.get("UpdateTaskProtection").copied().unwrap_or(0) >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_deregistration_is_finished_by_the_next_check() {
    let region = "eu-south-1";
    let emulator = Emulator::shared();
    let w = world(region, &emulator.sdk_config_single_attempt(region)).await;
    let started = w.scale(set_count(3, "in"), 0).await;
    let drained = chosen(&started);
    w.wait_drained().await;
    // The count's write never lands: the invocation fails after the drain
    // was recorded as lowered.
    emulator.fail(region, "UpdateService", "server_error", 1);
    let failed = w
        .scaler
        .handle(tick("t1"), "e2e", w.t0 + TimeDelta::minutes(1))
        .await;
    assert!(failed.is_err());
    assert_eq!(w.aws.desired_count(CLUSTER, SERVICE).await, 6);

    let again = w.scale(tick("t2"), 2).await;
    assert_eq!(again.services[0].action, Action::Scaled, "{again:?}");
    assert_eq!(w.aws.desired_count(CLUSTER, SERVICE).await, 3);
    let left = w.running().await;
    assert!(left.is_disjoint(&drained));
    assert_eq!(left.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scale_out_cancels_the_drain_and_the_targets_return() {
    let region = "eu-west-3";
    let w = world(region, &Emulator::shared().sdk_config(region)).await;
    w.scale(set_count(2, "in"), 0).await;
    let cancelled = w.scale(set_count(7, "out"), 1).await;
    let d = &cancelled.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert_eq!(d.drain.as_ref().unwrap().targets_registered, 4);
    assert_eq!(w.aws.desired_count(CLUSTER, SERVICE).await, 7);
    // Back in the group: registered again, none left draining.
    w.aws.wait_until_healthy(&w.target_group).await;
    assert_eq!(w.states().await, ["healthy"; 6]);
    // And no task carries a hold any more.
    let tasks = w
        .aws
        .ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(w.running().await.into_iter().collect()))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .expect("describe_tasks");
    assert!(tasks.tasks().iter().all(|t| t
        .tags()
        .iter()
        .all(|tag| tag.key() != Some("ecs-scaler:drain-hold-until"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn protection_left_by_a_crash_expires_on_its_own() {
    let region = "me-south-1";
    let w = world(region, &Emulator::shared().sdk_config(region)).await;
    w.scale(set_count(2, "in"), 0).await;
    w.wait_drained().await;
    w.scale(tick("t1"), 1).await;
    let left = w.running().await;
    assert_eq!(w.protection(&left).await, [true, true]);
    // The scaler never runs again. Another writer asks for one task: ECS
    // will not stop a protected task, so two keep running...
    w.aws.set_desired_count(CLUSTER, SERVICE, 1).await;
    assert_eq!(w.running().await.len(), 2);
    // ...until the protection (5 minutes, 2 s each here) expires by itself.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(w.protection(&left).await, [false, false]);
    assert_eq!(w.running().await.len(), 1);
}
