//! Harness for the end-to-end tests: starts the local AWS emulator on a free
//! loopback port, builds SDK clients pointed at it, and seeds resources.
//!
//! Each test uses its own AWS region, so tests sharing one emulator never see
//! each other's clusters or alarms.

// A harness: a failed set-up step should stop the test (or demo) loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_ecs::types::{ContainerDefinition, PortMapping};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (where `Cargo.toml`, `events/` and `.venv/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The Python that has the pinned emulator installed (`tests/scripts/setup.sh`).
pub fn emulator_python() -> PathBuf {
    std::env::var_os("EMULATOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// A running emulator; stopped when dropped, and by itself when this process exits.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    endpoint: String,
}

impl Emulator {
    /// Starts `tests/emulator/emulator.py` on a free loopback port.
    ///
    /// # Panics
    /// When the emulator cannot start: the message says how to install it.
    pub fn start() -> Self {
        let python = emulator_python();
        assert!(
            python.exists(),
            "{} not found: run `make test` (or tests/scripts/setup.sh) to install the emulator",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(workspace_root().join("tests/emulator/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-with-stdin"])
            // The emulator stops when this pipe closes, so it never outlives the tests.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("READY ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("the emulator exited before it was ready");
                }
            }
        };
        Self { child, endpoint }
    }

    /// One emulator shared by every test in this test binary.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(Emulator::start)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for `region` on this emulator, with dummy credentials.
    pub fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
                aws_sdk_ecs::config::Credentials::new("test", "test", None, None, "e2e"),
            ))
            .build()
    }

    /// Environment a function process needs to reach this emulator.
    pub fn function_env(&self, region: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", region),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a sample event from `events/`.
pub fn sample_event(relative: &str) -> serde_json::Value {
    let path = workspace_root().join("events").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Clients for one region of the emulator, with seeding helpers.
#[derive(Debug, Clone)]
pub struct Aws {
    pub ecs: aws_sdk_ecs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

impl Aws {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            ecs: aws_sdk_ecs::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
        }
    }

    /// A cluster with one service running `desired` copies of a small web task.
    pub async fn create_service(&self, cluster: &str, service: &str, desired: i32) {
        self.ecs
            .create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("create_cluster");
        let family = format!("{service}-task");
        self.ecs
            .register_task_definition()
            .family(&family)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("public.ecr.aws/nginx/nginx:stable")
                    .memory(256)
                    .port_mappings(PortMapping::builder().container_port(8080).build())
                    .build(),
            )
            .send()
            .await
            .expect("register_task_definition");
        self.ecs
            .create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(&family)
            .desired_count(desired)
            .send()
            .await
            .expect("create_service");
    }

    pub async fn desired_count(&self, cluster: &str, service: &str) -> i32 {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .expect("describe_services");
        out.services()
            .first()
            .map(|s| s.desired_count())
            .expect("service exists")
    }

    pub async fn set_desired_count(&self, cluster: &str, service: &str, desired: i32) {
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired)
            .send()
            .await
            .expect("update_service");
    }

    /// A metric alarm on `threshold`, put into `state` with reason data showing `value`.
    pub async fn alarm(&self, name: &str, threshold: f64, state: StateValue, value: f64) {
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("put_metric_alarm");
        self.set_alarm_state(name, threshold, state, value).await;
    }

    pub async fn set_alarm_state(&self, name: &str, threshold: f64, state: StateValue, value: f64) {
        let reason_data = serde_json::json!({
            "version": "1.0",
            "statistic": "Average",
            "period": 60,
            "recentDatapoints": [value],
            "threshold": threshold,
            "evaluatedDatapoints": [{"timestamp": "2026-11-21T10:01:00.000+0000", "sampleCount": 3.0, "value": value}],
        });
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason(format!("datapoint {value} against threshold {threshold}"))
            .state_reason_data(reason_data.to_string())
            .send()
            .await
            .expect("set_alarm_state");
    }
}

/// cargo-lambda from the project's venv.
pub fn cargo_lambda() -> PathBuf {
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

/// A function binary served by cargo-lambda's local Lambda runtime API
/// (`cargo lambda watch --only-lambda-apis`) on a free loopback port.
/// Both processes are stopped when this is dropped.
#[derive(Debug)]
pub struct LocalLambda {
    processes: Vec<Child>,
    port: u16,
}

impl LocalLambda {
    /// Starts the runtime API, then `binary` with `env` polling it.
    pub fn start(binary: &Path, env: &[(String, String)]) -> Self {
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
        let mut lambda = Self {
            processes: vec![runtime],
            port,
        };
        wait_for_port(port);
        let function = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        lambda.processes.push(function);
        lambda
    }

    /// `cargo lambda invoke` with a JSON payload.
    pub fn invoke(&self, payload: &serde_json::Value) -> Invocation {
        let output = Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
            ])
            .args(["--output-format", "json", "--data-ascii"])
            .arg(payload.to_string())
            .current_dir(workspace_root())
            .output()
            .expect("cargo lambda invoke");
        Invocation::from(output)
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What an invocation returned: the response, or the error report.
#[derive(Debug)]
pub struct Invocation {
    pub ok: bool,
    pub response: Option<serde_json::Value>,
    /// Everything cargo-lambda printed, for error messages and assertions.
    pub text: String,
}

impl From<Output> for Invocation {
    fn from(output: Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr);
        Self {
            ok: output.status.success(),
            response: serde_json::from_str(&stdout).ok(),
            text: format!("{stdout}{stderr}"),
        }
    }
}
