//! Predictive policies against fakes of the scaler's ports: three weeks of
//! hourly history with a daily peak, and the ticks around the peak.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control::config::ScalerConfig;
use ecs_control::invocation::InvocationError;
use scaler::handler::{controller_metrics, Action, DecisionRecord, Scaler};
use serde_json::{json, Value};

mod fakes;
use fakes::*;

/// Midnight, a Monday, three weeks after the history starts.
fn today() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap()
}

fn at(hour: i64, minute: i64) -> DateTime<Utc> {
    today() + TimeDelta::hours(hour) + TimeDelta::minutes(minute)
}

/// 1,000 requests an hour from 12:00 to 14:00 every day, 200 otherwise:
/// 7 tasks at the peak (150 a task), 2 outside it.
fn daily_peak(alarms: &FakeAlarms) {
    for h in 0..21 * 24 {
        let start = today() - TimeDelta::days(21) + TimeDelta::hours(h);
        let hour = h % 24;
        let load = if (12..14).contains(&hour) {
            1000.0
        } else {
            200.0
        };
        alarms.put("Requests", start, load);
    }
}

fn document(mode: &str, services: Value) -> String {
    json!({
        "policies": [{
            "type": "predictive", "cluster": "demo", "service": "web", "name": "requests",
            "metric": {"namespace": "App", "metric_name": "Requests", "statistic": "Sum"},
            "load_per_task": 150, "mode": mode,
            "min_capacity": 1, "max_capacity": 20
        }],
        "services": services
    })
    .to_string()
}

fn scaler_with(mode: &str, services: Value, desired: u32) -> Scaler<FakeEcs, FakeAlarms> {
    let alarms = FakeAlarms::default();
    daily_peak(&alarms);
    Scaler::new(
        ScalerConfig::parse(&document(mode, services)).expect("document"),
        FakeEcs::with_service(web(), desired),
        alarms,
        false,
    )
}

fn tick_event(id: &str) -> Value {
    let mut event = sample("recheck-schedule");
    event["id"] = id.into();
    event
}

async fn tick(s: &Scaler<FakeEcs, FakeAlarms>, when: DateTime<Utc>) -> DecisionRecord {
    s.handle(tick_event(&when.to_rfc3339()), "r", when)
        .await
        .expect("tick")
}

fn history_reads(record: &DecisionRecord) -> usize {
    record
        .calls
        .iter()
        .chain(record.services.iter().flat_map(|d| &d.calls))
        .filter(|c| **c == "cloudwatch:GetMetricData")
        .count()
}

#[tokio::test]
async fn forecast_and_scale_raises_the_count_a_buffer_before_the_peak() {
    let s = scaler_with("forecast_and_scale", json!([]), 2);
    // 11:54: the buffer (5 minutes) reaches 11:59, still the quiet hour.
    let record = tick(&s, at(11, 54)).await;
    let decision = &record.services[0];
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    let forecast = &decision.forecasts[0];
    assert_eq!(forecast.capacity, 2, "{}", forecast.arithmetic);
    assert_eq!(forecast.interval.starts_at, at(11, 0));
    assert_eq!(forecast.history.datapoints, 14 * 24);
    assert_eq!(forecast.history.seasonality, vec!["daily", "weekly"]);
    let mape = forecast.backtest.mape_percent.expect("a week to measure");
    assert!(mape < 10.0, "MAPE {mape}");
    assert_eq!(s.ports().0.desired(&web()), 2);

    // 11:55: the buffer reaches the peak hour; the min rises and the count with it.
    let record = tick(&s, at(11, 55)).await;
    let decision = &record.services[0];
    let forecast = &decision.forecasts[0];
    assert_eq!(forecast.interval.starts_at, at(12, 0));
    assert_eq!(forecast.capacity, 7, "{}", forecast.arithmetic);
    assert!(forecast.applied);
    assert_eq!(forecast.bounds_after.min, 7);
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(s.ports().0.desired(&web()), 7);
    // The forecast was made once, at 11:54, and kept for the hour.
    assert_eq!(history_reads(&record), 0);
    assert!(record.forecasts_made.is_empty());

    // After the peak the min falls back; predictive scaling never scales in.
    let record = tick(&s, at(14, 30)).await;
    let decision = &record.services[0];
    assert_eq!(decision.forecasts[0].capacity, 2);
    assert_eq!(decision.forecasts[0].bounds_after.min, 2);
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    assert_eq!(s.ports().0.desired(&web()), 7);
    // An hour on, the forecast was made again from fresh history.
    assert_eq!(history_reads(&record), 1);
    assert_eq!(record.forecasts_made.len(), 1);
}

