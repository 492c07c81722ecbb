//! An operator's commands: set a count, apply one step, or preview the bounds
//! the time windows give. A change keeps to the limits in force and the pace.

use crate::decision::PaceOutcome;
use crate::decision::{Action, DecisionRecord, ServiceDecision};
use crate::events::{ManualChange, ManualCommand};
use crate::handler::Scaler;
use crate::triggers::schedules::opening_marks;
use chrono::{DateTime, Utc};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::policy::MAGNITUDE_LIMIT;
use ecs_control::domain::scaling::{adjusted, Clamp, MemoryStatus, ScalingMemory, TAG_VALUE_LIMIT};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::suspension::Suspended;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{AlarmStates, PortError, ScalerEcs, TargetGroups};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    pub(crate) async fn on_manual(
        &self,
        command: &ManualCommand,
        request_id: &str,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let service = command.service_ref();
        match &command.change {
            ManualChange::PreviewBounds { hours } => {
                return self.preview_bounds(&service, *hours, record, now)
            }
            ManualChange::PreviewForecast { hours } => {
                return self.preview_forecast(&service, *hours, record, now).await
            }
            _ => {}
        }
        let bounds = self.bounds(&service)?;
        if request_id.trim().is_empty()
            || request_id.len() > TAG_VALUE_LIMIT
            || request_id.chars().any(char::is_control)
        {
            return Err(InvocationError::RejectedCommand(format!(
                "request_id must be 1 to {TAG_VALUE_LIMIT} printable characters \
                 (it makes a retried command a no-op); got {} characters",
                request_id.chars().count()
            )));
        }
        if let ManualChange::ApplyStep { adjustment, .. } = &command.change {
            if adjustment.unsigned_abs() > MAGNITUDE_LIMIT.unsigned_abs() {
                return Err(InvocationError::RejectedCommand(format!(
                    "adjustment {adjustment} is beyond the limit of ±{MAGNITUDE_LIMIT}"
                )));
            }
        }
        let mut decision = ServiceDecision::new(service.clone());
        let outcome = match &command.change {
            ManualChange::Suspend { parts } | ManualChange::Resume { parts } => {
                let resume = matches!(command.change, ManualChange::Resume { .. });
                self.change_suspension(
                    &service,
                    *parts,
                    resume,
                    request_id,
                    bounds,
                    record,
                    &mut decision,
                )
                .await
            }
            _ => {
                self.manual_change(command, request_id, bounds, record, &mut decision, now)
                    .await
            }
        };
        let outcome = decision.with_drain_failure(outcome);
        if let Err(e) = &outcome {
            decision.action = Action::Failed;
            decision.error = Some(e.to_string());
        }
        record.services.push(decision);
        outcome.map_err(InvocationError::Aws)
    }

    /// Suspends or resumes the parts named (all three when none is): one tag
    /// write, no count changed.
    #[allow(clippy::too_many_arguments)]
    async fn change_suspension(
        &self,
        service: &ServiceRef,
        parts: Suspended,
        resume: bool,
        request_id: &str,
        bounds: CapacityBounds,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
    ) -> Result<(), PortError> {
        if self
            .read_service(service, bounds, record, decision, None)
            .await?
            .is_none()
        {
            return Ok(());
        }
        // The memory as read: only the suspension (and the command) change.
        let Some((arn, read)) = decision
            .seen
            .as_ref()
            .map(|s| (s.arn.clone(), s.memory.clone()))
        else {
            return Ok(());
        };
        let parts = if parts.is_none() {
            Suspended::ALL
        } else {
            parts
        };
        let now_suspended = if resume {
            read.suspended.without(parts)
        } else {
            read.suspended.with(parts)
        };
        decision.suspended = now_suspended;
        let shown = |s: Suspended| {
            if s.is_none() {
                "nothing".to_string()
            } else {
                s.encode()
            }
        };
        decision.reason = format!(
            "{} {}: suspended now: {}",
            if resume { "resume" } else { "suspend" },
            shown(parts),
            shown(now_suspended)
        );
        if now_suspended == read.suspended || record.dry_run {
            return Ok(());
        }
        let memory = ScalingMemory {
            suspended: now_suspended,
            ..read
        }
        .with_command(request_id);
        decision.calls.push("ecs:TagResource");
        self.ecs.remember(&arn, &memory).await
    }

    async fn manual_change(
        &self,
        command: &ManualCommand,
        request_id: &str,
        bounds: ecs_control::domain::policy::CapacityBounds,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let service = command.service_ref();
        let Some(state) = self
            .read_service(&service, bounds, record, decision, None)
            .await?
        else {
            return Ok(());
        };
        let unapplied = matches!(decision.memory, Some(MemoryStatus::Unapplied { .. }));
        if !unapplied && state.memory.applied_command(request_id) {
            decision.action = Action::Duplicate;
            decision.reason = "this command was already applied".into();
            return Ok(());
        }
        let state = self
            .drain_step(&service, state, record.dry_run, decision, now)
            .await;
        let limits = self.limits(&service, bounds, &state, decision, now).await?;
        decision.limits = Some(limits);
        let proposed = match &command.change {
            ManualChange::SetDesiredCount { desired_count } => i64::from(*desired_count),
            ManualChange::ApplyStep {
                adjustment_type,
                adjustment,
                min_adjustment_magnitude,
            } => adjusted(
                *adjustment_type,
                state.desired_count,
                *adjustment,
                *min_adjustment_magnitude,
            ),
            ManualChange::PreviewBounds { .. }
            | ManualChange::PreviewForecast { .. }
            | ManualChange::Suspend { .. }
            | ManualChange::Resume { .. } => return Ok(()),
        };
        let (wanted, clamped_by) = limits.clamp(proposed);
        let why = command.reason.as_deref().unwrap_or("no reason given");
        decision.reason = match clamped_by {
            Some(Clamp::MaxCapacity) => format!(
                "manual ({why}): {proposed} asked, held to the max {} in force",
                limits.bounds.max
            ),
            Some(Clamp::Budget) => format!(
                "manual ({why}): {proposed} asked, held to the {} tasks the budget pays for",
                limits.bounds.max
            ),
            Some(Clamp::MinCapacity) => format!(
                "manual ({why}): {proposed} asked, held to the min {} in force",
                limits.bounds.min
            ),
            None => format!("manual ({why}): {proposed} asked"),
        };
        if wanted == state.desired_count {
            decision
                .reason
                .push_str("; the desired count already equals it");
            return Ok(());
        }
        // The command answers the openings of the windows open now: none of them undoes it later.
        let openings = opening_marks(decision);
        let mut memory = state
            .memory
            .after_manual(state.desired_count, wanted, &record.trigger_key, now)
            .with_command(request_id)
            .with_marks(openings.iter().map(|(k, at)| (k.as_str(), *at)));
        let target = match self.paced(&service, &state, wanted, &mut memory, decision, now) {
            PaceOutcome::Step(target) => {
                memory.last_target = Some(target);
                target
            }
            PaceOutcome::NothingThisMinute => {
                // The command is remembered as applied: the tick carries out the stages.
                memory.last_target = Some(state.desired_count);
                memory.applied = Some(true);
                decision.after = Some(state.desired_count);
                if !record.dry_run {
                    decision.calls.push("ecs:TagResource");
                    self.ecs.remember(&state.arn, &memory).await?;
                }
                return Ok(());
            }
        };
        decision.after = Some(target);
        self.change_count(
            &service,
            &state,
            target,
            &memory,
            record.dry_run,
            decision,
            now,
        )
        .await
    }
}
