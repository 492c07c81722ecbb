//! The scaling decision: from a policy, the alarm's breach and the service as it
//! is now, the desired count to set (or why none is set).
//!
//! Follows Application Auto Scaling step scaling: steps chosen by breach size,
//! results clamped to bounds, computed from the desired count, separate
//! cooldowns where capacity added during a scale-out cooldown counts toward the
//! next step, and no scale-in during a deployment.

pub use super::breach::{Breach, BreachSource};
pub use super::evaluation::{Clamp, Direction, Hold, PolicyEvaluation};
use super::pace::PaceMemory;
use super::policy::{
    AdjustmentType, CapacityBounds, Cooldowns, ScalingPolicy, StepAdjustment, ThresholdSide,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the scaler remembers about a service between invocations (kept in tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScalingMemory {
    pub last_scaled_at: Option<DateTime<Utc>>,
    pub last_direction: Option<Direction>,
    /// The desired count the current scale-out cooldown started from.
    pub scale_out_base: Option<u32>,
    /// Key of the trigger that recorded the last change.
    pub last_trigger: Option<String>,
    /// The desired count the last change set.
    pub last_target: Option<u32>,
    /// `Some(false)` when the last change was recorded before `UpdateService`
    /// was sent; `Some(true)` or `None` in memory whose change was confirmed.
    pub applied: Option<bool>,
    /// The desired count the last change replaced. With it, no write after
    /// `UpdateService` is needed: a count still equal to it means the change
    /// never happened, a count equal to `last_target` means it did, and any
    /// other count means another writer changed it.
    pub replaced: Option<u32>,
    /// Per alarm (a short hash of its name): the newest state change, in epoch
    /// milliseconds, that a change of this service already answered.
    pub alarm_marks: BTreeMap<String, i64>,
    /// Short hashes of the latest manual commands applied, newest last.
    pub recent_commands: Vec<String>,
    /// Tasks added and removed this minute, and a change still being staged.
    pub pace: Option<PaceMemory>,
    /// What an operator suspended on the service.
    pub suspended: super::suspension::Suspended,
    /// Target-tracking policies found unable to read their metric, and since
    /// when (see [`crate::fallback`]).
    pub blind: BlindSince,
    /// Scale-in behaviour's run of wanting and rate period.
    pub scale_in: super::scale_in::ScaleInMemory,
    /// A drain-first scale-in under way (see [`crate::drain`]).
    pub drain: Option<super::drain::DrainMemory>,
}

/// When each blind policy was first found blind (epoch seconds), by
/// [`crate::fallback::blind_key`]: the memory a failing read leaves no
/// datapoints for.
pub type BlindSince = BTreeMap<String, i64>;

/// How many alarms' marks a service keeps (one tag of at most 256 characters).
pub const ALARM_MARKS_KEPT: usize = 10;
/// How many manual commands a service remembers (one tag of at most 256 characters).
pub const COMMANDS_KEPT: usize = 16;

/// ECS tag values hold at most 256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
pub const TAG_VALUE_LIMIT: usize = 256;

/// Longest trigger key kept readable; longer or untaggable keys keep a prefix and a hash.
const TRIGGER_KEY_LIMIT: usize = 200;

/// Whether ECS accepts `c` in a tag key or value.
pub fn tag_char_allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(raw: &str) -> u64 {
    raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The short hash an alarm's mark is kept under.
pub fn alarm_mark_key(alarm: &str) -> String {
    format!("{:08x}", fnv1a(alarm) >> 32)
}

/// The short hash a manual command's request id is remembered by.
pub fn command_mark(request_id: &str) -> String {
    format!("{:012x}", fnv1a(request_id) >> 16)
}

/// A dedup key that is a valid ECS tag value: a key that is short and made of
/// allowed characters is kept as it is; any other keeps a cleaned prefix and a
/// hash of the whole, so equal triggers still give equal keys.
pub fn trigger_key(raw: &str) -> String {
    if raw.chars().count() <= TRIGGER_KEY_LIMIT && raw.chars().all(tag_char_allowed) {
        return raw.to_string();
    }
    let prefix: String = raw
        .chars()
        .take(TRIGGER_KEY_LIMIT - 18)
        .map(|c| if tag_char_allowed(c) { c } else { '_' })
        .collect();
    format!("{prefix}/h{:016x}", fnv1a(raw))
}

/// What the memory says about the count found on the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MemoryStatus {
    /// The last recorded change is the count in effect (or nothing was recorded).
    InEffect,
    /// A change was recorded but `UpdateService` never confirmed it, and the
    /// count is not what it asked for.
    Unapplied {
        target: u32,
        trigger: Option<String>,
    },
    /// Someone else (a deploy, a person, Application Auto Scaling) changed the
    /// count since the scaler last set it.
    ChangedElsewhere { last_set: u32, found: u32 },
}

impl ScalingMemory {
    /// Compares the memory with the desired count found on the service.
    pub fn status(&self, desired: u32) -> MemoryStatus {
        match self.last_target {
            Some(target) if target != desired => {
                let never_sent = self.applied == Some(false)
                    && self.replaced.is_none_or(|replaced| replaced == desired);
                if never_sent {
                    MemoryStatus::Unapplied {
                        target,
                        trigger: self.last_trigger.clone(),
                    }
                } else {
                    MemoryStatus::ChangedElsewhere {
                        last_set: target,
                        found: desired,
                    }
                }
            }
            _ => MemoryStatus::InEffect,
        }
    }

    /// The memory to decide with, given what `status` found: an unapplied change
    /// never happened, so its cooldown does not count; after another writer, the
    /// cooldown's base is the count as found.
    pub fn effective(&self, status: &MemoryStatus) -> ScalingMemory {
        match status {
            MemoryStatus::InEffect => self.clone(),
            MemoryStatus::Unapplied { .. } => ScalingMemory {
                last_scaled_at: None,
                last_direction: None,
                scale_out_base: None,
                ..self.clone()
            },
            MemoryStatus::ChangedElsewhere { found, .. } => ScalingMemory {
                scale_out_base: self.scale_out_base.map(|_| *found),
                ..self.clone()
            },
        }
    }

    /// Whether a change of this service already answered the state change of
    /// `alarm` at `changed_at`.
    pub fn answered(&self, alarm: &str, changed_at: DateTime<Utc>) -> bool {
        self.alarm_marks
            .get(&alarm_mark_key(alarm))
            .is_some_and(|&mark| changed_at.timestamp_millis() <= mark)
    }

    /// Whether this manual command was already applied.
    pub fn applied_command(&self, request_id: &str) -> bool {
        self.recent_commands.contains(&command_mark(request_id))
    }

    /// Marks the state changes a new change answers: for each alarm, the newest
    /// of its mark and `changed_at`. Keeps the newest [`ALARM_MARKS_KEPT`].
    pub fn with_marks<'a>(
        mut self,
        answered: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    ) -> Self {
        for (alarm, at) in answered {
            let mark = self.alarm_marks.entry(alarm_mark_key(alarm)).or_insert(0);
            *mark = (*mark).max(at.timestamp_millis());
        }
        while self.alarm_marks.len() > ALARM_MARKS_KEPT {
            let oldest = self
                .alarm_marks
                .iter()
                .min_by_key(|(_, &at)| at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.alarm_marks.remove(&oldest);
            }
        }
        self
    }

    /// Remembers a manual command; keeps the newest [`COMMANDS_KEPT`].
    pub fn with_command(mut self, request_id: &str) -> Self {
        let mark = command_mark(request_id);
        self.recent_commands.retain(|c| c != &mark);
        self.recent_commands.push(mark);
        let excess = self.recent_commands.len().saturating_sub(COMMANDS_KEPT);
        self.recent_commands.drain(..excess);
        self
    }

    /// The same memory, with the change marked as applied (or not yet).
    pub fn with_applied(self, applied: bool) -> Self {
        ScalingMemory {
            applied: Some(applied),
            ..self
        }
    }
}

/// The service as read from ECS just before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub arn: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub deployment_in_progress: bool,
    /// The task definition the service runs, whose size the budget counts.
    pub task_definition: Option<String>,
    pub memory: ScalingMemory,
    /// The drill that holds the service's drill lock, if one does: no
    /// scale-in while a drill runs (or waits for its rollback), so the
    /// scaler never deepens a drill's harm or undoes its rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_in_progress: Option<String>,
}

