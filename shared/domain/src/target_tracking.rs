//! Target tracking: keep a metric at a target value, the way Application Auto
//! Scaling's target-tracking policies do, and show the arithmetic they never show.
//!
//! Scale out when the last `scale_out_datapoints` one-minute datapoints are all
//! above the target; scale in when the last `scale_in_datapoints` are all below
//! `scale_in_ratio` of it. The new count is `ceil(current × metric / target)`.

use super::alarm::{MetricPoint, MetricQuery, MetricStat};
use super::breach::{Breach, BreachSource};
pub use super::evaluation::TrackingDetail;
use super::evaluation::{Hold, PolicyEvaluation};
use super::policy::{CapacityBounds, Cooldowns, Fallback, MAGNITUDE_LIMIT};
use super::rounding::ceil_count;
use super::scaling::{settle, Limits, ServiceState};
use super::service::ServiceRef;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// The period every tracked metric is read at.
pub const TRACKING_PERIOD_SECONDS: u32 = 60;
/// How far behind now the newest datapoint may be: CloudWatch publishes a
/// minute's datapoint a minute or two after it ends.
pub const PUBLISHING_LAG_MINUTES: i64 = 3;

/// Application Auto Scaling's figures: 3 datapoints above, 15 below 90%.
pub const DEFAULT_SCALE_OUT_DATAPOINTS: u32 = 3;
pub const DEFAULT_SCALE_IN_DATAPOINTS: u32 = 15;
pub const DEFAULT_SCALE_IN_RATIO: f64 = 0.9;

/// The metric a target-tracking policy holds at its target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrackedMetric {
    /// `AWS/ECS` `CPUUtilization` of the service, Average.
    EcsCpu,
    /// `AWS/ECS` `MemoryUtilization` of the service, Average.
    EcsMemory,
    /// `AWS/ApplicationELB` `RequestCountPerTarget` of a target group, Sum per minute.
    AlbRequestsPerTarget { target_group_arn: String },
    /// Any metric, with its statistic.
    Custom(MetricStat),
    /// A metric-math expression over named metrics.
    Math {
        expression: String,
        metrics: Vec<(String, MetricStat)>,
    },
}

/// The `TargetGroup` dimension value of a target group ARN: `targetgroup/name/id`.
pub fn target_group_dimension(arn: &str) -> Option<&str> {
    arn.splitn(6, ':')
        .nth(5)
        .filter(|r| r.starts_with("targetgroup/"))
}

impl TrackedMetric {
    /// A short name for records and logs.
    pub fn label(&self) -> String {
        match self {
            TrackedMetric::EcsCpu => "ecs_cpu".into(),
            TrackedMetric::EcsMemory => "ecs_memory".into(),
            TrackedMetric::AlbRequestsPerTarget { .. } => "alb_requests_per_target".into(),
            TrackedMetric::Custom(m) => format!("{}/{} {}", m.namespace, m.metric_name, m.stat),
            TrackedMetric::Math { expression, .. } => expression.clone(),
        }
    }

    /// The `GetMetricData` queries that read the metric for `service`; the
    /// last one returns the values.
    pub fn queries(&self, service: &ServiceRef) -> Vec<MetricQuery> {
        self.queries_at(service, TRACKING_PERIOD_SECONDS)
    }

