//! Time windows: the bounds the open windows give now, the one-time move to a
//! window's `desired_count` when it opens, and the bounds timeline a
//! `preview_bounds` command shows.

use crate::decision::{DecisionRecord, ServiceDecision};
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::scaling::{move_to, Hold, Limits, PolicyEvaluation, ServiceState};
use ecs_control::domain::schedule::{bounds_at, preview};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};

/// The longest preview: a month of hours.
pub const MAX_PREVIEW_HOURS: u32 = 31 * 24;

/// A window's opening is remembered under this prefix, like an alarm's state change.
fn opening_key(window: &str) -> String {
    format!("window:{window}")
}

/// The marks for the openings of the open windows that have a
/// `desired_count`: whoever changes the count inside such a window (a
/// policy, a manual command) answers its opening, so the opening never
/// undoes that change later. Only those windows need their opening remembered.
pub(crate) fn opening_marks(decision: &ServiceDecision) -> Vec<(String, DateTime<Utc>)> {
    decision
        .windows
        .iter()
        .filter(|w| w.desired_count.is_some())
        .map(|w| (opening_key(&w.name), w.opened_at))
        .collect()
}

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The policy bounds narrowed by the windows open at `now`.
    pub(crate) fn scheduled_bounds(
        &self,
        service: &ServiceRef,
        bounds: CapacityBounds,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> CapacityBounds {
        let windows = self.config.schedules_for_service(service);
        let scheduled = bounds_at(&windows, bounds, now);
        decision.windows = scheduled.open;
        scheduled.bounds
    }

    /// For each open window with a `desired_count` whose opening no change of
    /// the service has answered yet: an evaluation that moves there. Returns
    /// them with the openings every change made now answers.
    pub(crate) fn window_openings(
        &self,
        state: &ServiceState,
        limits: Limits,
        decision: &ServiceDecision,
        now: DateTime<Utc>,
    ) -> (Vec<PolicyEvaluation>, Vec<(String, DateTime<Utc>)>) {
        let mut evaluations = Vec::new();
        let marks = opening_marks(decision);
        for window in &decision.windows {
            let Some(desired) = window.desired_count else {
                continue;
            };
            let key = opening_key(&window.name);
            if state.memory.answered(&key, window.opened_at) {
                continue;
            }
            let evaluation = move_to(
                &key,
                "a time window",
                format!(
                    "window {} opened at {}: move to its desired_count {desired}",
                    window.name, window.opened_at
                ),
                desired,
                limits,
                state,
                now,
            );
            // A count already there needs no move, and must not veto others' scale-in.
            if evaluation.held_by != Some(Hold::AlreadyAtTarget) {
                evaluations.push(evaluation);
            }
        }
        (evaluations, marks)
    }

    /// The `preview_bounds` command: the bounds timeline for the coming hours.
    pub(crate) fn preview_bounds(
        &self,
        service: &ServiceRef,
        hours: u32,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let bounds = self.bounds(service)?;
        if hours == 0 || hours > MAX_PREVIEW_HOURS {
            return Err(InvocationError::RejectedCommand(format!(
                "hours must be between 1 and {MAX_PREVIEW_HOURS}; got {hours}"
            )));
        }
        let windows = self.config.schedules_for_service(service);
        record.preview = Some(preview(&windows, bounds, now, hours));
        if windows.is_empty() {
            record.ignored = Some(format!(
                "{service} has no time windows: its bounds are [{}, {}] throughout",
                bounds.min, bounds.max
            ));
        }
        Ok(())
    }
}