/// One deployment (ECS controller) or task set (`CODE_DEPLOY`, `EXTERNAL`)
/// of a service, as far as scale-in cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutPart {
    /// The primary deployment's rollout is `IN_PROGRESS`, or the task set is `STABILIZING`.
    pub settling: bool,
}

/// Scale-in waits while a deployment runs: more than one deployment or task
/// set, or the one there still settling.
pub fn rollout_in_progress(deployments: &[RolloutPart], task_sets: &[RolloutPart]) -> bool {
    [deployments, task_sets]
        .iter()
        .any(|parts| parts.len() > 1 || parts.iter().any(|p| p.settling))
}

/// The bounds a decision keeps to now: the policy bounds narrowed by open
/// schedule windows and the budget ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub bounds: CapacityBounds,
    /// Whether `bounds.max` is the budget's ceiling rather than a configured max.
    pub max_is_budget: bool,
}

impl Limits {
    pub fn new(bounds: CapacityBounds) -> Self {
        Self {
            bounds,
            max_is_budget: false,
        }
    }

    /// Clamps a proposed count, saying which bound cut it.
    pub fn clamp(&self, proposed: i64) -> (u32, Option<Clamp>) {
        match clamp(&self.bounds, proposed) {
            (target, Some(Clamp::MaxCapacity)) if self.max_is_budget => {
                (target, Some(Clamp::Budget))
            }
            other => other,
        }
    }
}

