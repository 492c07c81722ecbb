//! The scaler's other triggers through the real adapters against the emulator,
//! with the metric put through `PutMetricData`: target tracking, a time window,
//! the budget ceiling and the pace.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use e2e::{sample_event, Aws, Emulator};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::config::ScalerConfig;
use ecs_control::domain::scale_in::ScaleInVerdict;
use ecs_control::domain::scaling::{Clamp, Hold};
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::{json, Value};

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";

struct World {
    aws: Aws,
    scaler: Scaler<EcsAdapter, CloudWatchAlarms>,
}

/// CPU held at 60%, between 1 and 20 tasks; `extra` adds top-level entries.
fn document(extra: Value) -> String {
    let mut doc = json!({
        "policies": [{
            "type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
            "metric": "ecs_cpu", "target_value": 60,
            "min_capacity": 1, "max_capacity": 20
        }]
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    doc.to_string()
}

async fn world(region: &str, desired: i32, extra: Value) -> World {
    let document: Value = serde_json::from_str(&document(extra)).expect("json");
    world_with(region, desired, &document).await
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 3, 0)
        .single()
        .unwrap_or_default()
}

impl World {
    async fn desired(&self) -> i32 {
        self.aws.desired_count(CLUSTER, SERVICE).await
    }

    async fn service_arn(&self) -> String {
        let service = self.aws.service(CLUSTER, SERVICE).await;
        service.service_arn().unwrap_or_default().to_string()
    }

    async fn tick(&self, id: &str, at: DateTime<Utc>) -> DecisionRecord {
        let mut event = sample_event("scaler/recheck-schedule.json");
        event["id"] = id.into();
        self.scaler
            .handle(event, "e2e-request", at)
            .await
            .expect("tick")
    }

    /// One CPU datapoint a minute for the `minutes` minutes before `now`.
    async fn cpu_for(&self, value: f64, minutes: i64, now: DateTime<Utc>) {
        for m in 1..=minutes {
            self.aws
                .put_cpu(value, now - TimeDelta::minutes(m) + TimeDelta::seconds(30))
                .await;
        }
    }
}

#[tokio::test]
async fn cpu_above_target_scales_out_in_one_step_to_the_computed_count() {
    let w = world("us-west-1", 4, json!({})).await;
    w.cpu_for(84.0, 3, t0()).await;
    let record = w.tick("tt-1", t0()).await;
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(w.desired().await, 6);
    let tracking = decision.evaluations[0].tracking.as_ref().expect("detail");
    assert_eq!(
        tracking.arithmetic.as_deref(),
        Some("ceil(4 × 84 / 60) = 6")
    );
    assert_eq!(tracking.datapoints.len(), 3);
    assert!(
        decision.reason.contains("ceil(4 × 84 / 60) = 6"),
        "{}",
        decision.reason
    );
    assert_eq!(record.calls, ["cloudwatch:GetMetricData"]);

    // The same tick delivered twice acts once.
    let again = w.tick("tt-1", t0() + TimeDelta::seconds(5)).await;
    assert_eq!(again.services[0].action, Action::Duplicate);
    assert_eq!(w.desired().await, 6);
}

#[tokio::test]
async fn missing_datapoints_change_nothing_and_say_so() {
    let w = world("us-west-2", 4, json!({})).await;
    w.cpu_for(95.0, 2, t0()).await;
    let record = w.tick("tt-partial", t0()).await;
    let evaluation = &record.services[0].evaluations[0];
    assert_eq!(evaluation.held_by, Some(Hold::MissingData));
    assert!(
        evaluation.rule.contains("2 of the last 3"),
        "{}",
        evaluation.rule
    );
    assert_eq!(w.desired().await, 4);
}

#[tokio::test]
async fn a_window_opening_raises_the_count_to_its_min() {
    let window = json!({"schedules": [{
        "name": "morning", "cluster": CLUSTER, "service": SERVICE,
        "cron": "0 10 * * *", "time_zone": "UTC", "duration_minutes": 120,
        "min_capacity": 5
    }]});
    let w = world("ca-central-1", 2, window).await;
    w.cpu_for(55.0, 15, t0()).await;
    let before = w.tick("before-window", t0() - TimeDelta::minutes(4)).await;
    assert_eq!(before.services[0].action, Action::Held);
    assert_eq!(w.desired().await, 2);
    // 10:03: the window opened at 10:00 (its 10:00 tick was missed).
    let record = w.tick("in-window", t0()).await;
    let decision = &record.services[0];
    assert_eq!(decision.windows[0].name, "morning");
    assert_eq!(decision.out_of_bounds, Some(2));
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(w.desired().await, 5);
}

#[tokio::test]
async fn the_budget_holds_a_scale_out() {
    // 0.25 vCPU and 0.5 GB at Fargate x86 prices cost 0.0123425 an hour: 0.05 pays for 4.
    let budget = json!({"services": [{
        "cluster": CLUSTER, "service": SERVICE, "max_hourly_cost": 0.05
    }]});
    let w = world("eu-west-3", 3, budget).await;
    w.cpu_for(90.0, 3, t0()).await;
    let first = w.tick("budget-1", t0()).await;
    let decision = &first.services[0];
    assert_eq!(decision.budget.as_ref().map(|b| b.max_tasks), Some(4));
    assert_eq!(decision.evaluations[0].clamped_by, Some(Clamp::Budget));
    assert_eq!(
        w.desired().await,
        4,
        "ceil(3 × 90 / 60) = 5, cut to the budget's 4"
    );
    assert!(decision.calls.contains(&"ecs:DescribeTaskDefinition"));

    // After the cooldown, still hot: ceil(4 × 90 / 60) = 6, and the budget holds at 4.
    let later = t0() + TimeDelta::minutes(6);
    w.cpu_for(90.0, 3, later).await;
    let held = w.tick("budget-2", later).await;
    let decision = &held.services[0];
    assert_eq!(decision.evaluations[0].held_by, Some(Hold::BudgetCeiling));
    assert_eq!(decision.action, Action::Held);
    assert!(
        !decision.calls.contains(&"ecs:DescribeTaskDefinition"),
        "the size is read once per task definition"
    );
    assert_eq!(w.desired().await, 4);
}

#[tokio::test]
async fn a_large_step_is_staged_by_the_pace() {
    let pace = json!({"services": [{
        "cluster": CLUSTER, "service": SERVICE, "max_tasks_added_per_minute": 3
    }]});
    let w = world("sa-east-1", 2, pace).await;
    w.cpu_for(300.0, 3, t0()).await;
    let first = w.tick("pace-1", t0()).await;
    let decision = &first.services[0];
    assert_eq!(w.desired().await, 5, "{}", decision.reason);
    let paced = decision.pace.as_ref().expect("pace");
    assert_eq!((paced.staged, paced.still_to_come), (Some(10), 5));
    assert!(
        decision.reason.contains("5 still to come"),
        "{}",
        decision.reason
    );

    w.tick("pace-2", t0() + TimeDelta::seconds(60)).await;
    assert_eq!(w.desired().await, 8);
    let last = w.tick("pace-3", t0() + TimeDelta::seconds(120)).await;
    assert_eq!(w.desired().await, 10, "{}", last.services[0].reason);
    assert_eq!(last.services[0].pace.as_ref().and_then(|p| p.staged), None);
}

#[tokio::test]
async fn requests_per_target_and_metric_math_are_tracked_too() {
    // Replaces the CPU policy with two others on the same service.
    let config = Emulator::shared().sdk_config("ap-south-1");
    let aws = Aws::new(&config);
    aws.set_clock(t0());
    aws.create_service(CLUSTER, SERVICE, 2).await;
    aws.wait_for_deployment(CLUSTER, SERVICE).await;
    let document = json!({"policies": [
        {"type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
         "metric": "alb_requests_per_target",
         "target_group_arn": "arn:aws:elasticloadbalancing:ap-south-1:123456789012:targetgroup/web/6d0ecf831eec9f09",
         "target_value": 1000, "min_capacity": 1, "max_capacity": 20},
        {"type": "target_tracking", "name": "backlog per worker", "cluster": CLUSTER, "service": SERVICE,
         "metric": {"expression": "m1 / m2", "metrics": {
             "m1": {"namespace": "Shop", "metric_name": "Backlog", "statistic": "Sum"},
             "m2": {"namespace": "Shop", "metric_name": "Workers", "statistic": "Average"}}},
         "target_value": 100, "min_capacity": 1, "max_capacity": 20}
    ]});
    let w = World {
        scaler: Scaler::new(
            ScalerConfig::parse(&document.to_string()).expect("policy document"),
            EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
            CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
            false,
        ),
        aws,
    };
    for m in 1..=3 {
        let at = t0() - TimeDelta::minutes(m) + TimeDelta::seconds(30);
        w.aws
            .put_metric(
                ("AWS/ApplicationELB", "RequestCountPerTarget"),
                &[("TargetGroup", "targetgroup/web/6d0ecf831eec9f09")],
                1500.0,
                at,
            )
            .await;
        // 900 waiting over 2 workers: 450 per worker against a target of 100.
        w.aws.put_metric(("Shop", "Backlog"), &[], 900.0, at).await;
        w.aws.put_metric(("Shop", "Workers"), &[], 2.0, at).await;
    }
    let record = w.tick("alb-and-math", t0()).await;
    let decision = &record.services[0];
    let arithmetic: Vec<&str> = decision
        .evaluations
        .iter()
        .filter_map(|e| e.tracking.as_ref()?.arithmetic.as_deref())
        .collect();
    assert_eq!(
        arithmetic,
        ["ceil(2 × 1500 / 1000) = 3", "ceil(2 × 450 / 100) = 9"],
        "{}",
        decision.reason
    );
    // Scale out to the highest target.
    assert_eq!(w.desired().await, 9);
}

/// However many services and policies a tick evaluates, it reads CloudWatch
/// once for alarm states and once for metrics, counted at the emulator.
#[tokio::test]
async fn a_tick_reads_every_policy_metric_in_one_batched_call() {
    let region = "me-south-1";
    let emulator = Emulator::shared();
    let config = emulator.sdk_config(region);
    let aws = Aws::new(&config);
    aws.set_clock(t0());
    let services = ["web", "api", "worker"];
    let mut policies = Vec::new();
    for service in services {
        aws.create_service(CLUSTER, service, 4).await;
        aws.wait_for_deployment(CLUSTER, service).await;
        let alarm = format!("{service}-cpu-high");
        aws.service_alarm(
            &alarm,
            (CLUSTER, service),
            "CPUUtilization",
            aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            90.0,
        )
        .await;
        aws.set_alarm_state(
            &alarm,
            90.0,
            aws_sdk_cloudwatch::types::StateValue::Ok,
            50.0,
        )
        .await;
        policies.push(json!({
            "type": "target_tracking", "cluster": CLUSTER, "service": service,
            "metric": "ecs_cpu", "target_value": 60,
            "min_capacity": 1, "max_capacity": 20
        }));
        policies.push(json!({
            "type": "target_tracking", "name": format!("{service}-memory"),
            "cluster": CLUSTER, "service": service,
            "metric": "ecs_memory", "target_value": 70,
            "min_capacity": 1, "max_capacity": 20
        }));
        policies.push(json!({
            "alarm": alarm, "cluster": CLUSTER, "service": service,
            "adjustment_type": "ChangeInCapacity",
            "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
            "min_capacity": 1, "max_capacity": 20
        }));
        for m in 1..=3 {
            aws.put_service_metric(
                (CLUSTER, service),
                "CPUUtilization",
                84.0,
                t0() - TimeDelta::minutes(m) + TimeDelta::seconds(30),
            )
            .await;
        }
    }
    // One alarm in ALARM: its step policy's metric joins the same read.
    aws.set_alarm_state(
        "api-cpu-high",
        90.0,
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        95.0,
    )
    .await;
    let scaler = Scaler::new(
        ScalerConfig::parse(&json!({ "policies": policies }).to_string()).expect("policies"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    emulator.control("DELETE", "calls", &json!({}));
    let mut event = sample_event("scaler/recheck-schedule.json");
    event["id"] = "batched-1".into();
    let record = scaler
        .handle(event, "e2e-request", t0())
        .await
        .expect("tick");
    assert_eq!(record.services.len(), 3);
    let calls = emulator.calls(region);
    assert_eq!(calls.get("DescribeAlarms"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("GetMetricData"), Some(&1), "{calls:?}");
    assert_eq!(
        record.calls,
        ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData"]
    );
    for decision in &record.services {
        // Per decision: DescribeServices, TagResource, UpdateService at most.
        assert!(decision.calls.len() <= 3, "{:?}", decision.calls);
        assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    }
}

/// A world whose policy document is `document` as given.
async fn world_with(region: &str, desired: i32, document: &Value) -> World {
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    // The region's clock at the fixed date: CloudWatch takes datapoints from
    // two weeks back only.
    aws.set_clock(t0());
    aws.create_service(CLUSTER, SERVICE, desired).await;
    aws.wait_for_deployment(CLUSTER, SERVICE).await;
    let scaler = Scaler::new(
        ScalerConfig::parse(&document.to_string()).expect("policy document"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    World { aws, scaler }
}

/// A window opening at 10:00 UTC that moves the count to 5 once.
fn morning_desired_count() -> Value {
    json!({"schedules": [{
        "name": "morning", "cluster": CLUSTER, "service": SERVICE,
        "cron": "0 10 * * *", "time_zone": "UTC", "duration_minutes": 120,
        "desired_count": 5
    }]})
}

impl World {
    async fn operator_sets(&self, desired: i32) {
        self.aws.set_desired_count(CLUSTER, SERVICE, desired).await;
    }

    async fn manual_set(&self, request_id: &str, desired: u32, at: DateTime<Utc>) {
        let mut command = sample_event("scaler/manual-set-desired-count.json");
        command["request_id"] = request_id.into();
        command["desired_count"] = desired.into();
        self.scaler
            .handle(command, "e2e-request", at)
            .await
            .expect("manual command");
    }
}

#[tokio::test]
async fn a_window_opening_moves_the_count_once_however_late_in_its_second_a_tick_runs() {
    let w = world("eu-south-1", 2, morning_desired_count()).await;
    // CPU at 55: neither above 60 nor below 54, so tracking wants the count kept.
    w.cpu_for(55.0, 15, t0() + TimeDelta::minutes(2)).await;
    let opened = w.tick("late-1", t0() + TimeDelta::milliseconds(200)).await;
    assert_eq!(
        opened.services[0].windows[0].opened_at.to_rfc3339(),
        "2026-11-21T10:00:00+00:00"
    );
    assert_eq!(w.desired().await, 5, "{}", opened.services[0].reason);
    // The operator wants 3 inside the window; a tick later in its second keeps it.
    w.operator_sets(3).await;
    let later = w
        .tick(
            "late-2",
            t0() + TimeDelta::minutes(1) + TimeDelta::milliseconds(700),
        )
        .await;
    assert_eq!(
        later.services[0].windows[0].opened_at.to_rfc3339(),
        "2026-11-21T10:00:00+00:00"
    );
    assert_eq!(w.desired().await, 3, "{}", later.services[0].reason);
}

#[tokio::test]
async fn an_opening_is_remembered_when_the_count_was_already_there() {
    let w = world("eu-south-2", 5, morning_desired_count()).await;
    w.cpu_for(55.0, 15, t0() + TimeDelta::minutes(10)).await;
    // Pre-scaled to 5: the opening moves nothing, and is remembered all the same.
    let first = w.tick("pre-1", t0()).await;
    assert_eq!(
        first.services[0].action,
        Action::Held,
        "{}",
        first.services[0].reason
    );
    w.operator_sets(3).await;
    let later = w.tick("pre-2", t0() + TimeDelta::minutes(5)).await;
    assert_eq!(w.desired().await, 3, "{}", later.services[0].reason);
}

#[tokio::test]
async fn a_manual_command_inside_a_window_is_not_undone_by_its_opening() {
    let w = world("ap-south-2", 2, morning_desired_count()).await;
    w.cpu_for(55.0, 15, t0() + TimeDelta::minutes(10)).await;
    // 10:01: an operator sets 3 before any tick saw the 10:00 opening.
    w.manual_set("inside-the-window", 3, t0() - TimeDelta::minutes(2))
        .await;
    assert_eq!(w.desired().await, 3);
    let tick = w.tick("after-manual", t0()).await;
    assert_eq!(w.desired().await, 3, "{}", tick.services[0].reason);
}

#[tokio::test]
async fn a_window_in_the_repeated_hour_of_a_fall_back_opens_once() {
    // 02:30 to 02:40 in Berlin; on 2026-10-25 02:30 happens at 00:30 and 01:30 UTC.
    let night = json!({"schedules": [{
        "name": "night", "cluster": CLUSTER, "service": SERVICE,
        "cron": "30 2 * * *", "time_zone": "Europe/Berlin", "duration_minutes": 10,
        "min_capacity": 5
    }]});
    let w = world("me-central-1", 2, night).await;
    let second_pass = Utc.with_ymd_and_hms(2026, 10, 25, 1, 35, 0).unwrap();
    w.aws.set_clock(second_pass);
    w.cpu_for(55.0, 15, second_pass).await;
    let record = w.tick("second-pass", second_pass).await;
    let decision = &record.services[0];
    assert!(decision.windows.is_empty(), "{:?}", decision.windows);
    assert_eq!(w.desired().await, 2, "{}", decision.reason);
}

/// CPU with scale-in disabled, and memory at 70, both on demo/web.
fn cpu_without_scale_in_and_memory() -> Value {
    json!({"policies": [
        {"type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
         "metric": "ecs_cpu", "target_value": 60, "disable_scale_in": true,
         "min_capacity": 1, "max_capacity": 20},
        {"type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
         "metric": "ecs_memory", "target_value": 70,
         "min_capacity": 1, "max_capacity": 20}
    ]})
}

#[tokio::test]
async fn a_policy_with_scale_in_disabled_takes_no_part_in_the_scale_in_vote() {
    let w = world_with("af-south-1", 8, &cpu_without_scale_in_and_memory()).await;
    for m in 1..=15 {
        let at = t0() - TimeDelta::minutes(m) + TimeDelta::seconds(30);
        // CPU 55: between its thresholds, so it would hold the count.
        w.aws
            .put_service_metric((CLUSTER, SERVICE), "CPUUtilization", 55.0, at)
            .await;
        w.aws
            .put_service_metric((CLUSTER, SERVICE), "MemoryUtilization", 35.0, at)
            .await;
    }
    let record = w.tick("vote", t0()).await;
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    // ceil(8 × 35 / 70) = 4.
    assert_eq!(w.desired().await, 4);
}

#[tokio::test]
async fn a_policy_with_scale_in_disabled_and_no_data_does_not_block_scale_in() {
    let w = world_with("il-central-1", 8, &cpu_without_scale_in_and_memory()).await;
    for m in 1..=15 {
        let at = t0() - TimeDelta::minutes(m) + TimeDelta::seconds(30);
        w.aws
            .put_service_metric((CLUSTER, SERVICE), "MemoryUtilization", 35.0, at)
            .await;
    }
    let record = w.tick("vote-no-data", t0()).await;
    assert_eq!(w.desired().await, 4, "{}", record.services[0].reason);
}

#[test]
fn a_six_field_unix_cron_is_refused_naming_the_field() {
    // AWS's own form with a year is written cron(…): bare, it would be read seconds-first.
    let bare = json!({"schedules": [{
        "cluster": CLUSTER, "service": SERVICE,
        "cron": "0 8 * * MON-FRI *", "duration_minutes": 60, "min_capacity": 2
    }]});
    let err = ScalerConfig::parse(&document(bare)).expect_err("six bare fields");
    assert_eq!(err.field, "schedules[0].cron", "{err}");
}

#[tokio::test]
async fn a_fraction_metric_rounds_like_the_same_ratio_in_percent() {
    let fraction = json!({"policies": [
        {"type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
         "metric": {"namespace": "Shop", "metric_name": "Busy", "statistic": "Average"},
         "target_value": 0.6, "min_capacity": 1, "max_capacity": 20}
    ]});
    let w = world_with("ap-southeast-3", 3, &fraction).await;
    for m in 1..=3 {
        let at = t0() - TimeDelta::minutes(m) + TimeDelta::seconds(30);
        w.aws.put_metric(("Shop", "Busy"), &[], 0.8, at).await;
    }
    let record = w.tick("fraction", t0()).await;
    // 3 tasks at 80% busy against 60%: 3 × 80 / 60 = 4 exactly.
    assert_eq!(w.desired().await, 4, "{}", record.services[0].reason);
}

/// The stretches of `document` (a sample in `events/scaler/windows/`) with a
/// window open, over the week the `preview_bounds` sample asks for, from t0
/// (Saturday 2026-11-21, 10:03 UTC): from, until, min, max.
async fn open_stretches(document: &str) -> Vec<(String, String, u32, u32)> {
    // A preview reads nothing: no service is needed.
    let config = Emulator::shared().sdk_config("eu-central-2");
    let scaler = Scaler::new(
        ScalerConfig::parse(&sample_event(document).to_string()).expect(document),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    let record = scaler
        .handle(
            sample_event("scaler/manual-preview-bounds.json"),
            "e2e-request",
            t0(),
        )
        .await
        .expect("preview");
    let hour = |t: DateTime<Utc>| t.format("%a %d %H:%M").to_string();
    record
        .preview
        .expect("preview")
        .into_iter()
        .filter(|p| !p.windows.is_empty())
        .map(|p| (hour(p.from), hour(p.until), p.min_capacity, p.max_capacity))
        .collect()
}

fn stretch(from: &str, until: &str, min: u32, max: u32) -> (String, String, u32, u32) {
    (from.into(), until.into(), min, max)
}

/// Application Auto Scaling's three schedule forms, one sample each.
#[tokio::test]
async fn each_aws_schedule_form_opens_its_window_when_aws_would() {
    // cron(0 8 ? * MON-FRI *) in Berlin (UTC+1) for 10 hours: 07:00-17:00 UTC on weekdays.
    assert_eq!(
        open_stretches("scaler/windows/aws-cron.json").await,
        ["Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27"].map(|day| stretch(
            &format!("{day} 07:00"),
            &format!("{day} 17:00"),
            6,
            10
        ))
    );
    // at(2026-11-24T09:00:00) in Berlin for 8 hours: once, 08:00-16:00 UTC.
    assert_eq!(
        open_stretches("scaler/windows/at.json").await,
        [stretch("Tue 24 08:00", "Tue 24 16:00", 8, 10)]
    );
    // rate(12 hours) for an hour: at 00:00 and 12:00 UTC, 14 times in the week.
    let rate = open_stretches("scaler/windows/rate.json").await;
    assert_eq!(rate.len(), 14, "{rate:?}");
    assert_eq!(rate[0], stretch("Sat 21 12:00", "Sat 21 13:00", 2, 4));
    assert_eq!(rate[13], stretch("Sat 28 00:00", "Sat 28 01:00", 2, 4));
}

/// docs/scaler.md: a window's min beats the budget ceiling, and the record says so.
#[tokio::test]
async fn a_window_min_beats_the_budget_and_the_record_says_so() {
    // 0.05 an hour pays for 4 tasks (see the_budget_holds_a_scale_out); the window asks for 6.
    let both = json!({
        "services": [{"cluster": CLUSTER, "service": SERVICE, "max_hourly_cost": 0.05}],
        "schedules": [{"name": "morning", "cluster": CLUSTER, "service": SERVICE,
            "cron": "0 10 * * *", "duration_minutes": 120, "min_capacity": 6}]
    });
    let w = world("ca-west-1", 2, both).await;
    w.cpu_for(55.0, 15, t0()).await;
    let record = w.tick("floor-over-budget", t0()).await;
    let decision = &record.services[0];
    assert_eq!(decision.budget.as_ref().map(|b| b.max_tasks), Some(4));
    assert_eq!(w.desired().await, 6, "{}", decision.reason);
    assert!(
        decision.notes.iter().any(|n| n
            == "the budget pays for 4 tasks, below the min 6 the open window morning sets: the min wins"),
        "{:?}",
        decision.notes
    );
}

impl World {
    async fn command(&self, command: Value, at: DateTime<Utc>) -> DecisionRecord {
        let mut full = json!({"cluster": CLUSTER, "service": SERVICE});
        if let (Some(full), Some(command)) = (full.as_object_mut(), command.as_object()) {
            full.extend(command.clone());
        }
        self.scaler
            .handle(full, "e2e-request", at)
            .await
            .expect("command")
    }
}

/// Application Auto Scaling's `SuspendedState`, by a manual command: kept in
/// the service's tags, shown in every record, undone by resume.
#[tokio::test]
async fn a_suspended_scale_out_holds_until_resumed() {
    let w = world("ap-southeast-4", 4, json!({})).await;
    w.cpu_for(84.0, 3, t0()).await;
    let suspend = w
        .command(
            json!({"command": "suspend", "dynamic_scale_out": true, "request_id": "s-1"}),
            t0() - TimeDelta::minutes(1),
        )
        .await;
    assert!(suspend.services[0].suspended.dynamic_scale_out);
    assert!(!suspend.services[0].suspended.dynamic_scale_in);

    let held = w.tick("while-suspended", t0()).await;
    let decision = &held.services[0];
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    assert_eq!(decision.evaluations[0].held_by, Some(Hold::Suspended));
    assert!(
        decision.suspended.dynamic_scale_out,
        "every record shows it"
    );
    assert_eq!(w.desired().await, 4);

    // Resume with no part named resumes everything.
    let resume = w
        .command(json!({"command": "resume", "request_id": "r-1"}), t0())
        .await;
    assert!(
        resume.services[0].suspended.is_none(),
        "{}",
        resume.services[0].reason
    );
    let scaled = w.tick("after-resume", t0() + TimeDelta::seconds(20)).await;
    assert_eq!(w.desired().await, 6, "{}", scaled.services[0].reason);
}

#[tokio::test]
async fn suspending_everything_stops_windows_and_policies_alike() {
    let window = json!({"schedules": [{
        "name": "morning", "cluster": CLUSTER, "service": SERVICE,
        "cron": "0 10 * * *", "duration_minutes": 120, "min_capacity": 8
    }]});
    let w = world("mx-central-1", 2, window).await;
    w.cpu_for(84.0, 3, t0()).await;
    w.command(json!({"command": "suspend", "request_id": "all"}), t0())
        .await;
    let record = w.tick("all-suspended", t0()).await;
    assert_eq!(
        record.services[0].suspended,
        ecs_control::domain::suspension::Suspended::ALL
    );
    assert_eq!(w.desired().await, 2, "{}", record.services[0].reason);
    // Scheduled scaling alone resumed: the window's min applies, the policy still waits.
    w.command(
        json!({"command": "resume", "scheduled": true, "request_id": "sched"}),
        t0(),
    )
    .await;
    let record = w
        .tick("scheduled-back", t0() + TimeDelta::seconds(10))
        .await;
    assert_eq!(w.desired().await, 8, "{}", record.services[0].reason);
}

/// KEDA's fallback, upward only: CPU never arrives; the policy holds for
/// its five minutes, then asks for its floor of 4; when the metric returns,
/// the policy steers again and the blind mark is cleared.
#[tokio::test]
async fn a_metric_outage_falls_back_to_a_floor_and_the_metric_takes_back_over() {
    let document = json!({
        "policies": [{
            "type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
            "metric": "ecs_cpu", "target_value": 60,
            "min_capacity": 1, "max_capacity": 20,
            "fallback": {"after_minutes": 5, "min_count": 4}
        }]
    });
    let w = world_with("ap-southeast-5", 2, &document).await;
    let arn = w.service_arn().await;

    let first = w.tick("blind-0", t0()).await;
    let decision = &first.services[0];
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    assert_eq!(decision.evaluations[0].held_by, Some(Hold::MissingData));
    let said = decision.evaluations[0]
        .fallback
        .as_ref()
        .expect("fallback in the record");
    assert!(!said.applied);
    // The first sighting is remembered with the service, though nothing moved.
    let tags = w.aws.service_tags(&arn).await;
    let mark = tags.get("ecs-scaler:blind").expect("blind mark");
    assert!(mark.ends_with(&format!("={}", t0().timestamp())), "{mark}");

    let waiting = w.tick("blind-3", t0() + TimeDelta::minutes(3)).await;
    assert_eq!(waiting.services[0].action, Action::Held);
    assert_eq!(w.desired().await, 2);

    let fell_back = w.tick("blind-5", t0() + TimeDelta::minutes(5)).await;
    let decision = &fell_back.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert!(decision.reason.contains("fallback"), "{}", decision.reason);
    assert!(decision.evaluations[0]
        .fallback
        .as_ref()
        .is_some_and(|f| f.applied));
    assert_eq!(w.desired().await, 4);

    // At the floor: held by the fallback, never in on missing data.
    let held = w.tick("blind-7", t0() + TimeDelta::minutes(7)).await;
    assert_eq!(
        held.services[0].evaluations[0].held_by,
        Some(Hold::Fallback)
    );
    assert_eq!(w.desired().await, 4);

    // The metric returns, low: the policy steers again and scales in.
    let back = t0() + TimeDelta::minutes(30);
    w.cpu_for(30.0, 15, back).await;
    let seeing = w.tick("seeing", back).await;
    let decision = &seeing.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert!(decision.evaluations[0].fallback.is_none());
    assert_eq!(w.desired().await, 2);
    let tags = w.aws.service_tags(&arn).await;
    assert_eq!(
        tags.get("ecs-scaler:blind")
            .map(String::as_str)
            .unwrap_or_default(),
        ""
    );
}

/// HPA's scale-in behaviour: CPU at half the target asks for half the
/// tasks, but the service first waits out its 3-minute stabilisation window,
/// then loses at most 2 tasks every 5 minutes.
#[tokio::test]
async fn scale_in_waits_out_the_stabilisation_window_and_keeps_to_its_rate() {
    let behaviour = json!({
        "policies": [{
            "type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
            "metric": "ecs_cpu", "target_value": 60, "scale_in_datapoints": 3,
            "scale_in_cooldown_seconds": 0,
            "min_capacity": 1, "max_capacity": 20
        }],
        "services": [{
            "cluster": CLUSTER, "service": SERVICE,
            "scale_in_stabilisation_minutes": 3,
            "scale_in_rate": {"tasks": 2, "per_minutes": 5}
        }]
    });
    let w = world("ap-southeast-7", 10, behaviour).await;
    w.cpu_for(30.0, 12, t0() + TimeDelta::minutes(8)).await;
    let arn = w.service_arn().await;

    let first = w.tick("calm-0", t0()).await;
    let decision = &first.services[0];
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    assert!(
        decision.reason.contains("stabilisation"),
        "{}",
        decision.reason
    );
    assert_eq!(w.desired().await, 10);
    // The run of wanting is remembered with the service.
    let tags = w.aws.service_tags(&arn).await;
    let kept = tags.get("ecs-scaler:scale-in").expect("scale-in memory");
    assert!(
        kept.starts_with(&format!("s{}", t0().timestamp())),
        "{kept}"
    );

    // Three minutes of wanting 5: the highest wanted is 5, the rate lets 2 go.
    let stabilised = w.tick("calm-3", t0() + TimeDelta::minutes(3)).await;
    let decision = &stabilised.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert!(
        decision.reason.contains("the rate allows"),
        "{}",
        decision.reason
    );
    assert_eq!(w.desired().await, 8);

    // The rate's two are used for this period.
    let rated = w.tick("calm-4", t0() + TimeDelta::minutes(4)).await;
    assert_eq!(
        rated.services[0].action,
        Action::Held,
        "{}",
        rated.services[0].reason
    );
    assert!(
        matches!(
            rated.services[0].scale_in,
            Some(ScaleInVerdict::Held {
                hold: Hold::ScaleInRate,
                ..
            })
        ),
        "{:?}",
        rated.services[0].scale_in
    );
    assert_eq!(w.desired().await, 8);

    // The minutes after keep wanting 4, and are held by the rate.
    for minute in 5..8 {
        let held = w
            .tick(&format!("calm-{minute}"), t0() + TimeDelta::minutes(minute))
            .await;
        assert_eq!(
            held.services[0].action,
            Action::Held,
            "{}",
            held.services[0].reason
        );
    }
    // A new period: 8 at 30% wants 4; two more go.
    let next = w.tick("calm-8", t0() + TimeDelta::minutes(8)).await;
    assert_eq!(
        next.services[0].action,
        Action::Scaled,
        "{}",
        next.services[0].reason
    );
    assert_eq!(w.desired().await, 6);
}

/// Scale-in behaviour limits what a policy removes, not a return within
/// bounds: a window's max of 6 brings 10 tasks down to 6 while the policy's
/// wish for 5 waits out the stabilisation window.
#[tokio::test]
async fn a_stabilising_scale_in_does_not_hold_a_count_above_the_max() {
    let document = json!({
        "policies": [{
            "type": "target_tracking", "cluster": CLUSTER, "service": SERVICE,
            "metric": "ecs_cpu", "target_value": 60, "scale_in_datapoints": 3,
            "scale_in_cooldown_seconds": 0,
            "min_capacity": 1, "max_capacity": 20
        }],
        "schedules": [{
            "name": "quiet", "cluster": CLUSTER, "service": SERVICE,
            "cron": "0 10 * * *", "time_zone": "UTC", "duration_minutes": 120,
            "max_capacity": 6
        }],
        "services": [{
            "cluster": CLUSTER, "service": SERVICE,
            "scale_in_stabilisation_minutes": 3
        }]
    });
    let w = world_with("ap-east-2", 10, &document).await;
    w.cpu_for(30.0, 6, t0() + TimeDelta::minutes(3)).await;
    let record = w.tick("above-max", t0()).await;
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(w.desired().await, 6, "{}", decision.reason);
    assert_eq!(
        decision.evaluations[0].held_by,
        Some(Hold::ScaleInStabilising),
        "{:?}",
        decision.evaluations[0]
    );
    // Three minutes of wanting 5 (ceil(6 × 30 / 60) = 3 now, 5 before): to 5.
    let later = w.tick("stabilised", t0() + TimeDelta::minutes(3)).await;
    assert_eq!(
        later.services[0].action,
        Action::Scaled,
        "{}",
        later.services[0].reason
    );
    assert_eq!(w.desired().await, 5);
}
