//! The demo: the scaler, registrar and probe Lambdas, each served by a local
//! Lambda runtime, acting on the local AWS emulator: the scaler resizes a service
//! as alarms fire, the registrar keeps a target group in step with tasks, and the
//! probe checks endpoints on loopback and publishes metrics.
//!
//! Run with `make demo`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a demo stops loudly on a broken set-up

use e2e::site::TestSite;
use e2e::{sample_event, workspace_root, Aws, Emulator, LocalLambda, TASK_PORT};
use serde_json::Value;
use std::path::PathBuf;

const REGION: &str = "us-east-1";

fn function_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let binary = exe.with_file_name(name);
    assert!(
        binary.exists(),
        "{} is missing: build it first (make demo does)",
        binary.display()
    );
    binary
}

fn tick(id: &str) -> Value {
    let mut event = sample_event("scaler/recheck-schedule.json");
    event["id"] = id.into();
    event
}

struct Demo {
    aws: Aws,
    lambda: LocalLambda,
    step: usize,
}

impl Demo {
    async fn send(&mut self, what: &str, payload: Value) {
        self.step += 1;
        let result = self.lambda.invoke(&payload);
        let desired = self.aws.desired_count("demo", "web").await;
        let Some(record) = result.response.filter(|_| result.ok) else {
            // cargo-lambda prints the function's error type and message, then its own footer.
            let report: Vec<&str> = result
                .text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Was this behavior unexpected"))
                .filter(|l| !l.is_empty())
                .collect();
            println!("{:>2}. {what}\n    {}", self.step, report.join(" "));
            return;
        };
        let summary = match record["services"].get(0) {
            Some(service) => format!(
                "{} {} -> {}: {}",
                service["action"].as_str().unwrap_or("?"),
                service["before"],
                service["after"],
                service["reason"].as_str().unwrap_or_default()
            ),
            None => format!(
                "ignored: {}",
                record["ignored"].as_str().unwrap_or("nothing to do")
            ),
        };
        println!(
            "{:>2}. {what}\n    {summary}\n    service demo/web desired count is now {desired}",
            self.step
        );
    }
}

/// The argument that makes this binary run the control loop alone (see `control_loop_demo`).
const CONTROL_LOOP_ARG: &str = "control-loop";

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some(CONTROL_LOOP_ARG) {
        run_control_loop().await;
        run_drills().await;
        return;
    }
    println!("Starting the local AWS emulator (moto + CloudWatch CBOR bridge)...");
    let emulator = Emulator::start();
    println!("  endpoint {}", emulator.endpoint());
    scaler_demo(&emulator).await;
    scaler_triggers_demo(&emulator).await;
    let target_group = registrar_demo(&emulator).await;
    probe_demo(&emulator, &target_group).await;
    drop(emulator);
    control_loop_demo();
    println!("\nStopping the local runtimes and the emulator.");
}

/// The whole loop, one simulated minute a line. It runs the functions in
/// process, in a child of this binary, so the decision records they log
/// (JSON lines) can be left out of what is shown.
fn control_loop_demo() {
    println!("\n== The loop: probe -> alarm -> scaler -> ECS -> registrar -> the site recovers ==");
    println!(
        "A site on loopback answers in (work / healthy targets) ms; demo/web starts with 2 tasks."
    );
    println!("Alarms on the probe's CheckLatency: high above 300 ms (1 minute), low below 60 ms (3 minutes).");
    println!(
        "Minutes are on the emulator's clock; its alarm and task events reach the functions as EventBridge rules would deliver them.\n"
    );
    let exe = std::env::current_exe().expect("own path");
    let output = std::process::Command::new(exe)
        .arg(CONTROL_LOOP_ARG)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the loop runs");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if !line.starts_with('{') {
            println!("{line}");
        }
    }
}

