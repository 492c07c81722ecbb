//! The scaler's handler against fakes of its ports, fed by the samples in `events/`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::TimeDelta;
use ecs_control::batch::{Answer, BatchResponse, Outcome};
use ecs_control::config::ScalerConfig;
use ecs_control::domain::alarm::{AlarmState, Comparison};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::scaling::{Hold, MemoryStatus};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::FailureKind;
use ecs_control::testing::{assert_clear_refusal, changed};
use lambda_runtime::Diagnostic;
use scaler::events::{parse, Trigger};
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::{json, Value};

mod fakes;
use fakes::*;

const CPU_HIGH_REASON: &str = r#"{"version":"1.0","statistic":"Average","period":60,"recentDatapoints":[93.5],"threshold":70.0,"evaluatedDatapoints":[{"timestamp":"2026-11-21T10:01:00.000+0000","sampleCount":3.0,"value":93.5}]}"#;
const CPU_LOW_REASON: &str = r#"{"version":"1.0","recentDatapoints":[12.0],"threshold":20.0}"#;

fn scaler(ecs: FakeEcs, alarms: FakeAlarms) -> Scaler<FakeEcs, FakeAlarms> {
    Scaler::new(
        ScalerConfig::parse(POLICIES).expect("policies"),
        ecs,
        alarms,
        false,
    )
}

fn cpu_high_scaler(desired: u32) -> Scaler<FakeEcs, FakeAlarms> {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    scaler(FakeEcs::with_service(web(), desired), alarms)
}

fn diagnostic(err: InvocationError) -> Diagnostic {
    Diagnostic::from(err)
}

