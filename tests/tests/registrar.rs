//! The registrar through its real AWS adapters against the local emulator.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{TimeZone, Utc};
use e2e::{sample_event, Aws, Emulator, Network, TASK_PORT};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::RegistrarConfig;
use registrar::handler::{Registrar, RegistrarRecord};
use serde_json::Value;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";

struct World {
    aws: Aws,
    network: Network,
    target_group: String,
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
}

async fn world(region: &str) -> World {
    world_of(region, &[SERVICE]).await
}

/// A world where every service in `services` feeds the one target group; only
/// the services that exist in ECS are created (a listed name may be missing).
async fn world_of(region: &str, services: &[&str]) -> World {
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    let network = aws.network().await;
    let target_group = aws.ip_target_group("web", &network.vpc_id).await;
    aws.create_awsvpc_service(CLUSTER, SERVICE, &network).await;
    let document = serde_json::json!({
        "services": services.iter().map(|service| serde_json::json!({
            "cluster": CLUSTER,
            "service": service,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}],
        })).collect::<Vec<_>>()
    });
    let registrar = Registrar::new(
        RegistrarConfig::parse(&document.to_string()).expect("config"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        false,
    );
    World {
        aws,
        network,
        target_group,
        registrar,
    }
}

/// A real-shaped task event for a task of the emulator.
fn task_event(sample: &str, region: &str, task_arn: &str, ip: &str) -> Value {
    let mut event = sample_event(&format!("registrar/{sample}.json"));
    let detail = &mut event["detail"];
    detail["clusterArn"] = format!("arn:aws:ecs:{region}:123456789012:cluster/{CLUSTER}").into();
    detail["taskArn"] = task_arn.into();
    detail["attachments"][0]["details"][4]["value"] = ip.into();
    detail["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] = ip.into();
    event
}

impl World {
    async fn handle(&self, event: Value) -> RegistrarRecord {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
            .single()
            .unwrap_or_default();
        self.registrar.handle(event, now).await.expect("handled")
    }

    async fn active_targets(&self) -> Vec<(String, u16)> {
        self.aws.active_targets(&self.target_group).await
    }

    async fn run_tasks(&self, count: usize) -> Vec<(String, String)> {
        self.aws
            .run_service_tasks(CLUSTER, SERVICE, &self.network, count)
            .await
    }
}

#[tokio::test]
async fn a_running_task_is_registered_and_a_stopped_one_deregistered_with_its_port() {
    let region = "us-east-1";
    let w = world(region).await;
    let tasks = w.run_tasks(1).await;
    let (arn, ip) = &tasks[0];
    // Someone else's target on another port of the same group must survive,
    // even on the task's own IP: ELBv2 keys targets by IP and port.
    let foreign = (ip.clone(), 9090);
    w.aws
        .register_target(&w.target_group, &foreign.0, foreign.1)
        .await;

    w.handle(task_event("task-running", region, arn, ip)).await;
    let mut expected = vec![(ip.clone(), TASK_PORT), foreign.clone()];
    expected.sort();
    assert_eq!(w.active_targets().await, expected);

    w.aws.stop_task(CLUSTER, arn).await;
    let record = w.handle(task_event("task-stopped", region, arn, ip)).await;
    let call = &record.groups[0].calls[0];
    assert_eq!(call.operation, "elasticloadbalancing:DeregisterTargets");
    assert_eq!(call.targets[0].port, TASK_PORT);
    assert_eq!(w.active_targets().await, [foreign]);
}

#[tokio::test]
async fn a_late_running_event_after_the_stop_registers_nothing() {
    let region = "us-east-2";
    let w = world(region).await;
    let tasks = w.run_tasks(1).await;
    let (arn, ip) = &tasks[0];
    w.aws.stop_task(CLUSTER, arn).await;
    w.handle(task_event("task-stopping", region, arn, ip)).await;
    let record = w.handle(task_event("task-running", region, arn, ip)).await;
    assert!(
        record
            .ignored
            .as_deref()
            .is_some_and(|r| r.contains("stale event")),
        "{:?}",
        record.ignored
    );
    assert!(w.active_targets().await.is_empty());
}

#[tokio::test]
async fn reconcile_repairs_drift_in_both_directions() {
    let region = "us-west-1";
    let w = world(region).await;
    let tasks = w.run_tasks(3).await;
    // One task already registered, one stale target left behind by a task long gone.
    w.aws
        .register_target(&w.target_group, &tasks[0].1, TASK_PORT)
        .await;
    w.aws
        .register_target(&w.target_group, "10.9.9.9", TASK_PORT)
        .await;

    let record = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    let group = &record.groups[0];
    assert_eq!(
        (group.diff.register.len(), group.diff.deregister.len()),
        (2, 1)
    );
    let mut expected: Vec<(String, u16)> = tasks
        .iter()
        .map(|(_, ip)| (ip.clone(), TASK_PORT))
        .collect();
    expected.sort();
    assert_eq!(w.active_targets().await, expected);

    // Reconciling again finds nothing to do.
    let again = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert!(again.groups[0].diff.is_empty());
    assert!(again.groups[0].calls.is_empty());
}

#[tokio::test]
async fn four_hundred_fifty_tasks_are_registered_in_three_calls() {
    let region = "eu-west-1";
    let w = world(region).await;
    let tasks = w.run_tasks(450).await;
    let record = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    let sizes: Vec<usize> = record.groups[0]
        .calls
        .iter()
        .map(|c| c.targets.len())
        .collect();
    assert_eq!(sizes, [200, 200, 50]);
    let distinct: std::collections::BTreeSet<&str> =
        tasks.iter().map(|(_, ip)| ip.as_str()).collect();
    assert_eq!(w.active_targets().await.len(), distinct.len());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let region = "eu-west-2";
    let w = world(region).await;
    w.run_tasks(2).await;
    let record = w
        .handle(sample_event("registrar/manual-reconcile-dry-run.json"))
        .await;
    assert!(record.dry_run);
    assert_eq!(record.groups[0].diff.register.len(), 2);
    assert!(record.groups[0].calls.is_empty());
    assert!(w.active_targets().await.is_empty());
}

fn reconcile_only(service: &str, force: bool) -> Value {
    serde_json::json!({
        "command": "reconcile",
        "services": [{"cluster": CLUSTER, "service": service}],
        "force": force,
    })
}

#[tokio::test]
async fn a_one_service_reconcile_keeps_the_other_services_targets_in_a_shared_group() {
    let region = "ap-south-1";
    let w = world_of(region, &[SERVICE, "api"]).await;
    w.aws
        .create_awsvpc_service(CLUSTER, "api", &w.network)
        .await;
    let web = w.run_tasks(1).await;
    let api = w.aws.run_service_tasks(CLUSTER, "api", &w.network, 2).await;
    w.handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert_eq!(w.active_targets().await.len(), 3);

    let record = w.handle(reconcile_only(SERVICE, false)).await;
    assert!(record.groups[0].diff.deregister.is_empty());
    let mut expected: Vec<(String, u16)> = web
        .iter()
        .chain(&api)
        .map(|(_, ip)| (ip.clone(), TASK_PORT))
        .collect();
    expected.sort();
    assert_eq!(w.active_targets().await, expected);
}

/// ECS answers ListTasks for a service it does not have with
/// ServiceNotFoundException: the service is reported deleted, the run is not
/// retried, and the stale targets in its group leave within the cap.
#[tokio::test]
async fn a_deleted_service_is_reported_not_retried_and_its_targets_leave() {
    let region = "ap-northeast-2";
    let w = world_of(region, &["deleted", SERVICE]).await;
    let tasks = w.run_tasks(2).await;
    for (_, ip) in &tasks {
        w.aws.register_target(&w.target_group, ip, TASK_PORT).await;
    }
    // Left behind by the deleted service's tasks.
    for i in 1..=2 {
        w.aws
            .register_target(&w.target_group, &format!("10.200.0.{i}"), TASK_PORT)
            .await;
    }
    let err = w
        .registrar
        .handle(
            sample_event("registrar/reconcile-schedule.json"),
            Utc::now(),
        )
        .await
        .expect_err("one service is deleted");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("service demo/deleted is deleted"),
        "{err}"
    );
    assert!(
        err.to_string().contains("ServiceNotFoundException"),
        "{err}"
    );
    let mut expected: Vec<(String, u16)> = tasks
        .iter()
        .map(|(_, ip)| (ip.clone(), TASK_PORT))
        .collect();
    expected.sort();
    assert_eq!(w.active_targets().await, expected);
}

