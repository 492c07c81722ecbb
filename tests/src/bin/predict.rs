//! `make predict`: the predictive-scaling replay's tables (see `e2e::predict_replay`),
//! at 5-minute periods (the replay's default) and at hourly ones.

use e2e::predict_replay::{run, Replay, STARTUP_MINUTES, TARGET_PER_TASK, TASK_CAPACITY};

fn main() {
    let replay = Replay::default();
    println!(
        "Three weeks of per-minute load (weekday peak {} requests a minute, weekends 45%, ±5% noise, \
         one 3× spike for 20 minutes); the third week replayed. A task serves {TASK_CAPACITY} a minute, \
         is held at {TARGET_PER_TASK}, and serves {STARTUP_MINUTES} minutes after it starts. \
         The forecast is made again every {} h from the trailing history; buffer {} s.",
        replay.peak, replay.refresh_hours, replay.scheduling_buffer_seconds
    );
    for period_seconds in [300, 3600] {
        println!("\nForecast at {period_seconds} s periods:\n");
        print!(
            "{}",
            run(&Replay {
                period_seconds,
                ..replay
            })
            .table()
        );
    }
}
