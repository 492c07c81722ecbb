//! The local AWS emulator gives AWS's answers where moto alone is kinder:
//! each call goes through the Rust SDK, as the functions' calls do.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Metric, MetricDataQuery, MetricStat, StateValue,
};
use aws_sdk_ecs::types::{DeploymentRolloutState, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{TimeDelta, Utc};
use e2e::emulator_clock::minute_of;
use e2e::{Aws, Emulator};

// Each behaviour that keeps time, or fails as AWS fails, has its own file.
#[path = "emulator/cloudwatch_clock.rs"]
mod cloudwatch_clock;
#[path = "emulator/ecs_lifecycle.rs"]
mod ecs_lifecycle;
#[path = "emulator/fault_kinds.rs"]
mod fault_kinds;
#[path = "emulator/target_health.rs"]
mod target_health;

fn aws(region: &str) -> Aws {
    Aws::new(&Emulator::shared().sdk_config(region))
}

fn code<E: ProvideErrorMetadata>(err: &aws_sdk_ecs::error::SdkError<E>) -> String {
    err.as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("no service error")
        .to_string()
}

async fn service_arn(aws: &Aws, cluster: &str, service: &str) -> String {
    let found = aws.service(cluster, service).await;
    found.service_arn().expect("arn").to_string()
}

#[tokio::test]
async fn ecs_refuses_tags_that_break_its_rules() {
    let aws = aws("us-east-1");
    aws.create_service("tags", "web", 1).await;
    let arn = service_arn(&aws, "tags", "web").await;
    let tag = |key: &str, value: &str| Tag::builder().key(key).value(value).build();
    for (bad, why) in [
        (tag("ecs-scaler:last-trigger", "alarm:a,b"), "comma"),
        (tag("k", "alarm #1"), "hash"),
        (tag("k", &"v".repeat(257)), "257 characters"),
        (tag(&"k".repeat(129), "v"), "129-character key"),
        (tag("k", "(parenthesis)"), "parenthesis"),
    ] {
        let err = aws
            .ecs
            .tag_resource()
            .resource_arn(&arn)
            .tags(bad)
            .send()
            .await
            .expect_err(why);
        assert_eq!(code(&err), "InvalidParameterException", "{why}");
    }
    // Letters of any script, spaces, digits and _.:/=+-@ are fine, as is an empty value.
    aws.ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("ecs-scaler:last-trigger", "alarm:Überlast 1/2=+_-@.x"))
        .tags(tag("empty", ""))
        .tags(tag("k", &"v".repeat(256)))
        .send()
        .await
        .expect("valid tags");
}

