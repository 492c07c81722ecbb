//! The scaler through its real AWS adapters against the local emulator.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use e2e::emulator_clock::minute_of;
use e2e::{sample_event, Aws, Emulator};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::{tag_keys, EcsAdapter};
use ecs_control::config::ScalerConfig;
use ecs_control::domain::scaling::Hold;
use ecs_control::invocation::InvocationError;
use lambda_runtime::Diagnostic;
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::Value;

const POLICIES: &str = include_str!("../../infra/scaler-policies.json");
const CLUSTER: &str = "demo";
const SERVICE: &str = "web";

type RealScaler = Scaler<EcsAdapter, CloudWatchAlarms>;

struct World {
    aws: Aws,
    scaler: RealScaler,
}

/// A fresh region of the shared emulator with the demo service at `desired`.
async fn world(region: &str, desired: i32) -> World {
    world_with(region, desired, false).await
}

async fn world_with(region: &str, desired: i32, shadow: bool) -> World {
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    aws.create_service(CLUSTER, SERVICE, desired).await;
    aws.demo_alarms().await;
    let scaler = Scaler::new(
        ScalerConfig::parse(POLICIES).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        shadow,
    );
    World { aws, scaler }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 3, 0)
        .single()
        .unwrap_or_default()
}

fn tick(id: &str) -> Value {
    let mut event = sample_event("scaler/recheck-schedule.json");
    event["id"] = id.into();
    event
}

impl World {
    async fn desired(&self) -> i32 {
        self.aws.desired_count(CLUSTER, SERVICE).await
    }

    async fn handle(
        &self,
        event: Value,
        at: DateTime<Utc>,
    ) -> Result<DecisionRecord, InvocationError> {
        self.scaler.handle(event, "e2e-request", at).await
    }
}

/// A minute's CPU datapoint, half a minute before `at`: inside the window the
/// scaler reads at `at`, and what the emulator evaluates the alarms on at the
/// minute boundary after it (the region's clock is put there: CloudWatch
/// evaluates on the minute).
async fn cpu(w: &World, value: f64, at: DateTime<Utc>) {
    put_cpu_and_evaluate(&w.aws, value, at).await;
}

async fn put_cpu_and_evaluate(aws: &Aws, value: f64, at: DateTime<Utc>) {
    let sample = at - TimeDelta::seconds(30);
    aws.set_clock(at);
    aws.put_cpu(value, sample).await;
    aws.evaluate_alarms_at(minute_of(sample) + TimeDelta::minutes(1));
}

#[tokio::test]
async fn an_alarm_scales_out_by_the_step_its_breach_selects() {
    let w = world("us-east-1", 2).await;
    // 75 against 70: the [0, 15) step, +1.
    cpu(&w, 75.0, t0()).await;
    let record = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    assert_eq!(record.services[0].action, Action::Scaled);
    assert_eq!(w.desired().await, 3);
    let json = serde_json::to_value(&record).expect("json");
    assert_eq!(
        json["services"][0]["evaluations"][0]["breach"]["source"]["from"],
        "metric"
    );

    // A bigger breach on a later state change selects the +3 step.
    let w = world("us-east-2", 2).await;
    cpu(&w, 93.5, t0()).await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    assert_eq!(w.desired().await, 5);
}

async fn tags(w: &World, arn: &str) -> std::collections::BTreeMap<String, String> {
    w.aws.service_tags(arn).await
}

#[tokio::test]
async fn the_scaling_memory_is_kept_in_service_tags() {
    let w = world("us-west-1", 2).await;
    cpu(&w, 75.0, t0()).await;
    let record = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    let arn = record.services[0].seen.as_ref().expect("seen").arn.clone();
    let tag = tags(&w, &arn).await;
    assert_eq!(tag[tag_keys::LAST_DIRECTION], "out");
    assert_eq!(tag[tag_keys::SCALE_OUT_BASE], "2");
    assert_eq!(tag[tag_keys::LAST_TARGET], "3");
    // Recorded before UpdateService, with the count it replaced; no write after.
    assert_eq!(tag[tag_keys::APPLIED], "false");
    assert_eq!(tag[tag_keys::REPLACED], "2");
    assert_eq!(tag[tag_keys::LAST_TRIGGER], record.trigger_key);
    assert!(!tag[tag_keys::ALARM_MARKS].is_empty());
}

