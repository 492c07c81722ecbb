//! `make bench`: what the functions cost, beside the Python boto3 functions a
//! user would otherwise write (`tests/bench/peer.py`), against one emulator in
//! one run. Prints one table; asserts only that each run did its work.
//!
//! Each run is a cold start: a new process against a stand-in runtime API on
//! loopback. Ready is process start to its first `next` request; an
//! invocation is event handed over to answer received (the scaler gets two
//! events, so the second shows a warm process); peak memory is the process's
//! high-water RSS after its invocations; AWS calls are counted at the
//! emulator, those made before ready with the first event's. The functions
//! are the x86_64 release builds `make release` made.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a harness fails loudly

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue};
use axum::routing::get;
use axum::Router;
use chrono::{TimeDelta, Utc};
use e2e::runtime_api::RuntimeApi;
use e2e::{sample_event, workspace_root, Aws, Emulator, Network};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Cold starts counted per side: enough that one slow start of the peer (its
/// Python start varies by a third between runs) does not move a median.
const RUNS: usize = 9;
const REGION: &str = "us-east-1";
const FUNCTIONS: [&str; 4] = ["scaler", "registrar", "probe", "drill"];
const CLUSTER: &str = "bench";
/// How long each of the probe's endpoints takes to answer.
const ENDPOINT_MS: u64 = 100;
const ENDPOINTS: usize = 200;
const MANY_TASKS: usize = 1_000;
const FEW_TASKS: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Peer,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::Ours => "o",
            Side::Peer => "p",
        }
    }
}

/// One cold start and its invocations, in order.
struct Sample {
    ready_ms: f64,
    invocations_ms: Vec<f64>,
    peak_mib: f64,
    /// The calls of each invocation (the first with any made before ready).
    calls: Vec<BTreeMap<String, u64>>,
    /// What each invocation answered.
    answers: Vec<String>,
}

/// Figures of one scenario, both sides.
struct Scenario {
    function: &'static str,
    what: String,
    ours: Vec<Sample>,
    peer: Vec<Sample>,
}

impl Scenario {
    fn new(function: &'static str, what: String) -> Self {
        Self {
            function,
            what,
            ours: Vec::new(),
            peer: Vec::new(),
        }
    }

    /// Keeps a run's figures; the first run of each side warms the disk cache
    /// and is not counted.
    fn record(&mut self, run: usize, side: Side, sample: Sample) {
        if run == 0 {
            return;
        }
        match side {
            Side::Ours => self.ours.push(sample),
            Side::Peer => self.peer.push(sample),
        }
    }
}

fn bench_dir() -> PathBuf {
    workspace_root().join("target/bench")
}

/// The x86_64 release binary of `function`, unpacked from its Lambda zip.
fn release_binary(function: &str) -> PathBuf {
    let zip = workspace_root().join(format!("target/lambda-x86-64/{function}/bootstrap.zip"));
    assert!(
        zip.exists(),
        "{} not found: `make bench` builds it (tests/scripts/release.sh)",
        zip.display()
    );
    let dir = bench_dir().join(function);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let status = Command::new("unzip")
        .args(["-o", "-q"])
        .arg(&zip)
        .arg("-d")
        .arg(&dir)
        .status()
        .expect("unzip");
    assert!(status.success(), "unzip {}", zip.display());
    dir.join("bootstrap")
}

/// The Python of the peer: boto3 alone (`tests/scripts/setup.sh --bench-peer`),
/// as a Lambda Python runtime has it; the tools in `.venv` would change what
/// boto3 imports at start.
fn peer_python() -> PathBuf {
    e2e::installed(
        ".venv-peer/bin/python",
        "`make bench` installs it (tests/scripts/setup.sh --bench-peer)",
    )
}

fn peak_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Starts the function (ours or the peer) with `env`, hands it `events` one
/// after another, and measures; the calls it made are counted at the emulator.
async fn run_once(
    emulator: &Emulator,
    side: Side,
    function: &str,
    env: &[(String, String)],
    memory_mb: u32,
    events: Vec<Value>,
) -> Sample {
    let mut api = RuntimeApi::start().await;
    let mut command = match side {
        Side::Ours => Command::new(release_binary_path(function)),
        Side::Peer => {
            let mut c = Command::new(peer_python());
            c.arg(workspace_root().join("tests/bench/peer.py"))
                .arg(function);
            c
        }
    };
    let log = std::fs::File::create(bench_dir().join(format!("{function}-{}.log", side.tag())))
        .expect("log file");
    command
        .envs(emulator.function_env(REGION))
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    emulator.control("DELETE", "calls", &json!({}));
    let started = Instant::now();
    let mut child = command.spawn().expect("function process");
    let ready = api
        .ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{function} ({}) did not start: {e}", side.tag()));
    let mut calls = vec![emulator.calls(REGION)];
    emulator.control("DELETE", "calls", &json!({}));
    let mut invocations_ms = Vec::new();
    let mut answers = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        let (handed, outcome) = api
            .invoke(event, Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("{function} ({}): {e}", side.tag()));
        assert_eq!(
            outcome.kind,
            "response",
            "{function} ({}) failed: {}",
            side.tag(),
            outcome.body
        );
        invocations_ms.push((outcome.at - handed).as_secs_f64() * 1000.0);
        answers.push(outcome.body.clone());
        let made = emulator.calls(REGION);
        emulator.control("DELETE", "calls", &json!({}));
        if i == 0 {
            // Calls before ready belong to the first event's cold start.
            for (operation, count) in made {
                *calls[0].entry(operation).or_default() += count;
            }
        } else {
            calls.push(made);
        }
    }
    let peak = peak_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Sample {
        ready_ms: (ready - started).as_secs_f64() * 1000.0,
        invocations_ms,
        peak_mib: peak,
        calls,
        answers,
    }
}

