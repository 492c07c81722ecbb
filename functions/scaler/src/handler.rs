//! Event → trigger → one decision per service → effects → decision record.
//!
//! Every trigger ends in [`Scaler::act_on_service`]: the service is read once,
//! each module in [`crate::triggers`] adds its policies' evaluations or narrows
//! the limits, the evaluations are combined by the same out/in/veto rules, and
//! the memory and the count are written once.

use crate::decision::PaceOutcome;
pub(crate) use crate::decision::TriggerInputs;
pub use crate::decision::{Action, DecisionRecord, ServiceDecision};
use crate::events::{self, AlarmNotice, Invocation, Trigger};
use crate::forecast_cache::ForecastCache;
use chrono::{DateTime, Utc};
use ecs_control::batch::{self, Answer};
use ecs_control::config::registrar::TargetGroupBinding;
use ecs_control::config::{ConfigError, RegistrarConfig, ScalerConfig};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::scale_in::{
    limit_scale_in, no_scale_in, ScaleInBehaviour, ScaleInMemory, ScaleInVerdict,
};
use ecs_control::domain::scaling::{
    decide, trigger_key, BlindSince, Choice, Clamp, Direction, Hold, Limits, MemoryStatus,
    PolicyEvaluation, ScalingMemory, ServiceState,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::suspension::Suspended;
use ecs_control::invocation::{
    log_decision, summed, variant_name, ControllerMetric, InvocationError,
};
use ecs_control::ports::{AlarmStates, NoTargetGroups, PortError, ScalerEcs, TargetGroups};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// The scaler: configuration and ports, built once per cold start.
#[derive(Debug)]
pub struct Scaler<E, A, G = NoTargetGroups> {
    pub(crate) config: ScalerConfig,
    pub(crate) ecs: E,
    pub(crate) alarms: A,
    /// The registrar's target groups, for drain-first scale-in.
    pub(crate) groups: G,
    /// The groups the registrar keeps each service's tasks in.
    pub(crate) bindings: BTreeMap<ServiceRef, Vec<TargetGroupBinding>>,
    /// Shadow mode: decide and record, never change anything.
    always_dry_run: bool,
    /// Task sizes by task definition ARN: read once per cold start, and again
    /// only when a service moves to another task definition.
    pub(crate) task_sizes: Mutex<HashMap<String, Option<TaskSize>>>,
    /// The predictive policies' forecasts, made again every hour.
    pub(crate) forecasts: ForecastCache,
}

impl<E: ScalerEcs, A: AlarmStates> Scaler<E, A> {
    /// A scaler of services whose target groups, if any, it does not know:
    /// scale-ins lower the count at once.
    pub fn new(config: ScalerConfig, ecs: E, alarms: A, always_dry_run: bool) -> Self {
        Self {
            config,
            ecs,
            alarms,
            groups: NoTargetGroups,
            bindings: BTreeMap::new(),
            always_dry_run,
            task_sizes: Mutex::new(HashMap::new()),
            forecasts: ForecastCache::default(),
        }
    }
}

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The same scaler, knowing the target groups the registrar keeps each
    /// service's tasks in: a scale-in of such a service drains the tasks it
    /// removes first (unless its `drain_before_scale_in` is false).
    ///
    /// # Errors
    /// A [`ConfigError`] naming a `services[]` entry that asks for drain-first
    /// scale-in of a service the registrar document does not bind.
    pub fn with_target_groups<H: TargetGroups>(
        self,
        groups: H,
        registrar: Option<&RegistrarConfig>,
    ) -> Result<Scaler<E, A, H>, ConfigError> {
        let bindings: BTreeMap<ServiceRef, Vec<TargetGroupBinding>> = registrar
            .iter()
            .flat_map(|r| &r.services)
            .map(|b| (b.service.clone(), b.target_groups.clone()))
            .collect();
        self.config
            .check_drain_bindings(|s| bindings.contains_key(s))?;
        Ok(Scaler {
            config: self.config,
            ecs: self.ecs,
            alarms: self.alarms,
            groups,
            bindings,
            always_dry_run: self.always_dry_run,
            task_sizes: self.task_sizes,
            forecasts: self.forecasts,
        })
    }

    /// The ports, for inspection.
    pub fn ports(&self) -> (&E, &A) {
        (&self.ecs, &self.alarms)
    }

    /// The target groups port, for inspection.
    pub fn target_groups(&self) -> &G {
        &self.groups
    }

    /// Checks the policies against AWS (see [`crate::cold_start`]).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the policy whose alarm or service AWS does not have.
    pub async fn verify_configuration(&self) -> Result<(), ConfigError> {
        crate::cold_start::verify(&self.config, &self.alarms, &self.ecs).await
    }

    /// Handles one invocation: a payload [`Self::handle`] takes, answered with
    /// its decision record, or an SQS batch of them, each message handled in
    /// turn with its message id as the request id (a queued manual command
    /// redelivered is then the same command), answered with the partial batch
    /// response (the rules are in [`ecs_control::batch`]). `clock` is read as
    /// each message starts: a batch's messages are decided at their own time.
    ///
    /// # Errors
    /// A direct payload's [`InvocationError`]; a batch's failures are in its response.
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
        request_id: &str,
        clock: impl Fn() -> DateTime<Utc>,
    ) -> Result<Answer<DecisionRecord>, InvocationError> {
        let clock = &clock;
        batch::dispatch(payload, move |body, message_id| async move {
            let request_id = message_id.as_deref().unwrap_or(request_id);
            self.handle(body, request_id, clock()).await
        })
        .await
    }

    /// Handles one payload (an invocation's, or a queued message's body) and
    /// logs its decision record as one line.
    ///
    /// # Errors
    /// Malformed events, rejected commands and AWS failures, as [`InvocationError`];
    /// the record is logged even then.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DecisionRecord, InvocationError> {
        let invocation = events::parse(payload).inspect_err(|e| {
            tracing::error!(error = %e, "malformed event");
        })?;
        // Boxed: the nested async state machine is too deep to lay out inline.
        let (record, result) = Box::pin(self.route(invocation, request_id, now)).await;
        log_decision("scaler", &record, &controller_metrics(&record), now);
        result.map(|()| record)
    }

    async fn route(
        &self,
        invocation: Invocation,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> (DecisionRecord, Result<(), InvocationError>) {
        let Invocation { trigger, dry_run } = invocation;
        let command_id = match &trigger {
            Trigger::Manual { command } => command.request_id.as_deref().unwrap_or(request_id),
            _ => request_id,
        };
        let key = match &trigger {
            Trigger::AlarmChange { notices } => notices
                .iter()
                .map(AlarmNotice::key)
                .collect::<Vec<_>>()
                .join(" "),
            Trigger::Recheck { event_id } => format!("recheck:{event_id}"),
            Trigger::Manual { .. } => format!("manual:{command_id}"),
        };
        let mut record = DecisionRecord {
            trigger: trigger.clone(),
            trigger_key: trigger_key(&key),
            dry_run: dry_run || self.always_dry_run,
            decided_at: now,
            ignored: None,
            alarms_checked: Vec::new(),
            calls: Vec::new(),
            services: Vec::new(),
            preview: None,
            forecasts_made: Vec::new(),
            forecast_preview: None,
        };
        let result = match &trigger {
            Trigger::AlarmChange { notices } => {
                self.on_alarm_change(notices, &mut record, now).await
            }
            Trigger::Recheck { .. } => self.on_tick(&mut record, now).await,
            Trigger::Manual { command } => {
                self.on_manual(command, command_id, &mut record, now).await
            }
        };
        (record, result)
    }

    /// Decides and acts for each service; one service's failure does not stop
    /// the others, and a retry of the same trigger skips those already applied.
    pub(crate) async fn act_on_services(
        &self,
        services: BTreeSet<ServiceRef>,
        mut inputs: TriggerInputs<'_>,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        inputs.metrics = self
            .read_metrics(&services, &inputs.statuses, record, now)
            .await;
        let reads = self
            .refresh_forecasts(&services, &mut record.forecasts_made, now)
            .await;
        record
            .calls
            .extend(std::iter::repeat_n("cloudwatch:GetMetricData", reads));
        if services.len() > 1 {
            // One read for the fleet; a failed read leaves each service to read its own.
            let wanted: Vec<ServiceRef> = services
                .iter()
                .filter(|s| self.config.bounds_for_service(s).is_some())
                .cloned()
                .collect();
            if let Ok(states) = self.ecs.describe_services(&wanted).await {
                inputs.states = states;
            }
        }
        let inputs = &inputs;
        let total = services.len();
        let mut failures = Vec::new();
        for service in services {
            let mut decision = ServiceDecision::new(service.clone());
            let outcome = self
                .act_on_service(&service, inputs, record, &mut decision, now)
                .await;
            if let Err(e) = decision.with_drain_failure(outcome) {
                decision.action = Action::Failed;
                decision.error = Some(e.to_string());
                failures.push(e);
            }
            record.services.push(decision);
        }
        InvocationError::from_failures(failures, total, "services")
    }

    pub(crate) fn bounds(&self, service: &ServiceRef) -> Result<CapacityBounds, InvocationError> {
        self.config.bounds_for_service(service).ok_or_else(|| {
            InvocationError::RejectedCommand(format!(
                "no policy resizes {service}: the scaler only changes services it is configured for"
            ))
        })
    }

    /// Reads the service and sorts out its memory: completes a change this same
    /// trigger recorded but never applied, and notes another writer's change.
    /// Returns the state to decide from, or `None` when the trigger is done.
    pub(crate) async fn read_service(
        &self,
        service: &ServiceRef,
        bounds: CapacityBounds,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
        read_already: Option<&Result<ServiceState, PortError>>,
    ) -> Result<Option<ServiceState>, PortError> {
        decision.calls.push("ecs:DescribeServices");
        let state = match read_already {
            Some(state) => state.clone()?,
            None => self.ecs.describe_service(service).await?,
        };
        decision.before = Some(state.desired_count);
        decision.after = Some(state.desired_count);
        decision.seen = Some(state.clone());
        decision.suspended = state.memory.suspended;
        let status = state.memory.status(state.desired_count);
        decision.memory = Some(status.clone());
        let draining = state.memory.drain.is_some();
        match &status {
            // A drain's change is unapplied until its targets have drained:
            // the drain's own steps complete it.
            MemoryStatus::Unapplied { target, .. } if draining => decision.notes.push(format!(
                "draining ahead of the change to {target}"
            )),
            MemoryStatus::Unapplied { target, trigger }
                if trigger.as_deref() == Some(record.trigger_key.as_str()) =>
            {
                let target = bounds.clamp(i64::from(*target));
                decision.reason = format!(
                    "completing the change to {target} this trigger recorded but never applied"
                );
                decision.after = Some(target);
                let memory = state.memory.clone().with_applied(false);
                self.change_count(
                    service,
                    &state,
                    target,
                    &memory,
                    record.dry_run,
                    decision,
                    record.decided_at,
                )
                .await?;
                return Ok(None);
            }
            MemoryStatus::Unapplied { target, .. } => decision.notes.push(format!(
                "a change to {target} was recorded but never applied: its cooldown does not count"
            )),
            MemoryStatus::ChangedElsewhere { last_set, found } => decision.notes.push(format!(
                "the desired count is {found}, not the {last_set} the scaler last set: another writer \
                 (a deploy, a person, Application Auto Scaling) changed it; the cooldown base is {found}"
            )),
            MemoryStatus::InEffect => {}
        }
        // A drain's change counts as made: its cooldown runs from its start.
        let memory = if draining {
            state.memory.clone()
        } else {
            state.memory.effective(&status)
        };
        Ok(Some(ServiceState { memory, ..state }))
    }

    /// Whether this trigger was already answered by a change of this service.
    fn already_answered(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        inputs: &TriggerInputs<'_>,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
    ) -> bool {
        if matches!(decision.memory, Some(MemoryStatus::Unapplied { .. })) {
            return false;
        }
        if matches!(record.trigger, Trigger::Recheck { .. }) {
            // A tick delivered twice acts once.
            if state.memory.last_trigger.as_deref() == Some(record.trigger_key.as_str()) {
                decision.action = Action::Duplicate;
                decision.reason = "this tick already changed the service".into();
                return true;
            }
            return false;
        }
        // Each delivery of one alarm state change acts at most once, however late:
        // the service remembers, per alarm, the newest change a scaling answered.
        let relevant: Vec<&AlarmNotice> = inputs
            .notices
            .iter()
            .filter(|n| {
                self.config
                    .policies_for_service(service)
                    .any(|p| p.alarm == n.alarm)
            })
            .collect();
        if !relevant.is_empty()
            && relevant
                .iter()
                .all(|n| state.memory.answered(&n.alarm, n.state_changed_at))
        {
            decision.action = Action::Duplicate;
            decision.reason =
                "this alarm state change was already answered by a change of this service".into();
            return true;
        }
        false
    }

    /// The one decide-and-apply path every trigger shares.
    async fn act_on_service(
        &self,
        service: &ServiceRef,
        inputs: &TriggerInputs<'_>,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let Some(bounds) = self.config.bounds_for_service(service) else {
            return Ok(());
        };
        let read_already = inputs.states.get(service);
        let Some(state) = self
            .read_service(service, bounds, record, decision, read_already)
            .await?
        else {
            return Ok(());
        };
        if self.already_answered(service, &state, inputs, record, decision) {
            return Ok(());
        }
        let suspended = state.memory.suspended;
        if suspended == Suspended::ALL {
            decision.reason =
                "every part of scaling is suspended on this service: nothing changes (resume to undo)"
                    .into();
            return Ok(());
        }
        let state = self
            .drain_step(service, state, record.dry_run, decision, now)
            .await;
        let limits = self.limits(service, bounds, &state, decision, now).await?;
        decision.limits = Some(limits);

        let mut evaluations = Vec::new();
        let mut answered: Vec<(String, DateTime<Utc>)> = Vec::new();
        self.step_evaluations(service, inputs, &state, limits, decision, now)
            .await
            .into_iter()
            .for_each(|(evaluation, mark)| {
                evaluations.push(suspended.hold(evaluation));
                answered.extend(mark);
            });
        let (tracking, blind) = self.tracking_evaluations(service, inputs, &state, limits, now);
        evaluations.extend(tracking.into_iter().map(|e| suspended.hold(e)));
        let (openings, opening_marks) = self.window_openings(&state, limits, decision, now);
        evaluations.extend(openings);
        answered.extend(opening_marks.iter().cloned());
        evaluations.extend(self.staged_continuation(&state, limits, decision, now));
        decision.evaluations = evaluations;

        let mut outcome = decide(&decision.evaluations, &state, limits.bounds);
        let mut learned = Learned {
            blind,
            scale_in: no_scale_in(&state.memory.scale_in),
        };
        let mut wanted = outcome.target;
        let chosen = outcome.chosen(&decision.evaluations).cloned();
        if let (Some(policy), Some(to)) = (chosen.filter(is_policy_scale_in), wanted) {
            learned.scale_in = state.memory.scale_in.clone();
            let behaviour = self.config.settings_for(service).scale_in;
            // A count above the max comes down to it whatever the behaviour
            // says; the behaviour limits what a policy removes below that.
            let from = state.desired_count.min(limits.bounds.max);
            if behaviour != ScaleInBehaviour::default() && to < from {
                let (verdict, kept) =
                    limit_scale_in(behaviour, &state.memory.scale_in, from, to, now);
                learned.scale_in = kept;
                decision.scale_in = Some(verdict.clone());
                match verdict {
                    ScaleInVerdict::Proceed { target, .. } => wanted = Some(target),
                    ScaleInVerdict::Held { hold, why } => {
                        // The policies' scale-ins wait; what else wants a
                        // move (a window opening, a staged change, a return
                        // within bounds) still gets it.
                        for evaluation in decision
                            .evaluations
                            .iter_mut()
                            .filter(|e| is_policy_scale_in(e) && e.target.is_some())
                        {
                            evaluation.target = None;
                            evaluation.held_by = Some(hold);
                            evaluation.rule = format!("{}; {why}", evaluation.rule);
                        }
                        outcome = decide(&decision.evaluations, &state, limits.bounds);
                        wanted = outcome.target;
                        if wanted.is_none() {
                            decision.choice = Some(outcome.choice.clone());
                            decision.reason = format!("{}: {why}", policy.policy);
                            return self
                                .remember_held(
                                    &state,
                                    &opening_marks,
                                    &learned,
                                    record.dry_run,
                                    decision,
                                )
                                .await;
                        }
                    }
                }
            }
        }
        decision.choice = Some(outcome.choice.clone());
        decision.out_of_bounds = outcome.out_of_bounds;
        let chosen = outcome.chosen(&decision.evaluations).cloned();
        let Some(wanted) = wanted else {
            decision.reason = held_reason(
                &outcome.choice,
                decision,
                limits,
                outcome.correction_held_by,
            );
            // An opening is remembered when first seen, even when it moved
            // nothing (the count was already there): otherwise a later change
            // inside the window would be taken back to its desired_count.
            return self
                .remember_held(&state, &opening_marks, &learned, record.dry_run, decision)
                .await;
        };
        let memory = match &chosen {
            Some(chosen) => {
                decision.reason = format!("{}: {}", chosen.policy, chosen.rule);
                if let Some(arithmetic) =
                    chosen.tracking.as_ref().and_then(|t| t.arithmetic.as_ref())
                {
                    decision.reason.push_str(&format!("; {arithmetic}"));
                }
                match (chosen.clamped_by, &decision.budget) {
                    (Some(Clamp::Budget), Some(budget)) => decision.reason.push_str(&format!(
                        "; cut to {wanted}, what the budget pays for: {}",
                        budget.arithmetic
                    )),
                    (Some(Clamp::MaxCapacity), _) => decision
                        .reason
                        .push_str(&format!("; held to the max {wanted} in force")),
                    (Some(Clamp::MinCapacity), _) => decision
                        .reason
                        .push_str(&format!("; held to the min {wanted} in force")),
                    _ => {}
                }
                if let Some(ScaleInVerdict::Proceed { why: Some(why), .. }) = &decision.scale_in {
                    decision
                        .reason
                        .push_str(&format!("; scale-in limited {why}"));
                }
                state
                    .memory
                    .after(chosen, state.desired_count, &record.trigger_key, now)
            }
            None => {
                state
                    .memory
                    .after_manual(state.desired_count, wanted, &record.trigger_key, now)
            }
        };
        let mut memory = learned.onto(memory);
        if let Some(found) = outcome.out_of_bounds {
            let note = format!(
                "desired count {found} was outside [{}, {}]: brought to {wanted}",
                limits.bounds.min, limits.bounds.max
            );
            decision.reason = if decision.reason.is_empty() {
                note
            } else {
                format!("{}; {note}", decision.reason)
            };
        }
        let target = match self.paced(service, &state, wanted, &mut memory, decision, now) {
            PaceOutcome::Step(target) => {
                // What is set now, so the next reader finds the change in effect.
                memory.last_target = Some(target);
                target
            }
            PaceOutcome::NothingThisMinute => {
                // Only the pace's memory changes: nothing else happened.
                let kept = learned
                    .onto(ScalingMemory {
                        pace: memory.pace,
                        ..memory_as_read(&state, decision)
                    })
                    .with_marks(opening_marks.iter().map(|(k, at)| (k.as_str(), *at)));
                return self
                    .remember_only(&state, &kept, record.dry_run, decision)
                    .await;
            }
        };
        decision.after = Some(target);
        let memory = memory.with_marks(answered.iter().map(|(k, at)| (k.as_str(), *at)));
        self.change_count(
            service,
            &state,
            target,
            &memory,
            record.dry_run,
            decision,
            now,
        )
        .await
    }

    /// When nothing changes: remembers the window openings no change of the
    /// service has answered yet, and the blind policies' marks, if either
    /// is news.
    async fn remember_held(
        &self,
        state: &ServiceState,
        openings: &[(String, DateTime<Utc>)],
        learned: &Learned,
        dry_run: bool,
        decision: &mut ServiceDecision,
    ) -> Result<(), PortError> {
        let unseen: Vec<(&str, DateTime<Utc>)> = openings
            .iter()
            .filter(|(key, at)| !state.memory.answered(key, *at))
            .map(|(key, at)| (key.as_str(), *at))
            .collect();
        if (unseen.is_empty() && !learned.is_news_to(&state.memory)) || dry_run {
            return Ok(());
        }
        // Only the marks and what was learned change.
        let kept = learned.onto(memory_as_read(state, decision).with_marks(unseen));
        decision.calls.push("ecs:TagResource");
        self.ecs.remember(&state.arn, &kept).await
    }

    /// Writes the memory alone (a staged change the pace holds this minute).
    async fn remember_only(
        &self,
        state: &ServiceState,
        memory: &ScalingMemory,
        dry_run: bool,
        decision: &mut ServiceDecision,
    ) -> Result<(), PortError> {
        decision.after = Some(state.desired_count);
        if dry_run || state.memory == *memory {
            return Ok(());
        }
        decision.calls.push("ecs:TagResource");
        self.ecs.remember(&state.arn, memory).await
    }

    /// Records the change with the count it replaces, then makes it: a
    /// failure between the two leaves a change a retry of the same trigger
    /// completes, and that any other trigger knows never happened. No write
    /// follows `UpdateService`; the count found next tells whether it landed.
    pub(crate) async fn apply(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        target: u32,
        memory: &ScalingMemory,
        dry_run: bool,
        decision: &mut ServiceDecision,
    ) -> Result<(), PortError> {
        if dry_run {
            decision.action = Action::WouldScale;
            return Ok(());
        }
        let pending = memory.clone().with_applied(false);
        // Completing a recorded change finds its record already written.
        if state.memory != pending {
            decision.calls.push("ecs:TagResource");
            self.ecs.remember(&state.arn, &pending).await?;
        }
        decision.calls.push("ecs:UpdateService");
        self.ecs.set_desired_count(service, target).await?;
        decision.action = Action::Scaled;
        tracing::info!(service = %service, from = state.desired_count, to = target, "scaled");
        Ok(())
    }
}

