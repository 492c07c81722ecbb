//! Replay: about a thousand alarm, scheduled and task events for 50 services,
//! shuffled, with duplicates and late copies (up to the six-hour maximum event
//! age), delivered one at a time as the FIFO queue delivers them, end in the
//! same desired counts and target groups as in-order, exactly-once delivery,
//! with the same changes made: each count changed once, each target
//! registered (and, once its task stopped, deregistered) once. And the same
//! with calls failing past the SDK's retries (throttles, 500s, answers lost
//! after AWS acted, 500s after AWS acted, connections reset mid-answer,
//! dropped connections): a failed invocation is delivered again later, as
//! Lambda's retries and a redrive of the failure queue do, while other events
//! go on.
//!
//! The policies have real cooldowns (one to five minutes) and the deliveries
//! span far more than that, so a copy of an alarm state change that came
//! after its service's cooldown would scale again unless the scaler knows it
//! already answered it: the decision record must say `Duplicate` for every
//! copy after the first.
//!
//! ECS's service scheduler (the emulator's) runs each service's tasks: the
//! task events replayed are the ones it emitted, for the tasks it started at
//! first, for the tasks the scale-out made it start, and for a task stopped
//! half-way and the one that replaced it. A replay has two phases: the alarms
//! and the first tasks' events; then, once the scale-out's tasks run and one
//! task of each service was stopped, those tasks' events, more copies of
//! everything, and the late copies.
//!
//! Each world lives in its own region of the shared emulator, with the real
//! adapters and handlers, and the SDK's standard retries with millisecond
//! backoff (calls failing this often would otherwise spend most of an hour
//! asleep between attempts).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, StateValue,
};
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, TimeDelta, Utc};
use e2e::{sample_event, Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::aws::request_rate::RequestBudget;
use ecs_control::config::{RegistrarConfig, ScalerConfig};
use ecs_control::invocation::InvocationError;
use registrar::handler::Registrar;
use scaler::decision::{Action, DecisionRecord};
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Once;

const SERVICES: usize = 50;
/// Deliveries of each phase of a shuffled replay, copies included (the late
/// copies come on top).
const DELIVERIES: [usize; 2] = [400, 650];
/// Reconcile ticks of the registrar in each phase.
const TICKS: usize = 5;
const CLUSTER: &str = "replay";
const STARTING_COUNT: i32 = 2;
/// The policies' scale-out cooldowns, by service, in seconds: the policy's
/// default and a little either side. Deliveries are a second apart, so every
/// cooldown runs out within the replay.
const COOLDOWNS: [u32; 3] = [60, 120, 300];
/// The oldest a late copy may be: the template's maximum event age.
const MAX_EVENT_AGE_HOURS: i64 = 6;
/// Deliveries before a failing event is given up on (the test then fails).
const MOST_ATTEMPTS: u32 = 40;
/// How far ahead the alarms' metric has datapoints, in minutes: the alarms
/// are evaluated against the wall clock and must stay in ALARM all along.
const METRIC_AHEAD_MINUTES: i64 = 40;

/// A small seeded generator: the same shuffle on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The state change of service `n`'s alarm.
    Alarm(usize),
    /// An "ECS Task State Change" the scheduler emitted.
    Task,
    /// A scheduled reconcile of the registrar.
    Tick,
}

#[derive(Clone, Debug)]
struct Event {
    kind: Kind,
    payload: Value,
}

impl Event {
    /// Only alarm and task events come late; a tick is delivered on time.
    fn may_be_late(&self) -> bool {
        self.kind != Kind::Tick
    }
}

struct ServiceWorld {
    name: String,
    target_group: String,
    /// Tasks the alarm's breach adds: 1, 2 or 3 by its step.
    adds: i32,
    cooldown_seconds: u32,
}

/// How each delivery of one service's alarm state change was answered:
/// when, and the decision record's action for the service.
type Answers = BTreeMap<usize, Vec<(DateTime<Utc>, Action)>>;

/// What one replay saw.
#[derive(Default)]
struct Replayed {
    delivered: usize,
    retried: usize,
    answers: Answers,
    /// Alarm deliveries whose record was not one decision for its service.
    odd_records: Vec<String>,
}

