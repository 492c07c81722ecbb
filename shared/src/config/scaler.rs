//! The scaler's policy document.

use super::{read_document, ConfigError};
use crate::domain::policy::{
    AdjustmentType, CapacityBounds, Cooldowns, MetricAggregation, ScalingPolicy, StepAdjustment,
    MAGNITUDE_LIMIT,
};
use crate::domain::predictive::PredictivePolicy;
use crate::domain::schedule::ScheduleWindow;
use crate::domain::service::ServiceRef;
use crate::domain::target_tracking::TargetTrackingPolicy;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

mod predictive;
mod triggers;
pub use triggers::ServiceSettings;

/// Environment variable holding the policy document as JSON.
pub const POLICIES_ENV: &str = "SCALER_POLICIES";
/// Environment variable naming a file that holds the policy document.
pub const POLICIES_FILE_ENV: &str = "SCALER_POLICIES_FILE";

/// The scaler's configuration.
#[derive(Debug, Clone)]
pub struct ScalerConfig {
    /// Step policies, each driven by an alarm.
    pub policies: Vec<ScalingPolicy>,
    /// Target-tracking policies, evaluated on the scheduled tick.
    pub tracking: Vec<TargetTrackingPolicy>,
    /// Predictive policies, their forecasts refreshed on the scheduled tick.
    pub predictive: Vec<PredictivePolicy>,
    /// Time windows that narrow a service's bounds, with the service each is for.
    pub schedules: Vec<(ServiceRef, ScheduleWindow)>,
    /// Per-service budget ceilings and paces.
    pub settings: BTreeMap<ServiceRef, ServiceSettings>,
    bounds: BTreeMap<ServiceRef, CapacityBounds>,
    /// The index of the first policy that names each service, for error fields.
    first_policy: BTreeMap<ServiceRef, usize>,
}

const DEFAULT_COOLDOWN_SECONDS: u32 = 300;

pub(super) fn default_cooldown() -> u32 {
    DEFAULT_COOLDOWN_SECONDS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDocument {
    /// Step and target-tracking policies, told apart by `type`.
    policies: Vec<serde_json::Value>,
    #[serde(default)]
    schedules: Vec<serde_json::Value>,
    #[serde(default)]
    services: Vec<serde_json::Value>,
}

/// Deserialises one entry of a list, naming fields from `prefix` (`policies[2]`).
pub(crate) fn parse_entry<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        ConfigError::new(field, e.into_inner().to_string())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    alarm: String,
    cluster: String,
    service: String,
    adjustment_type: AdjustmentType,
    steps: Vec<StepAdjustment>,
    #[serde(default)]
    min_adjustment_magnitude: Option<u32>,
    #[serde(default)]
    metric_aggregation_type: MetricAggregation,
    min_capacity: u32,
    max_capacity: u32,
    #[serde(default = "default_cooldown")]
    scale_out_cooldown_seconds: u32,
    #[serde(default = "default_cooldown")]
    scale_in_cooldown_seconds: u32,
}

