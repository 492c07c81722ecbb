//! The scaler's other triggers as tables: target tracking's arithmetic and
//! datapoint runs, time windows (combination, daylight saving, a missed tick),
//! the budget floor and the pace's stages; and their invariants as properties.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control::config::ScalerConfig;
use ecs_control::domain::alarm::MetricPoint;
use ecs_control::domain::fallback::{
    blind_for, blind_key, blind_marks, with_fallback, Fallback, FallbackAction, BLIND_KEPT,
};
use ecs_control::domain::policy::{CapacityBounds, Cooldowns};
use ecs_control::domain::scaling::{choose, Choice};
use ecs_control::domain::scaling::{
    Direction, Hold, Limits, PolicyEvaluation, ScalingMemory, ServiceState,
};
use ecs_control::domain::schedule::{bounds_at, preview};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::target_tracking::{
    evaluate_tracking, last_run, tracked_count, TargetTrackingPolicy, TrackedMetric,
};
use proptest::prelude::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
}

fn service(desired: u32) -> ServiceState {
    ServiceState {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/demo/web".into(),
        desired_count: desired,
        running_count: desired,
        pending_count: 0,
        deployment_in_progress: false,
        task_definition: None,
        memory: ScalingMemory::default(),
        drill_in_progress: None,
    }
}

fn tracking(target_value: f64) -> TargetTrackingPolicy {
    TargetTrackingPolicy {
        name: "cpu at 60".into(),
        target: ServiceRef::new("demo", "web"),
        metric: TrackedMetric::EcsCpu,
        target_value,
        scale_out_datapoints: 3,
        scale_in_datapoints: 15,
        scale_in_ratio: 0.9,
        disable_scale_in: false,
        bounds: CapacityBounds { min: 1, max: 20 },
        cooldowns: Cooldowns {
            scale_out_seconds: 300,
            scale_in_seconds: 300,
        },
        fallback: None,
    }
}

/// One datapoint a minute, the newest one minute before `now`.
fn minutes(values: &[f64], now: DateTime<Utc>) -> Vec<MetricPoint> {
    let n = values.len() as i64;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| MetricPoint {
            at: now - TimeDelta::minutes(n - i as i64),
            value,
        })
        .collect()
}

fn track(policy: &TargetTrackingPolicy, values: &[f64], desired: u32) -> PolicyEvaluation {
    let now = at(12, 0);
    evaluate_tracking(
        policy,
        &minutes(values, now),
        Limits::new(policy.bounds),
        &service(desired),
        now,
    )
}

/// Datapoints and the desired count → the target, the hold, the arithmetic.
type TrackingCase<'a> = (&'a [f64], u32, Option<u32>, Option<Hold>, Option<&'a str>);

#[test]
fn target_tracking_computes_the_count_and_shows_the_arithmetic() {
    let policy = tracking(60.0);
    let cases: [TrackingCase; 7] = [
        // Three above: scale out to ceil(4 × 84 / 60) = 6, from the newest.
        (
            &[70.0, 80.0, 84.0],
            4,
            Some(6),
            None,
            Some("ceil(4 × 84 / 60) = 6"),
        ),
        // Only two of the last three above: no change, and it vetoes scale-in.
        (
            &[70.0, 50.0, 84.0],
            4,
            None,
            Some(Hold::AlreadyAtTarget),
            None,
        ),
        // Fifteen below 54 (90% of 60): in to ceil(10 × 30 / 60) = 5, from the highest.
        (
            &[30.0; 15],
            10,
            Some(5),
            None,
            Some("ceil(10 × 30 / 60) = 5"),
        ),
        // Fifteen below, one of them at 54 (not below 90%): no change.
        (
            &[
                30.0, 30.0, 30.0, 30.0, 54.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0,
                30.0,
            ],
            10,
            None,
            Some(Hold::AlreadyAtTarget),
            None,
        ),
        // Twelve below is not fifteen: no change.
        (&[30.0; 12], 10, None, Some(Hold::AlreadyAtTarget), None),
        // Two datapoints: missing data changes nothing.
        (&[90.0, 90.0], 4, None, Some(Hold::MissingData), None),
        // Clamped to max_capacity 20.
        (
            &[600.0, 600.0, 600.0],
            4,
            Some(20),
            None,
            Some("ceil(4 × 600 / 60) = 40"),
        ),
    ];
    for (values, desired, target, hold, arithmetic) in cases {
        let e = track(&policy, values, desired);
        assert_eq!(e.target, target, "{values:?}: {e:?}");
        assert_eq!(e.held_by, hold, "{values:?}: {e:?}");
        let detail = e.tracking.as_ref().expect("tracking detail");
        if let Some(arithmetic) = arithmetic {
            assert_eq!(detail.arithmetic.as_deref(), Some(arithmetic), "{values:?}");
        }
    }
}

