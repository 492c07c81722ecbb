//! One policy's verdict and the words that explain it: what each trigger
//! (step alarms, target tracking, windows, suspension) hands to the choice
//! between policies.

use super::alarm::MetricPoint;
use super::breach::Breach;
use super::policy::{FallbackAction, StepAdjustment};
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
    /// A target-tracking policy with `disable_scale_in`.
    ScaleInDisabled,
    /// A target-tracking policy's metric lacks the datapoints to decide.
    MissingData,
    /// The service's hourly budget allows no more tasks.
    BudgetCeiling,
    /// An operator suspended this direction of scaling on the service.
    Suspended,
    /// A drill holds the service: scale-in waits until it ends.
    DrillInProgress,
    /// A target-tracking policy's metric has been missing past its
    /// fallback's `after_minutes`: held (or kept at its floor), never in.
    Fallback,
    /// The service's scale-in stabilisation window: scale-in has not been
    /// wanted for the whole window, or not below the highest count wanted.
    ScaleInStabilising,
    /// The service's scale-in rate allows no more removals this period.
    ScaleInRate,
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
            Hold::ScaleInDisabled => "the policy has disable_scale_in",
            Hold::MissingData => "the metric lacks the datapoints to decide: nothing changes",
            Hold::BudgetCeiling => "the service's max_hourly_cost allows no more tasks",
            Hold::Suspended => "suspended on this service by an operator (resume to undo)",
            Hold::DrillInProgress => "no scale-in while a drill holds the service",
            Hold::Fallback => "fallback: the metric has been missing too long; no scale-in",
            Hold::ScaleInStabilising => "scale-in waits out the service's stabilisation window",
            Hold::ScaleInRate => "the service's scale-in rate allows no more removals this period",
        })
    }
}

/// A bound that cut the proposed count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clamp {
    MaxCapacity,
    MinCapacity,
    /// The max the service's hourly budget allows, below its max_capacity.
    Budget,
}

/// What the record says of a blind policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackState {
    /// Whole minutes the metric has been missing.
    pub blind_minutes: i64,
    pub after_minutes: u32,
    /// Whether the fallback decides the policy's verdict now.
    pub applied: bool,
    #[serde(flatten)]
    pub action: FallbackAction,
    /// Why it does or does not apply, in words.
    pub why: String,
}

/// One policy's verdict, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyEvaluation {
    /// The alarm a step policy follows, or the name of another trigger's policy.
    pub policy: String,
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
    /// Why the breach was not read from the metric, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_note: Option<String>,
    /// The datapoints and arithmetic of a target-tracking policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingDetail>,
    /// A target-tracking policy with `disable_scale_in`: it takes no part in
    /// the scale-in vote (AWS: scale in "only if all of the target tracking
    /// policies (with the scale-in portion enabled) are ready to scale in").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scale_in_disabled: bool,
    /// A blind target-tracking policy's fallback, and whether it applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackState>,
}

impl PolicyEvaluation {
    /// An evaluation that has not yet chosen anything.
    pub fn new(policy: impl Into<String>, breach: Breach, desired: u32) -> Self {
        Self {
            policy: policy.into(),
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
            breach_note: None,
            tracking: None,
            scale_in_disabled: false,
            fallback: None,
        }
    }

    /// The same evaluation, held for `hold` with `rule` as the explanation.
    pub fn held(mut self, hold: Hold, rule: impl Into<String>) -> Self {
        self.held_by = Some(hold);
        self.rule = rule.into();
        self
    }
}

/// What a target-tracking evaluation read and computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackingDetail {
    pub metric: String,
    pub target_value: f64,
    /// The datapoints the verdict rests on, oldest first.
    pub datapoints: Vec<MetricPoint>,
    /// Why the datapoints decide nothing, when they do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_note: Option<String>,
    /// The computation, e.g. `ceil(4 × 84 / 60) = 6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arithmetic: Option<String>,
}