#[test]
fn every_sample_is_told_apart_by_shape() {
    for (name, kind) in [
        ("alarm-state-change", "alarm_change"),
        ("alarm-state-change-ok", "alarm_change"),
        ("composite-alarm-state-change", "alarm_change"),
        ("alarm-action", "alarm_change"),
        ("alarm-sns", "alarm_change"),
        ("recheck-schedule", "recheck"),
        ("manual-set-desired-count", "manual"),
        ("manual-apply-step-dry-run", "manual"),
        ("manual-preview-bounds", "manual"),
    ] {
        let invocation = parse(sample(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_value(&invocation.trigger).expect("serialises");
        assert_eq!(json["kind"], kind, "{name}");
    }
    assert!(
        parse(sample("manual-apply-step-dry-run"))
            .expect("parses")
            .dry_run
    );
}

#[test]
fn the_same_state_change_has_one_key_whatever_carried_it() {
    let keys: Vec<String> = ["alarm-state-change", "alarm-action", "alarm-sns"]
        .into_iter()
        .map(|name| match parse(sample(name)).expect("parses").trigger {
            Trigger::AlarmChange { notices } => notices[0].key(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys[0], "alarm:web-cpu-high@2026-11-21T10:02:40.991Z");
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
}

#[tokio::test]
async fn an_alarm_scales_out_by_the_step_its_breach_selects() {
    let s = cpu_high_scaler(4);
    let record = s
        .handle(sample("alarm-state-change"), "req-1", now())
        .await
        .expect("handled");
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled);
    // 93.5 against 70 is a breach of 23.5: the [15, +inf) step, +3.
    assert_eq!((decision.before, decision.after), (Some(4), Some(7)));
    assert!(
        decision.reason.contains("[15, +inf) +3"),
        "{}",
        decision.reason
    );
    // Three ECS calls: the change is recorded before it is made, and the
    // count read next tells whether it landed.
    assert_eq!(
        decision.calls,
        [
            "ecs:DescribeServices",
            "ecs:TagResource",
            "ecs:UpdateService"
        ]
    );
    let json = serde_json::to_value(&record).expect("record serialises");
    assert_eq!(
        json["services"][0]["evaluations"][0]["breach"]["metric_value"],
        93.5
    );
}

#[tokio::test]
async fn a_duplicate_delivery_by_any_route_is_a_no_op() {
    let s = cpu_high_scaler(4);
    s.handle(sample("alarm-state-change"), "req-1", now())
        .await
        .expect("first");
    for (name, request) in [
        ("alarm-state-change", "req-2"),
        ("alarm-action", "req-3"),
        ("alarm-sns", "req-4"),
    ] {
        let later = now() + TimeDelta::hours(1);
        let record = s.handle(sample(name), request, later).await.expect(name);
        assert_eq!(record.services[0].action, Action::Duplicate, "{name}");
    }
    assert_eq!(s_desired(&s), 7);
}

fn s_desired(s: &Scaler<FakeEcs, FakeAlarms>) -> u32 {
    s_ecs(s).desired(&web())
}

fn s_ecs(s: &Scaler<FakeEcs, FakeAlarms>) -> &FakeEcs {
    s.ports().0
}

#[tokio::test]
async fn ok_and_insufficient_data_do_not_act() {
    let s = cpu_high_scaler(4);
    let record = s
        .handle(sample("alarm-state-change-ok"), "req-1", now())
        .await
        .expect("handled");
    assert!(
        record
            .ignored
            .as_deref()
            .is_some_and(|r| r.contains("only ALARM acts")),
        "{:?}",
        record.ignored
    );
    assert!(record.services.is_empty());
    assert!(s_ecs(&s).writes().is_empty());
}

#[tokio::test]
async fn an_unknown_alarm_is_ignored_with_a_reason() {
    let s = cpu_high_scaler(4);
    let mut event = sample("alarm-state-change");
    event["detail"]["alarmName"] = "billing-alarm".into();
    let record = s.handle(event, "req-1", now()).await.expect("not an error");
    assert_eq!(
        record.ignored.as_deref(),
        Some("no policy names alarm billing-alarm")
    );
    assert!(s_ecs(&s).writes().is_empty());
}

#[tokio::test]
async fn a_late_alarm_event_for_an_alarm_now_ok_is_stale() {
    let alarms = FakeAlarms::all_ok();
    let s = scaler(FakeEcs::with_service(web(), 4), alarms);
    let record = s
        .handle(sample("alarm-state-change"), "req-1", now())
        .await
        .expect("handled");
    assert!(
        record
            .ignored
            .as_deref()
            .is_some_and(|r| r.contains("stale")),
        "{:?}",
        record.ignored
    );
    assert_eq!(s_desired(&s), 4);
}

#[tokio::test]
async fn a_composite_alarm_without_datapoints_uses_the_nearest_step() {
    let alarms = FakeAlarms::all_ok();
    alarms.set(
        "web-under-pressure",
        AlarmState::Alarm,
        Some(r#"{"triggeringAlarms":[]}"#),
    );
    let s = scaler(FakeEcs::with_service(web(), 3), alarms);
    let record = s
        .handle(sample("composite-alarm-state-change"), "req-1", now())
        .await
        .expect("handled");
    let decision = &record.services[0];
    assert_eq!(decision.after, Some(8));
    assert!(
        decision.reason.contains("breach unknown"),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn the_recheck_keeps_scaling_a_sustained_alarm_after_each_cooldown() {
    let s = cpu_high_scaler(2);
    let tick = |id: &str| {
        let mut event = sample("recheck-schedule");
        event["id"] = id.into();
        event
    };
    let r1 = s.handle(tick("t1"), "r1", now()).await.expect("t1");
    assert_eq!(r1.services[0].after, Some(5));
    // Inside the 60 s scale-out cooldown the same step adds nothing more.
    let r2 = s
        .handle(tick("t2"), "r2", now() + TimeDelta::seconds(30))
        .await
        .expect("t2");
    assert_eq!(r2.services[0].action, Action::Held);
    assert_eq!(
        r2.services[0].evaluations[0].held_by,
        Some(Hold::ScaleOutCooldown)
    );
    let r3 = s
        .handle(tick("t3"), "r3", now() + TimeDelta::seconds(61))
        .await
        .expect("t3");
    assert_eq!(
        (r3.services[0].before, r3.services[0].after),
        (Some(5), Some(8))
    );
    // Max capacity is 10.
    let r4 = s
        .handle(tick("t4"), "r4", now() + TimeDelta::seconds(122))
        .await
        .expect("t4");
    assert_eq!(r4.services[0].after, Some(10));
    let r5 = s
        .handle(tick("t5"), "r5", now() + TimeDelta::seconds(183))
        .await
        .expect("t5");
    assert_eq!(
        r5.services[0].evaluations[0].held_by,
        Some(Hold::AtMaxCapacity)
    );
    assert_eq!(s_desired(&s), 10);
}

#[tokio::test]
async fn a_recheck_with_nothing_in_alarm_does_nothing() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    let record = s
        .handle(sample("recheck-schedule"), "r", now())
        .await
        .expect("handled");
    assert!(record.services.is_empty());
    assert!(record.ignored.is_some());
    assert_eq!(record.alarms_checked.len(), 3);
}

#[tokio::test]
async fn scale_in_is_vetoed_while_a_scale_out_alarm_is_in_alarm() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    alarms.set("web-under-pressure", AlarmState::Alarm, None);
    let ecs = FakeEcs::with_service(web(), 8);
    let s = scaler(ecs, alarms);
    let record = s
        .handle(sample("recheck-schedule"), "r", now())
        .await
        .expect("handled");
    assert!(
        record.services[0].reason.contains("scale-in vetoed"),
        "{}",
        record.services[0].reason
    );
    assert_eq!(s_desired(&s), 8);
}

#[tokio::test]
async fn scale_in_waits_for_the_deployment_to_finish() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    let ecs = FakeEcs::with_service(web(), 8);
    ecs.update(&web(), |s| s.deployment_in_progress = true);
    let s = scaler(ecs, alarms);
    let record = s
        .handle(sample("recheck-schedule"), "r", now())
        .await
        .expect("handled");
    assert_eq!(
        record.services[0].evaluations[0].held_by,
        Some(Hold::DeploymentInProgress)
    );
    s_ecs(&s).update(&web(), |s| s.deployment_in_progress = false);
    let mut next = sample("recheck-schedule");
    next["id"] = "next".into();
    let record = s.handle(next, "r2", now()).await.expect("handled");
    // -25% of 8 is -2.
    assert_eq!(record.services[0].after, Some(6));
}

#[tokio::test]
async fn manual_set_is_bounded_and_idempotent() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    let record = s
        .handle(sample("manual-set-desired-count"), "req-1", now())
        .await
        .expect("handled");
    assert_eq!(record.services[0].after, Some(6));
    let again = s
        .handle(sample("manual-set-desired-count"), "req-2", now())
        .await
        .expect("handled");
    assert_eq!(again.services[0].action, Action::Duplicate);

    let mut too_many = sample("manual-set-desired-count");
    too_many["desired_count"] = 50.into();
    too_many["request_id"] = "other".into();
    let record = s.handle(too_many, "req-3", now()).await.expect("handled");
    assert_eq!(record.services[0].after, Some(10));
    assert!(record.services[0].reason.contains("the max 10 in force"));
}

#[tokio::test]
async fn a_dry_run_decides_and_changes_nothing() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    let record = s
        .handle(sample("manual-apply-step-dry-run"), "req-1", now())
        .await
        .expect("handled");
    assert!(record.dry_run);
    assert_eq!(record.services[0].action, Action::WouldScale);
    assert_eq!(record.services[0].after, Some(6));
    assert_eq!(s_desired(&s), 4);
    assert!(s_ecs(&s).writes().is_empty());
}

#[tokio::test]
async fn shadow_mode_makes_every_invocation_a_dry_run() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    let s = Scaler::new(
        ScalerConfig::parse(POLICIES).expect("policies"),
        FakeEcs::with_service(web(), 4),
        alarms,
        true,
    );
    let record = s
        .handle(sample("alarm-state-change"), "req-1", now())
        .await
        .expect("handled");
    assert_eq!(record.services[0].action, Action::WouldScale);
    assert!(s_ecs(&s).writes().is_empty());
}