impl Replayed {
    fn merge(&mut self, other: Replayed) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        for (service, answers) in other.answers {
            self.answers.entry(service).or_default().extend(answers);
        }
        self.odd_records.extend(other.odd_records);
    }
}

struct World {
    region: &'static str,
    aws: Aws,
    scaler: Scaler<EcsAdapter, CloudWatchAlarms>,
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
    services: Vec<ServiceWorld>,
    /// When the alarms went to ALARM: the time every delivery is measured from.
    t0: DateTime<Utc>,
    /// The task events replayed so far, by id.
    replayed_events: BTreeSet<String>,
    /// The task stopped half-way, by service.
    stopped: BTreeMap<String, (String, String)>,
}

/// Each service's desired count and its active targets (address, port).
type Outcome = BTreeMap<String, (i32, Vec<(String, u16)>)>;

/// Target changes are logged for the whole emulator, and turning the log on
/// clears it: once, before any world acts.
fn record_target_changes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        Emulator::shared().control("POST", "target-changes", &json!({"record": true}));
    });
}

async fn world(region: &'static str) -> World {
    let emulator = Emulator::shared();
    record_target_changes();
    // ECS's scheduler keeps each service at its desired count; a task goes
    // PENDING -> RUNNING, and stopped, stays RUNNING a moment, then
    // DEPROVISIONING -> STOPPED: each change is an event.
    emulator.control(
        "POST",
        "ecs-lifecycle",
        &json!({
            "region": region, "scheduler": true,
            "provisioning_seconds": 0, "pending_seconds": 0.05, "stop_seconds": 0.05,
            "stopping_seconds": 0, "deprovisioning_seconds": 0.05,
        }),
    );
    let config = emulator.sdk_config_quick_retries(region);
    let aws = Aws::new(&config);
    let network = aws.network().await;
    let t0 = Utc::now();
    let mut services = Vec::new();
    let mut policies = Vec::new();
    let mut bindings = Vec::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i:02}");
        let target_group = aws.ip_target_group(&name, &network.vpc_id).await;
        aws.create_awsvpc_service(CLUSTER, &name, &network).await;
        aws.set_desired_count(CLUSTER, &name, STARTING_COUNT).await;
        let alarm = format!("{name}-cpu-high");
        aws.service_alarm(
            &alarm,
            (CLUSTER, &name),
            "CPUUtilization",
            ComparisonOperator::GreaterThanThreshold,
            70.0,
        )
        .await;
        // 75, 85 or 95 against 70: the +1, +2 or +3 step.
        let step = i32::try_from(i % 3).expect("small");
        let value = 75.0 + 10.0 * f64::from(step);
        put_metric_all_along(&aws, &name, value, t0).await;
        aws.set_alarm_state(&alarm, 70.0, StateValue::Alarm, value)
            .await;
        let cooldown_seconds = COOLDOWNS[(i / 3) % COOLDOWNS.len()];
        policies.push(json!({
            "alarm": alarm, "cluster": CLUSTER, "service": name,
            "adjustment_type": "ChangeInCapacity",
            "steps": [
                {"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 10, "scaling_adjustment": 1},
                {"metric_interval_lower_bound": 10, "metric_interval_upper_bound": 20, "scaling_adjustment": 2},
                {"metric_interval_lower_bound": 20, "scaling_adjustment": 3}
            ],
            "min_capacity": 1, "max_capacity": 20,
            "scale_out_cooldown_seconds": cooldown_seconds,
            "scale_in_cooldown_seconds": cooldown_seconds
        }));
        bindings.push(json!({
            "cluster": CLUSTER, "service": name,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]
        }));
        services.push(ServiceWorld {
            name,
            target_group,
            adds: step + 1,
            cooldown_seconds,
        });
    }
    for service in &services {
        running_tasks(&aws, &service.name, STARTING_COUNT).await;
    }
    // What the functions decide is under test here, not how fast they may
    // call: a thousand events through one set of adapters would otherwise
    // wait on the request budget (which its own tests cover).
    let unmetered = RequestBudget::unmetered;
    let scaler = Scaler::new(
        ScalerConfig::parse(&json!({ "policies": policies }).to_string()).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)).with_budget(unmetered()),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)).with_budget(unmetered()),
        false,
    );
    let registrar = Registrar::new(
        RegistrarConfig::parse(&json!({ "services": bindings }).to_string()).expect("config"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)).with_budget(unmetered()),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config))
            .with_budget(unmetered()),
        false,
    );
    World {
        region,
        aws,
        scaler,
        registrar,
        services,
        t0,
        replayed_events: BTreeSet::new(),
        stopped: BTreeMap::new(),
    }
}

