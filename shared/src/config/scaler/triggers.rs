//! The policy document's target-tracking policies, time windows and
//! per-service budget and pace.

use super::{default_cooldown, parse_entry};
use crate::config::ConfigError;
use crate::domain::alarm::MetricStat;
use crate::domain::budget::{Budget, Prices, FARGATE_ARM64, FARGATE_X86_64};
use crate::domain::drain::{
    DrainOrder, DrainSettings, DEFAULT_MAX_DRAIN_SECONDS, MAX_DRAIN_SECONDS_LIMIT,
};
use crate::domain::fallback::MAX_AFTER_MINUTES;
use crate::domain::pace::Pace;
use crate::domain::policy::{CapacityBounds, Cooldowns, Fallback, FallbackAction, MAGNITUDE_LIMIT};
use crate::domain::scale_in::{
    RateLimit, ScaleInBehaviour, ScaleInRate, MAX_MINUTES as SCALE_IN_MAX_MINUTES,
};
use crate::domain::schedule::{ScheduleWindow, WindowTiming};
use crate::domain::schedule_expression::{ScheduleExpression, FORMS};
use crate::domain::service::ServiceRef;
use crate::domain::target_tracking::{
    target_group_dimension, TargetTrackingPolicy, TrackedMetric, DEFAULT_SCALE_IN_DATAPOINTS,
    DEFAULT_SCALE_IN_RATIO, DEFAULT_SCALE_OUT_DATAPOINTS, TRACKING_PERIOD_SECONDS,
};
use crate::domain::zone::Zone;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The most one-minute datapoints a run may ask for (a day).
const MAX_DATAPOINTS: u32 = 1440;
/// The longest window: a month.
const MAX_WINDOW_MINUTES: u32 = 31 * 24 * 60;