#[tokio::test]
async fn manual_commands_for_unmanaged_services_are_rejected() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    let mut command = sample("manual-set-desired-count");
    command["service"] = "payments".into();
    let err = s
        .handle(command, "req-1", now())
        .await
        .expect_err("rejected");
    assert!(!err.is_retryable());
    assert_eq!(diagnostic(err).error_type, "NonRetryable.RejectedCommand");
}

#[tokio::test]
async fn malformed_events_are_clear_non_retryable_errors() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    for (payload, needle) in [
        (sample("unsupported-service-action"), "ECS Service Action"),
        (serde_json::json!({"hello": "world"}), "unrecognised event"),
        (serde_json::json!([1, 2]), "expected a JSON object"),
        (
            serde_json::json!({"Records": [{"Sns": {"Message": "{\"not\": \"an alarm\"}"}}]}),
            "Records[0].Sns.Message",
        ),
        (
            serde_json::json!({"command": "reboot", "cluster": "demo", "service": "web"}),
            "manual command",
        ),
    ] {
        let err = s.handle(payload, "r", now()).await.expect_err(needle);
        assert!(err.to_string().contains(needle), "{err}");
        assert_eq!(diagnostic(err).error_type, "NonRetryable.MalformedEvent");
    }
}

#[tokio::test]
async fn throttling_is_retryable_and_a_missing_service_is_not() {
    let s = cpu_high_scaler(4);
    s_ecs(&s).fail_next("ecs:DescribeServices", FailureKind::Retryable);
    let err = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect_err("throttled");
    assert_eq!(diagnostic(err).error_type, "Retryable.AwsUnavailable");

    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    let s = scaler(FakeEcs::default(), alarms);
    let err = s
        .handle(sample("alarm-state-change"), "r2", now())
        .await
        .expect_err("missing");
    assert_eq!(diagnostic(err).error_type, "NonRetryable.ResourceNotFound");
}

#[tokio::test]
async fn a_retry_after_a_partial_failure_finishes_without_redoing() {
    // Two services behind one alarm; the second one's update is throttled once.
    let policies = POLICIES.replace(
        r#""alarm": "web-under-pressure",
      "cluster": "demo",
      "service": "web""#,
        r#""alarm": "web-cpu-high",
      "cluster": "demo",
      "service": "api""#,
    );
    let config = ScalerConfig::parse(&policies).expect("policies");
    let api = ServiceRef::new("demo", "api");
    let ecs = FakeEcs::with_service(web(), 4);
    ecs.add(api.clone(), 3);
    ecs.fail_next("ecs:UpdateService", FailureKind::Retryable);
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    let s = Scaler::new(config, ecs, alarms, false);

    let err = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect_err("partial");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("1 of 2 services failed"), "{err}");
    let web_after_first = s_ecs(&s).desired(&web());
    let api_after_first = s_ecs(&s).desired(&api);
    assert_eq!(
        web_after_first + api_after_first,
        7 + 3,
        "only one service moved"
    );

    let record = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("retry succeeds");
    let actions: Vec<Action> = record.services.iter().map(|d| d.action).collect();
    assert!(actions.contains(&Action::Duplicate) && actions.contains(&Action::Scaled));
    // ExactCapacity 8 for api, +3 for web.
    assert_eq!(s_ecs(&s).desired(&web()), 7);
    assert_eq!(s_ecs(&s).desired(&api), 8);
}

/// Services a trigger concerns are read together (the adapter names 10 a
/// `DescribeServices` call); a failed joint read leaves each to read its own.
#[tokio::test]
async fn the_services_a_trigger_concerns_are_read_in_one_call() {
    let policies = POLICIES.replace(
        r#""alarm": "web-under-pressure",
      "cluster": "demo",
      "service": "web""#,
        r#""alarm": "web-cpu-high",
      "cluster": "demo",
      "service": "api""#,
    );
    let api = ServiceRef::new("demo", "api");
    let run = |fail_joint_read: bool| {
        let config = ScalerConfig::parse(&policies).expect("policies");
        let ecs = FakeEcs::with_service(web(), 4);
        ecs.add(api.clone(), 3);
        if fail_joint_read {
            ecs.fail_next("ecs:DescribeServices", FailureKind::Retryable);
        }
        let alarms = FakeAlarms::all_ok();
        alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
        Scaler::new(config, ecs, alarms, false)
    };
    let s = run(false);
    s.handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("handled");
    let reads: Vec<String> = s_ecs(&s)
        .calls
        .lock()
        .expect("lock")
        .clone()
        .into_iter()
        .filter(|c| c.starts_with("describe"))
        .collect();
    assert_eq!(reads, ["describe together demo/api demo/web"]);
    assert_eq!((s_ecs(&s).desired(&web()), s_ecs(&s).desired(&api)), (7, 8));

    let s = run(true);
    s.handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("each service read on its own");
    assert_eq!((s_ecs(&s).desired(&web()), s_ecs(&s).desired(&api)), (7, 8));
}

#[tokio::test]
async fn a_retry_completes_a_scale_out_whose_update_failed() {
    let s = cpu_high_scaler(4);
    s_ecs(&s).fail_next("ecs:UpdateService", FailureKind::Retryable);
    let err = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect_err("update failed");
    assert!(err.is_retryable());
    assert_eq!(s_desired(&s), 4);
    // The retry completes what was recorded: never a "duplicate" of a change not made.
    let retry = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("retry");
    let decision = &retry.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert!(
        decision.reason.contains("completing"),
        "{}",
        decision.reason
    );
    // The record is already on the service: only the count.
    assert_eq!(
        decision.calls,
        ["ecs:DescribeServices", "ecs:UpdateService"]
    );
    assert_eq!(s_desired(&s), 7);
    // Then, and only then, a further delivery is a duplicate.
    let again = s
        .handle(sample("alarm-sns"), "r2", now())
        .await
        .expect("again");
    assert_eq!(again.services[0].action, Action::Duplicate);
    assert_eq!(s_desired(&s), 7);
}