#[tokio::test]
async fn deployments_finish_and_only_a_new_task_definition_starts_one() {
    let aws = aws("us-east-2");
    aws.create_service("deploys", "web", 2).await;
    let rollouts = || async {
        aws.service("deploys", "web")
            .await
            .deployments()
            .iter()
            .map(|d| {
                (
                    d.status().unwrap_or_default().to_string(),
                    d.rollout_state().cloned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rollouts().await,
        [(
            "PRIMARY".to_string(),
            Some(DeploymentRolloutState::InProgress)
        )]
    );
    aws.wait_for_deployment("deploys", "web").await;

    // A desired-count change alone starts no deployment.
    aws.set_desired_count("deploys", "web", 5).await;
    assert_eq!(
        rollouts().await,
        [(
            "PRIMARY".to_string(),
            Some(DeploymentRolloutState::Completed)
        )]
    );

    // A new task definition does: two deployments until the new one completes.
    aws.deploy_new_revision("deploys", "web").await;
    let during = rollouts().await;
    assert_eq!(during.len(), 2, "{during:?}");
    assert_eq!(
        during[0],
        (
            "PRIMARY".to_string(),
            Some(DeploymentRolloutState::InProgress)
        )
    );
    assert_eq!(during[1].0, "ACTIVE");
    aws.wait_for_deployment("deploys", "web").await;
}

#[tokio::test]
async fn describe_services_takes_at_most_ten_and_reports_the_missing() {
    let aws = aws("us-east-2");
    aws.create_service("tenfold", "web", 1).await;
    let mut names: Vec<String> = (0..10).map(|i| format!("absent-{i}")).collect();
    names[0] = "web".into();
    let out = aws
        .ecs
        .describe_services()
        .cluster("tenfold")
        .set_services(Some(names.clone()))
        .send()
        .await
        .expect("ten services");
    assert_eq!(out.services().len(), 1);
    assert_eq!(out.failures().len(), 9);
    assert!(out.failures().iter().all(|f| f.reason() == Some("MISSING")));

    names.push("absent-10".into());
    let err = aws
        .ecs
        .describe_services()
        .cluster("tenfold")
        .set_services(Some(names))
        .send()
        .await
        .expect_err("eleven services");
    assert_eq!(code(&err), "InvalidParameterException");
}

#[tokio::test]
async fn alarms_are_evaluated_from_datapoints_and_change_only_on_a_transition() {
    let aws = aws("us-west-1");
    let web = ("demo", "web");
    aws.service_alarm(
        "cpu-high",
        web,
        "CPUUtilization",
        ComparisonOperator::GreaterThanThreshold,
        70.0,
    )
    .await;
    assert_eq!(aws.alarm_state("cpu-high").await.0, "INSUFFICIENT_DATA");

    // Alarms are evaluated on the clock (cloudwatch_clock.rs): each minute.
    let t = minute_of(aws.clock_now()) - TimeDelta::seconds(30);
    aws.put_cpu(75.0, t).await;
    aws.evaluate_alarms();
    let (state, reason) = aws.alarm_state("cpu-high").await;
    assert_eq!(state, "ALARM");
    let data: serde_json::Value = serde_json::from_str(&reason).expect("reason data is JSON");
    assert_eq!(data["threshold"], 70.0);
    assert_eq!(data["evaluatedDatapoints"][0]["value"], 75.0);

    // Staying in ALARM writes nothing: the reason data still shows the first breach.
    aws.put_cpu(95.0, t + TimeDelta::minutes(1)).await;
    aws.advance_clock(60);
    assert_eq!(
        aws.alarm_state("cpu-high").await,
        (state.clone(), reason.clone())
    );
    // Nor does forcing the state it already has.
    aws.set_alarm_state("cpu-high", 70.0, StateValue::Alarm, 99.0)
        .await;
    assert_eq!(aws.alarm_state("cpu-high").await, (state, reason));

    aws.put_cpu(40.0, t + TimeDelta::minutes(2)).await;
    aws.advance_clock(60);
    assert_eq!(aws.alarm_state("cpu-high").await.0, "OK");
}

#[tokio::test]
async fn get_metric_data_answers_metric_and_math_queries() {
    let aws = aws("us-west-2");
    let start = Utc::now() - TimeDelta::minutes(30);
    let minute = |n: i64| start + TimeDelta::minutes(n) + TimeDelta::seconds(10);
    for (n, value) in [(0, 10.0), (0, 30.0), (1, 50.0)] {
        aws.put_cpu(value, minute(n)).await;
    }
    let cpu = MetricStat::builder()
        .metric(
            Metric::builder()
                .namespace("AWS/ECS")
                .metric_name("CPUUtilization")
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("ClusterName")
                        .value("demo")
                        .build(),
                )
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("ServiceName")
                        .value("web")
                        .build(),
                )
                .build(),
        )
        .period(60)
        .stat("Average")
        .build();
    let out = aws
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("m1")
                .metric_stat(cpu)
                .return_data(true)
                .build(),
        )
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("e1")
                .expression("m1 * 2 + 1")
                .return_data(true)
                .build(),
        )
        .start_time(aws_smithy_types::DateTime::from_millis(
            (start - TimeDelta::minutes(1)).timestamp_millis(),
        ))
        .end_time(aws_smithy_types::DateTime::from_millis(
            (start + TimeDelta::minutes(5)).timestamp_millis(),
        ))
        .scan_by(aws_sdk_cloudwatch::types::ScanBy::TimestampAscending)
        .send()
        .await
        .expect("get_metric_data");
    let values = |id: &str| {
        out.metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .map(|r| r.values().to_vec())
            .expect(id)
    };
    assert_eq!(values("m1"), [20.0, 50.0]);
    assert_eq!(values("e1"), [41.0, 101.0]);
}

