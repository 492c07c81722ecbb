//! `make fleet`: does the control loop keep up at fleet scale? Prints one
//! table; a benchmark, not a test (it asserts only that its set-up worked).
//!
//! On the emulator with AWS's request rates enforced (`tests/emulator/rates.py`)
//! and 30 ms added to every call:
//!
//! - a cluster of 300 awsvpc services and 5,000 running tasks, each service
//!   bound to an `ip` target group that holds its tasks;
//! - two rolling deploys of 50 services each (20 tasks a service, all
//!   replaced: `RunTask` for each new task, `StopTask` for each old one), whose
//!   "ECS Task State Change" events (RUNNING, and desired STOPPED) enter one
//!   SQS FIFO message group: 2,000 events within 60 s a deploy. The first as
//!   ECS runs a rolling update with its defaults (a service's new tasks start
//!   together, its old ones stop together once the new pass their health
//!   checks); the second the worst case for coalescing (one task at a time
//!   per service, round-robin, so no batch holds two events of one service);
//! - the queue as an event source mapping delivers it: batches of up to 10,
//!   one batch in flight, to the registrar's built binary through a stand-in
//!   Lambda runtime API; a message listed in the partial batch response comes
//!   back after the queue's visibility timeout and holds the group until then;
//!   after `maxReceiveCount` receives it goes to the dead-letter queue;
//! - then one scaler tick over 300 services with target tracking, through the
//!   scaler's built binary (a warm process: the second tick is measured).
//!
//! The harness's own ECS writes (`RunTask`, `StopTask`) share the emulator
//! with the registrar but not its buckets (ECS meters them as cluster
//! resource modify actions); they are left out of the registrar's calls.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a harness fails loudly

use aws_sdk_ecs::types::LaunchType;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use chrono::Utc;
use e2e::runtime_api::RuntimeApi;
use e2e::{sample_event, workspace_root, Aws, Emulator, Network, TASK_PORT};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

const REGION: &str = "us-east-1";
const CLUSTER: &str = "fleet";
const SERVICES: usize = 300;
const DEPLOYING: usize = 50;
/// The deploys measured, each of its own 50 services.
const SHAPES: [Shape; 2] = [Shape::EcsDefaults, Shape::OneAtATime];
/// Tasks of each deploying service, all replaced: 50 × 20 = 1,000 tasks, two
/// events each, a deploy.
const DEPLOY_TASKS: usize = 20;
/// Tasks of each other service: 200 × 15 = 3,000, so 5,000 in all.
const OTHER_TASKS: usize = 15;
const LATENCY_MS: u32 = 30;
/// The deploy: a step every 300 ms for 60 s, five replacements a step.
const STEPS: usize = 200;
const STEP: Duration = Duration::from_millis(300);
const PER_STEP: usize = DEPLOYING * DEPLOY_TASKS / STEPS;
/// The event source mapping's batch size on a FIFO queue.
const BATCH: usize = 10;
/// `infra/template.yaml`: the registrar queue's visibility timeout and
/// `maxReceiveCount`.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(720);
const MAX_RECEIVES: u32 = 10;
/// How long the run waits, once the deploy is over, for messages held back by
/// their visibility timeout before they count as not delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn service_name(i: usize) -> String {
    format!("svc-{i:03}")
}

fn fleet_dir() -> PathBuf {
    workspace_root().join("target/fleet")
}

/// One service of the fleet: its group and its tasks (ARN, IP).
#[derive(Clone)]
struct FleetService {
    name: String,
    group: String,
    tasks: Vec<(String, String)>,
}

