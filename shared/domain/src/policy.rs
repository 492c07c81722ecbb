//! Scaling policies: which alarm resizes which service, by how much, within which bounds.
//!
//! The shapes mirror Application Auto Scaling step scaling so that an operator who
//! knows `StepScalingPolicyConfiguration` can read a policy at a glance.

use super::service::ServiceRef;
use serde::{Deserialize, Serialize};
use std::fmt;

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

/// One step: a range of the breach (the metric value minus the alarm
/// threshold) and the adjustment it asks for. A missing bound is unbounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepAdjustment {
    #[serde(default)]
    pub metric_interval_lower_bound: Option<f64>,
    #[serde(default)]
    pub metric_interval_upper_bound: Option<f64>,
    pub scaling_adjustment: i64,
}

/// Which side of the threshold a breach lies on, which decides the bounds' inclusivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSide {
    /// Lower bound inclusive, upper exclusive.
    Above,
    /// Lower bound exclusive, upper inclusive.
    Below,
}

impl ThresholdSide {
    /// The side of `breach`; a breach of exactly 0 lies on the side the alarm
    /// compares toward (`<`/`<=` alarms: below; `>`/`>=` or unknown: above).
    pub fn of(breach: f64, alarm_looks_below: bool) -> Self {
        if breach > 0.0 || (breach == 0.0 && !alarm_looks_below) {
            ThresholdSide::Above
        } else {
            ThresholdSide::Below
        }
    }
}

impl StepAdjustment {
    /// Whether the step covers `breach`, with the bounds' inclusivity of `side`
    /// (AWS `StepAdjustment`: above the threshold `lower <= b < upper`, below it
    /// `lower < b <= upper`).
    pub fn contains(&self, breach: f64, side: ThresholdSide) -> bool {
        let above_lower = |lo: f64| match side {
            ThresholdSide::Above => breach >= lo,
            ThresholdSide::Below => breach > lo,
        };
        let below_upper = |hi: f64| match side {
            ThresholdSide::Above => breach < hi,
            ThresholdSide::Below => breach <= hi,
        };
        self.metric_interval_lower_bound.is_none_or(above_lower)
            && self.metric_interval_upper_bound.is_none_or(below_upper)
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

impl StepAdjustment {
    /// The step as an interval with the brackets `side` gives its bounds.
    pub fn describe(&self, side: ThresholdSide) -> String {
        let lo = self
            .metric_interval_lower_bound
            .map_or("-inf".to_string(), |v| v.to_string());
        let hi = self
            .metric_interval_upper_bound
            .map_or("+inf".to_string(), |v| v.to_string());
        let (open, close) = match side {
            ThresholdSide::Above => ('[', ')'),
            ThresholdSide::Below => ('(', ']'),
        };
        format!("{open}{lo}, {hi}{close} {:+}", self.scaling_adjustment)
    }
}

impl fmt::Display for StepAdjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(ThresholdSide::Above))
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

    /// The count to bring `desired` back within the bounds, when it is outside them.
    pub fn correction(&self, desired: u32) -> Option<u32> {
        let inside = self.clamp(i64::from(desired));
        (inside != desired).then_some(inside)
    }
}

/// The largest capacity, adjustment or percentage a policy or command may name:
/// far above any ECS service quota, and small enough that no arithmetic on
/// it can overflow.
pub const MAGNITUDE_LIMIT: i64 = 1_000_000;

/// How the datapoints of an alarm's metric are combined into the one value
/// that picks a step (Application Auto Scaling's `MetricAggregationType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricAggregation {
    #[default]
    Average,
    Minimum,
    Maximum,
}

impl MetricAggregation {
    /// The aggregate of `values`, or `None` when there are none.
    pub fn of(self, values: &[f64]) -> Option<f64> {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        match self {
            MetricAggregation::Average => {
                let (sum, n) = finite.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
                (n > 0).then(|| sum / f64::from(n))
            }
            MetricAggregation::Minimum => finite.reduce(f64::min),
            MetricAggregation::Maximum => finite.reduce(f64::max),
        }
    }
}

/// Seconds to wait after a scaling activity, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cooldowns {
    pub scale_out_seconds: u32,
    pub scale_in_seconds: u32,
}

/// A validated policy; built only by the configuration loader (`ecs_control::config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingPolicy {
    pub alarm: String,
    pub target: ServiceRef,
    pub adjustment_type: AdjustmentType,
    /// Sorted, contiguous, non-overlapping.
    pub steps: Vec<StepAdjustment>,
    pub min_adjustment_magnitude: Option<u32>,
    pub metric_aggregation: MetricAggregation,
    pub bounds: CapacityBounds,
    pub cooldowns: Cooldowns,
}

/// What a policy does once its metric has been missing long enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FallbackAction {
    /// Keep the count (no scale-in, no scale-out), and say why.
    Hold,
    /// At least this many tasks: scale out to it when below, never in.
    MinCount { min_count: u32 },
}

/// A target-tracking policy's fallback for a metric outage (see
/// [`crate::fallback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fallback {
    pub after_minutes: u32,
    #[serde(flatten)]
    pub action: FallbackAction,
}
