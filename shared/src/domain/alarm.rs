//! What the scaler needs to know about a CloudWatch alarm, whatever carried it.

use super::scaling::Breach;
use chrono::{DateTime, Utc};
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

/// An alarm as CloudWatch describes it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    pub state_updated_at: Option<DateTime<Utc>>,
    /// The alarm's `StateReasonData`: a JSON document, absent for composite alarms.
    pub reason_data: Option<String>,
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
                why: format!("reasonData is not the metric alarm shape: {e}"),
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
                threshold: 80.0
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