/// A task event on its way through the queue.
#[derive(Clone)]
struct Message {
    id: String,
    body: Value,
    /// Wall-clock second the event was sent.
    sent: f64,
    receives: u32,
    visible_at: Instant,
    /// What should land: ("register" | "deregister", group ARN, IP).
    change: (&'static str, String, String),
}

/// A network with room for 6,000 tasks' addresses (a /18).
async fn network(emulator: &Emulator) -> Network {
    let answer = emulator.control(
        "POST",
        "network",
        &json!({"region": REGION, "ipv6": false, "subnet_cidr": "10.0.0.0/18"}),
    );
    let field = |name: &str| answer[name].as_str().expect(name).to_string();
    Network {
        vpc_id: field("vpc_id"),
        subnet_id: field("subnet_id"),
        security_group_id: field("security_group_id"),
    }
}

async fn seed_service(aws: Aws, network: Network, i: usize) -> FleetService {
    let name = service_name(i);
    let count = if i < DEPLOYING * SHAPES.len() {
        DEPLOY_TASKS
    } else {
        OTHER_TASKS
    };
    let group = aws.ip_target_group(&name, &network.vpc_id).await;
    aws.create_awsvpc_service(CLUSTER, &name, &network).await;
    aws.set_desired_count(CLUSTER, &name, i32::try_from(count).expect("small"))
        .await;
    let tasks = aws.run_service_tasks(CLUSTER, &name, &network, count).await;
    let targets: Vec<TargetDescription> = tasks
        .iter()
        .map(|(_, ip)| {
            TargetDescription::builder()
                .id(ip)
                .port(i32::from(TASK_PORT))
                .build()
        })
        .collect();
    aws.elbv2
        .register_targets()
        .target_group_arn(&group)
        .set_targets(Some(targets))
        .send()
        .await
        .expect("register_targets");
    FleetService { name, group, tasks }
}

/// The fleet, seeded with rates off (ECS takes one `CreateService` a 200 ms).
async fn seed(aws: &Aws, network: &Network) -> Vec<FleetService> {
    let mut set = JoinSet::new();
    let mut fleet = Vec::with_capacity(SERVICES);
    for i in 0..SERVICES {
        if set.len() >= 8 {
            fleet.push(set.join_next().await.expect("task").expect("seed"));
        }
        set.spawn(seed_service(aws.clone(), network.clone(), i));
    }
    while let Some(done) = set.join_next().await {
        fleet.push(done.expect("seed"));
    }
    fleet.sort_by(|a, b| a.name.cmp(&b.name));
    fleet
}

/// An "ECS Task State Change" event as EventBridge puts it in the queue.
fn task_event(service: &str, task_arn: &str, ip: &str, running: bool, version: i64) -> Value {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut detail = json!({
        "clusterArn": format!("arn:aws:ecs:{REGION}:123456789012:cluster/{CLUSTER}"),
        "taskArn": task_arn,
        "group": format!("service:{service}"),
        "lastStatus": "RUNNING",
        "desiredStatus": if running { "RUNNING" } else { "STOPPED" },
        "version": version,
        "startedAt": now,
        "launchType": "FARGATE",
        "attachments": [{"type": "eni", "status": "ATTACHED", "details": [
            {"name": "privateIPv4Address", "value": ip}
        ]}],
        "containers": [{"name": "web", "networkInterfaces": [{"privateIpv4Address": ip}]}]
    });
    if !running {
        detail["stopCode"] = "ServiceSchedulerInitiated".into();
    }
    json!({
        "version": "0", "id": format!("fleet-{task_arn}-{version}"),
        "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": now, "region": REGION,
        "resources": [task_arn], "detail": detail
    })
}

fn sqs_batch(messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.id,
                "receiptHandle": format!("handle-{}-{}", m.id, m.receives),
                "body": m.body.to_string(),
                "attributes": {
                    "ApproximateReceiveCount": m.receives.to_string(),
                    "MessageGroupId": "registrar",
                    "SentTimestamp": format!("{:.0}", m.sent * 1000.0),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:registrar.fifo"),
                "awsRegion": REGION
            })
        })
        .collect();
    json!({ "Records": records })
}

/// How a deploy replaces a service's tasks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// ECS's rolling update with its defaults (minimum healthy 100 %, maximum
    /// 200 %): a service's new tasks all start together, and its old ones are
    /// stopped together once the new ones pass their health checks (10 s
    /// here). The 50 services begin a second apart.
    EcsDefaults,
    /// The worst case for coalescing: each service replaces one task at a
    /// time (maximum 105 %), round-robin across the 50, five replacements
    /// every 300 ms, so no two events of a batch share a service.
    OneAtATime,
}