#[tokio::test]
async fn a_retried_manual_command_is_not_lost_when_its_update_failed() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    s_ecs(&s).fail_next("ecs:UpdateService", FailureKind::Retryable);
    s.handle(sample("manual-set-desired-count"), "req-1", now())
        .await
        .expect_err("update failed");
    assert_eq!(s_desired(&s), 4);
    let retry = s
        .handle(sample("manual-set-desired-count"), "req-2", now())
        .await
        .expect("retry");
    assert_eq!(retry.services[0].action, Action::Scaled);
    assert_eq!(s_desired(&s), 6);
}

#[tokio::test]
async fn a_scale_in_that_never_happened_does_not_hold_the_next_one() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    let s = scaler(FakeEcs::with_service(web(), 8), alarms);
    s_ecs(&s).fail_next("ecs:UpdateService", FailureKind::Retryable);
    s.handle(sample("recheck-schedule"), "r1", now())
        .await
        .expect_err("update failed");
    assert_eq!(s_desired(&s), 8);
    // A minute later (inside the 300 s scale-in cooldown the unapplied change
    // recorded) the next tick scales in: that cooldown never began.
    let mut tick = sample("recheck-schedule");
    tick["id"] = "next-tick".into();
    let record = s
        .handle(tick, "r2", now() + TimeDelta::seconds(60))
        .await
        .expect("tick");
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert!(
        decision.notes.iter().any(|n| n.contains("never applied")),
        "{:?}",
        decision.notes
    );
    assert_eq!(s_desired(&s), 6);
}

#[tokio::test]
async fn a_late_copy_of_an_answered_state_change_never_acts_again() {
    let s = cpu_high_scaler(4);
    s.handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("first");
    assert_eq!(s_desired(&s), 7);
    // Another trigger scales the service in between...
    let mut command = sample("manual-set-desired-count");
    command["desired_count"] = 5.into();
    s.handle(command, "r2", now() + TimeDelta::minutes(10))
        .await
        .expect("manual");
    assert_eq!(s_desired(&s), 5);
    // ...then the state change arrives again, hours late, by every route.
    for name in ["alarm-state-change", "alarm-action", "alarm-sns"] {
        let record = s
            .handle(sample(name), "r3", now() + TimeDelta::hours(5))
            .await
            .expect(name);
        assert_eq!(record.services[0].action, Action::Duplicate, "{name}");
    }
    assert_eq!(s_desired(&s), 5);
}

#[tokio::test]
async fn a_state_change_a_recheck_already_answered_does_not_act_when_it_arrives() {
    let s = cpu_high_scaler(4);
    s.handle(sample("recheck-schedule"), "r1", now())
        .await
        .expect("tick");
    assert_eq!(s_desired(&s), 7);
    let late = s
        .handle(
            sample("alarm-state-change"),
            "r2",
            now() + TimeDelta::hours(1),
        )
        .await
        .expect("late event");
    assert_eq!(late.services[0].action, Action::Duplicate);
    assert_eq!(s_desired(&s), 7);
}

#[tokio::test]
async fn the_step_comes_from_the_metric_at_decision_time() {
    // The reason data shows the first breach (93.5, +3); the metric now says 75.
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    alarms.watch("web-cpu-high", Comparison::GreaterThanThreshold, 70.0);
    for (ago, value) in [(150, 74.0), (90, 75.0), (30, 76.0)] {
        alarms.put("web-cpu-high", now() - TimeDelta::seconds(ago), value);
    }
    // Outside the alarm's three-minute window: not read.
    alarms.put("web-cpu-high", now() - TimeDelta::minutes(10), 99.0);
    let s = scaler(FakeEcs::with_service(web(), 4), alarms);
    let record = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("handled");
    let decision = &record.services[0];
    // Average 75 against 70: the [0, 15) step, +1.
    assert_eq!(decision.after, Some(5), "{}", decision.reason);
    let json = serde_json::to_value(&record).expect("json");
    let breach = &json["services"][0]["evaluations"][0]["breach"];
    assert_eq!(breach["metric_value"], 75.0);
    assert_eq!(breach["source"]["from"], "metric");
    assert_eq!(breach["source"]["datapoints"], 3);
    assert_eq!(
        record.calls,
        ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData"]
    );
}

#[tokio::test]
async fn the_policy_aggregation_combines_the_datapoints() {
    let policies = POLICIES.replacen(
        r#""adjustment_type": "ChangeInCapacity","#,
        r#""adjustment_type": "ChangeInCapacity", "metric_aggregation_type": "Maximum","#,
        1,
    );
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    alarms.watch("web-cpu-high", Comparison::GreaterThanThreshold, 70.0);
    for (ago, value) in [(150, 71.0), (90, 90.0), (30, 72.0)] {
        alarms.put("web-cpu-high", now() - TimeDelta::seconds(ago), value);
    }
    let s = Scaler::new(
        ScalerConfig::parse(&policies).expect("policies"),
        FakeEcs::with_service(web(), 4),
        alarms,
        false,
    );
    let record = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("handled");
    // Maximum 90 is a breach of 20: +3.
    assert_eq!(record.services[0].after, Some(7));
}

