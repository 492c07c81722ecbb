//! How far an alarm's metric is past its threshold, and where that was read:
//! what the alarm readings hand to the scaling decision.

use super::policy::MetricAggregation;
use serde::Serialize;

/// Where a measured breach came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum BreachSource {
    /// The alarm's metric read at decision time, its datapoints combined.
    Metric {
        datapoints: usize,
        aggregation: MetricAggregation,
    },
    /// The alarm's `StateReasonData`, written when it last changed state.
    ReasonData,
    /// A target-tracking policy's run of one-minute datapoints.
    TargetTracking { datapoints: usize },
}

/// How far the alarm's metric is past its threshold, if known.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Breach {
    Measured {
        metric_value: f64,
        threshold: f64,
        source: BreachSource,
    },
    Unknown {
        why: String,
    },
}

impl Breach {
    pub fn size(&self) -> Option<f64> {
        match self {
            Breach::Measured {
                metric_value,
                threshold,
                ..
            } => Some(metric_value - threshold),
            Breach::Unknown { .. } => None,
        }
    }
}