#[tokio::test]
async fn forecast_only_records_the_capacity_and_changes_nothing() {
    let s = scaler_with("forecast_only", json!([]), 2);
    let record = tick(&s, at(11, 56)).await;
    let decision = &record.services[0];
    let forecast = &decision.forecasts[0];
    assert_eq!(forecast.capacity, 7);
    assert!(!forecast.applied);
    assert_eq!(forecast.bounds_after, forecast.bounds_before);
    assert!(forecast.note.starts_with("forecast_only: 7 tasks recorded"));
    assert_eq!(decision.action, Action::Held);
    assert_eq!(s.ports().0.desired(&web()), 2);
    assert!(
        s.ports().0.writes().is_empty(),
        "{:?}",
        s.ports().0.writes()
    );
}

#[tokio::test]
async fn the_pace_still_applies_to_what_the_forecast_raises() {
    let s = scaler_with(
        "forecast_and_scale",
        json!([{"cluster": "demo", "service": "web", "max_tasks_added_per_minute": 2}]),
        2,
    );
    tick(&s, at(11, 56)).await;
    assert_eq!(s.ports().0.desired(&web()), 4);
    tick(&s, at(11, 57)).await;
    assert_eq!(s.ports().0.desired(&web()), 6);
    tick(&s, at(11, 58)).await;
    assert_eq!(s.ports().0.desired(&web()), 7);
}

#[tokio::test]
async fn scheduled_scaling_suspended_records_the_forecast_without_applying_it() {
    let s = scaler_with("forecast_and_scale", json!([]), 2);
    let suspend =
        json!({"command": "suspend", "cluster": "demo", "service": "web", "scheduled": true});
    s.handle(suspend, "suspend-1", at(11, 50))
        .await
        .expect("suspend");
    let record = tick(&s, at(11, 56)).await;
    let forecast = &record.services[0].forecasts[0];
    assert_eq!(forecast.capacity, 7);
    assert!(!forecast.applied);
    assert!(
        forecast.note.starts_with("scheduled scaling is suspended"),
        "{}",
        forecast.note
    );
    assert_eq!(s.ports().0.desired(&web()), 2);
}

#[tokio::test]
async fn a_failed_history_read_is_noted_and_tried_again_by_the_next_invocation() {
    let s = scaler_with("forecast_and_scale", json!([]), 2);
    *s.ports().1.metric_reads_fail.lock().unwrap() = true;
    let record = tick(&s, at(11, 56)).await;
    let decision = &record.services[0];
    assert!(decision.forecasts.is_empty());
    assert!(
        decision
            .notes
            .iter()
            .any(|n| n.starts_with("requests: no forecast: its history could not be read")),
        "{:?}",
        decision.notes
    );
    // Tried once in the invocation, not again per service.
    assert_eq!(history_reads(&record), 1);
    *s.ports().1.metric_reads_fail.lock().unwrap() = false;
    let record = tick(&s, at(11, 57)).await;
    assert_eq!(history_reads(&record), 1);
    assert_eq!(record.services[0].forecasts[0].capacity, 7);
    assert_eq!(s.ports().0.desired(&web()), 7);
}

