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

    let slow = world.minute(0).await;
    println!("{}", describe(&slow));
    assert!(slow.latency_ms > HIGH_MS, "{slow:?}");
    assert_eq!(slow.alarms[HIGH_ALARM], "ALARM");
    assert!(
        slow.scaler
            .iter()
            .any(|(_, action, before, after)| action == "scaled" && (*before, *after) == (2, 4)),
        "{slow:?}"
    );
    assert_eq!((slow.desired, slow.running, slow.registered), (4, 4, 2));
    assert_eq!(slow.targets.get("healthy"), Some(&4));

    let recovered = world.minute(1).await;
    println!("{}", describe(&recovered));
    assert!(recovered.latency_ms < HIGH_MS, "{recovered:?}");
    assert_eq!(recovered.alarms[HIGH_ALARM], "OK");
    assert_eq!(recovered.desired, 4);

    // Traffic falls: 100 ms of work over 4 tasks is 25 ms.
    world.set_load(100);
    let mut quiet = Vec::new();
    for k in 2..=5 {
        let m = world.minute(k).await;
        println!("{}", describe(&m));
        quiet.push(m);
    }
    let low = quiet
        .iter()
        .find(|m| m.alarms[LOW_ALARM] == "ALARM")
        .expect("three quiet minutes put the low alarm in ALARM");
    assert!(low.latency_ms < LOW_MS);
    let scaled_in = quiet
        .iter()
        .find(|m| m.desired < 4)
        .expect("the quiet period scales in");
    assert_eq!(
        (scaled_in.desired, scaled_in.running, scaled_in.deregistered),
        (3, 3, 1)
    );
    assert_eq!(scaled_in.targets.get("draining"), Some(&1));
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