/// The service's memory as read, not the one adjusted for deciding (which
/// drops an unapplied change's cooldown fields): what a write that changes
/// nothing else starts from.
fn memory_as_read(state: &ServiceState, decision: &ServiceDecision) -> ScalingMemory {
    decision
        .seen
        .as_ref()
        .map_or_else(|| state.memory.clone(), |seen| seen.memory.clone())
}

/// What a decision learns of a service whether or not it changes the
/// count: its blind policies, and its run of wanting scale-in and rate period.
struct Learned {
    blind: BlindSince,
    scale_in: ScaleInMemory,
}

impl Learned {
    fn onto(&self, memory: ScalingMemory) -> ScalingMemory {
        ScalingMemory {
            blind: self.blind.clone(),
            scale_in: self.scale_in.clone(),
            ..memory
        }
    }

    fn is_news_to(&self, memory: &ScalingMemory) -> bool {
        memory.blind != self.blind || memory.scale_in != self.scale_in
    }
}

/// Whether `chosen` is a step or target-tracking policy removing tasks:
/// what scale-in behaviour limits (not windows, the pace's stages or a
/// return within bounds).
fn is_policy_scale_in(chosen: &PolicyEvaluation) -> bool {
    chosen.direction == Some(Direction::In) && (chosen.step.is_some() || chosen.tracking.is_some())
}

