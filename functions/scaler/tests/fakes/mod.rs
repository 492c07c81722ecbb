//! Fakes of the scaler's ports, shared by its handler tests: ECS (services,
//! their tasks, and a scheduler that stops unprotected tasks on a scale-in),
//! CloudWatch, and the registrar's target groups.

// Each test binary uses its own part of the fakes.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control::config::RegistrarConfig;
use ecs_control::domain::alarm::{
    AlarmMetric, AlarmState, AlarmStatus, Comparison, MetricPoint, MetricQuery, MetricStat,
};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::registration::{
    HealthState, RegisteredTarget, ServiceTasks, Target, TaskInfo,
};
use ecs_control::domain::scaling::{ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{
    AlarmStates, EcsServices, EcsTasks, FailureKind, PortError, TargetGroups, TaskControls,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub const POLICIES: &str = include_str!("../../../../infra/scaler-policies.json");

pub fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/scaler/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 3, 0)
        .single()
        .unwrap_or_default()
}

pub fn web() -> ServiceRef {
    ServiceRef::new("demo", "web")
}

/// ECS in memory, with failures that can be queued per operation.
#[derive(Default)]
pub struct FakeEcs {
    pub services: Mutex<HashMap<ServiceRef, ServiceState>>,
    pub failures: Mutex<HashMap<&'static str, Vec<PortError>>>,
    pub calls: Mutex<Vec<String>>,
    pub task_sizes: Mutex<HashMap<String, TaskSize>>,
    /// Tasks by ARN, with their service and whether they are protected.
    pub tasks: Mutex<BTreeMap<String, FakeTask>>,
}

/// A task of [`FakeEcs`].
#[derive(Clone, Debug)]
pub struct FakeTask {
    pub service: ServiceRef,
    pub info: TaskInfo,
    /// When its scale-in protection expires, if it has any.
    pub protected: Option<DateTime<Utc>>,
}

pub const WEB_TASK_DEFINITION: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";

impl FakeEcs {
    pub fn with_service(service: ServiceRef, desired: u32) -> Self {
        let fake = Self::default();
        fake.add(service, desired);
        fake
    }

    pub fn add(&self, service: ServiceRef, desired: u32) {
        let state = ServiceState {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:service/{service}"),
            desired_count: desired,
            running_count: desired,
            pending_count: 0,
            deployment_in_progress: false,
            task_definition: Some(WEB_TASK_DEFINITION.into()),
            memory: ScalingMemory::default(),
            drill_in_progress: None,
        };
        self.services.lock().expect("lock").insert(service, state);
    }

    pub fn desired(&self, service: &ServiceRef) -> u32 {
        self.services.lock().expect("lock")[service].desired_count
    }

    pub fn update(&self, service: &ServiceRef, change: impl FnOnce(&mut ServiceState)) {
        change(
            self.services
                .lock()
                .expect("lock")
                .get_mut(service)
                .expect("service"),
        );
    }

    pub fn fail_next(&self, operation: &'static str, kind: FailureKind) {
        self.failures
            .lock()
            .expect("lock")
            .entry(operation)
            .or_default()
            .push(PortError::new(kind, operation, "injected"));
    }

    pub fn take_failure(&self, operation: &'static str) -> Result<(), PortError> {
        match self
            .failures
            .lock()
            .expect("lock")
            .get_mut(operation)
            .and_then(Vec::pop)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn writes(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| !c.starts_with("describe"))
            .cloned()
            .collect()
    }
}

