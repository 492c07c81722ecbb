//! CloudWatch adapter: alarm states, and publishing metrics.

use super::classify;
use crate::domain::alarm::{AlarmState, AlarmStatus};
use crate::domain::probe::{MetricDatum, MetricUnit};
use crate::ports::{AlarmStates, FailureKind, MetricsSink, PortError};
use aws_sdk_cloudwatch::types::{AlarmType, Dimension, StandardUnit};
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

/// [`MetricsSink`] backed by CloudWatch PutMetricData.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: Client,
}

impl CloudWatchMetrics {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn unit(unit: MetricUnit) -> StandardUnit {
    match unit {
        MetricUnit::Milliseconds => StandardUnit::Milliseconds,
        MetricUnit::Count => StandardUnit::Count,
        MetricUnit::Percent => StandardUnit::Percent,
        MetricUnit::None => StandardUnit::None,
    }
}

impl MetricsSink for CloudWatchMetrics {
    async fn put(
        &self,
        namespace: &str,
        data: &[MetricDatum],
        timestamp: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PortError> {
        let at = aws_smithy_types::DateTime::from_millis(timestamp.timestamp_millis());
        let items = data
            .iter()
            .map(|d| {
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(d.name)
                    .set_dimensions(Some(
                        d.dimensions
                            .iter()
                            .map(|(name, value)| {
                                Dimension::builder().name(*name).value(value).build()
                            })
                            .collect(),
                    ))
                    .value(d.value)
                    .unit(unit(d.unit))
                    .timestamp(at)
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(items))
            .send()
            .await
            .map_err(|e| classify("cloudwatch:PutMetricData", e))?;
        Ok(())
    }
}