#[tokio::test]
async fn composite_alarms_exist_and_follow_their_rule() {
    let aws = aws("eu-west-1");
    aws.demo_alarms().await;
    // Without AlarmTypes, DescribeAlarms returns metric alarms only.
    let plain = aws
        .cloudwatch
        .describe_alarms()
        .alarm_names("web-under-pressure")
        .send()
        .await
        .expect("describe_alarms");
    assert!(plain.composite_alarms().is_empty());
    let composite_state = || async {
        let out = aws
            .cloudwatch
            .describe_alarms()
            .alarm_names("web-under-pressure")
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .expect("describe_alarms");
        let alarm = &out.composite_alarms()[0];
        assert_eq!(
            alarm.alarm_rule(),
            Some(r#"ALARM("web-cpu-high") AND ALARM("web-memory-high")"#)
        );
        alarm.state_value().map(|s| s.as_str().to_string())
    };
    // A new composite alarm is INSUFFICIENT_DATA until its first evaluation.
    assert_eq!(
        composite_state().await.as_deref(),
        Some("INSUFFICIENT_DATA")
    );
    aws.evaluate_alarms();
    assert_eq!(composite_state().await.as_deref(), Some("OK"));
    let t = minute_of(aws.clock_now()) - TimeDelta::seconds(30);
    aws.put_cpu(95.0, t).await;
    aws.evaluate_alarms();
    assert_eq!(composite_state().await.as_deref(), Some("OK"));
    aws.put_service_metric(("demo", "web"), "MemoryUtilization", 97.0, t)
        .await;
    aws.evaluate_alarms();
    assert_eq!(composite_state().await.as_deref(), Some("ALARM"));
}

#[tokio::test]
async fn describe_alarms_pages_at_most_one_hundred() {
    let aws = aws("eu-west-2");
    for i in 0..120 {
        aws.service_alarm(
            &format!("alarm-{i:03}"),
            ("demo", "web"),
            "CPUUtilization",
            ComparisonOperator::GreaterThanThreshold,
            50.0,
        )
        .await;
    }
    let first = aws
        .cloudwatch
        .describe_alarms()
        .max_records(100)
        .send()
        .await
        .expect("first page");
    assert_eq!(first.metric_alarms().len(), 100);
    let token = first.next_token().expect("a second page").to_string();
    let second = aws
        .cloudwatch
        .describe_alarms()
        .max_records(100)
        .next_token(token)
        .send()
        .await
        .expect("second page");
    assert_eq!(second.metric_alarms().len(), 20);
    assert!(second.next_token().is_none());
    // Fifty by default; more than a hundred is refused.
    let default = aws.cloudwatch.describe_alarms().send().await.expect("page");
    assert_eq!(default.metric_alarms().len(), 50);
    let err = aws
        .cloudwatch
        .describe_alarms()
        .max_records(101)
        .send()
        .await
        .expect_err("too many");
    assert_eq!(err.code(), Some("ValidationError"));
}

#[tokio::test]
async fn the_fault_layer_fails_chosen_calls_a_chosen_number_of_times() {
    let region = "eu-central-1";
    let emulator = Emulator::shared();
    let aws = aws(region);
    aws.create_service("faults", "web", 1).await;
    let calls_before = emulator.calls(region);
    let count = |calls: &std::collections::BTreeMap<String, u64>, operation: &str| {
        calls.get(operation).copied().unwrap_or(0)
    };

    // Three throttles outlast the SDK's three attempts; the fourth call goes through.
    emulator.fail(region, "UpdateService", "throttle", 3);
    let err = aws
        .ecs
        .update_service()
        .cluster("faults")
        .service("web")
        .desired_count(2)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(code(&err), "ThrottlingException");
    aws.set_desired_count("faults", "web", 2).await;

    // One 500 is retried by the SDK and never seen: two attempts, the fault used.
    let describes = count(&emulator.calls(region), "DescribeServices");
    emulator.fail(region, "DescribeServices", "server_error", 1);
    assert_eq!(aws.desired_count("faults", "web").await, 2);
    assert_eq!(
        count(&emulator.calls(region), "DescribeServices"),
        describes + 2
    );
    let used: Vec<_> = emulator
        .faults()
        .into_iter()
        .filter(|f| f["region"] == region && f["operation"] == "DescribeServices")
        .collect();
    assert_eq!(
        (
            used[0]["kind"].as_str(),
            used[0]["fired"].as_u64(),
            used[0]["consumed"].as_bool()
        ),
        (Some("server_error"), Some(1), Some(true))
    );
    emulator.fail(region, "DescribeAlarms", "server_error", 3);
    let err = aws
        .cloudwatch
        .describe_alarms()
        .send()
        .await
        .expect_err("500");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );

    // A timeout: the emulator holds the call longer than the client waits.
    emulator.control(
        "POST",
        "faults",
        &serde_json::json!({"region": region, "operation": "ListServices", "kind": "timeout",
                            "times": 1, "delay_seconds": 2}),
    );
    let impatient = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&emulator.sdk_config(region))
            .timeout_config(
                aws_sdk_ecs::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_millis(500))
                    .build(),
            )
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = impatient
        .list_services()
        .cluster("faults")
        .send()
        .await
        .expect_err("timed out");
    assert!(
        matches!(err, aws_sdk_ecs::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );

    // Three throttled attempts, then the call that went through: exactly four.
    let calls = emulator.calls(region);
    assert_eq!(
        count(&calls, "UpdateService") - count(&calls_before, "UpdateService"),
        4,
        "{calls:?}"
    );
}

