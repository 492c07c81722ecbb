//! The narrow interfaces the functions need from AWS, in domain terms.
//!
//! Real adapters live in [`crate::aws`]; tests provide their own fakes.

use crate::domain::alarm::{AlarmStatus, MetricPoint, MetricQuery};
use crate::domain::budget::TaskSize;
use crate::domain::probe::{HttpObservation, MetricDatum, ProbeCheck};
use crate::domain::registration::{
    RegisteredTarget, ServiceTasks, Target, TargetGroupFacts, TaskInfo,
};
use crate::domain::scaling::{ScalingMemory, ServiceState};
use crate::domain::secret::{Secret, SecretRef};
use crate::domain::service::ServiceRef;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;

/// How a failed AWS call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Throttling, 5xx, timeouts, connection failures: try again later.
    Retryable,
    /// The named resource does not exist.
    NotFound,
    /// The request itself is wrong or not allowed: retrying will not help.
    Rejected,
}

/// A failed call to AWS, with the operation and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct PortError {
    pub kind: FailureKind,
    pub operation: &'static str,
    pub message: String,
}

impl PortError {
    pub fn new(kind: FailureKind, operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation,
            message: message.into(),
        }
    }
}

/// Reading and resizing ECS services.
pub trait EcsServices: Send + Sync {
    /// The service's counts, deployment status and scaling memory.
    fn describe_service(
        &self,
        service: &ServiceRef,
    ) -> impl Future<Output = Result<ServiceState, PortError>> + Send;

    /// Each of `services` as [`Self::describe_service`] reads it, for a
    /// tick over a fleet: the adapter names 10 services a `DescribeServices`
    /// call, ECS's most. An `Err` for one service (not found, not active)
    /// leaves the others; the outer `Err` is a failed call.
    fn describe_services(
        &self,
        services: &[ServiceRef],
    ) -> impl Future<Output = Result<BTreeMap<ServiceRef, Result<ServiceState, PortError>>, PortError>>
           + Send {
        async move {
            let mut states = BTreeMap::new();
            for service in services {
                let state = match self.describe_service(service).await {
                    Err(e) if e.kind == FailureKind::Retryable => return Err(e),
                    state => state,
                };
                states.insert(service.clone(), state);
            }
            Ok(states)
        }
    }

    /// Of `services`, those ECS does not have as active services, each with
    /// ECS's reason (`MISSING`, `its status is DRAINING`): one
    /// `DescribeServices` per cluster and 10 services, read side by side.
    fn inactive_services(
        &self,
        services: &[ServiceRef],
    ) -> impl Future<Output = Result<Vec<(ServiceRef, String)>, PortError>> + Send;

