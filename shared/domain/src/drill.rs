//! Drills: a named, bounded experiment on a service, gated by a steady-state
//! hypothesis before and judged by it after, with abort alarms, a rollback to
//! the snapshot taken before acting, and a lock so one service has one drill
//! at a time. These are the drill's pure rules; the drill function does the I/O.

use super::policy::CapacityBounds;
use super::probe::ProbeCheck;
use super::registration::{HealthState, RegisteredTarget, Target};
use super::service::ServiceRef;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// Plan reads only; execute acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Plan,
    Execute,
}

/// When the snapshot is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackPolicy {
    Always,
    OnFailure,
    Never,
}

/// Where a `scale` drill moves the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleTo {
    Count(u32),
    Step(i64),
}

/// How many tasks a `stop_tasks` drill stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCount {
    Tasks(u32),
    Percent(u32),
}

/// What the drill does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DrillKind {
    /// Set the count (or move it by a step), hold it, then restore it.
    Scale { to: ScaleTo, hold_seconds: u32 },
    /// Stop tasks of the service (chosen by service, never by pinned ARN) and
    /// watch it recover: running back to desired, targets healthy again.
    /// `graceful`: drain the chosen tasks' targets first (up to the bound in
    /// seconds), as a drain-first scale-in does; `None` stops them at once,
    /// to rehearse a crash.
    StopTasks {
        count: StopCount,
        graceful: Option<u32>,
    },
    /// Deregister one healthy target, hold while the checks keep passing, then
    /// register it again.
    DrainTarget {
        target_group_arn: String,
        port: u16,
        hold_seconds: u32,
    },
    /// Force an alarm into ALARM and watch the scaler answer it.
    Alarm { alarm: String },
}

impl DrillKind {
    pub fn name(&self) -> &'static str {
        match self {
            DrillKind::Scale { .. } => "scale",
            DrillKind::StopTasks { .. } => "stop_tasks",
            DrillKind::DrainTarget { .. } => "drain_target",
            DrillKind::Alarm { .. } => "alarm",
        }
    }
}

/// How a drill picks the tasks it stops or the target it drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// At random, as FIS does: no task or target is always the one hurt.
    Random,
    /// The first in order (task ARN, target address): the same one every time.
    First,
}

/// A target group that must keep at least this many healthy targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthyFloor {
    pub target_group_arn: String,
    pub min_healthy: u32,
}

/// What must hold before the drill acts, and again after.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hypothesis {
    pub running_equals_desired: bool,
    pub target_groups: Vec<HealthyFloor>,
    /// Probe checks that must pass.
    pub probe_checks: Vec<ProbeCheck>,
}

/// A validated drill; built only by the configuration loader.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    pub name: String,
    pub service: ServiceRef,
    pub kind: DrillKind,
    pub steady_state: Hypothesis,
    pub abort_alarms: Vec<String>,
    pub max_duration_seconds: u32,
    pub poll_seconds: u32,
    pub rollback: RollbackPolicy,
    pub selection: Selection,
}

/// The service as a hypothesis check sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Observation {
    pub desired: u32,
    pub running: u32,
    /// Healthy targets per watched target group ARN.
    pub healthy: Vec<(String, u32)>,
    /// Probe checks that failed, with why.
    pub failed_checks: Vec<(String, String)>,
}

/// What breaks the hypothesis in `seen`; empty when it holds.
pub fn violations(hypothesis: &Hypothesis, seen: &Observation) -> Vec<String> {
    let mut found = Vec::new();
    if hypothesis.running_equals_desired && seen.running != seen.desired {
        found.push(format!(
            "running {} is not the desired {}",
            seen.running, seen.desired
        ));
    }
    for floor in &hypothesis.target_groups {
        let healthy = seen
            .healthy
            .iter()
            .find(|(arn, _)| *arn == floor.target_group_arn)
            .map_or(0, |(_, n)| *n);
        if healthy < floor.min_healthy {
            found.push(format!(
                "{} has {healthy} healthy targets, fewer than {}",
                floor.target_group_arn, floor.min_healthy
            ));
        }
    }
    for (check, why) in &seen.failed_checks {
        found.push(format!("check {check} failed: {why}"));
    }
    found
}