#[tokio::test]
async fn a_task_listed_but_missing_from_describe_tasks_keeps_its_target() {
    let region = "ap-northeast-3";
    let w = world(region).await;
    let tasks = w.run_tasks(2).await;
    w.handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert_eq!(w.active_targets().await.len(), 2);
    Emulator::shared().make_tasks_missing(&[tasks[1].0.clone()], 1);
    let record = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert!(
        record.groups[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("missing from DescribeTasks")),
        "{:?}",
        record.groups[0].note
    );
    assert_eq!(w.active_targets().await.len(), 2);
}

#[tokio::test]
async fn a_reconcile_that_would_remove_most_of_a_group_holds_back() {
    let region = "ca-central-1";
    let w = world(region).await;
    let tasks = w.run_tasks(2).await;
    for (_, ip) in &tasks {
        w.aws.register_target(&w.target_group, ip, TASK_PORT).await;
    }
    for i in 1..=8 {
        w.aws
            .register_target(&w.target_group, &format!("10.200.0.{i}"), TASK_PORT)
            .await;
    }
    let record = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    let group = &record.groups[0];
    assert_eq!((group.diff.deregister.len(), group.held_back.len()), (5, 3));
    assert_eq!(w.active_targets().await.len(), 5);
    let forced = w.handle(reconcile_only(SERVICE, true)).await;
    assert_eq!(forced.groups[0].diff.deregister.len(), 3);
    assert_eq!(w.active_targets().await.len(), 2);
}

