//! The scaling decision: from a policy, the alarm's breach and the service as it
//! is now, the desired count to set (or why none is set).
//!
//! Follows Application Auto Scaling step scaling: steps chosen by breach size,
//! results clamped to bounds, computed from the desired count, separate
//! cooldowns where capacity added during a scale-out cooldown counts toward the
//! next step, and no scale-in during a deployment.

use super::policy::{AdjustmentType, CapacityBounds, ScalingPolicy, StepAdjustment};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "out" => Some(Direction::Out),
            "in" => Some(Direction::In),
            _ => None,
        }
    }
}

/// What the scaler remembers about a service between invocations (kept in tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScalingMemory {
    pub last_scaled_at: Option<DateTime<Utc>>,
    pub last_direction: Option<Direction>,
    /// The desired count the current scale-out cooldown started from.
    pub scale_out_base: Option<u32>,
    /// Dedup key of the last trigger acted on.
    pub last_trigger: Option<String>,
    /// The desired count that trigger asked for.
    pub last_target: Option<u32>,
}

/// Longest trigger key kept verbatim; ECS tag values hold at most 256 characters.
const TRIGGER_KEY_LIMIT: usize = 200;

/// A dedup key that fits in a tag: long keys keep a prefix and a hash of the whole,
/// so equal triggers still give equal keys.
pub fn trigger_key(raw: &str) -> String {
    if raw.len() <= TRIGGER_KEY_LIMIT {
        return raw.to_string();
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = TRIGGER_KEY_LIMIT - 17;
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{hash:016x}", &raw[..cut])
}

/// The service as read from ECS just before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub arn: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub deployment_in_progress: bool,
    pub memory: ScalingMemory,
}

/// How far the alarm's metric is past its threshold, if the alarm said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Breach {
    Measured { metric_value: f64, threshold: f64 },
    Unknown { why: String },
}

impl Breach {
    pub fn size(&self) -> Option<f64> {
        match self {
            Breach::Measured {
                metric_value,
                threshold,
            } => Some(metric_value - threshold),
            Breach::Unknown { .. } => None,
        }
    }
}

/// Why a policy's evaluation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    NoMatchingStep,
    AtMaxCapacity,
    AtMinCapacity,
    ScaleOutCooldown,
    ScaleInCooldown,
    DeploymentInProgress,
    AlreadyAtTarget,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hold::NoMatchingStep => "the breach matches no step",
            Hold::AtMaxCapacity => "the service is at max_capacity",
            Hold::AtMinCapacity => "the service is at min_capacity",
            Hold::ScaleOutCooldown => {
                "scale-out cooldown: capacity added since it began already covers this step"
            }
            Hold::ScaleInCooldown => "scale-in waits out the cooldown of the last scaling",
            Hold::DeploymentInProgress => "no scale-in while a deployment is in progress",
            Hold::AlreadyAtTarget => "the desired count already equals the target",
        })
    }
}

/// A bound that cut the proposed count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clamp {
    MaxCapacity,
    MinCapacity,
}

/// One policy's verdict, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyEvaluation {
    pub alarm: String,
    pub breach: Breach,
    pub step: Option<StepAdjustment>,
    /// Which step applied and why, in words.
    pub rule: String,
    pub direction: Option<Direction>,
    /// The count the adjustment was applied to (the cooldown base during a scale-out cooldown).
    pub computed_from: u32,
    pub proposed: Option<i64>,
    pub clamped_by: Option<Clamp>,
    /// The desired count to set, when this policy wants a change.
    pub target: Option<u32>,
    pub held_by: Option<Hold>,
    /// Whether this change happens inside a running scale-out cooldown.
    pub within_scale_out_cooldown: bool,
}

fn cooldown_running(since: Option<DateTime<Utc>>, seconds: u32, now: DateTime<Utc>) -> bool {
    since.is_some_and(|t| now < t + TimeDelta::seconds(i64::from(seconds)))
}