/// The count a `scale` drill sets, from the desired count found.
pub fn scaled_count(desired: u32, to: ScaleTo) -> u32 {
    match to {
        ScaleTo::Count(n) => n,
        ScaleTo::Step(step) => {
            let moved = i64::from(desired).saturating_add(step).max(0);
            u32::try_from(moved).unwrap_or(u32::MAX)
        }
    }
}

/// How many of `running` tasks a `stop_tasks` drill asks to stop: a
/// percentage rounds down (the blast radius is never larger than asked), but
/// at least 1 (a drill that stops nothing proves nothing).
pub fn stop_count(running: u32, count: StopCount) -> u32 {
    match count {
        StopCount::Tasks(n) => n,
        StopCount::Percent(p) => {
            let share = u64::from(running) * u64::from(p.min(100)) / 100;
            u32::try_from(share).unwrap_or(running).max(1)
        }
    }
}

/// The fewest running tasks a drill may leave its service with:
/// `max(1, the steady state's min_healthy, the scaler's min_capacity if known)`.
pub fn task_floor(hypothesis: &Hypothesis, scaler: Option<CapacityBounds>) -> u32 {
    let min_healthy = hypothesis
        .target_groups
        .iter()
        .map(|f| f.min_healthy)
        .max()
        .unwrap_or(0);
    1.max(min_healthy).max(scaler.map_or(0, |b| b.min))
}

/// The tasks a `stop_tasks` drill stops out of `running`, or why it is refused:
/// it never leaves fewer than `floor` running.
///
/// # Errors
/// The refusal, in words, when stopping would cross the floor.
pub fn stop_plan(running: u32, count: StopCount, floor: u32) -> Result<u32, String> {
    let stop = stop_count(running, count);
    let spare = running.saturating_sub(floor);
    if stop > spare {
        return Err(format!(
            "stopping {stop} of {running} running tasks would leave {}, below the floor of {floor} \
             (max of 1, the steady state's min_healthy and the scaler's min_capacity)",
            running.saturating_sub(stop)
        ));
    }
    Ok(stop)
}

/// The count a `scale` drill sets from `desired`, or why it is refused: never
/// below `floor`, never above the scaler's max_capacity when it is known.
///
/// # Errors
/// The refusal, in words, when the count would leave the service's bounds.
pub fn scale_plan(
    desired: u32,
    to: ScaleTo,
    floor: u32,
    scaler: Option<CapacityBounds>,
) -> Result<u32, String> {
    let target = scaled_count(desired, to);
    if target < floor {
        return Err(format!(
            "a desired count of {target} is below the floor of {floor} \
             (max of 1, the steady state's min_healthy and the scaler's min_capacity)"
        ));
    }
    if let Some(max) = scaler.map(|b| b.max).filter(|max| target > *max) {
        return Err(format!(
            "a desired count of {target} is above the scaler's max_capacity {max}"
        ));
    }
    Ok(target)
}

/// The targets a `drain_target` drill may drain from a group's `targets`:
/// healthy, on `port`, at the address of one of its own service's running tasks
/// (`service_ips`: a group shared with another service is never drained of the
/// other's targets), and only while the rest of the group keeps at least
/// `max(1, min_healthy)` healthy targets (a group's last healthy target is
/// never drained). Sorted by address.
///
/// # Errors
/// Why no target may be drained.
pub fn drain_candidates(
    targets: &[RegisteredTarget],
    port: u16,
    service_ips: &[String],
    min_healthy: u32,
) -> Result<Vec<Target>, String> {
    let healthy = targets
        .iter()
        .filter(|t| t.state == HealthState::Healthy)
        .count();
    let healthy = u32::try_from(healthy).unwrap_or(u32::MAX);
    let floor = min_healthy.max(1);
    if healthy.saturating_sub(1) < floor {
        return Err(format!(
            "draining one of the group's {healthy} healthy targets would leave fewer than {floor}: \
             a group's last healthy targets are never drained"
        ));
    }
    let mut own: Vec<Target> = targets
        .iter()
        .filter(|t| t.state == HealthState::Healthy && t.target.port == port)
        .filter(|t| service_ips.contains(&t.target.ip))
        .map(|t| t.target.clone())
        .collect();
    own.sort_by(|a, b| (&a.ip, a.port).cmp(&(&b.ip, b.port)));
    if own.is_empty() {
        return Err(format!(
            "no healthy target on port {port} belongs to a running task of the drill's service"
        ));
    }
    Ok(own)
}

