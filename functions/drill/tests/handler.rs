//! The drill handler against fakes of its own ports: a drill that would
//! cross its floor is refused before it acts, the stop conditions are read
//! (again, under the lock) before it acts, the snapshot is saved before it
//! acts so a crash at that point is undone by the sweep, and two invocations
//! at once never act twice.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a test fails loudly

use chrono::{DateTime, TimeDelta, Utc};
use drill::handler::{DrillReport, Driller, LOCK_TAG, STATE_TAG};
use drill::journal::Step;
use ecs_control::config::DrillConfig;
use ecs_control::domain::alarm::{AlarmMetric, AlarmState, AlarmStatus, MetricPoint, MetricQuery};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::drill::{Lock, LockState, Outcome, SavedState};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::probe::{HttpObservation, MetricDatum, ProbeCheck};
use ecs_control::domain::registration::{
    HealthState, RegisteredTarget, ServiceTasks, Target, TaskInfo,
};
use ecs_control::domain::scaling::{ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{
    AlarmControls, AlarmStates, CheckAttempts, DrillControls, EcsServices, EcsTasks, FailureKind,
    MetricsSink, PortError, TaggedService, TargetGroups, TaskControls,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GROUP: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123";
const PORT: u16 = 8080;
/// Short, so the tests are quick; long enough that a fake's calls never
/// exceed it (the lock refuses a take slower than its settle).
const SETTLE: Duration = Duration::from_millis(200);

fn web() -> ServiceRef {
    ServiceRef::new("demo", "web")
}

// ---------------------------------------------------------------- fakes

/// A service of [`FakeEcs`]: its count and its tags.
#[derive(Debug, Clone)]
struct FakeService {
    arn: String,
    desired: u32,
    tags: BTreeMap<String, String>,
}

/// ECS in memory. Its scheduler is immediate: a new desired count starts or
/// stops tasks at once, and a stopped task is replaced at once. Every call
/// yields first, so two invocations run side by side interleave as they would
/// against AWS; every write is logged in order. `crash_at` makes the named
/// operation die (panic) after (`true`) or before (`false`) it takes effect,
/// as a Lambda stopped mid-call.
#[derive(Debug, Default)]
struct FakeEcs {
    services: Mutex<BTreeMap<ServiceRef, FakeService>>,
    /// Tasks meant to run, by service.
    tasks: Mutex<BTreeMap<ServiceRef, Vec<TaskInfo>>>,
    started: Mutex<usize>,
    halted: Mutex<BTreeMap<String, String>>,
    writes: Mutex<Vec<String>>,
    crash_at: Mutex<Option<(&'static str, bool)>>,
    /// The operation that fails (retryably), after letting this many through.
    fail_at: Mutex<Option<(&'static str, usize)>>,
}

impl FakeEcs {
    fn with(service: &ServiceRef, desired: u32) -> Self {
        let fake = Self::default();
        fake.services.lock().unwrap().insert(
            service.clone(),
            FakeService {
                arn: format!("arn:aws:ecs:us-east-1:123456789012:service/{service}"),
                desired,
                tags: BTreeMap::new(),
            },
        );
        fake.tasks
            .lock()
            .unwrap()
            .insert(service.clone(), Vec::new());
        fake.schedule(service);
        fake
    }

    fn desired(&self, service: &ServiceRef) -> u32 {
        self.services.lock().unwrap()[service].desired
    }

    fn tags(&self, service: &ServiceRef) -> BTreeMap<String, String> {
        self.services.lock().unwrap()[service].tags.clone()
    }

    fn set_tag(&self, service: &ServiceRef, key: &str, value: &str) {
        self.services
            .lock()
            .unwrap()
            .get_mut(service)
            .unwrap()
            .tags
            .insert(key.into(), value.into());
    }

    fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    fn running(&self, service: &ServiceRef) -> usize {
        self.tasks.lock().unwrap()[service].len()
    }

    /// Makes the lock on `service` one that expired a minute ago (what time
    /// passing past a crashed drill's lock does).
    fn expire_lock(&self, service: &ServiceRef) {
        let raw = self.tags(service)[LOCK_TAG].clone();
        let (LockState::Held(lock) | LockState::Expired(lock)) =
            Lock::state(Some(&raw), Utc::now())
        else {
            panic!("no lock to expire: {raw}");
        };
        let expired = Lock {
            expires_at: Utc::now() - TimeDelta::minutes(1),
            busy_until: None,
            ..lock
        };
        self.set_tag(service, LOCK_TAG, &expired.encode());
    }

    /// ECS's scheduler: tasks up to the desired count, at 10.0.0.<n>.
    fn schedule(&self, service: &ServiceRef) {
        let desired = usize::try_from(self.desired(service)).unwrap();
        let mut tasks = self.tasks.lock().unwrap();
        let running = tasks.get_mut(service).unwrap();
        running.truncate(desired);
        let mut started = self.started.lock().unwrap();
        while running.len() < desired {
            *started += 1;
            running.push(TaskInfo {
                task_arn: format!(
                    "arn:aws:ecs:us-east-1:123456789012:task/{}/t{:03}",
                    service.cluster, *started
                ),
                last_status: "RUNNING".into(),
                desired_status: "RUNNING".into(),
                version: Some(1),
                private_ip: Some(format!("10.0.0.{}", *started)),
                private_ipv6: None,
                started_at: Some(Utc::now()),
                stop_code: None,
                availability_zone: Some("us-east-1a".into()),
                drain_hold_until: None,
            });
        }
    }

    fn by_arn(&self, arn: &str) -> Result<ServiceRef, PortError> {
        self.services
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| s.arn == arn)
            .map(|(r, _)| r.clone())
            .ok_or_else(|| PortError::new(FailureKind::NotFound, "ecs:TagResource", arn))
    }

    fn found(&self, service: &ServiceRef) -> Result<FakeService, PortError> {
        self.services
            .lock()
            .unwrap()
            .get(service)
            .cloned()
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::NotFound,
                    "ecs:DescribeServices",
                    format!("service {service}: MISSING"),
                )
            })
    }

    /// A write about to happen: logged; a crash or failure set for it happens.
    async fn write(
        &self,
        operation: &'static str,
        what: String,
        apply: impl FnOnce(),
    ) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        if let Some((at, through)) = self.fail_at.lock().unwrap().as_mut() {
            if *at == operation {
                if *through == 0 {
                    return Err(PortError::new(
                        FailureKind::Retryable,
                        operation,
                        "injected",
                    ));
                }
                *through -= 1;
            }
        }
        let crash = *self.crash_at.lock().unwrap();
        match crash {
            Some((at, false)) if at == operation => panic!("crashed before {what}"),
            Some((at, true)) if at == operation => {
                apply();
                self.writes.lock().unwrap().push(what.clone());
                panic!("crashed after {what}");
            }
            _ => {
                apply();
                self.writes.lock().unwrap().push(what);
                Ok(())
            }
        }
    }
}