    /// The same queries at another period (a predictive policy's load).
    pub fn queries_at(&self, service: &ServiceRef, period_seconds: u32) -> Vec<MetricQuery> {
        let stat = |namespace: &str, name: &str, dimensions: Vec<(String, String)>, stat: &str| {
            MetricStat {
                namespace: namespace.into(),
                metric_name: name.into(),
                dimensions,
                period_seconds,
                stat: stat.into(),
            }
        };
        let single = |metric: MetricStat| {
            vec![MetricQuery {
                id: "tracked".into(),
                metric: Some(metric),
                expression: None,
                period_seconds: None,
                return_data: true,
            }]
        };
        let ecs_dimensions = || {
            vec![
                ("ClusterName".to_string(), service.cluster.clone()),
                ("ServiceName".to_string(), service.service.clone()),
            ]
        };
        match self {
            TrackedMetric::EcsCpu => single(stat(
                "AWS/ECS",
                "CPUUtilization",
                ecs_dimensions(),
                "Average",
            )),
            TrackedMetric::EcsMemory => single(stat(
                "AWS/ECS",
                "MemoryUtilization",
                ecs_dimensions(),
                "Average",
            )),
            TrackedMetric::AlbRequestsPerTarget { target_group_arn } => single(stat(
                "AWS/ApplicationELB",
                "RequestCountPerTarget",
                vec![(
                    "TargetGroup".to_string(),
                    target_group_dimension(target_group_arn)
                        .unwrap_or(target_group_arn)
                        .to_string(),
                )],
                "Sum",
            )),
            TrackedMetric::Custom(metric) => single(MetricStat {
                period_seconds,
                ..metric.clone()
            }),
            TrackedMetric::Math {
                expression,
                metrics,
            } => metrics
                .iter()
                .map(|(id, metric)| MetricQuery {
                    id: id.clone(),
                    metric: Some(MetricStat {
                        period_seconds,
                        ..metric.clone()
                    }),
                    expression: None,
                    period_seconds: None,
                    return_data: false,
                })
                .chain(std::iter::once(MetricQuery {
                    id: "tracked".into(),
                    metric: None,
                    expression: Some(expression.clone()),
                    period_seconds: Some(period_seconds),
                    return_data: true,
                }))
                .collect(),
        }
    }
}

/// A validated target-tracking policy; built only by the configuration loader (`ecs_control::config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetTrackingPolicy {
    /// How records name the policy.
    pub name: String,
    pub target: ServiceRef,
    pub metric: TrackedMetric,
    pub target_value: f64,
    pub scale_out_datapoints: u32,
    pub scale_in_datapoints: u32,
    /// Scale in only when every datapoint is below this share of the target.
    pub scale_in_ratio: f64,
    pub disable_scale_in: bool,
    pub bounds: CapacityBounds,
    pub cooldowns: Cooldowns,
    /// What the policy does when its metric stays missing.
    pub fallback: Option<Fallback>,
}

impl TargetTrackingPolicy {
    /// The window to read: enough one-minute periods for the longer run, plus
    /// the publishing lag.
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let minutes = i64::from(self.scale_out_datapoints.max(self.scale_in_datapoints))
            + PUBLISHING_LAG_MINUTES;
        (now - TimeDelta::minutes(minutes), now)
    }
}

/// The newest `n` one-minute datapoints, when they are all there: the newest
/// within the publishing lag of `now`, each a minute after the one before.
///
/// # Errors
/// Says how many of the `n` were found.
pub fn last_run(
    points: &[MetricPoint],
    n: usize,
    now: DateTime<Utc>,
) -> Result<Vec<MetricPoint>, String> {
    let mut usable: Vec<MetricPoint> = points
        .iter()
        .filter(|p| p.value.is_finite() && p.at <= now)
        .cloned()
        .collect();
    usable.sort_by_key(|p| p.at);
    usable.dedup_by_key(|p| p.at);
    let Some(newest) = usable.last() else {
        return Err(format!("no datapoints; {n} one-minute datapoints needed"));
    };
    if newest.at < now - TimeDelta::minutes(PUBLISHING_LAG_MINUTES) {
        return Err(format!(
            "the newest datapoint ({}) is more than {PUBLISHING_LAG_MINUTES} minutes old",
            newest.at.format("%H:%M")
        ));
    }
    let mut run = vec![newest.clone()];
    for point in usable.iter().rev().skip(1) {
        if run.len() == n {
            break;
        }
        let expected = run.last().map(|p| p.at - TimeDelta::minutes(1));
        if Some(point.at) != expected {
            break;
        }
        run.push(point.clone());
    }
    if run.len() < n {
        return Err(format!(
            "{} of the last {n} one-minute datapoints found (a gap or too little data)",
            run.len()
        ));
    }
    run.reverse();
    Ok(run)
}

