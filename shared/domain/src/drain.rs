//! Drain-first scale-in: the tasks a scale-in removes leave their target
//! groups first, and ECS stops exactly those tasks once their targets have
//! drained.
//!
//! ECS picks the tasks a lower desired count stops and signals them at once;
//! for target groups ECS does not manage, requests already routed to them
//! fail. Here the scaler picks them, deregisters them, waits for the drain,
//! protects the tasks that stay (ECS task scale-in protection), and only then
//! lowers the count. The steps are remembered in a service tag, so a drain
//! spans invocations and a crash at any step converges.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long the tasks that stay are protected when the count is lowered:
/// long enough for ECS to stop the others, short enough that a crash costs
/// nothing (protection then expires by itself).
pub const PROTECTION_MINUTES: u32 = 5;

/// The default bound on waiting for targets to drain: the ALB's default
/// deregistration delay (300 s) and a tick.
pub const DEFAULT_MAX_DRAIN_SECONDS: u32 = 360;

/// How long after the count is lowered the drain waits for ECS to stop the
/// chosen tasks before lifting protection anyway.
pub const STOP_WAIT_SECONDS: i64 = 300;

/// The longest a drain may be told to wait: ELBv2's longest deregistration delay.
pub const MAX_DRAIN_SECONDS_LIMIT: u32 = 3600;

/// A service's drain-first settings (the policy document's `services[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DrainSettings {
    /// `None`: on when the registrar manages target groups of the service.
    pub before_scale_in: Option<bool>,
    pub order: DrainOrder,
    pub max_drain_seconds: u32,
}

impl Default for DrainSettings {
    fn default() -> Self {
        Self {
            before_scale_in: None,
            order: DrainOrder::default(),
            max_drain_seconds: DEFAULT_MAX_DRAIN_SECONDS,
        }
    }
}

/// Which tasks of a zone leave first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainOrder {
    /// The most recently started first (ECS's own choice keeps the oldest too).
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A task that could be drained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainCandidate {
    pub task_arn: String,
    /// Its Availability Zone; tasks without one share the zone `""`.
    pub zone: Option<String>,
    /// When it started; a task not started yet counts as the newest.
    pub started_at: Option<DateTime<Utc>>,
}

/// The `remove` tasks to drain: one at a time from the zone with the most
/// tasks left (ties: the zone named first), so the tasks that stay are as
/// balanced across zones as they can be; within a zone, by `order`.
pub fn choose_tasks(
    candidates: &[DrainCandidate],
    remove: usize,
    order: DrainOrder,
) -> Vec<String> {
    let mut zones: BTreeMap<&str, Vec<&DrainCandidate>> = BTreeMap::new();
    for candidate in candidates {
        zones
            .entry(candidate.zone.as_deref().unwrap_or(""))
            .or_default()
            .push(candidate);
    }
    for tasks in zones.values_mut() {
        // Sorted so that the task to leave first is last (popped); the ARN
        // breaks ties, so the choice is the same on every retry.
        tasks.sort_by(|a, b| {
            let newest_last = (a.started_at.is_none(), a.started_at, &a.task_arn).cmp(&(
                b.started_at.is_none(),
                b.started_at,
                &b.task_arn,
            ));
            match order {
                DrainOrder::NewestFirst => newest_last,
                DrainOrder::OldestFirst => newest_last.reverse(),
            }
        });
    }
    let mut chosen = Vec::new();
    while chosen.len() < remove {
        let Some(fullest) = zones
            .iter()
            .filter(|(_, tasks)| !tasks.is_empty())
            // max_by_key keeps the last of equals; reversed names keep the first.
            .max_by(|(a_zone, a), (b_zone, b)| a.len().cmp(&b.len()).then(b_zone.cmp(a_zone)))
            .map(|(zone, _)| *zone)
        else {
            break;
        };
        if let Some(task) = zones.get_mut(fullest).and_then(Vec::pop) {
            chosen.push(task.task_arn.clone());
        }
    }
    chosen
}

/// Of the tasks that stay (each with the expiry of the protection it has,
/// if any), those to protect until `until`: a task already protected for
/// longer (an application protecting itself while it works) keeps its own.
pub fn to_protect(
    staying: &[(String, Option<DateTime<Utc>>)],
    until: DateTime<Utc>,
) -> Vec<String> {
    staying
        .iter()
        .filter(|(_, expiry)| expiry.is_none_or(|e| e < until))
        .map(|(arn, _)| arn.clone())
        .collect()
}