impl EcsServices for FakeEcs {
    async fn describe_service(&self, service: &ServiceRef) -> Result<ServiceState, PortError> {
        tokio::task::yield_now().await;
        let found = self.found(service)?;
        let running = u32::try_from(self.running(service)).unwrap();
        Ok(ServiceState {
            arn: found.arn,
            desired_count: found.desired,
            running_count: running,
            pending_count: 0,
            deployment_in_progress: false,
            task_definition: None,
            memory: ScalingMemory::default(),
            drill_in_progress: None,
        })
    }

    async fn inactive_services(
        &self,
        _: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        panic!("the drill does not ask which services are inactive")
    }

    async fn remember(&self, _: &str, _: &ScalingMemory) -> Result<(), PortError> {
        panic!("the drill never writes the scaler's memory")
    }

    async fn set_desired_count(&self, service: &ServiceRef, desired: u32) -> Result<(), PortError> {
        self.found(service)?;
        self.write(
            "ecs:UpdateService",
            format!("update {service} {desired}"),
            || {
                self.services
                    .lock()
                    .unwrap()
                    .get_mut(service)
                    .unwrap()
                    .desired = desired;
                self.schedule(service);
            },
        )
        .await
    }

    async fn task_size(&self, _: &str) -> Result<Option<TaskSize>, PortError> {
        panic!("the drill never reads a task size")
    }
}

impl EcsTasks for FakeEcs {
    async fn service_tasks(&self, service: &ServiceRef) -> Result<ServiceTasks, PortError> {
        tokio::task::yield_now().await;
        self.found(service)?;
        Ok(ServiceTasks {
            tasks: self.tasks.lock().unwrap()[service].clone(),
            missing: Vec::new(),
        })
    }

    async fn describe_task(&self, cluster: &str, arn: &str) -> Result<Option<TaskInfo>, PortError> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s.cluster == cluster)
            .flat_map(|(_, t)| t)
            .find(|t| t.task_arn == arn)
            .cloned())
    }
}

impl TaskControls for FakeEcs {
    async fn hold_for_drain(
        &self,
        cluster: &str,
        arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        self.write(
            "ecs:TagResource (task)",
            format!("hold {} task(s) of {cluster} until {until:?}", arns.len()),
            || {},
        )
        .await
    }

    async fn protection(
        &self,
        _: &str,
        _: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        panic!("the drill never reads task protection")
    }

    async fn protect(
        &self,
        _: &str,
        _: &[String],
        _: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        panic!("the drill never protects tasks")
    }
}

impl DrillControls for FakeEcs {
    async fn tagged_service(&self, service: &ServiceRef) -> Result<TaggedService, PortError> {
        tokio::task::yield_now().await;
        let found = self.found(service)?;
        Ok(TaggedService {
            arn: found.arn,
            desired_count: found.desired,
            tags: found.tags.into_iter().collect(),
        })
    }

    async fn tag_service(&self, arn: &str, tags: &[(String, String)]) -> Result<(), PortError> {
        let service = self.by_arn(arn)?;
        let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        self.write("ecs:TagResource", format!("tag {keys:?}"), || {
            let mut services = self.services.lock().unwrap();
            let found = services.get_mut(&service).unwrap();
            for (k, v) in tags {
                found.tags.insert(k.clone(), v.clone());
            }
        })
        .await
    }

    async fn untag_service(&self, arn: &str, keys: &[String]) -> Result<(), PortError> {
        let service = self.by_arn(arn)?;
        self.write("ecs:UntagResource", format!("untag {keys:?}"), || {
            let mut services = self.services.lock().unwrap();
            let found = services.get_mut(&service).unwrap();
            for k in keys {
                found.tags.remove(k);
            }
        })
        .await
    }

    async fn drills_halted(&self, cluster: &str) -> Result<Option<String>, PortError> {
        tokio::task::yield_now().await;
        Ok(self.halted.lock().unwrap().get(cluster).cloned())
    }

