//! Start, continue or sweep a drill: check the steady state, take the lock and
//! the snapshot, act, poll (abort alarms first), check the steady state again,
//! roll back as the policy says, verify the restore by reading it back, and
//! release the lock. Every step goes into the journal.

mod lock;

use crate::events::{self, Command};
use crate::journal::{Journal, Step};
use crate::report::{self as summary, Requester};
pub use crate::report::{DrillReport, SweptDrill};
use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::config::registrar::TargetGroupBinding;
use ecs_control::config::{ConfigError, DrillConfig, ProbeConfig, RegistrarConfig};
use ecs_control::domain::alarm::AlarmState;
use ecs_control::domain::drill::{
    after_check, after_poll, drain_candidates, pause, rolls_back, scale_plan, scaled_count,
    stop_count, stop_plan, task_floor, violations, Drill, DrillKind, Lock, LockState, Mode, Next,
    Observation, Outcome, Poll, SavedState, Selection, Snapshot, LOCK_GRACE,
};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::registration::{HealthState, Target, TaskInfo};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::{log_decision, ControllerMetric, InvocationError};
use ecs_control::ports::{
    AlarmControls, AlarmStates, CheckAttempts, DrillControls, EcsServices, EcsTasks, FailureKind,
    MetricsSink, PortError, TargetGroups, TaskControls, DRILL_HALT_TAG,
};
pub use lock::LOCK_SETTLE;
use lock::{lock_of, tag, token};
use probe::handler::Prober;
use std::collections::BTreeMap;

/// The tag holding a service's drill lock.
pub const LOCK_TAG: &str = ecs_control::domain::drill::DRILL_LOCK_TAG;
/// The tag holding the running drill's snapshot and deadline.
pub const STATE_TAG: &str = "ecs-drill:state";
/// Why the sweep rolls back a drill whose lock expired.
const CRASHED: &str = "its lock expired: the drill crashed or was abandoned mid-way";
/// The journal's drill id for the sweep's own entries (about no one drill).
const SWEEP_ID: &str = "sweep";

/// How long a recovery holds the lock it takes over.
const RECOVERY_LEASE: TimeDelta = TimeDelta::minutes(5);
/// Time kept back from the invocation's deadline to save state and return.
const SUSPEND_MARGIN: TimeDelta = TimeDelta::seconds(10);

/// The drill function: configuration and ports, built once per cold start.
pub struct Driller<E, G, A, H, M> {
    config: DrillConfig,
    ecs: E,
    groups: G,
    alarms: A,
    /// Runs the steady state's probe checks with the probe's own runner.
    prober: Prober<H, G, M>,
    /// The scaler's bounds per service, where known: a drill's floor and ceiling.
    bounds: BTreeMap<ServiceRef, CapacityBounds>,
    /// The groups the registrar keeps each service's tasks in: what a
    /// graceful `stop_tasks` drill drains its tasks from.
    bindings: BTreeMap<ServiceRef, Vec<TargetGroupBinding>>,
    /// See [`LOCK_SETTLE`].
    settle: std::time::Duration,
}

/// The state a running drill carries between steps.
struct Run<'a> {
    drill: &'a Drill,
    id: String,
    arn: String,
    snapshot: Snapshot,
    deadline: DateTime<Utc>,
    /// What the drill does to the desired count (a `scale` drill's change).
    count_delta: i64,
    /// Whether that change is known to have been made.
    delta_confirmed: bool,
    /// The lock this invocation holds (or means to take), with its token.
    lock: Lock,
    journal: Journal,
}

