//! A metric outage. A target-tracking policy that cannot read its metric
//! holds (it never scales in because data is missing). With a fallback, once
//! the metric has been missing for `after_minutes`, the policy either keeps
//! holding, saying so, or asks for at least `min_count` tasks, as KEDA's
//! fallback does, but only upward, and only while no other target-tracking
//! policy of the service can see: one that reads its metric steers alone.
//!
//! How long a policy has been blind is the longer of two clocks: since the
//! scaler first found it blind (remembered in the service's tags, so a
//! failing read counts too), and since its newest datapoint.

pub use super::evaluation::FallbackState;
use super::evaluation::{Hold, PolicyEvaluation};
pub use super::policy::{Fallback, FallbackAction};
use super::scaling::{alarm_mark_key, settle, BlindSince, Limits, ServiceState};
use super::target_tracking::{TargetTrackingPolicy, PUBLISHING_LAG_MINUTES};
use chrono::{DateTime, TimeDelta, Utc};

/// The longest a fallback may wait: a day.
pub const MAX_AFTER_MINUTES: u32 = 1440;
/// How many blind policies a service remembers (one tag of 256 characters).
pub const BLIND_KEPT: usize = 12;

/// The short key a policy's blind mark is kept under.
pub fn blind_key(policy: &str) -> String {
    alarm_mark_key(policy)
}

/// The marks after an evaluation that judged every tracking policy of the
/// service: a policy blind now keeps its first mark (or gets one now); a
/// policy that sees again, or is no longer configured, has none. Past
/// [`BLIND_KEPT`], the longest-blind are kept: they are nearest their fallback.
pub fn blind_marks(before: &BlindSince, judged: &[(&str, bool)], now: DateTime<Utc>) -> BlindSince {
    let mut marks: Vec<(String, i64)> = judged
        .iter()
        .filter(|(_, blind)| *blind)
        .map(|(policy, _)| {
            let key = blind_key(policy);
            let since = before.get(&key).copied().unwrap_or(now.timestamp());
            (key, since)
        })
        .collect();
    marks.sort_by_key(|(_, since)| *since);
    marks.truncate(BLIND_KEPT);
    marks.into_iter().collect()
}

/// How long a policy has been blind: the longer of its mark's age and how
/// far its newest datapoint is past the publishing lag (a policy whose read
/// failed has only its mark).
pub fn blind_for(
    since: Option<i64>,
    newest_point: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> TimeDelta {
    let by_mark = since
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map_or(TimeDelta::zero(), |s| now - s);
    // A healthy metric's newest datapoint is up to the publishing lag old.
    let by_data = newest_point.map_or(TimeDelta::zero(), |p| {
        now - p - TimeDelta::minutes(PUBLISHING_LAG_MINUTES)
    });
    by_mark.max(by_data).max(TimeDelta::zero())
}

/// A blind policy's evaluation with its fallback weighed in: `held` is what
/// the policy said without data (held for missing data); `others_see` says
/// whether another target-tracking policy of the service read its metric.
pub fn with_fallback(
    held: PolicyEvaluation,
    policy: &TargetTrackingPolicy,
    blind: TimeDelta,
    others_see: bool,
    limits: Limits,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> PolicyEvaluation {
    let Some(fallback) = &policy.fallback else {
        return held;
    };
    let blind_minutes = blind.num_minutes();
    let mut state = FallbackState {
        blind_minutes,
        after_minutes: fallback.after_minutes,
        applied: false,
        action: fallback.action,
        why: String::new(),
    };
    if blind_minutes < i64::from(fallback.after_minutes) {
        state.why = format!(
            "the metric has been missing for {blind_minutes} min; the fallback starts after {}",
            fallback.after_minutes
        );
        return PolicyEvaluation {
            fallback: Some(state),
            ..held
        };
    }
    if others_see {
        state.why = "another target-tracking policy of the service reads its metric: it steers, and this one only holds".into();
        return PolicyEvaluation {
            fallback: Some(state),
            ..held
        };
    }
    state.applied = true;
    let min_count = match fallback.action {
        FallbackAction::Hold => {
            state.why = format!(
                "fallback: the metric has been missing for {blind_minutes} min: the count is held"
            );
            let rule = state.why.clone();
            return PolicyEvaluation {
                fallback: Some(state),
                ..held
            }
            .held(Hold::Fallback, rule);
        }
        FallbackAction::MinCount { min_count } => min_count,
    };
    let mut evaluation = PolicyEvaluation::new(
        held.policy.clone(),
        held.breach.clone(),
        service.desired_count,
    );
    evaluation.tracking = held.tracking.clone();
    evaluation.scale_in_disabled = held.scale_in_disabled;
    // Only upward: a missing metric never removes a task.
    settle(
        &mut evaluation,
        |base| i64::from(base.max(min_count)),
        policy.cooldowns,
        false,
        limits,
        service,
        now,
    );
    state.why = match evaluation.target {
        Some(target) => format!(
            "fallback: the metric has been missing for {blind_minutes} min: at least {min_count} tasks, so {target}"
        ),
        None => format!(
            "fallback: the metric has been missing for {blind_minutes} min: at least {min_count} tasks, and the count {} already is",
            service.desired_count
        ),
    };
    evaluation.rule = state.why.clone();
    if evaluation.target.is_none() {
        // At the floor or above it, or kept from it by a bound: held, and
        // still vetoing a scale-in on missing data.
        if let Some(hold) = evaluation
            .held_by
            .filter(|h| !matches!(h, Hold::AlreadyAtTarget | Hold::ScaleInDisabled))
        {
            evaluation.rule.push_str(&format!(" ({hold})"));
        }
        evaluation.held_by = Some(Hold::Fallback);
    }
    evaluation.fallback = Some(state);
    evaluation
}