/// How a drill ended (or where it stands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Plan mode: nothing was done.
    Planned,
    /// The steady state did not hold, or another drill holds the service.
    Refused { why: String },
    /// Acting and observing continue in a later invocation.
    InProgress,
    /// The steady state held after the drill.
    Passed,
    /// The drill's observation or the after-check failed.
    Failed { why: String },
    /// An abort alarm went to ALARM.
    Aborted { alarm: String },
    /// The rollback failed or its read-back disagreed: the lock is kept, and
    /// the sweep tries again once it expires.
    RollbackFailed { why: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Refused { .. } => "refused",
            Outcome::InProgress => "in_progress",
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::Aborted { .. } => "aborted",
            Outcome::RollbackFailed { .. } => "rollback_failed",
        }
    }
}

/// Whether the snapshot is restored after `outcome`. An abort always rolls
/// back: an abort alarm means users are hurt. A failed after-check rolls back
/// unless the policy is `never`.
pub fn rolls_back(policy: RollbackPolicy, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Aborted { .. } => true,
        Outcome::Passed => policy == RollbackPolicy::Always,
        Outcome::Failed { .. } => policy != RollbackPolicy::Never,
        Outcome::Planned
        | Outcome::Refused { .. }
        | Outcome::InProgress
        | Outcome::RollbackFailed { .. } => false,
    }
}

/// What one poll of a running drill found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// Abort alarms in ALARM.
    pub alarms_in_alarm: Vec<String>,
    /// Whether what the drill waits for has happened (the hold is over, the
    /// service recovered, the scaler answered).
    pub done: bool,
    /// Something that fails the drill at once (a check failing while a target drains).
    pub failure: Option<String>,
}

/// What to do after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    KeepPolling,
    /// Observation done: run the after-check.
    Verify,
    /// Stop now with this outcome (and roll back as the policy says).
    Stop(Outcome),
    /// This invocation's time is up: save the state, return, continue later.
    Suspend,
}

/// The rule for one poll at `now`: an abort wins, then a failure, then done;
/// past the drill's deadline it fails; past this invocation's end it suspends.
pub fn after_poll(
    poll: &Poll,
    now: DateTime<Utc>,
    drill_deadline: DateTime<Utc>,
    invocation_end: DateTime<Utc>,
) -> Next {
    if let Some(alarm) = poll.alarms_in_alarm.first() {
        return Next::Stop(Outcome::Aborted {
            alarm: alarm.clone(),
        });
    }
    if let Some(why) = &poll.failure {
        return Next::Stop(Outcome::Failed { why: why.clone() });
    }
    if poll.done {
        return Next::Verify;
    }
    if now >= drill_deadline {
        return Next::Stop(Outcome::Failed {
            why: "the drill's max_duration_seconds ran out before what it waits for happened"
                .into(),
        });
    }
    if now >= invocation_end {
        return Next::Suspend;
    }
    Next::KeepPolling
}

/// Closer than this to the invocation's end, a drill suspends rather than sleeps.
pub const MIN_PAUSE: TimeDelta = TimeDelta::seconds(1);

/// How long to wait before the next poll, decided before sleeping; `None`
/// when this invocation should suspend now. Never longer than `poll_seconds`,
/// than half of what is left of the invocation (the other half is kept for the
/// poll and a rollback, so a Lambda is never stopped mid-sleep), or than what is
/// left before the drill's deadline (judged at the deadline, not after it).
pub fn pause(
    poll_seconds: u32,
    now: DateTime<Utc>,
    drill_deadline: DateTime<Utc>,
    invocation_end: DateTime<Utc>,
) -> Option<TimeDelta> {
    let left = invocation_end - now;
    if left <= MIN_PAUSE {
        return None;
    }
    let wait = TimeDelta::seconds(i64::from(poll_seconds))
        .min(left / 2)
        .min(drill_deadline - now);
    Some(wait.max(TimeDelta::zero()))
}

