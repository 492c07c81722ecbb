//! Predictive scaling as tables: the capacity a forecast load asks for, the
//! interval the scheduling buffer looks at, how the forecast joins the bounds
//! the other triggers give, and the series a forecaster learns from.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control_domain::alarm::MetricPoint;
use ecs_control_domain::policy::CapacityBounds;
use ecs_control_domain::predictive::{
    capacity_for, decide, join, mape, preview, regular_series, seasonal_periods, Backtest,
    Forecast, HistoryUsed, MaxCapacityBreach, PredictiveMode, PredictivePolicy,
};
use ecs_control_domain::service::ServiceRef;
use ecs_control_domain::target_tracking::TrackedMetric;

/// (now, buffer seconds) → (interval start hour, capacity)
type LookAheadRow = (DateTime<Utc>, u32, Option<(i64, u32)>);

/// (mode, breach, forecast capacity, bounds in force) → bounds after
type JoinRow = (
    PredictiveMode,
    MaxCapacityBreach,
    u32,
    (u32, u32),
    (u32, u32),
);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap()
}

fn bounds(min: u32, max: u32) -> CapacityBounds {
    CapacityBounds { min, max }
}

fn policy(mode: PredictiveMode, breach: MaxCapacityBreach, buffer: u32) -> PredictivePolicy {
    PredictivePolicy {
        name: "requests".into(),
        target: ServiceRef::new("demo", "web"),
        metric: TrackedMetric::EcsCpu,
        load_per_task: 100.0,
        mode,
        scheduling_buffer_seconds: buffer,
        max_capacity_breach: breach,
        period_seconds: 3600,
        bounds: bounds(1, 10),
    }
}

/// Hourly loads from t0.
fn forecast(loads: &[f64]) -> Forecast {
    Forecast {
        made_at: t0(),
        period_seconds: 3600,
        starts_at: t0(),
        loads: loads.to_vec(),
        history: HistoryUsed {
            datapoints: 336,
            filled: 0,
            from: None,
            until: None,
            hours: 336.0,
            seasonality: vec!["daily", "weekly"],
        },
        backtest: Backtest {
            mape_percent: Some(5.0),
            periods: 168,
            note: String::new(),
        },
    }
}

#[test]
fn the_capacity_is_the_load_over_the_load_one_task_carries_rounded_up() {
    let table: &[(f64, f64, u32)] = &[
        // (forecast load, load per task) → tasks
        (0.0, 100.0, 0),
        (-12.0, 100.0, 0),
        (f64::NAN, 100.0, 0),
        (1.0, 100.0, 1),
        (100.0, 100.0, 1),
        (100.5, 100.0, 2),
        (950.0, 100.0, 10),
        // A quotient a hair over a whole number is that number.
        (3.0 * 0.8 / 0.6 * 100.0, 100.0, 4),
        // Never beyond what a policy may name.
        (1e12, 1.0, 1_000_000),
        (5.0, 0.0, 0),
    ];
    for (load, per_task, expected) in table {
        assert_eq!(
            capacity_for(*load, *per_task),
            *expected,
            "ceil({load} / {per_task})"
        );
    }
}

#[test]
fn the_buffer_looks_ahead_to_the_highest_interval_it_reaches() {
    // Hours 0..6: quiet until a peak in hour 3.
    let loads = [100.0, 100.0, 150.0, 900.0, 900.0, 200.0];
    let f = forecast(&loads);
    let at = |h: i64, m: i64| t0() + TimeDelta::hours(h) + TimeDelta::minutes(m);
    // (now, buffer seconds) → (interval start hour, capacity)
    let table: &[LookAheadRow] = &[
        (at(2, 0), 300, Some((2, 2))),
        // 5 minutes before the peak, the buffer reaches it.
        (at(2, 54), 300, Some((2, 2))),
        (at(2, 55), 300, Some((3, 9))),
        (at(2, 56), 300, Some((3, 9))),
        // A longer buffer starts capacity earlier.
        (at(2, 10), 3000, Some((3, 9))),
        // No buffer: only the interval now.
        (at(2, 59), 0, Some((2, 2))),
        (at(3, 0), 0, Some((3, 9))),
        // The capacity stays through the interval it was forecast for.
        (at(4, 59), 300, Some((4, 9))),
        (at(5, 0), 300, Some((5, 2))),
        // Beyond the forecast: nothing.
        (at(6, 0), 300, None),
        (at(-1, 0), 300, None),
    ];
    for (now, buffer, expected) in table {
        let p = policy(
            PredictiveMode::ForecastAndScale,
            MaxCapacityBreach::HonorMaxCapacity,
            *buffer,
        );
        let got = decide(&p, &f, bounds(1, 10), *now)
            .map(|d| ((d.interval.starts_at - t0()).num_hours(), d.capacity));
        assert_eq!(got, *expected, "at {now} with a {buffer} s buffer");
    }
}

