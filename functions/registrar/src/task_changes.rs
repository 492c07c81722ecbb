//! Task events, one sent directly or a queue batch's run of them, handled
//! together: each task reduced to its newest state, the tasks confirmed with
//! ECS in one `DescribeTasks` (100 a call), then each target group they
//! concern read once and changed in as few calls as its targets need
//! (200 a call). A fleet's deploy burst costs a few calls a batch, not a few
//! calls an event.

use crate::events::{self, TaskEvent, Trigger};
use crate::handler::{GroupDecision, Registrar, RegistrarRecord, TaskDecision};
use chrono::{DateTime, Utc};
use ecs_control::config::registrar::TargetGroupBinding;
use ecs_control::domain::registration::{
    action_for, foreign_task, newest_state, still_holds_address, HealthState, ServiceTasks, Target,
    TaskAction, TaskInfo,
};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{EcsTasks, FailureKind, PortError, TargetGroups};
use futures::{stream, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::Mutex;

/// A group whose change concerns at most this many targets is read with the
/// targets named (a smaller answer from a large group); more, and the whole
/// group is read. Either way, one call.
const NAMED_READ_LIMIT: usize = 100;

/// One task's part in the run: its newest state, what ECS says now, and what
/// is done about it.
struct TaskPlan {
    service: ServiceRef,
    decision: TaskDecision,
    /// The state acted on: ECS's for a registration, the event's for a stop.
    acted_on: Option<TaskInfo>,
}

/// What one group is asked to do by the run.
#[derive(Default)]
struct GroupChanges {
    services: BTreeSet<ServiceRef>,
    /// Targets of running tasks, by task.
    register: BTreeMap<Target, String>,
    /// Targets of stopping tasks, by task, and whether ECS shows the task
    /// still holding the address (then no other task can hold it).
    deregister: BTreeMap<Target, (String, bool)>,
}

/// How one group ended, as the run's events need it.
struct GroupOutcome {
    decision: GroupDecision,
    failure: Option<PortError>,
}

impl<T: EcsTasks, G: TargetGroups> Registrar<T, G> {
    /// `body` as a task event this registrar acts on, or `None` (anything
    /// else is handled on its own: commands, other services' tasks, tasks not
    /// yet running, dry runs).
    pub(crate) fn acting_task_event(&self, body: &Value) -> Option<TaskEvent> {
        let invocation = events::parse(body.clone()).ok()?;
        let Trigger::TaskChange {
            cluster,
            service: Some(service),
            task,
        } = invocation.trigger
        else {
            return None;
        };
        if invocation.dry_run || matches!(action_for(&task), TaskAction::Wait(_)) {
            return None;
        }
        let service = ServiceRef::new(&cluster, &service);
        let binding = self.config.binding(&service)?;
        let groups = binding
            .target_groups
            .iter()
            .map(|g| g.target_group_arn.as_str());
        if foreign_task(&task.task_arn, groups).is_some() {
            return None;
        }
        Some(TaskEvent {
            cluster,
            service,
            task: *task,
        })
    }

    /// Handles `events` together into `record`, and answers each event: its
    /// failure is the failure of a group its task concerns (a refused
    /// target fails only the events of that target).
    pub(crate) async fn on_task_events(
        &self,
        events: &[TaskEvent],
        record: &mut RegistrarRecord,
    ) -> Vec<Result<(), InvocationError>> {
        // Each task to its newest state.
        let mut by_task: BTreeMap<&str, Vec<&TaskEvent>> = BTreeMap::new();
        for event in events {
            by_task.entry(&event.task.task_arn).or_default().push(event);
        }
        let mut plans: BTreeMap<String, TaskPlan> = BTreeMap::new();
        for (arn, seen) in &by_task {
            let states: Vec<TaskInfo> = seen.iter().map(|e| e.task.clone()).collect();
            let Some(newest) = newest_state(&states) else {
                continue;
            };
            plans.insert(
                (*arn).to_string(),
                TaskPlan {
                    service: seen[0].service.clone(),
                    decision: TaskDecision {
                        service: seen[0].service.clone(),
                        action: action_for(&newest),
                        from_event: newest,
                        from_ecs: None,
                        note: (seen.len() > 1).then(|| {
                            format!("{} events of this task, the newest acted on", seen.len())
                        }),
                    },
                    acted_on: None,
                },
            );
        }

        // One read of ECS for every task of the run, by cluster.
        let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for event in events {
            let arns = by_cluster.entry(&event.cluster).or_default();
            if !arns.contains(&event.task.task_arn) {
                arns.push(event.task.task_arn.clone());
            }
        }
        let mut unread: BTreeMap<String, PortError> = BTreeMap::new();
        let mut current: BTreeMap<String, TaskInfo> = BTreeMap::new();
        for (cluster, arns) in &by_cluster {
            match self.ecs.describe_tasks(cluster, arns).await {
                Ok(found) => current.extend(found),
                Err(e) => {
                    for arn in arns {
                        unread.insert(arn.clone(), e.clone());
                    }
                }
            }
        }
        for (arn, plan) in &mut plans {
            if unread.contains_key(arn) {
                continue;
            }
            confirm(plan, current.get(arn).cloned(), record.decided_at);
        }

        // What each group is asked to do.
        let mut groups: BTreeMap<(String, u16), (TargetGroupBinding, GroupChanges)> =
            BTreeMap::new();
        // Groups in the order the bindings name them, as the record shows them.
        let mut order: Vec<(String, u16)> = Vec::new();
        let mut unaddressed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (arn, plan) in &plans {
            let Some(task) = &plan.acted_on else { continue };
            let Some(binding) = self.config.binding(&plan.service) else {
                continue;
            };
            for group in &binding.target_groups {
                let Some(ip) = task.address(group.address_family) else {
                    unaddressed.entry(arn.clone()).or_default().push(format!(
                        "{}: the task has no {:?} address",
                        group.target_group_arn, group.address_family
                    ));
                    continue;
                };
                let key = (group.target_group_arn.clone(), group.port);
                if !groups.contains_key(&key) {
                    order.push(key.clone());
                }
                let (_, changes) = groups
                    .entry(key)
                    .or_insert_with(|| (group.clone(), GroupChanges::default()));
                changes.services.insert(plan.service.clone());
                let target = Target::new(ip, group.port);
                if plan.decision.action == TaskAction::Register {
                    changes.register.insert(target, arn.clone());
                } else {
                    let holds = plan
                        .decision
                        .from_ecs
                        .as_ref()
                        .is_some_and(|now| still_holds_address(now, group.address_family, ip));
                    changes.deregister.insert(target, (arn.clone(), holds));
                }
            }
        }

        let listed: Mutex<BTreeMap<ServiceRef, Result<ServiceTasks, PortError>>> =
            Mutex::new(BTreeMap::new());
        let dry_run = record.dry_run;
        let in_order = order.into_iter().filter_map(|key| groups.remove(&key));
        let outcomes: Vec<GroupOutcome> = stream::iter(in_order)
            .map(|(binding, changes)| self.change_group(binding, changes, &listed, dry_run))
            .buffered(crate::handler::CALLS_IN_FLIGHT)
            .collect()
            .await;

        // Each event's answer, from its task's groups.
        let answers = events
            .iter()
            .map(|event| {
                let arn = &event.task.task_arn;
                if let Some(e) = unread.get(arn) {
                    return Err(InvocationError::Aws(e.clone()));
                }
                let Some(plan) = plans.get(arn) else {
                    return Ok(());
                };
                let Some(task) = &plan.acted_on else {
                    return Ok(());
                };
                let mut failures = Vec::new();
                let mut concerned = 0;
                for outcome in &outcomes {
                    let decision = &outcome.decision;
                    let Some(binding) = self.config.binding(&event.service) else {
                        continue;
                    };
                    let Some(group) = binding.target_groups.iter().find(|g| {
                        g.target_group_arn == decision.target_group_arn && g.port == decision.port
                    }) else {
                        continue;
                    };
                    let Some(ip) = task.address(group.address_family) else {
                        continue;
                    };
                    concerned += 1;
                    let target = Target::new(ip, group.port);
                    if let Some(refusal) = decision.refused.iter().find(|r| r.target == target) {
                        failures.push(PortError::new(
                            FailureKind::Rejected,
                            "elasticloadbalancing:RegisterTargets",
                            format!("ELBv2 refused {ip}:{}: {}", group.port, refusal.error),
                        ));
                    } else if let Some(e) = &outcome.failure {
                        // A refusal is its own target's failure, not the group's.
                        if e.kind != FailureKind::Rejected || decision.refused.is_empty() {
                            failures.push(e.clone());
                        }
                    }
                }
                InvocationError::from_failures(failures, concerned.max(1), "target groups")
            })
            .collect();

        for (arn, plan) in plans {
            let mut decision = plan.decision;
            if let Some(why) = unaddressed.get(&arn) {
                let why = why.join("; ");
                decision.note = Some(match decision.note {
                    Some(note) => format!("{note}; {why}"),
                    None => why,
                });
            }
            record.tasks.push(decision);
        }
        record
            .groups
            .extend(outcomes.into_iter().map(|o| o.decision));
        answers
    }

    /// One group: read once (the targets named when few), planned, changed.
    async fn change_group(
        &self,
        binding: TargetGroupBinding,
        changes: GroupChanges,
        listed: &Mutex<BTreeMap<ServiceRef, Result<ServiceTasks, PortError>>>,
        dry_run: bool,
    ) -> GroupOutcome {
        let mut decision = GroupDecision::new(&binding, changes.services.iter().cloned().collect());
        let result = async {
            let concerned: Vec<Target> = changes
                .register
                .keys()
                .chain(changes.deregister.keys())
                .cloned()
                .collect();
            let current = if concerned.len() <= NAMED_READ_LIMIT {
                self.elb
                    .targets_among(&binding.target_group_arn, &concerned)
                    .await?
            } else {
                self.elb.targets(&binding.target_group_arn).await?
            };
            decision.seen = crate::handler::count_states(&current, binding.port);
            let state = |target: &Target| {
                current
                    .iter()
                    .find(|r| &r.target == target)
                    .map(|r| r.state)
            };
            let mut notes = Vec::new();
            for target in changes.register.keys() {
                match state(target) {
                    // ELBv2 keeps a deregistered target until its deregistration
                    // delay ends; a reconcile after that registers it.
                    Some(HealthState::Draining) => {
                        notes.push(format!(
                            "not registered: {}:{} is still draining; a reconcile registers it once drained",
                            target.ip, target.port
                        ));
                        decision.diff.wait_for_drain.push(target.clone());
                    }
                    Some(_) => decision.diff.unchanged += 1,
                    None => decision.diff.register.push(target.clone()),
                }
            }
            for (target, (task_arn, holds)) in &changes.deregister {
                match state(target) {
                    None => {}
                    Some(HealthState::Draining) => decision.diff.draining += 1,
                    // A running task of this run took the address over.
                    Some(_) if changes.register.contains_key(target) => {
                        notes.push(format!(
                            "not deregistered: {}:{} now belongs to running task {}",
                            target.ip, target.port, changes.register[target]
                        ));
                        decision.held_back.push(target.clone());
                    }
                    Some(_) if *holds => decision.diff.deregister.push(target.clone()),
                    Some(_) => match self
                        .running_holder(&binding, target, task_arn, listed)
                        .await?
                    {
                        None => decision.diff.deregister.push(target.clone()),
                        Some(why) => {
                            notes.push(why);
                            decision.held_back.push(target.clone());
                        }
                    },
                }
            }
            if !notes.is_empty() {
                decision.note = Some(notes.join("; "));
            }
            self.apply(&binding, dry_run, &mut decision).await
        }
        .await;
        let failure = result.err();
        decision.error = failure.as_ref().map(ToString::to_string);
        GroupOutcome { decision, failure }
    }

    /// Why `target` of a stopping task must stay: a running task of a
    /// service bound to the group holds its address now (addresses are
    /// reused, and a late stop must not remove the task that took it over),
    /// or the running tasks are not fully known. `None` when it can go. Each
    /// service is listed at most once a run.
    async fn running_holder(
        &self,
        group: &TargetGroupBinding,
        target: &Target,
        stopped_task: &str,
        listed: &Mutex<BTreeMap<ServiceRef, Result<ServiceTasks, PortError>>>,
    ) -> Result<Option<String>, PortError> {
        let mut unknown = Vec::new();
        for bound in self
            .config
            .services_bound_to(&group.target_group_arn, group.port)
        {
            let mut listed = listed.lock().await;
            if !listed.contains_key(&bound.service) {
                let tasks = self.ecs.service_tasks(&bound.service).await;
                listed.insert(bound.service.clone(), tasks);
            }
            let tasks = match &listed[&bound.service] {
                Ok(tasks) => tasks,
                Err(e) => return Err(e.clone()),
            };
            let holder = tasks.tasks.iter().find(|t| {
                t.task_arn != stopped_task
                    && action_for(t) == TaskAction::Register
                    && t.address(group.address_family) == Some(target.ip.as_str())
            });
            if let Some(holder) = holder {
                return Ok(Some(format!(
                    "not deregistered: {}:{} now belongs to running task {}",
                    target.ip, target.port, holder.task_arn
                )));
            }
            let missing = tasks
                .missing
                .iter()
                .filter(|arn| *arn != stopped_task)
                .count();
            if missing > 0 {
                unknown.push(format!(
                    "{missing} listed task(s) of {} were missing from DescribeTasks",
                    bound.service
                ));
            }
        }
        Ok((!unknown.is_empty()).then(|| {
            format!(
                "not deregistered: the running tasks are not fully known ({})",
                unknown.join("; ")
            )
        }))
    }
}

/// Settles a task's plan against what ECS says now. Events arrive late and
/// out of order: a task is registered only if ECS says it runs now. A stop is
/// final, so a stopping task is deregistered whatever ECS says; ECS's view
/// only tells whether the task still holds its address.
/// A task the scaler is draining ahead of a scale-in is not registered
/// again until its drain ends (or the drain's bound passes).
fn confirm(plan: &mut TaskPlan, now: Option<TaskInfo>, at: DateTime<Utc>) {
    let event = plan.decision.from_event.clone();
    plan.decision.from_ecs.clone_from(&now);
    match plan.decision.action {
        TaskAction::Deregister => plan.acted_on = Some(event),
        TaskAction::Register => match now {
            Some(now) if now.held_for_drain(at) => {
                plan.decision.note = Some(format!(
                    "held out: the scaler is draining this task ahead of a scale-in (until {})",
                    now.drain_hold_until
                        .map_or_else(String::new, |t| t.to_rfc3339())
                ));
            }
            Some(now) if action_for(&now) == TaskAction::Register => {
                plan.acted_on = Some(TaskInfo {
                    private_ip: now.private_ip.clone().or(event.private_ip),
                    private_ipv6: now.private_ipv6.clone().or(event.private_ipv6),
                    ..now
                });
            }
            None => {
                plan.decision.note = Some("stale event: ECS no longer knows the task".into());
            }
            Some(now) => {
                plan.decision.note = Some(format!(
                    "stale event (task version {}): ECS says the task is now {} with desired status {} (version {})",
                    version(event.version),
                    now.last_status,
                    now.desired_status,
                    version(now.version)
                ));
            }
        },
        TaskAction::Wait(_) => {}
    }
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}
