//! The whole loop, asserted transition by transition: a slow site scales out,
//! the new tasks are registered, the site recovers, and a quiet period scales in.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::control_loop::{describe, ControlLoop, HIGH_ALARM, HIGH_MS, LOW_ALARM, LOW_MS};
use e2e::scale_in_load::{self, scale_in_under_load};
use e2e::Emulator;

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_site_scales_out_recovers_and_a_quiet_period_scales_in() {
    let emulator = Emulator::start();
    let mut world = ControlLoop::start(&emulator, "us-east-1").await;
    // 800 ms of work a request: 400 ms over 2 tasks, 200 ms over 4.
    world.set_load(800);
    // The loop runs on the emulator's clock, not on a fixed date.
    assert!((world.t0 - chrono::Utc::now()).num_seconds().abs() < 120);

    // Minute by minute on the emulator's clock, from the current minute.
    let mut minutes = Vec::new();
    for k in 0..=5 {
        if k == 2 {
            // Traffic falls: 100 ms of work over 4 tasks is 25 ms.
            world.set_load(100);
        }
        let m = world.minute(k).await;
        println!("{}", describe(&m));
        minutes.push(m);
    }
    let desired: Vec<u32> = minutes.iter().map(|m| m.desired).collect();
    assert_eq!(desired, [4, 4, 4, 4, 3, 3], "{minutes:#?}");
    // The minute each alarm first fires: the slow minute's datapoint breaches
    // at once (1 of 1); the quiet ones need three minutes (3 of 3).
    let first_alarm = |name: &str| {
        minutes
            .iter()
            .find(|m| m.alarms[name] == "ALARM")
            .map(|m| m.minute)
    };
    assert_eq!(first_alarm(HIGH_ALARM), Some(0));
    assert_eq!(first_alarm(LOW_ALARM), Some(4));

    let slow = &minutes[0];
    assert!(slow.latency_ms > HIGH_MS, "{slow:?}");
    assert!(
        slow.scaler
            .iter()
            .any(|(_, action, before, after)| action == "scaled" && (*before, *after) == (2, 4)),
        "{slow:?}"
    );
    assert_eq!((slow.desired, slow.running, slow.registered), (4, 4, 2));
    assert_eq!(slow.targets.get("healthy"), Some(&4));

    let recovered = &minutes[1];
    assert!(recovered.latency_ms < HIGH_MS, "{recovered:?}");
    assert_eq!(recovered.alarms[HIGH_ALARM], "OK");

    let low = &minutes[4];
    assert!(low.latency_ms < LOW_MS);
    assert_eq!((low.desired, low.running, low.deregistered), (3, 3, 1));
    assert_eq!(low.targets.get("draining"), Some(&1));
    // The scale-in cooldown holds the next minute, while the alarm stays in ALARM.
    assert_eq!(minutes[5].alarms[LOW_ALARM], "ALARM");
    assert_eq!(minutes[5].deregistered, 0);
}

/// The load balancer played under steady load while the count goes from 6
/// to 2: drain-first scale-in fails no request; lowering the count at once
/// fails the requests already routed to the tasks ECS stops.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_first_scale_in_under_load_fails_no_request_and_the_opt_out_does() {
    let emulator = Emulator::start();
    let drained = scale_in_under_load(&emulator, "eu-west-1", true).await;
    let abrupt = scale_in_under_load(&emulator, "eu-west-2", false).await;
    println!(
        "{}",
        scale_in_load::describe(&[drained.clone(), abrupt.clone()])
    );
    assert_eq!(drained.failed, 0, "{drained:?}");
    assert!(abrupt.failed > 0, "{abrupt:?}");
    for run in [&drained, &abrupt] {
        assert_eq!(run.tasks_left, 2, "{run:?}");
        assert!(run.minutes_to_scale_in.is_some(), "{run:?}");
    }
    // Drain-first waits for the targets to drain before the count comes down.
    assert!(drained.minutes_to_scale_in > abrupt.minutes_to_scale_in);
}