#[tokio::test]
async fn a_failed_metric_read_falls_back_to_the_reason_data_and_says_so() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    alarms.watch("web-cpu-high", Comparison::GreaterThanThreshold, 70.0);
    *alarms.metric_reads_fail.lock().expect("lock") = true;
    let s = scaler(FakeEcs::with_service(web(), 4), alarms);
    let record = s
        .handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("handled");
    let evaluation = &record.services[0].evaluations[0];
    assert_eq!(record.services[0].after, Some(7));
    assert!(
        evaluation
            .breach_note
            .as_deref()
            .is_some_and(|n| n.contains("reading the alarm's metric failed")),
        "{:?}",
        evaluation.breach_note
    );
    let json = serde_json::to_value(evaluation).expect("json");
    assert_eq!(json["breach"]["source"]["from"], "reason_data");
}

#[tokio::test]
async fn an_alarm_whose_breach_matches_no_step_still_vetoes_scale_in() {
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-high", AlarmState::Alarm, Some(CPU_HIGH_REASON));
    alarms.watch("web-cpu-high", Comparison::GreaterThanThreshold, 70.0);
    // Still in ALARM, but its metric has dropped below the threshold: no step.
    alarms.put("web-cpu-high", now() - TimeDelta::seconds(30), 65.0);
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    let s = scaler(FakeEcs::with_service(web(), 8), alarms);
    let record = s
        .handle(sample("recheck-schedule"), "r1", now())
        .await
        .expect("handled");
    let decision = &record.services[0];
    assert!(
        decision.reason.contains("scale-in vetoed"),
        "{}",
        decision.reason
    );
    assert_eq!(s_desired(&s), 8);
}

#[tokio::test]
async fn a_low_alarm_exactly_at_its_threshold_takes_the_step_that_ends_at_zero() {
    let policies = POLICIES.replace(
        r#"{ "metric_interval_upper_bound": 0, "scaling_adjustment": -25 }"#,
        r#"{ "metric_interval_lower_bound": 0, "scaling_adjustment": -50 },
        { "metric_interval_upper_bound": 0, "scaling_adjustment": -25 }"#,
    );
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    alarms.watch("web-cpu-low", Comparison::LessThanOrEqualToThreshold, 20.0);
    alarms.put("web-cpu-low", now() - TimeDelta::seconds(30), 20.0);
    let s = Scaler::new(
        ScalerConfig::parse(&policies).expect("policies"),
        FakeEcs::with_service(web(), 8),
        alarms,
        false,
    );
    let record = s
        .handle(sample("recheck-schedule"), "r1", now())
        .await
        .expect("handled");
    // Breach 0 on a <= alarm lies below the threshold: (-inf, 0], -25% of 8.
    assert_eq!(
        record.services[0].after,
        Some(6),
        "{}",
        record.services[0].reason
    );
}

#[tokio::test]
async fn a_count_outside_the_bounds_is_brought_back_whenever_the_service_is_evaluated() {
    // A deploy reset the count to 14 (max 10); the high alarm's +3 cannot apply.
    let s = cpu_high_scaler(14);
    let record = s
        .handle(sample("recheck-schedule"), "r1", now())
        .await
        .expect("handled");
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled);
    assert_eq!(decision.out_of_bounds, Some(14));
    assert!(
        decision.reason.contains("outside [2, 10]"),
        "{}",
        decision.reason
    );
    assert_eq!(s_desired(&s), 10);

    // Below min during a deployment: scale-in is held, the bound is not.
    let alarms = FakeAlarms::all_ok();
    alarms.set("web-cpu-low", AlarmState::Alarm, Some(CPU_LOW_REASON));
    let ecs = FakeEcs::with_service(web(), 1);
    ecs.update(&web(), |s| s.deployment_in_progress = true);
    let s = scaler(ecs, alarms);
    s.handle(sample("recheck-schedule"), "r2", now())
        .await
        .expect("handled");
    assert_eq!(s_desired(&s), 2);
}

#[tokio::test]
async fn every_tag_value_fits_ecs_rules_whatever_the_alarm_is_called() {
    // 248 characters: within CloudWatch's 255, past what a tag keeps readable.
    let name = "web (cpu), high! #1 — ünïcode ✓".repeat(8);
    let policies = POLICIES.replacen("\"web-cpu-high\"", &format!("{name:?}"), 1);
    let alarms = FakeAlarms::all_ok();
    alarms.set(&name, AlarmState::Alarm, Some(CPU_HIGH_REASON));
    let s = Scaler::new(
        ScalerConfig::parse(&policies).expect("policies"),
        FakeEcs::with_service(web(), 4),
        alarms,
        false,
    );
    let mut event = sample("alarm-state-change");
    event["detail"]["alarmName"] = name.clone().into();
    let record = s.handle(event, "r1", now()).await.expect("handled");
    assert_eq!(record.services[0].action, Action::Scaled);
    let memory = s_ecs(&s).services.lock().expect("lock")[&web()]
        .memory
        .clone();
    for (key, value) in ecs_control::aws::ecs::memory_to_tags(&memory) {
        assert!(value.chars().count() <= 256, "{key}");
        assert!(
            value
                .chars()
                .all(ecs_control::domain::scaling::tag_char_allowed),
            "{key}: {value}"
        );
    }
}

#[tokio::test]
async fn a_request_id_that_cannot_be_kept_is_a_rejected_command() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    for bad in ["", "   ", "line\nbreak"] {
        let mut command = sample("manual-set-desired-count");
        command["request_id"] = bad.into();
        let err = s.handle(command, "r", now()).await.expect_err("rejected");
        assert_eq!(diagnostic(err).error_type, "NonRetryable.RejectedCommand");
    }
    let mut command = sample("manual-set-desired-count");
    command["request_id"] = "x".repeat(10_000).into();
    let err = s.handle(command, "r", now()).await.expect_err("rejected");
    let message = diagnostic(err).error_message;
    assert!(message.len() < 300, "the id is not echoed: {message}");
    // Any printable id is honoured, hashed into the tag.
    let mut command = sample("manual-set-desired-count");
    command["request_id"] = "deploy #42, (rollback)".into();
    let record = s.handle(command, "r", now()).await.expect("accepted");
    assert_eq!(record.services[0].action, Action::Scaled);
}

