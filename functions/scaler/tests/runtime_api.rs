//! The built scaler binary served by the real Lambda runtime API (cargo-lambda's
//! local runtime), invoked with `cargo lambda invoke` and sample events.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::{sample_event, workspace_root, Aws, Emulator, LocalLambda};
use ecs_control::testing::{
    assert_only_the_first_invocation_is_a_cold_start, assert_operable_lines,
};
use std::path::PathBuf;
use std::process::Command;

const REGION: &str = "us-east-1";

/// The scaler binary, built by cargo for this test.
fn scaler_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scaler"))
}

fn start_function(emulator: &Emulator) -> LocalLambda {
    start_function_with(emulator, &[])
}

fn start_function_with(emulator: &Emulator, extra: &[(&str, &str)]) -> LocalLambda {
    let mut env = emulator.function_env(REGION);
    env.push((
        "SCALER_POLICIES_FILE".into(),
        workspace_root()
            .join("infra/scaler-policies.json")
            .display()
            .to_string(),
    ));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    LocalLambda::start(&scaler_binary(), &env)
}

/// A CPU breach half a minute before the current minute, evaluated at that
/// minute as CloudWatch does (on the minute, not when the datapoint arrives).
async fn cpu_alarm(aws: &Aws) {
    let minute = e2e::emulator_clock::minute_of(aws.clock_now());
    aws.put_cpu(93.5, minute - chrono::TimeDelta::seconds(30))
        .await;
    aws.evaluate_alarms();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_function_scales_through_the_lambda_runtime_api() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    aws.create_service("demo", "web", 2).await;
    aws.demo_alarms().await;
    // The function decides at the wall clock: the datapoint is at most 90 s old.
    cpu_alarm(&aws).await;
    let lambda = start_function(&emulator);

    let event = sample_event("scaler/alarm-state-change.json");
    let first = lambda.invoke(&event);
    assert!(first.ok, "{}", first.text);
    let record = first.response.expect("a decision record");
    assert_eq!(record["services"][0]["action"], "scaled", "{record:#}");
    assert_eq!(record["services"][0]["before"], 2);
    assert_eq!(record["services"][0]["after"], 5);
    assert_eq!(aws.desired_count("demo", "web").await, 5);

    // The same event again is a duplicate.
    let again = lambda.invoke(&event).response.expect("a decision record");
    assert_eq!(again["services"][0]["action"], "duplicate");

    // A payload the scaler does not accept comes back as a typed error.
    let refused = lambda.invoke(&sample_event("scaler/unsupported-service-action.json"));
    assert!(!refused.ok, "{}", refused.text);
    assert!(
        refused.text.contains("NonRetryable.MalformedEvent"),
        "{}",
        refused.text
    );
    assert_eq!(aws.desired_count("demo", "web").await, 5);

    // Every line it wrote can be joined to its request and queried; only the
    // process's first invocation is its cold start.
    let lines = assert_operable_lines(&lambda.logged(), None);
    assert_only_the_first_invocation_is_a_cold_start(&lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_batch_returns_what_may_succeed_later_through_the_lambda_runtime_api() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    aws.create_service("demo", "web", 2).await;
    aws.demo_alarms().await;
    cpu_alarm(&aws).await;
    // One attempt a call: the throttled update fails the message, not a retry inside it.
    let lambda = start_function_with(&emulator, &[("AWS_MAX_ATTEMPTS", "1")]);
    // An alarm state change, then a scheduled tick.
    let batch = sample_event("scaler/sqs-batch.json");
    let ids: Vec<&str> = batch["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["messageId"].as_str().expect("id"))
        .collect();

    emulator.fail(REGION, "UpdateService", "throttle", 1);
    let first = lambda.invoke(&batch);
    assert!(first.ok, "a batch answers: {}", first.text);
    let response = first.response.expect("a batch response");
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": ids[0]}, {"itemIdentifier": ids[1]}]),
        "{response:#}"
    );
    let messages = &response["summary"]["messages"];
    assert_eq!(messages[0]["error_type"], "Retryable.AwsUnavailable");
    assert_eq!(messages[1]["outcome"], "deferred");
    assert_eq!(aws.desired_count("demo", "web").await, 2);

    // SQS redelivers both, in order: the scale-out recorded is completed.
    let second = lambda.invoke(&batch).response.expect("a batch response");
    assert_eq!(
        second["batchItemFailures"],
        serde_json::json!([]),
        "{second:#}"
    );
    assert_eq!(aws.desired_count("demo", "web").await, 5);
    // Delivered once more, it changes nothing.
    let third = lambda.invoke(&batch).response.expect("a batch response");
    assert_eq!(
        third["batchItemFailures"],
        serde_json::json!([]),
        "{third:#}"
    );
    assert_eq!(aws.desired_count("demo", "web").await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_naming_a_missing_alarm_fails_each_event_naming_the_field_until_it_exists() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    aws.create_service("demo", "web", 2).await;
    // The policies name alarms that do not exist yet.
    let lambda = start_function(&emulator);
    let event = sample_event("scaler/alarm-state-change.json");
    for _ in 0..2 {
        let refused = lambda.invoke(&event);
        assert!(!refused.ok, "{}", refused.text);
        for says in [
            "NonRetryable.Configuration",
            "policies[0].alarm: no metric or composite alarm",
        ] {
            assert!(refused.text.contains(says), "{says}: {}", refused.text);
        }
    }
    assert_eq!(
        aws.desired_count("demo", "web").await,
        2,
        "nothing acted on"
    );

    // Once they exist, the next event checks again and is acted on.
    aws.demo_alarms().await;
    cpu_alarm(&aws).await;
    let acted = lambda.invoke(&event);
    assert!(acted.ok, "{}", acted.text);
    assert_eq!(aws.desired_count("demo", "web").await, 5);
}

/// A stand-in for the runtime API's init error endpoint: accepts one request
/// on a loopback port and returns it whole.
fn runtime_api_catching_one_request() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback port");
    let address = listener.local_addr().expect("address").to_string();
    let caught = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the function calls");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read the head, then as much body as Content-Length says.
        loop {
            let n = stream.read(&mut buffer).unwrap_or(0);
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&request).to_string()
    });
    (address, caught)
}

