//! Event → tasks and targets as they are now → diff → calls → decision record.

use crate::events::{self, Invocation, TaskEvent, Trigger};
use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::batch::{self, Answer, QueuedMessage};
use ecs_control::config::registrar::TargetGroupBinding;
use ecs_control::config::{ConfigError, RegistrarConfig};
use ecs_control::domain::registration::{
    action_for, cap_deregistrations, diff, foreign_task, health_concerns, HealthConcern,
    RegisteredTarget, ServiceTasks, Target, TargetDiff, TaskAction, TaskInfo, TARGETS_PER_CALL,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::{log_decision, ControllerMetric, InvocationError};
use ecs_control::ports::{EcsTasks, FailureKind, PortError, TargetGroupCatalog, TargetGroups};
use futures::{stream, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How many independent reads or writes of one kind go out at once: ECS and
/// ELB throttle bursts, and 4 in flight already hides most of each call's wait.
pub(crate) const CALLS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Copy)]
enum Change {
    Register,
    Deregister,
}

impl Change {
    fn operation(self) -> &'static str {
        match self {
            Change::Register => "elasticloadbalancing:RegisterTargets",
            Change::Deregister => "elasticloadbalancing:DeregisterTargets",
        }
    }
}

/// One Register/DeregisterTargets call and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub operation: &'static str,
    /// How many targets the call carried (a bounded record names fewer).
    pub count: usize,
    pub targets: Vec<Target>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Refused whole, then sent again in two halves.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
}

/// A target ELBv2 refused on its own (`InvalidTarget`, a target the group
/// does not take): its peers were registered without it.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub target: Target,
    pub error: String,
}

/// Calls one group's registration may spend isolating refused targets: two
/// refused targets in a batch of 200 take about 32.
const SPLIT_CALLS: usize = 40;

/// RegisterTargets' errors about a target, not the call (RegisterTargets in
/// the ELBv2 API reference; `ValidationError` for an address it does not take).
const TARGET_ERRORS: [&str; 3] = [
    "InvalidTarget",
    "ValidationError",
    "TooManyRegistrationsForTargetId",
];

fn refuses_a_target(e: &PortError) -> bool {
    e.kind == FailureKind::Rejected && TARGET_ERRORS.iter().any(|code| e.message.contains(code))
}

/// What was seen, decided and done for one target group and port.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDecision {
    pub target_group_arn: String,
    pub port: u16,
    pub services: Vec<ServiceRef>,
    /// Running tasks with an IP that belong in this group.
    pub running: usize,
    /// Running tasks the scaler is draining ahead of a scale-in: held out
    /// of the group until their drain ends or its bound passes.
    #[serde(skip_serializing_if = "is_zero")]
    pub held_for_drain: usize,
    /// Targets registered before any change, by state.
    pub seen: BTreeMap<&'static str, usize>,
    pub diff: TargetDiff,
    /// Stale targets not deregistered in this run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub calls: Vec<Call>,
    pub health_concerns: Vec<HealthConcern>,
    /// Targets ELBv2 refused, each isolated from its batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refused>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long each list is, in a record bounded for the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<GroupCounts>,
}

/// A service whose tasks could not be read; its groups were not deregistered from.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedService {
    pub service: ServiceRef,
    pub error: String,
}

/// The task an event was about, as the event said and as ECS says now.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDecision {
    pub service: ServiceRef,
    pub from_event: TaskInfo,
    pub from_ecs: Option<TaskInfo>,
    pub action: TaskAction,
    /// Why it was not acted on as its event asked, or how its events were merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything one invocation saw, decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrarRecord {
    pub trigger: Trigger,
    pub dry_run: bool,
    pub decided_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskDecision>,
    /// The tasks of a queue batch's run of task events, each at its newest state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskDecision>,
    /// Tasks left out of `tasks` to keep the record small.
    #[serde(skip_serializing_if = "is_zero")]
    pub tasks_not_named: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_services: Vec<SkippedService>,
    /// Services ECS no longer has: none of their tasks runs, so their
    /// targets are deregistered (within the cap), and no retry is asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_services: Vec<SkippedService>,
    pub groups: Vec<GroupDecision>,
    /// Targets left out of the lists to keep the record small (see
    /// [`RegistrarRecord::bounded`]); each group's `counts` has them all.
    #[serde(skip_serializing_if = "is_zero")]
    pub targets_not_named: usize,
    /// Why the work stopped before it was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_reached: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The most targets a logged or returned record names: CloudWatch Logs caps