/// Of the tasks that stay, those whose protection is the drain's own (it
/// expires within a minute of what the drain set at `lowered_at`): the
/// protection the drain lifts. Another's protection, set for longer or
/// renewed since, is left alone.
pub fn to_release(
    staying: &[(String, Option<DateTime<Utc>>)],
    lowered_at: DateTime<Utc>,
) -> Vec<String> {
    let ours = lowered_at + TimeDelta::minutes(i64::from(PROTECTION_MINUTES));
    staying
        .iter()
        .filter(|(_, expiry)| expiry.is_some_and(|e| e <= ours + TimeDelta::minutes(1)))
        .map(|(arn, _)| arn.clone())
        .collect()
}

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainPhase {
    /// The chosen tasks' targets are leaving their groups.
    Draining,
    /// The count is lowered; ECS is stopping the chosen tasks.
    Lowered,
}

/// A drain under way (kept in a service tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainMemory {
    pub started: DateTime<Utc>,
    /// The count found when the drain began.
    pub from: u32,
    /// The count the drain is heading for.
    pub to: u32,
    pub phase: DrainPhase,
    /// When the count was lowered (the phase is [`DrainPhase::Lowered`]).
    pub lowered_at: Option<DateTime<Utc>>,
}

impl DrainMemory {
    pub fn new(started: DateTime<Utc>, from: u32, to: u32) -> Self {
        Self {
            started,
            from,
            to,
            phase: DrainPhase::Draining,
            lowered_at: None,
        }
    }

    /// As a tag value: `<started>/<from>/<to>/d` or `<started>/<from>/<to>/l<lowered>`
    /// (epoch seconds).
    pub fn encode(&self) -> String {
        let phase = match (self.phase, self.lowered_at) {
            (DrainPhase::Lowered, Some(at)) => format!("l{}", at.timestamp()),
            (DrainPhase::Lowered, None) => format!("l{}", self.started.timestamp()),
            (DrainPhase::Draining, _) => "d".to_string(),
        };
        format!(
            "{}/{}/{}/{phase}",
            self.started.timestamp(),
            self.from,
            self.to
        )
    }

    /// Reads [`DrainMemory::encode`]'s form; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('/');
        let started = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
        let from = parts.next()?.parse().ok()?;
        let to = parts.next()?.parse().ok()?;
        let phase = parts.next()?;
        if parts.next().is_some() || to >= from {
            return None;
        }
        let (phase, lowered_at) = match phase {
            "d" => (DrainPhase::Draining, None),
            lowered => (
                DrainPhase::Lowered,
                Some(DateTime::from_timestamp(
                    lowered.strip_prefix('l')?.parse().ok()?,
                    0,
                )?),
            ),
        };
        Some(Self {
            started,
            from,
            to,
            phase,
            lowered_at,
        })
    }

    /// The time a chosen task is held out of the registrar's reconcile:
    /// the drain's bound, the wait for ECS to stop it, and a minute, after
    /// which a task a crash left behind returns to its groups.
    pub fn hold_until(&self, max_drain_seconds: u32) -> DateTime<Utc> {
        self.started + TimeDelta::seconds(i64::from(max_drain_seconds) + STOP_WAIT_SECONDS + 60)
    }
}

/// What the scaler found of the service and the chosen tasks this tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DrainFacts {
    /// The service's desired count.
    pub desired_count: u32,
    /// Chosen tasks ECS still runs (desired status RUNNING).
    pub still_running: usize,
    /// Chosen targets still registered (not draining) in some group.
    pub still_registered: usize,
    /// Chosen targets still draining in some group.
    pub still_draining: usize,
    /// The service's other tasks meant to run: those that stay.
    pub staying: usize,
    /// Something the scaler would not scale in through now: a deployment, a
    /// drill, suspended scale-in, or tasks ECS could not describe.
    pub lowering_held: bool,
}

