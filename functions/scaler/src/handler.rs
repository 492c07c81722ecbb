//! Event → domain input → decision → effects → decision record.

use crate::events::{self, AlarmNotice, Invocation, ManualChange, ManualCommand, Trigger};
use chrono::{DateTime, Utc};
use ecs_control::config::ScalerConfig;
use ecs_control::domain::alarm::{
    breach_from_datapoints, breach_from_reason_data, AlarmState, AlarmStatus,
};
use ecs_control::domain::policy::{CapacityBounds, ScalingPolicy, MAGNITUDE_LIMIT};
use ecs_control::domain::scaling::{
    adjusted, clamp, decide, evaluate, trigger_key, Breach, Choice, Clamp, MemoryStatus,
    PolicyEvaluation, ScalingMemory, ServiceState, TAG_VALUE_LIMIT,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::{log_decision, InvocationError};
use ecs_control::ports::{AlarmStates, EcsServices, PortError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What happened to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The desired count was changed.
    Scaled,
    /// A change was decided but not made (dry run).
    WouldScale,
    /// Every policy held, or a scale-in was vetoed.
    Held,
    /// This trigger was already applied to the service.
    Duplicate,
    /// Reading or changing the service failed.
    Failed,
}

/// The decision for one service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDecision {
    pub service: ServiceRef,
    pub seen: Option<ServiceState>,
    /// What the scaler's memory says about the count found.
    pub memory: Option<MemoryStatus>,
    pub alarms_in_alarm: Vec<String>,
    pub evaluations: Vec<PolicyEvaluation>,
    pub choice: Option<Choice>,
    /// The count found, when it was outside the bounds and is brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<u32>,
    /// What else the scaler noticed (another writer, an unapplied change).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub action: Action,
    pub reason: String,
    pub before: Option<u32>,
    pub after: Option<u32>,
    pub calls: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ServiceDecision {
    fn new(service: ServiceRef) -> Self {
        Self {
            service,
            seen: None,
            memory: None,
            alarms_in_alarm: Vec::new(),
            evaluations: Vec::new(),
            choice: None,
            out_of_bounds: None,
            notes: Vec::new(),
            action: Action::Held,
            reason: String::new(),
            before: None,
            after: None,
            calls: Vec::new(),
            error: None,
        }
    }
}

/// Everything one invocation saw, decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub trigger: Trigger,
    pub trigger_key: String,
    pub dry_run: bool,
    pub decided_at: DateTime<Utc>,
    /// Set when the whole trigger was ignored, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub alarms_checked: Vec<AlarmStatus>,
    pub services: Vec<ServiceDecision>,
}

/// The scaler: configuration and ports, built once per cold start.
#[derive(Debug)]
pub struct Scaler<E, A> {
    config: ScalerConfig,
    ecs: E,
    alarms: A,
    /// Shadow mode: decide and record, never change anything.
    always_dry_run: bool,
}

impl<E: EcsServices, A: AlarmStates> Scaler<E, A> {
    pub fn new(config: ScalerConfig, ecs: E, alarms: A, always_dry_run: bool) -> Self {
        Self {
            config,
            ecs,
            alarms,
            always_dry_run,
        }
    }

    /// The ports, for inspection.
    pub fn ports(&self) -> (&E, &A) {
        (&self.ecs, &self.alarms)
    }