/// `percent`% of `base`, rounded toward zero, raised to `min_magnitude` when smaller.
pub fn percent_change(base: u32, percent: i64, min_magnitude: Option<u32>) -> i64 {
    // i128 so that no configured percentage can overflow.
    let delta = (i128::from(base) * i128::from(percent) / 100) as i64;
    match min_magnitude {
        Some(min) if percent != 0 && delta.abs() < i64::from(min) => {
            i64::from(min) * percent.signum()
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
) -> Result<(&'a StepAdjustment, String), String> {
    match breach.size() {
        Some(size) => policy
            .steps
            .iter()
            .find(|s| s.contains(size))
            .map(|s| (s, format!("breach {size} is within step {s}")))
            .ok_or_else(|| format!("breach {size} is within no step")),
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

/// Evaluate one policy whose alarm is in ALARM against the service as it is now.
pub fn evaluate(
    policy: &ScalingPolicy,
    breach: Breach,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> PolicyEvaluation {
    let desired = service.desired_count;
    let mut evaluation = PolicyEvaluation {
        alarm: policy.alarm.clone(),
        breach,
        step: None,
        rule: String::new(),
        direction: None,
        computed_from: desired,
        proposed: None,
        clamped_by: None,
        target: None,
        held_by: None,
        within_scale_out_cooldown: false,
    };
    let (step, rule) = match choose_step(policy, &evaluation.breach) {
        Ok(chosen) => chosen,
        Err(rule) => {
            evaluation.rule = rule;
            evaluation.held_by = Some(Hold::NoMatchingStep);
            return evaluation;
        }
    };
    evaluation.step = Some(step.clone());
    evaluation.rule = rule;

    let apply = |base: u32| {
        adjusted(
            policy.adjustment_type,
            base,
            step.scaling_adjustment,
            policy.min_adjustment_magnitude,
        )
    };
    let direction = match apply(desired).cmp(&i64::from(desired)) {
        std::cmp::Ordering::Greater => Direction::Out,
        std::cmp::Ordering::Less => Direction::In,
        std::cmp::Ordering::Equal => {
            evaluation.proposed = Some(i64::from(desired));
            evaluation.held_by = Some(Hold::AlreadyAtTarget);
            return evaluation;
        }
    };
    evaluation.direction = Some(direction);
    let memory = &service.memory;

    let base = match direction {
        Direction::Out => {
            let in_cooldown = memory.last_direction == Some(Direction::Out)
                && cooldown_running(
                    memory.last_scaled_at,
                    policy.cooldowns.scale_out_seconds,
                    now,
                );
            evaluation.within_scale_out_cooldown = in_cooldown;
            if in_cooldown {
                memory.scale_out_base.unwrap_or(desired)
            } else {
                desired
            }
        }
        Direction::In => {
            if service.deployment_in_progress {
                evaluation.held_by = Some(Hold::DeploymentInProgress);
                return evaluation;
            }
            if cooldown_running(
                memory.last_scaled_at,
                policy.cooldowns.scale_in_seconds,
                now,
            ) {
                evaluation.held_by = Some(Hold::ScaleInCooldown);
                return evaluation;
            }
            desired
        }
    };
    evaluation.computed_from = base;
    let proposed = apply(base);
    evaluation.proposed = Some(proposed);
    let (target, clamped_by) = clamp(&policy.bounds, proposed);
    evaluation.clamped_by = clamped_by;

    let moves = match direction {
        Direction::Out => target > desired,
        Direction::In => target < desired,
    };
    if moves {
        evaluation.target = Some(target);
    } else {
        evaluation.held_by = Some(match (direction, evaluation.clamped_by) {
            (Direction::Out, Some(Clamp::MaxCapacity)) => Hold::AtMaxCapacity,
            (Direction::Out, _) if evaluation.within_scale_out_cooldown => Hold::ScaleOutCooldown,
            (Direction::In, Some(Clamp::MinCapacity)) => Hold::AtMinCapacity,
            _ => Hold::AlreadyAtTarget,
        });
    }
    evaluation
}

/// Which of several evaluations for one service to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "choice", rename_all = "snake_case")]
pub enum Choice {
    /// Act on the evaluation at this index.
    Apply { index: usize },
    /// Nothing to do: every policy holds.
    Nothing,
    /// A policy wants to scale in, but another wants out or wants the current count.
    ScaleInVetoed { by_alarm: String },
}

/// Scale out if any policy says so (to the highest target); scale in only if no
/// policy wants out or wants the count as it is, and then by the least (to the
/// highest target).
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
        // A policy that wants out, or wants exactly the current count, disagrees.
        if let Some(out) = evaluations.iter().find(|e| {
            e.direction == Some(Direction::Out) || e.held_by == Some(Hold::AlreadyAtTarget)
        }) {
            return Choice::ScaleInVetoed {
                by_alarm: out.alarm.clone(),
            };
        }
        return Choice::Apply { index };
    }
    Choice::Nothing
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
        }
    }

    /// The memory after an operator set the count by hand: a fresh cooldown in
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
        }
    }
}
