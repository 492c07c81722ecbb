//! CloudWatch adapter: alarm states, and publishing metrics.

use super::classify;
use super::request_rate::{Family, RequestBudget};
use crate::domain::alarm::{
    AlarmMetric, AlarmState, AlarmStatus, Comparison, MetricPoint, MetricQuery, MetricStat,
};
use crate::domain::probe::{MetricDatum, MetricUnit};
use crate::ports::{AlarmControls, AlarmStates, FailureKind, MetricsSink, PortError};
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, ScanBy,
    StandardUnit, StateValue,
};
use aws_sdk_cloudwatch::Client;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use std::collections::BTreeMap;

/// DescribeAlarms takes at most 100 names a call.
const NAMES_PER_CALL: usize = 100;

/// [`AlarmStates`] backed by CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
    /// This function's share of AWS's request rates (clones share it).
    budget: RequestBudget,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self {
            client: super::deadline::with_deadline!(client),
            budget: RequestBudget::default(),
        }
    }

    /// The same adapter, keeping to `budget` instead.
    #[must_use]
    pub fn with_budget(mut self, budget: RequestBudget) -> Self {
        self.budget = budget;
        self
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn to_smithy(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

fn status(
    name: Option<&str>,
    state: Option<&str>,
    transitioned: Option<&aws_smithy_types::DateTime>,
    reason_data: Option<&str>,
    metric: Option<AlarmMetric>,
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
        state_transitioned_at: transitioned.and_then(to_chrono),
        reason_data: reason_data.map(str::to_string),
        metric,
    })
}

fn comparison(operator: Option<&ComparisonOperator>) -> Comparison {
    match operator {
        Some(ComparisonOperator::GreaterThanOrEqualToThreshold) => {
            Comparison::GreaterThanOrEqualToThreshold
        }
        Some(ComparisonOperator::GreaterThanThreshold) => Comparison::GreaterThanThreshold,
        Some(ComparisonOperator::LessThanThreshold) => Comparison::LessThanThreshold,
        Some(ComparisonOperator::LessThanOrEqualToThreshold) => {
            Comparison::LessThanOrEqualToThreshold
        }
        _ => Comparison::Other,
    }
}

fn period(seconds: Option<i32>) -> u32 {
    seconds.and_then(|p| u32::try_from(p).ok()).unwrap_or(60)
}

fn metric_stat(metric: Option<&Metric>, period_seconds: u32, stat: &str) -> Option<MetricStat> {
    let metric = metric?;
    Some(MetricStat {
        namespace: metric.namespace()?.to_string(),
        metric_name: metric.metric_name()?.to_string(),
        dimensions: metric
            .dimensions()
            .iter()
            .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
            .collect(),
        period_seconds,
        stat: stat.to_string(),
    })
}

/// What a metric alarm watches; `None` when it has no threshold (anomaly detection).
fn alarm_metric(alarm: &MetricAlarm) -> Option<AlarmMetric> {
    let threshold = alarm.threshold()?;
    let queries = if alarm.metrics().is_empty() {
        let stat = alarm
            .statistic()
            .map(|s| s.as_str().to_string())
            .or_else(|| alarm.extended_statistic().map(str::to_string))?;
        let single = Metric::builder()
            .set_namespace(alarm.namespace().map(str::to_string))
            .set_metric_name(alarm.metric_name().map(str::to_string))
            .set_dimensions(Some(alarm.dimensions().to_vec()))
            .build();
        vec![MetricQuery {
            id: "m1".into(),
            metric: metric_stat(Some(&single), period(alarm.period()), &stat),
            expression: None,
            period_seconds: None,
            return_data: true,
        }]
    } else {
        alarm
            .metrics()
            .iter()
            .map(|q| MetricQuery {
                id: q.id().unwrap_or_default().to_string(),
                metric: q.metric_stat().and_then(|s| {
                    metric_stat(
                        s.metric(),
                        period(s.period()),
                        s.stat().unwrap_or("Average"),
                    )
                }),
                expression: q.expression().map(str::to_string),
                period_seconds: q.period().and_then(|p| u32::try_from(p).ok()),
                return_data: q.return_data().unwrap_or(true),
            })
            .collect()
    };
    Some(AlarmMetric {
        threshold,
        comparison: comparison(alarm.comparison_operator()),
        evaluation_periods: alarm
            .evaluation_periods()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
        queries,
    })
}