fn release_binary_path(function: &str) -> PathBuf {
    bench_dir().join(function).join("bootstrap")
}

/// A service of `tasks` running awsvpc tasks.
async fn service_with_tasks(aws: &Aws, network: &Network, service: &str, tasks: usize) {
    aws.create_awsvpc_service(CLUSTER, service, network).await;
    aws.run_service_tasks(CLUSTER, service, network, tasks)
        .await;
}

fn registrar_env(service: &str, group: &str) -> Vec<(String, String)> {
    let config = json!({
        "services": [{
            "cluster": CLUSTER, "service": service,
            "target_groups": [{"target_group_arn": group, "port": e2e::TASK_PORT}]
        }]
    });
    vec![("REGISTRAR_CONFIG".into(), config.to_string())]
}

async fn registrar_scenario(
    emulator: &Emulator,
    aws: &Aws,
    network: &Network,
    tasks: usize,
) -> Scenario {
    let service = format!("registrar-{tasks}");
    service_with_tasks(aws, network, &service, tasks).await;
    let mut scenario = Scenario::new(
        "registrar",
        format!("reconcile {tasks} tasks into an empty group"),
    );
    for run in 0..=RUNS {
        for side in [Side::Ours, Side::Peer] {
            let group = aws
                .ip_target_group(&format!("g{tasks}-{}{run}", side.tag()), &network.vpc_id)
                .await;
            let sample = run_once(
                emulator,
                side,
                "registrar",
                &registrar_env(&service, &group),
                256,
                vec![sample_event("registrar/reconcile-schedule.json")],
            )
            .await;
            assert_eq!(
                aws.targets(&group).await.len(),
                tasks,
                "every task registered"
            );
            scenario.record(run, side, sample);
        }
    }
    scenario
}

/// Step policies for `services`, one alarm each.
fn step_policies(services: &[String]) -> String {
    let policies: Vec<Value> = services
        .iter()
        .map(|service| {
            json!({
                "alarm": format!("{service}-cpu-high"), "cluster": CLUSTER, "service": service,
                "adjustment_type": "ChangeInCapacity",
                "steps": [
                    {"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 15, "scaling_adjustment": 1},
                    {"metric_interval_lower_bound": 15, "scaling_adjustment": 3}
                ],
                "min_capacity": 1, "max_capacity": 20
            })
        })
        .collect();
    json!({ "policies": policies }).to_string()
}

/// A service at 4 tasks whose CPU alarm is in ALARM at 93.5 (the +3 step),
/// and the alarm's state-change event.
async fn breaching_service(aws: &Aws, service: &str) -> Value {
    let alarm = format!("{service}-cpu-high");
    aws.create_service(CLUSTER, service, 4).await;
    aws.wait_for_deployment(CLUSTER, service).await;
    aws.service_alarm(
        &alarm,
        (CLUSTER, service),
        "CPUUtilization",
        ComparisonOperator::GreaterThanThreshold,
        70.0,
    )
    .await;
    let now = Utc::now();
    for minutes in 1..=3 {
        aws.put_service_metric(
            (CLUSTER, service),
            "CPUUtilization",
            93.5,
            now - TimeDelta::minutes(minutes),
        )
        .await;
    }
    aws.set_alarm_state(&alarm, 70.0, StateValue::Alarm, 93.5)
        .await;
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["detail"]["alarmName"] = alarm.clone().into();
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm}"
    )]);
    event["detail"]["state"]["timestamp"] =
        now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string().into();
    let dimensions =
        &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"];
    dimensions["ServiceName"] = service.into();
    dimensions["ClusterName"] = CLUSTER.into();
    event
}

