//! Drain-first scale-in, the scaler's side (the rules are in
//! [`ecs_control::domain::drain`]).
//!
//! A scale-in of a service whose tasks the registrar keeps in target groups
//! does not lower the count at once. It chooses the tasks to remove, holds
//! them out of the registrar's reconcile (a tag on each task), records the
//! drain with the change (one service tag write), and deregisters their
//! targets. Each later invocation takes the next step: once the targets
//! have drained, it protects the tasks that stay (ECS task scale-in
//! protection, a few minutes) and lowers the count, so ECS stops exactly the
//! drained tasks; once they are stopped, it lifts the protection.
//!
//! Order is what makes a crash safe. The holds go on before the drain is
//! recorded (a retry chooses the held tasks again), the drain is recorded
//! before anything leaves a group, and a cancelled drain is forgotten before
//! its targets return, so a drain found later is never mistaken for one
//! whose tasks are gone. Protection and holds expire by themselves.

use crate::decision::{Action, ChosenTask, DrainReport, ServiceDecision};
use crate::handler::Scaler;
use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::config::registrar::TargetGroupBinding;
use ecs_control::domain::drain::{
    choose_tasks, next_step, to_protect, to_release, DrainCandidate, DrainFacts, DrainMemory,
    DrainPhase, DrainStep, PROTECTION_MINUTES,
};
use ecs_control::domain::registration::{HealthState, Target, TaskInfo, TARGETS_PER_CALL};
use ecs_control::domain::scaling::{Direction, ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, PortError, ScalerEcs, TargetGroups};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The services the scaler resizes whose scale-ins drain first.
    pub(crate) fn drain_first_services(&self) -> impl Iterator<Item = ServiceRef> + '_ {
        self.bindings
            .keys()
            .filter(|s| self.config.bounds_for_service(s).is_some())
            .filter(|s| self.drain_groups(s).is_some())
            .cloned()
    }

    /// The groups a scale-in of `service` drains its tasks from first;
    /// `None` when it lowers the count at once.
    fn drain_groups(&self, service: &ServiceRef) -> Option<&[TargetGroupBinding]> {
        let groups = self.bindings.get(service)?;
        let wanted = self.config.settings_for(service).drain.before_scale_in != Some(false);
        (wanted && !groups.is_empty()).then_some(groups.as_slice())
    }

    /// The one path every change of the count takes: a scale-in of a
    /// drain-first service starts a drain; a scale-out during a drain
    /// cancels it; a scale-in during a drain waits for it.
    #[allow(clippy::too_many_arguments)] // the apply path's own arguments, and the clock
    pub(crate) async fn change_count(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        target: u32,
        memory: &ScalingMemory,
        dry_run: bool,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if let Some(drain) = &state.memory.drain {
            // In either phase: a drain left in place would take a count
            // back to where it began for an `UpdateService` that never landed.
            if target > state.desired_count {
                return self
                    .cancel_drain(service, state, target, memory, dry_run, decision)
                    .await;
            }
            if target < state.desired_count {
                decision.action = Action::Draining;
                decision.after = Some(state.desired_count);
                decision.reason = format!(
                    "{}; waits: the drain from {} to {} started at {} is still under way",
                    decision.reason,
                    drain.from,
                    drain.to,
                    drain.started.to_rfc3339()
                );
                return Ok(());
            }
        }
        if target < state.desired_count {
            if let Some(groups) = self.drain_groups(service) {
                return self
                    .start_drain(
                        service, state, target, memory, groups, dry_run, decision, now,
                    )
                    .await;
            }
        }
        self.apply(service, state, target, memory, dry_run, decision)
            .await
    }

    /// Chooses the tasks, holds them, records the drain with the change,
    /// and deregisters their targets.
    #[allow(clippy::too_many_arguments)]
    async fn start_drain(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        target: u32,
        memory: &ScalingMemory,
        groups: &[TargetGroupBinding],
        dry_run: bool,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let settings = self.config.settings_for(service).drain;
        decision
            .calls
            .extend(["ecs:ListTasks", "ecs:DescribeTasks"]);
        let tasks = self.ecs.service_tasks(service).await?.tasks;
        let remove = usize::try_from(state.desired_count - target)
            .unwrap_or(usize::MAX)
            .min(
                tasks
                    .len()
                    .saturating_sub(usize::try_from(target).unwrap_or(0)),
            );
        if remove == 0 {
            decision
                .notes
                .push("no task runs beyond the new count: nothing to drain".into());
            return self
                .apply(service, state, target, memory, dry_run, decision)
                .await;
        }
        // Tasks an interrupted start already held go first, so a retry
        // drains the tasks it chose before.
        let (held, free): (Vec<&TaskInfo>, Vec<&TaskInfo>) =
            tasks.iter().partition(|t| t.held_for_drain(now));
        // A task already protected from scale-in (an application protecting
        // itself while it works) is never chosen: ECS would not stop it, and
        // would stop an undrained task in its place once ours expired.
        let protected: Vec<String> = self
            .protection_of(service, &tasks, decision)
            .await?
            .into_iter()
            .filter(|(_, expiry)| expiry.is_some_and(|e| e > now))
            .map(|(arn, _)| arn)
            .collect();
        let free: Vec<&TaskInfo> = free
            .into_iter()
            .filter(|t| !protected.contains(&t.task_arn))
            .collect();
        let mut chosen: Vec<&TaskInfo> = held.into_iter().take(remove).collect();
        let candidates: Vec<DrainCandidate> = free
            .iter()
            .map(|t| DrainCandidate {
                task_arn: t.task_arn.clone(),
                zone: t.availability_zone.clone(),
                started_at: t.started_at,
            })
            .collect();
        for arn in choose_tasks(&candidates, remove - chosen.len(), settings.order) {
            chosen.extend(free.iter().find(|t| t.task_arn == arn));
        }
        let drain = DrainMemory::new(now, state.desired_count, target);
        let mut report = DrainReport {
            drain: Some(drain.clone()),
            chosen: chosen
                .iter()
                .map(|t| ChosenTask {
                    task_arn: t.task_arn.clone(),
                    zone: t.availability_zone.clone(),
                })
                .collect(),
            summary: format!(
                "draining {} task(s) before lowering the count from {} to {target}",
                chosen.len(),
                state.desired_count
            ),
            ..DrainReport::default()
        };
        decision.reason = format!("{}; {}", decision.reason, report.summary);
        decision.after = Some(state.desired_count);
        if dry_run {
            decision.action = Action::WouldScale;
            decision.drain = Some(report);
            return Ok(());
        }
        let arns: Vec<String> = chosen.iter().map(|t| t.task_arn.clone()).collect();
        decision.calls.push("ecs:TagResource");
        self.ecs
            .hold_for_drain(
                &service.cluster,
                &arns,
                Some(drain.hold_until(settings.max_drain_seconds)),
            )
            .await?;
        let pending = ScalingMemory {
            drain: Some(drain),
            ..memory.clone()
        }
        .with_applied(false);
        decision.calls.push("ecs:TagResource");
        self.ecs.remember(&state.arn, &pending).await?;
        decision.action = Action::Draining;
        let chosen: Vec<TaskInfo> = chosen.into_iter().cloned().collect();
        let moved = self.move_targets(groups, &chosen, false, decision).await;
        report.targets_deregistered = moved.as_ref().map_or(0, |n| *n);
        decision.drain = Some(report);
        moved.map(|_| ())
    }

    /// [`Self::progress_drain`], whose failure does not block the decision:
    /// it is noted, the decision goes on from the service as read (so a
    /// scale-out still cancels the drain), and the trigger fails afterwards
    /// to be retried (see [`ServiceDecision::with_drain_failure`]).
    pub(crate) async fn drain_step(
        &self,
        service: &ServiceRef,
        state: ServiceState,
        dry_run: bool,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> ServiceState {
        match self
            .progress_drain(service, state.clone(), dry_run, decision, now)
            .await
        {
            Ok(after) => after,
            Err(e) => {
                decision.notes.push(format!(
                    "the drain's step failed ({e}); deciding without it"
                ));
                decision.drain_failure = Some(e);
                state
            }
        }
    }

    /// The next step of a drain under way, before anything is decided:
    /// returns the service as it is after the step (a lowered count, the
    /// drain's new phase, or no drain).
    pub(crate) async fn progress_drain(
        &self,
        service: &ServiceRef,
        state: ServiceState,
        dry_run: bool,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<ServiceState, PortError> {
        let Some(drain) = state.memory.drain.clone() else {
            return Ok(state);
        };
        let settings = self.config.settings_for(service).drain;
        let groups = self.bindings.get(service).map_or(&[][..], Vec::as_slice);
        decision
            .calls
            .extend(["ecs:ListTasks", "ecs:DescribeTasks"]);
        let listed = self.ecs.service_tasks(service).await?;
        // This drain's tasks carry its own hold: a hold another drain or a
        // drill left behind is not this drain's.
        let hold = drain.hold_until(settings.max_drain_seconds);
        let (chosen, staying): (Vec<TaskInfo>, Vec<TaskInfo>) = listed
            .tasks
            .into_iter()
            .partition(|t| t.drain_hold_until == Some(hold));
        let mut found = DrainFacts {
            desired_count: state.desired_count,
            still_running: chosen.len(),
            staying: staying.len(),
            lowering_held: state.deployment_in_progress
                || state.drill_in_progress.is_some()
                || !state.memory.suspended.allows(Direction::In)
                || !listed.missing.is_empty(),
            ..DrainFacts::default()
        };
        if drain.phase == DrainPhase::Draining {
            for group in groups {
                let targets = targets_of(group, &chosen);
                if targets.is_empty() {
                    continue;
                }
                decision
                    .calls
                    .push("elasticloadbalancing:DescribeTargetHealth");
                for registered in self
                    .groups
                    .targets_among(&group.target_group_arn, &targets)
                    .await?
                {
                    match registered.state {
                        HealthState::Draining => found.still_draining += 1,
                        _ => found.still_registered += 1,
                    }
                }
            }
        }
        let step = next_step(&drain, found, now, settings.max_drain_seconds);
        let mut report = DrainReport {
            drain: Some(drain.clone()),
            found: Some(found),
            step: Some(step.clone()),
            summary: format!("drain from {} to {}: {step}", drain.from, drain.to),
            ..DrainReport::default()
        };
        decision.notes.push(report.summary.clone());
        let mut after = state.clone();
        if dry_run {
            decision.drain = Some(report);
            return Ok(after);
        }
        match step {
            DrainStep::Deregister => {
                decision.action = Action::Draining;
                report.targets_deregistered =
                    self.move_targets(groups, &chosen, false, decision).await?;
            }
            DrainStep::WaitForDrain { .. }
            | DrainStep::WaitForStop { .. }
            | DrainStep::LoweringHeld => {
                decision.action = Action::Draining;
            }
            DrainStep::Lower { to, .. } => {
                let staying = self.protection_of(service, &staying, decision).await?;
                let arns = to_protect(
                    &staying,
                    now + TimeDelta::minutes(i64::from(PROTECTION_MINUTES)),
                );
                let refused = if arns.is_empty() {
                    Vec::new()
                } else {
                    decision.calls.push("ecs:UpdateTaskProtection");
                    self.ecs
                        .protect(&service.cluster, &arns, Some(PROTECTION_MINUTES))
                        .await?
                };
                report.tasks_protected = arns.len() - refused.len();
                // A task gone since it was listed needs no protection; any
                // other refusal could let ECS stop a task that stays.
                let blocking: Vec<(String, String)> = refused
                    .into_iter()
                    .filter(|(_, why)| !why.contains("MISSING"))
                    .collect();
                if !blocking.is_empty() {
                    decision.action = Action::Draining;
                    decision.notes.push(format!(
                        "the count is not lowered: ECS did not protect {} task(s) that stay; the next tick tries again",
                        blocking.len()
                    ));
                    report.protection_refused = blocking;
                    decision.drain = Some(report);
                    return Ok(after);
                }
                let memory = ScalingMemory {
                    drain: Some(DrainMemory {
                        phase: DrainPhase::Lowered,
                        lowered_at: Some(now),
                        to,
                        ..drain.clone()
                    }),
                    // The count set may be above the one decided (more tasks
                    // stay than the drain chose); the memory says what is set.
                    last_target: Some(to),
                    ..state.memory.clone()
                };
                decision.calls.push("ecs:TagResource");
                self.ecs.remember(&state.arn, &memory).await?;
                decision.calls.push("ecs:UpdateService");
                self.ecs.set_desired_count(service, to).await?;
                decision.action = Action::Scaled;
                decision.after = Some(to);
                tracing::info!(service = %service, from = state.desired_count, to, "scaled in after draining");
                after.desired_count = to;
                after.memory = memory;
            }
            DrainStep::Finish | DrainStep::Abandon { .. } => {
                let memory = ScalingMemory {
                    drain: None,
                    ..state.memory.clone()
                };
                // Forgotten first: a drain found later always has its holds.
                decision.calls.push("ecs:TagResource");
                self.ecs.remember(&state.arn, &memory).await?;
                after.memory = memory;
                let held: Vec<String> = chosen.iter().map(|t| t.task_arn.clone()).collect();
                if !held.is_empty() {
                    decision.calls.push("ecs:UntagResource");
                    self.ecs
                        .hold_for_drain(&service.cluster, &held, None)
                        .await?;
                }
                if matches!(step, DrainStep::Abandon { .. }) {
                    report.targets_registered =
                        self.move_targets(groups, &chosen, true, decision).await?;
                } else if let Some(lowered_at) = drain.lowered_at {
                    // Only the drain's own protection: an application that
                    // protects itself while it works keeps its protection.
                    let staying = self.protection_of(service, &staying, decision).await?;
                    let arns = to_release(&staying, lowered_at);
                    if !arns.is_empty() {
                        decision.calls.push("ecs:UpdateTaskProtection");
                        self.ecs.protect(&service.cluster, &arns, None).await?;
                    }
                }
            }
        }
        decision.drain = Some(report);
        if let Some(seen) = decision.seen.as_mut() {
            // What later writes start from: the memory after this step.
            seen.memory = after.memory.clone();
        }
        Ok(after)
    }

    /// Each task with the expiry of its scale-in protection, if any.
    async fn protection_of(
        &self,
        service: &ServiceRef,
        tasks: &[TaskInfo],
        decision: &mut ServiceDecision,
    ) -> Result<Vec<(String, Option<DateTime<Utc>>)>, PortError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let arns: Vec<String> = tasks.iter().map(|t| t.task_arn.clone()).collect();
        decision.calls.push("ecs:GetTaskProtection");
        let protected = self.ecs.protection(&service.cluster, &arns).await?;
        Ok(arns
            .into_iter()
            .map(|arn| {
                let expiry = protected.get(&arn).copied();
                (arn, expiry)
            })
            .collect())
    }

    /// A scale-out during a drain: the drain is forgotten with the new
    /// change recorded, the chosen tasks' holds are lifted and their
    /// targets registered again, then the count rises.
    async fn cancel_drain(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        target: u32,
        memory: &ScalingMemory,
        dry_run: bool,
        decision: &mut ServiceDecision,
    ) -> Result<(), PortError> {
        let mut report = DrainReport {
            drain: state.memory.drain.clone(),
            summary: format!("a scale-out to {target} cancels the drain"),
            ..DrainReport::default()
        };
        decision.reason = format!("{}; {}", decision.reason, report.summary);
        let pending = ScalingMemory {
            drain: None,
            ..memory.clone()
        }
        .with_applied(false);
        if dry_run {
            decision.drain = Some(report);
            return self
                .apply(service, state, target, &pending, dry_run, decision)
                .await;
        }
        decision.calls.push("ecs:TagResource");
        self.ecs.remember(&state.arn, &pending).await?;
        decision
            .calls
            .extend(["ecs:ListTasks", "ecs:DescribeTasks"]);
        let hold = state
            .memory
            .drain
            .as_ref()
            .map(|d| d.hold_until(self.config.settings_for(service).drain.max_drain_seconds));
        let chosen: Vec<TaskInfo> = self
            .ecs
            .service_tasks(service)
            .await?
            .tasks
            .into_iter()
            .filter(|t| t.drain_hold_until.is_some() && t.drain_hold_until == hold)
            .collect();
        if !chosen.is_empty() {
            let arns: Vec<String> = chosen.iter().map(|t| t.task_arn.clone()).collect();
            decision.calls.push("ecs:UntagResource");
            self.ecs
                .hold_for_drain(&service.cluster, &arns, None)
                .await?;
            let groups = self.bindings.get(service).map_or(&[][..], Vec::as_slice);
            report.targets_registered = self.move_targets(groups, &chosen, true, decision).await?;
        }
        decision.drain = Some(report);
        let recorded = ServiceState {
            memory: pending.clone(),
            ..state.clone()
        };
        self.apply(service, &recorded, target, &pending, dry_run, decision)
            .await
    }

    /// Registers (`register`) or deregisters the tasks' targets in every
    /// group, a call per group and [`TARGETS_PER_CALL`] targets; returns how
    /// many targets the calls named.
    async fn move_targets(
        &self,
        groups: &[TargetGroupBinding],
        tasks: &[TaskInfo],
        register: bool,
        decision: &mut ServiceDecision,
    ) -> Result<usize, PortError> {
        let mut moved = 0;
        for group in groups {
            for chunk in targets_of(group, tasks).chunks(TARGETS_PER_CALL) {
                if register {
                    decision.calls.push("elasticloadbalancing:RegisterTargets");
                    self.groups
                        .register(&group.target_group_arn, chunk, group.outside_vpc)
                        .await?;
                } else {
                    decision
                        .calls
                        .push("elasticloadbalancing:DeregisterTargets");
                    self.groups
                        .deregister(&group.target_group_arn, chunk, group.outside_vpc)
                        .await?;
                }
                moved += chunk.len();
            }
        }
        Ok(moved)
    }
}

/// The tasks' targets in `group`: their address in its family, on its port.
fn targets_of(group: &TargetGroupBinding, tasks: &[TaskInfo]) -> Vec<Target> {
    tasks
        .iter()
        .filter_map(|t| t.address(group.address_family))
        .map(|ip| Target::new(ip, group.port))
        .collect()
}