#[test]
fn target_tracking_keeps_cooldowns_and_disable_scale_in() {
    let mut policy = tracking(60.0);
    policy.disable_scale_in = true;
    let e = track(&policy, &[10.0; 15], 10);
    assert_eq!(e.held_by, Some(Hold::ScaleInDisabled));
    // Inside a scale-out cooldown the count is computed from its base: the
    // capacity already added covers it.
    let policy = tracking(60.0);
    let mut svc = service(6);
    svc.memory.last_direction = Some(Direction::Out);
    svc.memory.last_scaled_at = Some(at(11, 58));
    svc.memory.scale_out_base = Some(4);
    let now = at(12, 0);
    let e = evaluate_tracking(
        &policy,
        &minutes(&[84.0, 84.0, 84.0], now),
        Limits::new(policy.bounds),
        &svc,
        now,
    );
    assert_eq!(e.held_by, Some(Hold::ScaleOutCooldown), "{e:?}");
}

#[test]
fn a_run_needs_every_minute_and_a_fresh_newest_datapoint() {
    let now = at(12, 0);
    let mut points = minutes(&[1.0, 2.0, 3.0, 4.0], now);
    assert_eq!(last_run(&points, 3, now).unwrap().len(), 3);
    points.remove(2); // a gap one minute before the newest
    assert!(last_run(&points, 3, now)
        .unwrap_err()
        .contains("1 of the last 3"));
    let stale = minutes(&[1.0, 2.0, 3.0], now - TimeDelta::minutes(10));
    assert!(last_run(&stale, 3, now)
        .unwrap_err()
        .contains("minutes old"));
    assert!(last_run(&[], 3, now).unwrap_err().contains("no datapoints"));
}

#[test]
fn from_zero_tasks_target_tracking_starts_one() {
    assert_eq!(tracked_count(0, 90.0, 60.0), 1);
    assert_eq!(tracked_count(0, 30.0, 60.0), 0);
    assert_eq!(tracked_count(4, 84.0, 60.0), 6);
}

proptest! {
    /// Target tracking never moves the count away from the target: above it,
    /// never fewer tasks; below it, never more.
    #[test]
    fn target_tracking_moves_toward_the_target(
        values in proptest::collection::vec(0.0f64..500.0, 0..20),
        desired in 0u32..30,
        target_value in 1.0f64..200.0,
    ) {
        let policy = TargetTrackingPolicy {
            bounds: CapacityBounds { min: 0, max: 1000 },
            ..tracking(target_value)
        };
        let e = track(&policy, &values, desired);
        if let Some(target) = e.target {
            let newest = *values.last().unwrap();
            if target > desired {
                prop_assert!(values.iter().rev().take(3).all(|v| *v > target_value), "{e:?}");
                prop_assert!(newest > target_value);
            } else {
                prop_assert!(target < desired);
                prop_assert!(values.iter().rev().take(15).all(|v| *v < target_value), "{e:?}");
            }
        }
    }
}

const WINDOWS: &str = r#"{
  "policies": [{"alarm": "a", "cluster": "demo", "service": "web",
    "adjustment_type": "ChangeInCapacity",
    "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
    "min_capacity": 1, "max_capacity": 20}],
  "schedules": [
    {"name": "business-hours", "cluster": "demo", "service": "web",
     "cron": "0 8 * * MON-FRI", "duration_minutes": 720, "time_zone": "Europe/Berlin",
     "min_capacity": 6},
    {"name": "night", "cluster": "demo", "service": "web",
     "cron": "0 22 * * *", "duration_minutes": 540, "time_zone": "Europe/Berlin",
     "max_capacity": 8},
    {"name": "launch", "cluster": "demo", "service": "web",
     "start": "2026-11-24T10:00:00+01:00", "end": "2026-11-24T14:00:00+01:00",
     "min_capacity": 8, "max_capacity": 15, "desired_count": 12}
  ]
}"#;