    async fn stop_task(&self, cluster: &str, arn: &str, reason: &str) -> Result<(), PortError> {
        let service = self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .find(|(s, tasks)| s.cluster == cluster && tasks.iter().any(|t| t.task_arn == arn))
            .map(|(s, _)| s.clone())
            .ok_or_else(|| PortError::new(FailureKind::NotFound, "ecs:StopTask", arn))?;
        self.write("ecs:StopTask", format!("stop {arn} ({reason})"), || {
            self.tasks
                .lock()
                .unwrap()
                .get_mut(&service)
                .unwrap()
                .retain(|t| t.task_arn != arn);
            self.schedule(&service);
        })
        .await
    }
}

/// Target groups in memory; clones share them.
#[derive(Debug, Clone, Default)]
struct FakeElb {
    groups: Arc<Mutex<BTreeMap<String, BTreeMap<Target, HealthState>>>>,
    writes: Arc<Mutex<Vec<String>>>,
}

impl FakeElb {
    /// Every running task of `ecs`'s `service` healthy in `group`.
    fn healthy(ecs: &FakeEcs, service: &ServiceRef, group: &str) -> Self {
        let fake = Self::default();
        let targets = ecs.tasks.lock().unwrap()[service]
            .iter()
            .map(|t| {
                (
                    Target::new(t.private_ip.clone().unwrap(), PORT),
                    HealthState::Healthy,
                )
            })
            .collect();
        fake.groups.lock().unwrap().insert(group.into(), targets);
        fake
    }
}

impl TargetGroups for FakeElb {
    async fn targets(&self, group: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        tokio::task::yield_now().await;
        let groups = self.groups.lock().unwrap();
        let found = groups.get(group).ok_or_else(|| {
            PortError::new(
                FailureKind::NotFound,
                "elasticloadbalancing:DescribeTargetHealth",
                group,
            )
        })?;
        Ok(found
            .iter()
            .map(|(target, state)| RegisteredTarget {
                target: target.clone(),
                state: *state,
                reason: None,
            })
            .collect())
    }

    async fn register(&self, group: &str, targets: &[Target], _: bool) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        self.writes
            .lock()
            .unwrap()
            .push(format!("register {} in {group}", targets.len()));
        let mut groups = self.groups.lock().unwrap();
        let found = groups.entry(group.into()).or_default();
        for t in targets {
            // Healthy at once: the fake's health checks pass immediately.
            found.insert(t.clone(), HealthState::Healthy);
        }
        Ok(())
    }

    async fn deregister(&self, group: &str, targets: &[Target], _: bool) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        self.writes
            .lock()
            .unwrap()
            .push(format!("deregister {} in {group}", targets.len()));
        let mut groups = self.groups.lock().unwrap();
        let found = groups.entry(group.into()).or_default();
        for t in targets {
            if let Some(state) = found.get_mut(t) {
                *state = HealthState::Draining;
            }
        }
        Ok(())
    }
}

/// CloudWatch alarms in memory. `fire_after`: the named alarm goes to ALARM
/// once it has been described that many times (a stop condition that fires
/// between two reads).
#[derive(Debug, Default)]
struct FakeAlarms {
    alarms: Mutex<BTreeMap<String, AlarmState>>,
    described: Mutex<usize>,
    fire_after: Mutex<Option<(String, usize)>>,
    writes: Mutex<Vec<String>>,
}

impl FakeAlarms {
    fn with(alarms: &[(&str, AlarmState)]) -> Self {
        let fake = Self::default();
        for (name, state) in alarms {
            fake.alarms.lock().unwrap().insert((*name).into(), *state);
        }
        fake
    }
}

impl AlarmStates for FakeAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        tokio::task::yield_now().await;
        let mut described = self.described.lock().unwrap();
        *described += 1;
        let mut alarms = self.alarms.lock().unwrap();
        if let Some((name, after)) = self.fire_after.lock().unwrap().as_ref() {
            if *described > *after {
                alarms.insert(name.clone(), AlarmState::Alarm);
            }
        }
        Ok(names
            .iter()
            .filter_map(|n| {
                alarms.get(n).map(|state| AlarmStatus {
                    name: n.clone(),
                    state: *state,
                    state_transitioned_at: None,
                    reason_data: None,
                    metric: None::<AlarmMetric>,
                })
            })
            .collect())
    }

    async fn metric_data(
        &self,
        _: &[MetricQuery],
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        panic!("the drill reads no metric data")
    }
}

impl AlarmControls for FakeAlarms {
    async fn set_alarm_state(
        &self,
        alarm: &str,
        state: AlarmState,
        reason: &str,
    ) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        self.writes
            .lock()
            .unwrap()
            .push(format!("set {alarm} {state:?} ({reason})"));
        self.alarms.lock().unwrap().insert(alarm.into(), state);
        Ok(())
    }
}

/// The drills here have no probe checks: any attempt is a test bug.
#[derive(Debug, Default)]
struct NoHttp;

impl CheckAttempts for NoHttp {
    async fn attempt(&self, check: &ProbeCheck, _: usize, _: Duration) -> HttpObservation {
        panic!("no probe check was configured, yet {} was run", check.name)
    }
}

#[derive(Debug, Default)]
struct NoMetrics;

impl MetricsSink for NoMetrics {
    async fn put(&self, _: &str, _: &[MetricDatum], _: DateTime<Utc>) -> Result<(), PortError> {
        Ok(())
    }
}

