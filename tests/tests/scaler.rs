//! The scaler through its real AWS adapters against the local emulator.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::StateValue;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
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

#[tokio::test]
async fn an_alarm_scales_out_by_the_step_its_breach_selects() {
    let w = world("us-east-1", 2).await;
    // 75 against 70: the [0, 15) step, +1.
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
    let record = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    assert_eq!(record.services[0].action, Action::Scaled);
    assert_eq!(w.desired().await, 3);

    // A bigger breach on a later state change selects the +3 step.
    let w = world("us-east-2", 2).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    w.handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn the_scaling_memory_is_kept_in_service_tags() {
    let w = world("us-west-1", 2).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
    let record = w
        .handle(sample_event("scaler/alarm-state-change.json"), t0())
        .await
        .expect("handled");
    let arn = record.services[0].seen.as_ref().expect("seen").arn.clone();
    let tags = w
        .aws
        .ecs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("tags");
    let tag = |key: &str| {
        tags.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(tag(tag_keys::LAST_DIRECTION), "out");
    assert_eq!(tag(tag_keys::SCALE_OUT_BASE), "2");
    assert_eq!(tag(tag_keys::LAST_TARGET), "3");
    assert_eq!(tag(tag_keys::LAST_TRIGGER), record.trigger_key);
}

#[tokio::test]
async fn the_result_is_clamped_at_max_capacity() {
    let w = world("us-west-2", 9).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
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
async fn the_scale_out_cooldown_is_honoured() {
    let w = world("eu-west-1", 2).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
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

    // A bigger breach inside the cooldown adds only the difference: 2 + 3 = 5.
    w.aws
        .set_alarm_state("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    w.handle(tick("cooldown-2"), t0() + TimeDelta::seconds(40))
        .await
        .expect("tick");
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn the_recheck_keeps_scaling_a_sustained_alarm() {
    let w = world("eu-west-2", 2).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
    for (i, expected) in [3, 4, 5].into_iter().enumerate() {
        let at = t0() + TimeDelta::seconds(61 * i as i64);
        w.handle(tick(&format!("sustained-{i}")), at)
            .await
            .expect("tick");
        assert_eq!(w.desired().await, expected, "tick {i}");
    }
    // Once the alarm clears, ticks do nothing.
    w.aws
        .set_alarm_state("web-cpu-high", 70.0, StateValue::Ok, 40.0)
        .await;
    let record = w
        .handle(tick("sustained-ok"), t0() + TimeDelta::seconds(400))
        .await
        .expect("tick");
    assert!(record.services.is_empty());
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn a_duplicate_event_is_a_no_op() {
    let w = world("eu-central-1", 2).await;
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 75.0)
        .await;
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
async fn scale_in_is_blocked_mid_deployment() {
    // The emulator's only deployment stays IN_PROGRESS.
    let w = world("ap-southeast-1", 6).await;
    w.aws
        .alarm("web-cpu-low", 20.0, StateValue::Alarm, 12.0)
        .await;
    let record = w.handle(tick("deploying"), t0()).await.expect("tick");
    let decision = &record.services[0];
    assert!(decision.seen.as_ref().expect("seen").deployment_in_progress);
    assert_eq!(
        decision.evaluations[0].held_by,
        Some(Hold::DeploymentInProgress)
    );
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
    w.aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["dry_run"] = true.into();
    let record = w.handle(event, t0()).await.expect("dry run");
    assert_eq!(record.services[0].action, Action::WouldScale);
    assert_eq!(w.desired().await, 4);

    let shadow = world_with("ap-northeast-1", 4, true).await;
    shadow
        .aws
        .alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
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
    aws.alarm("web-cpu-high", 70.0, StateValue::Alarm, 93.5)
        .await;
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