/// The service's CPU at `value` from three minutes back to
/// [`METRIC_AHEAD_MINUTES`] on, once a minute: the emulator evaluates alarms
/// against the wall clock, and the alarm must not leave ALARM while the
/// replay runs (a late copy would then be ignored as stale, not tested).
async fn put_metric_all_along(aws: &Aws, service: &str, value: f64, t0: DateTime<Utc>) {
    let dimensions = [("ClusterName", CLUSTER), ("ServiceName", service)]
        .map(|(k, v)| Dimension::builder().name(k).value(v).build());
    let data = (-3..=METRIC_AHEAD_MINUTES).map(|minute| {
        let at = t0 + TimeDelta::minutes(minute);
        MetricDatum::builder()
            .metric_name("CPUUtilization")
            .set_dimensions(Some(dimensions.to_vec()))
            .value(value)
            .unit(StandardUnit::Percent)
            .timestamp(aws_smithy_types::DateTime::from_millis(
                at.timestamp_millis(),
            ))
            .build()
    });
    aws.cloudwatch
        .put_metric_data()
        .namespace("AWS/ECS")
        .set_metric_data(Some(data.collect()))
        .send()
        .await
        .expect("put_metric_data");
}

/// Waits until the service runs exactly `count` tasks, none of them on its
/// way out; returns them as (task ARN, address).
async fn running_tasks(aws: &Aws, service: &str, count: i32) -> Vec<(String, String)> {
    let count = usize::try_from(count).expect("positive");
    let tasks = aws
        .wait_for_tasks(
            (CLUSTER, service),
            DesiredStatus::Running,
            &format!("{count} running tasks"),
            |tasks| {
                tasks.len() == count && tasks.iter().all(|t| t.last_status() == Some("RUNNING"))
            },
        )
        .await;
    let mut tasks: Vec<(String, String)> = tasks
        .iter()
        .map(|t| {
            let ip = t
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .expect("task address");
            (t.task_arn().expect("arn").to_string(), ip.to_string())
        })
        .collect();
    tasks.sort();
    tasks
}

fn alarm_event(region: &str, alarm: &str, at: DateTime<Utc>) -> Value {
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["region"] = region.into();
    event["detail"]["alarmName"] = alarm.into();
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:{region}:123456789012:alarm:{alarm}"
    )]);
    event["detail"]["state"]["timestamp"] =
        at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string().into();
    event
}

fn tick(id: String) -> Event {
    let mut payload = sample_event("registrar/reconcile-schedule.json");
    payload["id"] = id.into();
    Event {
        kind: Kind::Tick,
        payload,
    }
}

/// Which phase of the replay: before the scale-out's tasks run, or after.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    First,
    Second,
}

impl World {
    /// The phase's distinct events, in the order things happened: the task
    /// events ECS emitted and no earlier phase replayed, then (in the first)
    /// the alarms' state changes, then the registrar's ticks.
    fn in_order(&mut self, phase: Phase) -> Vec<Event> {
        let mut events: Vec<Event> = Emulator::shared()
            .events("aws.ecs", self.region)
            .into_iter()
            .filter(|e| e["detail-type"] == "ECS Task State Change")
            .filter(|e| {
                let id = e["id"].as_str().expect("event id").to_string();
                self.replayed_events.insert(id)
            })
            .map(|payload| Event {
                kind: Kind::Task,
                payload,
            })
            .collect();
        if phase == Phase::First {
            for (i, s) in self.services.iter().enumerate() {
                events.push(Event {
                    kind: Kind::Alarm(i),
                    payload: alarm_event(self.region, &format!("{}-cpu-high", s.name), self.t0),
                });
            }
        }
        events.extend((0..TICKS).map(|i| tick(format!("registrar-tick-{phase:?}-{i}"))));
        events
    }