type FakeDriller = Driller<Ecs, FakeElb, Alarms, NoHttp, NoMetrics>;

/// The handler takes its ports by value; these share the fake, so the test
/// reads it after the handler (or a crashed one) is done with it.
#[derive(Debug, Clone)]
struct Ecs(Arc<FakeEcs>);

#[derive(Debug, Clone)]
struct Alarms(Arc<FakeAlarms>);

impl EcsServices for Ecs {
    async fn describe_service(&self, s: &ServiceRef) -> Result<ServiceState, PortError> {
        self.0.describe_service(s).await
    }
    async fn inactive_services(
        &self,
        s: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        self.0.inactive_services(s).await
    }
    async fn remember(&self, arn: &str, m: &ScalingMemory) -> Result<(), PortError> {
        self.0.remember(arn, m).await
    }
    async fn set_desired_count(&self, s: &ServiceRef, n: u32) -> Result<(), PortError> {
        self.0.set_desired_count(s, n).await
    }
    async fn task_size(&self, arn: &str) -> Result<Option<TaskSize>, PortError> {
        self.0.task_size(arn).await
    }
}

impl EcsTasks for Ecs {
    async fn service_tasks(&self, s: &ServiceRef) -> Result<ServiceTasks, PortError> {
        self.0.service_tasks(s).await
    }
    async fn describe_task(&self, c: &str, arn: &str) -> Result<Option<TaskInfo>, PortError> {
        self.0.describe_task(c, arn).await
    }
}

impl TaskControls for Ecs {
    async fn hold_for_drain(
        &self,
        c: &str,
        arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        self.0.hold_for_drain(c, arns, until).await
    }
    async fn protection(
        &self,
        c: &str,
        arns: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        self.0.protection(c, arns).await
    }
    async fn protect(
        &self,
        c: &str,
        arns: &[String],
        m: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        self.0.protect(c, arns, m).await
    }
}

impl DrillControls for Ecs {
    async fn tagged_service(&self, s: &ServiceRef) -> Result<TaggedService, PortError> {
        self.0.tagged_service(s).await
    }
    async fn tag_service(&self, arn: &str, tags: &[(String, String)]) -> Result<(), PortError> {
        self.0.tag_service(arn, tags).await
    }
    async fn untag_service(&self, arn: &str, keys: &[String]) -> Result<(), PortError> {
        self.0.untag_service(arn, keys).await
    }
    async fn drills_halted(&self, c: &str) -> Result<Option<String>, PortError> {
        self.0.drills_halted(c).await
    }
    async fn stop_task(&self, c: &str, arn: &str, reason: &str) -> Result<(), PortError> {
        self.0.stop_task(c, arn, reason).await
    }
}

impl AlarmStates for Alarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        self.0.describe_alarms(names).await
    }
    async fn metric_data(
        &self,
        q: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        self.0.metric_data(q, start, end).await
    }
}

impl AlarmControls for Alarms {
    async fn set_alarm_state(&self, a: &str, s: AlarmState, r: &str) -> Result<(), PortError> {
        self.0.set_alarm_state(a, s, r).await
    }
}

// ---------------------------------------------------------------- set-up

/// The world a test drills: `web` with `tasks` running tasks, each healthy
/// in [`GROUP`], and the abort alarm `web-5xx` in OK.
struct Fixture {
    ecs: Arc<FakeEcs>,
    elb: FakeElb,
    alarms: Arc<FakeAlarms>,
}

impl Fixture {
    fn new(tasks: u32) -> Self {
        let ecs = Arc::new(FakeEcs::with(&web(), tasks));
        let elb = FakeElb::healthy(&ecs, &web(), GROUP);
        let alarms = Arc::new(FakeAlarms::with(&[("web-5xx", AlarmState::Ok)]));
        Self { ecs, elb, alarms }
    }

    /// A driller of one drill `name` of `kind` on `web`; `extra` overrides
    /// the drill's keys (null removes one).
    fn driller(&self, name: &str, kind: Value, extra: Value) -> FakeDriller {
        let mut drill = json!({
            "name": name, "cluster": "demo", "service": "web", "kind": kind,
            "steady_state": {
                "running_equals_desired": true,
                "target_groups": [{"target_group_arn": GROUP, "min_healthy": 1}]
            },
            "abort_alarms": ["web-5xx"],
            "max_duration_seconds": 60, "poll_seconds": 1, "rollback": "always",
            "selection": "first"
        });
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                drill.as_object_mut().unwrap().remove(key);
            } else {
                drill[key] = value.clone();
            }
        }
        let config =
            DrillConfig::parse(&json!({ "drills": [drill] }).to_string()).expect("drill document");
        Driller::new(
            config,
            Ecs(self.ecs.clone()),
            self.elb.clone(),
            Alarms(self.alarms.clone()),
            NoHttp,
            NoMetrics,
        )
        .with_lock_settle(SETTLE)
    }
}

fn start(name: &str, mode: &str) -> Value {
    json!({"command": "start", "drill": name, "mode": mode})
}

fn sweep() -> Value {
    json!({"command": "sweep"})
}

fn scale_up() -> Value {
    json!({"type": "scale", "adjustment": 2, "hold_seconds": 0})
}

fn outcome(report: &DrillReport) -> &Outcome {
    report.outcome.as_ref().expect("an outcome")
}