fn web_bounds_at(config: &ScalerConfig, now: DateTime<Utc>) -> (u32, u32, Vec<String>) {
    let web = ServiceRef::new("demo", "web");
    let windows = config.schedules_for_service(&web);
    let found = bounds_at(&windows, CapacityBounds { min: 1, max: 20 }, now);
    (
        found.bounds.min,
        found.bounds.max,
        found.open.into_iter().map(|w| w.name).collect(),
    )
}

#[test]
fn windows_combine_to_the_highest_min_and_the_lowest_max() {
    let config = ScalerConfig::parse(WINDOWS).expect("windows parse");
    // Monday 2026-11-23, Berlin is UTC+1 in November.
    let cases = [
        (at(6, 59), (1, 20), vec![]),
        (at(7, 0), (6, 20), vec!["business-hours"]),
        // A missed tick: at 07:10 the window that opened at 07:00 is open.
        (at(7, 10), (6, 20), vec!["business-hours"]),
        (at(18, 59), (6, 20), vec!["business-hours"]),
        (at(19, 0), (1, 20), vec![]),
        (at(21, 0), (1, 8), vec!["night"]),
        // Tuesday: the launch overlaps business hours; highest min, lowest max.
        (
            Utc.with_ymd_and_hms(2026, 11, 24, 9, 30, 0).unwrap(),
            (8, 15),
            vec!["business-hours", "launch"],
        ),
    ];
    for (now, (min, max), open) in cases {
        let (found_min, found_max, found_open) = web_bounds_at(&config, now);
        assert_eq!((found_min, found_max), (min, max), "{now}");
        assert_eq!(found_open, open, "{now}");
    }
}

#[test]
fn daylight_saving_moves_the_utc_opening_and_never_doubles_it() {
    let config = ScalerConfig::parse(WINDOWS).expect("windows parse");
    // Spring forward, Monday 2027-03-29 (CEST, UTC+2): 08:00 Berlin is 06:00 UTC.
    let spring = Utc.with_ymd_and_hms(2027, 3, 29, 6, 0, 0).unwrap();
    assert_eq!(web_bounds_at(&config, spring).0, 6);
    assert_eq!(web_bounds_at(&config, spring - TimeDelta::minutes(1)).0, 1);
    // The Friday before (CET, UTC+1): 08:00 Berlin is 07:00 UTC.
    let friday = Utc.with_ymd_and_hms(2027, 3, 26, 6, 30, 0).unwrap();
    assert_eq!(web_bounds_at(&config, friday).0, 1);

    // A window at 02:30 local on the day 02:00–03:00 does not exist opens just after the gap.
    let gap = ScalerConfig::parse(&WINDOWS.replace("0 22 * * *", "30 2 * * *")).expect("parse");
    let web = ServiceRef::new("demo", "web");
    let night = gap
        .schedules_for_service(&web)
        .into_iter()
        .find(|w| w.name == "night")
        .expect("night");
    let opened = night
        .opened_at(Utc.with_ymd_and_hms(2027, 3, 28, 1, 30, 0).unwrap())
        .expect("open after the gap");
    assert_eq!(opened, Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap());

    // Fall back, Sunday 2026-10-25: 02:30 happens twice; the window opens once.
    let edges = night.edges(
        Utc.with_ymd_and_hms(2026, 10, 24, 22, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 25, 6, 0, 0).unwrap(),
    );
    let openings: Vec<_> = edges
        .iter()
        .filter(|t| night.opened_at(**t) == Some(**t))
        .collect();
    assert_eq!(openings.len(), 1, "{edges:?}");
}

#[test]
fn the_preview_shows_each_stretch_of_bounds() {
    let config = ScalerConfig::parse(WINDOWS).expect("windows parse");
    let web = ServiceRef::new("demo", "web");
    let windows = config.schedules_for_service(&web);
    let periods = preview(&windows, CapacityBounds { min: 1, max: 20 }, at(0, 0), 24);
    let summary: Vec<(u32, u32, u32)> = periods
        .iter()
        .map(|p| {
            (
                p.from.format("%H").to_string().parse().unwrap(),
                p.min_capacity,
                p.max_capacity,
            )
        })
        .collect();
    // Monday UTC: night until 06:00, free until 07:00, business 07–19, free, night from 21.
    assert_eq!(
        summary,
        [(0, 1, 8), (6, 1, 20), (7, 6, 20), (19, 1, 20), (21, 1, 8)]
    );
    assert_eq!(
        periods.last().unwrap().until,
        at(0, 0) + TimeDelta::hours(24)
    );
}

