//! The cold-start checks through the real adapters against the emulator: what
//! the configuration names must exist in AWS as it says, or the error names the field.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::ComparisonOperator;
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
use e2e::{Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{RegistrarConfig, ScalerConfig};

const POLICIES: &str = include_str!("../../infra/scaler-policies.json");

#[tokio::test]
async fn the_scaler_refuses_an_alarm_or_service_aws_does_not_have() {
    let config = Emulator::shared().sdk_config("eu-south-1");
    let aws = Aws::new(&config);
    let ecs = EcsAdapter::new(aws_sdk_ecs::Client::new(&config));
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config));
    let policies = ScalerConfig::parse(POLICIES).expect("policies");

    // Nothing exists yet: the first alarm is missing.
    let err = scaler::cold_start::verify(&policies, &alarms, &ecs)
        .await
        .expect_err("no alarms");
    assert_eq!(err.field, "policies[0].alarm", "{err}");

    aws.demo_alarms().await;
    let err = scaler::cold_start::verify(&policies, &alarms, &ecs)
        .await
        .expect_err("no service");
    assert_eq!(err.field, "policies[0].service", "{err}");
    assert!(err.problem.contains("demo/web"), "{err}");

    aws.create_service("demo", "web", 2).await;
    scaler::cold_start::verify(&policies, &alarms, &ecs)
        .await
        .expect("everything named exists");
}

#[tokio::test]
async fn the_scaler_checks_ten_services_a_call_and_names_the_first_missing_one() {
    let region = "ap-south-2";
    let emulator = Emulator::shared();
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    let ecs = EcsAdapter::new(aws_sdk_ecs::Client::new(&config));
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config));
    let names: Vec<String> = (0..12).map(|i| format!("svc-{i:02}")).collect();
    let policies: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            serde_json::json!({
                "alarm": format!("{name}-cpu-high"), "cluster": "many", "service": name,
                "adjustment_type": "ChangeInCapacity",
                "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
                "min_capacity": 1, "max_capacity": 4
            })
        })
        .collect();
    let document = serde_json::json!({ "policies": policies }).to_string();
    let policies = ScalerConfig::parse(&document).expect("policies");
    for name in &names {
        let alarm = format!("{name}-cpu-high");
        aws.service_alarm(
            &alarm,
            ("many", name),
            "CPUUtilization",
            ComparisonOperator::GreaterThanThreshold,
            70.0,
        )
        .await;
    }
    // Every service but svc-07 and svc-11.
    for name in names
        .iter()
        .filter(|n| !["svc-07", "svc-11"].contains(&n.as_str()))
    {
        aws.create_service("many", name, 1).await;
    }

    emulator.control("DELETE", "calls", &serde_json::json!({}));
    let err = scaler::cold_start::verify(&policies, &alarms, &ecs)
        .await
        .expect_err("two services missing");
    assert_eq!(err.field, "policies[7].service", "{err}");
    assert!(err.problem.contains("many/svc-07"), "{err}");
    assert!(err.problem.contains("MISSING"), "{err}");
    assert_eq!(
        emulator.calls(region).get("DescribeServices"),
        Some(&2),
        "12 services in calls of at most 10"
    );
}

#[tokio::test]
async fn the_registrar_refuses_a_group_that_is_not_what_its_document_says() {
    let config = Emulator::shared().sdk_config("eu-central-2");
    let aws = Aws::new(&config);
    let groups = Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config));
    let network = aws.network().await;
    let ip_group = aws.ip_target_group("web", &network.vpc_id).await;
    let instance_group = aws
        .elbv2
        .create_target_group()
        .name("web-instances")
        .protocol(ProtocolEnum::Http)
        .port(i32::from(TASK_PORT))
        .vpc_id(&network.vpc_id)
        .target_type(TargetTypeEnum::Instance)
        .send()
        .await
        .expect("create_target_group")
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let document = |arn: &str, port: u16| {
        RegistrarConfig::parse(
            &serde_json::json!({"services": [{"cluster": "demo", "service": "web",
                "target_groups": [{"target_group_arn": arn, "port": port}]}]})
            .to_string(),
        )
        .expect("document")
    };

    registrar::cold_start::verify(&document(&ip_group, TASK_PORT), &groups)
        .await
        .expect("an ip group on the task port");

    let field = "services[0].target_groups[0]";
    for (arn, port, expected, says) in [
        (
            instance_group.as_str(),
            TASK_PORT,
            "target_group_arn",
            "\"instance\"",
        ),
        (ip_group.as_str(), 9000, "port", "group's port 8080"),
        (
            &ip_group.replace("/web/", "/gone/"),
            TASK_PORT,
            "target_group_arn",
            "does not exist",
        ),
    ] {
        let err = registrar::cold_start::verify(&document(arn, port), &groups)
            .await
            .expect_err(expected);
        assert_eq!(err.field, format!("{field}.{expected}"), "{err}");
        assert!(err.problem.contains(says), "{err}");
    }
}