    /// Between the phases: the scale-out's tasks run, then one task of each
    /// service is stopped and ECS replaces it.
    async fn scale_out_done_and_a_task_stopped(&mut self) {
        // At the count the scaler set, right or wrong: the answers and the
        // outcome are judged at the end, with the whole record in view.
        let mut stopping = Vec::new();
        for s in &self.services {
            let desired = self.aws.desired_count(CLUSTER, &s.name).await;
            let tasks = running_tasks(&self.aws, &s.name, desired).await;
            let stopped = tasks[0].clone();
            self.aws.stop_task(CLUSTER, &stopped.0).await;
            stopping.push((s.name.clone(), stopped, desired));
        }
        for (service, stopped, desired) in stopping {
            self.aws.watch_task(CLUSTER, &stopped.0, "STOPPED").await;
            running_tasks(&self.aws, &service, desired).await;
            self.stopped.insert(service, stopped);
        }
    }

    async fn deliver(
        &self,
        event: &Event,
        at: DateTime<Utc>,
    ) -> Result<Option<DecisionRecord>, InvocationError> {
        match event.kind {
            Kind::Alarm(_) => self
                .scaler
                .handle(event.payload.clone(), "replay", at)
                .await
                .map(Some),
            Kind::Task | Kind::Tick => self
                .registrar
                .handle(event.payload.clone(), at)
                .await
                .map(|_| None),
        }
    }

    /// Delivers one at a time; a failed delivery must be retryable, and is
    /// delivered again a few events later (Lambda's retry, then a redrive).
    async fn replay(&self, deliveries: Vec<(Event, DateTime<Utc>)>, seed: u64) -> Replayed {
        let mut rng = SplitMix(seed);
        let mut queue: VecDeque<(Event, DateTime<Utc>, u32)> =
            deliveries.into_iter().map(|(e, at)| (e, at, 1)).collect();
        let mut replayed = Replayed::default();
        while let Some((event, at, attempt)) = queue.pop_front() {
            replayed.delivered += 1;
            match self.deliver(&event, at).await {
                Ok(Some(record)) => {
                    let Kind::Alarm(service) = event.kind else {
                        unreachable!("only alarms go to the scaler")
                    };
                    let name = &self.services[service].name;
                    match record.services.as_slice() {
                        [decision]
                            if record.ignored.is_none() && decision.service.service == *name =>
                        {
                            replayed
                                .answers
                                .entry(service)
                                .or_default()
                                .push((at, decision.action));
                        }
                        _ => replayed.odd_records.push(format!(
                            "{name} at {at}: ignored {:?}, decisions {:?}",
                            record.ignored,
                            record
                                .services
                                .iter()
                                .map(|d| (d.service.to_string(), d.action, d.reason.clone()))
                                .collect::<Vec<_>>()
                        )),
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    assert!(e.is_retryable(), "a fault must fail retryably: {e}");
                    assert!(
                        attempt < MOST_ATTEMPTS,
                        "still failing after {attempt} deliveries: {e}"
                    );
                    replayed.retried += 1;
                    let later = (1 + rng.below(20)).min(queue.len());
                    queue.insert(later, (event, at + TimeDelta::minutes(1), attempt + 1));
                }
            }
        }
        replayed
    }

    /// Each service's desired count and its target group's active targets.
    async fn outcome(&self) -> Outcome {
        let mut outcome = BTreeMap::new();
        for s in &self.services {
            let desired = self.aws.desired_count(CLUSTER, &s.name).await;
            let targets = self.aws.active_targets(&s.target_group).await;
            outcome.insert(s.name.clone(), (desired, targets));
        }
        outcome
    }

    /// What every service must end with: its step added once, and the tasks
    /// ECS runs for it registered.
    async fn expected(&self) -> Outcome {
        let mut expected = BTreeMap::new();
        for s in &self.services {
            let desired = STARTING_COUNT + s.adds;
            let mut targets: Vec<(String, u16)> = running_tasks(&self.aws, &s.name, desired)
                .await
                .into_iter()
                .map(|(_, ip)| (ip, TASK_PORT))
                .collect();
            targets.sort();
            expected.insert(s.name.clone(), (desired, targets));
        }
        expected
    }

    /// Every target change this world's target groups saw, by target
    /// address, in order.
    fn target_changes(&self) -> BTreeMap<String, Vec<String>> {
        let log = Emulator::shared().control("GET", "target-changes", &json!({}));
        let mine = format!("arn:aws:elasticloadbalancing:{}:", self.region);
        let mut changes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for change in log["changes"]
            .as_array()
            .or(log.as_array())
            .expect("the change log")
        {
            let [_, kind, group, id, _] = change.as_array().expect("a change").as_slice() else {
                panic!("a change: {change}");
            };
            if group.as_str().is_some_and(|g| g.starts_with(&mine)) {
                changes
                    .entry(id.as_str().expect("id").to_string())
                    .or_default()
                    .push(kind.as_str().expect("kind").to_string());
            }
        }
        changes
    }

    /// What exactly-once work leaves in the log: each task that runs at the
    /// end registered once, and each task stopped half-way registered once
    /// and deregistered once; nothing else, however often its events came.
    /// This world's target changes are the wanted ones. A task whose stop is
    /// delivered before any event of it running (the emulator's scheduler
    /// may still have had it PENDING when its first events were taken) is
    /// rightly never registered, so never deregistered either.
    async fn assert_target_changes(&self, what: &str) {
        let got = self.target_changes();
        let mut wanted = self.wanted_target_changes().await;
        for (_, ip) in self.stopped.values() {
            if !got.contains_key(ip) {
                wanted.remove(ip);
            }
        }
        assert_eq!(got, wanted, "{what}: each target's registrations");
    }

    async fn wanted_target_changes(&self) -> BTreeMap<String, Vec<String>> {
        let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, ip) in self.stopped.values() {
            wanted.insert(ip.clone(), vec!["register".into(), "deregister".into()]);
        }
        for s in &self.services {
            let desired = self.aws.desired_count(CLUSTER, &s.name).await;
            for (_, ip) in running_tasks(&self.aws, &s.name, desired).await {
                wanted.entry(ip).or_default().push("register".into());
            }
        }
        wanted
    }

