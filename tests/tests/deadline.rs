//! Time-outs on every AWS call, from the invocation's deadline: a call that
//! hangs with no answer fails as retryable before the invocation would be
//! cut off, and the decision record says which call and why.
//!
//! A binary of its own: the deadline is the process's, as in a Lambda
//! sandbox, and would bound other tests' calls while it is set.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::{sample_event, Aws, Emulator};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::deadline::{InvocationDeadline, ANSWER_RESERVE};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::config::ScalerConfig;
use scaler::handler::{Action, Scaler};
use serde_json::json;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

#[tokio::test]
async fn a_hung_update_fails_retryably_within_the_invocation_and_is_recorded() {
    let config = Emulator::shared().sdk_config(REGION);
    let aws = Aws::new(&config);
    aws.create_service("demo", "web", 2).await;
    aws.wait_for_deployment("demo", "web").await;
    let policy = json!({"policies": [{
        "alarm": "web-cpu-high", "cluster": "demo", "service": "web",
        "adjustment_type": "ChangeInCapacity",
        "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
        "min_capacity": 1, "max_capacity": 10
    }]});
    let scaler = Scaler::new(
        ScalerConfig::parse(&policy.to_string()).expect("policy"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    // Every UpdateService hangs for 30 s and then drops the connection.
    Emulator::shared().control(
        "POST",
        "faults",
        &json!({"region": REGION, "operation": "UpdateService", "kind": "timeout",
                "times": 10, "delay_seconds": 30}),
    );
    let calls_before = Emulator::shared().calls(REGION);

    let budget = Duration::from_secs(5);
    let deadline = InvocationDeadline::within(budget);
    let started = Instant::now();
    let answer = scaler
        .handle(
            sample_event("scaler/manual-set-desired-count.json"),
            "deadline",
            chrono::Utc::now(),
        )
        .await;
    let took = started.elapsed();
    drop(deadline);
    Emulator::shared().control("DELETE", "faults", &json!({}));

    // Within the budget, with the reserve to answer left over.
    assert!(
        took < budget - ANSWER_RESERVE + Duration::from_millis(500),
        "took {took:?} of {budget:?}"
    );
    assert!(
        took >= Duration::from_secs(3),
        "it waited for the call: {took:?}"
    );
    // Retryable, naming the call and the time-out; the decision record
    // logged with it says the same (action `failed`, this error).
    let error = match answer {
        Ok(record) => panic!("the hung call cannot have succeeded: {record:?}"),
        Err(e) => e,
    };
    assert!(error.is_retryable(), "{error}");
    let said = error.to_string();
    assert!(
        said.contains("ecs:UpdateService") && said.contains("operation timeout"),
        "{said}"
    );
    // The hung call was made: the fault was used, not avoided.
    let calls_after = Emulator::shared().calls(REGION);
    let updates = |calls: &std::collections::BTreeMap<String, u64>| {
        calls.get("UpdateService").copied().unwrap_or_default()
    };
    assert!(
        updates(&calls_after) > updates(&calls_before),
        "{calls_after:?}"
    );
    assert_eq!(aws.desired_count("demo", "web").await, 2);

    // The change was recorded before the call that hung: a redelivery,
    // with AWS answering again, completes it.
    let arn = aws
        .service("demo", "web")
        .await
        .service_arn()
        .unwrap_or_default()
        .to_string();
    let tags = aws.service_tags(&arn).await;
    assert_eq!(
        tags.get("ecs-scaler:last-target").map(String::as_str),
        Some("6")
    );
    assert_eq!(
        tags.get("ecs-scaler:applied").map(String::as_str),
        Some("false")
    );
    let again = scaler
        .handle(
            sample_event("scaler/manual-set-desired-count.json"),
            "deadline-again",
            chrono::Utc::now(),
        )
        .await
        .expect("redelivered");
    assert_eq!(
        again.services[0].action,
        Action::Scaled,
        "{}",
        again.services[0].reason
    );
    assert_eq!(aws.desired_count("demo", "web").await, 6);
}