/// one event at 256 KB, and a fleet's reconcile touches thousands. Counts
/// cover everything; names go to refusals and removals first.
pub const TARGETS_NAMED: usize = 200;

/// The most tasks a record of a run of task events lists (a FIFO batch has
/// ten; a hand-made batch may have more).
pub const TASKS_NAMED: usize = 100;

/// How many targets each list of a group holds, whatever the record names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    pub register: usize,
    pub deregister: usize,
    pub wait_for_drain: usize,
    pub held_back: usize,
    pub refused: usize,
    pub health_concerns: usize,
    pub calls: usize,
    pub failed_calls: usize,
}

impl RegistrarRecord {
    /// A record of `trigger` with nothing seen or done yet.
    fn new(trigger: Trigger, dry_run: bool, decided_at: DateTime<Utc>) -> Self {
        Self {
            trigger,
            dry_run,
            decided_at,
            ignored: None,
            task: None,
            tasks: Vec::new(),
            tasks_not_named: 0,
            skipped_services: Vec::new(),
            deleted_services: Vec::new(),
            groups: Vec::new(),
            targets_not_named: 0,
            deadline_reached: None,
        }
    }

    /// The record as logged and returned: every count, and at most
    /// [`TARGETS_NAMED`] targets named, taken in order of concern (refused,
    /// held back, deregistered, registered, waiting, unhealthy, then the
    /// calls' own lists, which repeat the diff).
    pub fn bounded(&self) -> RegistrarRecord {
        let mut record = self.clone();
        record.tasks_not_named += record.tasks.len().saturating_sub(TASKS_NAMED);
        record.tasks.truncate(TASKS_NAMED);
        let mut left = TARGETS_NAMED;
        for group in &mut record.groups {
            group.counts = Some(GroupCounts {
                register: group.diff.register.len(),
                deregister: group.diff.deregister.len(),
                wait_for_drain: group.diff.wait_for_drain.len(),
                held_back: group.held_back.len(),
                refused: group.refused.len(),
                health_concerns: group.health_concerns.len(),
                calls: group.calls.len(),
                failed_calls: group.calls.iter().filter(|c| !c.ok && !c.split).count(),
            });
        }
        for pass in 0..7 {
            for group in &mut record.groups {
                match pass {
                    0 => keep_first(&mut group.refused, &mut left),
                    1 => keep_first(&mut group.held_back, &mut left),
                    2 => keep_first(&mut group.diff.deregister, &mut left),
                    3 => keep_first(&mut group.diff.register, &mut left),
                    4 => keep_first(&mut group.diff.wait_for_drain, &mut left),
                    5 => keep_first(&mut group.health_concerns, &mut left),
                    _ => group
                        .calls
                        .iter_mut()
                        .for_each(|c| keep_first(&mut c.targets, &mut left)),
                }
            }
        }
        let named = |r: &RegistrarRecord| -> usize {
            r.groups
                .iter()
                .map(|g| {
                    g.refused.len()
                        + g.held_back.len()
                        + g.diff.register.len()
                        + g.diff.deregister.len()
                        + g.diff.wait_for_drain.len()
                        + g.health_concerns.len()
                        + g.calls.iter().map(|c| c.targets.len()).sum::<usize>()
                })
                .sum()
        };
        record.targets_not_named = named(self) - named(&record);
        record
    }
}

/// How long before the Lambda timeout work stops: enough to log the record
/// and answer, with calls cut off mid-flight.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// When work must stop for an invocation whose Lambda deadline is `deadline`
/// (the runtime's `Lambda-Runtime-Deadline-Ms`), read at `now`: the margin
/// before it, or half the time left when that is shorter. `None` for a
/// deadline already past, which Lambda never hands out: a local runtime's
/// stand-in (cargo-lambda sends 600000, ten minutes after the epoch).
pub fn stop_at(deadline: SystemTime, now: SystemTime) -> Option<Instant> {
    let left = deadline.duration_since(now).ok()?;
    Some(Instant::now() + left - DEADLINE_MARGIN.min(left / 2))
}