#[tokio::test]
async fn list_tasks_filters_by_service_and_pages_and_describe_tasks_is_capped() {
    let region = "ap-south-1";
    let aws = aws(region);
    let network = aws.network().await;
    aws.create_awsvpc_service("tasks", "web", &network).await;
    aws.create_awsvpc_service("tasks", "api", &network).await;
    let web = aws.run_service_tasks("tasks", "web", &network, 105).await;
    aws.run_service_tasks("tasks", "api", &network, 3).await;

    let list = |token: Option<String>| {
        aws.ecs
            .list_tasks()
            .cluster("tasks")
            .service_name("web")
            .set_next_token(token)
            .send()
    };
    let first = list(None).await.expect("first page");
    assert_eq!(first.task_arns().len(), 100);
    let second = list(first.next_token().map(str::to_string))
        .await
        .expect("second page");
    assert_eq!(second.task_arns().len(), 5);
    assert!(second.next_token().is_none());
    let api = aws
        .ecs
        .list_tasks()
        .cluster("tasks")
        .service_name("api")
        .send()
        .await
        .expect("api tasks");
    assert_eq!(
        api.task_arns().len(),
        3,
        "another service's tasks are not listed"
    );

    let arns: Vec<String> = web.iter().map(|(arn, _)| arn.clone()).collect();
    let err = aws
        .ecs
        .describe_tasks()
        .cluster("tasks")
        .set_tasks(Some(arns[..101].to_vec()))
        .send()
        .await
        .expect_err("more than 100");
    assert_eq!(code(&err), "InvalidParameterException");

    // A task just listed can be momentarily missing from DescribeTasks.
    Emulator::shared().make_tasks_missing(&arns[..1], 1);
    let described = aws
        .ecs
        .describe_tasks()
        .cluster("tasks")
        .set_tasks(Some(arns[..3].to_vec()))
        .send()
        .await
        .expect("described");
    assert_eq!(described.tasks().len(), 2);
    assert_eq!(described.failures()[0].arn(), Some(arns[0].as_str()));
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
}

#[tokio::test]
async fn targets_are_keyed_by_id_and_port_start_initial_and_drain() {
    let aws = aws("ap-northeast-1");
    let network = aws.network().await;
    let group = aws.ip_target_group("keys", &network.vpc_id).await;
    aws.register_target(&group, "10.0.0.5", 8080).await;
    aws.register_target(&group, "10.0.0.5", 9090).await;
    let mut targets = aws.targets(&group).await;
    targets.sort();
    assert_eq!(
        targets,
        [
            ("10.0.0.5".to_string(), 8080, "initial".to_string()),
            ("10.0.0.5".to_string(), 9090, "initial".to_string())
        ]
    );
    aws.wait_until_healthy(&group).await;

    aws.elbv2
        .deregister_targets()
        .target_group_arn(&group)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id("10.0.0.5")
                .port(9090)
                .build(),
        )
        .send()
        .await
        .expect("deregister");
    let mut targets = aws.targets(&group).await;
    targets.sort();
    assert_eq!(
        targets,
        [
            ("10.0.0.5".to_string(), 8080, "healthy".to_string()),
            ("10.0.0.5".to_string(), 9090, "draining".to_string())
        ]
    );
    // The deregistration delay (shortened by the harness) ends the draining.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(
        aws.targets(&group).await,
        [("10.0.0.5".to_string(), 8080, "healthy".to_string())]
    );
}