#[test]
fn contradicting_windows_are_a_config_error_naming_the_field() {
    // Windows may not overlap in practice; the check is for any two of a service.
    let clash = WINDOWS.replace(r#""max_capacity": 8}"#, r#""max_capacity": 5}"#);
    let err = ScalerConfig::parse(&clash).expect_err("6 > 5");
    assert_eq!(err.field, "schedules[1].max_capacity", "{err}");
    for (from, to, field) in [
        ("0 8 * * MON-FRI", "0 25 * * *", "schedules[0].cron"),
        ("Europe/Berlin", "Mars/Olympus", "schedules[0].time_zone"),
        (
            r#""min_capacity": 6}"#,
            r#""min_capacity": 30}"#,
            "schedules[0].min_capacity",
        ),
        (
            r#""desired_count": 12"#,
            r#""desired_count": 16"#,
            "schedules[2].desired_count",
        ),
        (
            "2026-11-24T14:00:00+01:00",
            "2026-11-24T09:00:00+01:00",
            "schedules[2].end",
        ),
    ] {
        let err = ScalerConfig::parse(&WINDOWS.replacen(from, to, 1)).expect_err(to);
        assert_eq!(err.field, field, "{to}: {err}");
    }
}

proptest! {
    /// The effective bounds always lie within the policy bounds, min ≤ max.
    #[test]
    fn effective_bounds_stay_within_the_policy_bounds(
        minutes_from_monday in 0i64..(14 * 24 * 60),
        policy_min in 0u32..5,
        extra in 0u32..20,
    ) {
        let config = ScalerConfig::parse(WINDOWS).expect("windows parse");
        let web = ServiceRef::new("demo", "web");
        let policy = CapacityBounds { min: policy_min, max: policy_min + extra };
        let now = at(0, 0) + TimeDelta::minutes(minutes_from_monday);
        let found = bounds_at(&config.schedules_for_service(&web), policy, now).bounds;
        prop_assert!(found.min >= policy.min && found.max <= policy.max, "{found:?}");
        prop_assert!(found.min <= found.max, "{found:?}");
    }
}

/// A blind policy's fallback: minutes blind, whether another tracking policy
/// sees, the desired count → the target, the hold, whether it applied.
type FallbackCase = (
    FallbackAction,
    i64,
    bool,
    u32,
    Option<u32>,
    Option<Hold>,
    bool,
);

#[test]
fn a_fallback_takes_over_a_blind_policy_only_upward_and_only_when_no_one_sees() {
    let floor = FallbackAction::MinCount { min_count: 6 };
    let cases: [FallbackCase; 8] = [
        // Blind for 4 min of the 5 it waits: still missing data, not applied.
        (floor, 4, false, 3, None, Some(Hold::MissingData), false),
        // Blind 5 min, below the floor: out to 6.
        (floor, 5, false, 3, Some(6), None, true),
        // At the floor: held by the fallback (and so vetoing any scale-in).
        (floor, 30, false, 6, None, Some(Hold::Fallback), true),
        // Above the floor: never in because data is missing.
        (floor, 30, false, 12, None, Some(Hold::Fallback), true),
        // Another tracking policy reads its metric: it steers alone.
        (floor, 30, true, 3, None, Some(Hold::MissingData), false),
        // A fallback that holds: held past its wait, missing data before it.
        (
            FallbackAction::Hold,
            30,
            false,
            3,
            None,
            Some(Hold::Fallback),
            true,
        ),
        (
            FallbackAction::Hold,
            2,
            false,
            3,
            None,
            Some(Hold::MissingData),
            false,
        ),
        (
            FallbackAction::Hold,
            30,
            true,
            3,
            None,
            Some(Hold::MissingData),
            false,
        ),
    ];
    let now = at(12, 0);
    for (action, blind_minutes, others_see, desired, target, hold, applied) in cases {
        let policy = TargetTrackingPolicy {
            fallback: Some(Fallback {
                after_minutes: 5,
                action,
            }),
            ..tracking(60.0)
        };
        let state = service(desired);
        let limits = Limits::new(policy.bounds);
        let held = evaluate_tracking(&policy, &[], limits, &state, now);
        assert_eq!(held.held_by, Some(Hold::MissingData));
        let e = with_fallback(
            held,
            &policy,
            TimeDelta::minutes(blind_minutes),
            others_see,
            limits,
            &state,
            now,
        );
        let case =
            format!("{action:?} blind {blind_minutes} min, others see {others_see}, at {desired}");
        assert_eq!(e.target, target, "{case}: {e:?}");
        assert_eq!(e.held_by, hold, "{case}: {e:?}");
        let said = e.fallback.as_ref().expect("the record says fallback");
        assert_eq!(said.applied, applied, "{case}: {said:?}");
        assert_eq!(said.blind_minutes, blind_minutes);
        if applied {
            assert!(e.rule.starts_with("fallback:"), "{case}: {}", e.rule);
        }
    }
}

#[test]
fn a_blind_policy_vetoes_a_seeing_policys_scale_in_and_never_blocks_its_scale_out() {
    let now = at(12, 0);
    let state = service(8);
    let seeing = track(&tracking(60.0), &[30.0; 15], 8);
    assert_eq!(seeing.direction, Some(Direction::In));
    let blind_policy = TargetTrackingPolicy {
        name: "requests at 100".into(),
        fallback: Some(Fallback {
            after_minutes: 5,
            action: FallbackAction::MinCount { min_count: 2 },
        }),
        ..tracking(100.0)
    };
    let limits = Limits::new(blind_policy.bounds);
    let held = evaluate_tracking(&blind_policy, &[], limits, &state, now);
    // Past its wait, but the other policy sees: only holds, and vetoes.
    let blind = with_fallback(
        held,
        &blind_policy,
        TimeDelta::minutes(60),
        true,
        limits,
        &state,
        now,
    );
    assert_eq!(
        choose(&[seeing, blind.clone()]),
        Choice::ScaleInVetoed {
            by_policy: "requests at 100".into()
        }
    );
    let out = track(&tracking(60.0), &[90.0, 90.0, 90.0], 8);
    assert_eq!(choose(&[blind, out]), Choice::Apply { index: 1 });
}

#[test]
fn blind_marks_keep_the_first_sighting_and_clear_when_the_metric_returns() {
    let t0 = at(12, 0);
    let marks = blind_marks(&Default::default(), &[("cpu", true), ("rps", false)], t0);
    assert_eq!(marks.len(), 1);
    assert_eq!(marks.get(&blind_key("cpu")), Some(&t0.timestamp()));
    // Still blind ten minutes on: the mark keeps its first time.
    let later = t0 + TimeDelta::minutes(10);
    let marks = blind_marks(&marks, &[("cpu", true)], later);
    assert_eq!(marks.get(&blind_key("cpu")), Some(&t0.timestamp()));
    let since = marks.get(&blind_key("cpu")).copied();
    assert_eq!(blind_for(since, None, later), TimeDelta::minutes(10));
    // A newest datapoint 20 minutes old says longer: 20 less the 3-minute lag.
    assert_eq!(
        blind_for(since, Some(later - TimeDelta::minutes(20)), later),
        TimeDelta::minutes(17)
    );
    // A fresh datapoint does not shorten what the mark says.
    assert_eq!(
        blind_for(since, Some(later - TimeDelta::minutes(1)), later),
        TimeDelta::minutes(10)
    );
    // Seeing again clears it.
    let marks = blind_marks(&marks, &[("cpu", false)], later);
    assert!(marks.is_empty());
    // A policy no longer configured loses its mark.
    let marks = blind_marks(&Default::default(), &[("old name", true)], t0);
    assert!(blind_marks(&marks, &[("new name", false)], later).is_empty());
    // Within one tag: the longest-blind are kept, their clocks untouched.
    let many: Vec<String> = (0..BLIND_KEPT + 3).map(|i| format!("policy {i}")).collect();
    let mut marks = Default::default();
    for i in 0..many.len() {
        let judged: Vec<(&str, bool)> = many[..=i].iter().map(|n| (n.as_str(), true)).collect();
        marks = blind_marks(&marks, &judged, t0 + TimeDelta::minutes(i as i64));
    }
    assert_eq!(marks.len(), BLIND_KEPT);
    assert_eq!(marks.get(&blind_key("policy 0")), Some(&t0.timestamp()));
    assert!(!marks.contains_key(&blind_key(&many[BLIND_KEPT + 2])));
}

#[test]
fn a_fallback_is_checked_at_cold_start_naming_its_field() {
    let document = |fallback: &str| {
        format!(
            r#"{{"policies": [{{"type": "target_tracking", "cluster": "demo", "service": "web",
                "metric": "ecs_cpu", "target_value": 60, "min_capacity": 2, "max_capacity": 10,
                "fallback": {fallback}}}]}}"#
        )
    };
    let config = ScalerConfig::parse(&document(r#"{"after_minutes": 5, "min_count": 4}"#))
        .expect("a floor within the bounds");
    let web = ServiceRef::new("demo", "web");
    let policy = config
        .tracking_for_service(&web)
        .next()
        .expect("the policy");
    assert_eq!(
        policy.fallback,
        Some(Fallback {
            after_minutes: 5,
            action: FallbackAction::MinCount { min_count: 4 }
        })
    );
    for (fallback, field) in [
        (
            r#"{"after_minutes": 0}"#,
            "policies[0].fallback.after_minutes",
        ),
        (
            r#"{"after_minutes": 1441}"#,
            "policies[0].fallback.after_minutes",
        ),
        (
            r#"{"after_minutes": 5, "min_count": 11}"#,
            "policies[0].fallback.min_count",
        ),
        (
            r#"{"after_minutes": 5, "min_count": 1}"#,
            "policies[0].fallback.min_count",
        ),
        (r#"{"after_minutes": 5, "replicas": 3}"#, "policies[0]"),
    ] {
        let err = ScalerConfig::parse(&document(fallback)).expect_err(fallback);
        assert!(err.field.starts_with(field), "{fallback}: {err}");
    }
}

#[test]
fn scale_in_behaviour_is_checked_at_cold_start_naming_its_field() {
    let document = |fields: &str| {
        format!(
            r#"{{"policies": [{{"type": "target_tracking", "cluster": "demo", "service": "web",
                "metric": "ecs_cpu", "target_value": 60, "min_capacity": 2, "max_capacity": 10}}],
              "services": [{{"cluster": "demo", "service": "web", {fields}}}]}}"#
        )
    };
    let config = ScalerConfig::parse(&document(
        r#""scale_in_stabilisation_minutes": 10, "scale_in_rate": {"percent": 10, "per_minutes": 2}"#,
    ))
    .expect("a window and a rate");
    let behaviour = config
        .settings_for(&ServiceRef::new("demo", "web"))
        .scale_in;
    assert_eq!(behaviour.stabilisation_minutes, 10);
    assert_eq!(
        behaviour.rate,
        Some(ecs_control::domain::scale_in::ScaleInRate {
            limit: ecs_control::domain::scale_in::RateLimit::Percent(10),
            per_minutes: 2
        })
    );
    for (fields, field) in [
        (
            r#""scale_in_stabilisation_minutes": 0"#,
            "services[0].scale_in_stabilisation_minutes",
        ),
        (
            r#""scale_in_stabilisation_minutes": 1441"#,
            "services[0].scale_in_stabilisation_minutes",
        ),
        (
            r#""scale_in_rate": {"tasks": 0, "per_minutes": 1}"#,
            "services[0].scale_in_rate.tasks",
        ),
        (
            r#""scale_in_rate": {"percent": 101, "per_minutes": 1}"#,
            "services[0].scale_in_rate.percent",
        ),
        (
            r#""scale_in_rate": {"tasks": 1, "percent": 5, "per_minutes": 1}"#,
            "services[0].scale_in_rate",
        ),
        (
            r#""scale_in_rate": {"tasks": 1, "per_minutes": 0}"#,
            "services[0].scale_in_rate.per_minutes",
        ),
        (
            r#""scale_in_rate": {"tasks": 1}"#,
            "services[0].scale_in_rate",
        ),
    ] {
        let err = ScalerConfig::parse(&document(fields)).expect_err(fields);
        assert_eq!(err.field, field, "{fields}: {err}");
    }
}
