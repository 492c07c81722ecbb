//! Faults that look like AWS's worst, and the pending-fault list.
//!
//! The fault layer stays in front of plain moto (`--plain`), so these tests
//! pass there too: they prove the fault layer, not a strict layer.

use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// An ECS client with one attempt a call, giving up on an attempt after `timeout`.
fn impatient_ecs(region: &str, timeout: Duration) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&Emulator::shared().sdk_config_single_attempt(region))
            .timeout_config(
                aws_sdk_ecs::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .build(),
            )
            .build(),
    )
}

/// The region's faults of `operation`, as the emulator lists them.
fn faults_of(region: &str, operation: &str) -> Vec<serde_json::Value> {
    Emulator::shared()
        .faults()
        .into_iter()
        .filter(|f| f["region"] == region && f["operation"] == operation)
        .collect()
}

#[tokio::test]
async fn a_hanging_call_gets_no_answer_until_the_client_gives_up() {
    let region = "af-south-1";
    let emulator = Emulator::shared();
    let aws = aws(region);
    aws.create_service("hangs", "web", 1).await;
    emulator.add_fault(
        &json!({"region": region, "operation": "ListServices", "kind": "hang",
                               "times": 1, "delay_seconds": 20}),
    );
    let client = impatient_ecs(region, Duration::from_millis(500));
    let started = Instant::now();
    let err = client
        .list_services()
        .cluster("hangs")
        .send()
        .await
        .expect_err("no answer");
    assert!(
        matches!(err, aws_sdk_ecs::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let fault = &faults_of(region, "ListServices")[0];
    assert_eq!(
        (fault["kind"].as_str(), fault["consumed"].as_bool()),
        (Some("hang"), Some(true))
    );
    // The fault is spent: the next call is answered.
    let listed = client
        .list_services()
        .cluster("hangs")
        .send()
        .await
        .expect("answered");
    assert_eq!(listed.service_arns().len(), 1);
}

#[tokio::test]
async fn a_500_after_apply_makes_the_change_and_reports_a_failure() {
    let region = "ap-east-1";
    let emulator = Emulator::shared();
    let aws = aws(region);
    aws.create_service("applied", "web", 1).await;
    emulator.add_fault(&json!({"region": region, "operation": "UpdateService",
                               "kind": "server_error_after_apply", "times": 1}));
    let once = aws_sdk_ecs::Client::new(&emulator.sdk_config_single_attempt(region));
    let err = once
        .update_service()
        .cluster("applied")
        .service("web")
        .desired_count(3)
        .send()
        .await
        .expect_err("a 500");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
    assert_eq!(code(&err), "ServerException");
    // The answer said it failed; the change was made all the same.
    assert_eq!(aws.desired_count("applied", "web").await, 3);
    assert_eq!(faults_of(region, "UpdateService")[0]["consumed"], true);
}

#[tokio::test]
async fn a_connection_reset_mid_answer_is_an_io_error_for_the_caller() {
    let region = "me-south-1";
    let emulator = Emulator::shared();
    let aws = aws(region);
    aws.create_service("reset", "web", 1).await;
    emulator.add_fault(&json!({"region": region, "operation": "DescribeClusters",
                               "kind": "connection_reset", "times": 1}));
    let once = aws_sdk_ecs::Client::new(&emulator.sdk_config_single_attempt(region));
    let err = once
        .describe_clusters()
        .clusters("reset")
        .send()
        .await
        .expect_err("reset");
    // The answer began (a 200 and its headers), then the connection was
    // reset under the body: an IO error while reading it, not a service error.
    assert!(
        matches!(err, aws_sdk_ecs::error::SdkError::ResponseError(_)),
        "{err:?}"
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    let text = format!("{err:?}");
    assert!(text.contains("ConnectionReset"), "{text}");
    assert_eq!(faults_of(region, "DescribeClusters")[0]["consumed"], true);
    let clusters = once
        .describe_clusters()
        .clusters("reset")
        .send()
        .await
        .expect("answered");
    assert_eq!(clusters.clusters().len(), 1);
}

#[tokio::test]
async fn the_pending_list_shows_a_fault_until_its_calls_use_it_up() {
    let region = "ap-south-2";
    let emulator = Emulator::shared();
    let aws = aws(region);
    aws.create_service("pending", "web", 1).await;
    assert!(emulator.pending_faults(region).is_empty());
    emulator.add_fault(&json!({"region": region, "operation": "ListClusters",
                               "kind": "throttle", "times": 2}));
    let pending = emulator.pending_faults(region);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (
            pending[0]["operation"].as_str(),
            pending[0]["kind"].as_str(),
            pending[0]["times_left"].as_u64(),
            pending[0]["fired"].as_u64()
        ),
        (Some("ListClusters"), Some("throttle"), Some(2), Some(0))
    );

    let once = aws_sdk_ecs::Client::new(&emulator.sdk_config_single_attempt(region));
    let err = once.list_clusters().send().await.expect_err("throttled");
    assert_eq!(code(&err), "ThrottlingException");
    assert_eq!(emulator.pending_faults(region)[0]["times_left"], 1);
    once.list_clusters().send().await.expect_err("throttled");
    assert!(emulator.pending_faults(region).is_empty());
    let fault = &faults_of(region, "ListClusters")[0];
    assert_eq!(
        (fault["fired"].as_u64(), fault["consumed"].as_bool()),
        (Some(2), Some(true))
    );
    once.list_clusters().send().await.expect("answered");
}