#[tokio::test]
async fn a_task_in_a_dual_stack_subnet_has_an_ipv6_address() {
    let aws = aws("sa-east-1");
    let network = aws.dual_stack_network().await;
    aws.create_awsvpc_service("v6", "web", &network).await;
    let (arn, _) = aws
        .run_service_tasks("v6", "web", &network, 1)
        .await
        .remove(0);
    let described = aws
        .ecs
        .describe_tasks()
        .cluster("v6")
        .tasks(arn)
        .send()
        .await
        .expect("described");
    let ipv6 = described.tasks()[0]
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv6Address"))
        .and_then(|d| d.value())
        .expect("an IPv6 address");
    assert!(ipv6.parse::<std::net::Ipv6Addr>().is_ok(), "{ipv6}");
}

/// How a burst of one operation went: the calls answered, then the first
/// refused call's error code and HTTP status (`None` when none was refused).
struct Burst {
    answered: usize,
    refused: Option<(String, u16)>,
}

/// Sends `call` until it is refused or `limit` calls were answered.
async fn burst<T, E, F, Fut>(limit: usize, call: F) -> Burst
where
    E: ProvideErrorMetadata,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, aws_sdk_ecs::error::SdkError<E>>>,
{
    let mut answered = 0;
    while answered < limit {
        match call().await {
            Ok(_) => answered += 1,
            Err(err) => {
                let status = err.raw_response().map_or(0, |r| r.status().as_u16());
                return Burst {
                    answered,
                    refused: Some((code(&err), status)),
                };
            }
        }
    }
    Burst {
        answered,
        refused: None,
    }
}

/// With `--rates aws`, each API family is a token bucket at AWS's documented
/// size and refill (`tests/emulator/rates.py` cites each): a burst is refused
/// exactly where the bucket empties, with the service's throttling code and
/// HTTP 400, and each second adds exactly the refill's worth, up to the
/// bucket's size. The buckets' manual clock keeps the counts exact however
/// fast this machine answers; the real clock refills them too.
#[tokio::test]
async fn a_burst_is_throttled_where_the_bucket_empties_and_refills_at_the_documented_rate() {
    let emulator = Emulator::start_with(&["--rates", "aws"]);
    let rates = |body: serde_json::Value| emulator.control("POST", "rates", &body);
    rates(serde_json::json!({"clock": "manual"}));
    let aws = Aws::new(&emulator.sdk_config_single_attempt("us-east-1"));
    // ECS cluster reads, ELBv2 Describe* and CloudWatch DescribeAlarms: each
    // family has its own bucket.
    let ecs = || aws.ecs.list_clusters().send();
    let elb = || aws.elbv2.describe_target_groups().send();
    let alarms = || aws.cloudwatch.describe_alarms().send();
    let bursts = || async {
        [
            burst(1_000, ecs).await,
            burst(1_000, elb).await,
            burst(1_000, alarms).await,
        ]
    };
    let codes = ["ThrottlingException", "Throttling", "Throttling"];
    let answered = |bursts: &[Burst; 3], expected: [usize; 3]| {
        for ((burst, count), throttle) in bursts.iter().zip(expected).zip(codes) {
            assert_eq!(burst.answered, count, "{throttle}: {count} answered");
            assert_eq!(burst.refused, Some((throttle.to_string(), 400)));
        }
    };
    // Full buckets: 50, 40 and 9 tokens.
    answered(&bursts().await, [50, 40, 9]);
    // Nothing refills within the second.
    answered(&bursts().await, [0, 0, 0]);
    // One second: 20, 10 and 9 tokens are added.
    rates(serde_json::json!({"advance_seconds": 1}));
    answered(&bursts().await, [20, 10, 9]);
    // Ten seconds refill no more than a full bucket.
    rates(serde_json::json!({"advance_seconds": 10}));
    answered(&bursts().await, [50, 40, 9]);
    let seen = emulator.control("GET", "rates", &serde_json::json!({}));
    assert_eq!(seen["rates"], "aws");
    assert_eq!(seen["throttled"]["us-east-1/ListClusters"], 4);
    assert_eq!(seen["throttled"]["us-east-1/DescribeAlarms"], 4);

    // On the real clock, an emptied bucket answers again a second later.
    rates(serde_json::json!({"clock": "real"}));
    assert_eq!(burst(1_000, ecs).await.answered, 50);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let refilled = burst(1_000, ecs).await.answered;
    assert!(
        (20..=60).contains(&refilled),
        "{refilled} answered a second later"
    );
    // Turned off through the control API, nothing is refused.
    rates(serde_json::json!({"rates": "off"}));
    assert_eq!(burst(120, ecs).await.answered, 120);
}