impl Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::EcsDefaults => {
                "ECS's rolling-update defaults (min 100 %, max 200 %): each service starts its 20 new tasks together and stops its old ones 10 s later, services a second apart"
            }
            Shape::OneAtATime => {
                "worst case for coalescing: one task at a time per service, round-robin over the 50, no two events of a batch of the same service"
            }
        }
    }
}

/// One harness action of a deploy: start a new task of a service, or stop
/// one of its old tasks.
#[derive(Clone, Copy)]
enum Step {
    Start(usize),
    Stop(usize, usize),
}

/// When each action of a deploy of `services` happens, from its start.
fn schedule(shape: Shape, services: &[usize]) -> Vec<(Duration, Step)> {
    let mut plan = Vec::new();
    match shape {
        Shape::EcsDefaults => {
            for (k, &s) in services.iter().enumerate() {
                let begin = Duration::from_millis(960 * u64::try_from(k).expect("small"));
                for t in 0..DEPLOY_TASKS {
                    plan.push((begin, Step::Start(s)));
                    plan.push((begin + Duration::from_secs(10), Step::Stop(s, t)));
                }
            }
        }
        Shape::OneAtATime => {
            let order = (0..DEPLOY_TASKS).flat_map(|t| services.iter().map(move |&s| (s, t)));
            for (n, (s, t)) in order.enumerate() {
                let at = STEP * u32::try_from(n / PER_STEP).expect("small");
                plan.push((at, Step::Start(s)));
                plan.push((at, Step::Stop(s, t)));
            }
        }
    }
    plan.sort_by_key(|(at, _)| *at);
    plan
}

/// Starts one task of `service` as its service would; its ARN and IP.
async fn start_task(aws: &Aws, network: &Network, service: &FleetService) -> (String, String) {
    let started = aws
        .ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&service.name)
        .group(format!("service:{}", service.name))
        .launch_type(LaunchType::Fargate)
        .count(1)
        .network_configuration(network_configuration(network))
        .send()
        .await
        .expect("run_task");
    let task = started.tasks().first().expect("a task").clone();
    let arn = task.task_arn().expect("arn").to_string();
    let ip = task
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .expect("ip")
        .to_string();
    (arn, ip)
}

/// The deploy: carries out the schedule in 300 ms steps and queues each
/// action's event (RUNNING for a started task, desired STOPPED for a stopped one).
async fn deploy(
    aws: Aws,
    network: Network,
    fleet: Vec<FleetService>,
    plan: Vec<(Duration, Step)>,
    queue: Arc<Mutex<VecDeque<Message>>>,
    prefix: &'static str,
) {
    let start = Instant::now();
    let mut plan: VecDeque<(Duration, Step)> = plan.into();
    let mut sequence = 0usize;
    let mut step = 0u32;
    while !plan.is_empty() {
        tokio::time::sleep_until((start + STEP * step).into()).await;
        step += 1;
        let mut set = JoinSet::new();
        while plan.front().is_some_and(|(at, _)| *at <= start.elapsed()) {
            let (_, action) = plan.pop_front().expect("front");
            let (aws, network, fleet) = (aws.clone(), network.clone(), fleet.clone());
            set.spawn(async move {
                match action {
                    Step::Start(s) => {
                        let (arn, ip) = start_task(&aws, &network, &fleet[s]).await;
                        (fleet[s].clone(), arn, ip, true)
                    }
                    Step::Stop(s, t) => {
                        let (arn, ip) = fleet[s].tasks[t].clone();
                        aws.stop_task(CLUSTER, &arn).await;
                        (fleet[s].clone(), arn, ip, false)
                    }
                }
            });
        }
        while let Some(done) = set.join_next().await {
            let (service, arn, ip, running) = done.expect("deploy action");
            let sent = epoch_now();
            sequence += 1;
            queue.lock().expect("queue").push_back(Message {
                id: format!("{prefix}-{sequence:05}"),
                body: task_event(
                    &service.name,
                    &arn,
                    &ip,
                    running,
                    if running { 3 } else { 4 },
                ),
                sent,
                receives: 0,
                visible_at: Instant::now(),
                change: (
                    if running { "register" } else { "deregister" },
                    service.group.clone(),
                    ip,
                ),
            });
        }
    }
}