    /// The scaler's memory agrees with the count: every recorded target is in effect.
    async fn tags_agree_with_counts(&self) {
        for s in &self.services {
            let service = self.aws.service(CLUSTER, &s.name).await;
            let desired = service.desired_count();
            let arn = service.service_arn().expect("arn");
            let tags = self.aws.service_tags(arn).await;
            assert_eq!(
                tags.get("ecs-scaler:last-target").map(String::as_str),
                Some(desired.to_string().as_str()),
                "{}: {tags:?}",
                s.name
            );
        }
    }
}

/// The phase's events, each at its delivery time, a second apart from
/// `start`.
fn once_each(events: Vec<Event>, start: DateTime<Utc>) -> Vec<(Event, DateTime<Utc>)> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e, start + seconds(i)))
        .collect()
}

fn seconds(n: usize) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(n).expect("small"))
}

/// The phase's distinct events shuffled, topped up to `deliveries` with
/// copies of these and of `earlier` events (half of them copies of alarm
/// state changes, the event whose duplicates could scale twice), a second
/// apart from `start`. In the second phase, every alarm state change and one
/// in ten other alarm and task deliveries also come once more, late (an hour
/// to six hours on).
fn shuffled(
    unique: &[Event],
    earlier: &[Event],
    deliveries: usize,
    rng: &mut SplitMix,
    (start, t0): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<(Event, DateTime<Utc>)> {
    let pool: Vec<&Event> = unique.iter().chain(earlier).collect();
    let alarms: Vec<&Event> = pool
        .iter()
        .copied()
        .filter(|e| matches!(e.kind, Kind::Alarm(_)))
        .collect();
    let mut events: Vec<Event> = unique.to_vec();
    while events.len() < deliveries {
        let copy = if !alarms.is_empty() && rng.below(2) == 0 {
            alarms[rng.below(alarms.len())]
        } else {
            pool[rng.below(pool.len())]
        };
        events.push(copy.clone());
    }
    rng.shuffle(&mut events);
    let mut late = Vec::new();
    let mut at_late = |event: &Event, rng: &mut SplitMix| {
        let minutes = 60 + rng.below(60 * (MAX_EVENT_AGE_HOURS as usize - 1));
        late.push((event.clone(), t0 + TimeDelta::minutes(minutes as i64)));
    };
    if !earlier.is_empty() {
        for alarm in &alarms {
            at_late(alarm, rng);
        }
        for event in events.iter().filter(|e| e.may_be_late()) {
            if rng.below(10) == 0 {
                at_late(event, rng);
            }
        }
    }
    let mut deliveries = once_each(events, start);
    late.sort_by_key(|(_, at)| *at);
    deliveries.extend(late);
    deliveries
}

/// The services whose outcome is not the wanted one, for a readable failure.
fn differences(got: &Outcome, want: &Outcome) -> Vec<String> {
    want.iter()
        .filter(|(name, w)| got.get(*name) != Some(w))
        .map(|(name, w)| format!("{name}: got {:?}, want {w:?}", got.get(name)))
        .collect()
}

/// Whether the alarm deliveries were answered as exactly-once delivery
/// needs: none ignored (the alarms stay in ALARM), and for each service at
/// most one `Scaled` (exactly one, first, when no call failed: a failed
/// invocation may have made the change and answered nothing) and every other
/// delivery `Duplicate`, however long after the cooldown it came. Returns
/// the problems and how many duplicates came after their service's cooldown
/// had run out.
fn judge_answers(w: &World, replayed: &Replayed, calls_fail: bool) -> (Vec<String>, usize) {
    let mut problems = replayed.odd_records.clone();
    let mut after_cooldown = 0;
    for (i, s) in w.services.iter().enumerate() {
        let answers = replayed.answers.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        let scaled: Vec<DateTime<Utc>> = answers
            .iter()
            .filter(|(_, a)| *a == Action::Scaled)
            .map(|(at, _)| *at)
            .collect();
        let right = if calls_fail {
            scaled.len() <= 1
                && answers
                    .iter()
                    .all(|(_, a)| matches!(a, Action::Scaled | Action::Duplicate))
        } else {
            answers.first().map(|(_, a)| *a) == Some(Action::Scaled)
                && answers[1..].iter().all(|(_, a)| *a == Action::Duplicate)
        };
        if !right {
            let answered: Vec<String> = answers
                .iter()
                .map(|(at, a)| format!("{a:?} at +{}s", (*at - w.t0).num_seconds()))
                .collect();
            problems.push(format!(
                "{} (cooldown {} s): {}",
                s.name,
                s.cooldown_seconds,
                answered.join(", ")
            ));
        }
        if let Some(first) = scaled.first().or(answers.first().map(|(at, _)| at)) {
            let cooldown = TimeDelta::seconds(i64::from(s.cooldown_seconds));
            after_cooldown += answers
                .iter()
                .filter(|(at, a)| *a == Action::Duplicate && *at > *first + cooldown)
                .count();
        }
    }
    (problems, after_cooldown)
}

/// The calls of the operations that change something, in `region` since `before`.
fn changes_made(region: &str, before: &BTreeMap<String, u64>) -> BTreeMap<&'static str, u64> {
    let now = Emulator::shared().calls(region);
    [
        "UpdateService",
        "TagResource",
        "UntagResource",
        "RegisterTargets",
        "DeregisterTargets",
    ]
    .into_iter()
    .map(|op| {
        let count = |calls: &BTreeMap<String, u64>| calls.get(op).copied().unwrap_or(0);
        (op, count(&now) - count(before))
    })
    .collect()
}