impl<E, G, A, H, M> Driller<E, G, A, H, M>
where
    E: EcsServices + EcsTasks + DrillControls + TaskControls,
    G: TargetGroups + Clone,
    A: AlarmStates + AlarmControls,
    H: CheckAttempts,
    M: MetricsSink,
{
    pub fn new(config: DrillConfig, ecs: E, groups: G, alarms: A, http: H, metrics: M) -> Self {
        let checks = ProbeConfig {
            namespace: "EcsControl/Drill".into(),
            concurrency: 1,
            concurrency_set: true,
            max_body_bytes: 1024 * 1024,
            checks: Vec::new(),
            target_groups: Vec::new(),
            adhoc: Default::default(),
            references: Vec::new(),
        };
        Self {
            prober: Prober::new(checks, http, groups.clone(), metrics),
            config,
            ecs,
            groups,
            alarms,
            bounds: BTreeMap::new(),
            bindings: BTreeMap::new(),
            settle: LOCK_SETTLE,
        }
    }

    /// How long a lock must stay the writer's before it acts (see [`LOCK_SETTLE`]).
    #[must_use]
    pub fn with_lock_settle(mut self, settle: std::time::Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The registrar's document, where the deployment ships it: the groups
    /// a graceful `stop_tasks` drill drains its tasks from.
    ///
    /// # Errors
    /// A [`ConfigError`] naming a graceful `stop_tasks` drill of a service
    /// the registrar does not bind: it would have nothing to drain.
    pub fn with_target_bindings(
        mut self,
        registrar: Option<&RegistrarConfig>,
    ) -> Result<Self, ConfigError> {
        self.bindings = registrar
            .iter()
            .flat_map(|r| &r.services)
            .map(|b| (b.service.clone(), b.target_groups.clone()))
            .collect();
        for (i, drill) in self.config.drills.iter().enumerate() {
            let graceful = matches!(
                drill.kind,
                DrillKind::StopTasks {
                    graceful: Some(_),
                    ..
                }
            );
            if graceful && !self.bindings.contains_key(&drill.service) {
                return Err(ConfigError::new(
                    format!("drills[{i}].kind.stop"),
                    format!(
                        "a graceful stop drains {}'s tasks from the registrar's target groups, \
                         and the registrar document binds none for it",
                        drill.service
                    ),
                ));
            }
        }
        Ok(self)
    }

    /// The scaler's capacity bounds per service (see [`DrillConfig::scaler_bounds`]).
    #[must_use]
    pub fn with_capacity_bounds(mut self, bounds: BTreeMap<ServiceRef, CapacityBounds>) -> Self {
        self.bounds = bounds;
        self
    }

    /// What a drill may change on its service without refusing: the floor
    /// (and ceiling) of the service's count.
    fn floor(&self, drill: &Drill) -> (u32, Option<CapacityBounds>) {
        let scaler = self.bounds.get(&drill.service).copied();
        (task_floor(&drill.steady_state, scaler), scaler)
    }

    /// Handles one invocation; `invocation_end` is when Lambda stops it (none: no limit).
    ///
    /// # Errors
    /// Malformed events and unknown drills; AWS failures that leave a service
    /// changed (a rollback that failed: the lock stays, and the next sweep
    /// rolls it back).
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        invocation_end: Option<DateTime<Utc>>,
    ) -> Result<DrillReport, InvocationError> {
        self.handle_request(payload, invocation_end, None).await
    }

    /// [`Self::handle`], with Lambda's request id for the summaries.
    ///
    /// # Errors
    /// As [`Self::handle`].
    pub async fn handle_request(
        &self,
        payload: serde_json::Value,
        invocation_end: Option<DateTime<Utc>>,
        request_id: Option<&str>,
    ) -> Result<DrillReport, InvocationError> {
        let requester = Requester {
            requested_by: events::requested_by(&payload),
            request_id: request_id.map(str::to_string),
        };
        let command = events::parse(payload).inspect_err(|e| {
            tracing::error!(error = %e, "malformed event");
        })?;
        let mut report = DrillReport::new(command.clone());
        let now = Utc::now();
        // A deadline already past is not a real one (a local runtime may send a relative figure).
        let end = invocation_end
            .filter(|end| *end > now)
            .map(|end| end - SUSPEND_MARGIN);
        let result = match &command {
            Command::Start { drill, mode } => self.start(drill, *mode, end, &mut report).await,
            Command::Continue { drill_id } => self.resume(drill_id, end, &mut report).await,
            Command::Sweep => self.sweep(&mut report).await,
        };
        let outcome_metric = |drill: &str, outcome: &Outcome| {
            ControllerMetric::new(
                "DrillOutcome",
                vec![
                    ("Drill", drill.to_string()),
                    ("Outcome", outcome.label().to_string()),
                ],
                1.0,
            )
        };
        // Every end is counted, a swept drill's too.
        let metrics: Vec<ControllerMetric> = report
            .drill
            .as_deref()
            .zip(report.outcome.as_ref())
            .into_iter()
            .chain(report.swept.iter().map(|s| (s.drill.as_str(), &s.outcome)))
            .map(|(drill, outcome)| outcome_metric(drill, outcome))
            .collect();
        let ended = Utc::now();
        report.summaries = summary::summaries(&report, &requester, now, ended);
        report.markdown = summary::markdown(&report.summaries, &report.journal);
        log_decision("drill", &report, &metrics, ended);
        result.map(|()| report)
    }

    fn drill(&self, name: &str) -> Result<&Drill, InvocationError> {
        self.config.drill(name).ok_or_else(|| {
            let known: Vec<&str> = self.config.drills.iter().map(|d| d.name.as_str()).collect();
            InvocationError::RejectedCommand(format!(
                "no drill is named {name:?}; the configured drills are {known:?}"
            ))
        })
    }

    async fn start(
        &self,
        name: &str,
        mode: Mode,
        end: Option<DateTime<Utc>>,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        let drill = self.drill(name)?;
        report.drill = Some(drill.name.clone());
        report.kind = Some(drill.kind.name());
        report.service = Some(drill.service.clone());
        let id = format!("{}-{}", drill.name, Utc::now().timestamp_millis());
        let mut journal = Journal::default();
        let outcome = self
            .start_steps(drill, mode, &id, end, &mut journal, report)
            .await;
        report.journal = journal.entries;
        outcome
    }

    async fn start_steps(
        &self,
        drill: &Drill,
        mode: Mode,
        id: &str,
        end: Option<DateTime<Utc>>,
        journal: &mut Journal,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        if let Some(why) = self.halted(&drill.service).await? {
            journal.record(id, Step::Check, &why, false);
            report.outcome = Some(Outcome::Refused { why });
            return Ok(());
        }
        let service = self.ecs.tagged_service(&drill.service).await?;
        // The count read with the lock, unless a recovery has since changed it.
        let mut desired = Some(service.desired_count);
        match lock_of(&service) {
            LockState::Held(lock) if mode == Mode::Execute => {
                let why = format!(
                    "drill {} holds {} until {}: one drill per service at a time",
                    lock.drill_id, drill.service, lock.expires_at
                );
                journal.record(id, Step::Check, &why, false);
                report.outcome = Some(Outcome::Refused { why });
                return Ok(());
            }
            LockState::Held(lock) => journal.record(
                id,
                Step::Check,
                format!(
                    "drill {} holds the service now: execute would be refused",
                    lock.drill_id
                ),
                false,
            ),
            LockState::Expired(lock) => {
                if self
                    .recover(&drill.service, &lock, CRASHED, journal)
                    .await?
                    .is_some()
                {
                    report.recovered.push(lock.drill_id);
                }
                desired = None;
            }
            LockState::Free => {}
        }
        let before = self.observe(drill, desired).await?;
        let broken = violations(&drill.steady_state, &before);
        journal.record(
            id,
            Step::Check,
            if broken.is_empty() {
                format!("steady state holds before the drill: {before:?}")
            } else {
                format!("steady state does not hold: {}", broken.join("; "))
            },
            broken.is_empty(),
        );
        if !broken.is_empty() {
            report.outcome = Some(Outcome::Refused {
                why: format!("the steady state does not hold: {}", broken.join("; ")),
            });
            return Ok(());
        }
        // A stop condition already met refuses the drill before it acts.
        let firing = self.abort_alarms_firing(drill).await?;
        if !drill.abort_alarms.is_empty() {
            journal.record(
                id,
                Step::Check,
                format!(
                    "abort alarms {:?}: in ALARM or missing {firing:?}",
                    drill.abort_alarms
                ),
                firing.is_empty(),
            );
        }
        if let Some(alarm) = firing.first() {
            report.outcome = Some(Outcome::Refused {
                why: format!("abort alarm {alarm} is in ALARM or does not exist: the drill could not be stopped by it"),
            });
            return Ok(());
        }
        let snapshot = match self.snapshot(drill, &before).await? {
            Ok((snapshot, chosen)) => {
                if let Some(chosen) = chosen {
                    journal.record(id, Step::Check, chosen, true);
                }
                snapshot
            }
            Err(why) => {
                journal.record(id, Step::Check, &why, false);
                report.outcome = Some(Outcome::Refused { why });
                return Ok(());
            }
        };
        // The blast radius: the drill refuses rather than cross the service's floor.
        let (floor, scaler) = self.floor(drill);
        let radius = match &drill.kind {
            DrillKind::Scale { to, .. } => {
                scale_plan(snapshot.desired_count, *to, floor, scaler).map(drop)
            }
            DrillKind::StopTasks { count, .. } => {
                stop_plan(before.running, *count, floor).map(drop)
            }
            DrillKind::DrainTarget { .. } | DrillKind::Alarm { .. } => Ok(()),
        };
        journal.record(
            id,
            Step::Check,
            match &radius {
                Ok(()) => format!("blast radius within the floor of {floor} running tasks"),
                Err(why) => why.clone(),
            },
            radius.is_ok(),
        );
        if let Err(why) = radius {
            report.outcome = Some(Outcome::Refused { why });
            return Ok(());
        }
        let (actions, rollback) = describe_plan(drill, &snapshot, before.running);
        report.plan = actions;
        report.rollback_plan = rollback;
        report.snapshot = Some(snapshot.clone());
        if mode == Mode::Plan {
            journal.record(id, Step::Verdict, "plan only: nothing was changed", true);
            report.outcome = Some(Outcome::Planned);
            return Ok(());
        }
        let deadline = Utc::now() + TimeDelta::seconds(i64::from(drill.max_duration_seconds));
        let lock = Lock {
            drill_id: id.to_string(),
            expires_at: deadline + LOCK_GRACE,
            holder: token(),
            busy_until: Some(end.unwrap_or(deadline + LOCK_GRACE)),
        };
        let mut run = Run {
            drill,
            id: id.to_string(),
            arn: service.arn.clone(),
            snapshot,
            deadline,
            count_delta: 0,
            delta_confirmed: false,
            lock,
            journal: std::mem::take(journal),
        };
        report.drill_id = Some(run.id.clone());
        let result = self.execute(&mut run, end, report).await;
        *journal = run.journal;
        result
    }

    /// Takes the lock, saves the snapshot, acts and follows through.
    async fn execute(
        &self,
        run: &mut Run<'_>,
        end: Option<DateTime<Utc>>,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        // The lock is the last step before acting: every slow check is behind it.
        let taken = self
            .acquire(&run.drill.service, &run.lock, |found| {
                matches!(found, LockState::Free)
            })
            .await?;
        let tagged = match taken {
            Ok(tagged) => tagged,
            Err(why) => {
                run.journal.record(&run.id, Step::Check, &why, false);
                report.outcome = Some(Outcome::Refused { why });
                return Ok(());
            }
        };
        // The stop conditions, read again under the lock: the last look before acting.
        let mut stop = self.abort_alarms_firing(run.drill).await?;
        if let Some(why) = self.halted(&run.drill.service).await? {
            stop.insert(0, why);
        }
        if let Some(why) = stop.first() {
            let why = format!("a stop condition fired before acting: {why}");
            run.journal.record(&run.id, Step::Check, &why, false);
            self.release_if_holder(&run.drill.service, &run.lock.holder)
                .await?;
            report.outcome = Some(Outcome::Refused { why });
            return Ok(());
        }
        // The count as read under the lock is the one the drill changes and restores.
        run.snapshot.desired_count = tagged.desired_count;
        report.snapshot = Some(run.snapshot.clone());
        // Saved before acting, so a crash at any later step can be undone.
        if let Ok(target) = self.scale_target(run) {
            run.count_delta = i64::from(target) - i64::from(run.snapshot.desired_count);
        }
        let saved = saved_state(run);
        self.ecs
            .tag_service(&run.arn, &[(STATE_TAG.to_string(), saved.encode())])
            .await?;
        run.journal.record(
            &run.id,
            Step::Action,
            format!(
                "locked {} until {} and saved the snapshot",
                run.drill.service, run.lock.expires_at
            ),
            true,
        );
        if let Err(e) = self.act(run).await {
            return self
                .finish_after_aws_failure(run, format!("acting failed: {e}"), report)
                .await;
        }
        if run.count_delta != 0 {
            // The change is made: a rollback now takes all of it off.
            run.delta_confirmed = true;
            self.ecs
                .tag_service(
                    &run.arn,
                    &[(STATE_TAG.to_string(), saved_state(run).encode())],
                )
                .await?;
        }
        self.follow(run, end, report).await
    }

    /// Polls until the drill is done, aborted, failed or out of time, then finishes it.
    async fn follow(
        &self,
        run: &mut Run<'_>,
        end: Option<DateTime<Utc>>,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        // Polled first, right after acting, then again after each pause; the
        // time left is judged before sleeping, never after.
        loop {
            let poll = match self.poll(run).await {
                Ok(poll) => poll,
                Err(e) => {
                    let why = format!("observing failed: {e}");
                    return self.finish_after_aws_failure(run, why, report).await;
                }
            };
            let now = Utc::now();
            let until = end.unwrap_or(run.deadline + LOCK_GRACE);
            let next = match after_poll(&poll, now, run.deadline, until) {
                Next::KeepPolling => {
                    match pause(run.drill.poll_seconds, now, run.deadline, until) {
                        Some(wait) => {
                            tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
                            continue;
                        }
                        None => Next::Suspend,
                    }
                }
                next => next,
            };
            match next {
                Next::KeepPolling => {}
                Next::Verify => {
                    let after = match self.observe(run.drill, None).await {
                        Ok(after) => after,
                        Err(e) => {
                            let why = format!("the after-check failed to read: {e}");
                            return self.finish_after_aws_failure(run, why, report).await;
                        }
                    };
                    let outcome = after_check(&violations(&run.drill.steady_state, &after));
                    run.journal.record(
                        &run.id,
                        Step::Check,
                        format!("after the drill: {after:?}"),
                        outcome == Outcome::Passed,
                    );
                    return self.finish(run, outcome, report).await;
                }
                Next::Stop(outcome) => return self.finish(run, outcome, report).await,
                Next::Suspend => {
                    // Idle: a continue may take the drill over from here.
                    let idle = Lock {
                        busy_until: None,
                        ..run.lock.clone()
                    };
                    if let Err(e) = self.rewrite_if_holder(&run.drill.service, &idle).await {
                        let why = format!("marking the lock idle failed: {e}");
                        return self.finish_after_aws_failure(run, why, report).await;
                    }
                    run.journal.record(
                        &run.id,
                        Step::Verdict,
                        format!(
                            "this invocation's time is up: continue with {{\"command\": \"continue\", \"drill_id\": \"{}\"}}",
                            run.id
                        ),
                        true,
                    );
                    report.outcome = Some(Outcome::InProgress);
                    return Ok(());
                }
            }
        }
    }

    /// Resumes a drill a former invocation suspended.
    async fn resume(
        &self,
        drill_id: &str,
        end: Option<DateTime<Utc>>,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        report.drill_id = Some(drill_id.to_string());
        let name = drill_id
            .rsplit_once('-')
            .map(|(name, _)| name)
            .ok_or_else(|| {
                // The id is cut before the reason, which the cap would otherwise cut off.
                let shown = ecs_control::echo::capped(&format!("{drill_id:?}"), 100);
                InvocationError::RejectedCommand(format!("{shown} is not a drill id"))
            })?;
        let drill = self.drill(name)?;
        report.drill = Some(drill.name.clone());
        report.kind = Some(drill.kind.name());
        report.service = Some(drill.service.clone());
        let found = self.ecs.tagged_service(&drill.service).await?;
        let saved = tag(&found, STATE_TAG).and_then(SavedState::decode);
        let mut journal = Journal::default();
        let result = match (lock_of(&found), saved) {
            (LockState::Held(lock), Some(_))
                if lock.drill_id == drill_id && lock.busy(Utc::now()) =>
            {
                // Two drivers would poll, decide and roll back one drill twice.
                let why = format!(
                    "an invocation of drill {drill_id} is running until {}: continue refused",
                    lock.busy_until.unwrap_or(lock.expires_at)
                );
                journal.record(drill_id, Step::Check, &why, false);
                report.outcome = Some(Outcome::Refused { why });
                Ok(())
            }
            (LockState::Held(lock), Some(saved)) if lock.drill_id == drill_id => {
                // Taken over with this invocation's token, as a start takes it.
                let mine = Lock {
                    holder: token(),
                    busy_until: Some(end.unwrap_or(lock.expires_at)),
                    ..lock.clone()
                };
                let taken = self
                    .acquire(
                        &drill.service,
                        &mine,
                        |now| matches!(now, LockState::Held(l) if *l == lock),
                    )
                    .await?;
                match taken {
                    Err(why) => {
                        journal.record(drill_id, Step::Check, &why, false);
                        report.outcome = Some(Outcome::Refused { why });
                        Ok(())
                    }
                    Ok(_) => {
                        report.snapshot = Some(saved.snapshot.clone());
                        let mut run = Run {
                            drill,
                            id: drill_id.to_string(),
                            arn: found.arn.clone(),
                            snapshot: saved.snapshot,
                            deadline: saved.deadline,
                            count_delta: saved.count_delta.unwrap_or(0),
                            delta_confirmed: saved.delta_confirmed,
                            lock: mine,
                            journal,
                        };
                        run.journal.record(drill_id, Step::Check, "resumed", true);
                        let result = self.follow(&mut run, end, report).await;
                        journal = run.journal;
                        result
                    }
                }
            }
            (LockState::Expired(lock), _) if lock.drill_id == drill_id => {
                if self
                    .recover(&drill.service, &lock, CRASHED, &mut journal)
                    .await?
                    .is_some()
                {
                    report.recovered.push(lock.drill_id);
                }
                report.outcome = Some(Outcome::Failed {
                    why: "the drill's lock expired before it was continued: rolled back".into(),
                });
                Ok(())
            }
            _ => Err(InvocationError::RejectedCommand(format!(
                "drill {drill_id} is not running on {}",
                drill.service
            ))),
        };
        report.journal = journal.entries;
        result
    }

    /// Finds every half-done drill (lock expired) on a drilled service and
    /// rolls it back; and, for a drill between invocations, watches its stop
    /// conditions: an abort alarm in ALARM or the safety lever rolls it back
    /// at once. One service's failure does not stop the others.
    async fn sweep(&self, report: &mut DrillReport) -> Result<(), InvocationError> {
        let mut services: Vec<&ServiceRef> =
            self.config.drills.iter().map(|d| &d.service).collect();
        services.sort();
        services.dedup();
        let mut journal = Journal::default();
        let mut failures = Vec::new();
        for service in &services {
            if let Err(e) = self.sweep_service(service, &mut journal, report).await {
                journal.record(
                    SWEEP_ID,
                    Step::Check,
                    format!("sweeping {service} failed: {e}"),
                    false,
                );
                failures.push((service.to_string(), e));
            }
        }
        report.journal = journal.entries;
        if failures.is_empty() {
            return Ok(());
        }
        Err(InvocationError::PartialFailure {
            failed: failures.len(),
            total: services.len(),
            unit: "services",
            retryable: failures.iter().any(|(_, e)| e.is_retryable()),
            detail: failures
                .iter()
                .map(|(service, e)| format!("{service}: {e}"))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    async fn sweep_service(
        &self,
        service: &ServiceRef,
        journal: &mut Journal,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        let found = self.ecs.tagged_service(service).await?;
        let saved = tag(&found, STATE_TAG).and_then(SavedState::decode);
        let (lock, why, outcome_of) = match lock_of(&found) {
            LockState::Expired(lock) => (
                lock,
                CRASHED.to_string(),
                (|why| Outcome::Failed { why }) as fn(String) -> Outcome,
            ),
            LockState::Held(lock) if !lock.busy(Utc::now()) => {
                // Between invocations nothing else watches the stop conditions.
                let mut why = self.halted(service).await?;
                if why.is_none() {
                    let drill = saved
                        .as_ref()
                        .and_then(|s| self.config.drill(&s.drill_name));
                    if let Some(drill) = drill {
                        why = self.abort_alarms_firing(drill).await?.first().map(|alarm| {
                            format!("abort alarm {alarm} is in ALARM or does not exist")
                        });
                    }
                }
                let Some(why) = why else {
                    return Ok(());
                };
                (
                    lock,
                    why,
                    (|alarm| Outcome::Aborted { alarm }) as fn(String) -> Outcome,
                )
            }
            _ => return Ok(()),
        };
        let Some(verified) = self.recover(service, &lock, &why, journal).await? else {
            return Ok(());
        };
        report.recovered.push(lock.drill_id.clone());
        report.swept.push(SweptDrill {
            drill: saved.map_or_else(|| lock.drill_id.clone(), |s| s.drill_name),
            drill_id: lock.drill_id,
            service: service.clone(),
            outcome: if verified {
                outcome_of(why.clone())
            } else {
                Outcome::RollbackFailed {
                    why: format!("{why}; the restore read back disagrees"),
                }
            },
            why,
        });
        Ok(())
    }

    /// Why drills are halted on `service`'s cluster (the safety lever), if they are.
    async fn halted(&self, service: &ServiceRef) -> Result<Option<String>, PortError> {
        Ok(self
            .ecs
            .drills_halted(&service.cluster)
            .await?
            .map(|value| {
                format!(
                "the safety lever is on: cluster {} has the tag {DRILL_HALT_TAG}={value:?}; no \
                 drill starts, and running drills roll back, until it is removed",
                service.cluster
            )
            }))
    }

    /// Rolls back a drill from its saved state (its lock `expired`, or held
    /// by no running invocation when a stop condition fired), and frees the
    /// service. `None` when another invocation took it first; else whether
    /// the restore's read-back agreed. The recovery takes the lock first, so
    /// two sweeps never restore twice.
    async fn recover(
        &self,
        service: &ServiceRef,
        found_lock: &Lock,
        why: &str,
        journal: &mut Journal,
    ) -> Result<Option<bool>, InvocationError> {
        let id = found_lock.drill_id.as_str();
        let now = Utc::now();
        let mine = Lock {
            holder: token(),
            expires_at: now + RECOVERY_LEASE,
            busy_until: Some(now + RECOVERY_LEASE),
            drill_id: found_lock.drill_id.clone(),
        };
        let taken = self
            .acquire(service, &mine, |found| {
                matches!(found, LockState::Expired(l) | LockState::Held(l) if l == found_lock)
            })
            .await?;
        let found = match taken {
            Ok(found) => found,
            Err(why) => {
                journal.record(id, Step::Rollback, format!("not recovering: {why}"), true);
                return Ok(None);
            }
        };
        let Some(saved) = tag(&found, STATE_TAG).and_then(SavedState::decode) else {
            journal.record(
                id,
                Step::Rollback,
                "a lock without a saved state: released",
                true,
            );
            self.release_if_holder(service, &mine.holder).await?;
            return Ok(Some(true));
        };
        journal.record(
            id,
            Step::Rollback,
            format!("drill {id} on {service}: {why}: rolling back"),
            true,
        );
        if !self.restore(service, &saved, id, journal).await? {
            // Kept: the recovery's own lock expires and the next sweep tries again.
            journal.record(
                id,
                Step::Verdict,
                format!(
                    "the restore read back disagrees: {service} stays locked until {}",
                    mine.expires_at
                ),
                false,
            );
            return Ok(Some(false));
        }
        self.release_if_holder(service, &mine.holder).await?;
        journal.record(id, Step::Verdict, "rolled back and released", true);
        Ok(Some(true))
    }

    /// Ends the drill: rolls back as the policy says (always after an AWS
    /// failure mid-drill: it must never leave the service changed silently),
    /// then releases the lock.
    async fn finish(
        &self,
        run: &mut Run<'_>,
        outcome: Outcome,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        self.finish_with(run, outcome, false, report).await
    }

    async fn finish_after_aws_failure(
        &self,
        run: &mut Run<'_>,
        why: String,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        self.finish_with(run, Outcome::Failed { why }, true, report)
            .await
    }

    async fn finish_with(
        &self,
        run: &mut Run<'_>,
        outcome: Outcome,
        aws_failed: bool,
        report: &mut DrillReport,
    ) -> Result<(), InvocationError> {
        run.journal.record(
            &run.id,
            Step::Verdict,
            format!("{outcome:?}"),
            outcome == Outcome::Passed,
        );
        report.outcome = Some(outcome.clone());
        if aws_failed || rolls_back(run.drill.rollback, &outcome) {
            let saved = saved_state(run);
            let restored = self
                .restore(&run.drill.service, &saved, &run.id, &mut run.journal)
                .await;
            let failure = match restored {
                Ok(true) => None,
                Ok(false) => Some("the restore read back disagrees".to_string()),
                Err(e) => Some(format!("restoring failed: {e}")),
            };
            if let Some(why) = failure {
                // The lock stays: nothing else may drill a service left changed,
                // and the sweep rolls it back again once the lock expires.
                let why = format!(
                    "{} ({outcome:?}), then {why}: the lock on {} is kept until {} for the sweep",
                    outcome.label(),
                    run.drill.service,
                    run.lock.expires_at
                );
                run.journal.record(&run.id, Step::Verdict, &why, false);
                report.outcome = Some(Outcome::RollbackFailed { why });
                return Ok(());
            }
            report.rolled_back = true;
        } else {
            run.journal.record(
                &run.id,
                Step::Rollback,
                format!("no rollback: the policy is {:?}", run.drill.rollback),
                true,
            );
        }
        if self
            .release_if_holder(&run.drill.service, &run.lock.holder)
            .await?
        {
            run.journal
                .record(&run.id, Step::Action, "released the lock", true);
        } else {
            self.drop_state_if_drill(&run.drill.service, &run.id)
                .await?;
            run.journal.record(
                &run.id,
                Step::Action,
                "the lock is no longer this invocation's: left to its holder",
                false,
            );
        }
        Ok(())
    }

    /// Puts back what the saved state holds (the count, the drained target,
    /// the forced alarm) and reads it back; whether the read-back agrees.
    async fn restore(
        &self,
        service: &ServiceRef,
        saved: &SavedState,
        id: &str,
        journal: &mut Journal,
    ) -> Result<bool, PortError> {
        let snapshot = &saved.snapshot;
        if let Some(alarm) = &saved.alarm {
            self.alarms
                .set_alarm_state(alarm, AlarmState::Ok, &format!("drill {id} rolled back"))
                .await?;
            journal.record(
                id,
                Step::Rollback,
                format!("set {alarm} back to OK; it re-evaluates at its next period"),
                true,
            );
        }
        let now = self.ecs.describe_service(service).await?;
        let bounds = self.bounds.get(service).copied();
        let restore_to = saved.restore_count(now.desired_count, bounds);
        if saved.restore_to.is_none() && saved.count_delta.is_some_and(|d| d != 0) {
            // Settled before it is set: a rollback run again after a crash
            // sets this count, instead of taking the delta off twice.
            let settled = SavedState {
                restore_to: Some(restore_to),
                ..saved.clone()
            };
            self.ecs
                .tag_service(&now.arn, &[(STATE_TAG.to_string(), settled.encode())])
                .await?;
        }
        if now.desired_count != restore_to {
            self.ecs.set_desired_count(service, restore_to).await?;
            journal.record(
                id,
                Step::Rollback,
                format!(
                    "desired count {} -> {restore_to} (the drill's own change of {} taken off; \
                     snapshot {})",
                    now.desired_count,
                    saved.count_delta.unwrap_or(0),
                    snapshot.desired_count
                ),
                true,
            );
        }
        let drained = snapshot
            .drained
            .as_ref()
            .zip(saved.target_group_arn.as_deref());
        if let Some((target, group)) = drained {
            self.groups
                .register(group, std::slice::from_ref(target), false)
                .await?;
            journal.record(
                id,
                Step::Rollback,
                format!("registered {}:{} in {group} again", target.ip, target.port),
                true,
            );
        }
        let desired = self.ecs.describe_service(service).await?.desired_count;
        let mut verified = desired == restore_to;
        if let Some((target, group)) = drained {
            verified &= self
                .groups
                .targets(group)
                .await?
                .iter()
                .any(|t| t.target == *target && t.state != HealthState::Draining);
        }
        journal.record(
            id,
            Step::Rollback,
            format!(
                "restore read back: desired count {desired} (restored to {restore_to}, snapshot {})",
                snapshot.desired_count
            ),
            verified,
        );
        Ok(verified)
    }

    /// The service as the hypothesis sees it; `desired` when the desired
    /// count was just read (with the lock), else it is read now.
    async fn observe(&self, drill: &Drill, desired: Option<u32>) -> Result<Observation, PortError> {
        let desired = match desired {
            Some(count) => count,
            None => {
                self.ecs
                    .describe_service(&drill.service)
                    .await?
                    .desired_count
            }
        };
        let tasks = self.ecs.service_tasks(&drill.service).await?;
        let running = tasks
            .tasks
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .count();
        let mut healthy = Vec::new();
        for floor in &drill.steady_state.target_groups {
            let count = self
                .groups
                .targets(&floor.target_group_arn)
                .await?
                .iter()
                .filter(|t| t.state == HealthState::Healthy)
                .count();
            healthy.push((
                floor.target_group_arn.clone(),
                u32::try_from(count).unwrap_or(u32::MAX),
            ));
        }
        let failed_checks = self
            .prober
            .check_once(&drill.steady_state.probe_checks)
            .await
            .into_iter()
            .filter(|c| !c.success)
            .map(|c| {
                let why = c.reason.map_or("failed".to_string(), |r| r.to_string());
                (c.name, why)
            })
            .collect();
        Ok(Observation {
            desired,
            running: u32::try_from(running).unwrap_or(u32::MAX),
            healthy,
            failed_checks,
        })
    }

    /// What rollback restores: the count, and the target a drain will remove,
    /// with how it was chosen; or why no target may be drained.
    async fn snapshot(
        &self,
        drill: &Drill,
        seen: &Observation,
    ) -> Result<Result<(Snapshot, Option<String>), String>, PortError> {
        let mut snapshot = Snapshot {
            desired_count: seen.desired,
            drained: None,
        };
        let DrillKind::DrainTarget {
            target_group_arn,
            port,
            ..
        } = &drill.kind
        else {
            return Ok(Ok((snapshot, None)));
        };
        let service_ips: Vec<String> = self
            .ecs
            .service_tasks(&drill.service)
            .await?
            .tasks
            .into_iter()
            .filter(|t| t.last_status == "RUNNING")
            .flat_map(|t| [t.private_ip, t.private_ipv6])
            .flatten()
            .collect();
        let min_healthy = drill
            .steady_state
            .target_groups
            .iter()
            .filter(|f| f.target_group_arn == *target_group_arn)
            .map(|f| f.min_healthy)
            .max()
            .unwrap_or(0);
        let targets = self.groups.targets(target_group_arn).await?;
        let candidates = match drain_candidates(&targets, *port, &service_ips, min_healthy) {
            Ok(candidates) => candidates,
            Err(why) => return Ok(Err(format!("{target_group_arn}: {why}"))),
        };
        let at = pick(candidates.len(), drill.selection);
        let listed: Vec<String> = candidates
            .iter()
            .map(|t| format!("{}:{}", t.ip, t.port))
            .collect();
        snapshot.drained = candidates.into_iter().nth(at);
        let chosen = format!(
            "chose {} to drain ({:?}) of {}'s healthy targets {listed:?}",
            listed.get(at).map_or("none", String::as_str),
            drill.selection,
            drill.service
        );
        Ok(Ok((snapshot, Some(chosen))))
    }

    /// A graceful stop: the chosen tasks are held out of the registrar's
    /// reconcile, leave the groups the registrar keeps them in, and the
    /// drill waits (at most `max_drain_seconds`, and never past its own
    /// deadline) until none of their targets is left draining. A crash
    /// meanwhile costs nothing lasting: the hold ends and the registrar
    /// registers the tasks again.
    async fn drain_before_stopping(
        &self,
        run: &mut Run<'_>,
        chosen: &[TaskInfo],
        max_drain_seconds: u32,
    ) -> Result<(), PortError> {
        let service = &run.drill.service;
        let groups = self.bindings.get(service).map_or(&[][..], Vec::as_slice);
        let now = Utc::now();
        let arns: Vec<String> = chosen.iter().map(|t| t.task_arn.clone()).collect();
        let bound = TimeDelta::seconds(i64::from(max_drain_seconds));
        self.ecs
            .hold_for_drain(&service.cluster, &arns, Some(now + bound + RECOVERY_LEASE))
            .await?;
        let mut leaving = Vec::new();
        for group in groups {
            let targets: Vec<Target> = chosen
                .iter()
                .filter_map(|t| t.address(group.address_family))
                .map(|ip| Target::new(ip, group.port))
                .collect();
            if targets.is_empty() {
                continue;
            }
            self.groups
                .deregister(&group.target_group_arn, &targets, group.outside_vpc)
                .await?;
            leaving.push((group.target_group_arn.clone(), targets));
        }
        run.journal.record(
            &run.id,
            Step::Action,
            format!(
                "graceful stop: {} task(s) held out and deregistered from {} group(s), draining",
                arns.len(),
                leaving.len()
            ),
            true,
        );
        let until = (now + bound).min(run.deadline - SUSPEND_MARGIN);
        let poll = std::time::Duration::from_secs(u64::from(run.drill.poll_seconds.clamp(1, 10)));
        loop {
            let mut draining = 0;
            for (group, targets) in &leaving {
                draining += self
                    .groups
                    .targets_among(group, targets)
                    .await?
                    .iter()
                    .filter(|t| t.state != HealthState::Unused)
                    .count();
            }
            if draining == 0 {
                run.journal.record(
                    &run.id,
                    Step::Check,
                    "the chosen targets have drained",
                    true,
                );
                return Ok(());
            }
            if Utc::now() >= until {
                run.journal.record(
                    &run.id,
                    Step::Check,
                    format!(
                        "{draining} target(s) still draining at the drain's bound: stopping anyway"
                    ),
                    true,
                );
                return Ok(());
            }
            tokio::time::sleep(poll).await;
        }
    }

    async fn act(&self, run: &mut Run<'_>) -> Result<(), PortError> {
        let service = &run.drill.service;
        match &run.drill.kind {
            DrillKind::Scale { .. } => {
                let target = self.scale_target(run)?;
                self.ecs.set_desired_count(service, target).await?;
                run.journal.record(
                    &run.id,
                    Step::Action,
                    format!("desired count {} -> {target}", run.snapshot.desired_count),
                    true,
                );
            }
            DrillKind::StopTasks { count, graceful } => {
                let running: Vec<TaskInfo> = self
                    .ecs
                    .service_tasks(service)
                    .await?
                    .tasks
                    .into_iter()
                    .filter(|t| t.last_status == "RUNNING")
                    .collect();
                let mut tasks: Vec<String> = running.iter().map(|t| t.task_arn.clone()).collect();
                tasks.sort();
                // Counted again on the tasks running now: the floor holds at the moment of acting.
                let (floor, _) = self.floor(run.drill);
                let n = stop_plan(
                    u32::try_from(tasks.len()).unwrap_or(u32::MAX),
                    *count,
                    floor,
                )
                .map_err(|why| PortError::new(FailureKind::Rejected, "ecs:StopTask", why))?;
                let mut chosen = Vec::new();
                for _ in 0..n {
                    let at = pick(tasks.len(), run.drill.selection);
                    chosen.push(tasks.remove(at));
                }
                run.journal.record(
                    &run.id,
                    Step::Check,
                    format!(
                        "chose {n} of {}'s {} running tasks ({:?}): {chosen:?}",
                        service,
                        chosen.len() + tasks.len(),
                        run.drill.selection
                    ),
                    true,
                );
                if let Some(max_drain_seconds) = graceful {
                    let chosen: Vec<TaskInfo> = running
                        .into_iter()
                        .filter(|t| chosen.contains(&t.task_arn))
                        .collect();
                    self.drain_before_stopping(run, &chosen, *max_drain_seconds)
                        .await?;
                }
                for task in &chosen {
                    self.ecs
                        .stop_task(&service.cluster, task, &format!("drill {}", run.id))
                        .await?;
                    run.journal
                        .record(&run.id, Step::Action, format!("stopped task {task}"), true);
                }
            }
            DrillKind::DrainTarget {
                target_group_arn, ..
            } => {
                let Some(target) = run.snapshot.drained.clone() else {
                    return Err(PortError::new(
                        FailureKind::Rejected,
                        "elasticloadbalancing:DeregisterTargets",
                        "no healthy target on the drill's port to drain",
                    ));
                };
                self.groups
                    .deregister(target_group_arn, std::slice::from_ref(&target), false)
                    .await?;
                run.journal.record(
                    &run.id,
                    Step::Action,
                    format!("deregistered {}:{} (draining)", target.ip, target.port),
                    true,
                );
            }
            DrillKind::Alarm { alarm } => {
                self.alarms
                    .set_alarm_state(alarm, AlarmState::Alarm, &format!("drill {}", run.id))
                    .await?;
                run.journal
                    .record(&run.id, Step::Action, format!("set {alarm} to ALARM"), true);
            }
        }
        Ok(())
    }

    /// The count a `scale` drill sets, within its floor and the scaler's
    /// bounds; refused for any other kind.
    fn scale_target(&self, run: &Run<'_>) -> Result<u32, PortError> {
        let DrillKind::Scale { to, .. } = &run.drill.kind else {
            return Err(PortError::new(
                FailureKind::Rejected,
                "ecs:UpdateService",
                "only a scale drill sets the desired count",
            ));
        };
        let (floor, scaler) = self.floor(run.drill);
        scale_plan(run.snapshot.desired_count, *to, floor, scaler)
            .map_err(|why| PortError::new(FailureKind::Rejected, "ecs:UpdateService", why))
    }

    /// The drill's abort alarms in ALARM, and those that do not exist (a stop
    /// condition that cannot fire is no stop condition).
    async fn abort_alarms_firing(&self, drill: &Drill) -> Result<Vec<String>, PortError> {
        if drill.abort_alarms.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.alarms.describe_alarms(&drill.abort_alarms).await?;
        Ok(drill
            .abort_alarms
            .iter()
            .filter(|name| {
                found
                    .iter()
                    .find(|a| a.name == **name)
                    .is_none_or(|a| a.state == AlarmState::Alarm)
            })
            .cloned()
            .collect())
    }

    /// One poll: the abort alarms, and whether what the drill waits for happened.
    async fn poll(&self, run: &mut Run<'_>) -> Result<Poll, PortError> {
        let mut alarms_in_alarm = self.abort_alarms_firing(run.drill).await?;
        if let Some(why) = self.halted(&run.drill.service).await? {
            alarms_in_alarm.insert(0, why);
        }
        let acted_at = run.deadline - TimeDelta::seconds(i64::from(run.drill.max_duration_seconds));
        let held = |hold: u32| Utc::now() >= acted_at + TimeDelta::seconds(i64::from(hold));
        let seen = self.observe(run.drill, None).await?;
        let (done, failure) = match &run.drill.kind {
            DrillKind::Scale { hold_seconds, .. } => (held(*hold_seconds), None),
            DrillKind::StopTasks { .. } => (seen.running == seen.desired, None),
            DrillKind::DrainTarget { hold_seconds, .. } => (
                held(*hold_seconds),
                seen.failed_checks.first().map(|(check, why)| {
                    format!("users would notice: check {check} failed ({why})")
                }),
            ),
            // The scaler answered, and the service reached what it asked for.
            DrillKind::Alarm { .. } => (
                seen.desired > run.snapshot.desired_count && seen.running == seen.desired,
                None,
            ),
        };
        run.journal.record(
            &run.id,
            Step::Observation,
            format!(
                "desired {}, running {}, healthy {:?}, failed checks {:?}, abort alarms in ALARM {alarms_in_alarm:?}",
                seen.desired, seen.running, seen.healthy, seen.failed_checks
            ),
            failure.is_none() && alarms_in_alarm.is_empty(),
        );
        Ok(Poll {
            alarms_in_alarm,
            done,
            failure,
        })
    }
}

/// What a running drill saves on its service: all a rollback needs, without
/// the drill document.
fn saved_state(run: &Run<'_>) -> SavedState {
    SavedState {
        drill_id: run.id.clone(),
        drill_name: run.drill.name.clone(),
        deadline: run.deadline,
        snapshot: run.snapshot.clone(),
        alarm: match &run.drill.kind {
            DrillKind::Alarm { alarm } => Some(alarm.clone()),
            _ => None,
        },
        target_group_arn: match &run.drill.kind {
            DrillKind::DrainTarget {
                target_group_arn, ..
            } => Some(target_group_arn.clone()),
            _ => None,
        },
        count_delta: Some(run.count_delta),
        delta_confirmed: run.delta_confirmed,
        restore_to: None,
    }
}

/// The index of the one of `len` items a drill picks: at random (a fresh
/// SipHash key per call is the randomness std offers), or the first.
fn pick(len: usize, selection: Selection) -> usize {
    use std::hash::BuildHasher;
    match selection {
        Selection::First => 0,
        Selection::Random => {
            let random = std::collections::hash_map::RandomState::new().hash_one(Utc::now());
            usize::try_from(random % u64::try_from(len.max(1)).unwrap_or(1)).unwrap_or(0)
        }
    }
}

/// The plan in words: what the drill does and what its rollback restores.
fn describe_plan(drill: &Drill, snapshot: &Snapshot, running: u32) -> (Vec<String>, Vec<String>) {
    let service = &drill.service;
    let mut actions = Vec::new();
    let mut rollback = Vec::new();
    match &drill.kind {
        DrillKind::Scale { to, hold_seconds } => {
            let target = scaled_count(snapshot.desired_count, *to);
            actions.push(format!(
                "set {service}'s desired count {} -> {target} and hold it {hold_seconds} s",
                snapshot.desired_count,
            ));
            rollback.push(format!(
                "take the drill's own change ({:+}) off {service}'s desired count: back to {} \
                 unless something else (the scaler, a person) moved it meanwhile, whose change is kept",
                i64::from(target) - i64::from(snapshot.desired_count),
                snapshot.desired_count
            ));
        }
        DrillKind::StopTasks { count, graceful } => {
            actions.push(format!(
                "stop {} of {service}'s {running} running tasks (chosen when the drill runs){} and wait for running to return to desired",
                stop_count(running, *count),
                graceful.map_or_else(
                    || ", at once (a crash rehearsed)".to_string(),
                    |s| format!(", each drained from its target groups first (at most {s} s)")
                )
            ));
            rollback.push(format!(
                "nothing to put back: ECS replaces the stopped tasks, and {service}'s desired count stays {}",
                snapshot.desired_count
            ));
        }
        DrillKind::DrainTarget {
            target_group_arn,
            hold_seconds,
            ..
        } => {
            let target = snapshot
                .drained
                .as_ref()
                .map_or("no healthy target".to_string(), |t| {
                    format!("{}:{}", t.ip, t.port)
                });
            actions.push(format!(
                "deregister {target} from {target_group_arn} and hold {hold_seconds} s while the probe checks must keep passing"
            ));
            rollback.push(format!("register {target} in {target_group_arn} again"));
        }
        DrillKind::Alarm { alarm } => {
            actions.push(format!(
                "set {alarm} to ALARM (SetAlarmState) and wait for the scaler to raise {service}'s desired count above {}",
                snapshot.desired_count
            ));
            rollback.push(format!(
                "set {alarm} back to OK; the scaler's answer is the scaler's to scale in, by its own rules"
            ));
        }
    }
    if !drill.abort_alarms.is_empty() {
        actions.push(format!(
            "abort and roll back if any of {:?} goes to ALARM",
            drill.abort_alarms
        ));
    }
    (actions, rollback)
}