impl FakeEcs {
    /// `count` running tasks of `service`, in zones a, b, c in turn, at
    /// 10.0.0.1… , started a minute apart (the last the newest).
    pub fn run_tasks(&self, service: &ServiceRef, count: usize) {
        let mut tasks = self.tasks.lock().expect("lock");
        let first = tasks.len();
        for k in first..first + count {
            let arn = format!(
                "arn:aws:ecs:us-east-1:123456789012:task/{}/t{k:02}",
                service.cluster
            );
            let info = TaskInfo {
                task_arn: arn.clone(),
                last_status: "RUNNING".into(),
                desired_status: "RUNNING".into(),
                version: Some(1),
                private_ip: Some(format!("10.0.0.{}", k + 1)),
                private_ipv6: None,
                started_at: Some(now() - TimeDelta::minutes(60 - i64::try_from(k).unwrap_or(0))),
                stop_code: None,
                availability_zone: Some(format!("us-east-1{}", ["a", "b", "c"][k % 3])),
                drain_hold_until: None,
            };
            tasks.insert(
                arn,
                FakeTask {
                    service: service.clone(),
                    info,
                    protected: None,
                },
            );
        }
    }

    /// The service's tasks meant to run.
    pub fn running(&self, service: &ServiceRef) -> Vec<FakeTask> {
        self.tasks
            .lock()
            .expect("lock")
            .values()
            .filter(|t| &t.service == service && t.info.desired_status == "RUNNING")
            .cloned()
            .collect()
    }

    /// ECS's scheduler on a lower count: stops unprotected tasks, newest
    /// first, never a protected one.
    fn schedule(&self, service: &ServiceRef, desired: u32) {
        let mut tasks = self.tasks.lock().expect("lock");
        let mut running: Vec<&mut FakeTask> = tasks
            .values_mut()
            .filter(|t| &t.service == service && t.info.desired_status == "RUNNING")
            .collect();
        let excess = running
            .len()
            .saturating_sub(usize::try_from(desired).unwrap_or(0));
        running.retain(|t| t.protected.is_none());
        running.sort_by_key(|t| std::cmp::Reverse(t.info.started_at));
        for task in running.into_iter().take(excess) {
            task.info.desired_status = "STOPPED".into();
        }
    }
}

impl EcsTasks for FakeEcs {
    async fn service_tasks(&self, service: &ServiceRef) -> Result<ServiceTasks, PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("describe tasks of {service}"));
        self.take_failure("ecs:DescribeTasks")?;
        Ok(ServiceTasks {
            tasks: self.running(service).into_iter().map(|t| t.info).collect(),
            missing: Vec::new(),
        })
    }

    async fn describe_task(
        &self,
        _cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskInfo>, PortError> {
        Ok(self
            .tasks
            .lock()
            .expect("lock")
            .get(task_arn)
            .map(|t| t.info.clone()))
    }
}

impl TaskControls for FakeEcs {
    async fn hold_for_drain(
        &self,
        _cluster: &str,
        task_arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        self.calls.lock().expect("lock").push(format!(
            "{} {} task(s)",
            if until.is_some() { "hold" } else { "release" },
            task_arns.len()
        ));
        self.take_failure("ecs:TagResource (task)")?;
        let mut tasks = self.tasks.lock().expect("lock");
        for arn in task_arns {
            if let Some(task) = tasks.get_mut(arn) {
                task.info.drain_hold_until = until;
            }
        }
        Ok(())
    }

    async fn protection(
        &self,
        _cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        let tasks = self.tasks.lock().expect("lock");
        Ok(task_arns
            .iter()
            .filter_map(|arn| Some((arn.clone(), tasks.get(arn)?.protected?)))
            .collect())
    }

    async fn protect(
        &self,
        _cluster: &str,
        task_arns: &[String],
        minutes: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        self.calls.lock().expect("lock").push(format!(
            "{} {} task(s)",
            if minutes.is_some() {
                "protect"
            } else {
                "unprotect"
            },
            task_arns.len()
        ));
        self.take_failure("ecs:UpdateTaskProtection")?;
        let mut tasks = self.tasks.lock().expect("lock");
        let mut refused = Vec::new();
        for arn in task_arns {
            match tasks.get_mut(arn) {
                // Protection counts from the fake's clock, `now()`.
                Some(task) => {
                    task.protected = minutes.map(|m| now() + TimeDelta::minutes(i64::from(m)));
                }
                None => refused.push((arn.clone(), "MISSING".to_string())),
            }
        }
        Ok(refused)
    }
}

