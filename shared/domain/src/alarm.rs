//! What the scaler needs to know about a CloudWatch alarm, whatever carried it.

use super::breach::{Breach, BreachSource};
use super::policy::MetricAggregation;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A CloudWatch alarm state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

/// How a metric alarm compares its metric with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
    /// Anomaly-detection and other comparisons the scaler does not read.
    Other,
}

impl Comparison {
    /// Whether the alarm fires when the metric is low.
    pub fn looks_below(self) -> bool {
        matches!(
            self,
            Comparison::LessThanThreshold | Comparison::LessThanOrEqualToThreshold
        )
    }
}

/// One metric an alarm reads, as `GetMetricData` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricStat {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub period_seconds: u32,
    /// `Average`, `Maximum`, `p90`, ...
    pub stat: String,
}

/// One query of an alarm: a metric, or a metric-math expression over other queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricQuery {
    pub id: String,
    pub metric: Option<MetricStat>,
    pub expression: Option<String>,
    pub period_seconds: Option<u32>,
    /// The query whose values the alarm compares with its threshold.
    pub return_data: bool,
}

/// One value of a metric at the start of its period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// What a metric alarm watches and how, so its metric can be read at decision time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmMetric {
    pub threshold: f64,
    pub comparison: Comparison,
    pub evaluation_periods: u32,
    /// A single metric is one query; a metric-math alarm has several.
    pub queries: Vec<MetricQuery>,
}

impl AlarmMetric {
    /// The alarm's period: its metric's, or its returned query's.
    pub fn period_seconds(&self) -> u32 {
        self.queries
            .iter()
            .find(|q| q.return_data)
            .and_then(|q| {
                q.metric
                    .as_ref()
                    .map(|m| m.period_seconds)
                    .or(q.period_seconds)
            })
            .or_else(|| {
                self.queries
                    .iter()
                    .find_map(|q| q.metric.as_ref().map(|m| m.period_seconds))
            })
            .unwrap_or(60)
            .max(1)
    }

    /// The window to read the alarm's metric in at `now`: its evaluation
    /// periods, one more before them, and the period `now` is in (CloudWatch
    /// rounds the start down to a period), so the newest
    /// [`AlarmMetric::evaluated`] datapoints are the ones the alarm just saw.
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let period = i64::from(self.period_seconds());
        let span = period * (i64::from(self.evaluation_periods.max(1)) + 1);
        (
            now - TimeDelta::seconds(span),
            now + TimeDelta::seconds(period),
        )
    }

    /// The newest `evaluation_periods` values of a window, oldest first.
    pub fn evaluated<'a>(&self, values: &'a [f64]) -> &'a [f64] {
        let n = (self.evaluation_periods.max(1) as usize).min(values.len());
        &values[values.len() - n..]
    }
}

/// An alarm as CloudWatch describes it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    /// When the alarm last changed state: the time every delivery of that change carries.
    pub state_transitioned_at: Option<DateTime<Utc>>,
    /// The alarm's `StateReasonData`: a JSON document, absent for composite alarms.
    pub reason_data: Option<String>,
    /// What a metric alarm watches; `None` for composite alarms.
    pub metric: Option<AlarmMetric>,
}

/// The breach the alarm's metric shows now: its datapoints in the alarm's
/// window, combined by `aggregation`, against the threshold.
pub fn breach_from_datapoints(
    values: &[f64],
    aggregation: MetricAggregation,
    threshold: f64,
) -> Option<Breach> {
    aggregation.of(values).map(|metric_value| Breach::Measured {
        metric_value,
        threshold,
        source: BreachSource::Metric {
            datapoints: values.len(),
            aggregation,
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasonData {
    threshold: Option<f64>,
    #[serde(default)]
    recent_datapoints: Vec<f64>,
    #[serde(default)]
    evaluated_datapoints: Vec<EvaluatedDatapoint>,
}

#[derive(Deserialize)]
struct EvaluatedDatapoint {
    timestamp: String,
    value: Option<f64>,
}

/// serde's error quotes the offending value whole; the record keeps this much.
const SAID_LIMIT: usize = 200;

/// The breach an alarm's `reasonData` shows: its newest evaluated datapoint (or,
/// without those, its last recent datapoint) against its threshold.
pub fn breach_from_reason_data(reason_data: Option<&str>) -> Breach {
    let Some(raw) = reason_data.filter(|s| !s.trim().is_empty()) else {
        return Breach::Unknown {
            why: "the alarm carries no reasonData".into(),
        };
    };
    let parsed: ReasonData = match serde_json::from_str(raw) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Breach::Unknown {
                why: format!(
                    "reasonData is not the metric alarm shape: {}",
                    crate::echo::capped(&e.to_string(), SAID_LIMIT)
                ),
            }
        }
    };
    let Some(threshold) = parsed.threshold else {
        return Breach::Unknown {
            why: "reasonData has no threshold (composite alarm?)".into(),
        };
    };
    // ISO-8601 timestamps of one alarm share a format, so they order as strings.
    let newest_evaluated = parsed
        .evaluated_datapoints
        .iter()
        .filter_map(|d| d.value.map(|v| (d.timestamp.as_str(), v)))
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(_, v)| v);
    match newest_evaluated.or(parsed.recent_datapoints.last().copied()) {
        Some(metric_value) => Breach::Measured {
            metric_value,
            threshold,
            source: BreachSource::ReasonData,
        },
        None => Breach::Unknown {
            why: "reasonData has no datapoints".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_evaluated_datapoint_wins() {
        let data = r#"{"version":"1.0","threshold":80.0,"recentDatapoints":[81.0,95.5],
            "evaluatedDatapoints":[{"timestamp":"2026-11-21T10:02:00.000+0000","value":95.5},
                                   {"timestamp":"2026-11-21T10:01:00.000+0000","value":81.0}]}"#;
        assert_eq!(
            breach_from_reason_data(Some(data)),
            Breach::Measured {
                metric_value: 95.5,
                threshold: 80.0,
                source: BreachSource::ReasonData,
            }
        );
    }

    #[test]
    fn recent_datapoints_are_the_fallback() {
        let data = r#"{"threshold":10,"recentDatapoints":[3.0,12.0]}"#;
        assert_eq!(breach_from_reason_data(Some(data)).size(), Some(2.0));
    }

    #[test]
    fn missing_or_foreign_reason_data_is_unknown_with_a_reason() {
        for (data, needle) in [
            (None, "no reasonData"),
            (Some(""), "no reasonData"),
            (Some("not json"), "not the metric alarm shape"),
            (Some(r#"{"triggeringAlarms":[]}"#), "no threshold"),
            (Some(r#"{"threshold":1}"#), "no datapoints"),
        ] {
            match breach_from_reason_data(data) {
                Breach::Unknown { why } => assert!(why.contains(needle), "{why}"),
                other => panic!("expected unknown, got {other:?}"),
            }
        }
    }
}