#[tokio::test]
async fn shuffled_duplicated_and_late_events_end_where_in_order_delivery_does() {
    let (mut reference, mut replayed) = tokio::join!(world("ap-east-1"), world("af-south-1"));
    let mut rng = SplitMix(42);
    let emulator = Emulator::shared();
    let before = (
        emulator.calls(reference.region),
        emulator.calls(replayed.region),
    );

    // First phase: in order, exactly once, beside shuffled with copies. The
    // two worlds' tasks have their own addresses: each must hold its own
    // running tasks, and the counts must be the in-order ones.
    let first = reference.in_order(Phase::First);
    let first_shuffled = replayed.in_order(Phase::First);
    let first_len = first.len();
    let deliveries = shuffled(
        &first_shuffled,
        &[],
        DELIVERIES[0],
        &mut rng,
        (replayed.t0 + seconds(1), replayed.t0),
    );
    let (mut in_order_seen, mut shuffled_seen) = tokio::join!(
        reference.replay(once_each(first, reference.t0 + seconds(1)), 1),
        replayed.replay(deliveries, 2)
    );
    tokio::join!(
        reference.scale_out_done_and_a_task_stopped(),
        replayed.scale_out_done_and_a_task_stopped()
    );

    // Second phase: the scale-out's and the stop's task events, more copies
    // of everything, and the late copies.
    let second = reference.in_order(Phase::Second);
    let second_shuffled = replayed.in_order(Phase::Second);
    let second_len = second.len();
    let deliveries = shuffled(
        &second_shuffled,
        &first_shuffled,
        DELIVERIES[1],
        &mut rng,
        (replayed.t0 + seconds(DELIVERIES[0] + 1), replayed.t0),
    );
    let late = deliveries
        .iter()
        .filter(|(_, at)| *at > replayed.t0 + TimeDelta::minutes(30))
        .count();
    let (in_order_second, shuffled_second) = tokio::join!(
        reference.replay(once_each(second, reference.t0 + seconds(first_len + 1)), 3),
        replayed.replay(deliveries, 4)
    );
    in_order_seen.merge(in_order_second);
    shuffled_seen.merge(shuffled_second);
    let changes = (
        changes_made(reference.region, &before.0),
        changes_made(replayed.region, &before.1),
    );

    let want = reference.outcome().await;
    assert_eq!(want, reference.expected().await, "in-order delivery");
    let (problems, _) = judge_answers(&reference, &in_order_seen, false);
    assert!(problems.is_empty(), "in-order delivery: {problems:#?}");
    println!(
        "replay: {} distinct events, {} deliveries ({late} late, up to {MAX_EVENT_AGE_HOURS} h), {} retried",
        first_len + second_len,
        shuffled_seen.delivered,
        shuffled_seen.retried
    );
    assert_eq!(
        in_order_seen.retried + shuffled_seen.retried,
        0,
        "no call failed"
    );

    // Every copy of an alarm state change after the first is a duplicate,
    // also when it comes long after the cooldown that would have held a
    // second scale-out anyway.
    let (problems, after_cooldown) = judge_answers(&replayed, &shuffled_seen, false);
    let copies: usize = shuffled_seen.answers.values().map(|a| a.len() - 1).sum();
    println!("replay: {copies} copies of alarm state changes, {after_cooldown} after the cooldown");
    assert!(
        problems.is_empty(),
        "copies of alarm state changes: {problems:#?}"
    );
    assert!(
        after_cooldown >= SERVICES,
        "every service sees a copy after its cooldown: {after_cooldown}"
    );

    let got = replayed.outcome().await;
    let problems = differences(&got, &replayed.expected().await);
    assert!(problems.is_empty(), "{problems:?}");
    let counts = |o: &Outcome| -> Vec<i32> { o.values().map(|(desired, _)| *desired).collect() };
    assert_eq!(counts(&got), counts(&want));
    replayed.tags_agree_with_counts().await;

    // The same changes, made once each: a count is changed (UpdateService)
    // only by the first delivery of its alarm's state change, and the
    // scaler's memory (TagResource) is written only with a change, so both
    // are one per service in either world. Each target is registered once
    // (and deregistered once, when its task stopped) in either world: a
    // copy finds it registered, a late RUNNING copy of a stopped task finds
    // the task stopped. The number of RegisterTargets and DeregisterTargets
    // calls is not the same: a tick delivered before a task's own event
    // registers (or deregisters) that task with others in one call, so
    // targets are judged one by one, from the emulator's log of the changes
    // each call made.
    println!(
        "calls that change something: in order {:?}, shuffled {:?}",
        changes.0, changes.1
    );
    for op in ["UpdateService", "TagResource", "UntagResource"] {
        assert_eq!(
            changes.1[op], changes.0[op],
            "{op} calls, shuffled vs in order"
        );
    }
    assert_eq!(
        changes.0["UpdateService"], SERVICES as u64,
        "one change per service"
    );
    assert_eq!(
        changes.0["DeregisterTargets"], SERVICES as u64,
        "one stop per group"
    );
    for w in [&reference, &replayed] {
        w.assert_target_changes(w.region).await;
    }
}