/// The registrar's target groups in memory: a deregistered target drains
/// until [`FakeElb::finish_draining`].
#[derive(Default)]
pub struct FakeElb {
    pub groups: Mutex<BTreeMap<String, BTreeMap<Target, HealthState>>>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeElb {
    /// Every task of `ecs` registered and healthy in each group `registrar` binds its service to.
    pub fn registered_as(ecs: &FakeEcs, registrar: &RegistrarConfig) -> Self {
        let fake = Self::default();
        let mut groups = fake.groups.lock().expect("lock");
        for binding in &registrar.services {
            for group in &binding.target_groups {
                let targets = groups.entry(group.target_group_arn.clone()).or_default();
                for task in ecs.running(&binding.service) {
                    if let Some(ip) = task.info.private_ip {
                        targets.insert(Target::new(ip, group.port), HealthState::Healthy);
                    }
                }
            }
        }
        drop(groups);
        fake
    }

    pub fn states(&self, group: &str) -> BTreeMap<HealthState, usize> {
        let mut counts = BTreeMap::new();
        for state in self.groups.lock().expect("lock")[group].values() {
            *counts.entry(*state).or_insert(0) += 1;
        }
        counts
    }

    pub fn finish_draining(&self) {
        for targets in self.groups.lock().expect("lock").values_mut() {
            targets.retain(|_, state| *state != HealthState::Draining);
        }
    }
}

impl TargetGroups for FakeElb {
    async fn targets(&self, target_group_arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("health {target_group_arn}"));
        Ok(self
            .groups
            .lock()
            .expect("lock")
            .get(target_group_arn)
            .into_iter()
            .flatten()
            .map(|(target, state)| RegisteredTarget {
                target: target.clone(),
                state: *state,
                reason: None,
            })
            .collect())
    }

    async fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        _outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("register {} in {target_group_arn}", targets.len()));
        let mut groups = self.groups.lock().expect("lock");
        let group = groups.entry(target_group_arn.to_string()).or_default();
        for target in targets {
            group.insert(target.clone(), HealthState::Initial);
        }
        Ok(())
    }

    async fn deregister(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        _outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.calls.lock().expect("lock").push(format!(
            "deregister {} in {target_group_arn}",
            targets.len()
        ));
        let mut groups = self.groups.lock().expect("lock");
        let group = groups.entry(target_group_arn.to_string()).or_default();
        for target in targets {
            if let Some(state) = group.get_mut(target) {
                *state = HealthState::Draining;
            }
        }
        Ok(())
    }
}

impl EcsServices for FakeEcs {
    async fn task_size(&self, task_definition_arn: &str) -> Result<Option<TaskSize>, PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("describe task definition {task_definition_arn}"));
        self.take_failure("ecs:DescribeTaskDefinition")?;
        Ok(self
            .task_sizes
            .lock()
            .expect("lock")
            .get(task_definition_arn)
            .copied())
    }

    async fn inactive_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        self.calls.lock().expect("lock").push(format!(
            "describe {}",
            services
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        self.take_failure("ecs:DescribeServices")?;
        let known = self.services.lock().expect("lock");
        Ok(services
            .iter()
            .filter(|s| !known.contains_key(*s))
            .map(|s| (s.clone(), "MISSING".to_string()))
            .collect())
    }

    async fn describe_service(&self, service: &ServiceRef) -> Result<ServiceState, PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("describe {service}"));
        self.take_failure("ecs:DescribeServices")?;
        self.services
            .lock()
            .expect("lock")
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

    async fn describe_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<BTreeMap<ServiceRef, Result<ServiceState, PortError>>, PortError> {
        self.calls.lock().expect("lock").push(format!(
            "describe together {}",
            services
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        self.take_failure("ecs:DescribeServices")?;
        let known = self.services.lock().expect("lock");
        Ok(services
            .iter()
            .map(|s| {
                let state = known.get(s).cloned().ok_or_else(|| {
                    PortError::new(
                        FailureKind::NotFound,
                        "ecs:DescribeServices",
                        format!("service {s}: MISSING"),
                    )
                });
                (s.clone(), state)
            })
            .collect())
    }

    async fn remember(&self, service_arn: &str, memory: &ScalingMemory) -> Result<(), PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("tag {service_arn}"));
        self.take_failure("ecs:TagResource")?;
        let mut services = self.services.lock().expect("lock");
        let state = services
            .values_mut()
            .find(|s| s.arn == service_arn)
            .expect("known arn");
        state.memory = memory.clone();
        Ok(())
    }

    async fn set_desired_count(&self, service: &ServiceRef, desired: u32) -> Result<(), PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("update {service} {desired}"));
        self.take_failure("ecs:UpdateService")?;
        self.update(service, |s| s.desired_count = desired);
        self.schedule(service, desired);
        Ok(())
    }
}

