//! What ELB and CloudWatch report when things go wrong, end to end through the
//! functions: targets a load balancer does not use, targets whose health
//! checks fail (served by a loopback server the test controls), and an alarm
//! whose data stops.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::ComparisonOperator;
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
use chrono::TimeDelta;
use e2e::emulator_faults::HealthServer;
use e2e::{sample_event, Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{ProbeConfig, ScalerConfig};
use probe::handler::Prober;
use probe::http::HttpAdapter;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Polls the group until its one target is in `state` (at most 20 s).
async fn wait_for_target_state(aws: &Aws, group: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states: Vec<String> = aws.targets(group).await.into_iter().map(|t| t.2).collect();
        if states == [state] {
            return;
        }
        assert!(Instant::now() < deadline, "never {state}: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_probe_counts_unused_and_unhealthy_targets_as_elb_reports_them() {
    let region = "us-west-1";
    let emulator = Emulator::shared();
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    let network = aws.network().await;
    emulator.set_health_check_seconds(0.1);

    // A group behind a listener, its one target a loopback server answering 500.
    let served = aws.ip_target_group("served", &network.vpc_id).await;
    let server = HealthServer::start(Ipv4Addr::new(127, 0, 0, 2), 500);
    aws.register_target(&served, &server.ip(), server.port())
        .await;
    // A group no load balancer uses.
    let idle = aws
        .elbv2
        .create_target_group()
        .name("idle")
        .protocol(ProtocolEnum::Http)
        .port(i32::from(TASK_PORT))
        .vpc_id(&network.vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .expect("create_target_group")
        .target_groups()[0]
        .target_group_arn()
        .expect("arn")
        .to_string();
    aws.register_target(&idle, "10.0.0.21", TASK_PORT).await;
    wait_for_target_state(&aws, &served, "unhealthy").await;
    assert!(server.requests() > 0, "ELB's checks reached the server");

    let document = json!({
        "namespace": "EcsControl/TargetStates",
        "checks": [],
        "target_groups": [
            {"name": "served", "target_group_arn": served},
            {"name": "idle", "target_group_arn": idle}
        ]
    });
    let prober = Prober::new(
        ProbeConfig::parse(&document.to_string()).expect("config"),
        HttpAdapter::new(),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&config)),
    );
    let tick = sample_event("probe/scheduled-tick.json");
    let report = prober
        .handle(tick.clone(), chrono::Utc::now(), None)
        .await
        .expect("probe");
    let counts = |name: &str| {
        let group = report
            .target_groups
            .iter()
            .find(|g| g.name == name)
            .expect("reported");
        group.counts.clone().expect("counted").by_state
    };
    assert_eq!(counts("served").get("unhealthy"), Some(&1), "{report:?}");
    assert_eq!(counts("served").get("healthy"), Some(&0), "{report:?}");
    assert_eq!(counts("idle").get("unused"), Some(&1), "{report:?}");

    // The server recovers: the target passes its checks and is counted healthy.
    server.answer(200);
    wait_for_target_state(&aws, &served, "healthy").await;
    let report = prober
        .handle(tick, chrono::Utc::now() + TimeDelta::minutes(1), None)
        .await
        .expect("probe");
    let served_counts = &report.target_groups[0]
        .counts
        .as_ref()
        .expect("counted")
        .by_state;
    assert_eq!(served_counts.get("healthy"), Some(&1), "{report:?}");
    assert_eq!(served_counts.get("unhealthy"), Some(&0), "{report:?}");
}

#[tokio::test]
async fn an_alarm_whose_data_stops_goes_to_insufficient_data_and_the_scaler_leaves_it() {
    let region = "us-east-2";
    let emulator = Emulator::shared();
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    aws.create_service("quiet", "web", 2).await;
    aws.wait_for_deployment("quiet", "web").await;
    aws.service_alarm(
        "quiet-cpu-high",
        ("quiet", "web"),
        "CPUUtilization",
        ComparisonOperator::GreaterThanThreshold,
        70.0,
    )
    .await;
    let scaler = Scaler::new(
        ScalerConfig::parse(
            &json!({"policies": [{
                "alarm": "quiet-cpu-high", "cluster": "quiet", "service": "web",
                "adjustment_type": "ChangeInCapacity",
                "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
                "min_capacity": 1, "max_capacity": 10
            }]})
            .to_string(),
        )
        .expect("policy"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    let emitted = |state: &str| -> Vec<Value> {
        emulator
            .events("aws.cloudwatch", region)
            .into_iter()
            .filter(|e| e["detail"]["alarmName"] == "quiet-cpu-high")
            .filter(|e| e["detail"]["state"]["value"] == state)
            .collect()
    };

    // One busy minute: at the next evaluation the alarm fires, and its event
    // scales the service once.
    let start = aws.clock_now();
    aws.put_service_metric(("quiet", "web"), "CPUUtilization", 90.0, start)
        .await;
    aws.advance_clock(60);
    assert_eq!(aws.alarm_state("quiet-cpu-high").await.0, "ALARM");
    let fired = emitted("ALARM");
    assert_eq!(fired.len(), 1, "{fired:?}");
    scaler
        .handle(fired[0].clone(), "fired", aws.clock_now())
        .await
        .expect("scaled");
    assert_eq!(aws.desired_count("quiet", "web").await, 3);

    // Then the data stops. With missing data treated as missing, CloudWatch
    // takes the alarm out of ALARM once its evaluation range holds no point.
    aws.advance_clock(5 * 60);
    assert_eq!(
        aws.alarm_state("quiet-cpu-high").await.0,
        "INSUFFICIENT_DATA"
    );
    let left = emitted("INSUFFICIENT_DATA");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["detail"]["previousState"]["value"], "ALARM");
    let updates_before = emulator.calls(region).get("UpdateService").copied();
    // Neither the change nor the next tick acts on an alarm with no data.
    scaler
        .handle(left[0].clone(), "left", aws.clock_now())
        .await
        .expect("handled");
    let mut tick = sample_event("scaler/recheck-schedule.json");
    tick["id"] = "quiet-tick".into();
    scaler
        .handle(tick, "tick", aws.clock_now())
        .await
        .expect("tick");
    assert_eq!(aws.desired_count("quiet", "web").await, 3);
    assert_eq!(
        emulator.calls(region).get("UpdateService").copied(),
        updates_before
    );
}
