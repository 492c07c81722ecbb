//! The drill document: named, bounded experiments, validated at cold start so
//! a bad drill is an error before anything is touched.

use super::probe::{parse_check, CheckSource};
use super::scaler::parse_entry;
use super::{parse_json, read_document, ConfigError};
use super::{ScalerConfig, POLICIES_ENV, POLICIES_FILE_ENV};
use crate::domain::drill::{
    valid_drill_name, Drill, DrillKind, HealthyFloor, Hypothesis, RollbackPolicy, ScaleTo,
    Selection, StopCount,
};
use crate::domain::policy::CapacityBounds;
use crate::domain::service::ServiceRef;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// Environment variable holding the drill document as JSON.
pub const DRILLS_ENV: &str = "DRILLS";
/// Environment variable naming a file that holds it.
pub const DRILLS_FILE_ENV: &str = "DRILLS_FILE";

/// Where the documents layer puts the scaler's policies, read for the floors
/// when no scaler variable is set.
pub const SCALER_POLICIES_IN_LAYER: &str = "/opt/ecs-control/scaler-policies.json";

/// The longest a drill may run, across invocations: six hours.
pub const MAX_DRILL_SECONDS: u32 = 6 * 60 * 60;

/// The drills an operator may run.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillConfig {
    pub drills: Vec<Drill>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    drills: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillEntry {
    name: String,
    cluster: String,
    service: String,
    kind: KindEntry,
    #[serde(default)]
    steady_state: SteadyEntry,
    #[serde(default)]
    abort_alarms: Vec<String>,
    #[serde(default = "default_max_duration")]
    max_duration_seconds: u32,
    #[serde(default = "default_poll")]
    poll_seconds: u32,
    #[serde(default = "default_rollback")]
    rollback: RollbackEntry,
    #[serde(default = "default_selection")]
    selection: SelectionEntry,
}

