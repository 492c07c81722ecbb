//! Target health from the target: unused, unhealthy, unavailable; targets ELB refuses.

use super::*;
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};
use e2e::emulator_faults::HealthServer;
use std::time::{Duration, Instant};

/// `(state, reason)` of one target, as DescribeTargetHealth reports it.
async fn health_of(aws: &Aws, group: &str, id: &str, port: Option<u16>) -> (String, String) {
    let out = aws
        .elbv2
        .describe_target_health()
        .target_group_arn(group)
        .send()
        .await
        .expect("describe_target_health");
    let found = out
        .target_health_descriptions()
        .iter()
        .find(|d| {
            d.target().and_then(|t| t.id()) == Some(id)
                && port.is_none_or(|p| d.target().and_then(|t| t.port()) == Some(i32::from(p)))
        })
        .unwrap_or_else(|| panic!("{id} not in the group: {out:?}"));
    let health = found.target_health().expect("health");
    (
        health
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        health
            .reason()
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
    )
}

/// Polls until the target reaches `state` (at most 20 s); returns its reason.
async fn wait_for_state(aws: &Aws, group: &str, id: &str, port: u16, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (now, reason) = health_of(aws, group, id, Some(port)).await;
        if now == state {
            return reason;
        }
        assert!(
            Instant::now() < deadline,
            "{id}:{port} stayed {now} ({reason}), never {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bare_group(aws: &Aws, name: &str, vpc_id: &str) -> String {
    let out = aws
        .elbv2
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .expect("create_target_group");
    out.target_groups()[0]
        .target_group_arn()
        .expect("arn")
        .to_string()
}

#[tokio::test]
async fn targets_of_a_group_no_load_balancer_uses_are_unused() {
    let aws = aws("af-south-1");
    let network = aws.network().await;
    let group = bare_group(&aws, "lonely", &network.vpc_id).await;
    aws.register_target(&group, "10.0.0.5", 8080).await;
    assert_eq!(
        health_of(&aws, &group, "10.0.0.5", Some(8080)).await,
        ("unused".to_string(), "Target.NotInUse".to_string())
    );

    // Once a listener forwards to it, the target is health-checked as usual.
    aws.attach_to_load_balancer(&group, "lonely", &network.vpc_id)
        .await;
    let (state, _) = health_of(&aws, &group, "10.0.0.5", Some(8080)).await;
    assert!(state == "initial" || state == "healthy", "{state}");
    wait_for_state(&aws, &group, "10.0.0.5", 8080, "healthy").await;
}

#[tokio::test]
async fn a_target_answering_500_is_unhealthy_and_healthy_again_once_it_answers_200() {
    let emulator = Emulator::shared();
    let aws = aws("ap-east-1");
    emulator.set_health_check_seconds(0.1);
    let network = aws.network().await;
    let group = aws.ip_target_group("served", &network.vpc_id).await;
    aws.elbv2
        .modify_target_group()
        .target_group_arn(&group)
        .health_check_path("/health")
        .health_check_interval_seconds(5)
        .healthy_threshold_count(3)
        .unhealthy_threshold_count(2)
        .send()
        .await
        .expect("modify_target_group");
    let server = HealthServer::start(std::net::Ipv4Addr::new(127, 0, 0, 2), 500);
    // A loopback address is outside the VPC: ELB wants a zone for it.
    aws.register_target(&group, &server.ip(), server.port())
        .await;

    let reason = wait_for_state(&aws, &group, &server.ip(), server.port(), "unhealthy").await;
    assert_eq!(reason, "Target.ResponseCodeMismatch");
    assert!(server.requests() >= 2, "{} checks", server.requests());
    assert!(
        server.paths().iter().all(|p| p == "/health"),
        "{:?}",
        server.paths()
    );

    let checks_before = server.requests();
    server.answer(200);
    wait_for_state(&aws, &group, &server.ip(), server.port(), "healthy").await;
    assert!(
        server.requests() >= checks_before + 3,
        "healthy after {} passing checks, the threshold is 3",
        server.requests() - checks_before
    );

    // A target nothing serves fails its checks on the connection.
    drop(server);
    let gone = HealthServer::start(std::net::Ipv4Addr::new(127, 0, 0, 3), 200);
    let port = gone.port();
    drop(gone);
    aws.register_target(&group, "127.0.0.3", port).await;
    let reason = wait_for_state(&aws, &group, "127.0.0.3", port, "unhealthy").await;
    assert_eq!(reason, "Target.FailedHealthChecks");
}

#[tokio::test]
async fn a_lambda_group_checks_nothing_by_default_and_reports_unavailable() {
    let aws = aws("me-south-1");
    let network = aws.network().await;
    let out = aws
        .elbv2
        .create_target_group()
        .name("functions")
        .target_type(TargetTypeEnum::Lambda)
        .send()
        .await
        .expect("create_target_group");
    let group = out.target_groups()[0]
        .target_group_arn()
        .expect("arn")
        .to_string();
    aws.attach_to_load_balancer(&group, "functions", &network.vpc_id)
        .await;
    let function = "arn:aws:lambda:me-south-1:123456789012:function:web";
    aws.elbv2
        .register_targets()
        .target_group_arn(&group)
        .targets(TargetDescription::builder().id(function).build())
        .send()
        .await
        .expect("register_targets");
    assert_eq!(
        health_of(&aws, &group, function, None).await,
        (
            "unavailable".to_string(),
            "Target.HealthCheckDisabled".to_string()
        )
    );
}

#[tokio::test]
async fn register_targets_refuses_addresses_outside_the_vpc_and_ports_out_of_range() {
    let aws = aws("ap-south-2");
    let network = aws.network().await;
    let group = aws.ip_target_group("strict", &network.vpc_id).await;
    let register = |targets: Vec<TargetDescription>| {
        aws.elbv2
            .register_targets()
            .target_group_arn(&group)
            .set_targets(Some(targets))
            .send()
    };
    let target = |ip: &str, port: i32, zone: Option<&str>| {
        TargetDescription::builder()
            .id(ip)
            .port(port)
            .set_availability_zone(zone.map(str::to_string))
            .build()
    };
    let refused = |err: aws_sdk_ecs::error::SdkError<
        aws_sdk_elasticloadbalancingv2::operation::register_targets::RegisterTargetsError,
    >| {
        let message = err
            .as_service_error()
            .and_then(ProvideErrorMetadata::message)
            .unwrap_or_default()
            .to_string();
        (code(&err), message)
    };

    // In a subnet of the VPC (10.0.0.0/20): fine, with or without a zone.
    register(vec![target("10.0.0.9", 8080, None)])
        .await
        .expect("in the VPC");
    // Outside the VPC: a zone is required, and the address must be private.
    let (code_, message) = refused(
        register(vec![target("192.168.7.7", 8080, None)])
            .await
            .expect_err("outside the VPC, no zone"),
    );
    assert_eq!(code_, "ValidationError");
    assert!(
        message.contains("Availability Zone is required"),
        "{message}"
    );
    register(vec![target("192.168.7.7", 8080, Some("all"))])
        .await
        .expect("outside the VPC, zone all");
    let (code_, _) = refused(
        register(vec![target("8.8.8.8", 8080, Some("all"))])
            .await
            .expect_err("publicly routable"),
    );
    assert_eq!(code_, "ValidationError");

    // Ports are 1-65535; a refused call registers none of its targets.
    for port in [0, 65_536] {
        let (code_, message) = refused(
            register(vec![
                target("10.0.0.10", 8080, None),
                target("10.0.0.11", port, None),
            ])
            .await
            .expect_err("port out of range"),
        );
        assert_eq!(code_, "ValidationError", "{port}");
        assert!(message.contains("targets.2.member.port"), "{message}");
    }
    let mut targets = aws.active_targets(&group).await;
    targets.sort();
    assert_eq!(
        targets,
        [
            ("10.0.0.9".to_string(), 8080),
            ("192.168.7.7".to_string(), 8080)
        ]
    );
}