/// The outcome of the after-check.
pub fn after_check(violations: &[String]) -> Outcome {
    if violations.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed {
            why: format!("after the drill: {}", violations.join("; ")),
        }
    }
}

/// What rollback restores: the service as it was before the drill acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub desired_count: u32,
    /// The target a `drain_target` drill deregistered, to register again.
    pub drained: Option<Target>,
}

/// The lock on a service: which drill holds it, until when, which invocation
/// wrote it, and until when that invocation runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    pub drill_id: String,
    pub expires_at: DateTime<Utc>,
    /// A token unique to the invocation that wrote the lock: only it acts
    /// under the lock, and only it releases it.
    pub holder: String,
    /// While an invocation drives the drill: when it ends. `continue` is
    /// refused until then, so one drill never has two drivers.
    pub busy_until: Option<DateTime<Utc>>,
}

/// The lock as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Free,
    Held(Lock),
    /// A drill that crashed or was abandoned: its state must be rolled back.
    Expired(Lock),
}

/// The service tag a drill's lock is kept in: the drill function writes it,
/// the scaler reads it to hold scale-in while a drill holds the service.
pub const DRILL_LOCK_TAG: &str = "ecs-drill:lock";

impl Lock {
    /// As a tag value: `<drill id>@<expiry>@<holder>@<busy until or 0>`, epoch seconds.
    pub fn encode(&self) -> String {
        format!(
            "{}@{}@{}@{}",
            self.drill_id,
            self.expires_at.timestamp(),
            self.holder,
            self.busy_until.map_or(0, |t| t.timestamp())
        )
    }

    /// Whether an invocation is driving the drill at `now`.
    pub fn busy(&self, now: DateTime<Utc>) -> bool {
        self.busy_until.is_some_and(|until| now < until)
    }

    /// The lock a tag value holds, as of `now`. A value from before the lock
    /// had a holder (`<drill id>@<expiry>`) reads as held by nobody in particular.
    pub fn state(raw: Option<&str>, now: DateTime<Utc>) -> LockState {
        let mut parts = raw.unwrap_or_default().split('@');
        let (Some(id), Some(at)) = (parts.next(), parts.next()) else {
            return LockState::Free;
        };
        let Some(expires_at) = at.parse().ok().and_then(|s| DateTime::from_timestamp(s, 0)) else {
            return LockState::Free;
        };
        let holder = parts.next().unwrap_or_default().to_string();
        let busy_until = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| *s > 0)
            .and_then(|s| DateTime::from_timestamp(s, 0));
        let lock = Lock {
            drill_id: id.to_string(),
            expires_at,
            holder,
            busy_until,
        };
        if now < expires_at {
            LockState::Held(lock)
        } else {
            LockState::Expired(lock)
        }
    }
}

/// How long a lock outlives the drill's own deadline, for the last rollback.
pub const LOCK_GRACE: TimeDelta = TimeDelta::minutes(2);

/// What a drill saves on the service between invocations (one tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedState {
    pub drill_id: String,
    pub drill_name: String,
    pub deadline: DateTime<Utc>,
    pub snapshot: Snapshot,
    /// The alarm an `alarm` drill forced, to set back to OK.
    pub alarm: Option<String>,
    /// The group a `drain_target` drill drained, to register the target in
    /// again: a recovery needs no drill document.
    pub target_group_arn: Option<String>,
    /// What the drill itself did to the desired count (a `scale` drill's
    /// change; 0 for the others, whose count ECS or the scaler moves). The
    /// rollback takes it back off the count it finds, so a real scale-out
    /// made during the drill is kept. `None` in a state saved before the
    /// delta was: the count goes back to the snapshot's.
    pub count_delta: Option<i64>,
    /// Whether the drill's change is known to have been made: the state is
    /// saved before acting and saved again once the change succeeded. Not
    /// known (a crash or a failed call between the two), the rollback only
    /// ever adds back what the drill may have removed, never takes away what
    /// it may not have added.
    pub delta_confirmed: bool,
    /// The count a rollback settled on, saved before it is set: a rollback
    /// run again sets the same count instead of taking the delta off twice.
    pub restore_to: Option<u32>,
}

