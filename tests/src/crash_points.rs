//! A function that dies mid-way, at a chosen AWS call: ports wrapped so that
//! the `n`th call, counted across all of them, never returns. A test runs
//! the function under a timeout, which drops it there, as Lambda's timeout
//! or a crash would, with every call before it made and none after.

use chrono::{DateTime, Utc};
use ecs_control::domain::alarm::{AlarmState, AlarmStatus, MetricPoint, MetricQuery};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::registration::{RegisteredTarget, ServiceTasks, Target, TaskInfo};
use ecs_control::domain::scaling::{ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{
    AlarmControls, AlarmStates, DrillControls, EcsServices, EcsTasks, PortError, TaggedService,
    TargetGroups, TaskControls,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The count shared by every wrapped port, and the call that never returns.
#[derive(Debug, Clone)]
pub struct CrashPoint {
    calls: Arc<AtomicUsize>,
    at: usize,
    reached: Arc<tokio::sync::Notify>,
}

impl CrashPoint {
    /// Dies at call `at` (1-based); `usize::MAX` never dies, to count a run's calls.
    pub fn at(at: usize) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            at,
            reached: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Resolves once the function has reached its crash point: race it
    /// against the function's future, and drop that future when it wins.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Calls made (or begun) so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn step(&self) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.at {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// A port that dies at its [`CrashPoint`].
#[derive(Debug, Clone)]
pub struct Crashing<T> {
    pub inner: T,
    pub point: CrashPoint,
}

impl<T: EcsServices> EcsServices for Crashing<T> {
    async fn describe_service(&self, service: &ServiceRef) -> Result<ServiceState, PortError> {
        self.point.step().await;
        self.inner.describe_service(service).await
    }

    async fn describe_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<BTreeMap<ServiceRef, Result<ServiceState, PortError>>, PortError> {
        self.point.step().await;
        self.inner.describe_services(services).await
    }

    async fn inactive_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        self.point.step().await;
        self.inner.inactive_services(services).await
    }

    async fn remember(&self, service_arn: &str, memory: &ScalingMemory) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.remember(service_arn, memory).await
    }

    async fn set_desired_count(
        &self,
        service: &ServiceRef,
        desired_count: u32,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.set_desired_count(service, desired_count).await
    }

    async fn task_size(&self, task_definition_arn: &str) -> Result<Option<TaskSize>, PortError> {
        self.point.step().await;
        self.inner.task_size(task_definition_arn).await
    }
}

impl<T: EcsTasks> EcsTasks for Crashing<T> {
    async fn service_tasks(&self, service: &ServiceRef) -> Result<ServiceTasks, PortError> {
        self.point.step().await;
        self.inner.service_tasks(service).await
    }

    async fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskInfo>, PortError> {
        self.point.step().await;
        self.inner.describe_task(cluster, task_arn).await
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, TaskInfo>, PortError> {
        self.point.step().await;
        self.inner.describe_tasks(cluster, task_arns).await
    }
}

impl<T: TaskControls> TaskControls for Crashing<T> {
    async fn hold_for_drain(
        &self,
        cluster: &str,
        task_arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.hold_for_drain(cluster, task_arns, until).await
    }

    async fn protection(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        self.point.step().await;
        self.inner.protection(cluster, task_arns).await
    }

    async fn protect(
        &self,
        cluster: &str,
        task_arns: &[String],
        minutes: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        self.point.step().await;
        self.inner.protect(cluster, task_arns, minutes).await
    }
}

impl<T: DrillControls> DrillControls for Crashing<T> {
    async fn tagged_service(&self, service: &ServiceRef) -> Result<TaggedService, PortError> {
        self.point.step().await;
        self.inner.tagged_service(service).await
    }

    async fn tag_service(
        &self,
        service_arn: &str,
        tags: &[(String, String)],
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.tag_service(service_arn, tags).await
    }

    async fn untag_service(&self, service_arn: &str, keys: &[String]) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.untag_service(service_arn, keys).await
    }

    async fn drills_halted(&self, cluster: &str) -> Result<Option<String>, PortError> {
        self.point.step().await;
        self.inner.drills_halted(cluster).await
    }

    async fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.stop_task(cluster, task_arn, reason).await
    }
}

impl<T: TargetGroups> TargetGroups for Crashing<T> {
    async fn targets(&self, target_group_arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        self.point.step().await;
        self.inner.targets(target_group_arn).await
    }

    async fn targets_among(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<Vec<RegisteredTarget>, PortError> {
        self.point.step().await;
        self.inner.targets_among(target_group_arn, targets).await
    }

    async fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner
            .register(target_group_arn, targets, outside_vpc)
            .await
    }

    async fn deregister(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner
            .deregister(target_group_arn, targets, outside_vpc)
            .await
    }
}

impl<T: AlarmStates> AlarmStates for Crashing<T> {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        self.point.step().await;
        self.inner.describe_alarms(names).await
    }

    async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        self.point.step().await;
        self.inner.metric_data(queries, start, end).await
    }
}

impl<T: AlarmControls> AlarmControls for Crashing<T> {
    async fn set_alarm_state(
        &self,
        alarm: &str,
        state: AlarmState,
        reason: &str,
    ) -> Result<(), PortError> {
        self.point.step().await;
        self.inner.set_alarm_state(alarm, state, reason).await
    }
}
