//! The narrow interfaces the functions need from AWS, in domain terms.
//!
//! Real adapters live in [`crate::aws`]; tests provide their own fakes.

use crate::domain::alarm::AlarmStatus;
use crate::domain::policy::ServiceRef;
use crate::domain::scaling::{ScalingMemory, ServiceState};
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
}

/// Reading CloudWatch alarm states.
pub trait AlarmStates: Send + Sync {
    /// The current state of each named alarm that exists (metric or composite).
    fn describe_alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<AlarmStatus>, PortError>> + Send;
}