/// A set latency is added to every call (`--latency-ms`, or the control API);
/// rates and latency are off by default, so other tests keep their timing.
#[tokio::test]
async fn every_call_takes_the_set_latency_and_neither_is_on_by_default() {
    let shared = Emulator::shared();
    let rates = shared.control("GET", "rates", &serde_json::json!({}));
    assert_eq!(rates["rates"], "off");
    assert_eq!(rates["latency_ms"], 0.0);
    let aws = Aws::new(&shared.sdk_config_single_attempt("eu-north-1"));
    let answered = burst(120, || aws.ecs.list_clusters().send()).await;
    assert_eq!(answered.answered, 120, "no bucket when rates are off");

    let emulator = Emulator::start_with(&["--latency-ms", "30"]);
    let aws = Aws::new(&emulator.sdk_config_single_attempt("us-east-1"));
    aws.ecs.list_clusters().send().await.expect("warm");
    for latency in [30u64, 80] {
        if latency != 30 {
            emulator.control("POST", "rates", &serde_json::json!({"latency_ms": latency}));
        }
        let started = std::time::Instant::now();
        for _ in 0..3 {
            aws.ecs.list_clusters().send().await.expect("answered");
        }
        let each = started.elapsed() / 3;
        assert!(
            each >= std::time::Duration::from_millis(latency)
                && each < std::time::Duration::from_millis(latency + 60),
            "{latency} ms set, {each:?} a call"
        );
    }
}

#[tokio::test]
async fn task_scale_in_protection_is_served_as_ecs_serves_it() {
    let region = "ca-central-1";
    let aws = aws(region);
    let network = aws.network().await;
    aws.create_awsvpc_service("guarded", "web", &network).await;
    let tasks: Vec<String> = aws
        .run_service_tasks("guarded", "web", &network, 11)
        .await
        .into_iter()
        .map(|(arn, _)| arn)
        .collect();
    let protect = |tasks: Vec<String>, minutes: Option<i32>| {
        aws.ecs
            .update_task_protection()
            .cluster("guarded")
            .set_tasks(Some(tasks))
            .protection_enabled(true)
            .set_expires_in_minutes(minutes)
            .send()
    };
    // At most 10 tasks a call, and 1 to 2,880 minutes.
    let err = protect(tasks.clone(), None).await.expect_err("11 tasks");
    assert!(
        format!("{err:?}").contains("InvalidParameterException"),
        "{err:?}"
    );
    let err = protect(tasks[..1].to_vec(), Some(2881))
        .await
        .expect_err("too long");
    assert!(format!("{err:?}").contains("expiresInMinutes"), "{err:?}");

    // A service's task is protected (two hours unless said); an unknown one
    // is MISSING; a task that is not a service's is TASK_NOT_VALID.
    let loose = aws
        .ecs
        .run_task()
        .cluster("guarded")
        .task_definition("web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(e2e::network_configuration(&network))
        .send()
        .await
        .expect("run_task")
        .tasks()[0]
        .task_arn()
        .expect("arn")
        .to_string();
    let missing = "arn:aws:ecs:ca-central-1:123456789012:task/guarded/0000".to_string();
    let out = protect(vec![tasks[0].clone(), loose.clone(), missing.clone()], None)
        .await
        .expect("protect");
    assert_eq!(out.protected_tasks().len(), 1);
    let protected = &out.protected_tasks()[0];
    assert_eq!(protected.task_arn(), Some(tasks[0].as_str()));
    assert!(protected.protection_enabled());
    assert!(protected.expiration_date().is_some());
    let reasons: Vec<(&str, &str)> = out
        .failures()
        .iter()
        .map(|f| (f.arn().unwrap_or_default(), f.reason().unwrap_or_default()))
        .collect();
    assert_eq!(
        reasons,
        [
            (loose.as_str(), "TASK_NOT_VALID"),
            (missing.as_str(), "MISSING")
        ]
    );
    let read = aws
        .ecs
        .get_task_protection()
        .cluster("guarded")
        .tasks(&tasks[0])
        .tasks(&tasks[1])
        .send()
        .await
        .expect("get_task_protection");
    let enabled: Vec<bool> = read
        .protected_tasks()
        .iter()
        .map(|t| t.protection_enabled())
        .collect();
    assert_eq!(enabled, [true, false]);
}