#[tokio::test]
async fn absurd_manual_adjustments_are_rejected_not_wrapped() {
    let s = scaler(FakeEcs::with_service(web(), 4), FakeAlarms::all_ok());
    for adjustment in [i64::MAX, i64::MIN, 1_000_001] {
        let mut command = sample("manual-apply-step-dry-run");
        command["adjustment"] = adjustment.into();
        let err = s.handle(command, "r", now()).await.expect_err("rejected");
        assert_eq!(diagnostic(err).error_type, "NonRetryable.RejectedCommand");
    }
    let mut command = sample("manual-apply-step-dry-run");
    command["adjustment"] = 1_000_000.into();
    let record = s.handle(command, "r", now()).await.expect("bounded");
    assert_eq!(record.services[0].after, Some(10));
}

#[tokio::test]
async fn a_count_changed_by_another_writer_is_noticed_and_becomes_the_base() {
    let s = cpu_high_scaler(4);
    s.handle(sample("alarm-state-change"), "r1", now())
        .await
        .expect("first");
    assert_eq!(s_desired(&s), 7);
    // A deploy resets the count to 3 inside the scale-out cooldown.
    s_ecs(&s).update(&web(), |s| s.desired_count = 3);
    let record = s
        .handle(
            sample("recheck-schedule"),
            "r2",
            now() + TimeDelta::seconds(20),
        )
        .await
        .expect("tick");
    let decision = &record.services[0];
    assert_eq!(
        decision.memory,
        Some(MemoryStatus::ChangedElsewhere {
            last_set: 7,
            found: 3
        })
    );
    assert!(
        decision.notes.iter().any(|n| n.contains("another writer")),
        "{:?}",
        decision.notes
    );
    // The +3 step counts from the 3 found, not from the old base 4.
    assert_eq!(s_desired(&s), 6);
}

/// The demo service with target tracking on CPU, a window and a budget.
const TRIGGERS: &str = r#"{
  "policies": [
    {"type": "target_tracking", "cluster": "demo", "service": "web", "metric": "ecs_cpu",
     "target_value": 60, "min_capacity": 1, "max_capacity": 20}
  ],
  "schedules": [
    {"name": "launch", "cluster": "demo", "service": "web",
     "start": "2026-11-21T10:00:00Z", "duration_minutes": 120, "desired_count": 8}
  ],
  "services": [
    {"cluster": "demo", "service": "web", "max_hourly_cost": 1.0}
  ]
}"#;

fn triggers_scaler(desired: u32) -> Scaler<FakeEcs, FakeAlarms> {
    Scaler::new(
        ScalerConfig::parse(TRIGGERS).expect("policies"),
        FakeEcs::with_service(web(), desired),
        FakeAlarms::default(),
        false,
    )
}

fn tick_event(id: &str) -> Value {
    let mut event = sample("recheck-schedule");
    event["id"] = id.into();
    event
}

#[tokio::test]
async fn preview_bounds_shows_the_timeline_and_reads_nothing() {
    let s = triggers_scaler(3);
    let record = s
        .handle(
            sample("manual-preview-bounds"),
            "req-1",
            now() - TimeDelta::hours(1),
        )
        .await
        .expect("preview");
    let preview = record.preview.expect("a timeline");
    // Before the launch window, during it, after it.
    assert_eq!(preview.len(), 3, "{preview:?}");
    assert_eq!(preview[1].windows, ["launch"]);
    assert!(s.ports().0.calls.lock().expect("lock").is_empty());

    let mut too_long = sample("manual-preview-bounds");
    too_long["hours"] = 10_000.into();
    let err = s
        .handle(too_long, "req-2", now())
        .await
        .expect_err("too long");
    assert!(
        err.to_string().contains("hours must be between 1 and 744"),
        "{err}"
    );
}

#[tokio::test]
async fn a_window_moves_to_its_desired_count_once_per_opening() {
    let s = triggers_scaler(3);
    s.ports().0.task_sizes.lock().expect("lock").insert(
        WEB_TASK_DEFINITION.into(),
        TaskSize {
            cpu_units: 256,
            memory_mib: 512,
        },
    );
    let first = s
        .handle(tick_event("t1"), "req-1", now())
        .await
        .expect("tick");
    assert_eq!(
        s.ports().0.desired(&web()),
        8,
        "{}",
        first.services[0].reason
    );
    // Someone sets 5 inside the window: the opening was answered, no second jump.
    s.ports().0.update(&web(), |state| state.desired_count = 5);
    let second = s
        .handle(tick_event("t2"), "req-2", now() + TimeDelta::minutes(1))
        .await
        .expect("tick");
    assert_eq!(
        s.ports().0.desired(&web()),
        5,
        "{}",
        second.services[0].reason
    );
    // The task size was read once.
    let reads = s
        .ports()
        .0
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| c.starts_with("describe task definition"))
        .count();
    assert_eq!(reads, 1);
}

#[tokio::test]
async fn an_unknown_task_size_holds_every_scale_out() {
    // No task size in the fake: the budget cannot be counted.
    let s = triggers_scaler(3);
    let record = s
        .handle(tick_event("t1"), "req-1", now())
        .await
        .expect("tick");
    let decision = &record.services[0];
    assert_eq!(s.ports().0.desired(&web()), 3, "{}", decision.reason);
    assert!(
        decision
            .notes
            .iter()
            .any(|n| n.contains("budget cannot be counted")),
        "{:?}",
        decision.notes
    );
    assert_eq!(decision.limits.map(|l| l.bounds.max), Some(3));
}

