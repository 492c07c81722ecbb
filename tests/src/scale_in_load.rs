//! A scale-in from 6 tasks to 2 under steady load, with the load balancer
//! played: how many requests fail, with drain-first scale-in and without.
//!
//! The scaler and the registrar run through their real adapters on the
//! emulator, whose ECS scheduler stops unprotected tasks when the count is
//! lowered (each stays RUNNING, told to stop, for a stop window) and whose
//! target groups drain a deregistered target for the group's delay.
//!
//! What stands in for AWS is marked. The load balancer: each request goes,
//! round robin, to a target registered and not draining; a request to a task
//! ECS has told to stop fails (its containers have had SIGTERM), as does a
//! request when no target is left. EventBridge: the task state changes reach
//! the registrar as events built from the tasks' real states.

use crate::{sample_event, Aws, Emulator, TASK_PORT};
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{RegistrarConfig, ScalerConfig};
use registrar::handler::Registrar;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";
/// Requests in each burst of the steady load.
const REQUESTS_PER_BURST: usize = 60;

/// What one run of the scale-in saw.
#[derive(Debug, Clone, Default)]
pub struct ScaleInUnderLoad {
    pub drain_first: bool,
    pub requests: usize,
    pub failed: usize,
    /// Minutes (simulated) until the count reached 2.
    pub minutes_to_scale_in: Option<i64>,
    /// The running tasks at the end.
    pub tasks_left: usize,
}

/// Runs the scale-in in `region` of `emulator`: 6 tasks behind an `ip`
/// group, a command sets the count to 2, then a tick a minute (the drain's
/// steps ride on it) with bursts of load around every step.
pub async fn scale_in_under_load(
    emulator: &Emulator,
    region: &str,
    drain_first: bool,
) -> ScaleInUnderLoad {
    // Tasks told to stop keep running 2 s (ECS's stop window).
    emulator.control(
        "POST",
        "settings",
        &json!({"scale_in_stops_tasks": true, "stop_seconds": 2, "healthy_seconds": 1}),
    );
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    let (network, target_group) = aws.awsvpc_service_with_group(CLUSTER, SERVICE, 6).await;
    let tasks = aws.run_service_tasks(CLUSTER, SERVICE, &network, 6).await;
    let registrar_document = RegistrarConfig::parse(
        &json!({"services": [{"cluster": CLUSTER, "service": SERVICE,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]}]})
        .to_string(),
    )
    .expect("registrar document");
    let policies = json!({
        "policies": [{"alarm": "web-requests-high", "cluster": CLUSTER, "service": SERVICE,
            "adjustment_type": "ChangeInCapacity",
            "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
            "min_capacity": 2, "max_capacity": 10}],
        "services": [{"cluster": CLUSTER, "service": SERVICE,
            "drain_before_scale_in": drain_first}]
    });
    let scaler = Scaler::new(
        ScalerConfig::parse(&policies.to_string()).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    )
    .with_target_groups(
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        Some(&registrar_document),
    )
    .expect("bindings");
    let registrar = Registrar::new(
        registrar_document,
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        false,
    );
    // The emulator's clock: task protection expires in real time there.
    let t0 = Utc::now();
    registrar
        .handle(sample_event("registrar/reconcile-schedule.json"), t0)
        .await
        .expect("reconcile");
    aws.wait_until_healthy(&target_group).await;

    let mut world = Balancer {
        aws,
        region: region.to_string(),
        target_group,
        ips: tasks.into_iter().collect(),
        told_to_stop: BTreeSet::new(),
        next: 0,
        run: ScaleInUnderLoad {
            drain_first,
            ..ScaleInUnderLoad::default()
        },
    };
    world.burst().await;
    let command = json!({"command": "set_desired_count", "cluster": CLUSTER,
        "service": SERVICE, "desired_count": 2, "reason": "the load fell",
        "request_id": "scale-in-6-to-2"});
    scaler
        .handle(command, "load", t0)
        .await
        .expect("scale-in command");
    for minute in 0..4 {
        let now = t0 + TimeDelta::minutes(minute);
        if minute > 0 {
            let mut tick = sample_event("scaler/recheck-schedule.json");
            tick["id"] = format!("load-minute-{minute}").into();
            scaler.handle(tick, "load", now).await.expect("tick");
        }
        world.burst().await;
        world.deliver_task_events(&registrar, now).await;
        world.burst().await;
        if world.run.minutes_to_scale_in.is_none()
            && world.aws.desired_count(CLUSTER, SERVICE).await == 2
        {
            world.run.minutes_to_scale_in = Some(minute);
        }
        // The rest of the minute: stop windows end, targets drain (2 s).
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            world.burst().await;
        }
    }
    world.run.tasks_left = world.running().await.len();
    world.run
}

