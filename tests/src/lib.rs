//! Harness for the end-to-end tests: starts the local AWS emulator on a free
//! loopback port, builds SDK clients pointed at it, and seeds resources.
//!
//! Each test uses its own AWS region, so tests sharing one emulator never see
//! each other's clusters or alarms.

// A harness: a failed set-up step should stop the test (or demo) loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod call_log;
pub mod control_loop;
pub mod crash_points;
pub mod drill_world;
pub mod emulator_clock;
pub mod emulator_ecs;
pub mod emulator_faults;
pub mod predict_replay;
pub mod runtime_api;
pub mod scale_in_load;
pub mod site;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic,
};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType,
    NetworkConfiguration, NetworkMode, PortMapping,
};
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
use chrono::{DateTime, Utc};
use std::io::{BufRead, BufReader, Read, Write};
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
fn plain_moto_requested() -> bool {
    std::env::var("EMULATOR_PLAIN").is_ok_and(|v| v == "1")
}

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
        Self::start_with(&[])
    }

    /// [`Self::start`] with more arguments for `emulator.py`, such as
    /// `--rates aws --latency-ms 30` (`tests/emulator/rates.py`).
    ///
    /// # Panics
    /// When the emulator cannot start: the message says how to install it.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let python = emulator_python();
        assert!(
            python.exists(),
            "{} not found: run `make test` (or tests/scripts/setup.sh) to install the emulator",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(workspace_root().join("tests/emulator/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-with-stdin"])
            .args(["--deployment-seconds", &DEPLOYMENT_SECONDS.to_string()])
            .args(extra_args)
            // EMULATOR_PLAIN=1 runs moto with no strict layer (`make emulator-vs-moto`),
            // to show that the emulator's tests need each one.
            .args(plain_moto_requested().then_some("--plain"))
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

    /// One request to the emulator's control API (`tests/emulator/faults.py`).
    pub fn control(&self, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        control_request(&self.endpoint, method, path, body)
    }

    /// Makes the next `times` calls of `operation` in `region` fail with `kind`
    /// (`throttle`, `server_error`, `timeout` or `slow`).
    pub fn fail(&self, region: &str, operation: &str, kind: &str, times: u32) {
        self.control(
            "POST",
            "faults",
            &serde_json::json!({"region": region, "operation": operation, "kind": kind, "times": times}),
        );
    }

    /// Makes DescribeTasks report these tasks `MISSING` the next `times` calls.
    pub fn make_tasks_missing(&self, task_arns: &[String], times: u32) {
        self.control(
            "POST",
            "missing-tasks",
            &serde_json::json!({"task_arns": task_arns, "times": times}),
        );
    }

    /// How many calls of each operation the emulator saw in `region`.
    pub fn calls(&self, region: &str) -> std::collections::BTreeMap<String, u64> {
        let all = self.control("GET", "calls", &serde_json::json!({}));
        all.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(key, count)| {
                let (r, operation) = key.split_once('/')?;
                (r == region).then(|| (operation.to_string(), count.as_u64().unwrap_or(0)))
            })
            .collect()
    }

    /// SDK configuration for `region` on this emulator, with dummy credentials.
    pub fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .http_client(ecs_control::aws::http_client())
            .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
                aws_sdk_ecs::config::Credentials::new("test", "test", None, None, "e2e"),
            ))
            .build()
    }

    /// [`Self::sdk_config`] with the SDK's standard retries (3 attempts) but
    /// millisecond backoff: for runs that fail many calls on purpose, where
    /// which failures are retried matters and the time slept between does not.
    pub fn sdk_config_quick_retries(&self, region: &str) -> aws_config::SdkConfig {
        self.sdk_config(region)
            .into_builder()
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_initial_backoff(std::time::Duration::from_millis(2))
                    .with_max_backoff(std::time::Duration::from_millis(20)),
            )
            .build()
    }

    /// [`Self::sdk_config`] with one attempt a call: what the emulator
    /// answers is what the caller sees (a throttled call is not retried).
    pub fn sdk_config_single_attempt(&self, region: &str) -> aws_config::SdkConfig {
        self.sdk_config(region)
            .into_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
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

/// One request to the control API of the emulator at `endpoint`.
pub fn control_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let body = body.to_string();
    let mut stream = TcpStream::connect(&address).expect("emulator reachable");
    write!(
        stream,
        "{method} /_emulator/{path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    let (head, payload) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.contains(" 200 "), "{method} {path}: {answer}");
    serde_json::from_str(payload).expect("JSON answer")
}

/// Clients for one region of the emulator, with seeding helpers.
#[derive(Debug, Clone)]
pub struct Aws {
    /// The emulator's endpoint and the region, for its control API.
    endpoint: String,
    region: String,
    pub ecs: aws_sdk_ecs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

impl Aws {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            endpoint: config.endpoint_url().unwrap_or_default().to_string(),
            region: config
                .region()
                .map_or_else(|| "us-east-1".to_string(), ToString::to_string),
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
        let family = self.web_task_definition(service, "stable").await;
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

    /// Registers a revision of the service's web task definition (nginx at
    /// `tag`); returns its ARN.
    async fn web_task_definition(&self, service: &str, tag: &str) -> String {
        let out = self
            .ecs
            .register_task_definition()
            .family(format!("{service}-task"))
            // A Fargate size: 0.25 vCPU and 0.5 GB, which the budget counts.
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image(format!("public.ecr.aws/nginx/nginx:{tag}"))
                    .memory(256)
                    .port_mappings(PortMapping::builder().container_port(8080).build())
                    .build(),
            )
            .send()
            .await
            .expect("register_task_definition");
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .expect("task definition arn")
            .to_string()
    }

    /// The service as ECS describes it now.
    pub async fn service(&self, cluster: &str, service: &str) -> aws_sdk_ecs::types::Service {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .expect("describe_services");
        out.services().first().cloned().expect("service exists")
    }

    pub async fn desired_count(&self, cluster: &str, service: &str) -> i32 {
        self.service(cluster, service).await.desired_count()
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

    /// A one-minute alarm on the `AWS/ECS` metric `metric` of `cluster`/`service`.
    pub async fn service_alarm(
        &self,
        name: &str,
        (cluster, service): (&str, &str),
        metric: &str,
        comparison: ComparisonOperator,
        threshold: f64,
    ) {
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/ECS")
            .metric_name(metric)
            .set_dimensions(Some(service_dimensions(cluster, service)))
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(comparison)
            .send()
            .await
            .expect("put_metric_alarm");
    }

    /// The alarms `infra/scaler-policies.json` names, for demo/web: CPU above
    /// 70 and below 20, and "under pressure" (a composite of high CPU and high
    /// memory).
    pub async fn demo_alarms(&self) {
        let web = ("demo", "web");
        self.service_alarm(
            "web-cpu-high",
            web,
            "CPUUtilization",
            ComparisonOperator::GreaterThanThreshold,
            70.0,
        )
        .await;
        self.service_alarm(
            "web-cpu-low",
            web,
            "CPUUtilization",
            ComparisonOperator::LessThanThreshold,
            20.0,
        )
        .await;
        self.service_alarm(
            "web-memory-high",
            web,
            "MemoryUtilization",
            ComparisonOperator::GreaterThanThreshold,
            90.0,
        )
        .await;
        self.cloudwatch
            .put_composite_alarm()
            .alarm_name("web-under-pressure")
            .alarm_rule(r#"ALARM("web-cpu-high") AND ALARM("web-memory-high")"#)
            .send()
            .await
            .expect("put_composite_alarm");
    }

    /// Puts `count` samples of `value` of an `AWS/ECS` service metric at `at`,
    /// as ECS would (one datum, `Values`/`Counts`); the emulator evaluates the
    /// alarms on them.
    pub async fn put_service_samples(
        &self,
        (cluster, service): (&str, &str),
        metric: &str,
        (value, count): (f64, u32),
        at: DateTime<Utc>,
    ) {
        self.cloudwatch
            .put_metric_data()
            .namespace("AWS/ECS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name(metric)
                    .set_dimensions(Some(service_dimensions(cluster, service)))
                    .values(value)
                    .counts(f64::from(count))
                    .timestamp(aws_smithy_types::DateTime::from_millis(
                        at.timestamp_millis(),
                    ))
                    .build(),
            )
            .send()
            .await
            .expect("put_metric_data");
    }

    /// One datapoint of any metric.
    pub async fn put_metric(
        &self,
        (namespace, name): (&str, &str),
        dimensions: &[(&str, &str)],
        value: f64,
        at: DateTime<Utc>,
    ) {
        self.cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(name)
                    .set_dimensions(Some(
                        dimensions
                            .iter()
                            .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
                            .collect(),
                    ))
                    .value(value)
                    .timestamp(aws_smithy_types::DateTime::from_millis(
                        at.timestamp_millis(),
                    ))
                    .build(),
            )
            .send()
            .await
            .expect("put_metric_data");
    }

    /// One datapoint of an `AWS/ECS` service metric.
    pub async fn put_service_metric(
        &self,
        service: (&str, &str),
        metric: &str,
        value: f64,
        at: DateTime<Utc>,
    ) {
        self.put_service_samples(service, metric, (value, 1), at)
            .await;
    }

    /// demo/web's CPU at `at`.
    pub async fn put_cpu(&self, value: f64, at: DateTime<Utc>) {
        self.put_cpu_samples(value, 1, at).await;
    }

    /// `count` samples of demo/web's CPU at `at`.
    pub async fn put_cpu_samples(&self, value: f64, count: u32, at: DateTime<Utc>) {
        self.put_service_samples(("demo", "web"), "CPUUtilization", (value, count), at)
            .await;
    }

    /// The alarm's state value and reason data, as CloudWatch describes it.
    pub async fn alarm_state(&self, name: &str) -> (String, String) {
        let out = self
            .cloudwatch
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .expect("describe_alarms");
        let alarm = out.metric_alarms().first().expect("alarm exists");
        (
            alarm
                .state_value()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            alarm.state_reason_data().unwrap_or_default().to_string(),
        )
    }

    /// Forces an alarm's state, as `aws cloudwatch set-alarm-state` does (AWS
    /// ignores it when the alarm is already in that state). Tests of sustained
    /// alarms drive them with datapoints instead.
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

fn service_dimensions(cluster: &str, service: &str) -> Vec<Dimension> {
    vec![
        Dimension::builder()
            .name("ClusterName")
            .value(cluster)
            .build(),
        Dimension::builder()
            .name("ServiceName")
            .value(service)
            .build(),
    ]
}

/// How long the harness's target groups drain a deregistered target.
pub const DEREGISTRATION_DELAY_SECONDS: u32 = 2;

/// How long an emulated ECS deployment rolls out before it completes.
pub const DEPLOYMENT_SECONDS: u32 = 4;

impl Aws {
    /// Waits until the service's deployment has completed (at most a minute).
    pub async fn wait_for_deployment(&self, cluster: &str, service: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.service(cluster, service).await;
            let deployments = found.deployments();
            let done = deployments.len() == 1
                && deployments[0].rollout_state()
                    == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Completed);
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}/{service} never finished deploying"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Starts a deployment: a new revision of the service's task definition.
    pub async fn deploy_new_revision(&self, cluster: &str, service: &str) {
        let revision = self.web_task_definition(service, "mainline").await;
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(revision)
            .send()
            .await
            .expect("update_service");
    }
}

/// Where awsvpc tasks run: a VPC, a subnet and a security group.
#[derive(Debug, Clone)]
pub struct Network {
    pub vpc_id: String,
    pub subnet_id: String,
    pub security_group_id: String,
}

/// The container port the awsvpc test service listens on.
pub const TASK_PORT: u16 = 8080;

impl Aws {
    pub async fn network(&self) -> Network {
        self.network_with(false).await
    }

    /// A dual-stack network: tasks get an IPv6 address beside their IPv4.
    pub async fn dual_stack_network(&self) -> Network {
        self.network_with(true).await
    }

    /// The network comes from the emulator's control API: the harness has no
    /// other use for an EC2 client, the largest SDK crate to build.
    async fn network_with(&self, ipv6: bool) -> Network {
        let answer = control_request(
            &self.endpoint,
            "POST",
            "network",
            &serde_json::json!({"region": self.region, "ipv6": ipv6}),
        );
        let field = |name: &str| answer[name].as_str().expect(name).to_string();
        Network {
            vpc_id: field("vpc_id"),
            subnet_id: field("subnet_id"),
            security_group_id: field("security_group_id"),
        }
    }

    /// An awsvpc service at `desired` tasks (none running yet), its deployment
    /// settled, and an `ip` target group for it named after it.
    pub async fn awsvpc_service_with_group(
        &self,
        cluster: &str,
        service: &str,
        desired: i32,
    ) -> (Network, String) {
        let network = self.network().await;
        let target_group = self.ip_target_group(service, &network.vpc_id).await;
        self.create_awsvpc_service(cluster, service, &network).await;
        self.set_desired_count(cluster, service, desired).await;
        self.wait_for_deployment(cluster, service).await;
        (network, target_group)
    }

    /// An `ip` target group on [`TASK_PORT`]; returns its ARN.
    pub async fn ip_target_group(&self, name: &str, vpc_id: &str) -> String {
        let out = self
            .elbv2
            .create_target_group()
            .name(name)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(i32::from(TASK_PORT))
            .vpc_id(vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("create_target_group");
        let arn = out
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .expect("target group arn")
            .to_string();
        // Drain for DEREGISTRATION_DELAY_SECONDS instead of AWS's default 300.
        self.elbv2
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(DEREGISTRATION_DELAY_SECONDS.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("modify_target_group_attributes");
        // ELB health-checks only targets of a group a load balancer uses.
        self.attach_to_load_balancer(&arn, name, vpc_id).await;
        arn
    }

    /// A cluster and an awsvpc Fargate service with no tasks yet.
    pub async fn create_awsvpc_service(&self, cluster: &str, service: &str, network: &Network) {
        self.ecs
            .create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("create_cluster");
        self.ecs
            .register_task_definition()
            .family(service)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("public.ecr.aws/nginx/nginx:stable")
                    .memory(256)
                    .port_mappings(
                        PortMapping::builder()
                            .container_port(i32::from(TASK_PORT))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("register_task_definition");
        self.ecs
            .create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(service)
            .launch_type(LaunchType::Fargate)
            .desired_count(0)
            .network_configuration(network_configuration(network))
            .send()
            .await
            .expect("create_service");
    }

    /// Starts `count` tasks that list under the service (the emulator's service
    /// starts none itself); returns each task's ARN and private IPv4.
    pub async fn run_service_tasks(
        &self,
        cluster: &str,
        service: &str,
        network: &Network,
        count: usize,
    ) -> Vec<(String, String)> {
        const PER_CALL: usize = 10;
        let mut tasks = Vec::with_capacity(count);
        while tasks.len() < count {
            let batch = (count - tasks.len()).min(PER_CALL);
            let out = self
                .ecs
                .run_task()
                .cluster(cluster)
                .task_definition(service)
                .group(format!("service:{service}"))
                .launch_type(LaunchType::Fargate)
                .count(i32::try_from(batch).expect("small"))
                .network_configuration(network_configuration(network))
                .send()
                .await
                .expect("run_task");
            for task in out.tasks() {
                let ip = task
                    .attachments()
                    .iter()
                    .flat_map(|a| a.details())
                    .find(|d| d.name() == Some("privateIPv4Address"))
                    .and_then(|d| d.value())
                    .expect("task ip");
                tasks.push((task.task_arn().expect("arn").to_string(), ip.to_string()));
            }
        }
        tasks
    }

    /// A service's tags, by key.
    pub async fn service_tags(
        &self,
        service_arn: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let tags = self
            .ecs
            .list_tags_for_resource()
            .resource_arn(service_arn)
            .send()
            .await
            .expect("tags");
        tags.tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    pub async fn stop_task(&self, cluster: &str, task_arn: &str) {
        self.ecs
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason("e2e")
            .send()
            .await
            .expect("stop_task");
    }

    /// `(ip, port, state)` of every target in the group.
    pub async fn targets(&self, target_group_arn: &str) -> Vec<(String, u16, String)> {
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .expect("describe_target_health");
        out.target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let target = d.target()?;
                Some((
                    target.id()?.to_string(),
                    u16::try_from(target.port()?).ok()?,
                    d.target_health()
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The group's targets that are not draining, as (IP, port), sorted.
    pub async fn active_targets(&self, target_group_arn: &str) -> Vec<(String, u16)> {
        let mut active: Vec<(String, u16)> = self
            .targets(target_group_arn)
            .await
            .into_iter()
            .filter(|(_, _, state)| state != "draining")
            .map(|(ip, port, _)| (ip, port))
            .collect();
        active.sort();
        active
    }

    /// Waits (at most a minute) until every target of the group has passed its
    /// health checks: a new target is `initial` first, as in AWS.
    pub async fn wait_until_healthy(&self, target_group_arn: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .targets(target_group_arn)
            .await
            .iter()
            .any(|(_, _, state)| state != "healthy")
        {
            assert!(Instant::now() < deadline, "targets never became healthy");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The distinct metric names CloudWatch lists in a namespace, sorted.
    pub async fn metric_names(&self, namespace: &str) -> Vec<String> {
        let listed = self
            .cloudwatch
            .list_metrics()
            .namespace(namespace)
            .send()
            .await
            .expect("list_metrics");
        let mut names: Vec<String> = listed
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name())
            .map(str::to_string)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Registers a target by hand (drift, or a foreign target on another port).
    pub async fn register_target(&self, target_group_arn: &str, ip: &str, port: u16) {
        self.elbv2
            .register_targets()
            .target_group_arn(target_group_arn)
            .targets(
                TargetDescription::builder()
                    .id(ip)
                    .port(i32::from(port))
                    // Hand-made targets may be outside the VPC's subnets, where ELB
                    // requires a zone; `all` is what an ALB group takes anyway.
                    .availability_zone("all")
                    .build(),
            )
            .send()
            .await
            .expect("register_targets");
    }
}

/// The awsvpc network configuration that places a task in `network`.
pub fn network_configuration(network: &Network) -> NetworkConfiguration {
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

/// cargo-lambda from the project's venv.
pub fn cargo_lambda() -> PathBuf {
    installed(
        ".venv/bin/cargo-lambda",
        "run `make test` (or tests/scripts/setup.sh)",
    )
}

/// A tool the set-up script installs, at `relative` from the workspace root;
/// panics naming `how` to install it when it is not there.
pub fn installed(relative: &str, how: &str) -> PathBuf {
    let path = workspace_root().join(relative);
    assert!(path.exists(), "{} not found: {how}", path.display());
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
/// (`cargo lambda watch --only-lambda-apis`) on a free loopback port, logging
/// JSON lines as deployed (the function's stdout and stderr are kept for
/// [`LocalLambda::logged`]). Both processes are stopped when this is dropped.
#[derive(Debug)]
pub struct LocalLambda {
    processes: Vec<Child>,
    port: u16,
    log: PathBuf,
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
        let log = std::env::temp_dir().join(format!("local-lambda-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("a log file");
        let mut lambda = Self {
            processes: vec![runtime],
            port,
            log,
        };
        wait_for_port(port);
        let function = Command::new(binary)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the log file"))
            .stderr(log_file)
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

    /// Everything the function has written so far, stdout and stderr.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
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