#[tokio::test]
async fn target_tracking_reads_its_metric_and_a_failed_read_changes_nothing() {
    let doc = r#"{"policies": [{"type": "target_tracking", "cluster": "demo", "service": "web",
        "metric": "ecs_cpu", "target_value": 50, "min_capacity": 1, "max_capacity": 20}]}"#;
    let alarms = FakeAlarms::default();
    for m in 1..=3 {
        alarms.put("CPUUtilization", now() - TimeDelta::minutes(m), 75.0);
    }
    let s = Scaler::new(
        ScalerConfig::parse(doc).expect("policies"),
        FakeEcs::with_service(web(), 4),
        alarms,
        false,
    );
    let record = s
        .handle(tick_event("t1"), "req-1", now())
        .await
        .expect("tick");
    assert_eq!(
        s.ports().0.desired(&web()),
        6,
        "{}",
        record.services[0].reason
    );
    assert!(record.services[0].reason.contains("ceil(4 × 75 / 50) = 6"));

    *s.ports().1.metric_reads_fail.lock().expect("lock") = true;
    let record = s
        .handle(tick_event("t2"), "req-2", now() + TimeDelta::minutes(10))
        .await
        .expect("tick");
    let evaluation = &record.services[0].evaluations[0];
    assert_eq!(evaluation.held_by, Some(Hold::MissingData));
    assert!(
        evaluation.rule.contains("reading the metric failed"),
        "{}",
        evaluation.rule
    );
    assert_eq!(s.ports().0.desired(&web()), 6);
}

#[tokio::test]
async fn hostile_inputs_get_a_clear_answer_and_are_never_echoed_whole() {
    let huge = "x".repeat(1 << 20);
    let with = |name: &str, change: &dyn Fn(&mut Value)| changed(sample(name), change);
    // (payload, what the answer must say) — every one an error, none echoing a megabyte.
    let cases: Vec<(Value, &str)> = vec![
        (
            with("alarm-state-change", &|e| {
                e["detail"]["alarmName"] = huge.clone().into()
            }),
            "the alarm name is 1048576 characters; at most 255",
        ),
        (
            with("alarm-action", &|e| {
                e["alarmData"]["alarmName"] = huge.clone().into()
            }),
            "at most 255",
        ),
        (
            with("manual-set-desired-count", &|e| {
                e["reason"] = huge.clone().into()
            }),
            "reason is 1048576 characters",
        ),
        (
            with("manual-set-desired-count", &|e| {
                e["service"] = huge.clone().into()
            }),
            "service is 1048576 characters",
        ),
        (
            with("manual-set-desired-count", &|e| {
                e["desired_count"] = (-3).into()
            }),
            "invalid value: integer `-3`",
        ),
        (
            with("manual-set-desired-count", &|e| {
                e["desired_count"] = "six".into()
            }),
            "invalid type: string",
        ),
        (
            with("manual-set-desired-count", &|e| {
                e["desired_count"] = huge.clone().into()
            }),
            "cut)",
        ),
        (
            with("alarm-state-change", &|e| {
                e["detail"]["state"]["value"] = "PANIC".into()
            }),
            "unknown variant `PANIC`",
        ),
        (json!({ huge.clone(): 1 }), "unrecognised event"),
        (json!([1, 2, 3]), "expected a JSON object, got an array"),
    ];
    let s = cpu_high_scaler(4);
    for (payload, says) in cases {
        let err = s.handle(payload, "req", now()).await.expect_err("refused");
        assert_clear_refusal(err, says, "NonRetryable.MalformedEvent");
    }
    // Absurd counts are kept to the bounds; unknown names are answered, not obeyed.
    let mut absurd = sample("manual-set-desired-count");
    absurd["desired_count"] = 4_000_000_000_u32.into();
    let record = s
        .handle(absurd, "req-absurd", now())
        .await
        .expect("bounded");
    assert_eq!(record.services[0].after, Some(10));
    let mut unknown = sample("alarm-state-change");
    unknown["detail"]["alarmName"] = "someone-elses-alarm".into();
    let record = s
        .handle(unknown, "req-unknown", now())
        .await
        .expect("ignored");
    assert_eq!(
        record.ignored.as_deref(),
        Some("no policy names alarm someone-elses-alarm")
    );
    let mut elsewhere = sample("manual-set-desired-count");
    elsewhere["cluster"] = "another-accounts-cluster".into();
    let err = s
        .handle(elsewhere, "req-elsewhere", now())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("no policy resizes"), "{err}");
}

/// A record as the FIFO queue's event source mapping delivers it, carrying `body`.
fn queued(message_id: &str, body: &Value) -> Value {
    let mut record = sample("sqs-batch")["Records"][0].clone();
    record["messageId"] = message_id.into();
    record["body"] = body.to_string().into();
    record
}

fn sqs_batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn batch_answer(answer: Answer<DecisionRecord>) -> BatchResponse {
    match answer {
        Answer::Batch(batch) => batch,
        Answer::Direct(record) => panic!("a decision record, not a batch answer: {record:?}"),
    }
}

fn outcomes(answer: &BatchResponse) -> Vec<(Option<&str>, Outcome)> {
    answer
        .summary
        .messages
        .iter()
        .map(|m| (m.message_id.as_deref(), m.outcome))
        .collect()
}

#[tokio::test]
async fn an_sqs_batch_is_handled_message_by_message_and_lists_nothing_when_all_is_done() {
    let s = cpu_high_scaler(4);
    let answer = s
        .invoke(sample("sqs-batch"), "req-1", now)
        .await
        .expect("a batch answers");
    let json = serde_json::to_value(&answer).expect("serialises");
    assert_eq!(json["batchItemFailures"], json!([]));
    let answer = batch_answer(answer);
    assert_eq!(answer.summary.handled, 2);
    // The alarm scaled 4 by its +3 step; the tick after it is inside the cooldown.
    assert_eq!(s_desired(&s), 7);
}

