//! The pace: a change larger than `max_tasks_added_per_minute` (or
//! `..._removed_...`) allows is taken in stages, one a minute; the stage still
//! to come is kept in the service's tags and resumed by the next tick.

use crate::decision::{PaceOutcome, ServiceDecision};
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::pace::limit;
use ecs_control::domain::scaling::{
    move_to, Limits, MemoryStatus, PolicyEvaluation, ScalingMemory, ServiceState,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The rest of a staged change, as an evaluation, while the count has not
    /// reached it and no one else changed the count meanwhile.
    pub(crate) fn staged_continuation(
        &self,
        state: &ServiceState,
        limits: Limits,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Option<PolicyEvaluation> {
        let staged = state.memory.pace.as_ref()?.staged?;
        if matches!(decision.memory, Some(MemoryStatus::ChangedElsewhere { .. })) {
            decision.notes.push(format!(
                "a staged change to {staged} is dropped: another writer changed the count"
            ));
            return None;
        }
        let evaluation = move_to(
            "pace",
            "a staged change",
            format!("continuing the staged change to {staged}"),
            staged,
            limits,
            state,
            now,
        );
        evaluation.direction.is_some().then_some(evaluation)
    }

    /// Limits the change to `wanted` to what the pace allows this minute, and
    /// puts what remains in `memory`.
    pub(crate) fn paced(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        wanted: u32,
        memory: &mut ScalingMemory,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> PaceOutcome {
        let pace = self.config.settings_for(service).pace;
        let paced = limit(
            pace,
            state.memory.pace.as_ref(),
            state.desired_count,
            wanted,
            now,
        );
        memory.pace = paced.memory.clone();
        let target = paced.target;
        if let Some(staged) = paced.staged {
            decision.reason.push_str(&format!(
                "; pace: {} now, {} still to come toward {staged}",
                target, paced.still_to_come
            ));
        }
        decision.pace = paced.memory.is_some().then_some(paced);
        if target == state.desired_count {
            decision
                .reason
                .push_str("; the pace allows no more tasks this minute");
            PaceOutcome::NothingThisMinute
        } else {
            PaceOutcome::Step(target)
        }
    }
}
