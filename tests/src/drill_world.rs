//! A world for drills on the local emulator: a service of two healthy tasks
//! behind an `ip` target group, a site on loopback for the probe checks, and
//! a stand-in for ECS's service scheduler (stopped tasks replaced and
//! registered, as the scheduler and the registrar would), and EventBridge's
//! rule taking the alarm state changes the emulator emits to the scaler.
//! The drill end-to-end tests and the demo share it.

use crate::crash_points::{CrashPoint, Crashing};
use crate::site::TestSite;
use crate::{Aws, Emulator, Network, TASK_PORT};
use chrono::Utc;
use drill::handler::{Driller, LOCK_TAG, STATE_TAG};
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{DrillConfig, RegistrarConfig, ScalerConfig};
use ecs_control::domain::drill::{Lock, LockState};
use probe::http::HttpAdapter;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::sync::Arc;

pub const CLUSTER: &str = "demo";
pub const SERVICE: &str = "web";

/// The lock's settle against the local emulator.
pub const LOCAL_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

pub type RealDriller =
    Driller<EcsAdapter, Elbv2Adapter, CloudWatchAlarms, HttpAdapter, CloudWatchMetrics>;
/// A drill function whose AWS calls die at a [`CrashPoint`].
pub type CrashingDriller = Driller<
    Crashing<EcsAdapter>,
    Crashing<Elbv2Adapter>,
    Crashing<CloudWatchAlarms>,
    HttpAdapter,
    CloudWatchMetrics,
>;

pub struct World {
    pub aws: Aws,
    pub config: aws_config::SdkConfig,
    pub network: Network,
    pub target_group: String,
    pub site: TestSite,
}

/// `web` with two running tasks, each healthy in an `ip` target group.
pub async fn world(region: &str) -> World {
    world_of(region, 2).await
}

/// `web` with `tasks` running tasks, each healthy in an `ip` target group.
pub async fn world_of(region: &str, tasks: usize) -> World {
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    let desired = i32::try_from(tasks).expect("a few tasks");
    let (network, target_group) = aws
        .awsvpc_service_with_group(CLUSTER, SERVICE, desired)
        .await;
    for (_, ip) in aws
        .run_service_tasks(CLUSTER, SERVICE, &network, tasks)
        .await
    {
        aws.register_target(&target_group, &ip, TASK_PORT).await;
    }
    aws.wait_until_healthy(&target_group).await;
    World {
        aws,
        config,
        network,
        target_group,
        site: TestSite::start().await,
    }
}