#[tokio::test]
async fn a_payload_sent_directly_is_answered_as_before() {
    let s = cpu_high_scaler(4);
    let answer = s
        .invoke(sample("alarm-state-change"), "req-1", now)
        .await
        .expect("handled");
    let json = serde_json::to_value(&answer).expect("serialises");
    assert_eq!(json["services"][0]["action"], "scaled", "{json:#}");
    assert_eq!(json["services"][0]["after"], 7);
    assert!(json.get("batchItemFailures").is_none());
    let err = s
        .invoke(sample("unsupported-service-action"), "req-2", now)
        .await
        .expect_err("refused");
    assert_eq!(diagnostic(err).error_type, "NonRetryable.MalformedEvent");
}

#[tokio::test]
async fn a_retryable_failure_returns_that_message_and_every_later_one_in_order() {
    let s = cpu_high_scaler(4);
    s_ecs(&s).fail_next("ecs:UpdateService", FailureKind::Retryable);
    let m2 = queued("m2", &sample("alarm-state-change"));
    let m3 = queued("m3", &tick_event("t1"));
    let batch = sqs_batch(vec![
        queued("m1", &sample("alarm-state-change-ok")),
        m2.clone(),
        m3.clone(),
    ]);
    let answer = batch_answer(s.invoke(batch, "req-1", now).await.expect("answers"));
    assert_eq!(answer.failed_ids(), ["m2", "m3"]);
    assert_eq!(
        outcomes(&answer),
        [
            (Some("m1"), Outcome::Handled),
            (Some("m2"), Outcome::Failed),
            (Some("m3"), Outcome::Deferred),
        ]
    );
    assert_eq!(
        answer.summary.messages[1].error_type.as_deref(),
        Some("Retryable.AwsUnavailable")
    );
    assert_eq!(s_desired(&s), 4, "the update failed");
    // What was not tried made no call: one read of the service, by m2.
    let reads = s_ecs(&s)
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| c.as_str() == "describe demo/web")
        .count();
    assert_eq!(reads, 1);

    // SQS redelivers the two, in order: the change recorded is completed once.
    let answer = batch_answer(
        s.invoke(sqs_batch(vec![m2, m3]), "req-2", now)
            .await
            .expect("answers"),
    );
    assert!(answer.failed_ids().is_empty());
    assert_eq!(answer.summary.handled, 2);
    assert_eq!(s_desired(&s), 7);
}

#[tokio::test]
async fn a_malformed_or_rejected_message_is_dropped_and_the_rest_are_handled() {
    let s = cpu_high_scaler(4);
    let mut unmanaged = sample("manual-set-desired-count");
    unmanaged["service"] = "payments".into();
    let mut not_json = queued("m5", &json!({}));
    not_json["body"] = "{\"detail-type\": ".into();
    let batch = sqs_batch(vec![
        queued("m1", &sample("alarm-state-change-ok")),
        queued("m2", &json!({"hello": "world"})),
        queued("m3", &unmanaged),
        queued("m4", &sample("alarm-state-change")),
        not_json,
    ]);
    let answer = batch_answer(s.invoke(batch, "req-1", now).await.expect("answers"));
    assert!(
        answer.failed_ids().is_empty(),
        "a message that fails on every delivery never goes back"
    );
    assert_eq!(
        outcomes(&answer),
        [
            (Some("m1"), Outcome::Handled),
            (Some("m2"), Outcome::Rejected),
            (Some("m3"), Outcome::Rejected),
            (Some("m4"), Outcome::Handled),
            (Some("m5"), Outcome::Rejected),
        ]
    );
    let error_type = |i: usize| answer.summary.messages[i].error_type.as_deref();
    assert_eq!(error_type(1), Some("NonRetryable.MalformedEvent"));
    assert_eq!(error_type(2), Some("NonRetryable.RejectedCommand"));
    assert_eq!(error_type(4), Some("NonRetryable.MalformedEvent"));
    assert_eq!(s_desired(&s), 7, "the alarm after them was acted on");
}

#[tokio::test]
async fn the_same_sqs_message_delivered_twice_acts_once() {
    let s = cpu_high_scaler(4);
    // A queued command without a request id: its message id stands for one.
    let mut step = sample("manual-apply-step-dry-run");
    step["dry_run"] = false.into();
    step["adjustment"] = 10.into();
    let batch = sqs_batch(vec![
        queued("m1", &sample("alarm-state-change")),
        queued("m2", &step),
    ]);
    let first = batch_answer(s.invoke(batch.clone(), "req-1", now).await.expect("first"));
    assert_eq!(first.summary.handled, 2);
    // +3 for the alarm, then 10% of 7 (at least 1).
    assert_eq!(s_desired(&s), 8);
    let writes = s_ecs(&s).writes();

    let later = || now() + TimeDelta::hours(1);
    let again = batch_answer(s.invoke(batch, "req-2", later).await.expect("again"));
    assert!(again.failed_ids().is_empty());
    assert_eq!(again.summary.handled, 2);
    assert_eq!(s_desired(&s), 8);
    assert_eq!(
        s_ecs(&s).writes(),
        writes,
        "the second delivery changed nothing"
    );
    // The message id is what names the command: a new message is a new one.
    let another = sqs_batch(vec![queued("m3", &step)]);
    s.invoke(another, "req-3", later).await.expect("another");
    assert_eq!(s_desired(&s), 9);
}

#[tokio::test]
async fn an_envelope_that_is_not_a_readable_batch_fails_the_invocation_without_retry() {
    let s = cpu_high_scaler(4);
    for payload in [
        json!({"Records": 5}),
        json!({"Records": []}),
        // No record says it comes from SQS.
        json!({"Records": [{"messageId": "m1", "body": "{}"}]}),
    ] {
        let err = s
            .invoke(payload.clone(), "req", now)
            .await
            .expect_err("refused");
        assert_eq!(
            diagnostic(err).error_type,
            "NonRetryable.MalformedEvent",
            "{payload}"
        );
    }
}

#[test]
fn an_sqs_batch_given_to_the_parser_as_one_event_is_refused() {
    let err = parse(sample("sqs-batch")).expect_err("not one event");
    assert!(
        err.to_string().contains("an SQS batch is not one event"),
        "{err}"
    );
}