fn network_configuration(network: &Network) -> aws_sdk_ecs::types::NetworkConfiguration {
    use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, NetworkConfiguration};
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets(&network.subnet_id)
                .security_groups(&network.security_group_id)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .expect("awsvpc configuration"),
        )
        .build()
}

/// What the queue path did.
#[derive(Default)]
struct Delivery {
    events: usize,
    invocations: usize,
    failed_invocations: usize,
    redelivered: usize,
    dead_lettered: Vec<Message>,
    undelivered: Vec<Message>,
    delivered: Vec<Message>,
}

/// The event source mapping: one batch in flight, FIFO order in one group.
async fn consume(
    api: &mut RuntimeApi,
    queue: Arc<Mutex<VecDeque<Message>>>,
    producing: tokio::task::JoinHandle<()>,
) -> Delivery {
    let mut delivery = Delivery::default();
    let mut producer_done_at: Option<Instant> = None;
    loop {
        if producer_done_at.is_none() && producing.is_finished() {
            producer_done_at = Some(Instant::now());
        }
        let batch: Vec<Message> = {
            let mut queue = queue.lock().expect("queue");
            let now = Instant::now();
            let mut batch = Vec::new();
            // A FIFO group delivers from its head only, and not while the
            // head waits out its visibility timeout.
            while batch.len() < BATCH && queue.front().is_some_and(|m| m.visible_at <= now) {
                let mut message = queue.pop_front().expect("front");
                message.receives += 1;
                batch.push(message);
            }
            batch
        };
        if batch.is_empty() {
            let empty = queue.lock().expect("queue").is_empty();
            match producer_done_at {
                Some(_) if empty => break,
                Some(done) if done.elapsed() > DRAIN_LIMIT => {
                    delivery
                        .undelivered
                        .extend(queue.lock().expect("queue").drain(..));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            continue;
        }
        if delivery.invocations > 0 {
            // The stand-in runtime API keeps a note of each poll for the next
            // event; take it, so its notes never fill up.
            let _ = api.ready(Duration::from_millis(200)).await;
        }
        delivery.invocations += 1;
        let (_, outcome) = api
            .invoke(sqs_batch(&batch), Duration::from_secs(130))
            .await
            .expect("the registrar answers");
        let failed: BTreeSet<String> = if outcome.kind == "response" {
            serde_json::from_str::<Value>(&outcome.body)
                .ok()
                .and_then(|v| v["batchItemFailures"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        } else {
            delivery.failed_invocations += 1;
            batch.iter().map(|m| m.id.clone()).collect()
        };
        let mut back = Vec::new();
        for mut message in batch {
            if !failed.contains(&message.id) {
                delivery.delivered.push(message);
            } else if message.receives >= MAX_RECEIVES {
                delivery.dead_lettered.push(message);
            } else {
                delivery.redelivered += 1;
                message.visible_at = Instant::now() + VISIBILITY_TIMEOUT;
                back.push(message);
            }
        }
        let mut queue = queue.lock().expect("queue");
        for message in back.into_iter().rev() {
            queue.push_front(message);
        }
    }
    delivery.events = delivery.delivered.len()
        + delivery.dead_lettered.len()
        + delivery.undelivered.len()
        + queue.lock().expect("queue").len();
    delivery
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The IPs of each service's running tasks, as ECS lists them.
async fn running_ips(aws: &Aws, service: &str) -> BTreeSet<String> {
    let mut ips = BTreeSet::new();
    let mut token = None;
    loop {
        let page = aws
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(service)
            .set_next_token(token)
            .send()
            .await
            .expect("list_tasks");
        if !page.task_arns().is_empty() {
            let described = aws
                .ecs
                .describe_tasks()
                .cluster(CLUSTER)
                .set_tasks(Some(page.task_arns().to_vec()))
                .send()
                .await
                .expect("describe_tasks");
            for task in described.tasks() {
                if task.last_status() != Some("RUNNING") || task.desired_status() != Some("RUNNING")
                {
                    continue;
                }
                if let Some(ip) = task
                    .attachments()
                    .iter()
                    .flat_map(|a| a.details())
                    .find(|d| d.name() == Some("privateIPv4Address"))
                    .and_then(|d| d.value())
                {
                    ips.insert(ip.to_string());
                }
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return ips;
        }
    }
}

/// Services whose group's active targets differ from their running tasks.
async fn mismatched(aws: &Aws, fleet: &[FleetService]) -> Vec<String> {
    let mut set = JoinSet::new();
    let mut wrong = Vec::new();
    for service in fleet.iter().cloned() {
        if set.len() >= 8 {
            if let Some(name) = set.join_next().await.expect("check").expect("check") {
                wrong.push(name);
            }
        }
        let aws = aws.clone();
        set.spawn(async move {
            let expected = running_ips(&aws, &service.name).await;
            let active: BTreeSet<String> = aws
                .active_targets(&service.group)
                .await
                .into_iter()
                .map(|(ip, _)| ip)
                .collect();
            (expected != active).then_some(service.name)
        });
    }
    while let Some(done) = set.join_next().await {
        if let Some(name) = done.expect("check") {
            wrong.push(name);
        }
    }
    wrong.sort();
    wrong
}

fn calls_without(calls: &BTreeMap<String, u64>, harness: &[&str]) -> (u64, String) {
    let mine: Vec<(&String, &u64)> = calls
        .iter()
        .filter(|(op, _)| !harness.contains(&op.as_str()))
        .collect();
    let total = mine.iter().map(|(_, n)| **n).sum();
    let list = mine
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (total, list)
}

/// Lines of the registrar's log that carry a throttling error.
fn throttled_records(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("Throttling") || l.contains("Rate exceeded"))
        .count()
}

struct TickResult {
    calls: u64,
    list: String,
    first_calls: String,
    seconds: f64,
    throttled: u64,
    outcome: String,
}

/// A function's built binary against a stand-in runtime API, its output in
/// `target/fleet/<function>.log`.
async fn start_function(
    emulator: &Emulator,
    function: &str,
    env: &[(&str, &std::path::Path)],
) -> (RuntimeApi, std::process::Child) {
    let binary = e2e::installed(
        &format!("target/debug/{function}"),
        "`make fleet` builds it (cargo build -p registrar -p scaler --bins)",
    );
    let log = std::fs::File::create(fleet_dir().join(format!("{function}.log"))).expect("log");
    let mut api = RuntimeApi::start().await;
    let child = Command::new(binary)
        .envs(emulator.function_env(REGION))
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("function process");
    api.ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{function} did not start: {e}"));
    (api, child)
}

/// A minute's tick of the scaler's built binary over 300 services with
/// target tracking (CPU at 60%, its target: nothing to change), rates
/// enforced and 30 ms a call. The first tick also runs the cold start's
/// configuration check; the second is the one measured.
async fn scaler_tick(emulator: &Emulator, aws: &Aws, fleet: &[FleetService]) -> TickResult {
    let now = Utc::now();
    let mut policies = Vec::new();
    let mut set = JoinSet::new();
    for service in fleet {
        policies.push(json!({
            "type": "target_tracking", "cluster": CLUSTER, "service": service.name,
            "metric": "ecs_cpu", "target_value": 60,
            "min_capacity": 1, "max_capacity": 40
        }));
        if set.len() >= 8 {
            set.join_next().await;
        }
        let (aws, name) = (aws.clone(), service.name.clone());
        set.spawn(async move {
            for minutes in 1..=3 {
                aws.put_service_metric(
                    (CLUSTER, &name),
                    "CPUUtilization",
                    60.0,
                    now - chrono::TimeDelta::minutes(minutes) + chrono::TimeDelta::seconds(30),
                )
                .await;
            }
        });
    }
    while set.join_next().await.is_some() {}
    let path = fleet_dir().join("scaler-policies.json");
    std::fs::write(&path, json!({ "policies": policies }).to_string()).expect("policies");
    emulator.control(
        "POST",
        "rates",
        &json!({"rates": "aws", "latency_ms": LATENCY_MS}),
    );
    emulator.control("DELETE", "calls", &json!({}));
    let (mut api, mut child) = start_function(
        emulator,
        "scaler",
        &[("SCALER_POLICIES_FILE", path.as_path())],
    )
    .await;
    let tick = |id: &str| {
        let mut event = sample_event("scaler/recheck-schedule.json");
        event["id"] = id.into();
        event
    };
    let (_, first) = api
        .invoke(tick("fleet-tick-1"), Duration::from_secs(130))
        .await
        .expect("the scaler answers");
    let (_, first_calls) = calls_without(&emulator.calls(REGION), &[]);
    emulator.control("DELETE", "calls", &json!({}));
    // Buckets full again, as after a quiet minute.
    emulator.control("POST", "rates", &json!({"rates": "aws"}));
    let _ = api.ready(Duration::from_millis(500)).await;
    let (handed, outcome) = api
        .invoke(tick("fleet-tick-2"), Duration::from_secs(130))
        .await
        .expect("the scaler answers");
    let seconds = (outcome.at - handed).as_secs_f64();
    let calls = emulator.calls(REGION);
    let rates = emulator.control("GET", "rates", &json!({}));
    emulator.control("POST", "rates", &json!({"rates": "off", "latency_ms": 0}));
    let _ = child.kill();
    let _ = child.wait();
    let (total, list) = calls_without(&calls, &[]);
    let throttled = rates["throttled"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    TickResult {
        calls: total,
        list,
        first_calls: format!("{} (first tick: {})", first.kind, first_calls),
        seconds,
        throttled,
        outcome: outcome.kind,
    }
}

/// What one deploy came to.
struct DeployFigures {
    shape: Shape,
    events: usize,
    p50: f64,
    p99: f64,
    per_event: f64,
    throttle_records: usize,
    lost: usize,
    delivery: Delivery,
    never: usize,
    drained: f64,
    throttled_calls: u64,
    registrar_calls: u64,
    registrar_list: String,
}

impl DeployFigures {
    fn print(&self) {
        println!();
        println!(
            "registrar, {}: {} task events in 60 s, SQS FIFO batches of {BATCH}, one in flight",
            self.shape.describe(),
            self.events
        );
        // The goals are set for a deploy as ECS runs one; the worst case is
        // shown against the same figures, for scale.
        let judged = self.shape == Shape::EcsDefaults;
        let row = |figure: &str, value: String, goal: &str, met: bool| {
            if judged {
                goal_row(figure, &value, goal, met);
            } else {
                println!("{figure:<46} {value:>16}   (goal {goal} applies to ECS's defaults)");
            }
        };
        row(
            "event → target change landed, p50 (s)",
            format!("{:.2}", self.p50),
            "",
            true,
        );
        row(
            "event → target change landed, p99 (s)",
            format!("{:.2}", self.p99),
            "≤ 10",
            self.p99 <= 10.0,
        );
        row(
            "AWS calls per task event, amortised",
            format!("{:.2}", self.per_event),
            "≤ 0.5",
            self.per_event <= 0.5,
        );
        row(
            "records with a throttling error",
            self.throttle_records.to_string(),
            "0",
            self.throttle_records == 0,
        );
        row("events lost", self.lost.to_string(), "0", self.lost == 0);
        let delivery = &self.delivery;
        println!(
            "  {} invocations ({} failed whole), {} messages returned to the queue, {} dead-lettered, {} not delivered {} s after the deploy, {} never landed; queue drained {:.0} s after the deploy began",
            delivery.invocations,
            delivery.failed_invocations,
            delivery.redelivered,
            delivery.dead_lettered.len(),
            delivery.undelivered.len(),
            DRAIN_LIMIT.as_secs(),
            self.never,
            self.drained
        );
        println!(
            "  calls refused by the buckets: {}; registrar's calls {}: {}",
            self.throttled_calls, self.registrar_calls, self.registrar_list
        );
    }
}

/// Runs one deploy of `services` through the queue into the registrar, and
/// measures it.
#[allow(clippy::too_many_arguments)]
async fn measure_deploy(
    emulator: &Emulator,
    aws: &Aws,
    network: &Network,
    fleet: &[FleetService],
    api: &mut RuntimeApi,
    shape: Shape,
    services: &[usize],
    log_path: &std::path::Path,
) -> DeployFigures {
    // Buckets full, as after a quiet minute; counts from zero.
    emulator.control(
        "POST",
        "rates",
        &json!({"rates": "aws", "latency_ms": LATENCY_MS}),
    );
    emulator.control("DELETE", "calls", &json!({}));
    let log_before = std::fs::read_to_string(log_path).map_or(0, |t| t.len());
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let deploying = Instant::now();
    let prefix = match shape {
        Shape::EcsDefaults => "ecs",
        Shape::OneAtATime => "one",
    };
    let producer = tokio::spawn(deploy(
        aws.clone(),
        network.clone(),
        fleet.to_vec(),
        schedule(shape, services),
        queue.clone(),
        prefix,
    ));
    let delivery = consume(api, queue, producer).await;
    let drained = deploying.elapsed().as_secs_f64();
    let calls = emulator.calls(REGION);
    let rates = emulator.control("GET", "rates", &json!({}));
    let changes = emulator.control("GET", "target-changes", &json!({}));

    // Event → its change landed.
    let mut landed: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for change in changes.as_array().into_iter().flatten() {
        let at = change[0].as_f64().unwrap_or(f64::NAN);
        let key = (
            change[1].as_str().unwrap_or_default().to_string(),
            change[2].as_str().unwrap_or_default().to_string(),
            change[3].as_str().unwrap_or_default().to_string(),
        );
        landed.entry(key).or_default().push(at);
    }
    let all: Vec<&Message> = delivery
        .delivered
        .iter()
        .chain(&delivery.dead_lettered)
        .chain(&delivery.undelivered)
        .collect();
    let mut latencies = Vec::new();
    let mut never = 0usize;
    for message in &all {
        let (kind, group, ip) = &message.change;
        let key = ((*kind).to_string(), group.clone(), ip.clone());
        match landed
            .get(&key)
            .and_then(|times| times.iter().find(|t| **t >= message.sent - 0.001))
        {
            Some(at) => latencies.push(at - message.sent),
            None => never += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let harness = ["RunTask", "StopTask"];
    let (registrar_calls, registrar_list) = calls_without(&calls, &harness);
    #[allow(clippy::cast_precision_loss)]
    let per_event = registrar_calls as f64 / delivery.events.max(1) as f64;
    let throttled_calls: u64 = rates["throttled"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(op, _)| !harness.iter().any(|h| op.ends_with(h)))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let log_text = std::fs::read_to_string(log_path).unwrap_or_default();
    let throttle_records = throttled_records(log_text.get(log_before..).unwrap_or_default());
    let lost = delivery.dead_lettered.len() + delivery.undelivered.len() + never;
    DeployFigures {
        shape,
        events: delivery.events,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        per_event,
        throttle_records,
        lost,
        delivery,
        never,
        drained,
        throttled_calls,
        registrar_calls,
        registrar_list,
    }
}

fn commit_measured() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "functions/registrar",
        "shared",
    ]);
    let changed = changed.lines().count();
    if changed == 0 {
        head
    } else {
        format!("{head} (+{changed} uncommitted files under functions/registrar and shared)")
    }
}

fn goal_row(figure: &str, value: &str, goal: &str, met: bool) {
    println!(
        "{figure:<46} {value:>16}   goal {goal:<12} {}",
        if met { "met" } else { "NOT met" }
    );
}

#[tokio::main]
async fn main() {
    std::fs::create_dir_all(fleet_dir()).expect("target/fleet");
    let commit = commit_measured();
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    let network = network(&emulator).await;
    eprintln!("fleet: seeding {SERVICES} services and 5,000 tasks (rates off)");
    let seeding = Instant::now();
    let fleet = seed(&aws, &network).await;
    let tasks: usize = fleet.iter().map(|s| s.tasks.len()).sum();
    assert_eq!(tasks, 5_000, "the fleet's tasks");
    eprintln!("fleet: seeded in {:.0} s", seeding.elapsed().as_secs_f64());

    let config = json!({
        "services": fleet.iter().map(|s| json!({
            "cluster": CLUSTER, "service": s.name,
            "target_groups": [{"target_group_arn": s.group, "port": TASK_PORT}]
        })).collect::<Vec<_>>()
    });
    let config_path = fleet_dir().join("registrar-config.json");
    std::fs::write(&config_path, config.to_string()).expect("registrar config");
    let log_path = fleet_dir().join("registrar.log");

    emulator.control(
        "POST",
        "rates",
        &json!({"rates": "aws", "latency_ms": LATENCY_MS}),
    );
    emulator.control("POST", "target-changes", &json!({"record": true}));
    // A stopped task keeps its interface for ECS's default 30 s stop timeout,
    // as in AWS, rather than going STOPPED the moment StopTask returns.
    emulator.control("POST", "settings", &json!({"stop_seconds": 30}));
    emulator.control("DELETE", "calls", &json!({}));
    let (mut api, mut child) = start_function(
        &emulator,
        "registrar",
        &[("REGISTRAR_CONFIG_FILE", config_path.as_path())],
    )
    .await;
    let mut figures = Vec::new();
    for (n, shape) in SHAPES.into_iter().enumerate() {
        let services: Vec<usize> = (n * DEPLOYING..(n + 1) * DEPLOYING).collect();
        eprintln!("fleet: rolling deploy of {DEPLOYING} services (2,000 events in 60 s), rates enforced, {LATENCY_MS} ms a call: {}", shape.describe());
        figures.push(
            measure_deploy(
                &emulator, &aws, &network, &fleet, &mut api, shape, &services, &log_path,
            )
            .await,
        );
    }
    emulator.control("POST", "rates", &json!({"rates": "off", "latency_ms": 0}));
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("fleet: comparing the target groups with ECS");
    let wrong = mismatched(&aws, &fleet).await;
    eprintln!("fleet: scaler tick over {SERVICES} services");
    let tick = scaler_tick(&emulator, &aws, &fleet).await;

    println!();
    println!("measured at {commit}: {SERVICES} services, {tasks} tasks, rates enforced, {LATENCY_MS} ms a call");
    for figures in &figures {
        figures.print();
    }
    goal_row(
        "target groups equal to ECS, after both deploys",
        &format!("{}/{}", SERVICES - wrong.len(), SERVICES),
        "exact",
        wrong.is_empty(),
    );
    if !wrong.is_empty() {
        println!(
            "  groups that differ from ECS: {}{}",
            wrong.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if wrong.len() > 5 { ", …" } else { "" }
        );
    }
    println!(
        "scaler: a minute's tick over {SERVICES} services with target tracking, warm process ({}); calls refused by the buckets: {}",
        tick.outcome, tick.throttled
    );
    goal_row(
        "tick: AWS calls",
        &tick.calls.to_string(),
        "≤ 40",
        tick.calls <= 40,
    );
    goal_row(
        "tick: time (s)",
        &format!("{:.2}", tick.seconds),
        "≤ 5",
        tick.seconds <= 5.0,
    );
    println!("  {}", tick.list);
    println!("  {}", tick.first_calls);
}