#[tokio::test]
async fn the_same_with_calls_failing_past_the_sdk_retries() {
    let region = "me-central-1";
    let mut w = world(region).await;
    let emulator = Emulator::shared();
    // Any call may be throttled, fail with a 500 or lose its connection
    // (briefly: a short hang, not the SDK's attempt timeout). A call that
    // changes something may also take effect and then lose its answer, be
    // answered 500 or reset mid-answer: so often that some fail every
    // attempt the SDK makes, and the invocation fails after the change was
    // made. Seeded, the same on every run.
    let faults = || {
        let mut seed = 7;
        let mut add = |operation: &str, kind: &str, share: f64| {
            seed += 1;
            emulator.control(
                "POST",
                "faults",
                &json!({"operation": operation, "kind": kind, "share": share,
                        "seed": seed, "region": region, "delay_seconds": 0.2}),
            );
        };
        for operation in [
            "UpdateService",
            "TagResource",
            "RegisterTargets",
            "DeregisterTargets",
        ] {
            for kind in [
                "lost_answer",
                "server_error_after_apply",
                "connection_reset",
            ] {
                add(operation, kind, 0.15);
            }
        }
        add("*", "throttle", 0.05);
        add("*", "server_error", 0.05);
        add("*", "timeout", 0.01);
    };
    // Each fault and how often it fired, over both phases (the faults are
    // lifted between them, while the test itself reads ECS).
    let mut fired: BTreeMap<String, u64> = BTreeMap::new();
    let mut lift_faults = || {
        for f in emulator.control("GET", "faults", &json!({}))["faults"]
            .as_array()
            .expect("faults")
        {
            let name = format!(
                "{} {}",
                f["operation"].as_str().unwrap_or("?"),
                f["kind"].as_str().unwrap_or("?")
            );
            *fired.entry(name).or_default() += f["fired"].as_u64().unwrap_or(0);
        }
        emulator.control("DELETE", "faults", &json!({}));
    };
    let mut rng = SplitMix(43);
    faults();
    let first = w.in_order(Phase::First);
    let deliveries = shuffled(
        &first,
        &[],
        DELIVERIES[0],
        &mut rng,
        (w.t0 + seconds(1), w.t0),
    );
    let mut seen = w.replay(deliveries, 3).await;
    lift_faults();
    w.scale_out_done_and_a_task_stopped().await;
    faults();
    let second = w.in_order(Phase::Second);
    let deliveries = shuffled(
        &second,
        &first,
        DELIVERIES[1],
        &mut rng,
        (w.t0 + seconds(DELIVERIES[0] + 1), w.t0),
    );
    seen.merge(w.replay(deliveries, 5).await);
    lift_faults();
    println!(
        "replay with faults: {} deliveries, {} failed retryably and were delivered again; faults fired: {fired:?}",
        seen.delivered, seen.retried
    );
    let unused: Vec<&String> = fired
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(f, _)| f)
        .collect();
    assert!(unused.is_empty(), "faults that never fired: {unused:?}");
    assert!(seen.retried > 0, "faults outlasted the SDK's retries");
    let (problems, _) = judge_answers(&w, &seen, true);
    assert!(
        problems.is_empty(),
        "copies of alarm state changes: {problems:#?}"
    );
    let problems = differences(&w.outcome().await, &w.expected().await);
    assert!(problems.is_empty(), "{problems:?}");
    w.tags_agree_with_counts().await;
    // A change repeated because its answer was lost changes nothing more:
    // each target is still registered (and deregistered) once.
    w.assert_target_changes("with faults").await;
}