async fn run_control_loop() {
    let emulator = Emulator::start();
    let mut world = e2e::control_loop::ControlLoop::start(&emulator, REGION).await;
    println!("  load: 800 ms of work a request");
    world.set_load(800);
    for k in 0..2 {
        println!("  {}", e2e::control_loop::describe(&world.minute(k).await));
    }
    println!("  load falls: 100 ms of work a request");
    world.set_load(100);
    for k in 2..8 {
        println!("  {}", e2e::control_loop::describe(&world.minute(k).await));
    }
    println!("\n  Scale-in 6 -> 2 under steady load, the load balancer played: a request");
    println!("  to a task ECS has told to stop fails. With drain-first scale-in the");
    println!("  scaler deregisters the tasks it removes, waits for them to drain, protects");
    println!("  the tasks that stay, then lowers the count; the opt-out lowers it at once.");
    let runs = [
        e2e::scale_in_load::scale_in_under_load(&emulator, "eu-west-1", true).await,
        e2e::scale_in_load::scale_in_under_load(&emulator, "eu-west-2", false).await,
    ];
    for line in e2e::scale_in_load::describe(&runs).lines() {
        println!("  {line}");
    }
}

async fn scaler_demo(emulator: &Emulator) {
    println!("\n== Scaler: alarms resize demo/web ==");
    let aws = Aws::new(&emulator.sdk_config(REGION));

    println!("Seeding cluster demo, service web (desired 2) and the alarms the policies name...");
    aws.create_service("demo", "web", 2).await;
    aws.demo_alarms().await;

    let policies = workspace_root().join("infra/scaler-policies.json");
    println!(
        "Starting the scaler behind a local Lambda runtime API, policies from {}",
        policies.display()
    );
    let mut env = emulator.function_env(REGION);
    env.push((
        "SCALER_POLICIES_FILE".into(),
        policies.display().to_string(),
    ));
    let lambda = LocalLambda::start(&function_binary("scaler"), &env);
    let mut demo = Demo {
        aws,
        lambda,
        step: 0,
    };
    println!();

    // CloudWatch evaluates the alarms on the minute's average of these samples
    // (at the minute's end: the emulator evaluates when asked), and the scaler
    // reads the same average when it decides.
    let minute =
        e2e::emulator_clock::minute_of(demo.aws.clock_now()) - chrono::TimeDelta::seconds(20);
    demo.aws.put_cpu_samples(75.0, 1, minute).await;
    demo.aws.evaluate_alarms();
    demo.send(
        "web's CPU averages 75% this minute (threshold 70): web-cpu-high goes to ALARM, EventBridge event",
        sample_event("scaler/alarm-state-change.json"),
    )
    .await;
    demo.send(
        "the same state change delivered again, this time through SNS",
        sample_event("scaler/alarm-sns.json"),
    )
    .await;
    demo.send(
        "re-check tick moments later, CPU still at 75% (inside the 60 s cooldown)",
        tick("demo-tick-1"),
    )
    .await;
    demo.aws.put_cpu_samples(99.0, 3, minute).await;
    demo.aws.evaluate_alarms();
    demo.send(
        "load grows: the minute now averages 93%, the alarm stays in ALARM (no new event): re-check tick",
        tick("demo-tick-2"),
    )
    .await;
    demo.send(
        "operator drill: what would +50% do? (dry run)",
        sample_event("scaler/manual-apply-step-dry-run.json"),
    )
    .await;
    demo.send(
        "operator sets the desired count to 6",
        sample_event("scaler/manual-set-desired-count.json"),
    )
    .await;
    demo.aws.put_cpu_samples(5.0, 2, minute).await;
    demo.aws.evaluate_alarms();
    demo.send(
        "load falls (the minute averages 63.7%): web-cpu-high returns to OK",
        sample_event("scaler/alarm-state-change-ok.json"),
    )
    .await;
    demo.aws.put_cpu_samples(5.0, 18, minute).await;
    demo.aws.evaluate_alarms();
    demo.aws.deploy_new_revision("demo", "web").await;
    demo.send(
        "the minute averages 19.7%: web-cpu-low in ALARM while a deployment is rolling out: re-check tick",
        tick("demo-tick-3"),
    )
    .await;
    demo.send(
        "an ECS event the scaler does not handle",
        sample_event("scaler/unsupported-service-action.json"),
    )
    .await;

    println!(
        "\nScaler done: demo/web went from 2 to {} tasks.",
        demo.aws.desired_count("demo", "web").await
    );
}