fn cooldown_running(since: Option<DateTime<Utc>>, seconds: u32, now: DateTime<Utc>) -> bool {
    since.is_some_and(|t| now < t + TimeDelta::seconds(i64::from(seconds)))
}

/// `percent`% of `base`, as step scaling rounds it: a result beyond ±1 toward
/// zero (12.7 → 12, −6.67 → −6), one between 0 and ±1 to ±1; then raised to
/// `min_magnitude` when smaller.
pub fn percent_change(base: u32, percent: i64, min_magnitude: Option<u32>) -> i64 {
    // i128: no base and percentage can overflow it.
    let hundredths = i128::from(base) * i128::from(percent);
    let mut delta = hundredths / 100;
    if delta == 0 && hundredths != 0 {
        delta = hundredths.signum();
    }
    let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
    match min_magnitude {
        Some(min) if percent != 0 && delta.unsigned_abs() < u64::from(min) => {
            i64::from(min).saturating_mul(percent.signum())
        }
        _ => delta,
    }
}

/// The count an adjustment asks for, applied to `base`.
pub fn adjusted(
    adjustment_type: AdjustmentType,
    base: u32,
    adjustment: i64,
    min_magnitude: Option<u32>,
) -> i64 {
    match adjustment_type {
        AdjustmentType::ChangeInCapacity => i64::from(base).saturating_add(adjustment),
        AdjustmentType::PercentChangeInCapacity => {
            i64::from(base).saturating_add(percent_change(base, adjustment, min_magnitude))
        }
        AdjustmentType::ExactCapacity => adjustment,
    }
}

/// Clamps a proposed count to the bounds, saying which bound cut it.
pub fn clamp(bounds: &CapacityBounds, proposed: i64) -> (u32, Option<Clamp>) {
    let target = bounds.clamp(proposed);
    let clamped_by = match i64::from(target).cmp(&proposed) {
        std::cmp::Ordering::Less => Some(Clamp::MaxCapacity),
        std::cmp::Ordering::Greater => Some(Clamp::MinCapacity),
        std::cmp::Ordering::Equal => None,
    };
    (target, clamped_by)
}

