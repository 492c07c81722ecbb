//! Scaling policies: which alarm resizes which service, by how much, within which bounds.
//!
//! The shapes mirror Application Auto Scaling step scaling so that an operator who
//! knows `StepScalingPolicyConfiguration` can read a policy at a glance.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An ECS service, addressed the way `UpdateService` addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceRef {
    pub cluster: String,
    pub service: String,
}

impl ServiceRef {
    pub fn new(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            service: service.into(),
        }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cluster, self.service)
    }
}

/// How a step's `scaling_adjustment` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    /// Add the adjustment (negative removes) to the desired count.
    ChangeInCapacity,
    /// Add this percentage of the desired count, rounded toward zero.
    PercentChangeInCapacity,
    /// Set the desired count to the adjustment.
    ExactCapacity,
}

/// One step: applies when `lower <= breach < upper`, where the breach is the
/// metric value minus the alarm threshold. A missing bound is unbounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepAdjustment {
    #[serde(default)]
    pub metric_interval_lower_bound: Option<f64>,
    #[serde(default)]
    pub metric_interval_upper_bound: Option<f64>,
    pub scaling_adjustment: i64,
}

impl StepAdjustment {
    pub fn contains(&self, breach: f64) -> bool {
        self.metric_interval_lower_bound
            .is_none_or(|lo| breach >= lo)
            && self
                .metric_interval_upper_bound
                .is_none_or(|hi| breach < hi)
    }

    /// How far the interval lies from the threshold (0 when it touches it).
    pub fn distance_from_threshold(&self) -> f64 {
        match (
            self.metric_interval_lower_bound,
            self.metric_interval_upper_bound,
        ) {
            (Some(lo), _) if lo > 0.0 => lo,
            (_, Some(hi)) if hi < 0.0 => -hi,
            _ => 0.0,
        }
    }
}

impl fmt::Display for StepAdjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lo = self
            .metric_interval_lower_bound
            .map_or("-inf".to_string(), |v| v.to_string());
        let hi = self
            .metric_interval_upper_bound
            .map_or("+inf".to_string(), |v| v.to_string());
        write!(f, "[{lo}, {hi}) {:+}", self.scaling_adjustment)
    }
}

/// The desired count never leaves `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CapacityBounds {
    pub min: u32,
    pub max: u32,
}

impl CapacityBounds {
    pub fn clamp(&self, count: i64) -> u32 {
        let clamped = count.clamp(i64::from(self.min), i64::from(self.max));
        u32::try_from(clamped).unwrap_or(self.max)
    }
}

/// Seconds to wait after a scaling activity, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cooldowns {
    pub scale_out_seconds: u32,
    pub scale_in_seconds: u32,
}

/// A validated policy; built only by [`crate::config`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingPolicy {
    pub alarm: String,
    pub target: ServiceRef,
    pub adjustment_type: AdjustmentType,
    /// Sorted, contiguous, non-overlapping.
    pub steps: Vec<StepAdjustment>,
    pub min_adjustment_magnitude: Option<u32>,
    pub bounds: CapacityBounds,
    pub cooldowns: Cooldowns,
}