impl ScalerConfig {
    /// Reads the policy document from `SCALER_POLICIES` or `SCALER_POLICIES_FILE`.
    ///
    /// # Errors
    /// When neither (or both) is set, the file cannot be read, or the document is invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::parse(&read_document(
            POLICIES_ENV,
            POLICIES_FILE_ENV,
            "policy document",
        )?)?;
        if let Ok(prefix) = std::env::var(super::verify::ALARM_NAME_PREFIX_ENV) {
            super::verify::alarms_match_prefix(&config, &prefix)?;
        }
        Ok(config)
    }

    /// Parses and validates a policy document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field, e.g. `policies[1].steps[0].scaling_adjustment`.
    pub fn parse(document: &str) -> Result<Self, ConfigError> {
        let parsed: PolicyDocument = super::parse_json(document, "policy document")?;
        let mut policies = Vec::new();
        let mut tracking = Vec::new();
        let mut predictive = Vec::new();
        let mut seen = HashSet::new();
        let mut bounds_by_service: BTreeMap<ServiceRef, (usize, CapacityBounds)> = BTreeMap::new();
        for (i, mut raw) in parsed.policies.into_iter().enumerate() {
            let at = |field: &str| format!("policies[{i}].{field}");
            let kind = match raw.as_object_mut().map(|o| o.remove("type")) {
                None => {
                    return Err(ConfigError::new(
                        format!("policies[{i}]"),
                        "must be an object",
                    ))
                }
                Some(None) => "step".to_string(),
                Some(Some(serde_json::Value::String(kind))) => kind,
                Some(Some(other)) => {
                    return Err(ConfigError::new(
                        at("type"),
                        format!(
                            "{other} is not a policy type: use \"step\", \"target_tracking\" or \"predictive\""
                        ),
                    ))
                }
            };
            let (target, bounds) = match kind.as_str() {
                "step" => {
                    let policy = validate_policy(i, parse_entry(&format!("policies[{i}]"), raw)?)?;
                    if !seen.insert((policy.alarm.clone(), policy.target.clone())) {
                        return Err(ConfigError::new(
                            at("alarm"),
                            format!(
                                "a policy for alarm {} on {} is already defined",
                                policy.alarm, policy.target
                            ),
                        ));
                    }
                    let found = (policy.target.clone(), policy.bounds);
                    policies.push(policy);
                    found
                }
                "target_tracking" => {
                    let policy = triggers::tracking_policy(i, raw)?;
                    let found = (policy.target.clone(), policy.bounds);
                    tracking.push(policy);
                    found
                }
                "predictive" => {
                    let policy = predictive::predictive_policy(i, raw)?;
                    // A forecast is kept by service and name.
                    if predictive.iter().any(|p: &PredictivePolicy| {
                        p.target == policy.target && p.name == policy.name
                    }) {
                        return Err(ConfigError::new(
                            at("name"),
                            format!(
                                "a predictive policy named {:?} on {} is already defined",
                                policy.name, policy.target
                            ),
                        ));
                    }
                    let found = (policy.target.clone(), policy.bounds);
                    predictive.push(policy);
                    found
                }
                other => {
                    return Err(ConfigError::new(
                        at("type"),
                        format!(
                            "{other:?} is not a policy type: use \"step\", \"target_tracking\" or \"predictive\""
                        ),
                    ))
                }
            };
            // Bounds belong to the service, as a scalable target's do: policies must agree.
            match bounds_by_service.get(&target) {
                Some((first, known)) if *known != bounds => {
                    return Err(ConfigError::new(
                        at("min_capacity"),
                        format!(
                            "bounds [{}, {}] differ from policies[{first}]'s [{}, {}] for the same service {target}",
                            bounds.min, bounds.max, known.min, known.max
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    bounds_by_service.insert(target, (i, bounds));
                }
            }
        }
        let first_policy = bounds_by_service
            .iter()
            .map(|(service, (i, _))| (service.clone(), *i))
            .collect();
        let bounds: BTreeMap<ServiceRef, CapacityBounds> = bounds_by_service
            .into_iter()
            .map(|(service, (_, bounds))| (service, bounds))
            .collect();
        let schedules = triggers::schedules(parsed.schedules, &bounds)?;
        let settings = triggers::service_settings(parsed.services, &bounds)?;
        Ok(Self {
            policies,
            tracking,
            predictive,
            schedules,
            settings,
            bounds,
            first_policy,
        })
    }

    /// Every service a policy resizes, with the index of the first policy naming it.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceRef, usize)> + '_ {
        self.first_policy.iter().map(|(s, i)| (s, *i))
    }

    /// The policies an alarm drives.
    pub fn policies_for_alarm<'a>(
        &'a self,
        alarm: &'a str,
    ) -> impl Iterator<Item = &'a ScalingPolicy> + 'a {
        self.policies.iter().filter(move |p| p.alarm == alarm)
    }

    /// The policies that resize a service.
    pub fn policies_for_service<'a>(
        &'a self,
        service: &'a ServiceRef,
    ) -> impl Iterator<Item = &'a ScalingPolicy> + 'a {
        self.policies.iter().filter(move |p| &p.target == service)
    }

    /// The bounds configured for a service, if any policy resizes it.
    pub fn bounds_for_service(&self, service: &ServiceRef) -> Option<CapacityBounds> {
        self.bounds.get(service).copied()
    }

    /// The target-tracking policies of a service.
    pub fn tracking_for_service<'a>(
        &'a self,
        service: &'a ServiceRef,
    ) -> impl Iterator<Item = &'a TargetTrackingPolicy> + 'a {
        self.tracking.iter().filter(move |p| &p.target == service)
    }

    /// The predictive policies of a service.
    pub fn predictive_for_service<'a>(
        &'a self,
        service: &'a ServiceRef,
    ) -> impl Iterator<Item = &'a PredictivePolicy> + 'a {
        self.predictive.iter().filter(move |p| &p.target == service)
    }

    /// The time windows of a service.
    pub fn schedules_for_service<'a>(&'a self, service: &'a ServiceRef) -> Vec<&'a ScheduleWindow> {
        self.schedules
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, w)| w)
            .collect()
    }

    /// The budget and pace of a service (none when not configured).
    /// Every `services[]` entry that sets `drain_before_scale_in: true` must
    /// name a service the registrar binds to target groups.
    ///
    /// # Errors
    /// Names the first entry that does not.
    pub fn check_drain_bindings(
        &self,
        bound: impl Fn(&ServiceRef) -> bool,
    ) -> Result<(), ConfigError> {
        let mut entries: Vec<(&ServiceRef, &ServiceSettings)> = self.settings.iter().collect();
        entries.sort_by_key(|(_, settings)| settings.entry);
        for (service, settings) in entries {
            if settings.drain.before_scale_in == Some(true) && !bound(service) {
                return Err(ConfigError::new(
                    format!("services[{}].drain_before_scale_in", settings.entry),
                    format!(
                        "{service} has no target groups in the registrar document: there is \
                         nothing to drain (bind it there, or leave the field out)"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn settings_for(&self, service: &ServiceRef) -> ServiceSettings {
        self.settings.get(service).cloned().unwrap_or_default()
    }

    /// The services the scheduled tick decides for whatever the alarms say:
    /// those with target tracking, predictive policies, time windows, a budget
    /// or a pace.
    pub fn tick_services(&self) -> Vec<ServiceRef> {
        let mut services: Vec<ServiceRef> = self
            .tracking
            .iter()
            .map(|p| p.target.clone())
            .chain(self.predictive.iter().map(|p| p.target.clone()))
            .chain(self.schedules.iter().map(|(s, _)| s.clone()))
            .chain(self.settings.keys().cloned())
            .collect();
        services.sort();
        services.dedup();
        services
    }

    /// Every alarm name the policies mention, once each, sorted.
    pub fn alarm_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.policies.iter().map(|p| p.alarm.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

fn validate_policy(i: usize, entry: PolicyEntry) -> Result<ScalingPolicy, ConfigError> {
    let at = |field: &str| format!("policies[{i}].{field}");
    for (field, value) in [
        ("alarm", &entry.alarm),
        ("cluster", &entry.cluster),
        ("service", &entry.service),
    ] {
        if value.trim().is_empty() {
            return Err(ConfigError::new(at(field), "must not be empty"));
        }
    }
    for (field, value) in [
        ("min_capacity", entry.min_capacity),
        ("max_capacity", entry.max_capacity),
        (
            "min_adjustment_magnitude",
            entry.min_adjustment_magnitude.unwrap_or(0),
        ),
    ] {
        if i64::from(value) > MAGNITUDE_LIMIT {
            return Err(ConfigError::new(
                at(field),
                format!("{value} is above the limit of {MAGNITUDE_LIMIT}"),
            ));
        }
    }
    if entry.min_capacity > entry.max_capacity {
        return Err(ConfigError::new(
            at("max_capacity"),
            format!(
                "{} is below min_capacity {}",
                entry.max_capacity, entry.min_capacity
            ),
        ));
    }
    match (entry.adjustment_type, entry.min_adjustment_magnitude) {
        (AdjustmentType::PercentChangeInCapacity, Some(0)) => {
            return Err(ConfigError::new(
                at("min_adjustment_magnitude"),
                "must be at least 1",
            ))
        }
        (AdjustmentType::PercentChangeInCapacity, _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ConfigError::new(
                at("min_adjustment_magnitude"),
                "applies only to adjustment_type PercentChangeInCapacity",
            ))
        }
    }
    let steps = validate_steps(&at("steps"), entry.adjustment_type, entry.steps)?;
    Ok(ScalingPolicy {
        alarm: entry.alarm,
        target: ServiceRef::new(entry.cluster, entry.service),
        adjustment_type: entry.adjustment_type,
        steps,
        min_adjustment_magnitude: entry.min_adjustment_magnitude,
        metric_aggregation: entry.metric_aggregation_type,
        bounds: CapacityBounds {
            min: entry.min_capacity,
            max: entry.max_capacity,
        },
        cooldowns: Cooldowns {
            scale_out_seconds: entry.scale_out_cooldown_seconds,
            scale_in_seconds: entry.scale_in_cooldown_seconds,
        },
    })
}

/// Steps must be sorted, contiguous and non-overlapping, as Application Auto Scaling requires.
fn validate_steps(
    field: &str,
    adjustment_type: AdjustmentType,
    mut steps: Vec<StepAdjustment>,
) -> Result<Vec<StepAdjustment>, ConfigError> {
    if steps.is_empty() {
        return Err(ConfigError::new(field, "at least one step is required"));
    }
    for (j, step) in steps.iter().enumerate() {
        let at = |name: &str| format!("{field}[{j}].{name}");
        for (name, bound) in [
            (
                "metric_interval_lower_bound",
                step.metric_interval_lower_bound,
            ),
            (
                "metric_interval_upper_bound",
                step.metric_interval_upper_bound,
            ),
        ] {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err(ConfigError::new(at(name), "must be a finite number"));
            }
        }
        if let (Some(lo), Some(hi)) = (
            step.metric_interval_lower_bound,
            step.metric_interval_upper_bound,
        ) {
            if lo >= hi {
                return Err(ConfigError::new(
                    at("metric_interval_upper_bound"),
                    format!("{hi} must be above the lower bound {lo}"),
                ));
            }
        }
        if step.scaling_adjustment.unsigned_abs() > MAGNITUDE_LIMIT.unsigned_abs() {
            return Err(ConfigError::new(
                at("scaling_adjustment"),
                format!(
                    "{} is beyond the limit of ±{MAGNITUDE_LIMIT}",
                    step.scaling_adjustment
                ),
            ));
        }
        if adjustment_type == AdjustmentType::ExactCapacity && step.scaling_adjustment < 0 {
            return Err(ConfigError::new(
                at("scaling_adjustment"),
                "an ExactCapacity adjustment cannot be negative",
            ));
        }
    }
    steps.sort_by(|a, b| {
        let key = |s: &StepAdjustment| s.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
        key(a).total_cmp(&key(b))
    });
    for (j, pair) in steps.windows(2).enumerate() {
        let (lower, upper) = (&pair[0], &pair[1]);
        if lower.metric_interval_upper_bound != upper.metric_interval_lower_bound {
            let show = |b: Option<f64>| b.map_or("unbounded".to_string(), |v| v.to_string());
            return Err(ConfigError::new(
                format!("{field}[{}]", j + 1),
                format!(
                    "steps must be contiguous without overlap: one ends at {}, the next starts at {}",
                    show(lower.metric_interval_upper_bound),
                    show(upper.metric_interval_lower_bound)
                ),
            ));
        }
    }
    Ok(steps)
}
