//! The demo: the scaler Lambda, served by a local Lambda runtime, resizing a
//! service in the local AWS emulator as alarm events arrive.
//!
//! Run with `make demo`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a demo stops loudly on a broken set-up

use aws_sdk_cloudwatch::types::StateValue;
use e2e::{sample_event, workspace_root, Aws, Emulator, LocalLambda};
use serde_json::Value;
use std::path::PathBuf;

const REGION: &str = "us-east-1";

fn scaler_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let binary = exe.with_file_name("scaler");
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

#[tokio::main]
async fn main() {
    println!("Starting the local AWS emulator (moto + CloudWatch CBOR bridge)...");
    let emulator = Emulator::start();
    println!("  endpoint {}", emulator.endpoint());
    let aws = Aws::new(&emulator.sdk_config(REGION));

    println!("Seeding cluster demo, service web (desired 2) and the alarms the policies name...");
    aws.create_service("demo", "web", 2).await;
    aws.alarm("web-cpu-high", 70.0, StateValue::Ok, 40.0).await;
    aws.alarm("web-cpu-low", 20.0, StateValue::Ok, 40.0).await;
    aws.alarm("web-under-pressure", 0.0, StateValue::Ok, 0.0)
        .await;

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
    let lambda = LocalLambda::start(&scaler_binary(), &env);
    let mut demo = Demo {
        aws,
        lambda,
        step: 0,
    };
    println!();

    demo.aws
        .set_alarm_state("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
    demo.send(
        "web-cpu-high goes to ALARM at 75% (threshold 70): EventBridge event",
        sample_event("scaler/alarm-state-change.json"),
    )
    .await;
    demo.send(
        "the same state change delivered again, this time through SNS",
        sample_event("scaler/alarm-sns.json"),
    )
    .await;
    demo.send(
        "re-check tick moments later, alarm still at 75% (inside the 60 s cooldown)",
        tick("demo-tick-1"),
    )
    .await;
    demo.aws
        .set_alarm_state("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    demo.send(
        "the breach grows to 93.5%: re-check tick (bigger step inside the cooldown)",
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
    demo.aws
        .set_alarm_state("web-cpu-high", 70.0, StateValue::Ok, 35.0)
        .await;
    demo.send(
        "web-cpu-high returns to OK",
        sample_event("scaler/alarm-state-change-ok.json"),
    )
    .await;
    demo.aws
        .set_alarm_state("web-cpu-low", 20.0, StateValue::Alarm, 12.0)
        .await;
    demo.send(
        "web-cpu-low in ALARM at 12% while a deployment is rolling out: re-check tick",
        tick("demo-tick-3"),
    )
    .await;
    demo.send(
        "an ECS event the scaler does not handle",
        sample_event("scaler/unsupported-service-action.json"),
    )
    .await;

    println!(
        "\nDone: demo/web went from 2 to {} tasks. Stopping the runtime and the emulator.",
        demo.aws.desired_count("demo", "web").await
    );
}
