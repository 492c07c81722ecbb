//! CloudWatch adapter: alarm states.

use super::classify;
use crate::domain::alarm::{AlarmState, AlarmStatus};
use crate::ports::{AlarmStates, FailureKind, PortError};
use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;

/// DescribeAlarms takes at most 100 names a call.
const NAMES_PER_CALL: usize = 100;

/// [`AlarmStates`] backed by CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn status(
    name: Option<&str>,
    state: Option<&str>,
    updated: Option<&aws_smithy_types::DateTime>,
    reason_data: Option<&str>,
) -> Result<AlarmStatus, PortError> {
    let name = name.unwrap_or_default().to_string();
    let state = state.and_then(AlarmState::parse).ok_or_else(|| {
        PortError::new(
            FailureKind::Retryable,
            "cloudwatch:DescribeAlarms",
            format!("alarm {name} has an unknown state {state:?}"),
        )
    })?;
    Ok(AlarmStatus {
        name,
        state,
        state_updated_at: updated.and_then(to_chrono),
        reason_data: reason_data.map(str::to_string),
    })
}

impl AlarmStates for CloudWatchAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        let mut found = Vec::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut next_token = None;
            loop {
                let out = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(next_token)
                    .send()
                    .await
                    .map_err(|e| classify("cloudwatch:DescribeAlarms", e))?;
                for alarm in out.metric_alarms() {
                    found.push(status(
                        alarm.alarm_name(),
                        alarm.state_value().map(|s| s.as_str()),
                        alarm.state_updated_timestamp(),
                        alarm.state_reason_data(),
                    )?);
                }
                for alarm in out.composite_alarms() {
                    found.push(status(
                        alarm.alarm_name(),
                        alarm.state_value().map(|s| s.as_str()),
                        alarm.state_updated_timestamp(),
                        alarm.state_reason_data(),
                    )?);
                }
                next_token = out.next_token().map(str::to_string);
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}