impl SavedState {
    /// `<id>/<name>/<deadline epoch>/<desired>/<ip>:<port>/<alarm>/<group ARN>`,
    /// `-` for what is absent; the ARN last, as it holds `/` itself.
    pub fn encode(&self) -> String {
        let drained = self
            .snapshot
            .drained
            .as_ref()
            .map_or("-".to_string(), |t| format!("{}:{}", t.ip, t.port));
        // `u` marks a delta not known to be made (ECS tag values allow letters,
        // digits, spaces and `_.:/=+-@` only).
        let mark = if self.delta_confirmed { "" } else { "u" };
        let count = match (self.count_delta, self.restore_to) {
            (None, _) => self.snapshot.desired_count.to_string(),
            (Some(delta), None) => format!("{}:{mark}{delta}", self.snapshot.desired_count),
            (Some(delta), Some(to)) => {
                format!("{}:{mark}{delta}:{to}", self.snapshot.desired_count)
            }
        };
        format!(
            "{}/{}/{}/{count}/{drained}/{}/{}",
            self.drill_id,
            self.drill_name,
            self.deadline.timestamp(),
            self.alarm.as_deref().unwrap_or("-"),
            self.target_group_arn.as_deref().unwrap_or("-"),
        )
    }

    /// Reads [`SavedState::encode`]'s form, or the older one without alarm and group.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(7, '/');
        let drill_id = parts.next()?.to_string();
        let drill_name = parts.next()?.to_string();
        let deadline = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
        let mut count = parts.next()?.split(':');
        let desired_count = count.next()?.parse().ok()?;
        let (count_delta, delta_confirmed) = match count.next() {
            None => (None, false),
            Some(delta) => match delta.strip_prefix('u') {
                Some(unconfirmed) => (Some(unconfirmed.parse().ok()?), false),
                None => (Some(delta.parse().ok()?), true),
            },
        };
        let restore_to = match count.next() {
            None => None,
            Some(to) => Some(to.parse().ok()?),
        };
        let drained = match parts.next()? {
            "-" => None,
            target => {
                let (ip, port) = target.rsplit_once(':')?;
                Some(Target::new(ip, port.parse().ok()?))
            }
        };
        let present = |part: &str| (part != "-").then(|| part.to_string());
        let (alarm, target_group_arn) = match (parts.next(), parts.next()) {
            (None, None) => (None, None),
            (Some(alarm), Some(group)) => (present(alarm), present(group)),
            _ => return None,
        };
        Some(Self {
            drill_id,
            drill_name,
            deadline,
            snapshot: Snapshot {
                desired_count,
                drained,
            },
            alarm,
            target_group_arn,
            count_delta,
            delta_confirmed,
            restore_to,
        })
    }

    /// The count a rollback sets, given the count found now: the one already
    /// settled on; else the drill's own delta taken off today's count, within
    /// the scaler's bounds when known; else (a state without a delta) the
    /// snapshot's count.
    pub fn restore_count(&self, found: u32, bounds: Option<CapacityBounds>) -> u32 {
        if let Some(to) = self.restore_to {
            return to;
        }
        let Some(mut delta) = self.count_delta else {
            return self.snapshot.desired_count;
        };
        if !self.delta_confirmed {
            // The count as the change would leave it says it was made (or,
            // as the snapshot, that it was not); anything else is ambiguous.
            let before = i64::from(self.snapshot.desired_count);
            let found = i64::from(found);
            delta = if found == before + delta {
                delta
            } else if found == before {
                0
            } else {
                delta.min(0)
            };
        }
        let undone = (i64::from(found) - delta).max(0);
        match bounds {
            Some(bounds) => bounds.clamp(undone),
            None => u32::try_from(undone).unwrap_or(u32::MAX),
        }
    }
}