fn data_query(query: &MetricQuery) -> MetricDataQuery {
    let stat = query.metric.as_ref().map(|m| {
        aws_sdk_cloudwatch::types::MetricStat::builder()
            .metric(
                Metric::builder()
                    .namespace(&m.namespace)
                    .metric_name(&m.metric_name)
                    .set_dimensions(Some(
                        m.dimensions
                            .iter()
                            .map(|(name, value)| {
                                Dimension::builder().name(name).value(value).build()
                            })
                            .collect(),
                    ))
                    .build(),
            )
            .period(i32::try_from(m.period_seconds).unwrap_or(60))
            .stat(&m.stat)
            .build()
    });
    MetricDataQuery::builder()
        .id(&query.id)
        .set_metric_stat(stat)
        .set_expression(query.expression.clone())
        .set_period(query.period_seconds.and_then(|p| i32::try_from(p).ok()))
        .return_data(query.return_data)
        .build()
}

impl AlarmStates for CloudWatchAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        let mut found = Vec::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut next_token = None;
            loop {
                self.budget.take(Family::CloudWatchDescribeAlarms).await;
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
                        alarm
                            .state_transitioned_timestamp()
                            .or(alarm.state_updated_timestamp()),
                        alarm.state_reason_data(),
                        alarm_metric(alarm),
                    )?);
                }
                for alarm in out.composite_alarms() {
                    found.push(status(
                        alarm.alarm_name(),
                        alarm.state_value().map(|s| s.as_str()),
                        alarm
                            .state_transitioned_timestamp()
                            .or(alarm.state_updated_timestamp()),
                        alarm.state_reason_data(),
                        None,
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

    async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        const OP: &str = "cloudwatch:GetMetricData";
        let mut series: BTreeMap<String, Vec<MetricPoint>> = queries
            .iter()
            .filter(|q| q.return_data)
            .map(|q| (q.id.clone(), Vec::new()))
            .collect();
        if series.is_empty() {
            return Err(PortError::new(
                FailureKind::Rejected,
                OP,
                "no query returns data",
            ));
        }
        let queries: Vec<MetricDataQuery> = queries.iter().map(data_query).collect();
        let mut next_token = None;
        loop {
            self.budget.take(Family::CloudWatchGetMetricData).await;
            let out = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(to_smithy(start))
                .end_time(to_smithy(end))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify(OP, e))?;
            for result in out.metric_data_results() {
                let Some(points) = result.id().and_then(|id| series.get_mut(id)) else {
                    continue;
                };
                points.extend(result.timestamps().iter().zip(result.values()).filter_map(
                    |(at, value)| {
                        Some(MetricPoint {
                            at: to_chrono(at)?,
                            value: *value,
                        })
                    },
                ));
            }
            next_token = out.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        for points in series.values_mut() {
            points.sort_by_key(|p| p.at);
        }
        Ok(series)
    }
}

impl AlarmControls for CloudWatchAlarms {
    async fn set_alarm_state(
        &self,
        alarm: &str,
        state: AlarmState,
        reason: &str,
    ) -> Result<(), PortError> {
        self.budget.take(Family::CloudWatchSetAlarmState).await;
        self.client
            .set_alarm_state()
            .alarm_name(alarm)
            .state_value(StateValue::from(state.as_str()))
            .state_reason(reason)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:SetAlarmState", e))?;
        Ok(())
    }
}

/// [`MetricsSink`] backed by CloudWatch PutMetricData.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: Client,
    /// This function's share of AWS's request rates (clones share it).
    budget: RequestBudget,
}

impl CloudWatchMetrics {
    pub fn new(client: Client) -> Self {
        Self {
            client: super::deadline::with_deadline!(client),
            budget: RequestBudget::default(),
        }
    }

    /// The same adapter, keeping to `budget` instead.
    #[must_use]
    pub fn with_budget(mut self, budget: RequestBudget) -> Self {
        self.budget = budget;
        self
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
        self.budget.take(Family::CloudWatchPutMetricData).await;
        self.client
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(items))
            .customize()
            .config_override(
                aws_sdk_cloudwatch::config::Builder::default()
                    .retry_classifier(RetryOnlyWhatWasRefused),
            )
            .send()
            .await
            .map_err(|e| classify("cloudwatch:PutMetricData", e))?;
        Ok(())
    }
}

/// PutMetricData has no idempotency token: sent again after CloudWatch may
/// have stored it, a batch would count twice in every statistic. So the SDK
/// retries it only when CloudWatch answered and refused it (throttling or
/// another 4xx it classifies as retryable); after a 5xx, a timeout or a
/// dropped connection the batch may have landed, and the invocation fails
/// retryably instead: a later run measures afresh, never resends.
#[derive(Debug)]
struct RetryOnlyWhatWasRefused;

impl ClassifyRetry for RetryOnlyWhatWasRefused {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(_)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        match ctx.response() {
            Some(answer) if answer.status().is_client_error() => RetryAction::NoActionIndicated,
            _ => RetryAction::RetryForbidden,
        }
    }

    fn name(&self) -> &'static str {
        "RetryOnlyWhatWasRefused"
    }
}