/// Why work stopped at the deadline.
fn deadline_note() -> String {
    format!(
        "stopped {} s before the Lambda timeout with work unfinished; a retry reads the \
         targets again and does what is left",
        DEADLINE_MARGIN.as_secs()
    )
}

/// The retryable failure of work stopped at the deadline.
fn deadline_failure(why: &str) -> InvocationError {
    InvocationError::PartialFailure {
        failed: 1,
        total: 1,
        unit: "invocations",
        retryable: true,
        detail: why.to_string(),
    }
}

/// Keeps the first `left` of `list`, and counts them off.
fn keep_first<T>(list: &mut Vec<T>, left: &mut usize) {
    let keep = list.len().min(*left);
    *left -= keep;
    list.truncate(keep);
}

/// The registrar: configuration and ports, built once per cold start.
#[derive(Debug)]
pub struct Registrar<T, G> {
    pub(crate) config: RegistrarConfig,
    pub(crate) ecs: T,
    pub(crate) elb: G,
    always_dry_run: bool,
}

/// A target group and port fed by one or more services.
#[derive(Debug)]
struct GroupPlan {
    binding: TargetGroupBinding,
    services: Vec<ServiceRef>,
    running_ips: BTreeSet<String>,
    held_for_drain: usize,
    started_at: BTreeMap<String, DateTime<Utc>>,
    /// Why the running set is not fully known, when it is not.
    incomplete: Vec<String>,
}

impl<T: EcsTasks, G: TargetGroups> Registrar<T, G> {
    pub fn new(config: RegistrarConfig, ecs: T, elb: G, always_dry_run: bool) -> Self {
        Self {
            config,
            ecs,
            elb,
            always_dry_run,
        }
    }

    /// The ports, for inspection.
    pub fn ports(&self) -> (&T, &G) {
        (&self.ecs, &self.elb)
    }

    /// Checks the bindings against the target groups ELBv2 has (see
    /// [`crate::cold_start`]).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the binding that disagrees with its target group.
    pub async fn verify_configuration(&self) -> Result<(), ConfigError>
    where
        G: TargetGroupCatalog,
    {
        crate::cold_start::verify(&self.config, &self.elb).await
    }