/// Two services under one policy document: the first event meets a cold
/// process (and the configuration check), the second a warm one.
async fn scaler_scenario(emulator: &Emulator, aws: &Aws) -> Scenario {
    let mut scenario = Scenario::new(
        "scaler",
        "an alarm state change: read, decide, scale 4 → 7".into(),
    );
    for run in 0..=RUNS {
        for side in [Side::Ours, Side::Peer] {
            let services: Vec<String> = ["a", "b"]
                .iter()
                .map(|s| format!("web-{}{run}{s}", side.tag()))
                .collect();
            let mut events = Vec::new();
            for service in &services {
                events.push(breaching_service(aws, service).await);
            }
            let env = vec![("SCALER_POLICIES".to_string(), step_policies(&services))];
            let sample = run_once(emulator, side, "scaler", &env, 128, events).await;
            for service in &services {
                assert_eq!(
                    aws.desired_count(CLUSTER, service).await,
                    7,
                    "{service} scaled 4 → 7"
                );
            }
            scenario.record(run, side, sample);
        }
    }
    scenario
}

/// `count` endpoints on loopback, each answering after [`ENDPOINT_MS`].
async fn slow_endpoints(count: usize) -> Vec<String> {
    let app = Router::new().route(
        "/e/{i}",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(ENDPOINT_MS)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (0..count)
        .map(|i| format!("http://{address}/e/{i}"))
        .collect()
}

async fn probe_scenario(emulator: &Emulator) -> Scenario {
    let urls = slow_endpoints(ENDPOINTS).await;
    // The shipped defaults: no concurrency, timeout or body size of its own.
    let checks: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| json!({"name": format!("endpoint-{i}"), "url": url}))
        .collect();
    let config = json!({"namespace": "EcsControl/Bench", "checks": checks}).to_string();
    let env = vec![("PROBE_CONFIG".to_string(), config)];
    let mut scenario = Scenario::new(
        "probe",
        format!("{ENDPOINTS} endpoints at {ENDPOINT_MS} ms, shipped defaults"),
    );
    for run in 0..=RUNS {
        for side in [Side::Ours, Side::Peer] {
            let sample = run_once(
                emulator,
                side,
                "probe",
                &env,
                256,
                vec![sample_event("probe/scheduled-tick.json")],
            )
            .await;
            scenario.record(run, side, sample);
        }
    }
    scenario
}

/// Plans a drill that stops a third of a service's tasks: the lock, the
/// steady state (running equals desired, every target healthy) and the plan,
/// read from ECS and ELBv2; nothing changes.
async fn drill_scenario(emulator: &Emulator, aws: &Aws, network: &Network) -> Scenario {
    let service = "drill-web";
    aws.create_awsvpc_service(CLUSTER, service, network).await;
    aws.set_desired_count(CLUSTER, service, i32::try_from(FEW_TASKS).expect("small"))
        .await;
    aws.wait_for_deployment(CLUSTER, service).await;
    let group = aws.ip_target_group("drill-web", &network.vpc_id).await;
    for (_, ip) in aws
        .run_service_tasks(CLUSTER, service, network, FEW_TASKS)
        .await
    {
        aws.register_target(&group, &ip, e2e::TASK_PORT).await;
    }
    aws.wait_until_healthy(&group).await;
    let drills = json!({"drills": [{
        "name": "stop-a-third", "cluster": CLUSTER, "service": service,
        "kind": {"type": "stop_tasks", "percent": 33},
        "steady_state": {
            "running_equals_desired": true,
            "target_groups": [{"target_group_arn": group, "min_healthy": FEW_TASKS}]
        }
    }]});
    let env = vec![("DRILLS".to_string(), drills.to_string())];
    let event = json!({"command": "start", "drill": "stop-a-third", "mode": "plan"});
    let mut scenario = Scenario::new(
        "drill",
        format!("plan stopping a third of {FEW_TASKS} tasks"),
    );
    for run in 0..=RUNS {
        for side in [Side::Ours, Side::Peer] {
            let sample = run_once(emulator, side, "drill", &env, 256, vec![event.clone()]).await;
            assert!(
                sample.answers.iter().all(|a| a.contains("planned")),
                "drill ({}) planned: {:?}",
                side.tag(),
                sample.answers
            );
            scenario.record(run, side, sample);
        }
    }
    scenario
}

fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    (
        sorted.first().copied().unwrap_or(f64::NAN),
        median,
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

fn triple(values: &[f64]) -> String {
    let (min, median, max) = stats(values);
    let digits = if median < 100.0 { 1 } else { 0 };
    format!("{min:.digits$} / {median:.digits$} / {max:.digits$}")
}

/// The calls of invocation `index` in the last run (every run makes the same).
fn calls(samples: &[Sample], index: usize) -> String {
    let Some(made) = samples.last().and_then(|last| last.calls.get(index)) else {
        return String::new();
    };
    let total: u64 = made.values().sum();
    let list: Vec<String> = made.iter().map(|(op, n)| format!("{op} {n}")).collect();
    format!("{total}: {}", list.join(", "))
}

fn print_row(name: &str, ours: &[f64], peer: &[f64]) {
    let ratio = stats(peer).1 / stats(ours).1;
    println!(
        "{:<10} {:<23} {:>26} {:>26} {:>9.1}×",
        "",
        name,
        triple(ours),
        triple(peer),
        ratio
    );
}

fn print_table(scenarios: &[Scenario]) {
    println!();
    println!(
        "{:<10} {:<19} {:>26} {:>26} {:>10}",
        "function", "figure (min/median/max)", "ours", "peer (Python, boto3)", "peer/ours"
    );
    for s in scenarios {
        println!("{:<10} {}", s.function, s.what);
        let figure = |samples: &[Sample], f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
            samples.iter().filter_map(f).collect()
        };
        print_row(
            "ready (ms)",
            &figure(&s.ours, &|x| Some(x.ready_ms)),
            &figure(&s.peer, &|x| Some(x.ready_ms)),
        );
        let events = s.ours.first().map_or(0, |x| x.invocations_ms.len());
        for event in 0..events {
            let name = match (event, events) {
                (0, 1) => "invocation (ms)",
                (0, _) => "first event (ms)",
                _ => "next event (ms)",
            };
            print_row(
                name,
                &figure(&s.ours, &|x| x.invocations_ms.get(event).copied()),
                &figure(&s.peer, &|x| x.invocations_ms.get(event).copied()),
            );
        }
        print_row(
            "peak memory (MiB)",
            &figure(&s.ours, &|x| Some(x.peak_mib)),
            &figure(&s.peer, &|x| Some(x.peak_mib)),
        );
        for event in 0..events {
            let name = match (event, events) {
                (0, 1) => "AWS calls",
                (0, _) => "AWS calls, first event",
                _ => "AWS calls, next event",
            };
            println!("{:<10} {:<23} ours {}", "", name, calls(&s.ours, event));
            println!("{:<10} {:<23} peer {}", "", "", calls(&s.peer, event));
        }
    }
}

/// Binary and zip sizes of every architecture `make release` built.
fn print_sizes() {
    println!();
    println!(
        "{:<10} {:<7} {:>13} {:>10}",
        "function", "arch", "binary (MiB)", "zip (MiB)"
    );
    for arch in ["x86-64", "arm64"] {
        for function in FUNCTIONS {
            let zip =
                workspace_root().join(format!("target/lambda-{arch}/{function}/bootstrap.zip"));
            let Ok(meta) = std::fs::metadata(&zip) else {
                continue;
            };
            let binary = zipped_size(&zip).map_or_else(|| "?".to_string(), mib);
            println!(
                "{:<10} {:<7} {:>13} {:>10}",
                function,
                arch,
                binary,
                mib(meta.len())
            );
        }
    }
}

fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64 / 1024.0 / 1024.0;
    format!("{value:.2}")
}

/// The uncompressed size of the zip's `bootstrap`.
fn zipped_size(zip: &Path) -> Option<u64> {
    let out = Command::new("unzip").arg("-l").arg(zip).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.trim_end().ends_with("bootstrap"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[tokio::main]
async fn main() {
    // `bench probe drill` measures only those functions; no names, all four.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |function: &str| only.is_empty() || only.iter().any(|f| f == function);
    for name in &only {
        assert!(
            FUNCTIONS.contains(&name.as_str()),
            "unknown function {name:?}: scaler, registrar, probe or drill"
        );
    }
    std::fs::create_dir_all(bench_dir()).expect("target/bench");
    for function in FUNCTIONS {
        release_binary(function);
    }
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    eprintln!("bench: {RUNS} runs of each side after a warm-up; logs in target/bench/");
    let mut scenarios = Vec::new();
    if wanted("scaler") {
        eprintln!("bench: scaler");
        scenarios.push(scaler_scenario(&emulator, &aws).await);
    }
    let network = aws.network().await;
    if wanted("registrar") {
        eprintln!("bench: registrar, {FEW_TASKS} tasks");
        scenarios.push(registrar_scenario(&emulator, &aws, &network, FEW_TASKS).await);
        eprintln!("bench: registrar, {MANY_TASKS} tasks (ECS lists 100 a page)");
        scenarios.push(registrar_scenario(&emulator, &aws, &network, MANY_TASKS).await);
    }
    if wanted("probe") {
        eprintln!("bench: probe");
        scenarios.push(probe_scenario(&emulator).await);
    }
    if wanted("drill") {
        eprintln!("bench: drill");
        scenarios.push(drill_scenario(&emulator, &aws, &network).await);
    }
    print_table(&scenarios);
    print_sizes();
}
