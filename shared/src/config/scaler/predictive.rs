//! The policy document's `predictive` policies.

use super::parse_entry;
use super::triggers::{check_capacity, named_service, tracked_metric};
use crate::config::ConfigError;
use crate::domain::alarm::MetricStat;
use crate::domain::predictive::{
    MaxCapacityBreach, PredictiveMode, PredictivePolicy, DEFAULT_FORECAST_PERIOD_SECONDS,
    DEFAULT_SCHEDULING_BUFFER_SECONDS, FORECAST_PERIODS, MAX_SCHEDULING_BUFFER_SECONDS,
};
use crate::domain::target_tracking::{target_group_dimension, TrackedMetric};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictiveEntry {
    #[serde(default)]
    name: Option<String>,
    cluster: String,
    service: String,
    metric: serde_json::Value,
    #[serde(default)]
    target_group_arn: Option<String>,
    #[serde(default)]
    load_balancer_arn: Option<String>,
    load_per_task: f64,
    mode: ModeEntry,
    #[serde(default)]
    scheduling_buffer_seconds: Option<u32>,
    #[serde(default)]
    max_capacity_breach: Option<BreachEntry>,
    #[serde(default)]
    period_seconds: Option<u32>,
    min_capacity: u32,
    max_capacity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreachEntry {
    behavior: BreachBehavior,
    #[serde(default)]
    buffer_percent: Option<u32>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum BreachBehavior {
    HonorMaxCapacity,
    IncreaseMaxCapacity,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ModeEntry {
    ForecastOnly,
    ForecastAndScale,
}

/// One `predictive` policy, `policies[i]` with its `type` removed.
pub(super) fn predictive_policy(
    i: usize,
    raw: serde_json::Value,
) -> Result<PredictivePolicy, ConfigError> {
    let at = |field: &str| format!("policies[{i}].{field}");
    let entry: PredictiveEntry = parse_entry(&format!("policies[{i}]"), raw)?;
    let target = named_service(&at, &entry.cluster, &entry.service)?;
    if !(entry.load_per_task.is_finite() && entry.load_per_task > 0.0) {
        return Err(ConfigError::new(
            at("load_per_task"),
            format!(
                "{} must be a number above 0: the load one task carries at target",
                entry.load_per_task
            ),
        ));
    }
    let scheduling_buffer_seconds = entry
        .scheduling_buffer_seconds
        .unwrap_or(DEFAULT_SCHEDULING_BUFFER_SECONDS);
    if scheduling_buffer_seconds > MAX_SCHEDULING_BUFFER_SECONDS {
        return Err(ConfigError::new(
            at("scheduling_buffer_seconds"),
            format!("{scheduling_buffer_seconds} must be below 3600, as AWS's"),
        ));
    }
    let period_seconds = entry
        .period_seconds
        .unwrap_or(DEFAULT_FORECAST_PERIOD_SECONDS);
    if !FORECAST_PERIODS.contains(&period_seconds) {
        return Err(ConfigError::new(
            at("period_seconds"),
            format!("{period_seconds} must be 300 (5 minutes) or 3600 (an hour)"),
        ));
    }
    let max_capacity_breach = match entry.max_capacity_breach {
        None => MaxCapacityBreach::HonorMaxCapacity,
        Some(BreachEntry {
            behavior: BreachBehavior::HonorMaxCapacity,
            buffer_percent: Some(_),
        }) => {
            return Err(ConfigError::new(
                at("max_capacity_breach.buffer_percent"),
                "applies only to behavior increase_max_capacity",
            ))
        }
        Some(BreachEntry {
            behavior: BreachBehavior::HonorMaxCapacity,
            ..
        }) => MaxCapacityBreach::HonorMaxCapacity,
        Some(BreachEntry {
            behavior: BreachBehavior::IncreaseMaxCapacity,
            buffer_percent,
        }) => {
            let buffer_percent = buffer_percent.unwrap_or(0);
            if buffer_percent > 100 {
                return Err(ConfigError::new(
                    at("max_capacity_breach.buffer_percent"),
                    format!("{buffer_percent} must be between 0 and 100"),
                ));
            }
            MaxCapacityBreach::IncreaseMaxCapacity { buffer_percent }
        }
    };
    let bounds = check_capacity(&at, entry.min_capacity, entry.max_capacity)?;
    let metric = load_metric(
        &at,
        entry.metric,
        entry.target_group_arn,
        entry.load_balancer_arn,
    )?;
    let name = match entry.name {
        Some(name) if name.trim().is_empty() => {
            return Err(ConfigError::new(at("name"), "must not be empty"))
        }
        Some(name) => name,
        None => format!("forecast of {}", metric.label()),
    };
    Ok(PredictivePolicy {
        name,
        target,
        metric,
        load_per_task: entry.load_per_task,
        mode: match entry.mode {
            ModeEntry::ForecastOnly => PredictiveMode::ForecastOnly,
            ModeEntry::ForecastAndScale => PredictiveMode::ForecastAndScale,
        },
        scheduling_buffer_seconds,
        max_capacity_breach,
        period_seconds,
        bounds,
    })
}

/// The load metric: the service's whole load each period. `alb_request_count`
/// is the ALB's `RequestCount` for the service's target group (Sum); a custom
/// metric or metric math as target tracking takes them. Per-task averages
/// (`ecs_cpu`, `ecs_memory`, `alb_requests_per_target`) are not a load: their
/// value falls as tasks are added.
fn load_metric(
    at: &dyn Fn(&str) -> String,
    metric: serde_json::Value,
    target_group_arn: Option<String>,
    load_balancer_arn: Option<String>,
) -> Result<TrackedMetric, ConfigError> {
    if metric.as_str() == Some("alb_request_count") {
        let target_group = target_group_arn
            .as_deref()
            .and_then(target_group_dimension)
            .ok_or_else(|| {
                ConfigError::new(
                    at("target_group_arn"),
                    "alb_request_count needs the service's target group ARN",
                )
            })?;
        let load_balancer = load_balancer_arn
            .as_deref()
            .and_then(load_balancer_dimension)
            .ok_or_else(|| {
                ConfigError::new(
                    at("load_balancer_arn"),
                    "alb_request_count needs the Application Load Balancer's ARN (the metric's LoadBalancer dimension)",
                )
            })?;
        return Ok(TrackedMetric::Custom(MetricStat {
            namespace: "AWS/ApplicationELB".into(),
            metric_name: "RequestCount".into(),
            dimensions: vec![
                ("LoadBalancer".into(), load_balancer.into()),
                ("TargetGroup".into(), target_group.into()),
            ],
            period_seconds: DEFAULT_FORECAST_PERIOD_SECONDS,
            stat: "Sum".into(),
        }));
    }
    if load_balancer_arn.is_some() {
        return Err(ConfigError::new(
            at("load_balancer_arn"),
            "applies only to metric alb_request_count",
        ));
    }
    if target_group_arn.is_some() {
        return Err(ConfigError::new(
            at("target_group_arn"),
            "applies only to metric alb_request_count",
        ));
    }
    if let Some(name @ ("ecs_cpu" | "ecs_memory" | "alb_requests_per_target")) = metric.as_str() {
        return Err(ConfigError::new(
            at("metric"),
            format!(
                "{name} is a per-task average, not the service's load: use alb_request_count, \
                 a custom metric of the whole load, or metric math (e.g. CPU × running tasks)"
            ),
        ));
    }
    if metric.is_string() {
        return Err(ConfigError::new(
            at("metric"),
            format!(
                "{metric} is not a load metric: use alb_request_count, a custom metric \
                 {{namespace, metric_name, dimensions, statistic}} or metric math {{expression, metrics}}"
            ),
        ));
    }
    tracked_metric(at, metric, None)
}

/// The `LoadBalancer` dimension value of an ALB ARN: `app/name/id`.
fn load_balancer_dimension(arn: &str) -> Option<&str> {
    arn.splitn(6, ':')
        .nth(5)
        .and_then(|r| r.strip_prefix("loadbalancer/"))
        .filter(|r| r.starts_with("app/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(extra: serde_json::Value) -> Result<PredictivePolicy, ConfigError> {
        let mut raw = json!({
            "cluster": "demo", "service": "web",
            "metric": "alb_request_count",
            "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef",
            "load_balancer_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/front/fedcba9876543210",
            "load_per_task": 60000, "mode": "forecast_and_scale",
            "min_capacity": 2, "max_capacity": 20
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            if v.is_null() {
                raw.as_object_mut().map(|o| o.remove(k));
            } else {
                raw[k] = v.clone();
            }
        }
        predictive_policy(3, raw)
    }

    fn field(extra: serde_json::Value) -> String {
        parse(extra)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.field)
    }

    #[test]
    fn the_defaults_are_aws_s() {
        let p = parse(json!({})).unwrap();
        assert_eq!(p.scheduling_buffer_seconds, 300);
        assert_eq!(p.period_seconds, 3600);
        assert_eq!(p.max_capacity_breach, MaxCapacityBreach::HonorMaxCapacity);
        assert_eq!(p.mode, PredictiveMode::ForecastAndScale);
        let TrackedMetric::Custom(stat) = &p.metric else {
            panic!("{:?}", p.metric)
        };
        assert_eq!(stat.metric_name, "RequestCount");
        assert_eq!(
            stat.dimensions,
            vec![
                (
                    "LoadBalancer".to_string(),
                    "app/front/fedcba9876543210".to_string()
                ),
                (
                    "TargetGroup".to_string(),
                    "targetgroup/web/0123456789abcdef".to_string()
                )
            ]
        );
        let p = parse(json!({"max_capacity_breach": {"behavior": "increase_max_capacity", "buffer_percent": 10}})).unwrap();
        assert_eq!(
            p.max_capacity_breach,
            MaxCapacityBreach::IncreaseMaxCapacity { buffer_percent: 10 }
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let table = [
            (json!({"load_per_task": 0}), "policies[3].load_per_task"),
            (json!({"mode": "scale"}), "policies[3].mode"),
            (
                json!({"scheduling_buffer_seconds": 3600}),
                "policies[3].scheduling_buffer_seconds",
            ),
            (json!({"period_seconds": 60}), "policies[3].period_seconds"),
            (
                json!({"max_capacity_breach": {"behavior": "increase_max_capacity", "buffer_percent": 101}}),
                "policies[3].max_capacity_breach.buffer_percent",
            ),
            (
                json!({"max_capacity_breach": {"behavior": "honor_max_capacity", "buffer_percent": 5}}),
                "policies[3].max_capacity_breach.buffer_percent",
            ),
            (
                json!({"load_balancer_arn": null}),
                "policies[3].load_balancer_arn",
            ),
            (
                json!({"target_group_arn": "arn:aws:ecs:eu-west-1:1:service/x"}),
                "policies[3].target_group_arn",
            ),
            (
                json!({"metric": "ecs_cpu", "target_group_arn": null, "load_balancer_arn": null}),
                "policies[3].metric",
            ),
            (
                json!({"metric": "requests", "target_group_arn": null, "load_balancer_arn": null}),
                "policies[3].metric",
            ),
            (
                json!({"metric": {"namespace": "App", "metric_name": "Requests", "statistic": "Sum"}}),
                "policies[3].load_balancer_arn",
            ),
            (json!({"min_capacity": 30}), "policies[3].max_capacity"),
            (json!({"name": " "}), "policies[3].name"),
            (json!({"spare": 1}), "policies[3].spare"),
        ];
        for (extra, expected) in table {
            assert_eq!(field(extra.clone()), expected, "{extra}");
        }
        let twice = json!({"policies": [
            {"type": "predictive", "cluster": "demo", "service": "web", "metric": {"namespace": "App", "metric_name": "Requests", "statistic": "Sum"}, "load_per_task": 10, "mode": "forecast_only", "min_capacity": 1, "max_capacity": 5},
            {"type": "predictive", "cluster": "demo", "service": "web", "metric": {"namespace": "App", "metric_name": "Requests", "statistic": "Sum"}, "load_per_task": 20, "mode": "forecast_only", "min_capacity": 1, "max_capacity": 5}
        ]});
        let err = crate::config::ScalerConfig::parse(&twice.to_string()).unwrap_err();
        assert_eq!(err.field, "policies[1].name");
        let custom = parse(json!({"metric": {"namespace": "App", "metric_name": "Requests", "statistic": "Sum"}, "target_group_arn": null, "load_balancer_arn": null})).unwrap();
        assert_eq!(custom.name, "forecast of App/Requests Sum");
    }
}