#[tokio::test]
async fn a_late_stopped_event_for_an_ip_a_running_task_now_holds_removes_nothing() {
    let region = "sa-east-1";
    let w = world(region).await;
    let tasks = w.run_tasks(2).await;
    w.handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    // The first task stopped long ago; its event arrives now carrying the IP
    // that the second, running task holds today.
    w.aws.stop_task(CLUSTER, &tasks[0].0).await;
    let (_, reused_ip) = &tasks[1];
    let record = w
        .handle(task_event("task-stopped", region, &tasks[0].0, reused_ip))
        .await;
    assert!(
        record.groups[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&tasks[1].0)),
        "{:?}",
        record.groups[0].note
    );
    assert!(w
        .active_targets()
        .await
        .contains(&(reused_ip.clone(), TASK_PORT)));
}

#[tokio::test]
async fn an_ipv6_group_gets_the_tasks_ipv6_addresses() {
    let region = "eu-north-1";
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    let network = aws.dual_stack_network().await;
    let group = aws.ip_target_group("web-v6", &network.vpc_id).await;
    aws.create_awsvpc_service(CLUSTER, SERVICE, &network).await;
    let document = serde_json::json!({"services": [{
        "cluster": CLUSTER, "service": SERVICE,
        "target_groups": [{"target_group_arn": group, "port": TASK_PORT, "address_family": "ipv6"}],
    }]});
    let registrar = Registrar::new(
        RegistrarConfig::parse(&document.to_string()).expect("config"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        false,
    );
    aws.run_service_tasks(CLUSTER, SERVICE, &network, 2).await;
    registrar
        .handle(
            sample_event("registrar/reconcile-schedule.json"),
            Utc::now(),
        )
        .await
        .expect("reconciled");
    let targets = aws.targets(&group).await;
    assert_eq!(targets.len(), 2);
    assert!(
        targets
            .iter()
            .all(|(ip, _, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        "{targets:?}"
    );
}

#[tokio::test]
async fn a_running_task_whose_target_drains_is_registered_after_the_deregistration_delay() {
    let region = "us-west-2";
    let w = world(region).await;
    let tasks = w.run_tasks(1).await;
    let (arn, ip) = &tasks[0];
    w.aws.register_target(&w.target_group, ip, TASK_PORT).await;
    w.aws
        .elbv2
        .deregister_targets()
        .target_group_arn(&w.target_group)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(ip)
                .port(i32::from(TASK_PORT))
                .build(),
        )
        .send()
        .await
        .expect("deregister_targets");

    let record = w.handle(task_event("task-running", region, arn, ip)).await;
    assert!(record.groups[0].calls.is_empty(), "{:?}", record.groups[0]);
    let record = w
        .handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert!(record.groups[0].calls.is_empty(), "{:?}", record.groups[0]);
    assert_eq!(
        w.aws.targets(&w.target_group).await,
        [(ip.clone(), TASK_PORT, "draining".to_string())]
    );

    // Once the delay has passed and the target is gone, a reconcile registers it.
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::from(e2e::DEREGISTRATION_DELAY_SECONDS) * 1000 + 300,
    ))
    .await;
    w.handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    assert_eq!(w.active_targets().await, [(ip.clone(), TASK_PORT)]);
}

#[tokio::test]
async fn a_stopped_event_deregisters_nothing_while_a_listed_task_is_missing() {
    let region = "eu-central-1";
    let w = world(region).await;
    let tasks = w.run_tasks(2).await;
    w.handle(sample_event("registrar/reconcile-schedule.json"))
        .await;
    // The first task stopped long ago; its late event carries the IP the
    // second task holds today, and ECS cannot describe that task just now.
    w.aws.stop_task(CLUSTER, &tasks[0].0).await;
    let (_, reused_ip) = &tasks[1];
    Emulator::shared().make_tasks_missing(&[tasks[1].0.clone()], 1);
    let record = w
        .handle(task_event("task-stopped", region, &tasks[0].0, reused_ip))
        .await;
    assert!(record.groups[0].calls.is_empty(), "{:?}", record.groups[0]);
    assert!(
        record.groups[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("missing from DescribeTasks")),
        "{:?}",
        record.groups[0].note
    );
    assert!(w
        .active_targets()
        .await
        .contains(&(reused_ip.clone(), TASK_PORT)));
}