fn refusal(report: &DrillReport) -> &str {
    match outcome(report) {
        Outcome::Refused { why } => why,
        other => panic!("not refused: {other:?}; journal {:#?}", report.journal),
    }
}

// ---------------------------------------------------------------- the floor

#[tokio::test]
async fn a_scale_drill_below_its_floor_is_refused_before_anything_is_written() {
    let f = Fixture::new(3);
    // min_healthy 2 sets the floor: a desired count of 1 would cross it.
    let d = f.driller(
        "scale-down",
        json!({"type": "scale", "desired_count": 1, "hold_seconds": 0}),
        json!({"steady_state": {"target_groups": [{"target_group_arn": GROUP, "min_healthy": 2}]}}),
    );
    let report = d
        .handle(start("scale-down", "execute"), None)
        .await
        .expect("refused, not failed");
    assert_eq!(
        refusal(&report),
        "a desired count of 1 is below the floor of 2 \
         (max of 1, the steady state's min_healthy and the scaler's min_capacity)"
    );
    assert!(f.ecs.writes().is_empty(), "{:?}", f.ecs.writes());
    assert_eq!(f.ecs.desired(&web()), 3);
}

#[tokio::test]
async fn the_scalers_bounds_are_the_floor_and_ceiling_of_a_drill() {
    let f = Fixture::new(4);
    let bounds = BTreeMap::from([(web(), CapacityBounds { min: 3, max: 5 })]);
    // Stopping 2 of 4 leaves 2, below the scaler's min_capacity of 3.
    let stop = f
        .driller(
            "stop-two",
            json!({"type": "stop_tasks", "count": 2}),
            json!({}),
        )
        .with_capacity_bounds(bounds.clone());
    let report = stop
        .handle(start("stop-two", "execute"), None)
        .await
        .expect("refused");
    assert!(
        refusal(&report)
            .starts_with("stopping 2 of 4 running tasks would leave 2, below the floor of 3"),
        "{report:?}"
    );
    // Scaling 4 -> 6 crosses the scaler's max_capacity of 5.
    let up = f
        .driller("scale-up", scale_up(), json!({}))
        .with_capacity_bounds(bounds);
    let report = up
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("refused");
    assert_eq!(
        refusal(&report),
        "a desired count of 6 is above the scaler's max_capacity 5"
    );
    assert!(f.ecs.writes().is_empty(), "{:?}", f.ecs.writes());
    assert_eq!(f.ecs.running(&web()), 4);
}

#[tokio::test]
async fn a_service_of_one_task_is_never_stopped() {
    let f = Fixture::new(1);
    let d = f.driller(
        "stop-one",
        json!({"type": "stop_tasks", "count": 1}),
        json!({}),
    );
    let report = d
        .handle(start("stop-one", "execute"), None)
        .await
        .expect("refused");
    assert!(
        refusal(&report)
            .starts_with("stopping 1 of 1 running tasks would leave 0, below the floor of 1"),
        "{report:?}"
    );
    assert!(f.ecs.writes().is_empty(), "{:?}", f.ecs.writes());
}

// ---------------------------------------------------------------- stop conditions

#[tokio::test]
async fn a_stop_condition_already_met_refuses_the_drill_before_it_acts() {
    // An abort alarm in ALARM, one that does not exist, and the safety lever.
    for (case, setup) in [
        (
            "abort alarm web-5xx is in ALARM",
            (|f: &Fixture| {
                f.alarms
                    .alarms
                    .lock()
                    .unwrap()
                    .insert("web-5xx".into(), AlarmState::Alarm);
            }) as fn(&Fixture),
        ),
        ("abort alarm web-5xx is in ALARM or does not exist", |f| {
            f.alarms.alarms.lock().unwrap().clear();
        }),
        ("the safety lever is on: cluster demo has the tag", |f| {
            f.ecs
                .halted
                .lock()
                .unwrap()
                .insert("demo".into(), "game day over".into());
        }),
    ] {
        let f = Fixture::new(2);
        setup(&f);
        let d = f.driller("scale-up", scale_up(), json!({}));
        let report = d
            .handle(start("scale-up", "execute"), None)
            .await
            .expect("refused");
        assert!(refusal(&report).starts_with(case), "{case}: {report:?}");
        assert!(f.ecs.writes().is_empty(), "{case}: {:?}", f.ecs.writes());
        assert_eq!(f.ecs.desired(&web()), 2, "{case}");
    }
}

#[tokio::test]
async fn the_stop_conditions_are_read_again_under_the_lock_before_acting() {
    let f = Fixture::new(2);
    // OK at the first look; in ALARM by the look taken under the lock.
    *f.alarms.fire_after.lock().unwrap() = Some(("web-5xx".into(), 1));
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("refused");
    assert_eq!(
        refusal(&report),
        "a stop condition fired before acting: web-5xx"
    );
    // The lock was taken, then given back; nothing else was written.
    assert_eq!(
        f.ecs.writes(),
        [
            format!("tag {:?}", [LOCK_TAG]),
            format!("untag {:?}", [LOCK_TAG, STATE_TAG]),
        ]
    );
    assert!(f.ecs.tags(&web()).is_empty());
    assert_eq!(f.ecs.desired(&web()), 2);
}

