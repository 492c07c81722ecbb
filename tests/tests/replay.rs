//! Replay: 1,000 alarm, scheduled and task events for 50 services, shuffled,
//! with duplicates and late copies (up to the six-hour maximum event age),
//! delivered one at a time as the FIFO queue delivers them, end in the same
//! desired counts and target groups as in-order, exactly-once delivery. And the
//! same with a fifth of all AWS calls failing (throttled or 500): a failed
//! invocation is delivered again later, as Lambda's retries and a redrive of
//! the failure queue do, while other events go on.
//!
//! Each world lives in its own region of the shared emulator, with the real
//! adapters and handlers, and the SDK's standard retries with millisecond
//! backoff (a fifth of calls failing would otherwise spend most of an hour
//! asleep between attempts).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue};
use chrono::{DateTime, TimeDelta, Utc};
use e2e::{sample_event, Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::aws::request_rate::RequestBudget;
use ecs_control::config::{RegistrarConfig, ScalerConfig};
use ecs_control::invocation::InvocationError;
use registrar::handler::Registrar;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const SERVICES: usize = 50;
const EVENTS: usize = 1_000;
const TICKS: usize = 20;
const CLUSTER: &str = "replay";
/// The oldest a late copy may be: the template's maximum event age.
const MAX_EVENT_AGE_HOURS: i64 = 6;
/// Deliveries before a failing event is given up on (the test then fails).
const MOST_ATTEMPTS: u32 = 40;

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
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Function {
    Scaler,
    Registrar,
}

#[derive(Clone, Debug)]
struct Event {
    to: Function,
    payload: Value,
    /// Only alarm and task events come late; a tick is delivered on time.
    may_be_late: bool,
}

struct ServiceWorld {
    name: String,
    target_group: String,
    running: Vec<(String, String)>,
    stopped: (String, String),
    /// Tasks the alarm's breach adds: 1, 2 or 3 by its step.
    adds: i32,
}

struct World {
    region: &'static str,
    aws: Aws,
    scaler: Scaler<EcsAdapter, CloudWatchAlarms>,
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
    services: Vec<ServiceWorld>,
    /// When the alarms went to ALARM: the time every delivery is measured from.
    t0: DateTime<Utc>,
}

const STARTING_COUNT: i32 = 2;

/// Each service's desired count and its active targets (address, port).
type Outcome = BTreeMap<String, (i32, Vec<(String, u16)>)>;

async fn world(region: &'static str) -> World {
    let emulator = Emulator::shared();
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
        let mut tasks = aws.run_service_tasks(CLUSTER, &name, &network, 4).await;
        let stopped = tasks.pop().expect("four tasks");
        aws.stop_task(CLUSTER, &stopped.0).await;
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
        for minutes in 1..=3 {
            aws.put_service_metric(
                (CLUSTER, &name),
                "CPUUtilization",
                value,
                t0 - TimeDelta::minutes(minutes),
            )
            .await;
        }
        aws.set_alarm_state(&alarm, 70.0, StateValue::Alarm, value)
            .await;
        policies.push(json!({
            "alarm": alarm, "cluster": CLUSTER, "service": name,
            "adjustment_type": "ChangeInCapacity",
            "steps": [
                {"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 10, "scaling_adjustment": 1},
                {"metric_interval_lower_bound": 10, "metric_interval_upper_bound": 20, "scaling_adjustment": 2},
                {"metric_interval_lower_bound": 20, "scaling_adjustment": 3}
            ],
            "min_capacity": 1, "max_capacity": 20,
            // Every delivery of the replay falls in one cooldown, so only the
            // state change itself can act, whatever order it comes in.
            "scale_out_cooldown_seconds": 86_400
        }));
        bindings.push(json!({
            "cluster": CLUSTER, "service": name,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]
        }));
        services.push(ServiceWorld {
            name,
            target_group,
            running: tasks,
            stopped,
            adds: step + 1,
        });
    }
    for service in &services {
        aws.wait_for_deployment(CLUSTER, &service.name).await;
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
    }
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

fn task_event(sample: &str, region: &str, service: &str, (arn, ip): &(String, String)) -> Value {
    let mut event = sample_event(&format!("registrar/{sample}.json"));
    let detail = &mut event["detail"];
    detail["clusterArn"] = format!("arn:aws:ecs:{region}:123456789012:cluster/{CLUSTER}").into();
    detail["group"] = format!("service:{service}").into();
    detail["taskArn"] = arn.as_str().into();
    detail["attachments"][0]["details"][4]["value"] = ip.as_str().into();
    detail["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] = ip.as_str().into();
    event
}

fn tick(sample: &str, id: String) -> Value {
    let mut event = sample_event(sample);
    event["id"] = id.into();
    event
}

/// Every distinct event, in the order things happened.
fn in_order(w: &World) -> Vec<Event> {
    let mut events = Vec::new();
    for s in &w.services {
        events.push(Event {
            to: Function::Scaler,
            payload: alarm_event(w.region, &format!("{}-cpu-high", s.name), w.t0),
            may_be_late: true,
        });
        for task in s.running.iter().chain([&s.stopped]) {
            events.push(Event {
                to: Function::Registrar,
                payload: task_event("task-running", w.region, &s.name, task),
                may_be_late: true,
            });
        }
        events.push(Event {
            to: Function::Registrar,
            payload: task_event("task-stopped", w.region, &s.name, &s.stopped),
            may_be_late: true,
        });
    }
    for i in 0..TICKS {
        events.push(Event {
            to: Function::Scaler,
            payload: tick("scaler/recheck-schedule.json", format!("scaler-tick-{i}")),
            may_be_late: false,
        });
        events.push(Event {
            to: Function::Registrar,
            payload: tick(
                "registrar/reconcile-schedule.json",
                format!("registrar-tick-{i}"),
            ),
            may_be_late: false,
        });
    }
    events
}

/// The distinct events shuffled, topped up to [`EVENTS`] with duplicates;
/// each delivery says when it happens (late copies up to six hours on).
fn shuffled(unique: &[Event], seed: u64, t0: DateTime<Utc>) -> Vec<(Event, DateTime<Utc>)> {
    let mut rng = SplitMix(seed);
    let mut events: Vec<Event> = unique.to_vec();
    while events.len() < EVENTS {
        events.push(unique[rng.below(unique.len())].clone());
    }
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i + 1));
    }
    let mut deliveries: Vec<(Event, DateTime<Utc>)> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let on_time = t0 + TimeDelta::milliseconds(100 * i64::try_from(i).expect("small"));
            // One in ten alarm and task events arrives late.
            let late = event.may_be_late && rng.below(10) == 0;
            let at = if late {
                let minutes = 60 + rng.below(60 * (MAX_EVENT_AGE_HOURS as usize - 1));
                t0 + TimeDelta::minutes(i64::try_from(minutes).expect("small"))
            } else {
                on_time
            };
            (event, at)
        })
        .collect();
    deliveries.sort_by_key(|(_, at)| *at);
    deliveries
}

