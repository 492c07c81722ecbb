//! CloudWatch against the clock: alarm evaluation, TreatMissingData, composites, alarm events, PutMetricData limits.
//!
//! CloudWatch evaluates an alarm once a minute, on the minute, over its
//! evaluation range ending at that instant, not when a datapoint arrives
//! (CloudWatch User Guide, "Using Amazon CloudWatch alarms": "How alarm state
//! is evaluated when data is missing"). These tests move the emulator's clock
//! for their region; tests sharing a region take turns (`Turn`).

use super::*;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::DateTime;
use e2e::emulator_clock::minute_of;
use std::sync::atomic::{AtomicBool, Ordering};

/// Alarm evaluation, M of N, TreatMissingData, data that stops, time windows.
const EVALUATION: &str = "ap-southeast-1";
/// Composite alarms, actions suppressors and alarm events.
const COMPOSITES: &str = "ap-southeast-2";
/// PutMetricData limits.
const LIMITS: &str = "ap-northeast-2";

static TURNS: [AtomicBool; 3] = [
    AtomicBool::new(false),
    AtomicBool::new(false),
    AtomicBool::new(false),
];

/// One test at a time in a region: a test moving its region's clock would
/// evaluate another test's alarms at instants that test did not choose.
struct Turn(&'static AtomicBool);

impl Turn {
    async fn take(region: &str) -> Self {
        let index = [EVALUATION, COMPOSITES, LIMITS]
            .iter()
            .position(|r| *r == region)
            .expect("one of this file's regions");
        let flag = &TURNS[index];
        while flag
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Self(flag)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

const NAMESPACE: &str = "Clock";

fn at_millis(at: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(at.timestamp_millis())
}

/// A one-minute alarm on `Clock/<metric>` above 50: `periods` evaluation
/// periods, `needed` datapoints to alarm, missing data treated as `missing`.
async fn alarm(aws: &Aws, name: &str, metric: &str, (needed, periods): (i32, i32), missing: &str) {
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace(NAMESPACE)
        .metric_name(metric)
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(periods)
        .datapoints_to_alarm(needed)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data(missing)
        .send()
        .await
        .expect("put_metric_alarm");
}

/// Puts the region's clock one second past the next minute boundary and
/// returns that boundary: the test's steps then stay within one minute's phase.
fn fresh_minute(aws: &Aws) -> DateTime<Utc> {
    let next = minute_of(aws.clock_now()) + TimeDelta::minutes(1);
    aws.set_clock(next + TimeDelta::seconds(1));
    next
}

async fn point(aws: &Aws, metric: &str, value: f64, at: DateTime<Utc>) {
    aws.put_metric((NAMESPACE, metric), &[], value, at).await;
}

async fn state(aws: &Aws, name: &str) -> String {
    aws.alarm_state(name).await.0
}

async fn composite_state(aws: &Aws, name: &str) -> (String, Option<String>) {
    let out = aws
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("describe_alarms");
    let alarm = out.composite_alarms().first().expect("composite alarm");
    (
        alarm
            .state_value()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        alarm
            .actions_suppressed_by()
            .map(|s| s.as_str().to_string()),
    )
}

async fn force(aws: &Aws, name: &str, state: StateValue) {
    aws.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("forced by the test")
        .send()
        .await
        .expect("set_alarm_state");
}

#[tokio::test]
async fn an_alarm_changes_state_on_the_clock_not_when_data_arrives() {
    let _turn = Turn::take(EVALUATION).await;
    let aws = aws(EVALUATION);
    alarm(&aws, "arrival", "Arrival", (1, 1), "missing").await;
    let minute = fresh_minute(&aws);
    point(&aws, "Arrival", 90.0, minute - TimeDelta::seconds(30)).await;
    // The datapoint is stored; nothing is evaluated until the next instant.
    assert_eq!(state(&aws, "arrival").await, "INSUFFICIENT_DATA");
    aws.advance_clock(60);
    let (value, reason) = aws.alarm_state("arrival").await;
    assert_eq!(value, "ALARM");
    let data: serde_json::Value = serde_json::from_str(&reason).expect("reason data");
    assert_eq!(data["evaluatedDatapoints"][0]["value"], 90.0);
    assert_eq!(data["period"], 60);
}

#[tokio::test]
async fn m_out_of_n_counts_the_breaching_datapoints_of_the_last_n() {
    let _turn = Turn::take(EVALUATION).await;
    let aws = aws(EVALUATION);
    alarm(&aws, "two-of-three", "MofN", (2, 3), "missing").await;
    alarm(&aws, "three-of-three", "MofN", (3, 3), "missing").await;
    let minute = fresh_minute(&aws);
    // X 0 X over the three minutes before `minute`.
    for (back, value) in [(3, 90.0), (2, 10.0), (1, 95.0)] {
        point(
            &aws,
            "MofN",
            value,
            minute - TimeDelta::seconds(60 * back - 30),
        )
        .await;
    }
    Emulator::shared().evaluate_alarms(EVALUATION);
    assert_eq!(state(&aws, "two-of-three").await, "ALARM");
    assert_eq!(state(&aws, "three-of-three").await, "OK");
    // A minute later the oldest breach has left the last three: 0 X 0.
    point(&aws, "MofN", 20.0, minute + TimeDelta::seconds(30)).await;
    aws.advance_clock(60);
    assert_eq!(state(&aws, "two-of-three").await, "OK");
    assert_eq!(state(&aws, "three-of-three").await, "OK");
}

/// The documented table for 3 out of 3 with 5 datapoints retrieved
/// (leftmost oldest; 0 not breaching, X breaching, - missing).
#[tokio::test]
async fn treat_missing_data_fills_the_evaluation_range_as_documented() {
    let _turn = Turn::take(EVALUATION).await;
    let aws = aws(EVALUATION);
    let treatments = ["missing", "ignore", "breaching", "notBreaching"];
    // (metric, datapoints back from the instant, expected per treatment)
    let rows = [
        (
            "AllMissing",
            vec![],
            ["INSUFFICIENT_DATA", "ALARM", "ALARM", "OK"],
        ),
        (
            "NewestBreaching",
            vec![(1, 90.0)],
            ["INSUFFICIENT_DATA", "OK", "ALARM", "OK"],
        ),
        ("OldestFine", vec![(5, 10.0)], ["OK", "OK", "OK", "OK"]),
    ];
    for (metric, _, _) in &rows {
        for treat in treatments {
            alarm(&aws, &format!("{metric}-{treat}"), metric, (3, 3), treat).await;
        }
    }
    // `ignore` keeps the state it has: ALARM in the first row, OK in the second.
    force(&aws, "AllMissing-ignore", StateValue::Alarm).await;
    force(&aws, "NewestBreaching-ignore", StateValue::Ok).await;
    let minute = fresh_minute(&aws);
    for (metric, points, _) in &rows {
        for (back, value) in points {
            point(
                &aws,
                metric,
                *value,
                minute - TimeDelta::seconds(60 * back - 30),
            )
            .await;
        }
    }
    Emulator::shared().evaluate_alarms(EVALUATION);
    for (metric, _, expected) in &rows {
        for (treat, want) in treatments.iter().zip(expected) {
            assert_eq!(
                state(&aws, &format!("{metric}-{treat}")).await,
                *want,
                "{metric} treated as {treat}"
            );
        }
    }
}

#[tokio::test]
async fn an_alarm_whose_data_stops_goes_where_treat_missing_data_says() {
    let _turn = Turn::take(EVALUATION).await;
    let aws = aws(EVALUATION);
    let treatments = [
        ("missing", "INSUFFICIENT_DATA"),
        ("ignore", "OK"),
        ("breaching", "ALARM"),
        ("notBreaching", "OK"),
    ];
    for (treat, _) in treatments {
        alarm(&aws, &format!("stops-{treat}"), "Stops", (1, 1), treat).await;
    }
    let minute = fresh_minute(&aws);
    point(&aws, "Stops", 10.0, minute - TimeDelta::seconds(30)).await;
    Emulator::shared().evaluate_alarms(EVALUATION);
    for (treat, _) in treatments {
        assert_eq!(
            state(&aws, &format!("stops-{treat}")).await,
            "OK",
            "{treat}"
        );
    }
    // The evaluation range (1 period and two more) still holds the last
    // datapoint two minutes on; at the third it is gone.
    aws.advance_clock(120);
    assert_eq!(state(&aws, "stops-missing").await, "OK");
    assert_eq!(state(&aws, "stops-breaching").await, "OK");
    aws.advance_clock(60);
    for (treat, expected) in treatments {
        assert_eq!(
            state(&aws, &format!("stops-{treat}")).await,
            expected,
            "{treat}"
        );
    }
}

#[tokio::test]
async fn datapoints_in_the_future_or_older_than_the_evaluation_range_do_not_count() {
    let _turn = Turn::take(EVALUATION).await;
    let aws = aws(EVALUATION);
    alarm(&aws, "windowed", "Windowed", (1, 1), "missing").await;
    let minute = fresh_minute(&aws);
    // Ten minutes back is outside a one-period alarm's range of three;
    // half an hour ahead is accepted (two hours are) but not yet evaluated.
    point(&aws, "Windowed", 90.0, minute - TimeDelta::minutes(10)).await;
    point(
        &aws,
        "Windowed",
        95.0,
        minute + TimeDelta::seconds(30 * 60 + 30),
    )
    .await;
    Emulator::shared().evaluate_alarms(EVALUATION);
    let (value, reason) = aws.alarm_state("windowed").await;
    assert_eq!(value, "INSUFFICIENT_DATA", "{reason}");
    // Once the clock passes it, the future datapoint is evaluated.
    aws.advance_clock(31 * 60);
    let (value, reason) = aws.alarm_state("windowed").await;
    assert_eq!(value, "ALARM");
    let data: serde_json::Value = serde_json::from_str(&reason).expect("reason data");
    assert_eq!(data["evaluatedDatapoints"][0]["value"], 95.0);
}

#[tokio::test]
async fn a_composite_alarm_naming_an_alarm_that_does_not_exist_is_refused() {
    let _turn = Turn::take(COMPOSITES).await;
    let aws = aws(COMPOSITES);
    alarm(&aws, "known", "Known", (1, 1), "missing").await;
    let err = aws
        .cloudwatch
        .put_composite_alarm()
        .alarm_name("refused")
        .alarm_rule(r#"ALARM("known") OR ALARM("unknown")"#)
        .send()
        .await
        .expect_err("an unknown alarm in the rule");
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
    assert!(
        err.message().unwrap_or_default().contains("unknown"),
        "{err:?}"
    );
    let listed = aws
        .cloudwatch
        .describe_alarms()
        .alarm_names("refused")
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("describe_alarms");
    assert!(listed.composite_alarms().is_empty());
}

/// "For a composite alarm, this initial time after creation is the only time
/// that the alarm can be in INSUFFICIENT_DATA state" (PutCompositeAlarm).
#[tokio::test]
async fn a_composite_alarm_is_insufficient_data_only_until_its_first_evaluation() {
    let _turn = Turn::take(COMPOSITES).await;
    let aws = aws(COMPOSITES);
    alarm(&aws, "quiet-child", "Quiet", (1, 1), "missing").await;
    for (name, rule) in [
        ("quiet-any", r#"ALARM("quiet-child")"#),
        ("quiet-unknown", r#"INSUFFICIENT_DATA("quiet-child")"#),
    ] {
        aws.cloudwatch
            .put_composite_alarm()
            .alarm_name(name)
            .alarm_rule(rule)
            .send()
            .await
            .expect("put_composite_alarm");
        assert_eq!(composite_state(&aws, name).await.0, "INSUFFICIENT_DATA");
    }
    aws.advance_clock(60);
    // The child has no data (INSUFFICIENT_DATA); its composites are OK or ALARM.
    assert_eq!(state(&aws, "quiet-child").await, "INSUFFICIENT_DATA");
    assert_eq!(composite_state(&aws, "quiet-any").await.0, "OK");
    assert_eq!(composite_state(&aws, "quiet-unknown").await.0, "ALARM");
    aws.advance_clock(120);
    assert_eq!(composite_state(&aws, "quiet-any").await.0, "OK");
}

/// ActionsSuppressor: actions wait while the suppressor is in ALARM, for up
/// to ActionsSuppressorWaitPeriod for it to go there, and for
/// ActionsSuppressorExtensionPeriod after it leaves; the state changes anyway.
#[tokio::test]
async fn an_actions_suppressor_holds_a_composite_alarms_actions_not_its_state() {
    let _turn = Turn::take(COMPOSITES).await;
    let emulator = Emulator::shared();
    let aws = aws(COMPOSITES);
    // Children without data keep what SetAlarmState gives them (`ignore`).
    alarm(&aws, "deploying", "Deploying", (1, 1), "ignore").await;
    alarm(&aws, "errors", "Errors", (1, 1), "ignore").await;
    force(&aws, "deploying", StateValue::Alarm).await;
    force(&aws, "errors", StateValue::Ok).await;
    let topic = "arn:aws:sns:ap-southeast-2:123456789012:pager";
    aws.cloudwatch
        .put_composite_alarm()
        .alarm_name("page")
        .alarm_rule(r#"ALARM("errors")"#)
        .alarm_actions(topic)
        .actions_suppressor("deploying")
        .actions_suppressor_wait_period(120)
        .actions_suppressor_extension_period(180)
        .send()
        .await
        .expect("put_composite_alarm");
    aws.advance_clock(60);
    assert_eq!(composite_state(&aws, "page").await.0, "OK");
    let paged = || {
        emulator
            .alarm_actions(COMPOSITES)
            .into_iter()
            .filter(|a| a["alarm"] == "page" && a["state"] == "ALARM")
            .map(|a| a["outcome"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };

    // The suppressor is in ALARM: the state changes, the page does not go.
    force(&aws, "errors", StateValue::Alarm).await;
    assert_eq!(
        composite_state(&aws, "page").await,
        ("ALARM".into(), Some("Alarm".into()))
    );
    assert_eq!(paged(), ["suppressed"]);
    // It leaves ALARM: the extension period (180 s) holds the page...
    force(&aws, "deploying", StateValue::Ok).await;
    assert_eq!(
        composite_state(&aws, "page").await.1.as_deref(),
        Some("ExtensionPeriod")
    );
    aws.advance_clock(120);
    assert_eq!(paged(), ["suppressed"]);
    // ...then it goes.
    aws.advance_clock(120);
    assert_eq!(paged(), ["suppressed", "executed"]);
    assert_eq!(composite_state(&aws, "page").await.1, None);

    // The suppressor is not in ALARM: the wait period (120 s) holds the page,
    // and the suppressor going into ALARM within it suppresses it.
    force(&aws, "errors", StateValue::Ok).await;
    force(&aws, "errors", StateValue::Alarm).await;
    assert_eq!(
        composite_state(&aws, "page").await,
        ("ALARM".into(), Some("WaitPeriod".into()))
    );
    aws.advance_clock(60);
    force(&aws, "deploying", StateValue::Alarm).await;
    assert_eq!(paged(), ["suppressed", "executed", "suppressed"]);
    assert_eq!(
        composite_state(&aws, "page").await.1.as_deref(),
        Some("Alarm")
    );
}

#[tokio::test]
async fn every_alarm_state_change_is_an_event_with_its_previous_state() {
    let _turn = Turn::take(COMPOSITES).await;
    let emulator = Emulator::shared();
    let aws = aws(COMPOSITES);
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name("evented")
        .alarm_description("CPU too high")
        .namespace(NAMESPACE)
        .metric_name("Evented")
        .dimensions(Dimension::builder().name("Service").value("web").build())
        .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put_metric_alarm");
    aws.cloudwatch
        .put_composite_alarm()
        .alarm_name("evented-composite")
        .alarm_rule(r#"ALARM("evented")"#)
        .send()
        .await
        .expect("put_composite_alarm");
    let minute = fresh_minute(&aws);
    aws.put_metric(
        (NAMESPACE, "Evented"),
        &[("Service", "web")],
        90.0,
        minute - TimeDelta::seconds(30),
    )
    .await;
    aws.advance_clock(60);
    // Forcing the state it has sends nothing; forcing another one does.
    force(&aws, "evented", StateValue::Alarm).await;
    force(&aws, "evented", StateValue::Ok).await;
    let events = |name: &str| {
        emulator
            .events("aws.cloudwatch", COMPOSITES)
            .into_iter()
            .filter(|e| e["detail"]["alarmName"] == name)
            .collect::<Vec<_>>()
    };
    let metric = events("evented");
    let transitions: Vec<(&str, &str)> = metric
        .iter()
        .map(|e| {
            (
                e["detail"]["previousState"]["value"]
                    .as_str()
                    .unwrap_or_default(),
                e["detail"]["state"]["value"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "OK")]
    );
    let first = &metric[0];
    assert_eq!(first["detail-type"], "CloudWatch Alarm State Change");
    assert_eq!(first["source"], "aws.cloudwatch");
    assert_eq!(
        first["resources"][0],
        "arn:aws:cloudwatch:ap-southeast-2:123456789012:alarm:evented"
    );
    let detail = &first["detail"];
    assert_eq!(
        detail["previousState"]["reason"],
        "Unchecked: Initial alarm creation"
    );
    assert!(detail["state"]["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Threshold Crossed: 1 out of the last 1 datapoints"));
    let reason_data: serde_json::Value = serde_json::from_str(
        detail["state"]["reasonData"]
            .as_str()
            .expect("a JSON string"),
    )
    .expect("reason data");
    assert_eq!(reason_data["recentDatapoints"][0], 90.0);
    let timestamp = detail["state"]["timestamp"].as_str().unwrap_or_default();
    assert!(
        DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.3f%z").is_ok(),
        "{timestamp}"
    );
    let stat = &detail["configuration"]["metrics"][0]["metricStat"];
    assert_eq!(detail["configuration"]["description"], "CPU too high");
    assert_eq!(stat["metric"]["name"], "Evented");
    assert_eq!(stat["metric"]["namespace"], NAMESPACE);
    assert_eq!(stat["metric"]["dimensions"]["Service"], "web");
    assert_eq!(stat["period"], 60);
    assert_eq!(stat["stat"], "Maximum");
    // SetAlarmState's change carries its reason.
    assert_eq!(metric[1]["detail"]["state"]["reason"], "forced by the test");

    let composite = events("evented-composite");
    let values: Vec<&str> = composite
        .iter()
        .map(|e| e["detail"]["state"]["value"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(values, ["ALARM", "OK"]);
    assert_eq!(
        composite[0]["detail"]["configuration"]["alarmRule"],
        r#"ALARM("evented")"#
    );
    assert_eq!(
        composite[0]["detail"]["previousState"]["value"],
        "INSUFFICIENT_DATA"
    );
}

fn datum(name: &str, dimensions: usize, at: DateTime<Utc>) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .set_dimensions(Some(
            (0..dimensions)
                .map(|i| {
                    Dimension::builder()
                        .name(format!("D{i}"))
                        .value("v")
                        .build()
                })
                .collect(),
        ))
        .value(1.0)
        .timestamp(at_millis(at))
        .build()
}

async fn put(aws: &Aws, data: Vec<MetricDatum>) -> Result<(), String> {
    aws.cloudwatch
        .put_metric_data()
        .namespace(NAMESPACE)
        .set_metric_data(Some(data))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{}: {}",
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default()
            )
        })
}

#[tokio::test]
async fn put_metric_data_takes_at_most_1000_datums() {
    let _turn = Turn::take(LIMITS).await;
    let aws = aws(LIMITS);
    let now = aws.clock_now();
    let many = |n: usize| (0..n).map(|i| datum(&format!("M{i}"), 1, now)).collect();
    put(&aws, many(1000)).await.expect("1000 datums");
    let err = put(&aws, many(1001)).await.expect_err("1001 datums");
    assert!(err.starts_with("InvalidParameterValue"), "{err}");
}

#[tokio::test]
async fn put_metric_data_takes_at_most_30_dimensions_a_datum() {
    let _turn = Turn::take(LIMITS).await;
    let aws = aws(LIMITS);
    let now = aws.clock_now();
    put(&aws, vec![datum("Wide", 30, now)]).await.expect("30");
    let err = put(&aws, vec![datum("Wide", 31, now)])
        .await
        .expect_err("31 dimensions");
    assert!(err.starts_with("InvalidParameterValue"), "{err}");
}

/// "Each PutMetricData request is limited to 1 MB in size for HTTP POST
/// requests": here sent uncompressed, so the body is what the limit counts.
#[tokio::test]
async fn put_metric_data_refuses_a_request_over_1_mb() {
    let _turn = Turn::take(LIMITS).await;
    let config = aws_sdk_cloudwatch::config::Builder::from(&Emulator::shared().sdk_config(LIMITS))
        .disable_request_compression(true)
        .build();
    let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(config);
    let now = aws(LIMITS).clock_now();
    let value = "v".repeat(1000);
    let data = |count: usize| -> Vec<MetricDatum> {
        (0..count)
            .map(|i| {
                MetricDatum::builder()
                    .metric_name(format!("Big{i}"))
                    .dimensions(Dimension::builder().name("A").value(&value).build())
                    .dimensions(Dimension::builder().name("B").value(&value).build())
                    .value(1.0)
                    .timestamp(at_millis(now))
                    .build()
            })
            .collect()
    };
    // 400 datums of 2 KB (about 0.8 MB) pass; 600 (about 1.2 MB) do not.
    cloudwatch
        .put_metric_data()
        .namespace(NAMESPACE)
        .set_metric_data(Some(data(400)))
        .send()
        .await
        .expect("under 1 MB");
    let err = cloudwatch
        .put_metric_data()
        .namespace(NAMESPACE)
        .set_metric_data(Some(data(600)))
        .send()
        .await
        .expect_err("over 1 MB");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(413), "{err:?}");
}

#[tokio::test]
async fn put_metric_data_takes_time_stamps_from_two_weeks_back_to_two_hours_ahead() {
    let _turn = Turn::take(LIMITS).await;
    let aws = aws(LIMITS);
    let now = aws.clock_now();
    for fine in [now - TimeDelta::days(13), now + TimeDelta::minutes(110)] {
        put(&aws, vec![datum("Dated", 1, fine)])
            .await
            .unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
    for refused in [now - TimeDelta::days(15), now + TimeDelta::hours(3)] {
        let err = put(&aws, vec![datum("Dated", 1, refused)])
            .await
            .expect_err("outside the window");
        assert!(err.starts_with("InvalidParameterValue"), "{refused}: {err}");
    }
}