/// Timestamped values of one metric.
pub type Series = Vec<(DateTime<Utc>, f64)>;

/// CloudWatch in memory: alarms, and timestamped datapoints per metric name.
#[derive(Default)]
pub struct FakeAlarms {
    pub alarms: Mutex<HashMap<String, AlarmStatus>>,
    pub datapoints: Mutex<HashMap<String, Series>>,
    pub metric_reads_fail: Mutex<bool>,
}

impl FakeAlarms {
    pub fn set(&self, name: &str, state: AlarmState, reason_data: Option<&str>) {
        let mut alarms = self.alarms.lock().expect("lock");
        let metric = alarms.get(name).and_then(|a| a.metric.clone());
        alarms.insert(
            name.to_string(),
            AlarmStatus {
                name: name.to_string(),
                state,
                state_transitioned_at: Some(now()),
                reason_data: reason_data.map(str::to_string),
                metric,
            },
        );
    }

    /// Gives an alarm a metric (named after the alarm) to read at decision time.
    pub fn watch(&self, name: &str, comparison: Comparison, threshold: f64) {
        let mut alarms = self.alarms.lock().expect("lock");
        let alarm = alarms.get_mut(name).expect("alarm set first");
        alarm.metric = Some(AlarmMetric {
            threshold,
            comparison,
            evaluation_periods: 3,
            queries: vec![MetricQuery {
                id: "m1".into(),
                metric: Some(MetricStat {
                    namespace: "AWS/ECS".into(),
                    metric_name: name.into(),
                    dimensions: vec![("ServiceName".into(), "web".into())],
                    period_seconds: 60,
                    stat: "Average".into(),
                }),
                expression: None,
                period_seconds: None,
                return_data: true,
            }],
        });
    }

    pub fn put(&self, metric_name: &str, at: DateTime<Utc>, value: f64) {
        self.datapoints
            .lock()
            .expect("lock")
            .entry(metric_name.to_string())
            .or_default()
            .push((at, value));
    }

    pub fn all_ok() -> Self {
        let fake = Self::default();
        for name in ["web-cpu-high", "web-cpu-low", "web-under-pressure"] {
            fake.set(name, AlarmState::Ok, None);
        }
        fake
    }
}

impl AlarmStates for FakeAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        let alarms = self.alarms.lock().expect("lock");
        Ok(names
            .iter()
            .filter_map(|n| alarms.get(n).cloned())
            .collect())
    }

    async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        if *self.metric_reads_fail.lock().expect("lock") {
            return Err(PortError::new(
                FailureKind::Retryable,
                "cloudwatch:GetMetricData",
                "injected",
            ));
        }
        let datapoints = self.datapoints.lock().expect("lock");
        Ok(queries
            .iter()
            .filter(|q| q.return_data)
            .map(|q| {
                let name = &q.metric.as_ref().expect("metric").metric_name;
                let mut points: Vec<MetricPoint> = datapoints
                    .get(name)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| start <= *at && *at < end)
                    .map(|&(at, value)| MetricPoint { at, value })
                    .collect();
                points.sort_by_key(|p| p.at);
                (q.id.clone(), points)
            })
            .collect())
    }
}
