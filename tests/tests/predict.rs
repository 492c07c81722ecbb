//! The `make predict` replay, small: hourly forecasts made every six hours
//! (the bench makes them every hour, at 5-minute periods). The same seed
//! replays the same week; the forecast beats tracking alone; perfect
//! foresight is never short.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::predict_replay::{load, run, Replay};

#[test]
fn a_forecast_ahead_of_the_ramp_leaves_fewer_minutes_short_than_tracking_alone() {
    let replay = Replay {
        refresh_hours: 6,
        period_seconds: 3600,
        ..Replay::default()
    };
    assert_eq!(load(&replay), load(&replay), "the same seed, the same load");
    assert_ne!(load(&replay), load(&Replay { seed: 8, ..replay }));
    let report = run(&replay);
    let [alone, with, foresight] = &report.outcomes[..] else {
        panic!("{report:?}")
    };
    assert_eq!(foresight.under_capacity_minutes, 0);
    assert!(foresight.task_hours < alone.task_hours, "{report:?}");
    assert!(
        with.under_capacity_minutes < alone.under_capacity_minutes,
        "{report:?}"
    );
    // The spike is in the load and outside every forecast.
    assert!(
        report.mape_all.unwrap() > report.mape_seasonal.unwrap(),
        "{report:?}"
    );
    assert!(report.mape_seasonal.unwrap() < 10.0, "{report:?}");
    let table = report.table();
    assert!(
        table.contains("| target tracking + predictive |"),
        "{table}"
    );
    assert!(table.contains("Goals:"), "{table}");
}