/// The scaler's other triggers: one service each, one document, one tick.
async fn scaler_triggers_demo(emulator: &Emulator) {
    const TRIGGERS_REGION: &str = "us-east-2";
    println!("\n== Scaler: target tracking, a time window, a budget and a pace ==");
    let aws = Aws::new(&emulator.sdk_config(TRIGGERS_REGION));
    let services = [
        ("tracked", 4),
        ("scheduled", 2),
        ("budgeted", 3),
        ("paced", 2),
    ];
    for (service, desired) in services {
        aws.create_service("demo", service, desired).await;
    }
    let now = chrono::Utc::now();
    let tracking = |service: &str| {
        serde_json::json!({"type": "target_tracking", "cluster": "demo", "service": service,
            "metric": "ecs_cpu", "target_value": 60, "min_capacity": 1, "max_capacity": 20})
    };
    let document = serde_json::json!({
        "policies": services.iter().map(|(s, _)| tracking(s)).collect::<Vec<_>>(),
        "schedules": [{"name": "launch", "cluster": "demo", "service": "scheduled",
            "start": (now - chrono::TimeDelta::minutes(1)).to_rfc3339(),
            "duration_minutes": 120, "min_capacity": 5}],
        "services": [
            {"cluster": "demo", "service": "budgeted", "max_hourly_cost": 0.05},
            {"cluster": "demo", "service": "paced", "max_tasks_added_per_minute": 3}
        ]
    });
    let path = std::env::temp_dir().join(format!("scaler-triggers-{}.json", std::process::id()));
    std::fs::write(&path, document.to_string()).expect("policy document written");
    println!(
        "Services demo/tracked (4 tasks), demo/scheduled (2), demo/budgeted (3), demo/paced (2):"
    );
    println!(
        "  all track CPU at 60%; a window \"launch\" opened a minute ago with min 5 on scheduled;"
    );
    println!("  budgeted may spend 0.05 an hour (0.25 vCPU + 0.5 GB tasks); paced adds at most 3 a minute.");
    // Three one-minute CPU datapoints each; scheduled has none (missing data).
    for (service, cpu) in [("tracked", 84.0), ("budgeted", 90.0), ("paced", 300.0)] {
        for m in 1..=3 {
            aws.put_service_samples(
                ("demo", service),
                "CPUUtilization",
                (cpu, 1),
                now - chrono::TimeDelta::minutes(m) + chrono::TimeDelta::seconds(30),
            )
            .await;
        }
    }
    let mut env = emulator.function_env(TRIGGERS_REGION);
    env.push(("SCALER_POLICIES_FILE".into(), path.display().to_string()));
    let lambda = LocalLambda::start(&function_binary("scaler"), &env);

    let preview = lambda.invoke(&serde_json::json!({
        "command": "preview_bounds", "cluster": "demo", "service": "scheduled", "hours": 24
    }));
    println!("\n 1. preview_bounds for demo/scheduled over 24 hours");
    for period in preview
        .response
        .as_ref()
        .and_then(|r| r["preview"].as_array())
        .into_iter()
        .flatten()
    {
        println!(
            "    {} .. {}: [{}, {}] {}",
            period["from"].as_str().unwrap_or_default(),
            period["until"].as_str().unwrap_or_default(),
            period["min_capacity"],
            period["max_capacity"],
            period["windows"]
        );
    }
    let result = lambda.invoke(&tick("demo-triggers-tick"));
    println!("\n 2. the scheduled tick (tracked: CPU 84%, budgeted: 90%, paced: 300%)");
    let decisions = result
        .response
        .as_ref()
        .and_then(|r| r["services"].as_array().cloned())
        .unwrap_or_default();
    if decisions.is_empty() {
        println!(
            "    error: {}",
            result.text.lines().next().unwrap_or_default()
        );
    }
    for decision in decisions {
        let service = decision["service"]["service"].as_str().unwrap_or("?");
        let desired = aws.desired_count("demo", service).await;
        println!(
            "    demo/{service}: {} {} -> {} (now {desired}): {}",
            decision["action"].as_str().unwrap_or("?"),
            decision["before"],
            decision["after"],
            decision["reason"].as_str().unwrap_or_default()
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// The registrar's view of one invocation, and the target group after it.
async fn show_registrar(step: &str, lambda: &LocalLambda, aws: &Aws, group: &str, payload: Value) {
    let result = lambda.invoke(&payload);
    let summary = match result.response.filter(|_| result.ok) {
        Some(record) => match record["ignored"].as_str() {
            Some(why) => format!("ignored: {why}"),
            None => {
                let g = &record["groups"][0];
                let count = |key: &str| g["diff"][key].as_array().map_or(0, Vec::len);
                let verb = if record["dry_run"] == true {
                    "would register"
                } else {
                    "registered"
                };
                format!(
                    "{verb} {}, deregister {}, {} API call(s)",
                    count("register"),
                    count("deregister"),
                    g["calls"].as_array().map_or(0, Vec::len)
                )
            }
        },
        None => format!("error: {}", result.text.lines().next().unwrap_or_default()),
    };
    let mut targets: Vec<String> = aws
        .targets(group)
        .await
        .into_iter()
        .map(|(ip, port, state)| format!("{ip}:{port} {state}"))
        .collect();
    targets.sort();
    println!(
        "  {step}\n    {summary}\n    target group: [{}]",
        targets.join(", ")
    );
}

fn task_event(sample: &str, task_arn: &str, ip: &str) -> Value {
    let mut event = sample_event(&format!("registrar/{sample}.json"));
    let detail = &mut event["detail"];
    detail["taskArn"] = task_arn.into();
    detail["attachments"][0]["details"][4]["value"] = ip.into();
    detail["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] = ip.into();
    event
}

/// Returns the target group it filled, for the probe to count.
async fn registrar_demo(emulator: &Emulator) -> String {
    println!("\n== Registrar: target group web follows the tasks of demo/web ==");
    let aws = Aws::new(&emulator.sdk_config("us-west-2"));
    let network = aws.network().await;
    let group = aws.ip_target_group("web", &network.vpc_id).await;
    aws.create_awsvpc_service("demo", "web", &network).await;
    let config = serde_json::json!({
        "services": [{"cluster": "demo", "service": "web",
                      "target_groups": [{"target_group_arn": group, "port": TASK_PORT}]}]
    });
    let mut env = emulator.function_env("us-west-2");
    env.push(("REGISTRAR_CONFIG".into(), config.to_string()));
    let lambda = LocalLambda::start(&function_binary("registrar"), &env);

    let tasks = aws.run_service_tasks("demo", "web", &network, 2).await;
    for (arn, ip) in &tasks {
        show_registrar(
            &format!("task {ip} is RUNNING: ECS Task State Change"),
            &lambda,
            &aws,
            &group,
            task_event("task-running", arn, ip),
        )
        .await;
    }
    let (arn, ip) = &tasks[0];
    show_registrar(
        &format!("the same RUNNING event for {ip} again"),
        &lambda,
        &aws,
        &group,
        task_event("task-running", arn, ip),
    )
    .await;
    aws.stop_task("demo", arn).await;
    show_registrar(
        &format!("task {ip} is told to stop (desiredStatus STOPPED)"),
        &lambda,
        &aws,
        &group,
        task_event("task-stopping", arn, ip),
    )
    .await;
    show_registrar(
        &format!("a late RUNNING event for the stopped task {ip}"),
        &lambda,
        &aws,
        &group,
        task_event("task-running", arn, ip),
    )
    .await;
    aws.run_service_tasks("demo", "web", &network, 3).await;
    aws.register_target(&group, "10.99.0.7", TASK_PORT).await;
    show_registrar(
        "drift: 3 tasks started with no events seen, a stale 10.99.0.7 left behind; dry-run reconcile",
        &lambda,
        &aws,
        &group,
        serde_json::json!({"command": "reconcile", "dry_run": true}),
    )
    .await;
    show_registrar(
        "scheduled reconcile",
        &lambda,
        &aws,
        &group,
        sample_event("registrar/reconcile-schedule.json"),
    )
    .await;
    group
}

async fn probe_demo(emulator: &Emulator, target_group: &str) {
    println!("\n== Probe: checks on loopback, metrics into CloudWatch ==");
    let site = TestSite::start().await;
    let config = serde_json::json!({
        "namespace": "EcsControl/Probe",
        "checks": [
            {"name": "web-health", "url": format!("{}/ok", site.http), "body_must_match": ["\"status\":\"ok\""]},
            {"name": "web-tls", "url": format!("{}/ok", site.https), "ca_certificate_file": site.ca_file},
            {"name": "web-maintenance", "url": format!("{}/maintenance", site.http),
             "body_must_not_match": [{"regex": "(?i)maintenance"}]},
            {"name": "web-slow", "url": format!("{}/slow", site.http), "timeout_ms": 300, "retries": 1},
            {"name": "nothing-listens", "url": format!("http://127.0.0.1:{}/", site.closed_port)}
        ],
        "target_groups": [{"name": "web", "target_group_arn": target_group}]
    });
    let mut env = emulator.function_env("us-west-2");
    env.push(("PROBE_CONFIG".into(), config.to_string()));
    let lambda = LocalLambda::start(&function_binary("probe"), &env);
    let result = lambda.invoke(&sample_event("probe/scheduled-tick.json"));
    let Some(report) = result.response.filter(|_| result.ok) else {
        println!("  error: {}", result.text.trim());
        return;
    };
    for check in report["checks"].as_array().into_iter().flatten() {
        let verdict = if check["success"] == true {
            "pass".to_string()
        } else {
            format!("FAIL ({})", check["reason"]["kind"].as_str().unwrap_or("?"))
        };
        let days = check["certificate_days_remaining"]
            .as_f64()
            .map_or(String::new(), |d| {
                format!(", certificate expires in {d:.0} days")
            });
        println!(
            "  {:<16} {verdict:<28} {:>6.1} ms, {} attempt(s){days}",
            check["name"].as_str().unwrap_or("?"),
            check["latency_ms"].as_f64().unwrap_or_default(),
            check["attempts"]
        );
    }
    let counts = &report["target_groups"][0]["counts"];
    println!(
        "  target group web: {} healthy, {} transitioning of {}",
        counts["by_state"]["healthy"], counts["transitioning"], counts["total"]
    );
    let aws = Aws::new(&emulator.sdk_config("us-west-2"));
    let names = aws.metric_names("EcsControl/Probe").await;
    println!(
        "  published {} metrics in {} call(s); CloudWatch now lists: {}",
        report["published"]["metrics"],
        report["published"]["calls"],
        names.join(", ")
    );
}

/// One drill of each kind: its plan, then its execution, as the journal tells it.
async fn run_drills() {
    use e2e::drill_world::{start, world};
    use serde_json::json;
    use std::sync::Arc;
    println!("\n  == Drills ==");
    let regions = ["eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1"];
    for (i, region) in regions.into_iter().enumerate() {
        let w = Arc::new(world(region).await);
        let (name, kind, extra) = match i {
            0 => (
                "scale-web",
                json!({"type": "scale", "adjustment": 2, "hold_seconds": 2}),
                json!({"steady_state": {"running_equals_desired": false}}),
            ),
            1 => (
                "stop-one-task",
                json!({"type": "stop_tasks", "count": 1}),
                json!({}),
            ),
            2 => (
                "drain-one-target",
                json!({"type": "drain_target", "target_group_arn": w.target_group,
                                             "port": e2e::TASK_PORT, "hold_seconds": 2}),
                json!({}),
            ),
            _ => (
                "cpu-alarm",
                json!({"type": "alarm", "alarm": "web-cpu-high"}),
                json!({}),
            ),
        };
        let stand_ins = match i {
            1 => vec![w.scheduler()],
            3 => {
                w.aws.demo_alarms().await;
                // The alarm drill waits for running to reach the raised count.
                vec![w.bridge("web-cpu-high"), w.scheduler()]
            }
            _ => Vec::new(),
        };
        let driller = w.driller(name, kind, extra);
        let plan = driller
            .handle(start(name, "plan"), None)
            .await
            .expect("plan");
        println!("  {name}: plan");
        for line in plan.plan.iter().chain(plan.rollback_plan.iter()) {
            println!("      {line}");
        }
        let report = driller
            .handle(start(name, "execute"), None)
            .await
            .expect("execute");
        for stand_in in stand_ins {
            stand_in.abort();
        }
        let outcome = report
            .outcome
            .as_ref()
            .map_or("none".to_string(), |o| o.label().to_string());
        println!(
            "  {name}: execute -> {outcome}, rolled back: {}",
            report.rolled_back
        );
        for entry in report.journal.iter().filter(|e| {
            matches!(
                e.step,
                drill::journal::Step::Action | drill::journal::Step::Rollback
            )
        }) {
            println!("      {:?}: {}", entry.step, entry.what);
        }
    }
}