    /// Handles one invocation and logs its decision record as one line.
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
        let (record, result) = Box::pin(self.decide_and_apply(invocation, request_id, now)).await;
        log_decision("scaler", &record);
        result.map(|()| record)
    }

    async fn decide_and_apply(
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
            services: Vec::new(),
        };
        let result = match &trigger {
            Trigger::AlarmChange { notices } => {
                self.on_alarm_change(notices, &mut record, now).await
            }
            Trigger::Recheck { .. } => self.on_recheck(&mut record, now).await,
            Trigger::Manual { command } => {
                self.on_manual(command, command_id, &mut record, now).await
            }
        };
        (record, result)
    }

    async fn on_alarm_change(
        &self,
        notices: &[AlarmNotice],
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let mut ignored = Vec::new();
        let mut acting = Vec::new();
        for notice in notices {
            if notice.state != AlarmState::Alarm {
                ignored.push(format!(
                    "alarm {} went to {}: only ALARM acts",
                    notice.alarm,
                    notice.state.as_str()
                ));
            } else if self
                .config
                .policies_for_alarm(&notice.alarm)
                .next()
                .is_none()
            {
                ignored.push(format!("no policy names alarm {}", notice.alarm));
            } else {
                acting.push(notice);
            }
        }
        if acting.is_empty() {
            record.ignored = Some(ignored.join("; "));
            return Ok(());
        }
        let services: BTreeSet<ServiceRef> = acting
            .iter()
            .flat_map(|n| self.config.policies_for_alarm(&n.alarm))
            .map(|p| p.target.clone())
            .collect();
        // Decide from the alarms as they are now, not as the (possibly late) event says.
        let statuses = self.alarm_statuses_for(&services).await?;
        record.alarms_checked = statuses.values().cloned().collect();
        let still_alarming: Vec<&AlarmNotice> = acting
            .into_iter()
            .filter(|n| {
                let current = statuses.get(&n.alarm);
                let fresh = current.is_some_and(|s| s.state == AlarmState::Alarm);
                if !fresh {
                    ignored.push(format!(
                        "alarm {} is no longer in ALARM (now {}): the event is stale",
                        n.alarm,
                        current.map_or("missing", |s| s.state.as_str())
                    ));
                }
                fresh
            })
            .collect();
        if !ignored.is_empty() {
            record.ignored = Some(ignored.join("; "));
        }
        let services: BTreeSet<ServiceRef> = still_alarming
            .iter()
            .flat_map(|n| self.config.policies_for_alarm(&n.alarm))
            .map(|p| p.target.clone())
            .collect();
        let notices: Vec<AlarmNotice> = still_alarming.into_iter().cloned().collect();
        self.act_on_services(services, &statuses, &notices, record, now)
            .await
    }

    async fn on_recheck(
        &self,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let statuses = self.describe(&self.config.alarm_names()).await?;
        record.alarms_checked = statuses.values().cloned().collect();
        let services: BTreeSet<ServiceRef> = self
            .config
            .policies
            .iter()
            .filter(|p| {
                statuses
                    .get(&p.alarm)
                    .is_some_and(|s| s.state == AlarmState::Alarm)
            })
            .map(|p| p.target.clone())
            .collect();
        if services.is_empty() {
            record.ignored = Some("no alarm named by a policy is in ALARM".into());
            return Ok(());
        }
        self.act_on_services(services, &statuses, &[], record, now)
            .await
    }

    async fn alarm_statuses_for(
        &self,
        services: &BTreeSet<ServiceRef>,
    ) -> Result<BTreeMap<String, AlarmStatus>, InvocationError> {
        let mut names: Vec<String> = services
            .iter()
            .flat_map(|s| self.config.policies_for_service(s))
            .map(|p| p.alarm.clone())
            .collect();
        names.sort();
        names.dedup();
        self.describe(&names).await
    }

    async fn describe(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmStatus>, InvocationError> {
        let found = self.alarms.describe_alarms(names).await?;
        Ok(found.into_iter().map(|s| (s.name.clone(), s)).collect())
    }

    /// Decides and acts for each service; one service's failure does not stop
    /// the others, and a retry of the same trigger skips those already applied.
    async fn act_on_services(
        &self,
        services: BTreeSet<ServiceRef>,
        statuses: &BTreeMap<String, AlarmStatus>,
        notices: &[AlarmNotice],
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let total = services.len();
        let mut failures = Vec::new();
        for service in services {
            let mut decision = ServiceDecision::new(service.clone());
            if let Err(e) = self
                .act_on_service(&service, statuses, notices, record, &mut decision, now)
                .await
            {
                decision.action = Action::Failed;
                decision.error = Some(e.to_string());
                failures.push(e);
            }
            record.services.push(decision);
        }
        InvocationError::from_failures(failures, total, "services")
    }

    fn bounds(&self, service: &ServiceRef) -> Result<CapacityBounds, InvocationError> {
        self.config.bounds_for_service(service).ok_or_else(|| {
            InvocationError::RejectedCommand(format!(
                "no policy resizes {service}: the scaler only changes services it is configured for"
            ))
        })
    }

    /// Reads the service and sorts out its memory: completes a change this same
    /// trigger recorded but never applied, and notes another writer's change.
    /// Returns the state to decide from, or `None` when the trigger is done.
    async fn read_service(
        &self,
        service: &ServiceRef,
        bounds: CapacityBounds,
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
    ) -> Result<Option<ServiceState>, PortError> {
        decision.calls.push("ecs:DescribeServices");
        let state = self.ecs.describe_service(service).await?;
        decision.before = Some(state.desired_count);
        decision.after = Some(state.desired_count);
        decision.seen = Some(state.clone());
        let status = state.memory.status(state.desired_count);
        decision.memory = Some(status.clone());
        match &status {
            MemoryStatus::Unapplied { target, trigger }
                if trigger.as_deref() == Some(record.trigger_key.as_str()) =>
            {
                let target = bounds.clamp(i64::from(*target));
                decision.reason = format!(
                    "completing the change to {target} this trigger recorded but never applied"
                );
                decision.after = Some(target);
                let memory = state.memory.clone().with_applied(false);
                self.apply(service, &state, target, &memory, record.dry_run, decision)
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
        let memory = state.memory.effective(&status);
        Ok(Some(ServiceState { memory, ..state }))
    }

    async fn act_on_service(
        &self,
        service: &ServiceRef,
        statuses: &BTreeMap<String, AlarmStatus>,
        notices: &[AlarmNotice],
        record: &DecisionRecord,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let Some(bounds) = self.config.bounds_for_service(service) else {
            return Ok(());
        };
        let Some(state) = self.read_service(service, bounds, record, decision).await? else {
            return Ok(());
        };
        let unapplied = matches!(decision.memory, Some(MemoryStatus::Unapplied { .. }));
        // Each delivery of one alarm state change acts at most once, however late:
        // the service remembers, per alarm, the newest change a scaling answered.
        let relevant: Vec<&AlarmNotice> = notices
            .iter()
            .filter(|n| {
                self.config
                    .policies_for_service(service)
                    .any(|p| p.alarm == n.alarm)
            })
            .collect();
        if !unapplied
            && !relevant.is_empty()
            && relevant
                .iter()
                .all(|n| state.memory.answered(&n.alarm, n.state_changed_at))
        {
            decision.action = Action::Duplicate;
            decision.reason =
                "this alarm state change was already answered by a change of this service".into();
            return Ok(());
        }
        let mut answered = Vec::new();
        for policy in self.config.policies_for_service(service) {
            let Some(status) = statuses
                .get(&policy.alarm)
                .filter(|s| s.state == AlarmState::Alarm)
            else {
                continue;
            };
            decision.alarms_in_alarm.push(policy.alarm.clone());
            let changed_at = relevant
                .iter()
                .filter(|n| n.alarm == policy.alarm)
                .map(|n| n.state_changed_at)
                .chain(status.state_transitioned_at)
                .max();
            answered.extend(changed_at.map(|at| (policy.alarm.as_str(), at)));
            let (breach, note) = self.breach(policy, status, now, decision).await;
            let looks_below = status
                .metric
                .as_ref()
                .is_some_and(|m| m.comparison.looks_below());
            let mut evaluation = evaluate(policy, breach, looks_below, &state, now);
            evaluation.breach_note = note;
            decision.evaluations.push(evaluation);
        }
        let outcome = decide(&decision.evaluations, state.desired_count, bounds);
        decision.choice = Some(outcome.choice.clone());
        decision.out_of_bounds = outcome.out_of_bounds;
        let Some(target) = outcome.target else {
            decision.reason = match &outcome.choice {
                Choice::ScaleInVetoed { by_alarm } => format!(
                    "scale-in vetoed: alarm {by_alarm} wants this service kept at or above its count"
                ),
                _ => decision
                    .evaluations
                    .iter()
                    .map(|e| {
                        let held = e.held_by.map_or(String::new(), |h| h.to_string());
                        format!("{}: {held}", e.alarm)
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            return Ok(());
        };
        let chosen = match outcome.choice {
            Choice::Apply { index } => decision.evaluations.get(index),
            _ => None,
        };
        let memory = match chosen {
            Some(chosen) => {
                decision.reason = format!("{}: {}", chosen.alarm, chosen.rule);
                state
                    .memory
                    .after(chosen, state.desired_count, &record.trigger_key, now)
            }
            None => {
                state
                    .memory
                    .after_manual(state.desired_count, target, &record.trigger_key, now)
            }
        };
        if let Some(found) = outcome.out_of_bounds {
            let note = format!(
                "desired count {found} was outside [{}, {}]: brought to {target}",
                bounds.min, bounds.max
            );
            decision.reason = if decision.reason.is_empty() {
                note
            } else {
                format!("{}; {note}", decision.reason)
            };
        }
        decision.after = Some(target);
        let memory = memory.with_marks(answered);
        self.apply(service, &state, target, &memory, record.dry_run, decision)
            .await
    }

    /// The breach that picks the step: the alarm's metric read now, combined as
    /// the policy says; the alarm's reason data only when that read fails.
    async fn breach(
        &self,
        policy: &ScalingPolicy,
        status: &AlarmStatus,
        now: DateTime<Utc>,
        decision: &mut ServiceDecision,
    ) -> (Breach, Option<String>) {
        let fallback = || breach_from_reason_data(status.reason_data.as_deref());
        let Some(metric) = &status.metric else {
            return (fallback(), None);
        };
        let (start, end) = metric.window(now);
        decision.calls.push("cloudwatch:GetMetricData");
        let note = match self.alarms.metric_values(metric, start, end).await {
            Ok(values) => {
                match breach_from_datapoints(&values, policy.metric_aggregation, metric.threshold) {
                    Some(breach) => return (breach, None),
                    None => "the alarm's metric has no datapoints in its window".to_string(),
                }
            }
            Err(e) => format!("reading the alarm's metric failed: {e}"),
        };
        (
            fallback(),
            Some(format!("{note}; used the alarm's reason data")),
        )
    }

    /// Records the change, makes it, then marks it applied: a failure between
    /// the first two leaves a change a retry of the same trigger completes, and
    /// that any other trigger knows never happened.
    async fn apply(
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
        decision.calls.push("ecs:TagResource");
        if let Err(e) = self
            .ecs
            .remember(&state.arn, &memory.clone().with_applied(true))
            .await
        {
            // The count is set; the next reader sees it equals the recorded target.
            decision
                .notes
                .push(format!("the change is made but not marked applied: {e}"));
        }
        Ok(())
    }

    async fn on_manual(
        &self,
        command: &ManualCommand,
        request_id: &str,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let service = command.service_ref();
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
        let outcome = async {
            let Some(state) = self
                .read_service(&service, bounds, record, &mut decision)
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
            };
            let (target, clamped_by) = clamp(&bounds, proposed);
            let why = command.reason.as_deref().unwrap_or("no reason given");
            decision.reason = match clamped_by {
                Some(Clamp::MaxCapacity) => format!(
                    "manual ({why}): {proposed} asked, held to max_capacity {}",
                    bounds.max
                ),
                Some(Clamp::MinCapacity) => format!(
                    "manual ({why}): {proposed} asked, held to min_capacity {}",
                    bounds.min
                ),
                None => format!("manual ({why}): {proposed} asked"),
            };
            if target == state.desired_count {
                decision
                    .reason
                    .push_str("; the desired count already equals it");
                return Ok(());
            }
            decision.after = Some(target);
            let memory = state
                .memory
                .after_manual(state.desired_count, target, &record.trigger_key, now)
                .with_command(request_id);
            self.apply(
                &service,
                &state,
                target,
                &memory,
                record.dry_run,
                &mut decision,
            )
            .await
        }
        .await;
        if let Err(e) = &outcome {
            decision.action = Action::Failed;
            decision.error = Some(e.to_string());
        }
        record.services.push(decision);
        outcome.map_err(InvocationError::Aws)
    }
}