/// Characters a drill name may hold: it travels in tag values and ids.
pub fn valid_drill_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap_or_default()
    }

    fn poll(alarms: &[&str], done: bool, failure: Option<&str>) -> Poll {
        Poll {
            alarms_in_alarm: alarms.iter().map(|a| a.to_string()).collect(),
            done,
            failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn the_state_machine_stops_suspends_or_verifies() {
        let (deadline, end) = (at(600), at(60));
        let cases = [
            (
                poll(&["web-5xx"], true, None),
                at(10),
                Next::Stop(Outcome::Aborted {
                    alarm: "web-5xx".into(),
                }),
            ),
            (
                poll(&[], true, Some("check home failed")),
                at(10),
                Next::Stop(Outcome::Failed {
                    why: "check home failed".into(),
                }),
            ),
            (poll(&[], true, None), at(10), Next::Verify),
            (poll(&[], false, None), at(10), Next::KeepPolling),
            (poll(&[], false, None), at(61), Next::Suspend),
        ];
        for (p, now, expected) in cases {
            assert_eq!(after_poll(&p, now, deadline, end), expected, "{p:?}");
        }
        match after_poll(&poll(&[], false, None), at(601), deadline, at(700)) {
            Next::Stop(Outcome::Failed { why }) => assert!(why.contains("max_duration_seconds")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pause_never_outlasts_the_invocation_or_the_drill() {
        let (deadline, end) = (at(600), at(60));
        let cases = [
            // Plenty of time: the full poll.
            (10, at(0), Some(TimeDelta::seconds(10))),
            // A 60 s poll with 20 s left sleeps 10 s: half of what is left.
            (60, at(40), Some(TimeDelta::seconds(10))),
            // Within a second of the end: suspend, do not sleep.
            (10, at(59), None),
            (10, at(70), None),
        ];
        for (poll, now, expected) in cases {
            assert_eq!(pause(poll, now, deadline, end), expected, "{poll} at {now}");
        }
        // Two seconds before the drill's deadline, the next poll is at the deadline.
        assert_eq!(
            pause(10, at(598), deadline, at(900)),
            Some(TimeDelta::seconds(2))
        );
        assert_eq!(
            pause(10, at(601), deadline, at(900)),
            Some(TimeDelta::zero())
        );
    }

    #[test]
    fn rollback_follows_the_policy_and_always_follows_an_abort() {
        let failed = after_check(&["running 1 is not the desired 2".into()]);
        let aborted = Outcome::Aborted { alarm: "a".into() };
        use RollbackPolicy::*;
        let cases = [
            (Always, Outcome::Passed, true),
            (OnFailure, Outcome::Passed, false),
            (Never, Outcome::Passed, false),
            // The rollback runs even when the after-check fails.
            (Always, failed.clone(), true),
            (OnFailure, failed.clone(), true),
            (Never, failed, false),
            (Never, aborted.clone(), true),
            (OnFailure, aborted, true),
            (Always, Outcome::Planned, false),
        ];
        for (policy, outcome, expected) in cases {
            assert_eq!(
                rolls_back(policy, &outcome),
                expected,
                "{policy:?} {outcome:?}"
            );
        }
    }

    #[test]
    fn a_rollback_takes_off_the_drills_own_delta_and_keeps_a_real_scale_out() {
        let saved = |delta: Option<i64>, restore_to: Option<u32>| SavedState {
            drill_id: "scale-web-1".into(),
            drill_name: "scale-web".into(),
            deadline: at(600),
            snapshot: Snapshot {
                desired_count: 6,
                drained: None,
            },
            alarm: None,
            target_group_arn: None,
            count_delta: delta,
            delta_confirmed: true,
            restore_to,
        };
        let bounds = CapacityBounds { min: 2, max: 10 };
        // The drill scaled 6 -> 3 (delta -3); the scaler then added 2 for real load.
        assert_eq!(saved(Some(-3), None).restore_count(5, None), 8);
        // Within the scaler's bounds.
        assert_eq!(saved(Some(-3), None).restore_count(9, Some(bounds)), 10);
        assert_eq!(saved(Some(4), None).restore_count(3, Some(bounds)), 2);
        // A drill that did not change the count leaves today's count alone.
        assert_eq!(saved(Some(0), None).restore_count(7, None), 7);
        // Settled once: the same count however often the rollback runs.
        assert_eq!(saved(Some(-3), Some(8)).restore_count(8, None), 8);
        assert_eq!(saved(Some(-3), Some(8)).restore_count(5, None), 8);
        // A state saved without a delta goes back to the snapshot.
        assert_eq!(saved(None, None).restore_count(9, None), 6);
        // Never below zero.
        assert_eq!(saved(Some(5), None).restore_count(2, None), 0);
        // Not known to have been made: what the drill may have removed is
        // added back, what it may not have added is not taken away.
        let unconfirmed = |delta| SavedState {
            delta_confirmed: false,
            ..saved(Some(delta), None)
        };
        // The snapshot is 6: a count of 6 + delta says the change was made,
        // a count of 6 that it was not; any other, only add back.
        assert_eq!(unconfirmed(-3).restore_count(3, None), 6);
        assert_eq!(unconfirmed(2).restore_count(8, None), 6);
        assert_eq!(unconfirmed(2).restore_count(6, None), 6);
        assert_eq!(unconfirmed(-3).restore_count(6, None), 6);
        assert_eq!(unconfirmed(-3).restore_count(4, None), 7);
        assert_eq!(unconfirmed(2).restore_count(9, None), 9);
    }

    #[test]
    fn a_crashed_drill_is_found_by_its_expired_lock_and_its_saved_state() {
        let saved = SavedState {
            drill_id: "scale-web-1790000000".into(),
            drill_name: "scale-web".into(),
            deadline: at(600),
            snapshot: Snapshot {
                desired_count: 2,
                drained: Some(Target::new("10.0.1.5", 8080)),
            },
            alarm: Some("web-cpu-high".into()),
            target_group_arn: Some(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123".into(),
            ),
            count_delta: Some(-1),
            delta_confirmed: true,
            restore_to: None,
        };
        assert_eq!(SavedState::decode(&saved.encode()), Some(saved.clone()));
        let settled = SavedState {
            restore_to: Some(3),
            ..saved.clone()
        };
        assert_eq!(SavedState::decode(&settled.encode()), Some(settled));
        let unconfirmed = SavedState {
            delta_confirmed: false,
            ..saved.clone()
        };
        assert_eq!(
            SavedState::decode(&unconfirmed.encode()),
            Some(unconfirmed.clone())
        );
        // Every form is a valid ECS tag value.
        for state in [&saved, &unconfirmed] {
            let value = state.encode();
            assert!(
                value
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)),
                "{value}"
            );
        }
        let older = SavedState::decode("scale-web-1/scale-web/1790000600/2/-").expect("older");
        assert_eq!((older.alarm, older.target_group_arn), (None, None));
        let lock = Lock {
            drill_id: saved.drill_id.clone(),
            expires_at: saved.deadline + LOCK_GRACE,
            holder: "a1b2".into(),
            busy_until: Some(at(60)),
        };
        let tag = lock.encode();
        assert!(matches!(
            Lock::state(Some(&tag), at(100)),
            LockState::Held(_)
        ));
        // The next invocation after the lock expired finds it, and the state says what to restore.
        assert_eq!(Lock::state(Some(&tag), at(721)), LockState::Expired(lock));
        assert_eq!(Lock::state(None, at(0)), LockState::Free);
        assert_eq!(Lock::state(Some("garbage"), at(0)), LockState::Free);
        match Lock::state(Some(&tag), at(100)) {
            LockState::Held(held) => {
                assert!(!held.busy(at(100)), "its invocation ended at 60");
                assert!(held.busy(at(59)));
            }
            other => panic!("{other:?}"),
        }
        // A lock written before it had a holder still reads.
        assert!(matches!(
            Lock::state(Some("scale-web-1@1790000600"), at(100)),
            LockState::Held(Lock {
                busy_until: None,
                ..
            })
        ));
        assert_eq!(SavedState::decode("a/b/x/2/-"), None);
    }

    #[test]
    fn a_drain_takes_only_its_own_service_and_never_the_last_healthy_target() {
        let target = |ip: &str, port, state| RegisteredTarget {
            target: Target::new(ip, port),
            state,
            reason: None,
        };
        let own = vec!["10.0.0.2".to_string(), "10.0.0.3".to_string()];
        let shared = [
            target("10.0.0.1", 8080, HealthState::Healthy), // another service's
            target("10.0.0.2", 8080, HealthState::Healthy),
            target("10.0.0.3", 8080, HealthState::Draining),
            target("10.0.0.3", 9090, HealthState::Healthy), // another port
        ];
        assert_eq!(
            drain_candidates(&shared, 8080, &own, 1),
            Ok(vec![Target::new("10.0.0.2", 8080)])
        );
        // Three healthy in all: draining one leaves two, not three.
        assert!(drain_candidates(&shared, 8080, &own, 3).is_err());
        assert!(drain_candidates(&shared[..1], 8080, &own, 0).is_err());
        let only = [target("10.0.0.2", 8080, HealthState::Healthy)];
        assert!(
            drain_candidates(&only, 8080, &own, 0).is_err(),
            "the last one"
        );
    }

    #[test]
    fn a_drill_never_crosses_the_floor_it_is_given() {
        let bounds = Some(CapacityBounds { min: 2, max: 10 });
        let floor = |min_healthy: u32, scaler| {
            let hypothesis = Hypothesis {
                target_groups: vec![HealthyFloor {
                    target_group_arn: "tg".into(),
                    min_healthy,
                }],
                ..Hypothesis::default()
            };
            task_floor(&hypothesis, scaler)
        };
        assert_eq!(task_floor(&Hypothesis::default(), None), 1);
        assert_eq!(floor(3, bounds), 3);
        assert_eq!(floor(0, bounds), 2);
        // 33% of one task is no task: at least one, and then nothing is left.
        assert!(stop_plan(1, StopCount::Percent(33), 1).is_err());
        assert!(stop_plan(3, StopCount::Tasks(5), 1).is_err());
        assert_eq!(stop_plan(3, StopCount::Tasks(2), 1), Ok(2));
        assert_eq!(stop_plan(2, StopCount::Percent(33), 1), Ok(1));
        assert!(stop_plan(2, StopCount::Percent(33), 2).is_err());
        // Rounds down: 99% of 10 is 9, and 9 leave 1.
        assert_eq!(stop_plan(10, StopCount::Percent(99), 1), Ok(9));
        assert_eq!(scale_plan(2, ScaleTo::Step(3), 1, bounds), Ok(5));
        assert!(scale_plan(2, ScaleTo::Step(-1), 2, bounds).is_err());
        assert!(scale_plan(4, ScaleTo::Count(0), 1, None).is_err());
        assert!(scale_plan(4, ScaleTo::Count(11), 1, bounds).is_err());
        assert_eq!(scale_plan(4, ScaleTo::Count(11), 1, None), Ok(11));
    }

    #[test]
    fn counts_and_hypotheses() {
        assert_eq!(stop_count(5, StopCount::Percent(50)), 2);
        assert_eq!(stop_count(1, StopCount::Percent(10)), 1);
        assert_eq!(stop_count(3, StopCount::Tasks(9)), 9);
        assert_eq!(scaled_count(4, ScaleTo::Step(-9)), 0);
        assert_eq!(scaled_count(4, ScaleTo::Count(6)), 6);
        let hypothesis = Hypothesis {
            running_equals_desired: true,
            target_groups: vec![HealthyFloor {
                target_group_arn: "tg".into(),
                min_healthy: 2,
            }],
            probe_checks: Vec::new(),
        };
        let seen = Observation {
            desired: 3,
            running: 2,
            healthy: vec![("tg".into(), 1)],
            failed_checks: vec![("home".into(), "status 503".into())],
        };
        assert_eq!(violations(&hypothesis, &seen).len(), 3);
        let fine = Observation {
            desired: 2,
            running: 2,
            healthy: vec![("tg".into(), 2)],
            failed_checks: Vec::new(),
        };
        assert!(violations(&hypothesis, &fine).is_empty());
    }
}