/// Runs the scaler with `env` against a runtime API that catches its one
/// request, and checks that request reports `problem` as an init error,
/// logged once.
fn assert_init_error(env: &[(&str, &str)], unset: &[&str], problem: &str) {
    let (api, caught) = runtime_api_catching_one_request();
    let mut command = Command::new(scaler_binary());
    command
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "scaler")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .envs(env.iter().copied());
    for name in unset {
        command.env_remove(name);
    }
    let output = command.output().expect("runs");
    assert!(!output.status.success());
    let request = caught.join().expect("caught");
    assert!(
        request.starts_with("POST /2018-06-01/runtime/init/error "),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("lambda-runtime-function-error-type: runtime.initerror"),
        "{request}"
    );
    assert!(request.contains(problem), "{request}");
    // Logged once, not once by the function and again by a failing main.
    let logged = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(logged.matches(problem).count(), 1, "{logged}");
}

#[test]
fn a_bad_policy_document_is_reported_as_an_init_error_naming_the_field() {
    assert_init_error(
        &[(
            "SCALER_POLICIES",
            r#"{"policies":[{"alarm":"a","cluster":"c","service":"s","adjustment_type":"ChangeInCapacity","steps":[],"min_capacity":1,"max_capacity":2}]}"#,
        )],
        &["SCALER_POLICIES_FILE"],
        "invalid configuration: policies[0].steps: at least one step is required",
    );
}

#[test]
fn a_bad_sdk_setting_is_reported_as_an_init_error_naming_the_variable() {
    let policies = workspace_root().join("infra/scaler-policies.json");
    let policies = policies.display().to_string();
    assert_init_error(
        &[
            ("SCALER_POLICIES_FILE", policies.as_str()),
            ("AWS_MAX_ATTEMPTS", "3"),
        ],
        &["SCALER_POLICIES", "AWS_REGION", "AWS_DEFAULT_REGION"],
        "invalid configuration: AWS_REGION: is not set (Lambda sets it; elsewhere, name the region)",
    );
}