/// A service's budget ceiling, pace and scale-in behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSettings {
    pub budget: Option<Budget>,
    pub pace: Pace,
    pub scale_in: ScaleInBehaviour,
    pub drain: DrainSettings,
    /// The entry's place in `services[]`, for errors found later.
    pub entry: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackingEntry {
    #[serde(default)]
    name: Option<String>,
    cluster: String,
    service: String,
    metric: serde_json::Value,
    #[serde(default)]
    target_group_arn: Option<String>,
    target_value: f64,
    #[serde(default)]
    scale_out_datapoints: Option<u32>,
    #[serde(default)]
    scale_in_datapoints: Option<u32>,
    /// Percent of the target every scale-in datapoint must be below (90).
    #[serde(default)]
    scale_in_below_percent: Option<f64>,
    #[serde(default)]
    disable_scale_in: bool,
    min_capacity: u32,
    max_capacity: u32,
    #[serde(default = "default_cooldown")]
    scale_out_cooldown_seconds: u32,
    #[serde(default = "default_cooldown")]
    scale_in_cooldown_seconds: u32,
    /// `{"after_minutes": 5}` (hold) or `{"after_minutes": 5, "min_count": 4}`.
    #[serde(default)]
    fallback: Option<FallbackEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackEntry {
    after_minutes: u32,
    #[serde(default)]
    min_count: Option<u32>,
}

/// A policy's fallback, checked against its bounds.
fn fallback(
    at: &dyn Fn(&str) -> String,
    entry: FallbackEntry,
    bounds: CapacityBounds,
) -> Result<Fallback, ConfigError> {
    if !(1..=MAX_AFTER_MINUTES).contains(&entry.after_minutes) {
        return Err(ConfigError::new(
            at("fallback.after_minutes"),
            format!(
                "{} must be between 1 and {MAX_AFTER_MINUTES}",
                entry.after_minutes
            ),
        ));
    }
    let action = match entry.min_count {
        None => FallbackAction::Hold,
        Some(n) if n < bounds.min || n > bounds.max => {
            return Err(ConfigError::new(
                at("fallback.min_count"),
                format!(
                    "{n} is outside the policy's min_capacity..max_capacity ({}..{})",
                    bounds.min, bounds.max
                ),
            ))
        }
        Some(min_count) => FallbackAction::MinCount { min_count },
    };
    Ok(Fallback {
        after_minutes: entry.after_minutes,
        action,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricEntry {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    statistic: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MathEntry {
    expression: String,
    metrics: BTreeMap<String, MetricEntry>,
}

fn metric_stat(entry: MetricEntry) -> MetricStat {
    MetricStat {
        namespace: entry.namespace,
        metric_name: entry.metric_name,
        dimensions: entry.dimensions.into_iter().collect(),
        period_seconds: TRACKING_PERIOD_SECONDS,
        stat: entry.statistic,
    }
}

pub(super) fn tracked_metric(
    at: &dyn Fn(&str) -> String,
    metric: serde_json::Value,
    target_group_arn: Option<String>,
) -> Result<TrackedMetric, ConfigError> {
    let metric = match metric {
        serde_json::Value::String(name) => match name.as_str() {
            "ecs_cpu" => TrackedMetric::EcsCpu,
            "ecs_memory" => TrackedMetric::EcsMemory,
            "alb_requests_per_target" => {
                let arn = target_group_arn.ok_or_else(|| {
                    ConfigError::new(
                        at("target_group_arn"),
                        "alb_requests_per_target needs the target group's ARN",
                    )
                })?;
                if target_group_dimension(&arn).is_none() {
                    return Err(ConfigError::new(
                        at("target_group_arn"),
                        format!("{arn} is not a target group ARN"),
                    ));
                }
                return Ok(TrackedMetric::AlbRequestsPerTarget {
                    target_group_arn: arn,
                });
            }
            other => {
                return Err(ConfigError::new(
                    at("metric"),
                    format!(
                    "{other:?} is not a metric: use ecs_cpu, ecs_memory, alb_requests_per_target, \
                         a custom metric {{namespace, metric_name, dimensions, statistic}} or \
                         metric math {{expression, metrics}}"
                ),
                ))
            }
        },
        value @ serde_json::Value::Object(_) if value.get("expression").is_some() => {
            let math: MathEntry = parse_entry(&at("metric"), value)?;
            if math.expression.trim().is_empty() {
                return Err(ConfigError::new(
                    at("metric.expression"),
                    "must not be empty",
                ));
            }
            if math.metrics.is_empty() {
                return Err(ConfigError::new(
                    at("metric.metrics"),
                    "name at least one metric the expression uses",
                ));
            }
            for id in math.metrics.keys() {
                let valid = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(ConfigError::new(
                        at(&format!("metric.metrics.{id}")),
                        "a metric id starts with a lowercase letter and holds letters, digits and _",
                    ));
                }
            }
            TrackedMetric::Math {
                expression: math.expression,
                metrics: math
                    .metrics
                    .into_iter()
                    .map(|(id, m)| (id, metric_stat(m)))
                    .collect(),
            }
        }
        value @ serde_json::Value::Object(_) => {
            TrackedMetric::Custom(metric_stat(parse_entry(&at("metric"), value)?))
        }
        other => {
            return Err(ConfigError::new(
                at("metric"),
                format!("{other} is not a metric name or object"),
            ))
        }
    };
    if target_group_arn.is_some() {
        return Err(ConfigError::new(
            at("target_group_arn"),
            "applies only to metric alb_requests_per_target",
        ));
    }
    Ok(metric)
}

pub(super) fn check_capacity(
    at: &dyn Fn(&str) -> String,
    min: u32,
    max: u32,
) -> Result<CapacityBounds, ConfigError> {
    for (field, value) in [("min_capacity", min), ("max_capacity", max)] {
        if i64::from(value) > MAGNITUDE_LIMIT {
            return Err(ConfigError::new(
                at(field),
                format!("{value} is above the limit of {MAGNITUDE_LIMIT}"),
            ));
        }
    }
    if min > max {
        return Err(ConfigError::new(
            at("max_capacity"),
            format!("{max} is below min_capacity {min}"),
        ));
    }
    Ok(CapacityBounds { min, max })
}

/// The service a policy names; neither part may be blank.
pub(super) fn named_service(
    at: &dyn Fn(&str) -> String,
    cluster: &str,
    service: &str,
) -> Result<ServiceRef, ConfigError> {
    for (field, value) in [("cluster", cluster), ("service", service)] {
        if value.trim().is_empty() {
            return Err(ConfigError::new(at(field), "must not be empty"));
        }
    }
    Ok(ServiceRef::new(cluster, service))
}

/// One `target_tracking` policy, `policies[i]` with its `type` removed.
pub(super) fn tracking_policy(
    i: usize,
    raw: serde_json::Value,
) -> Result<TargetTrackingPolicy, ConfigError> {
    let at = |field: &str| format!("policies[{i}].{field}");
    let entry: TrackingEntry = parse_entry(&format!("policies[{i}]"), raw)?;
    let target = named_service(&at, &entry.cluster, &entry.service)?;
    if !(entry.target_value.is_finite() && entry.target_value > 0.0) {
        return Err(ConfigError::new(
            at("target_value"),
            format!("{} must be a number above 0", entry.target_value),
        ));
    }
    let datapoints = |field: &str, value: Option<u32>, default: u32| match value {
        Some(n) if n == 0 || n > MAX_DATAPOINTS => Err(ConfigError::new(
            at(field),
            format!("{n} must be between 1 and {MAX_DATAPOINTS}"),
        )),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let scale_out_datapoints = datapoints(
        "scale_out_datapoints",
        entry.scale_out_datapoints,
        DEFAULT_SCALE_OUT_DATAPOINTS,
    )?;
    let scale_in_datapoints = datapoints(
        "scale_in_datapoints",
        entry.scale_in_datapoints,
        DEFAULT_SCALE_IN_DATAPOINTS,
    )?;
    let scale_in_ratio = match entry.scale_in_below_percent {
        Some(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
            return Err(ConfigError::new(
                at("scale_in_below_percent"),
                format!("{p} must be above 0 and at most 100"),
            ))
        }
        Some(p) => p / 100.0,
        None => DEFAULT_SCALE_IN_RATIO,
    };
    let bounds = check_capacity(&at, entry.min_capacity, entry.max_capacity)?;
    let fallback = entry
        .fallback
        .map(|f| fallback(&at, f, bounds))
        .transpose()?;
    let metric = tracked_metric(&at, entry.metric, entry.target_group_arn)?;
    let name = match entry.name {
        Some(name) if name.trim().is_empty() => {
            return Err(ConfigError::new(at("name"), "must not be empty"))
        }
        Some(name) => name,
        None => format!("{} at {}", metric.label(), entry.target_value),
    };
    Ok(TargetTrackingPolicy {
        name,
        target,
        metric,
        target_value: entry.target_value,
        scale_out_datapoints,
        scale_in_datapoints,
        scale_in_ratio,
        disable_scale_in: entry.disable_scale_in,
        bounds,
        cooldowns: Cooldowns {
            scale_out_seconds: entry.scale_out_cooldown_seconds,
            scale_in_seconds: entry.scale_in_cooldown_seconds,
        },
        fallback,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleEntry {
    #[serde(default)]
    name: Option<String>,
    cluster: String,
    service: String,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    duration_minutes: Option<u32>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    min_capacity: Option<u32>,
    #[serde(default)]
    max_capacity: Option<u32>,
    #[serde(default)]
    desired_count: Option<u32>,
}

/// At most the first 64 characters of `raw`: an error names the value, never echoes a document.
fn shortened(raw: &str) -> String {
    match raw.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

fn instant(
    at: &dyn Fn(&str) -> String,
    field: &str,
    raw: &str,
) -> Result<DateTime<Utc>, ConfigError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ConfigError::new(
                at(field),
                format!("{raw:?} is not an RFC 3339 time with an offset, e.g. 2026-12-24T08:00:00+01:00: {e}"),
            )
        })
}

fn duration(at: &dyn Fn(&str) -> String, minutes: Option<u32>) -> Result<TimeDelta, ConfigError> {
    match minutes {
        None => Err(ConfigError::new(
            at("duration_minutes"),
            "a cron window needs its length in minutes",
        )),
        Some(m) if m == 0 || m > MAX_WINDOW_MINUTES => Err(ConfigError::new(
            at("duration_minutes"),
            format!("{m} must be between 1 and {MAX_WINDOW_MINUTES} (31 days)"),
        )),
        Some(m) => Ok(TimeDelta::minutes(i64::from(m))),
    }
}

fn window(
    j: usize,
    entry: ScheduleEntry,
    bounds: &BTreeMap<ServiceRef, CapacityBounds>,
) -> Result<(ServiceRef, ScheduleWindow), ConfigError> {
    let at = |field: &str| format!("schedules[{j}].{field}");
    let service = ServiceRef::new(&entry.cluster, &entry.service);
    let Some(policy) = bounds.get(&service) else {
        return Err(ConfigError::new(
            at("service"),
            format!("no policy resizes {service}: a window narrows the bounds a policy sets"),
        ));
    };
    let timing = match (&entry.cron, &entry.start) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ConfigError::new(
                at("cron"),
                "give either cron (a recurring window) or start (a one-off window)",
            ))
        }
        (Some(pattern), None) => {
            if entry.end.is_some() {
                return Err(ConfigError::new(
                    at("end"),
                    "a cron window ends after duration_minutes",
                ));
            }
            let schedule = ScheduleExpression::parse(pattern).map_err(|why| {
                ConfigError::new(
                    at("cron"),
                    format!("{:?} {why}; {FORMS}", shortened(pattern)),
                )
            })?;
            let zone = entry.time_zone.as_deref().unwrap_or("UTC");
            let time_zone = Zone::named(zone).ok_or_else(|| {
                ConfigError::new(
                    at("time_zone"),
                    format!("{zone:?} is not an IANA time zone, e.g. Europe/Berlin"),
                )
            })?;
            WindowTiming::Recurring {
                schedule,
                time_zone,
                duration: duration(&at, entry.duration_minutes)?,
            }
        }
        (None, Some(start)) => {
            if entry.time_zone.is_some() {
                return Err(ConfigError::new(
                    at("time_zone"),
                    "a one-off window's start and end carry their own offsets",
                ));
            }
            let start = instant(&at, "start", start)?;
            let end = match (&entry.end, entry.duration_minutes) {
                (Some(end), None) => instant(&at, "end", end)?,
                (None, Some(_)) => start + duration(&at, entry.duration_minutes)?,
                _ => {
                    return Err(ConfigError::new(
                        at("end"),
                        "a one-off window needs either end or duration_minutes",
                    ))
                }
            };
            if end <= start {
                return Err(ConfigError::new(at("end"), "must be after start"));
            }
            WindowTiming::Once { start, end }
        }
    };
    if entry.min_capacity.is_none() && entry.max_capacity.is_none() && entry.desired_count.is_none()
    {
        return Err(ConfigError::new(
            at("min_capacity"),
            "a window sets min_capacity, max_capacity or desired_count",
        ));
    }
    if let Some(min) = entry.min_capacity {
        if min > policy.max {
            return Err(ConfigError::new(
                at("min_capacity"),
                format!("{min} is above the service's max_capacity {}", policy.max),
            ));
        }
    }
    if let Some(max) = entry.max_capacity {
        if max < policy.min {
            return Err(ConfigError::new(
                at("max_capacity"),
                format!("{max} is below the service's min_capacity {}", policy.min),
            ));
        }
        if entry.min_capacity.is_some_and(|min| min > max) {
            return Err(ConfigError::new(
                at("max_capacity"),
                format!("{max} is below this window's min_capacity"),
            ));
        }
    }
    if let Some(desired) = entry.desired_count {
        let low = entry.min_capacity.unwrap_or(policy.min);
        let high = entry.max_capacity.unwrap_or(policy.max);
        if desired < low || desired > high {
            return Err(ConfigError::new(
                at("desired_count"),
                format!("{desired} is outside the window's bounds [{low}, {high}]"),
            ));
        }
    }
    let name = match entry.name {
        Some(name) if name.trim().is_empty() => {
            return Err(ConfigError::new(at("name"), "must not be empty"))
        }
        Some(name) => name,
        None => format!("schedules[{j}]"),
    };
    Ok((
        service,
        ScheduleWindow {
            name,
            timing,
            min_capacity: entry.min_capacity,
            max_capacity: entry.max_capacity,
            desired_count: entry.desired_count,
        },
    ))
}

/// The `schedules` list. Windows of one service that could overlap must not
/// contradict: no window's min above another's max.
pub(super) fn schedules(
    raw: Vec<serde_json::Value>,
    bounds: &BTreeMap<ServiceRef, CapacityBounds>,
) -> Result<Vec<(ServiceRef, ScheduleWindow)>, ConfigError> {
    let mut windows: Vec<(ServiceRef, ScheduleWindow)> = Vec::with_capacity(raw.len());
    for (j, value) in raw.into_iter().enumerate() {
        let (service, window) = window(j, parse_entry(&format!("schedules[{j}]"), value)?, bounds)?;
        for (k, (other_service, other)) in windows.iter().enumerate() {
            if *other_service != service {
                continue;
            }
            let clash =
                |min: Option<u32>, max: Option<u32>| min.zip(max).filter(|(lo, hi)| lo > hi);
            let found = clash(window.min_capacity, other.max_capacity)
                .map(|(lo, hi)| ("min_capacity", lo, "max_capacity", hi))
                .or_else(|| {
                    clash(other.min_capacity, window.max_capacity)
                        .map(|(lo, hi)| ("max_capacity", hi, "min_capacity", lo))
                });
            if let Some((field, mine, theirs_field, theirs)) = found {
                return Err(ConfigError::new(
                    format!("schedules[{j}].{field}"),
                    format!(
                        "{mine} contradicts schedules[{k}].{theirs_field} {theirs} for {service}: \
                         while both are open no count satisfies both"
                    ),
                ));
            }
        }
        windows.push((service, window));
    }
    Ok(windows)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    cluster: String,
    service: String,
    #[serde(default)]
    max_hourly_cost: Option<f64>,
    /// Picks the default Fargate prices: `x86_64` (default) or `arm64`.
    #[serde(default)]
    cpu_architecture: Option<String>,
    #[serde(default)]
    price_per_vcpu_hour: Option<f64>,
    #[serde(default)]
    price_per_gb_hour: Option<f64>,
    #[serde(default)]
    max_tasks_added_per_minute: Option<u32>,
    #[serde(default)]
    max_tasks_removed_per_minute: Option<u32>,
    /// Scale in only after this long wanting it, to the highest count wanted.
    #[serde(default)]
    scale_in_stabilisation_minutes: Option<u32>,
    /// `{"tasks": 2, "per_minutes": 5}` or `{"percent": 10, "per_minutes": 1}`.
    #[serde(default)]
    scale_in_rate: Option<RateEntry>,
    /// Drain the tasks a scale-in removes from the registrar's target
    /// groups before lowering the count (on by default where there are any).
    #[serde(default)]
    drain_before_scale_in: Option<bool>,
    /// `newest_first` (default) or `oldest_first`, within each zone.
    #[serde(default)]
    drain_order: DrainOrder,
    /// The longest a drain waits for targets before lowering the count anyway.
    #[serde(default)]
    max_drain_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateEntry {
    #[serde(default)]
    tasks: Option<u32>,
    #[serde(default)]
    percent: Option<u32>,
    per_minutes: u32,
}

/// A service's scale-in behaviour, each number within its range.
fn scale_in_behaviour(
    at: &dyn Fn(&str) -> String,
    stabilisation: Option<u32>,
    rate: Option<RateEntry>,
) -> Result<ScaleInBehaviour, ConfigError> {
    let in_range = |field: &str, n: u32| {
        if (1..=SCALE_IN_MAX_MINUTES).contains(&n) {
            Ok(n)
        } else {
            Err(ConfigError::new(
                at(field),
                format!("{n} must be between 1 and {SCALE_IN_MAX_MINUTES}"),
            ))
        }
    };
    let stabilisation_minutes = stabilisation
        .map(|n| in_range("scale_in_stabilisation_minutes", n))
        .transpose()?
        .unwrap_or(0);
    let rate = match rate {
        None => None,
        Some(rate) => {
            let per_minutes = in_range("scale_in_rate.per_minutes", rate.per_minutes)?;
            let limit = match (rate.tasks, rate.percent) {
                (Some(0), None) => {
                    return Err(ConfigError::new(
                        at("scale_in_rate.tasks"),
                        "must be at least 1 (leave scale_in_rate out for no limit)",
                    ))
                }
                (Some(n), None) => RateLimit::Tasks(n),
                (None, Some(p)) if (1..=100).contains(&p) => RateLimit::Percent(p),
                (None, Some(p)) => {
                    return Err(ConfigError::new(
                        at("scale_in_rate.percent"),
                        format!("{p} must be between 1 and 100"),
                    ))
                }
                _ => {
                    return Err(ConfigError::new(
                        at("scale_in_rate"),
                        "give either tasks or percent, with per_minutes",
                    ))
                }
            };
            Some(ScaleInRate { limit, per_minutes })
        }
    };
    Ok(ScaleInBehaviour {
        stabilisation_minutes,
        rate,
    })
}

fn settings(
    at: &dyn Fn(&str) -> String,
    entry: ServiceEntry,
) -> Result<ServiceSettings, ConfigError> {
    let price_fields = [
        ("cpu_architecture", entry.cpu_architecture.is_some()),
        ("price_per_vcpu_hour", entry.price_per_vcpu_hour.is_some()),
        ("price_per_gb_hour", entry.price_per_gb_hour.is_some()),
    ];
    let budget = match entry.max_hourly_cost {
        None => {
            if let Some((field, _)) = price_fields.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    at(field),
                    "applies only with max_hourly_cost",
                ));
            }
            None
        }
        Some(cost) => {
            if !(cost.is_finite() && cost >= 0.0) {
                return Err(ConfigError::new(
                    at("max_hourly_cost"),
                    format!("{cost} must be a number of at least 0"),
                ));
            }
            let defaults = match entry.cpu_architecture.as_deref() {
                None | Some("x86_64") => FARGATE_X86_64,
                Some("arm64") => FARGATE_ARM64,
                Some(other) => {
                    return Err(ConfigError::new(
                        at("cpu_architecture"),
                        format!("{other:?} is not x86_64 or arm64"),
                    ))
                }
            };
            let price = |field: &str, value: Option<f64>, default: f64| match value {
                Some(p) if !(p.is_finite() && p > 0.0) => Err(ConfigError::new(
                    at(field),
                    format!("{p} must be a price above 0"),
                )),
                Some(p) => Ok(p),
                None => Ok(default),
            };
            Some(Budget {
                max_hourly_cost: cost,
                prices: Prices {
                    per_vcpu_hour: price(
                        "price_per_vcpu_hour",
                        entry.price_per_vcpu_hour,
                        defaults.per_vcpu_hour,
                    )?,
                    per_gb_hour: price(
                        "price_per_gb_hour",
                        entry.price_per_gb_hour,
                        defaults.per_gb_hour,
                    )?,
                },
            })
        }
    };
    for (field, value) in [
        (
            "max_tasks_added_per_minute",
            entry.max_tasks_added_per_minute,
        ),
        (
            "max_tasks_removed_per_minute",
            entry.max_tasks_removed_per_minute,
        ),
    ] {
        if value == Some(0) {
            return Err(ConfigError::new(
                at(field),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
    }
    let scale_in = scale_in_behaviour(
        at,
        entry.scale_in_stabilisation_minutes,
        entry.scale_in_rate,
    )?;
    Ok(ServiceSettings {
        budget,
        pace: Pace {
            max_added_per_minute: entry.max_tasks_added_per_minute,
            max_removed_per_minute: entry.max_tasks_removed_per_minute,
        },
        scale_in,
        entry: 0,
        drain: DrainSettings {
            before_scale_in: entry.drain_before_scale_in,
            order: entry.drain_order,
            max_drain_seconds: match entry.max_drain_seconds {
                None => DEFAULT_MAX_DRAIN_SECONDS,
                Some(s) if (1..=MAX_DRAIN_SECONDS_LIMIT).contains(&s) => s,
                Some(s) => {
                    return Err(ConfigError::new(
                        at("max_drain_seconds"),
                        format!(
                            "{s} must be from 1 to {MAX_DRAIN_SECONDS_LIMIT} (ELBv2's longest deregistration delay)"
                        ),
                    ))
                }
            },
        },
    })
}

/// The `services` list: one entry per service, for a service a policy resizes.
pub(super) fn service_settings(
    raw: Vec<serde_json::Value>,
    bounds: &BTreeMap<ServiceRef, CapacityBounds>,
) -> Result<BTreeMap<ServiceRef, ServiceSettings>, ConfigError> {
    let mut found = BTreeMap::new();
    for (k, value) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("services[{k}].{field}");
        let entry: ServiceEntry = parse_entry(&format!("services[{k}]"), value)?;
        let service = ServiceRef::new(&entry.cluster, &entry.service);
        if !bounds.contains_key(&service) {
            return Err(ConfigError::new(
                at("service"),
                format!("no policy resizes {service}"),
            ));
        }
        if found.contains_key(&service) {
            return Err(ConfigError::new(
                at("service"),
                format!("{service} already has an entry"),
            ));
        }
        found.insert(
            service,
            ServiceSettings {
                entry: k,
                ..settings(&at, entry)?
            },
        );
    }
    Ok(found)
}
