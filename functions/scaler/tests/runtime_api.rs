//! The built scaler binary served by the real Lambda runtime API (cargo-lambda's
//! local runtime), invoked with `cargo lambda invoke` and sample events.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::StateValue;
use e2e::{workspace_root, Aws, Emulator};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

/// The scaler binary, built by cargo for this test.
fn scaler_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scaler"))
}

fn cargo_lambda() -> PathBuf {
    let path = workspace_root().join(".venv/bin/cargo-lambda");
    assert!(
        path.exists(),
        "{} not found: run `make test` (or tests/scripts/setup.sh)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Child processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// cargo-lambda's runtime API on a free port, and the scaler binary polling it.
fn start_function(emulator: &Emulator) -> (Processes, u16) {
    let port = free_port();
    let runtime = Command::new(cargo_lambda())
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
        .args(["-P", &port.to_string()])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo lambda watch");
    let mut processes = Processes(vec![runtime]);
    wait_for_port(port);
    let function = Command::new(scaler_binary())
        .envs(emulator.function_env(REGION))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env(
            "SCALER_POLICIES_FILE",
            workspace_root().join("infra/scaler-policies.json"),
        )
        .env_remove("SCALER_POLICIES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scaler binary");
    processes.0.push(function);
    (processes, port)
}

fn invoke(port: u16, event: &str) -> Output {
    Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .args(["--output-format", "json", "--data-file"])
        .arg(workspace_root().join("events").join(event))
        .current_dir(workspace_root())
        .output()
        .expect("cargo lambda invoke")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_function_scales_through_the_lambda_runtime_api() {
    let emulator = Emulator::start();
    let aws = Aws::new(&emulator.sdk_config(REGION));
    aws.create_service("demo", "web", 2).await;
    aws.alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    let (_processes, port) = start_function(&emulator);

    let output = invoke(port, "scaler/alarm-state-change.json");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record: serde_json::Value = serde_json::from_str(&stdout).expect("a decision record");
    assert_eq!(record["services"][0]["action"], "scaled", "{record:#}");
    assert_eq!(record["services"][0]["before"], 2);
    assert_eq!(record["services"][0]["after"], 5);
    assert_eq!(aws.desired_count("demo", "web").await, 5);

    // The same event again is a duplicate.
    let output = invoke(port, "scaler/alarm-state-change.json");
    let record: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a decision record");
    assert_eq!(record["services"][0]["action"], "duplicate");

    // A payload the scaler does not accept comes back as a typed error.
    let output = invoke(port, "scaler/unsupported-service-action.json");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("NonRetryable.MalformedEvent"), "{all}");
    assert_eq!(aws.desired_count("demo", "web").await, 5);
}

#[test]
fn a_bad_policy_document_fails_the_cold_start_naming_the_field() {
    let output = Command::new(scaler_binary())
        .env("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9/.rt")
        .env("AWS_LAMBDA_FUNCTION_NAME", "scaler")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env(
            "SCALER_POLICIES",
            r#"{"policies":[{"alarm":"a","cluster":"c","service":"s","adjustment_type":"ChangeInCapacity","steps":[],"min_capacity":1,"max_capacity":2}]}"#,
        )
        .env_remove("SCALER_POLICIES_FILE")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let logged = String::from_utf8_lossy(&output.stdout);
    assert!(
        logged.contains("invalid configuration: policies[0].steps: at least one step is required"),
        "{logged}"
    );
}