#[tokio::test]
async fn the_safety_lever_pulled_while_the_lock_is_taken_stops_the_drill() {
    let f = Fixture::new(2);
    let d = f.driller("scale-up", scale_up(), json!({"abort_alarms": []}));
    // Pulled while the lock settles: after the first look, before acting.
    let pull = async {
        tokio::time::sleep(SETTLE / 2).await;
        f.ecs
            .halted
            .lock()
            .unwrap()
            .insert("demo".into(), "stop".into());
    };
    let (report, ()) = tokio::join!(d.handle(start("scale-up", "execute"), None), pull);
    let report = report.expect("refused");
    assert!(
        refusal(&report)
            .starts_with("a stop condition fired before acting: the safety lever is on"),
        "{report:?}"
    );
    assert!(!f.ecs.writes().iter().any(|w| w.starts_with("update")));
    assert!(f.ecs.tags(&web()).is_empty());
}

// ---------------------------------------------------------------- journal and crash

#[tokio::test]
async fn a_passed_drill_saves_its_snapshot_before_acting_and_restores_it() {
    let f = Fixture::new(2);
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("executed");
    assert_eq!(outcome(&report), &Outcome::Passed, "{:#?}", report.journal);
    assert!(report.rolled_back);
    let lock = format!("tag {:?}", [LOCK_TAG]);
    let state = format!("tag {:?}", [STATE_TAG]);
    assert_eq!(
        f.ecs.writes(),
        [
            lock,
            state.clone(),
            "update demo/web 4".into(),
            // The change confirmed, then the count the rollback settles on.
            state.clone(),
            state,
            "update demo/web 2".into(),
            format!("untag {:?}", [LOCK_TAG, STATE_TAG]),
        ]
    );
    assert_eq!(f.ecs.desired(&web()), 2);
    assert!(f.ecs.tags(&web()).is_empty());
    // The journal tells the same story, in the same order.
    let steps: Vec<(Step, &str)> = report
        .journal
        .iter()
        .map(|e| (e.step, e.what.as_str()))
        .collect();
    let at = |step: Step, starts: &str| {
        steps
            .iter()
            .position(|(s, w)| *s == step && w.starts_with(starts))
            .unwrap_or_else(|| panic!("no {step:?} {starts:?} in {steps:#?}"))
    };
    let checked = at(Step::Check, "steady state holds before the drill");
    let saved = at(Step::Action, "locked demo/web until");
    let acted = at(Step::Action, "desired count 2 -> 4");
    let verdict = at(Step::Verdict, "Passed");
    let restored = at(Step::Rollback, "desired count 4 -> 2");
    let released = at(Step::Action, "released the lock");
    assert!(
        checked < saved
            && saved < acted
            && acted < verdict
            && verdict < restored
            && restored < released,
        "{steps:#?}"
    );
    assert!(report
        .journal
        .iter()
        .all(|e| e.drill_id == report.drill_id.clone().unwrap()));
}

/// Runs `payload` on a driller whose ECS dies at `point`, as a Lambda
/// stopped mid-call; the panic is the crash.
async fn crash(f: &Fixture, point: (&'static str, bool)) {
    *f.ecs.crash_at.lock().unwrap() = Some(point);
    let d = f.driller("scale-up", scale_up(), json!({}));
    let crashed = tokio::spawn(async move { d.handle(start("scale-up", "execute"), None).await })
        .await
        .expect_err("the invocation crashed");
    assert!(crashed.is_panic());
    *f.ecs.crash_at.lock().unwrap() = None;
}

#[tokio::test]
async fn a_crash_after_acting_is_rolled_back_by_the_sweep_from_the_saved_state() {
    let f = Fixture::new(2);
    crash(&f, ("ecs:UpdateService", true)).await;
    // The count was changed and the drill died: its lock and state stay.
    assert_eq!(f.ecs.desired(&web()), 4);
    let tags = f.ecs.tags(&web());
    let saved = SavedState::decode(tags.get(STATE_TAG).expect("the state saved before acting"))
        .expect("a saved state");
    assert_eq!(
        (saved.snapshot.desired_count, saved.count_delta),
        (2, Some(2))
    );
    // While the lock is live, the sweep leaves it to its holder.
    let d = f.driller("scale-up", scale_up(), json!({}));
    let early = d.handle(sweep(), None).await.expect("swept");
    assert!(early.swept.is_empty(), "{early:?}");
    assert_eq!(f.ecs.desired(&web()), 4);
    // Once it expires, the sweep takes the drill's change off.
    f.ecs.expire_lock(&web());
    let report = d.handle(sweep(), None).await.expect("swept");
    assert_eq!(report.swept.len(), 1, "{report:#?}");
    assert_eq!(report.swept[0].drill, "scale-up");
    assert!(
        matches!(&report.swept[0].outcome, Outcome::Failed { why } if why.starts_with("its lock expired")),
        "{report:#?}"
    );
    assert_eq!(f.ecs.desired(&web()), 2);
    assert!(f.ecs.tags(&web()).is_empty());
}

#[tokio::test]
async fn a_crash_before_the_change_is_made_is_never_taken_off_the_count() {
    let f = Fixture::new(2);
    crash(&f, ("ecs:UpdateService", false)).await;
    assert_eq!(f.ecs.desired(&web()), 2);
    f.ecs.expire_lock(&web());
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d.handle(sweep(), None).await.expect("swept");
    assert_eq!(report.swept.len(), 1, "{report:#?}");
    // The change was not made: nothing is taken off (2, not 0).
    assert_eq!(f.ecs.desired(&web()), 2);
    assert!(!f.ecs.writes().iter().any(|w| w.starts_with("update")));
    assert!(f.ecs.tags(&web()).is_empty());
}

#[tokio::test]
async fn two_sweeps_at_once_roll_a_crashed_drill_back_once() {
    let f = Fixture::new(2);
    crash(&f, ("ecs:UpdateService", true)).await;
    f.ecs.expire_lock(&web());
    let (a, b) = (
        f.driller("scale-up", scale_up(), json!({})),
        f.driller("scale-up", scale_up(), json!({})),
    );
    let (ra, rb) = tokio::join!(a.handle(sweep(), None), b.handle(sweep(), None));
    let swept = ra.expect("a").swept.len() + rb.expect("b").swept.len();
    assert_eq!(swept, 1);
    let restores: Vec<String> = f
        .ecs
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("update"))
        .collect();
    // The crashed drill's own change, then one restore.
    assert_eq!(restores, ["update demo/web 4", "update demo/web 2"]);
    assert_eq!(f.ecs.desired(&web()), 2);
}