impl World {
    async fn deliver(&self, event: &Event, at: DateTime<Utc>) -> Result<(), InvocationError> {
        match event.to {
            Function::Scaler => self
                .scaler
                .handle(event.payload.clone(), "replay", at)
                .await
                .map(drop),
            Function::Registrar => self
                .registrar
                .handle(event.payload.clone(), at)
                .await
                .map(drop),
        }
    }

    /// Delivers one at a time; a failed delivery must be retryable, and is
    /// delivered again a few events later (Lambda's retry, then a redrive).
    async fn replay(&self, deliveries: Vec<(Event, DateTime<Utc>)>, seed: u64) -> (usize, usize) {
        let mut rng = SplitMix(seed);
        let mut queue: std::collections::VecDeque<(Event, DateTime<Utc>, u32)> =
            deliveries.into_iter().map(|(e, at)| (e, at, 1)).collect();
        let (mut delivered, mut retried) = (0, 0);
        while let Some((event, at, attempt)) = queue.pop_front() {
            delivered += 1;
            if let Err(e) = self.deliver(&event, at).await {
                assert!(e.is_retryable(), "a fault must fail retryably: {e}");
                assert!(
                    attempt < MOST_ATTEMPTS,
                    "still failing after {attempt} deliveries: {e}"
                );
                retried += 1;
                let later = (1 + rng.below(20)).min(queue.len());
                queue.insert(later, (event, at + TimeDelta::minutes(1), attempt + 1));
            }
        }
        (delivered, retried)
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

    /// What every service must end with: its step added once, and its
    /// running tasks registered.
    fn expected(&self) -> Outcome {
        self.services
            .iter()
            .map(|s| {
                let mut targets: Vec<(String, u16)> = s
                    .running
                    .iter()
                    .map(|(_, ip)| (ip.clone(), TASK_PORT))
                    .collect();
                targets.sort();
                (s.name.clone(), (STARTING_COUNT + s.adds, targets))
            })
            .collect()
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

/// The services whose outcome is not the wanted one, for a readable failure.
fn differences(got: &Outcome, want: &Outcome) -> Vec<String> {
    want.iter()
        .filter(|(name, w)| got.get(*name) != Some(w))
        .map(|(name, w)| format!("{name}: got {:?}, want {w:?}", got.get(name)))
        .collect()
}

#[tokio::test]
async fn shuffled_duplicated_and_late_events_end_where_in_order_delivery_does() {
    let (reference, replayed) = tokio::join!(world("ap-east-1"), world("af-south-1"));

    // In order, exactly once.
    let unique = in_order(&reference);
    let once_each: Vec<(Event, DateTime<Utc>)> = unique
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = reference.t0 + TimeDelta::milliseconds(100 * i64::try_from(i).expect("small"));
            (e.clone(), at)
        })
        .collect();
    // Shuffled, with duplicates and late copies, beside it. The two worlds'
    // tasks have their own addresses: each must hold its own running tasks,
    // and the counts must be the in-order ones.
    let deliveries = shuffled(&in_order(&replayed), 42, replayed.t0);
    let late = deliveries
        .iter()
        .filter(|(_, at)| *at > replayed.t0 + TimeDelta::minutes(30))
        .count();
    let (_, (delivered, retried)) = tokio::join!(
        reference.replay(once_each, 1),
        replayed.replay(deliveries, 2)
    );
    let want = reference.outcome().await;
    assert_eq!(want, reference.expected(), "in-order delivery");
    println!(
        "replay: {} distinct events, {delivered} deliveries ({late} late, up to {MAX_EVENT_AGE_HOURS} h), {retried} retried",
        unique.len()
    );
    assert_eq!(retried, 0, "no call failed");
    let got = replayed.outcome().await;
    let problems = differences(&got, &replayed.expected());
    assert!(problems.is_empty(), "{problems:?}");
    let counts = |o: &Outcome| -> Vec<i32> { o.values().map(|(desired, _)| *desired).collect() };
    assert_eq!(counts(&got), counts(&want));
    replayed.tags_agree_with_counts().await;
}

#[tokio::test]
async fn the_same_with_a_fifth_of_all_calls_failing() {
    let region = "me-central-1";
    let w = world(region).await;
    let emulator = Emulator::shared();
    // Half throttled, half 500s: a fifth of every call in the region, seeded.
    for (kind, seed) in [("throttle", 7), ("server_error", 11)] {
        emulator.control(
            "POST",
            "faults",
            &json!({"operation": "*", "kind": kind, "share": 0.1, "seed": seed, "region": region}),
        );
    }
    let deliveries = shuffled(&in_order(&w), 42, w.t0);
    let (delivered, retried) = w.replay(deliveries, 3).await;
    emulator.control("DELETE", "faults", &json!({}));
    println!("replay with faults: {delivered} deliveries, {retried} failed retryably and were delivered again");
    assert!(retried > 0, "faults were injected");
    let problems = differences(&w.outcome().await, &w.expected());
    assert!(problems.is_empty(), "{problems:?}");
    w.tags_agree_with_counts().await;
}