fn choose_step<'a>(
    policy: &'a ScalingPolicy,
    breach: &Breach,
    alarm_looks_below: bool,
) -> Result<(&'a StepAdjustment, String), String> {
    match breach.size() {
        Some(size) => {
            let side = ThresholdSide::of(size, alarm_looks_below);
            policy
                .steps
                .iter()
                .find(|s| s.contains(size, side))
                .map(|s| {
                    (
                        s,
                        format!("breach {size} is within step {}", s.describe(side)),
                    )
                })
                .ok_or_else(|| format!("breach {size} is within no step"))
        }
        None => {
            let why = match breach {
                Breach::Unknown { why } => why.as_str(),
                Breach::Measured { .. } => "",
            };
            policy
                .steps
                .iter()
                .min_by(|a, b| {
                    a.distance_from_threshold()
                        .total_cmp(&b.distance_from_threshold())
                })
                .map(|s| {
                    (
                        s,
                        format!("breach unknown ({why}); used the step nearest the threshold {s}"),
                    )
                })
                .ok_or_else(|| "the policy has no steps".to_string())
        }
    }
}

/// Evaluate one step policy whose alarm is in ALARM against the service as it
/// is now. `alarm_looks_below` (a `<`/`<=` alarm) places a breach of exactly 0
/// below the threshold, where step bounds are read `lower < breach <= upper`.
pub fn evaluate(
    policy: &ScalingPolicy,
    breach: Breach,
    alarm_looks_below: bool,
    limits: Limits,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> PolicyEvaluation {
    let evaluation = PolicyEvaluation::new(&policy.alarm, breach, service.desired_count);
    let (step, rule) = match choose_step(policy, &evaluation.breach, alarm_looks_below) {
        Ok(chosen) => chosen,
        Err(rule) => return evaluation.held(Hold::NoMatchingStep, rule),
    };
    let mut evaluation = PolicyEvaluation {
        step: Some(step.clone()),
        rule,
        ..evaluation
    };
    let apply = |base: u32| {
        adjusted(
            policy.adjustment_type,
            base,
            step.scaling_adjustment,
            policy.min_adjustment_magnitude,
        )
    };
    settle(
        &mut evaluation,
        apply,
        policy.cooldowns,
        true,
        limits,
        service,
        now,
    );
    evaluation
}

/// An evaluation that moves to a fixed count for a reason other than a metric
/// (a window opening, the rest of a staged change): no cooldown holds it; a
/// scale-in still waits for a deployment, and the limits still apply.
pub fn move_to(
    policy: impl Into<String>,
    why: &str,
    rule: String,
    count: u32,
    limits: Limits,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> PolicyEvaluation {
    let mut evaluation = PolicyEvaluation::new(
        policy,
        Breach::Unknown { why: why.into() },
        service.desired_count,
    );
    evaluation.rule = rule;
    let no_cooldown = Cooldowns {
        scale_out_seconds: 0,
        scale_in_seconds: 0,
    };
    settle(
        &mut evaluation,
        |_| i64::from(count),
        no_cooldown,
        true,
        limits,
        service,
        now,
    );
    evaluation
}

/// The rules every policy's proposal goes through, whatever computed it: the
/// direction `apply(desired)` gives; during a scale-out cooldown the count is
/// computed from the cooldown's base, so capacity already added counts; no
/// scale-in during a deployment, its cooldown, or when the policy disables it;
/// then the limits.
pub fn settle(
    evaluation: &mut PolicyEvaluation,
    apply: impl Fn(u32) -> i64,
    cooldowns: Cooldowns,
    scale_in_allowed: bool,
    limits: Limits,
    service: &ServiceState,
    now: DateTime<Utc>,
) {
    let desired = service.desired_count;
    let direction = match apply(desired).cmp(&i64::from(desired)) {
        std::cmp::Ordering::Greater => Direction::Out,
        std::cmp::Ordering::Less => Direction::In,
        std::cmp::Ordering::Equal => {
            evaluation.proposed = Some(i64::from(desired));
            evaluation.held_by = Some(Hold::AlreadyAtTarget);
            return;
        }
    };
    evaluation.direction = Some(direction);
    let memory = &service.memory;

    let base = match direction {
        Direction::Out => {
            let in_cooldown = memory.last_direction == Some(Direction::Out)
                && cooldown_running(memory.last_scaled_at, cooldowns.scale_out_seconds, now);
            evaluation.within_scale_out_cooldown = in_cooldown;
            if in_cooldown {
                memory.scale_out_base.unwrap_or(desired)
            } else {
                desired
            }
        }
        Direction::In => {
            let hold = if !scale_in_allowed {
                Some(Hold::ScaleInDisabled)
            } else if service.deployment_in_progress {
                Some(Hold::DeploymentInProgress)
            } else if service.drill_in_progress.is_some() {
                Some(Hold::DrillInProgress)
            } else if cooldown_running(memory.last_scaled_at, cooldowns.scale_in_seconds, now) {
                Some(Hold::ScaleInCooldown)
            } else {
                None
            };
            if hold.is_some() {
                evaluation.held_by = hold;
                return;
            }
            desired
        }
    };
    evaluation.computed_from = base;
    let proposed = apply(base);
    evaluation.proposed = Some(proposed);
    let (target, clamped_by) = limits.clamp(proposed);
    evaluation.clamped_by = clamped_by;

    let moves = match direction {
        Direction::Out => target > desired,
        Direction::In => target < desired,
    };
    if moves {
        evaluation.target = Some(target);
    } else {
        evaluation.held_by = Some(match (direction, evaluation.clamped_by) {
            (Direction::Out, Some(Clamp::Budget)) => Hold::BudgetCeiling,
            (Direction::Out, Some(Clamp::MaxCapacity)) => Hold::AtMaxCapacity,
            (Direction::Out, _) if evaluation.within_scale_out_cooldown => Hold::ScaleOutCooldown,
            (Direction::In, Some(Clamp::MinCapacity)) => Hold::AtMinCapacity,
            _ => Hold::AlreadyAtTarget,
        });
    }
}

/// Which of several evaluations for one service to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "choice", rename_all = "snake_case")]
pub enum Choice {
    /// Act on the evaluation at this index.
    Apply { index: usize },
    /// Nothing to do: every policy holds.
    Nothing,
    /// A policy wants to scale in, but another wants out, wants the current
    /// count, or cannot see its metric.
    ScaleInVetoed { by_policy: String },
}

/// Scale out if any policy says so (to the highest target); scale in only if no
/// policy wants out or wants the count as it is, and then by the least (to the
/// highest target). A policy whose scale-in is disabled has no say in a scale-in.
pub fn choose(evaluations: &[PolicyEvaluation]) -> Choice {
    let best = |direction: Direction| {
        evaluations
            .iter()
            .enumerate()
            .filter(|(_, e)| e.direction == Some(direction))
            .filter_map(|(i, e)| e.target.map(|t| (i, t)))
            .max_by_key(|&(i, t)| (t, std::cmp::Reverse(i)))
            .map(|(index, _)| index)
    };
    if let Some(index) = best(Direction::Out) {
        return Choice::Apply { index };
    }
    if let Some(index) = best(Direction::In) {
        // A policy that wants out, wants exactly the current count, whose
        // alarm is in ALARM with a breach no step covers, or that cannot see
        // its metric, disagrees.
        if let Some(out) = evaluations
            .iter()
            .filter(|e| !e.scale_in_disabled)
            .find(|e| {
                e.direction == Some(Direction::Out)
                    || matches!(
                        e.held_by,
                        Some(
                            Hold::AlreadyAtTarget
                                | Hold::NoMatchingStep
                                | Hold::MissingData
                                | Hold::Fallback
                        )
                    )
            })
        {
            return Choice::ScaleInVetoed {
                by_policy: out.policy.clone(),
            };
        }
        return Choice::Apply { index };
    }
    Choice::Nothing
}

/// What to do with one service: the policies' choice, and the count to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub choice: Choice,
    /// The desired count to set, if any.
    pub target: Option<u32>,
    /// Set when the count found was outside the bounds and is brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<u32>,
    /// Why a count above the bounds is not brought down yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction_held_by: Option<Hold>,
}

impl Decision {
    /// The evaluation the choice applies, if it applies one.
    pub fn chosen<'a>(&self, evaluations: &'a [PolicyEvaluation]) -> Option<&'a PolicyEvaluation> {
        match self.choice {
            Choice::Apply { index } => evaluations.get(index),
            _ => None,
        }
    }
}