fn default_selection() -> SelectionEntry {
    SelectionEntry::Random
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum SelectionEntry {
    Random,
    First,
}

fn default_max_duration() -> u32 {
    600
}

fn default_poll() -> u32 {
    10
}

fn default_rollback() -> RollbackEntry {
    RollbackEntry::Always
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RollbackEntry {
    Always,
    OnFailure,
    Never,
}

/// How a `stop_tasks` drill stops its tasks.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StopManner {
    #[default]
    Abrupt,
    Graceful,
}

/// A graceful stop's default wait for its targets to drain.
const DEFAULT_GRACEFUL_DRAIN_SECONDS: u32 = 120;
/// The longest: the drill waits within one invocation (15 minutes at most).
const MAX_GRACEFUL_DRAIN_SECONDS: u32 = 600;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum KindEntry {
    Scale {
        #[serde(default)]
        desired_count: Option<u32>,
        #[serde(default)]
        adjustment: Option<i64>,
        hold_seconds: u32,
    },
    StopTasks {
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        percent: Option<u32>,
        /// `abrupt` (default: a crash rehearsed) or `graceful` (drained first).
        #[serde(default)]
        stop: StopManner,
        /// How long a graceful stop waits for the targets to drain.
        #[serde(default)]
        max_drain_seconds: Option<u32>,
    },
    DrainTarget {
        target_group_arn: String,
        port: u16,
        hold_seconds: u32,
    },
    Alarm {
        alarm: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SteadyEntry {
    #[serde(default = "default_true")]
    running_equals_desired: bool,
    #[serde(default)]
    target_groups: Vec<FloorEntry>,
    #[serde(default)]
    probe_checks: Vec<serde_json::Value>,
}

fn default_true() -> bool {
    true
}

// By hand, not derived: a drill with no `steady_state` at all still checks
// running against desired, as a derived `false` would not.
impl Default for SteadyEntry {
    fn default() -> Self {
        Self {
            running_equals_desired: true,
            target_groups: Vec::new(),
            probe_checks: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorEntry {
    target_group_arn: String,
    min_healthy: u32,
}

impl DrillConfig {
    /// Reads the document from `DRILLS` or `DRILLS_FILE`.
    ///
    /// # Errors
    /// When neither (or both) is set, the file cannot be read, the document is
    /// invalid, or it names an alarm or target group outside the prefixes set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::parse(&read_document(
            DRILLS_ENV,
            DRILLS_FILE_ENV,
            "drill document",
        )?)?;
        // What the drill's IAM policy covers (the template sets all three).
        if let Ok(prefix) = std::env::var(super::verify::DRILL_ALARM_NAME_PREFIX_ENV) {
            super::verify::drill_alarms_match_prefix(&config, &prefix)?;
        }
        if let Ok(prefix) = std::env::var(super::verify::DRILL_TARGET_GROUP_NAME_PREFIX_ENV) {
            super::verify::drill_groups_match_prefix(&config, &prefix)?;
        }
        if let Ok(prefix) = std::env::var(super::verify::DRILL_SERVICE_NAME_PREFIX_ENV) {
            super::verify::drill_services_match_prefix(&config, &prefix)?;
        }
        Ok(config)
    }

    /// Parses and validates a drill document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field, e.g. `drills[1].kind.hold_seconds`.
    pub fn parse(document: &str) -> Result<Self, ConfigError> {
        let parsed: Document = parse_json(document, "drill document")?;
        let mut names = BTreeSet::new();
        let mut drills = Vec::with_capacity(parsed.drills.len());
        for (i, raw) in parsed.drills.into_iter().enumerate() {
            let drill = drill(i, parse_entry(&format!("drills[{i}]"), raw)?)?;
            if !names.insert(drill.name.clone()) {
                return Err(ConfigError::new(
                    format!("drills[{i}].name"),
                    format!("a drill named {} is already defined", drill.name),
                ));
            }
            drills.push(drill);
        }
        Ok(Self { drills })
    }

    /// The scaler's capacity bounds for each drilled service it names: a
    /// drill's floor and ceiling. Read from `SCALER_POLICIES` or
    /// `SCALER_POLICIES_FILE` when set, else from the documents layer when the
    /// file is there; none when there is no scaler document.
    ///
    /// # Errors
    /// A scaler document that cannot be read or does not parse, naming the variable.
    pub fn scaler_bounds(&self) -> Result<BTreeMap<ServiceRef, CapacityBounds>, ConfigError> {
        let inline = std::env::var(POLICIES_ENV).ok();
        let file = std::env::var(POLICIES_FILE_ENV).ok();
        let (source, document) = match (inline, file) {
            (Some(json), _) => (POLICIES_ENV, json),
            (None, Some(path)) => (
                POLICIES_FILE_ENV,
                std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(POLICIES_FILE_ENV, format!("cannot read {path}: {e}"))
                })?,
            ),
            (None, None) => match std::fs::read_to_string(SCALER_POLICIES_IN_LAYER) {
                Ok(text) => (POLICIES_FILE_ENV, text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
                Err(e) => {
                    return Err(ConfigError::new(
                        POLICIES_FILE_ENV,
                        format!("cannot read {SCALER_POLICIES_IN_LAYER}: {e}"),
                    ))
                }
            },
        };
        let scaler = ScalerConfig::parse(&document).map_err(|e| {
            ConfigError::new(
                source,
                format!(
                    "the scaler document the drill's floors come from: {}: {}",
                    e.field, e.problem
                ),
            )
        })?;
        Ok(self
            .drills
            .iter()
            .filter_map(|d| Some((d.service.clone(), scaler.bounds_for_service(&d.service)?)))
            .collect())
    }

    /// The drill with this name.
    pub fn drill(&self, name: &str) -> Option<&Drill> {
        self.drills.iter().find(|d| d.name == name)
    }
}

fn drill(i: usize, entry: DrillEntry) -> Result<Drill, ConfigError> {
    let at = |field: &str| format!("drills[{i}].{field}");
    if !valid_drill_name(&entry.name) {
        return Err(ConfigError::new(
            at("name"),
            "1 to 64 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    for (field, value) in [("cluster", &entry.cluster), ("service", &entry.service)] {
        if value.trim().is_empty() {
            return Err(ConfigError::new(at(field), "must not be empty"));
        }
    }
    if entry.max_duration_seconds == 0 || entry.max_duration_seconds > MAX_DRILL_SECONDS {
        return Err(ConfigError::new(
            at("max_duration_seconds"),
            format!("must be between 1 and {MAX_DRILL_SECONDS}"),
        ));
    }
    if entry.poll_seconds == 0 || entry.poll_seconds > entry.max_duration_seconds {
        return Err(ConfigError::new(
            at("poll_seconds"),
            "must be at least 1 and at most max_duration_seconds",
        ));
    }
    let hold_fits = |hold: u32| {
        if hold > entry.max_duration_seconds {
            Err(ConfigError::new(
                at("kind.hold_seconds"),
                format!(
                    "{hold} is longer than max_duration_seconds {}",
                    entry.max_duration_seconds
                ),
            ))
        } else {
            Ok(hold)
        }
    };
    let kind = match entry.kind {
        KindEntry::Scale {
            desired_count,
            adjustment,
            hold_seconds,
        } => {
            let to = match (desired_count, adjustment) {
                // A drill never scales a service to nothing.
                (Some(n), None) if n > 0 => ScaleTo::Count(n),
                (None, Some(step)) if step != 0 && step.abs() <= 1_000 => ScaleTo::Step(step),
                _ => {
                    return Err(ConfigError::new(
                        at("kind.desired_count"),
                        "give either desired_count (at least 1) or a non-zero adjustment of at most ±1000",
                    ))
                }
            };
            DrillKind::Scale {
                to,
                hold_seconds: hold_fits(hold_seconds)?,
            }
        }
        KindEntry::StopTasks {
            count,
            percent,
            stop,
            max_drain_seconds,
        } => DrillKind::StopTasks {
            graceful: match (stop, max_drain_seconds) {
                (StopManner::Abrupt, None) => None,
                (StopManner::Abrupt, Some(_)) => {
                    return Err(ConfigError::new(
                        at("kind.max_drain_seconds"),
                        "applies only to \"stop\": \"graceful\"",
                    ))
                }
                (StopManner::Graceful, None) => Some(DEFAULT_GRACEFUL_DRAIN_SECONDS),
                (StopManner::Graceful, Some(s))
                    if (1..=MAX_GRACEFUL_DRAIN_SECONDS).contains(&s) =>
                {
                    Some(s)
                }
                (StopManner::Graceful, Some(s)) => {
                    return Err(ConfigError::new(
                        at("kind.max_drain_seconds"),
                        format!(
                            "{s} must be from 1 to {MAX_GRACEFUL_DRAIN_SECONDS}: the drill waits \
                             within one invocation"
                        ),
                    ))
                }
            },
            count: match (count, percent) {
                (Some(n), None) if n > 0 => StopCount::Tasks(n),
                // 100% would stop every task: no drill may take a service down.
                (None, Some(p)) if (1..=99).contains(&p) => StopCount::Percent(p),
                _ => {
                    return Err(ConfigError::new(
                        at("kind.count"),
                        "give either count (at least 1) or percent (1 to 99)",
                    ))
                }
            },
        },
        KindEntry::DrainTarget {
            target_group_arn,
            port,
            hold_seconds,
        } => {
            if !target_group_arn.contains(":targetgroup/") {
                return Err(ConfigError::new(
                    at("kind.target_group_arn"),
                    format!("{target_group_arn:?} is not a target group ARN"),
                ));
            }
            DrillKind::DrainTarget {
                target_group_arn,
                port,
                hold_seconds: hold_fits(hold_seconds)?,
            }
        }
        KindEntry::Alarm { alarm } => {
            if alarm.trim().is_empty() {
                return Err(ConfigError::new(at("kind.alarm"), "must not be empty"));
            }
            // The sweep resets the alarm from the service's state tag.
            let tag_safe = |c: char| c.is_alphanumeric() || " _.:=+-@".contains(c);
            if alarm.len() > 96 || !alarm.chars().all(tag_safe) {
                return Err(ConfigError::new(
                    at("kind.alarm"),
                    "at most 96 letters, digits, spaces and _.:=+-@ (it is kept in a service tag \
                     so the sweep can reset it)",
                ));
            }
            DrillKind::Alarm { alarm }
        }
    };
    let mut probe_checks = Vec::with_capacity(entry.steady_state.probe_checks.len());
    for (j, raw) in entry.steady_state.probe_checks.into_iter().enumerate() {
        probe_checks.push(parse_check(
            raw,
            &at(&format!("steady_state.probe_checks[{j}]")),
            CheckSource::Configuration,
        )?);
    }
    let target_groups = entry
        .steady_state
        .target_groups
        .into_iter()
        .map(|f| HealthyFloor {
            target_group_arn: f.target_group_arn,
            min_healthy: f.min_healthy,
        })
        .collect();
    if entry.abort_alarms.iter().any(|a| a.trim().is_empty()) {
        return Err(ConfigError::new(
            at("abort_alarms"),
            "alarm names must not be empty",
        ));
    }
    Ok(Drill {
        name: entry.name,
        service: ServiceRef::new(entry.cluster, entry.service),
        kind,
        steady_state: Hypothesis {
            running_equals_desired: entry.steady_state.running_equals_desired,
            target_groups,
            probe_checks,
        },
        abort_alarms: entry.abort_alarms,
        max_duration_seconds: entry.max_duration_seconds,
        poll_seconds: entry.poll_seconds,
        rollback: match entry.rollback {
            RollbackEntry::Always => RollbackPolicy::Always,
            RollbackEntry::OnFailure => RollbackPolicy::OnFailure,
            RollbackEntry::Never => RollbackPolicy::Never,
        },
        selection: match entry.selection {
            SelectionEntry::Random => Selection::Random,
            SelectionEntry::First => Selection::First,
        },
    })
}