    /// Stores the scaling memory on the service (written before the count changes,
    /// so that a retry after a failure never scales twice).
    fn remember(
        &self,
        service_arn: &str,
        memory: &ScalingMemory,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sets the service's desired count.
    fn set_desired_count(
        &self,
        service: &ServiceRef,
        desired_count: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The task size a task definition states; `None` when it states none
    /// (an EC2 task definition without task-level CPU and memory).
    fn task_size(
        &self,
        task_definition_arn: &str,
    ) -> impl Future<Output = Result<Option<TaskSize>, PortError>> + Send;
}

/// Reading CloudWatch alarms and the metrics they watch.
pub trait AlarmStates: Send + Sync {
    /// The current state of each named alarm that exists (metric or composite).
    fn describe_alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<AlarmStatus>, PortError>> + Send;

    /// One `GetMetricData` read between `start` and `end`: the values of
    /// every query with `return_data`, by query id, one per period, oldest first.
    fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<MetricPoint>>, PortError>> + Send;
}

/// Reading ECS tasks.
pub trait EcsTasks: Send + Sync {
    /// The service's tasks meant to run (desired status RUNNING), described,
    /// with the ones ECS listed but could not describe.
    fn service_tasks(
        &self,
        service: &ServiceRef,
    ) -> impl Future<Output = Result<ServiceTasks, PortError>> + Send;

    /// One task as ECS describes it now; `None` when ECS no longer knows it.
    fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> impl Future<Output = Result<Option<TaskInfo>, PortError>> + Send;

    /// The tasks of `task_arns` ECS still knows, by ARN, as it describes them
    /// now. The adapter names 100 tasks a `DescribeTasks` call, ECS's most.
    fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, TaskInfo>, PortError>> + Send {
        async move {
            let mut found = BTreeMap::new();
            for arn in task_arns {
                if let Some(task) = self.describe_task(cluster, arn).await? {
                    found.insert(arn.clone(), task);
                }
            }
            Ok(found)
        }
    }
}

/// What drain-first scale-in does to tasks beyond reading them (see
/// [`crate::domain::drain`]).
pub trait TaskControls: Send + Sync {
    /// Marks each task as held out of its target groups until `until` (a
    /// tag on the task the registrar reads), or lifts the mark (`None`).
    /// A task ECS no longer knows is skipped.
    fn hold_for_drain(
        &self,
        cluster: &str,
        task_arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Of `task_arns`, those with task scale-in protection now, each with
    /// when it expires (`GetTaskProtection`, 100 tasks a call).
    fn protection(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, DateTime<Utc>>, PortError>> + Send;

    /// Sets ECS task scale-in protection on each task for `minutes`, or
    /// lifts it (`None`); the adapter names 10 tasks a call, ECS's most.
    /// Returns the tasks ECS could not change, each with its reason.
    fn protect(
        &self,
        cluster: &str,
        task_arns: &[String],
        minutes: Option<u32>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, PortError>> + Send;
}

/// Everything the scaler asks of ECS: services, and for drain-first
/// scale-in, their tasks.
pub trait ScalerEcs: EcsServices + EcsTasks + TaskControls {}

impl<T: EcsServices + EcsTasks + TaskControls> ScalerEcs for T {}

/// Reading and changing ELBv2 target groups.
pub trait TargetGroups: Send + Sync {
    /// Every target registered in the group, with its health.
    fn targets(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Vec<RegisteredTarget>, PortError>> + Send;

    /// Of `targets`, those registered in the group, with their health: one
    /// `DescribeTargetHealth` naming them, for a change that concerns a few
    /// targets of a large group. A target not registered is left out.
    fn targets_among(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> impl Future<Output = Result<Vec<RegisteredTarget>, PortError>> + Send {
        async move {
            let all = self.targets(target_group_arn).await?;
            Ok(all
                .into_iter()
                .filter(|r| targets.contains(&r.target))
                .collect())
        }
    }

    /// Registers targets (one call; callers batch). `outside_vpc` registers them
    /// with `AvailabilityZone=all`.
    fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Deregisters targets, always with their port (one call; callers batch).
    fn deregister(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Target groups a function has no client for, because its configuration
/// names none (a probe of URLs alone): any call is refused, naming the operation.
impl<T: TargetGroups> TargetGroups for Option<T> {
    async fn targets(&self, target_group_arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        built(self, "DescribeTargetHealth")?
            .targets(target_group_arn)
            .await
    }

    async fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        built(self, "RegisterTargets")?
            .register(target_group_arn, targets, outside_vpc)
            .await
    }

    async fn deregister(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        built(self, "DeregisterTargets")?
            .deregister(target_group_arn, targets, outside_vpc)
            .await
    }
}

/// No target groups at all: the scaler of a deployment whose registrar
/// manages none. Every call is refused, naming the operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTargetGroups;

impl TargetGroups for NoTargetGroups {
    async fn targets(&self, _: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        Err(no_client("DescribeTargetHealth"))
    }

    async fn register(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        Err(no_client("RegisterTargets"))
    }

    async fn deregister(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        Err(no_client("DeregisterTargets"))
    }
}

fn built<'a, T>(port: &'a Option<T>, operation: &'static str) -> Result<&'a T, PortError> {
    port.as_ref().ok_or_else(|| no_client(operation))
}

fn no_client(operation: &'static str) -> PortError {
    PortError::new(
        FailureKind::Rejected,
        operation,
        "no target groups are configured, so there is no ELBv2 client",
    )
}

/// A service as a drill reads it before acting: one `DescribeServices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedService {
    pub arn: String,
    pub desired_count: u32,
    pub tags: Vec<(String, String)>,
}

/// What a drill does to ECS beyond resizing: its lock and state in service
/// tags, and stopping tasks.
pub trait DrillControls: Send + Sync {
    /// The service's ARN, desired count and tags.
    fn tagged_service(
        &self,
        service: &ServiceRef,
    ) -> impl Future<Output = Result<TaggedService, PortError>> + Send;

    fn tag_service(
        &self,
        service_arn: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    fn untag_service(
        &self,
        service_arn: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The safety lever: the value of the cluster's [`DRILL_HALT_TAG`]
    /// (why drills are halted), or `None` when the cluster has no such tag.
    fn drills_halted(
        &self,
        cluster: &str,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;

    /// Stops one task; ECS's service scheduler replaces it.
    fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The cluster tag that halts drills (the safety lever): while a cluster has
/// it, no drill starts on its services, and running drills roll back.
pub const DRILL_HALT_TAG: &str = "ecs-drill:halt";

/// Forcing an alarm's state (a drill's `alarm` kind).
pub trait AlarmControls: Send + Sync {
    fn set_alarm_state(
        &self,
        alarm: &str,
        state: crate::domain::alarm::AlarmState,
        reason: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Describing ELBv2 target groups (read once, at cold start).
pub trait TargetGroupCatalog: Send + Sync {
    /// The named target groups that exist; absent ones are left out.
    fn describe_target_groups(
        &self,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<TargetGroupFacts>, PortError>> + Send;
}

/// Publishing CloudWatch metrics.
pub trait MetricsSink: Send + Sync {
    /// One PutMetricData call (callers batch to [`crate::domain::probe::METRICS_PER_CALL`]).
    fn put(
        &self,
        namespace: &str,
        data: &[MetricDatum],
        timestamp: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Making one HTTP(S) check attempt.
pub trait CheckAttempts: Send + Sync {
    /// One attempt, given up after `timeout`; every failure is reported in the
    /// observation, never as an error.
    fn attempt(
        &self,
        check: &ProbeCheck,
        max_body_bytes: usize,
        timeout: std::time::Duration,
    ) -> impl Future<Output = HttpObservation> + Send;
}

/// Reading a secret's value, once per reference at cold start.
pub trait SecretValues: Send + Sync {
    /// A Secrets Manager secret's `SecretString`, or a parameter's value,
    /// decrypted. An error never carries the value.
    fn read_secret(
        &self,
        reference: &SecretRef,
    ) -> impl Future<Output = Result<Secret, PortError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn target_groups_without_a_client_refuse_every_call() {
        let none: Option<crate::aws::elbv2::Elbv2Adapter> = None;
        let refused = none.targets("arn").await.expect_err("no client");
        assert_eq!(refused.kind, FailureKind::Rejected);
        assert_eq!(refused.operation, "DescribeTargetHealth");
        let target = Target::new("10.0.0.1", 80);
        for (result, operation) in [
            (
                none.register("arn", std::slice::from_ref(&target), false)
                    .await,
                "RegisterTargets",
            ),
            (
                none.deregister("arn", &[target], false).await,
                "DeregisterTargets",
            ),
        ] {
            let refused = result.expect_err("no client");
            assert_eq!(
                (refused.kind, refused.operation),
                (FailureKind::Rejected, operation)
            );
        }
    }
}