#[test]
fn the_forecast_raises_the_min_and_never_lowers_anything() {
    use MaxCapacityBreach::{HonorMaxCapacity as Honor, IncreaseMaxCapacity as Increase};
    use PredictiveMode::{ForecastAndScale as Scale, ForecastOnly as Only};
    // (mode, breach, forecast capacity, bounds in force) → bounds after
    let table: &[JoinRow] = &[
        // Forecast only: recorded, nothing moves.
        (Only, Honor, 8, (2, 10), (2, 10)),
        (Only, Increase { buffer_percent: 10 }, 50, (2, 40), (2, 40)),
        // Within the bounds: the min rises to the forecast.
        (Scale, Honor, 8, (2, 10), (8, 10)),
        // At or below the min: the bounds stand (never scales in by itself).
        (Scale, Honor, 2, (2, 10), (2, 10)),
        (Scale, Honor, 0, (3, 10), (3, 10)),
        // A window's higher min stays.
        (Scale, Honor, 5, (6, 10), (6, 10)),
        // Above the max, honoured: the min rises to the max.
        (Scale, Honor, 14, (2, 10), (10, 10)),
        // Above the max, increased: AWS's example, 50 forecast, max 40,
        // 10% buffer: the max is 55 and the min 50.
        (
            Scale,
            Increase { buffer_percent: 10 },
            50,
            (2, 40),
            (50, 55),
        ),
        // Close to the max: the buffer still raises it.
        (
            Scale,
            Increase { buffer_percent: 10 },
            38,
            (2, 40),
            (38, 42),
        ),
        // No buffer: the max becomes the forecast.
        (Scale, Increase { buffer_percent: 0 }, 50, (2, 40), (50, 50)),
        // Well below the max: the max stands.
        (Scale, Increase { buffer_percent: 10 }, 8, (2, 40), (8, 40)),
    ];
    for (mode, breach, capacity, (min, max), (want_min, want_max)) in table {
        let p = policy(*mode, *breach, 300);
        let (after, note) = join(&p, *capacity, bounds(*min, *max));
        assert_eq!(
            after,
            bounds(*want_min, *want_max),
            "{mode:?} {breach:?}: {capacity} forecast within [{min}, {max}] ({note})"
        );
        assert!(after.min >= *min && after.max >= *max, "never lowers");
    }
}

#[test]
fn the_decision_says_what_it_did_in_words_and_numbers() {
    let f = forecast(&[100.0, 640.0]);
    let p = policy(
        PredictiveMode::ForecastAndScale,
        MaxCapacityBreach::HonorMaxCapacity,
        300,
    );
    let d = decide(&p, &f, bounds(2, 10), t0() + TimeDelta::minutes(57)).unwrap();
    assert_eq!(d.arithmetic, "ceil(640.00 / 100) = 7");
    assert_eq!(d.bounds_after, bounds(7, 10));
    assert!(d.applied);
    assert_eq!(d.note, "7 tasks forecast: the min rises from 2 to 7");
    let only = PredictivePolicy {
        mode: PredictiveMode::ForecastOnly,
        ..p
    };
    let d = decide(&only, &f, bounds(2, 10), t0() + TimeDelta::minutes(57)).unwrap();
    assert!(!d.applied);
    assert_eq!(d.bounds_after, bounds(2, 10));
    assert!(
        d.note.starts_with("forecast_only: 7 tasks recorded"),
        "{}",
        d.note
    );
}

#[test]
fn the_preview_shows_each_interval_beside_the_bounds_and_what_the_forecast_makes_of_them() {
    let f = forecast(&[100.0, 640.0, 1400.0, 300.0]);
    let p = policy(
        PredictiveMode::ForecastAndScale,
        MaxCapacityBreach::IncreaseMaxCapacity { buffer_percent: 0 },
        300,
    );
    // A window lifts the min to 3 from hour 3.
    let rows = preview(&p, &f, t0() + TimeDelta::minutes(30), 3, |at| {
        if at >= t0() + TimeDelta::hours(3) {
            bounds(3, 10)
        } else {
            bounds(1, 10)
        }
    });
    let got: Vec<(i64, u32, u32, u32, u32)> = rows
        .iter()
        .map(|r| {
            (
                (r.from - t0()).num_hours(),
                r.capacity,
                r.min_capacity,
                r.forecast_min_capacity,
                r.forecast_max_capacity,
            )
        })
        .collect();
    // The interval under way, and those starting within the 3 hours.
    assert_eq!(
        got,
        vec![
            (0, 1, 1, 1, 10),
            (1, 7, 1, 7, 10),
            (2, 14, 1, 14, 14),
            (3, 3, 3, 3, 10)
        ]
    );
}

#[test]
fn a_series_with_gaps_is_filled_by_a_straight_line_and_aligned_to_its_period() {
    let point = |minutes: i64, value: f64| MetricPoint {
        at: t0() + TimeDelta::minutes(minutes),
        value,
    };
    let points = [
        point(10, 30.0), // out of order, and off the period boundary: 00:05
        point(0, 10.0),
        point(20, 60.0), // 00:20 after a missing 00:15
        point(20, 99.0), // a duplicate period keeps the first
        point(25, f64::NAN),
    ];
    let (first, values, filled) = regular_series(&points, 300).unwrap();
    assert_eq!(first, t0());
    assert_eq!(values, vec![10.0, 20.0, 30.0, 45.0, 60.0]);
    assert_eq!(filled, 2);
    assert_eq!(regular_series(&[], 300), None);
}

#[test]
fn seasons_are_learned_only_from_two_full_cycles_of_history() {
    // (period seconds, datapoints) → the seasons
    let table: &[(u32, usize, &[&str])] = &[
        (3600, 24, &[]),
        (3600, 47, &[]),
        (3600, 48, &["daily"]),
        (3600, 335, &["daily"]),
        (3600, 336, &["daily", "weekly"]),
        (300, 575, &[]),
        (300, 576, &["daily"]),
        (300, 4032, &["daily", "weekly"]),
    ];
    for (period, len, expected) in table {
        let names: Vec<&str> = seasonal_periods(*period, *len)
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(&names, expected, "{len} datapoints of {period} s");
    }
    assert_eq!(seasonal_periods(300, 4032)[1].0, 2016);
}

#[test]
fn mape_skips_periods_without_load() {
    assert_eq!(mape(&[100.0, 200.0], &[110.0, 180.0]), Some(10.0));
    assert_eq!(mape(&[0.0, 100.0], &[5.0, 90.0]), Some(10.0));
    assert_eq!(mape(&[0.0], &[5.0]), None);
    assert_eq!(mape(&[], &[]), None);
}