    /// Handles one invocation: a payload [`Self::handle`] takes, answered with
    /// its decision record, or an SQS batch of them, each message handled in
    /// turn, answered with the partial batch response (the rules are in
    /// [`ecs_control::batch`]). `clock` is read as each message starts.
    ///
    /// # Errors
    /// A direct payload's [`InvocationError`]; a batch's failures are in its response.
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
        clock: impl Fn() -> DateTime<Utc>,
    ) -> Result<Answer<RegistrarRecord>, InvocationError> {
        self.invoke_before(payload, clock, None).await
    }

    /// [`Self::invoke`], stopping work at `deadline` (see [`stop_at`]): the
    /// message at work then fails retryably, so it and the rest of its batch
    /// come back, and its record is logged.
    ///
    /// # Errors
    /// A direct payload's [`InvocationError`]; a batch's failures are in its response.
    pub async fn invoke_before(
        &self,
        payload: serde_json::Value,
        clock: impl Fn() -> DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<Answer<RegistrarRecord>, InvocationError> {
        let clock = &clock;
        let Some(records) = batch::records(&payload) else {
            return self
                .handle_before(payload, clock(), deadline)
                .await
                .map(|record| Answer::Direct(record.bounded()));
        };
        // Consecutive task events are handled together; anything else alone.
        let answer = batch::walk_runs(
            records,
            |message| self.acting_task_event(&message.body).is_some(),
            |run: Vec<QueuedMessage>| async move {
                let events: Vec<TaskEvent> = run
                    .iter()
                    .filter_map(|m| self.acting_task_event(&m.body))
                    .collect();
                if events.len() == run.len() {
                    self.handle_task_run(events, clock(), deadline).await
                } else {
                    let mut answers = Vec::new();
                    for message in run {
                        let handled = self.handle_before(message.body, clock(), deadline).await;
                        answers.push(handled.map(drop));
                    }
                    answers
                }
            },
        )
        .await;
        Ok(Answer::Batch(answer))
    }

    /// Handles one payload (an invocation's, or a queued message's body) and
    /// logs its decision record as one line.
    ///
    /// # Errors
    /// Malformed events and AWS failures, as [`InvocationError`]; the record is logged even then.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<RegistrarRecord, InvocationError> {
        self.handle_before(payload, now, None).await
    }

    /// [`Self::handle`], stopping work at `deadline`: what was done by then
    /// is in the record, which is logged, and the rest fails retryably.
    ///
    /// # Errors
    /// As [`Self::handle`], and a retryable failure when the deadline came first.
    pub async fn handle_before(
        &self,
        payload: serde_json::Value,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<RegistrarRecord, InvocationError> {
        let Invocation { trigger, dry_run } = events::parse(payload).inspect_err(|e| {
            tracing::error!(error = %e, "malformed event");
        })?;
        let mut record = RegistrarRecord::new(trigger.clone(), dry_run || self.always_dry_run, now);
        let work = async {
            match trigger {
                Trigger::TaskChange {
                    cluster,
                    service,
                    task,
                } => {
                    Box::pin(self.on_task_change(&cluster, service.as_deref(), *task, &mut record))
                        .await
                }
                Trigger::Reconcile {
                    services, force, ..
                } => Box::pin(self.reconcile(services.as_deref(), force, &mut record, now)).await,
                // Made only for a batch's run, never parsed from a payload.
                Trigger::TaskChanges { .. } => Ok(()),
            }
        };
        let result = match deadline {
            None => work.await,
            Some(deadline) => {
                // Work still in flight at the deadline is dropped; the record
                // keeps what finished before.
                let outcome = tokio::time::timeout_at(deadline, work).await;
                outcome.unwrap_or_else(|_| {
                    let why = deadline_note();
                    record.deadline_reached = Some(why.clone());
                    Err(deadline_failure(&why))
                })
            }
        };
        log_decision(
            "registrar",
            &record.bounded(),
            &controller_metrics(&record),
            now,
        );
        result.map(|()| record)
    }

    async fn on_task_change(
        &self,
        cluster: &str,
        service: Option<&str>,
        task: TaskInfo,
        record: &mut RegistrarRecord,
    ) -> Result<(), InvocationError> {
        let Some(service) = service else {
            record.ignored = Some("the task is not part of a service".into());
            return Ok(());
        };
        let service = ServiceRef::new(cluster, service);
        let Some(binding) = self.config.binding(&service) else {
            record.ignored = Some(format!("service {service} is not configured"));
            return Ok(());
        };
        // A same-named cluster and service elsewhere (an event bus shared
        // across accounts or regions) is not the configured one.
        let groups = binding
            .target_groups
            .iter()
            .map(|g| g.target_group_arn.as_str());
        if let Some(why) = foreign_task(&task.task_arn, groups) {
            record.ignored = Some(why);
            return Ok(());
        }
        if let TaskAction::Wait(why) = action_for(&task) {
            record.ignored = Some(why.clone());
            record.task = Some(TaskDecision {
                service,
                from_event: task,
                from_ecs: None,
                action: TaskAction::Wait(why),
                note: None,
            });
            return Ok(());
        }
        let event = TaskEvent {
            cluster: cluster.to_string(),
            service,
            task,
        };
        let answer = self
            .on_task_events(std::slice::from_ref(&event), record)
            .await
            .pop()
            .unwrap_or(Ok(()));
        record.task = record.tasks.pop();
        if let Some(note) = record.task.as_ref().and_then(|t| t.note.clone()) {
            record.ignored = Some(note);
        }
        answer
    }

    /// A queue batch's run of task events (see [`crate::task_changes`]),
    /// with one record for the run, logged; each event's answer, in order.
    async fn handle_task_run(
        &self,
        run: Vec<TaskEvent>,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Vec<Result<(), InvocationError>> {
        let tasks: BTreeSet<&str> = run.iter().map(|e| e.task.task_arn.as_str()).collect();
        let trigger = Trigger::TaskChanges {
            events: run.len(),
            tasks: tasks.len(),
        };
        let mut record = RegistrarRecord::new(trigger, self.always_dry_run, now);
        let work = self.on_task_events(&run, &mut record);
        let answers = match deadline {
            None => work.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, work).await {
                Ok(answers) => answers,
                Err(_) => {
                    let why = deadline_note();
                    record.deadline_reached = Some(why.clone());
                    run.iter().map(|_| Err(deadline_failure(&why))).collect()
                }
            },
        };
        log_decision(
            "registrar",
            &record.bounded(),
            &controller_metrics(&record),
            now,
        );
        answers
    }

    /// Registers first (capacity before removal), in batches; a failed batch
    /// does not stop the others and is reported with its targets. A target
    /// ELBv2 refuses is isolated (see [`Self::send`]); its peers register.
    pub(crate) async fn apply(
        &self,
        group: &TargetGroupBinding,
        dry_run: bool,
        decision: &mut GroupDecision,
    ) -> Result<(), PortError> {
        if dry_run {
            return Ok(());
        }
        let mut first_failure = None;
        for (change, targets) in [
            (Change::Register, &decision.diff.register),
            (Change::Deregister, &decision.diff.deregister),
        ] {
            // A change's batches go out together, within the bound, and are
            // reported in order; every registration is sent before any removal.
            let results: Vec<_> = stream::iter(targets.chunks(TARGETS_PER_CALL))
                .map(|batch| self.send(change, group, batch))
                .buffered(CALLS_IN_FLIGHT)
                .collect()
                .await;
            for (batch, result, split) in results.into_iter().flatten() {
                decision.calls.push(Call {
                    operation: change.operation(),
                    count: batch.len(),
                    targets: batch.clone(),
                    ok: result.is_ok(),
                    error: result.as_ref().err().map(ToString::to_string),
                    split,
                });
                match result {
                    Ok(()) => {}
                    // Its halves were sent on their own.
                    Err(_) if split => {}
                    Err(e) if e.kind == FailureKind::Rejected && batch.len() == 1 => {
                        decision
                            .refused
                            .extend(batch.into_iter().map(|target| Refused {
                                target,
                                error: e.to_string(),
                            }));
                    }
                    Err(mut e) => {
                        e.message = format!(
                            "{} targets not changed ({}): {}",
                            batch.len(),
                            describe_targets(&batch),
                            e.message
                        );
                        first_failure.get_or_insert(e);
                    }
                }
            }
        }
        if first_failure.is_none() && !decision.refused.is_empty() {
            // Refused again on every try: a retry cannot help.
            first_failure = Some(PortError::new(
                FailureKind::Rejected,
                Change::Register.operation(),
                format!(
                    "ELBv2 refused {} target(s) ({}), the rest were registered: {}",
                    decision.refused.len(),
                    describe_targets(
                        &decision
                            .refused
                            .iter()
                            .map(|r| r.target.clone())
                            .collect::<Vec<_>>()
                    ),
                    decision.refused[0].error
                ),
            ));
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// One batch, as one call. A RegisterTargets batch ELBv2 refuses whole
    /// (one `InvalidTarget` fails every target of the call) is split in two and
    /// each half sent again, until the refused targets stand alone; at most
    /// [`SPLIT_CALLS`] calls go to that, the rest is reported as refused whole.
    /// Returns each call: its targets, its result, and whether it was split.
    async fn send(
        &self,
        change: Change,
        group: &TargetGroupBinding,
        batch: &[Target],
    ) -> Vec<(Vec<Target>, Result<(), PortError>, bool)> {
        let arn = &group.target_group_arn;
        let mut calls = Vec::new();
        let mut splits = 0;
        let mut pending = vec![batch.to_vec()];
        while let Some(part) = pending.pop() {
            let result = match change {
                Change::Register => self.elb.register(arn, &part, group.outside_vpc).await,
                Change::Deregister => self.elb.deregister(arn, &part, group.outside_vpc).await,
            };
            let refused_whole = matches!(change, Change::Register)
                && part.len() > 1
                && splits < SPLIT_CALLS
                && result.as_ref().is_err_and(refuses_a_target);
            if refused_whole {
                splits += 2;
                let (first, second) = part.split_at(part.len() / 2);
                // Popped first half first: calls stay in target order.
                pending.push(second.to_vec());
                pending.push(first.to_vec());
            }
            calls.push((part, result, refused_whole));
        }
        calls
    }

    async fn reconcile(
        &self,
        only: Option<&[ServiceRef]>,
        force: bool,
        record: &mut RegistrarRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        if let Some(unknown) = only
            .unwrap_or_default()
            .iter()
            .find(|s| self.config.binding(s).is_none())
        {
            return Err(InvocationError::RejectedCommand(format!(
                "service {unknown} is not configured"
            )));
        }
        // The groups the named services feed (or every group); each is planned
        // from every service bound to it, named or not.
        let keys: BTreeSet<(String, u16)> = self
            .config
            .services
            .iter()
            .filter(|b| only.is_none_or(|list| list.contains(&b.service)))
            .flat_map(|b| &b.target_groups)
            .map(|g| (g.target_group_arn.clone(), g.port))
            .collect();
        let services: BTreeSet<ServiceRef> = keys
            .iter()
            .flat_map(|(arn, port)| self.config.services_bound_to(arn, *port))
            .map(|b| b.service.clone())
            .collect();

        // The services are read together, within the bound; one that cannot be
        // read does not stop the others.
        let reads: Vec<_> = stream::iter(&services)
            .map(|service| async move { (service, self.ecs.service_tasks(service).await) })
            .buffered(CALLS_IN_FLIGHT)
            .collect()
            .await;
        let mut failures = Vec::new();
        let mut known = BTreeMap::new();
        for (service, read) in reads {
            match read {
                Ok(tasks) => {
                    known.insert(service.clone(), tasks);
                }
                // ECS says the service is gone (ServiceNotFoundException, or
                // no longer ACTIVE): no task of it runs, so its targets are
                // stale and leave, within the cap on deregistrations. A retry
                // would read the same; the document should drop it.
                Err(e) if e.kind == FailureKind::NotFound => {
                    record.deleted_services.push(SkippedService {
                        service: service.clone(),
                        error: e.to_string(),
                    });
                    known.insert(service.clone(), ServiceTasks::default());
                    failures.push(PortError {
                        message: format!(
                            "service {service} is deleted ({}); its targets are deregistered, \
                             and it should be removed from the registrar document",
                            e.message
                        ),
                        ..e
                    });
                }
                Err(e) => {
                    record.skipped_services.push(SkippedService {
                        service: service.clone(),
                        error: e.to_string(),
                    });
                    // Skipped work is retried, whatever the cause.
                    failures.push(PortError {
                        kind: FailureKind::Retryable,
                        ..e
                    });
                }
            }
        }

        let grace = TimeDelta::seconds(i64::from(self.config.initial_grace_seconds));
        let total = services.len() + keys.len();
        for (arn, port) in keys {
            let Some(plan) = self.plan(&arn, port, &known, &record.skipped_services, now) else {
                continue;
            };
            let group = plan.binding.clone();
            let mut decision = GroupDecision::new(&group, plan.services.clone());
            decision.running = plan.running_ips.len();
            decision.held_for_drain = plan.held_for_drain;
            let outcome = async {
                let current = self.elb.targets(&group.target_group_arn).await?;
                decision.seen = count_states(&current, group.port);
                decision.diff = diff(group.port, &plan.running_ips, &current);
                decision.health_concerns =
                    health_concerns(&current, group.port, &plan.started_at, now, grace);
                if !plan.incomplete.is_empty() {
                    decision.held_back = std::mem::take(&mut decision.diff.deregister);
                    decision.note = Some(format!(
                        "nothing deregistered: the running tasks are not fully known ({})",
                        plan.incomplete.join("; ")
                    ));
                } else if !force {
                    decision.held_back =
                        cap_deregistrations(&mut decision.diff, self.config.max_deregister_share);
                    if !decision.held_back.is_empty() {
                        decision.note = Some(format!(
                            "held back {} deregistrations: one run removes at most {}% of the \
                             group's owned targets; a manual reconcile with \"force\": true lifts this",
                            decision.held_back.len(),
                            self.config.max_deregister_share * 100.0
                        ));
                    }
                }
                self.apply(&group, record.dry_run, &mut decision).await
            }
            .await;
            if let Err(e) = outcome {
                decision.error = Some(e.to_string());
                failures.push(e);
            }
            record.groups.push(decision);
        }
        InvocationError::from_failures(failures, total, "services and target groups")
    }

    /// What one target group and port should hold: the running tasks of every
    /// service bound to it, and whether that set is fully known.
    fn plan(
        &self,
        arn: &str,
        port: u16,
        known: &BTreeMap<ServiceRef, ServiceTasks>,
        skipped: &[SkippedService],
        now: DateTime<Utc>,
    ) -> Option<GroupPlan> {
        let bound = self.config.services_bound_to(arn, port);
        let binding = bound
            .first()?
            .target_groups
            .iter()
            .find(|g| g.target_group_arn == arn && g.port == port)?
            .clone();
        let mut plan = GroupPlan {
            services: bound.iter().map(|b| b.service.clone()).collect(),
            running_ips: BTreeSet::new(),
            held_for_drain: 0,
            started_at: BTreeMap::new(),
            incomplete: Vec::new(),
            binding,
        };
        for service in &plan.services {
            let Some(tasks) = known.get(service) else {
                if let Some(skip) = skipped.iter().find(|s| &s.service == service) {
                    plan.incomplete
                        .push(format!("{service} could not be read: {}", skip.error));
                }
                continue;
            };
            if !tasks.missing.is_empty() {
                plan.incomplete.push(format!(
                    "{} listed task(s) of {service} were missing from DescribeTasks",
                    tasks.missing.len()
                ));
            }
            for task in &tasks.tasks {
                let address = task.address(plan.binding.address_family);
                if let (TaskAction::Register, Some(ip)) = (action_for(task), address) {
                    if task.held_for_drain(now) {
                        plan.held_for_drain += 1;
                        continue;
                    }
                    plan.running_ips.insert(ip.to_string());
                    if let Some(started) = task.started_at {
                        plan.started_at.insert(ip.to_string(), started);
                    }
                }
            }
        }
        Some(plan)
    }
}

impl GroupDecision {
    pub(crate) fn new(group: &TargetGroupBinding, services: Vec<ServiceRef>) -> Self {
        Self {
            target_group_arn: group.target_group_arn.clone(),
            port: group.port,
            services,
            running: 0,
            held_for_drain: 0,
            seen: BTreeMap::new(),
            diff: TargetDiff::default(),
            held_back: Vec::new(),
            note: None,
            calls: Vec::new(),
            health_concerns: Vec::new(),
            refused: Vec::new(),
            error: None,
            counts: None,
        }
    }
}

pub(crate) fn count_states(
    current: &[RegisteredTarget],
    port: u16,
) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for registered in current {
        let key = if registered.target.port == port {
            registered.state.as_str()
        } else {
            "other_port"
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// `10.0.0.1:8080, 10.0.0.2:8080, ... and 198 more`: enough to find them in the record.
fn describe_targets(targets: &[Target]) -> String {
    const SHOWN: usize = 3;
    let mut text = targets
        .iter()
        .take(SHOWN)
        .map(|t| format!("{}:{}", t.ip, t.port))
        .collect::<Vec<_>>()
        .join(", ");
    if targets.len() > SHOWN {
        text.push_str(&format!(" and {} more", targets.len() - SHOWN));
    }
    text
}

/// The registrar's own metrics for one record: targets registered and
/// deregistered, calls that failed, targets held back by the safety rail, and
/// services skipped. Zeros too, so a dashboard shows the registrar ran.
pub fn controller_metrics(record: &RegistrarRecord) -> Vec<ControllerMetric> {
    let calls = || record.groups.iter().flat_map(|g| &g.calls);
    let targets = |operation: Change| {
        calls()
            .filter(|c| c.ok && c.operation == operation.operation())
            .map(|c| c.targets.len())
            .sum::<usize>()
    };
    let count = |n: usize| n as f64;
    vec![
        ControllerMetric::new("Registrations", vec![], count(targets(Change::Register))),
        ControllerMetric::new(
            "Deregistrations",
            vec![],
            count(targets(Change::Deregister)),
        ),
        ControllerMetric::new(
            "FailedCalls",
            vec![],
            count(calls().filter(|c| !c.ok && !c.split).count()),
        ),
        ControllerMetric::new(
            "HeldBackTargets",
            vec![],
            count(record.groups.iter().map(|g| g.held_back.len()).sum()),
        ),
        ControllerMetric::new(
            "SkippedServices",
            vec![],
            count(record.skipped_services.len()),
        ),
    ]
}