#[tokio::test]
async fn a_corrupt_or_missing_saved_state_releases_the_lock_and_touches_no_count() {
    for state in [Some("not/a/state"), Some(""), None] {
        let f = Fixture::new(3);
        let expired = Lock {
            drill_id: "scale-up-1".into(),
            expires_at: Utc::now() - TimeDelta::minutes(1),
            holder: "crashed".into(),
            busy_until: None,
        };
        f.ecs.set_tag(&web(), LOCK_TAG, &expired.encode());
        if let Some(state) = state {
            f.ecs.set_tag(&web(), STATE_TAG, state);
        }
        let d = f.driller("scale-up", scale_up(), json!({}));
        let report = d.handle(sweep(), None).await.expect("swept");
        assert!(
            report
                .journal
                .iter()
                .any(|e| e.step == Step::Rollback
                    && e.what == "a lock without a saved state: released"),
            "{state:?}: {:#?}",
            report.journal
        );
        assert!(!f.ecs.writes().iter().any(|w| w.starts_with("update")));
        assert_eq!(f.ecs.desired(&web()), 3);
        assert!(f.ecs.tags(&web()).is_empty(), "{state:?}");
    }
}

#[tokio::test]
async fn a_corrupt_lock_does_not_hide_another_drills_live_state() {
    let f = Fixture::new(2);
    f.ecs.set_tag(&web(), LOCK_TAG, "garbage");
    let other = SavedState {
        drill_id: "other-7".into(),
        drill_name: "other".into(),
        deadline: Utc::now() + TimeDelta::minutes(10),
        snapshot: ecs_control::domain::drill::Snapshot {
            desired_count: 2,
            drained: None,
        },
        alarm: None,
        target_group_arn: None,
        count_delta: Some(0),
        delta_confirmed: true,
        restore_to: None,
    };
    f.ecs.set_tag(&web(), STATE_TAG, &other.encode());
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("refused");
    assert!(
        refusal(&report).starts_with("drill other-7 is running on demo/web until"),
        "{report:?}"
    );
    assert!(f.ecs.writes().is_empty(), "{:?}", f.ecs.writes());
}

// ---------------------------------------------------------------- duplicates

#[tokio::test]
async fn two_starts_at_once_act_once() {
    let f = Fixture::new(2);
    let (a, b) = (
        f.driller("scale-up", scale_up(), json!({})),
        f.driller("scale-up", scale_up(), json!({})),
    );
    let (ra, rb) = tokio::join!(
        a.handle(start("scale-up", "execute"), None),
        b.handle(start("scale-up", "execute"), None)
    );
    let outcomes = [
        outcome(&ra.expect("a")).clone(),
        outcome(&rb.expect("b")).clone(),
    ];
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refused { why } if why.contains("one drill per service at a time")))
        .count();
    assert_eq!(refused, 1, "{outcomes:?}");
    assert!(outcomes.contains(&Outcome::Passed), "{outcomes:?}");
    let updates: Vec<String> = f
        .ecs
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("update"))
        .collect();
    assert_eq!(updates, ["update demo/web 4", "update demo/web 2"]);
    assert_eq!(f.ecs.desired(&web()), 2);
}

#[tokio::test]
async fn a_continue_delivered_twice_drives_the_drill_once() {
    let f = Fixture::new(2);
    // Held a while, and an invocation that ends at once: the start suspends.
    let d = f.driller(
        "scale-up",
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 3}),
        json!({}),
    );
    let end = Utc::now() + TimeDelta::milliseconds(10_500);
    let started = d
        .handle(start("scale-up", "execute"), Some(end))
        .await
        .expect("suspended");
    assert_eq!(
        outcome(&started),
        &Outcome::InProgress,
        "{:#?}",
        started.journal
    );
    assert_eq!(f.ecs.desired(&web()), 4);
    let id = started.drill_id.clone().unwrap();
    let again = json!({"command": "continue", "drill_id": id});
    let (ra, rb) = tokio::join!(d.handle(again.clone(), None), d.handle(again, None));
    let outcomes = [
        outcome(&ra.expect("a")).clone(),
        outcome(&rb.expect("b")).clone(),
    ];
    assert!(outcomes.contains(&Outcome::Passed), "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Refused { .. })),
        "{outcomes:?}"
    );
    let updates: Vec<String> = f
        .ecs
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("update"))
        .collect();
    assert_eq!(updates, ["update demo/web 4", "update demo/web 2"]);
    assert!(f.ecs.tags(&web()).is_empty());
}