/// Combines the policies' evaluations; a desired count outside the bounds is
/// brought back within them whatever the policies chose (as Application Auto
/// Scaling does whenever a policy runs), except that a count above them waits
/// for a running deployment, as any scale-in does.
pub fn decide(
    evaluations: &[PolicyEvaluation],
    service: &ServiceState,
    bounds: CapacityBounds,
) -> Decision {
    let desired = service.desired_count;
    let choice = choose(evaluations);
    let chosen = match &choice {
        Choice::Apply { index } => evaluations.get(*index).and_then(|e| e.target),
        _ => None,
    };
    let correction = bounds.correction(desired);
    let correction_held_by = correction
        .filter(|&c| c < desired && chosen.is_none())
        .and_then(|_| {
            if service.deployment_in_progress {
                Some(Hold::DeploymentInProgress)
            } else if service.drill_in_progress.is_some() {
                Some(Hold::DrillInProgress)
            } else {
                None
            }
        });
    Decision {
        target: chosen.or(correction.filter(|_| correction_held_by.is_none())),
        out_of_bounds: correction.map(|_| desired),
        correction_held_by,
        choice,
    }
}

impl ScalingMemory {
    /// The memory to record when `evaluation`'s target is applied for `trigger`.
    pub fn after(
        &self,
        evaluation: &PolicyEvaluation,
        desired_before: u32,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> ScalingMemory {
        let target = evaluation.target.unwrap_or(desired_before);
        let (last_scaled_at, scale_out_base) = match evaluation.direction {
            // A top-up inside a running cooldown neither restarts it nor moves its base.
            Some(Direction::Out) if evaluation.within_scale_out_cooldown => (
                self.last_scaled_at,
                Some(self.scale_out_base.unwrap_or(desired_before)),
            ),
            Some(Direction::Out) => (Some(now), Some(desired_before)),
            _ => (Some(now), None),
        };
        ScalingMemory {
            last_scaled_at,
            last_direction: evaluation.direction,
            scale_out_base,
            last_trigger: Some(trigger.to_string()),
            last_target: Some(target),
            applied: Some(false),
            replaced: Some(desired_before),
            alarm_marks: self.alarm_marks.clone(),
            recent_commands: self.recent_commands.clone(),
            pace: self.pace.clone(),
            suspended: self.suspended,
            blind: self.blind.clone(),
            scale_in: self.scale_in.clone(),
            drain: self.drain.clone(),
        }
    }

    /// The memory after a change from `from` to `to` that no policy's step
    /// made (a manual command, or a return within bounds): a fresh cooldown in
    /// the direction of the change.
    pub fn after_manual(&self, from: u32, to: u32, trigger: &str, now: DateTime<Utc>) -> Self {
        let direction = if to > from {
            Direction::Out
        } else {
            Direction::In
        };
        ScalingMemory {
            last_scaled_at: Some(now),
            last_direction: Some(direction),
            scale_out_base: (direction == Direction::Out).then_some(from),
            last_trigger: Some(trigger.to_string()),
            last_target: Some(to),
            applied: Some(false),
            replaced: Some(from),
            alarm_marks: self.alarm_marks.clone(),
            recent_commands: self.recent_commands.clone(),
            pace: self.pace.clone(),
            suspended: self.suspended,
            blind: self.blind.clone(),
            scale_in: self.scale_in.clone(),
            drain: self.drain.clone(),
        }
    }
}