/// The load balancer, played, and what it served.
struct Balancer {
    aws: Aws,
    region: String,
    target_group: String,
    /// Task ARN → its IP.
    ips: BTreeMap<String, String>,
    /// Tasks whose stop the registrar has been told of.
    told_to_stop: BTreeSet<String>,
    next: usize,
    run: ScaleInUnderLoad,
}

impl Balancer {
    async fn running(&self) -> BTreeSet<String> {
        self.aws
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(SERVICE)
            .desired_status(DesiredStatus::Running)
            .send()
            .await
            .expect("list_tasks")
            .task_arns()
            .iter()
            .cloned()
            .collect()
    }

    /// One burst of requests over the targets in service.
    async fn burst(&mut self) {
        let in_service: Vec<String> = self
            .aws
            .targets(&self.target_group)
            .await
            .into_iter()
            .filter(|(_, _, state)| state == "healthy" || state == "initial")
            .map(|(ip, _, _)| ip)
            .collect();
        let running = self.running().await;
        let serving: BTreeSet<&str> = self
            .ips
            .iter()
            .filter(|(arn, _)| running.contains(*arn))
            .map(|(_, ip)| ip.as_str())
            .collect();
        for _ in 0..REQUESTS_PER_BURST {
            self.run.requests += 1;
            let ok = if in_service.is_empty() {
                false
            } else {
                let ip = &in_service[self.next % in_service.len()];
                self.next += 1;
                serving.contains(ip.as_str())
            };
            if !ok {
                self.run.failed += 1;
            }
        }
    }

    /// "desired STOPPED" for each task ECS told to stop since the last
    /// delivery, as EventBridge delivers it.
    async fn deliver_task_events(
        &mut self,
        registrar: &Registrar<EcsAdapter, Elbv2Adapter>,
        now: DateTime<Utc>,
    ) {
        let running = self.running().await;
        let stopped: Vec<(String, String)> = self
            .ips
            .iter()
            .filter(|(arn, _)| !running.contains(*arn) && !self.told_to_stop.contains(*arn))
            .map(|(arn, ip)| (arn.clone(), ip.clone()))
            .collect();
        for (arn, ip) in stopped {
            let event = self.task_event(&arn, &ip);
            registrar.handle(event, now).await.expect("registrar");
            self.told_to_stop.insert(arn);
        }
    }

    fn task_event(&self, task_arn: &str, ip: &str) -> Value {
        let mut event = sample_event("registrar/task-stopping.json");
        let detail = &mut event["detail"];
        detail["clusterArn"] =
            format!("arn:aws:ecs:{}:123456789012:cluster/{CLUSTER}", self.region).into();
        detail["taskArn"] = task_arn.into();
        detail["group"] = format!("service:{SERVICE}").into();
        detail["attachments"][0]["details"][4]["value"] = ip.into();
        detail["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] = ip.into();
        event
    }
}

/// The two runs side by side, as the demo and the docs print them.
pub fn describe(runs: &[ScaleInUnderLoad]) -> String {
    let mut table = String::from(
        "| scale-in 6 → 2 | requests | failed | minutes to 2 tasks |\n| --- | ---: | ---: | ---: |\n",
    );
    for run in runs {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            if run.drain_first {
                "drain first"
            } else {
                "drain_before_scale_in: false"
            },
            run.requests,
            run.failed,
            run.minutes_to_scale_in
                .map_or_else(|| "-".to_string(), |m| m.to_string())
        ));
    }
    table
}