impl World {
    /// A drill document of one drill named `name` on `web`.
    pub fn driller(&self, name: &str, kind: Value, extra: Value) -> RealDriller {
        Driller::new(
            self.document(name, kind, extra),
            EcsAdapter::new(aws_sdk_ecs::Client::new(&self.config)),
            Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&self.config)),
            CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&self.config)),
            HttpAdapter::new(),
            CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&self.config)),
        )
        // The emulator answers in milliseconds: a short settle keeps the tests quick.
        .with_lock_settle(LOCAL_SETTLE)
    }

    /// [`Self::driller`], knowing the registrar binds `web` to the world's
    /// group (what a graceful `stop_tasks` drill drains from).
    pub fn driller_with_registrar(&self, name: &str, kind: Value, extra: Value) -> RealDriller {
        let registrar = RegistrarConfig::parse(
            &json!({"services": [{"cluster": CLUSTER, "service": SERVICE,
                "target_groups": [{"target_group_arn": self.target_group, "port": TASK_PORT}]}]})
            .to_string(),
        )
        .expect("registrar document");
        self.driller(name, kind, extra)
            .with_target_bindings(Some(&registrar))
            .expect("bindings")
    }

    /// [`Self::driller`], dying at `point`'s AWS call.
    pub fn crashing_driller(
        &self,
        name: &str,
        kind: Value,
        extra: Value,
        point: &CrashPoint,
    ) -> CrashingDriller {
        Driller::new(
            self.document(name, kind, extra),
            Crashing {
                inner: EcsAdapter::new(aws_sdk_ecs::Client::new(&self.config)),
                point: point.clone(),
            },
            Crashing {
                inner: Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&self.config)),
                point: point.clone(),
            },
            Crashing {
                inner: CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&self.config)),
                point: point.clone(),
            },
            HttpAdapter::new(),
            CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&self.config)),
        )
        .with_lock_settle(LOCAL_SETTLE)
    }

    /// A drill document of one drill named `name` on `web`.
    fn document(&self, name: &str, kind: Value, extra: Value) -> DrillConfig {
        let mut drill = json!({
            "name": name, "cluster": CLUSTER, "service": SERVICE, "kind": kind,
            "steady_state": {
                "running_equals_desired": true,
                "target_groups": [{"target_group_arn": self.target_group, "min_healthy": 1}],
                "probe_checks": [{"name": "site", "url": format!("{}/ok", self.site.http)}]
            },
            "max_duration_seconds": 60, "poll_seconds": 1, "rollback": "always"
        });
        // A key given as null is left out, to stand for a document without it.
        if let (Some(d), Some(e)) = (drill.as_object_mut(), extra.as_object()) {
            for (key, value) in e {
                if value.is_null() {
                    d.remove(key);
                } else {
                    d.insert(key.clone(), value.clone());
                }
            }
        }
        let document = json!({"drills": [drill]}).to_string();
        DrillConfig::parse(&document).expect("drill document")
    }

    pub async fn desired(&self) -> i32 {
        self.aws.desired_count(CLUSTER, SERVICE).await
    }

    /// The service's tasks meant to run.
    pub async fn running_tasks(&self) -> Vec<String> {
        self.aws
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(SERVICE)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await
            .expect("list_tasks")
            .task_arns()
            .to_vec()
    }

    /// Plays time passing for a drill whose invocation died: its lock
    /// expires, when one is held (a run stopped before it took the lock, or
    /// after it released it, leaves none).
    pub async fn expire_lock_if_held(&self) {
        let arn = self.service_arn().await;
        let raw = self.aws.service_tags(&arn).await.get(LOCK_TAG).cloned();
        if matches!(Lock::state(raw.as_deref(), Utc::now()), LockState::Held(_)) {
            self.expire_lock().await;
        }
    }

    /// Makes the held lock expired, as time passing would.
    ///
    /// # Panics
    /// When no lock is held.
    pub async fn expire_lock(&self) {
        let arn = self.service_arn().await;
        let raw = self.aws.service_tags(&arn).await.get(LOCK_TAG).cloned();
        let LockState::Held(lock) = Lock::state(raw.as_deref(), Utc::now()) else {
            panic!("no lock held: {raw:?}");
        };
        self.put_lock(&Lock {
            expires_at: Utc::now() - chrono::TimeDelta::minutes(1),
            ..lock
        })
        .await;
    }

    /// Writes `lock` as the service's drill lock, as a drill would.
    pub async fn put_lock(&self, lock: &Lock) {
        self.aws
            .ecs
            .tag_resource()
            .resource_arn(self.service_arn().await)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(LOCK_TAG)
                    .value(lock.encode())
                    .build(),
            )
            .send()
            .await
            .expect("tag");
    }

    async fn service_arn(&self) -> String {
        let service = self.aws.service(CLUSTER, SERVICE).await;
        service.service_arn().expect("arn").to_string()
    }

    pub async fn drill_tags(&self) -> Vec<String> {
        let service = self.aws.service(CLUSTER, SERVICE).await;
        let out = self
            .aws
            .ecs
            .list_tags_for_resource()
            .resource_arn(service.service_arn().unwrap())
            .send()
            .await
            .expect("tags");
        out.tags()
            .iter()
            .filter_map(|t| t.key().map(str::to_string))
            .filter(|k| k == LOCK_TAG || k == STATE_TAG)
            .collect()
    }

    /// Plays ECS's service scheduler: replaces stopped tasks and registers them.
    pub fn scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let world = self.clone();
        tokio::spawn(async move {
            loop {
                world.schedule_once().await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        })
    }

    /// One pass of ECS's service scheduler: starts tasks up to the desired
    /// count and registers them.
    pub async fn schedule_once(&self) {
        let desired = usize::try_from(self.desired().await).unwrap_or(0);
        let running = self
            .aws
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(SERVICE)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await
            .map(|o| o.task_arns().len())
            .unwrap_or(desired);
        if running < desired {
            let started = self
                .aws
                .run_service_tasks(CLUSTER, SERVICE, &self.network, desired - running)
                .await;
            for (_, ip) in started {
                self.aws
                    .register_target(&self.target_group, &ip, TASK_PORT)
                    .await;
            }
        }
    }
}

impl World {
    /// EventBridge's rule for one alarm: each "CloudWatch Alarm State Change"
    /// to ALARM the emulator emits for it reaches the scaler as emitted. The
    /// task panics (and stops) on the first change the scaler refuses or
    /// ignores: the drill would otherwise wait for an answer that never comes,
    /// and fail far from the cause. The panic is printed with the test's
    /// output, and the handle's `await` returns it.
    pub fn bridge(self: &Arc<Self>, alarm: &'static str) -> tokio::task::JoinHandle<()> {
        let world = self.clone();
        let scaler = Scaler::new(
            ScalerConfig::parse(include_str!("../../infra/scaler-policies.json"))
                .expect("policies"),
            EcsAdapter::new(aws_sdk_ecs::Client::new(&world.config)),
            CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&world.config)),
            false,
        );
        let region = world
            .config
            .region()
            .map(ToString::to_string)
            .expect("a region");
        tokio::spawn(async move {
            let emitted = || Emulator::shared().events("aws.cloudwatch", &region);
            let mut seen = emitted().len();
            loop {
                let events = emitted();
                for event in events.iter().skip(seen) {
                    let detail = &event["detail"];
                    if detail["alarmName"] != alarm || detail["state"]["value"] != "ALARM" {
                        continue;
                    }
                    match scaler.handle(event.clone(), "bridge", Utc::now()).await {
                        Ok(record) => assert!(
                            record.ignored.is_none(),
                            "the scaler ignored {alarm}'s ALARM: {:?}",
                            record.ignored
                        ),
                        Err(e) => panic!("the scaler refused {alarm}'s ALARM: {e}"),
                    }
                }
                seen = events.len();
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        })
    }
}

/// A start command.
pub fn start(name: &str, mode: &str) -> Value {
    json!({"command": "start", "drill": name, "mode": mode})
}
