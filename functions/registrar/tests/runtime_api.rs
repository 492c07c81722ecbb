//! The built registrar binary served by cargo-lambda's local Lambda runtime API.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::{sample_event, Aws, Emulator, LocalLambda, TASK_PORT};
use ecs_control::testing::{
    assert_only_the_first_invocation_is_a_cold_start, assert_operable_lines,
};
use std::path::PathBuf;
use std::process::Command;

const REGION: &str = "us-east-1";

#[tokio::test(flavor = "multi_thread")]
async fn the_built_function_reconciles_through_the_lambda_runtime_api() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    let network = aws.network().await;
    let group = aws.ip_target_group("web", &network.vpc_id).await;
    aws.create_awsvpc_service("demo", "web", &network).await;
    let tasks = aws.run_service_tasks("demo", "web", &network, 3).await;

    let config = serde_json::json!({
        "services": [{"cluster": "demo", "service": "web",
                      "target_groups": [{"target_group_arn": group, "port": TASK_PORT}]}]
    });
    let mut env = emulator.function_env(REGION);
    env.push(("REGISTRAR_CONFIG".into(), config.to_string()));
    let lambda = LocalLambda::start(&PathBuf::from(env!("CARGO_BIN_EXE_registrar")), &env);

    let result = lambda.invoke(&sample_event("registrar/reconcile-schedule.json"));
    assert!(result.ok, "{}", result.text);
    let record = result.response.expect("a decision record");
    assert_eq!(
        record["groups"][0]["diff"]["register"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{record:#}"
    );
    let mut registered: Vec<String> = aws
        .targets(&group)
        .await
        .into_iter()
        .map(|(ip, _, _)| ip)
        .collect();
    registered.sort();
    let mut expected: Vec<String> = tasks.into_iter().map(|(_, ip)| ip).collect();
    expected.sort();
    assert_eq!(registered, expected);

    let refused = lambda.invoke(&serde_json::json!({"command": "reboot"}));
    assert!(!refused.ok);
    assert!(
        refused.text.contains("NonRetryable.MalformedEvent"),
        "{}",
        refused.text
    );

    // Every line it wrote can be joined to its request and queried; only the
    // process's first invocation is its cold start.
    let lines = assert_operable_lines(&lambda.logged(), None);
    assert_only_the_first_invocation_is_a_cold_start(&lines);
}

/// A record of the sample FIFO batch, carrying `body` under `message_id`.
fn queued(message_id: &str, body: &serde_json::Value) -> serde_json::Value {
    let mut record = sample_event("registrar/sqs-batch.json")["Records"][0].clone();
    record["messageId"] = message_id.into();
    record["body"] = body.to_string().into();
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_batch_returns_what_may_succeed_later_through_the_lambda_runtime_api() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    let network = aws.network().await;
    let group = aws.ip_target_group("web", &network.vpc_id).await;
    aws.create_awsvpc_service("demo", "web", &network).await;
    aws.run_service_tasks("demo", "web", &network, 2).await;
    let config = serde_json::json!({
        "services": [{"cluster": "demo", "service": "web",
                      "target_groups": [{"target_group_arn": group, "port": TASK_PORT}]}]
    });
    let mut env = emulator.function_env(REGION);
    env.push(("REGISTRAR_CONFIG".into(), config.to_string()));
    // One attempt a call: the throttled registration fails the message.
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let lambda = LocalLambda::start(&PathBuf::from(env!("CARGO_BIN_EXE_registrar")), &env);

    let reconcile = sample_event("registrar/reconcile-schedule.json");
    let batch = serde_json::json!({"Records": [
        queued("m1", &serde_json::json!({"command": "reboot"})),
        queued("m2", &reconcile),
        queued("m3", &reconcile),
    ]});
    emulator.fail(REGION, "RegisterTargets", "throttle", 1);
    let first = lambda.invoke(&batch);
    assert!(first.ok, "a batch answers: {}", first.text);
    let response = first.response.expect("a batch response");
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]),
        "{response:#}"
    );
    let outcomes: Vec<&str> = response["summary"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["rejected", "failed", "deferred"]);
    assert!(aws.targets(&group).await.is_empty());

    // SQS redelivers the two it was given back, in order.
    let redelivered =
        serde_json::json!({"Records": [queued("m2", &reconcile), queued("m3", &reconcile)]});
    let second = lambda
        .invoke(&redelivered)
        .response
        .expect("a batch response");
    assert_eq!(
        second["batchItemFailures"],
        serde_json::json!([]),
        "{second:#}"
    );
    assert_eq!(aws.targets(&group).await.len(), 2);
}

#[test]
fn a_bad_document_fails_the_cold_start_naming_the_field() {
    let output = Command::new(env!("CARGO_BIN_EXE_registrar"))
        .env("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9/.rt")
        .env("AWS_LAMBDA_FUNCTION_NAME", "registrar")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env(
            "REGISTRAR_CONFIG",
            r#"{"services":[{"cluster":"demo","service":"web","target_groups":[{"target_group_arn":"web","port":8080}]}]}"#,
        )
        .env_remove("REGISTRAR_CONFIG_FILE")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let logged = String::from_utf8_lossy(&output.stdout);
    assert!(
        logged.contains("invalid configuration: services[0].target_groups[0].target_group_arn"),
        "{logged}"
    );
}