/// Why nothing changes, in words.
fn held_reason(
    choice: &Choice,
    decision: &ServiceDecision,
    limits: Limits,
    correction_held_by: Option<Hold>,
) -> String {
    if let (Some(hold), Some(found)) = (correction_held_by, decision.out_of_bounds) {
        return format!(
            "desired count {found} is above max {}: {hold}",
            limits.bounds.max
        );
    }
    match choice {
        Choice::ScaleInVetoed { by_policy } => {
            format!("scale-in vetoed: {by_policy} wants this service kept at or above its count")
        }
        _ if decision.evaluations.is_empty() => "no policy asks for a change".to_string(),
        _ => decision
            .evaluations
            .iter()
            .map(|e| {
                let held = e.held_by.map_or(String::new(), |h| h.to_string());
                format!("{}: {held}", e.policy)
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The scaler's own metrics for one record: decisions by action, holds by
/// reason, and scale-outs the budget held, by service, for an alarm to page
/// on; and for each predictive policy, the forecast load and capacity now and
/// the actual load of the newest complete period, for the dashboard.
pub fn controller_metrics(record: &DecisionRecord) -> Vec<ControllerMetric> {
    let mut metrics = Vec::new();
    let predictive = |service: &ServiceRef, policy: &str| {
        vec![
            ("Cluster", service.cluster.clone()),
            ("Service", service.service.clone()),
            ("Policy", policy.to_string()),
        ]
    };
    let made = record
        .forecasts_made
        .iter()
        .chain(record.services.iter().flat_map(|d| &d.forecasts_made));
    for made in made {
        if let Some(observed) = &made.observed {
            metrics.push(
                ControllerMetric::new(
                    "ObservedLoad",
                    predictive(&made.service, &made.policy),
                    observed.value,
                )
                .as_of(observed.at),
            );
        }
    }
    for decision in &record.services {
        for forecast in &decision.forecasts {
            let dimensions = predictive(&decision.service, &forecast.policy);
            metrics.push(
                ControllerMetric::new("ForecastLoad", dimensions.clone(), forecast.interval.load)
                    .as_of(forecast.interval.starts_at),
            );
            metrics.push(ControllerMetric::new(
                "ForecastCapacity",
                dimensions,
                f64::from(forecast.capacity),
            ));
        }
    }
    for decision in &record.services {
        metrics.push(ControllerMetric::new(
            "Decisions",
            vec![("Action", variant_name(&decision.action))],
            1.0,
        ));
        if decision.action == Action::Held {
            for hold in decision.evaluations.iter().filter_map(|e| e.held_by) {
                metrics.push(ControllerMetric::new(
                    "Holds",
                    vec![("Reason", variant_name(&hold))],
                    1.0,
                ));
            }
        }
        let budget_held = decision
            .evaluations
            .iter()
            .any(|e| e.held_by == Some(Hold::BudgetCeiling) || e.clamped_by == Some(Clamp::Budget));
        if budget_held {
            metrics.push(ControllerMetric::new(
                "ScaleOutHeldByBudget",
                vec![
                    ("Cluster", decision.service.cluster.clone()),
                    ("Service", decision.service.service.clone()),
                ],
                1.0,
            ));
        }
    }
    summed(metrics)
}