/// The next step of a drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum DrainStep {
    /// Some chosen targets are still registered (a crash came between
    /// marking the tasks and deregistering them): deregister them.
    Deregister,
    /// Targets are draining: wait for the next tick.
    WaitForDrain { draining: usize },
    /// Protect the tasks that stay, then lower the count to `to`.
    Lower { to: u32, why: LowerBecause },
    /// ECS is still stopping chosen tasks.
    WaitForStop { running: usize },
    /// The targets are ready, but the count may not come down now (see
    /// [`DrainFacts::lowering_held`]): wait for the next tick.
    LoweringHeld,
    /// Lift the protection and forget the drain.
    Finish,
    /// The count changed elsewhere while the targets drained (a deploy, a
    /// person): the drain is void; its targets return to their groups.
    Abandon { found: u32 },
}

/// Why a drain lowers the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LowerBecause {
    /// Every chosen target has left its groups.
    Drained,
    /// The drain's bound passed with targets still draining.
    BoundReached,
    /// No chosen task is left to drain (stopped by something else).
    NothingToDrain,
    /// The count was to be lowered already, and is not (an invocation
    /// stopped between recording the step and `UpdateService`).
    NotYetLowered,
}

/// The step a drain takes now.
pub fn next_step(
    memory: &DrainMemory,
    facts: DrainFacts,
    now: DateTime<Utc>,
    max_drain_seconds: u32,
) -> DrainStep {
    match memory.phase {
        DrainPhase::Draining => {
            // Another writer moved the count, or the drain outlived its holds
            // (the registrar has taken the tasks back): the drain is void.
            if facts.desired_count != memory.from || now >= memory.hold_until(max_drain_seconds) {
                return DrainStep::Abandon {
                    found: facts.desired_count,
                };
            }
            let why = if facts.still_running == 0 {
                LowerBecause::NothingToDrain
            } else if facts.still_registered > 0 {
                return DrainStep::Deregister;
            } else if facts.still_draining == 0 {
                LowerBecause::Drained
            } else if now - memory.started >= TimeDelta::seconds(i64::from(max_drain_seconds)) {
                LowerBecause::BoundReached
            } else {
                return DrainStep::WaitForDrain {
                    draining: facts.still_draining,
                };
            };
            // ECS stops only unprotected tasks: never lower below the tasks
            // that stay, or it would stop an undrained one once protection ends.
            let to = memory
                .to
                .max(u32::try_from(facts.staying).unwrap_or(u32::MAX));
            if to >= facts.desired_count {
                return DrainStep::Abandon {
                    found: facts.desired_count,
                };
            }
            if facts.lowering_held {
                return DrainStep::LoweringHeld;
            }
            DrainStep::Lower { to, why }
        }
        DrainPhase::Lowered => {
            if facts.desired_count == memory.from {
                return DrainStep::Lower {
                    to: memory.to,
                    why: LowerBecause::NotYetLowered,
                };
            }
            let lowered = memory.lowered_at.unwrap_or(memory.started);
            if facts.still_running > 0 && now - lowered < TimeDelta::seconds(STOP_WAIT_SECONDS) {
                DrainStep::WaitForStop {
                    running: facts.still_running,
                }
            } else {
                DrainStep::Finish
            }
        }
    }
}

impl std::fmt::Display for DrainStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainStep::Deregister => write!(f, "deregistering the chosen tasks' targets"),
            DrainStep::WaitForDrain { draining } => {
                write!(f, "waiting for {draining} target(s) to drain")
            }
            DrainStep::Lower { to, why } => {
                let why = match why {
                    LowerBecause::Drained => "every chosen target has drained",
                    LowerBecause::BoundReached => {
                        "the drain's bound passed with targets still draining"
                    }
                    LowerBecause::NothingToDrain => "no chosen task is left running",
                    LowerBecause::NotYetLowered => "the count was not lowered yet",
                };
                write!(
                    f,
                    "{why}: protecting the tasks that stay and lowering the count to {to}"
                )
            }
            DrainStep::WaitForStop { running } => {
                write!(f, "waiting for ECS to stop {running} chosen task(s)")
            }
            DrainStep::LoweringHeld => write!(
                f,
                "the count may not come down now (a deployment, a drill, suspended scale-in, or tasks ECS could not describe): waiting"
            ),
            DrainStep::Finish => write!(f, "the chosen tasks are stopped: lifting protection"),
            DrainStep::Abandon { found } => write!(
                f,
                "the drain is void at a count of {found} (the count changed elsewhere, the chosen \
                 tasks were replaced, or its holds ran out): the chosen targets return"
            ),
        }
    }
}