#[tokio::test]
async fn a_start_while_another_drill_holds_the_service_is_refused() {
    let f = Fixture::new(2);
    let d = f.driller(
        "scale-up",
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 3}),
        json!({}),
    );
    let end = Utc::now() + TimeDelta::milliseconds(10_500);
    let first = d
        .handle(start("scale-up", "execute"), Some(end))
        .await
        .expect("suspended");
    assert_eq!(outcome(&first), &Outcome::InProgress);
    let before = f.ecs.writes().len();
    let second = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("refused");
    assert!(
        refusal(&second).ends_with("one drill per service at a time"),
        "{second:?}"
    );
    assert_eq!(f.ecs.writes().len(), before, "{:?}", f.ecs.writes());
    assert_eq!(f.ecs.desired(&web()), 4);
}

// ---------------------------------------------------------------- plan and failures

#[tokio::test]
async fn plan_mode_writes_nothing_and_says_what_execute_would_do() {
    let f = Fixture::new(2);
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d
        .handle(start("scale-up", "plan"), None)
        .await
        .expect("planned");
    assert_eq!(outcome(&report), &Outcome::Planned);
    assert!(
        report.plan[0].starts_with("set demo/web's desired count 2 -> 4"),
        "{:?}",
        report.plan
    );
    assert!(f.ecs.writes().is_empty());
    assert!(f.alarms.writes.lock().unwrap().is_empty());
    assert!(f.elb.writes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_change_is_rolled_back_even_with_a_policy_of_never() {
    let f = Fixture::new(2);
    *f.ecs.fail_at.lock().unwrap() = Some(("ecs:UpdateService", 0));
    let d = f.driller("scale-up", scale_up(), json!({"rollback": "never"}));
    let report = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("answered");
    assert_eq!(
        outcome(&report),
        &Outcome::Failed {
            why: "acting failed: ecs:UpdateService failed: injected".into()
        }
    );
    assert!(report.rolled_back, "{report:#?}");
    assert_eq!(f.ecs.desired(&web()), 2);
    assert!(f.ecs.tags(&web()).is_empty());
}

#[tokio::test]
async fn a_rollback_that_fails_keeps_the_lock_for_the_sweep() {
    let f = Fixture::new(2);
    // The drill's change goes through; the rollback's does not.
    *f.ecs.fail_at.lock().unwrap() = Some(("ecs:UpdateService", 1));
    let d = f.driller("scale-up", scale_up(), json!({}));
    let report = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("answered");
    assert!(
        matches!(outcome(&report), Outcome::RollbackFailed { why }
            if why.contains("restoring failed: ecs:UpdateService failed: injected")
                && why.contains("the lock on demo/web is kept")),
        "{report:#?}"
    );
    assert!(!report.rolled_back);
    assert_eq!(f.ecs.desired(&web()), 4);
    assert!(f.ecs.tags(&web()).contains_key(LOCK_TAG));
    // Nothing else drills the service meanwhile.
    let refused = d
        .handle(start("scale-up", "execute"), None)
        .await
        .expect("refused");
    assert!(refusal(&refused).ends_with("one drill per service at a time"));
    *f.ecs.fail_at.lock().unwrap() = None;
    f.ecs.expire_lock(&web());
    let swept = d.handle(sweep(), None).await.expect("swept");
    assert_eq!(swept.swept.len(), 1);
    assert_eq!(f.ecs.desired(&web()), 2);
    assert!(f.ecs.tags(&web()).is_empty());
}

#[tokio::test]
async fn a_drain_drill_registers_its_target_again() {
    let f = Fixture::new(3);
    let d = f.driller(
        "drain-one",
        json!({"type": "drain_target", "target_group_arn": GROUP, "port": PORT, "hold_seconds": 0}),
        json!({}),
    );
    let report = d
        .handle(start("drain-one", "execute"), None)
        .await
        .expect("executed");
    assert_eq!(outcome(&report), &Outcome::Passed, "{:#?}", report.journal);
    assert_eq!(
        *f.elb.writes.lock().unwrap(),
        [
            format!("deregister 1 in {GROUP}"),
            format!("register 1 in {GROUP}")
        ]
    );
    let drained = report.snapshot.unwrap().drained.expect("a target");
    // `first`: the lowest address of the service's own targets.
    assert_eq!(drained, Target::new("10.0.0.1", PORT));
    let groups = f.elb.groups.lock().unwrap();
    assert_eq!(groups[GROUP][&drained], HealthState::Healthy);
}

#[tokio::test]
async fn an_alarm_drill_sets_its_alarm_back_to_ok_when_it_fails() {
    let f = Fixture::new(2);
    // Nothing answers the alarm here: the drill runs out of time and fails.
    let d = f.driller(
        "cpu-alarm",
        json!({"type": "alarm", "alarm": "web-cpu-high"}),
        json!({"max_duration_seconds": 1, "poll_seconds": 1}),
    );
    let report = d
        .handle(start("cpu-alarm", "execute"), None)
        .await
        .expect("answered");
    assert!(
        matches!(outcome(&report), Outcome::Failed { why } if why.contains("max_duration_seconds")),
        "{report:#?}"
    );
    let writes = f.alarms.writes.lock().unwrap().clone();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        writes[0].starts_with("set web-cpu-high Alarm"),
        "{writes:?}"
    );
    assert!(writes[1].starts_with("set web-cpu-high Ok"), "{writes:?}");
    assert!(f.ecs.tags(&web()).is_empty());
}