#[tokio::test]
async fn the_result_is_clamped_at_max_capacity() {
    let w = world("us-west-2", 9).await;
    cpu(&w, 93.5, t0()).await;
    let record = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    assert_eq!(w.desired().await, 10);
    let json = serde_json::to_value(&record).expect("json");
    assert_eq!(
        json["services"][0]["evaluations"][0]["clamped_by"],
        "max_capacity"
    );
}

#[tokio::test]
async fn the_scale_out_cooldown_is_honoured_and_a_sustained_breach_is_read_from_the_metric() {
    let w = world("eu-west-1", 2).await;
    cpu(&w, 75.0, t0()).await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("first");
    assert_eq!(w.desired().await, 3);

    // Within the 60 s cooldown, the same +1 step is already covered.
    let held = w
        .handle(tick("cooldown-1"), t0() + TimeDelta::seconds(20))
        .await
        .expect("tick");
    assert_eq!(held.services[0].action, Action::Held);
    assert_eq!(
        held.services[0].evaluations[0].held_by,
        Some(Hold::ScaleOutCooldown)
    );
    assert_eq!(w.desired().await, 3);

    // Load grows; the alarm stays in ALARM, so its reason data still shows 75.
    let (_, reason_before) = w.aws.alarm_state("web-cpu-high").await;
    cpu(&w, 93.5, t0() + TimeDelta::seconds(40)).await;
    assert_eq!(w.aws.alarm_state("web-cpu-high").await.1, reason_before);
    // The scaler reads the metric: a bigger breach inside the cooldown adds
    // only the difference: 2 + 3 = 5.
    w.handle(tick("cooldown-2"), t0() + TimeDelta::seconds(40))
        .await
        .expect("tick");
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn the_recheck_keeps_scaling_a_sustained_alarm() {
    let w = world("eu-west-2", 2).await;
    for (i, expected) in [3, 4, 5].into_iter().enumerate() {
        let at = t0() + TimeDelta::seconds(61 * i as i64);
        cpu(&w, 75.0, at).await;
        w.handle(tick(&format!("sustained-{i}")), at)
            .await
            .expect("tick");
        assert_eq!(w.desired().await, expected, "tick {i}");
    }
    // Once the alarm clears, ticks do nothing.
    let later = t0() + TimeDelta::seconds(400);
    cpu(&w, 40.0, later).await;
    let record = w.handle(tick("sustained-ok"), later).await.expect("tick");
    assert!(record.services.is_empty());
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn a_duplicate_event_is_a_no_op() {
    let w = world("eu-central-1", 2).await;
    cpu(&w, 75.0, t0()).await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("first");
    // The same state change again, long after the cooldown, by EventBridge and by SNS.
    for name in ["scaler/alarm-state-change.json", "scaler/alarm-sns.json"] {
        let record = w
            .handle(sample_event(name), t0() + TimeDelta::hours(2))
            .await
            .expect("duplicate");
        assert_eq!(record.services[0].action, Action::Duplicate, "{name}");
    }
    assert_eq!(w.desired().await, 3);
}

#[tokio::test]
async fn scale_in_happens_after_a_deployment_completes_and_waits_during_the_next() {
    let w = world("ap-southeast-1", 6).await;
    w.aws.wait_for_deployment(CLUSTER, SERVICE).await;
    // 12% against the low alarm's 20: ALARM; the high alarm is OK.
    cpu(&w, 12.0, t0()).await;
    assert_eq!(w.aws.alarm_state("web-cpu-low").await.0, "ALARM");
    let record = w.handle(tick("settled"), t0()).await.expect("tick");
    let decision = &record.services[0];
    assert!(!decision.seen.as_ref().expect("seen").deployment_in_progress);
    // -25% of 6 is -1.5: rounded toward zero, -1.
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(w.desired().await, 5);

    // A new task definition starts a deployment: scale-in waits for it.
    let after_cooldown = t0() + TimeDelta::seconds(301);
    cpu(&w, 12.0, after_cooldown).await;
    w.aws.deploy_new_revision(CLUSTER, SERVICE).await;
    let record = w
        .handle(tick("deploying"), after_cooldown)
        .await
        .expect("tick");
    let decision = &record.services[0];
    assert!(decision.seen.as_ref().expect("seen").deployment_in_progress);
    assert_eq!(
        decision.evaluations[0].held_by,
        Some(Hold::DeploymentInProgress)
    );
    assert_eq!(w.desired().await, 5);

    w.aws.wait_for_deployment(CLUSTER, SERVICE).await;
    let record = w
        .handle(tick("deployed"), after_cooldown)
        .await
        .expect("tick");
    assert_eq!(record.services[0].action, Action::Scaled);
    assert_eq!(w.desired().await, 4);
}

#[tokio::test]
async fn a_throttled_update_is_completed_by_the_retry_not_called_a_duplicate() {
    let region = "ap-south-1";
    let w = world(region, 2).await;
    cpu(&w, 75.0, t0()).await;
    // Every attempt the SDK makes is throttled: the invocation fails retryably.
    Emulator::shared().fail(region, "UpdateService", "throttle", 3);
    let err = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect_err("throttled");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.desired().await, 2);
    // Lambda's retry of the same event completes what was recorded.
    let retry = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("retry");
    assert_eq!(
        retry.services[0].action,
        Action::Scaled,
        "{}",
        retry.services[0].reason
    );
    assert_eq!(w.desired().await, 3);
    // The tags agree with the count: the recorded target is in effect.
    let arn = retry.services[0].seen.as_ref().expect("seen").arn.clone();
    assert_eq!(tags(&w, &arn).await[tag_keys::LAST_TARGET], "3");

    // A manual command whose update fails is not lost either.
    Emulator::shared().fail(region, "UpdateService", "throttle", 3);
    w.handle(sample_event("scaler/manual-set-desired-count.json"), t0())
        .await
        .expect_err("throttled");
    w.handle(sample_event("scaler/manual-set-desired-count.json"), t0())
        .await
        .expect("retry");
    assert_eq!(w.desired().await, 6);
}

#[tokio::test]
async fn a_late_copy_after_another_trigger_scaled_does_not_act_again() {
    let w = world("ap-northeast-2", 2).await;
    cpu(&w, 75.0, t0()).await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("first");
    assert_eq!(w.desired().await, 3);
    w.handle(sample_event("scaler/manual-set-desired-count.json"), t0())
        .await
        .expect("manual");
    assert_eq!(w.desired().await, 6);
    let late = w
        .handle(
            sample_event("scaler/alarm-action.json"),
            t0() + TimeDelta::hours(5),
        )
        .await
        .expect("late");
    assert_eq!(late.services[0].action, Action::Duplicate);
    assert_eq!(w.desired().await, 6);
}

#[tokio::test]
async fn another_writer_and_a_count_out_of_bounds_are_recorded_and_corrected() {
    let w = world("ap-northeast-3", 2).await;
    cpu(&w, 75.0, t0()).await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("first");
    // A deploy pipeline sets 14, above max_capacity 10, and deploys.
    w.aws.set_desired_count(CLUSTER, SERVICE, 14).await;
    w.aws.deploy_new_revision(CLUSTER, SERVICE).await;
    let during = w
        .handle(tick("during-deploy"), t0() + TimeDelta::seconds(60))
        .await
        .expect("tick");
    assert_eq!(during.services[0].out_of_bounds, Some(14));
    assert!(
        during.services[0].reason.contains("deployment"),
        "{}",
        during.services[0].reason
    );
    assert_eq!(w.desired().await, 14, "a scale-in waits for the deployment");
    w.aws.wait_for_deployment(CLUSTER, SERVICE).await;
    let record = w
        .handle(tick("other-writer"), t0() + TimeDelta::seconds(90))
        .await
        .expect("tick");
    let decision = &record.services[0];
    assert!(
        decision.notes.iter().any(|n| n.contains("another writer")),
        "{:?}",
        decision.notes
    );
    assert_eq!(decision.out_of_bounds, Some(14));
    assert_eq!(w.desired().await, 10);
}

#[tokio::test]
async fn alarm_names_and_request_ids_ecs_cannot_tag_are_kept_as_valid_tags() {
    let region = "eu-north-1";
    let name = "web cpu (high), p99 #1 & more!";
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    aws.create_service(CLUSTER, SERVICE, 2).await;
    aws.demo_alarms().await;
    aws.service_alarm(
        name,
        (CLUSTER, SERVICE),
        "CPUUtilization",
        aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
        70.0,
    )
    .await;
    let policies = POLICIES.replacen("\"web-cpu-high\"", &format!("{name:?}"), 1);
    let w = World {
        scaler: Scaler::new(
            ScalerConfig::parse(&policies).expect("policies"),
            EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
            CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
            false,
        ),
        aws,
    };
    cpu(&w, 75.0, t0()).await;
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["detail"]["alarmName"] = name.into();
    let record = w.handle(event, t0()).await.expect("ECS takes every tag");
    assert_eq!(record.services[0].action, Action::Scaled);
    let mut command = sample_event("scaler/manual-set-desired-count.json");
    command["request_id"] = "change #7, (approved)".into();
    w.handle(command, t0()).await.expect("ECS takes every tag");
    assert_eq!(w.desired().await, 6);
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let w = world("ap-southeast-2", 4).await;
    let record = w
        .handle(sample_event("scaler/manual-apply-step-dry-run.json"), t0())
        .await
        .expect("dry run");
    assert_eq!(record.services[0].action, Action::WouldScale);
    assert_eq!(record.services[0].after, Some(6));
    assert_eq!(w.desired().await, 4);

    // An alarm event marked dry_run, and shadow mode, decide without acting.
    cpu(&w, 93.5, t0()).await;
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["dry_run"] = true.into();
    let record = w.handle(event, t0()).await.expect("dry run");
    assert_eq!(record.services[0].action, Action::WouldScale);
    assert_eq!(w.desired().await, 4);

    let shadow = world_with("ap-northeast-1", 4, true).await;
    cpu(&shadow, 93.5, t0()).await;
    let record = shadow
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("shadow");
    assert!(record.dry_run);
    assert_eq!(shadow.desired().await, 4);
}

#[tokio::test]
async fn manual_commands_set_and_step_within_bounds() {
    let w = world("ca-central-1", 4).await;
    w.handle(sample_event("scaler/manual-set-desired-count.json"), t0())
        .await
        .expect("set");
    assert_eq!(w.desired().await, 6);
    let again = w
        .handle(sample_event("scaler/manual-set-desired-count.json"), t0())
        .await
        .expect("again");
    assert_eq!(again.services[0].action, Action::Duplicate);
}

#[tokio::test]
async fn a_missing_service_is_a_clear_non_retryable_error() {
    let config = Emulator::shared().sdk_config("sa-east-1");
    let aws = Aws::new(&config);
    aws.demo_alarms().await;
    put_cpu_and_evaluate(&aws, 93.5, t0()).await;
    let scaler: RealScaler = Scaler::new(
        ScalerConfig::parse(POLICIES).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    let err = scaler
        .handle(sample_event("scaler/alarm-state-change.json"), "r", t0())
        .await
        .expect_err("no such cluster");
    assert!(!err.is_retryable(), "{err}");
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "NonRetryable.ResourceNotFound");
    assert!(
        diagnostic.error_message.contains("ecs:DescribeServices"),
        "{}",
        diagnostic.error_message
    );
}