/// `ceil(current × metric / target)`, the count that brings the metric to the
/// target if load spreads evenly; from zero tasks, one.
pub fn tracked_count(current: u32, metric: f64, target: f64) -> i64 {
    if current == 0 {
        return i64::from(metric > target);
    }
    // Tolerant: a fraction metric must round as the same ratio in percent does.
    let exact = ceil_count(f64::from(current) * metric / target);
    // The limit keeps absurd metrics from overflowing; bounds clamp it anyway.
    #[allow(clippy::cast_possible_truncation)]
    let count = exact.clamp(0.0, MAGNITUDE_LIMIT as f64) as i64;
    count
}

/// Evaluates one target-tracking policy from its metric's datapoints.
pub fn evaluate_tracking(
    policy: &TargetTrackingPolicy,
    points: &[MetricPoint],
    limits: Limits,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> PolicyEvaluation {
    let target = policy.target_value;
    let in_below = target * policy.scale_in_ratio;
    let mut detail = TrackingDetail {
        metric: policy.metric.label(),
        target_value: target,
        datapoints: Vec::new(),
        data_note: None,
        arithmetic: None,
    };
    let unknown = |why: String| Breach::Unknown { why };
    let out_run = last_run(points, policy.scale_out_datapoints as usize, now);
    let (value, rule, run) = match &out_run {
        Err(why) => {
            detail.data_note = Some(why.clone());
            let evaluation =
                PolicyEvaluation::new(&policy.name, unknown(why.clone()), service.desired_count);
            return PolicyEvaluation {
                tracking: Some(detail),
                scale_in_disabled: policy.disable_scale_in,
                ..evaluation
            }
            .held(Hold::MissingData, format!("no change: {why}"));
        }
        Ok(run) if run.iter().all(|p| p.value > target) => {
            let newest = run.last().map_or(target, |p| p.value);
            (
                newest,
                format!(
                    "the last {} datapoints are all above the target {target}; the newest is {newest}",
                    run.len()
                ),
                run.clone(),
            )
        }
        Ok(out) => match last_run(points, policy.scale_in_datapoints as usize, now) {
            Ok(run) if run.iter().all(|p| p.value < in_below) => {
                // The highest of the run removes the fewest tasks.
                let highest = run.iter().map(|p| p.value).fold(f64::MIN, f64::max);
                (
                    highest,
                    format!(
                        "the last {} datapoints are all below {in_below} ({}% of the target); the highest is {highest}",
                        run.len(),
                        policy.scale_in_ratio * 100.0
                    ),
                    run,
                )
            }
            other => {
                let why = match other {
                    Err(why) => format!("not all of the last {} above the target {target}, and for scale-in {why}", out.len()),
                    Ok(run) => format!(
                        "neither the last {} datapoints all above the target {target} nor the last {} all below {in_below}",
                        out.len(),
                        run.len()
                    ),
                };
                detail.datapoints = out.clone();
                let newest = out.last().map_or(target, |p| p.value);
                let evaluation = PolicyEvaluation::new(
                    &policy.name,
                    Breach::Measured {
                        metric_value: newest,
                        threshold: target,
                        source: BreachSource::TargetTracking {
                            datapoints: out.len(),
                        },
                    },
                    service.desired_count,
                );
                return PolicyEvaluation {
                    tracking: Some(detail),
                    scale_in_disabled: policy.disable_scale_in,
                    ..evaluation
                }
                .held(Hold::AlreadyAtTarget, why);
            }
        },
    };
    detail.datapoints = run;
    let mut evaluation = PolicyEvaluation::new(
        &policy.name,
        Breach::Measured {
            metric_value: value,
            threshold: target,
            source: BreachSource::TargetTracking {
                datapoints: detail.datapoints.len(),
            },
        },
        service.desired_count,
    );
    evaluation.rule = rule;
    evaluation.scale_in_disabled = policy.disable_scale_in;
    settle(
        &mut evaluation,
        |base| tracked_count(base, value, target),
        policy.cooldowns,
        !policy.disable_scale_in,
        limits,
        service,
        now,
    );
    let base = evaluation.computed_from;
    let proposed = evaluation
        .proposed
        .unwrap_or_else(|| tracked_count(base, value, target));
    detail.arithmetic = Some(format!("ceil({base} × {value} / {target}) = {proposed}"));
    evaluation.tracking = Some(detail);
    evaluation
}