#[tokio::test]
async fn too_little_history_makes_no_forecast_and_says_how_much_there_was() {
    let alarms = FakeAlarms::default();
    for h in 0..3 {
        alarms.put("Requests", at(8 + h, 0), 500.0);
    }
    let s = Scaler::new(
        ScalerConfig::parse(&document("forecast_and_scale", json!([]))).unwrap(),
        FakeEcs::with_service(web(), 2),
        alarms,
        false,
    );
    let record = tick(&s, at(11, 56)).await;
    assert!(
        record.services[0]
            .notes
            .iter()
            .any(|n| n.contains("3 datapoints of history; a forecast needs at least 6")),
        "{:?}",
        record.services[0].notes
    );
    let made = serde_json::to_value(&record.forecasts_made).unwrap();
    assert_eq!(made[0]["outcome"]["kind"], "missing");
}

#[tokio::test]
async fn preview_forecast_shows_48_hours_of_load_and_capacity_beside_the_bounds() {
    let s = scaler_with("forecast_and_scale", json!([]), 2);
    let command = json!({"command": "preview_forecast", "cluster": "demo", "service": "web"});
    let record = s.handle(command, "p-1", at(9, 30)).await.expect("preview");
    let previews = record.forecast_preview.as_ref().expect("preview");
    assert_eq!(previews.len(), 1);
    let rows = &previews[0].rows;
    // Every hour that overlaps the next 48: the one under way and 48 more.
    assert_eq!(rows.len(), 49);
    assert_eq!(rows[0].from, at(9, 0));
    let peaks: Vec<i64> = rows
        .iter()
        .filter(|r| r.capacity == 7)
        .map(|r| (r.from - today()).num_hours())
        .collect();
    assert_eq!(peaks, vec![12, 13, 36, 37]);
    assert!(rows
        .iter()
        .all(|r| r.min_capacity == 1 && r.max_capacity == 20));
    assert!(rows
        .iter()
        .all(|r| r.forecast_min_capacity == r.capacity.max(1)));
    // The bounds timeline beside it, as preview_bounds gives it.
    assert!(record.preview.is_some());
    assert!(previews[0]
        .backtest
        .as_ref()
        .unwrap()
        .mape_percent
        .is_some());
    // Nothing changed.
    assert!(s.ports().0.writes().is_empty());

    for (command, expected) in [
        (
            json!({"command": "preview_forecast", "cluster": "demo", "service": "web", "hours": 49}),
            "hours must be between 1 and 48; got 49",
        ),
        (
            json!({"command": "preview_forecast", "cluster": "demo", "service": "api"}),
            "no policy resizes demo/api",
        ),
    ] {
        let err = s.handle(command, "p-2", at(9, 30)).await.unwrap_err();
        let InvocationError::RejectedCommand(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test]
async fn the_dashboard_metrics_carry_the_forecast_and_the_actual_load() {
    let s = scaler_with("forecast_and_scale", json!([]), 2);
    let record = tick(&s, at(11, 56)).await;
    let metrics = controller_metrics(&record);
    let find = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} in {metrics:?}"))
    };
    assert_eq!(find("ForecastCapacity").value, 7.0);
    let load = find("ForecastLoad");
    assert!((load.value - 1000.0).abs() < 50.0, "{}", load.value);
    assert_eq!(load.at, Some(at(12, 0)));
    // The newest complete hour of history: 23:00 yesterday, the last seeded.
    let observed = find("ObservedLoad");
    assert_eq!(observed.at, Some(today() - TimeDelta::hours(1)));
    assert_eq!(observed.value, 200.0);
    assert!(load
        .dimensions
        .contains(&("Policy", "requests".to_string())));
}

#[test]
fn the_samples_parse() {
    let document = sample("predictive/requests");
    let config = ScalerConfig::parse(&document.to_string()).expect("sample policy document");
    assert_eq!(config.predictive.len(), 1);
    assert_eq!(config.tracking.len(), 1);
    let invocation = scaler::events::parse(sample("manual-preview-forecast")).expect("sample");
    let json = serde_json::to_value(&invocation.trigger).unwrap();
    assert_eq!(json["command"]["command"], "preview_forecast");
}
