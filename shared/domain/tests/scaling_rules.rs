//! Table tests for the step scaling rules.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control_domain::policy::ThresholdSide;
use ecs_control_domain::policy::{
    AdjustmentType, CapacityBounds, Cooldowns, MetricAggregation, ScalingPolicy, StepAdjustment,
};
use ecs_control_domain::scaling::{
    choose, evaluate, percent_change, trigger_key, Breach, BreachSource, Choice, Clamp, Direction,
    Hold, Limits, ScalingMemory, ServiceState,
};
use ecs_control_domain::scaling::{decide, rollout_in_progress, MemoryStatus, RolloutPart};
use ecs_control_domain::service::ServiceRef;

/// A policy evaluation for an alarm that fires above its threshold.
fn evaluate_above(
    policy: &ScalingPolicy,
    breach: Breach,
    service: &ServiceState,
    now: DateTime<Utc>,
) -> ecs_control_domain::scaling::PolicyEvaluation {
    evaluate(
        policy,
        breach,
        false,
        Limits::new(policy.bounds),
        service,
        now,
    )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn step(lo: Option<f64>, hi: Option<f64>, adjustment: i64) -> StepAdjustment {
    StepAdjustment {
        metric_interval_lower_bound: lo,
        metric_interval_upper_bound: hi,
        scaling_adjustment: adjustment,
    }
}

/// +1 for a breach in [0, 10), +3 from 10 up; bounds [2, 10]; cooldowns 60 s out, 300 s in.
fn scale_out_policy() -> ScalingPolicy {
    ScalingPolicy {
        alarm: "cpu-high".into(),
        target: ServiceRef::new("prod", "web"),
        adjustment_type: AdjustmentType::ChangeInCapacity,
        steps: vec![step(Some(0.0), Some(10.0), 1), step(Some(10.0), None, 3)],
        min_adjustment_magnitude: None,
        metric_aggregation: MetricAggregation::Average,
        bounds: CapacityBounds { min: 2, max: 10 },
        cooldowns: Cooldowns {
            scale_out_seconds: 60,
            scale_in_seconds: 300,
        },
    }
}

fn scale_in_policy() -> ScalingPolicy {
    ScalingPolicy {
        alarm: "cpu-low".into(),
        steps: vec![step(None, Some(0.0), -1)],
        ..scale_out_policy()
    }
}

fn service(desired: u32) -> ServiceState {
    ServiceState {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/web".into(),
        desired_count: desired,
        running_count: desired,
        pending_count: 0,
        deployment_in_progress: false,
        task_definition: None,
        memory: ScalingMemory::default(),
        drill_in_progress: None,
    }
}

fn breach(value: f64, threshold: f64) -> Breach {
    Breach::Measured {
        metric_value: value,
        threshold,
        source: BreachSource::ReasonData,
    }
}

#[test]
fn step_is_chosen_by_breach_size() {
    // (metric value, threshold 70, expected target from 4)
    for (value, expected) in [(70.0, 5), (79.9, 5), (80.0, 7), (150.0, 7)] {
        let e = evaluate_above(&scale_out_policy(), breach(value, 70.0), &service(4), now());
        assert_eq!(e.target, Some(expected), "value {value}: {e:?}");
        assert_eq!(e.direction, Some(Direction::Out));
    }
}

#[test]
fn a_breach_outside_every_step_holds() {
    let e = evaluate_above(&scale_out_policy(), breach(60.0, 70.0), &service(4), now());
    assert_eq!(e.held_by, Some(Hold::NoMatchingStep));
    assert_eq!(e.target, None);
    assert!(e.rule.contains("within no step"), "{}", e.rule);
}

#[test]
fn unknown_breach_uses_the_step_nearest_the_threshold_and_says_so() {
    let e = evaluate_above(
        &scale_out_policy(),
        Breach::Unknown {
            why: "composite alarm".into(),
        },
        &service(4),
        now(),
    );
    assert_eq!(e.target, Some(5));
    assert!(
        e.rule.contains("breach unknown (composite alarm)"),
        "{}",
        e.rule
    );
}

#[test]
fn result_is_clamped_to_max_and_min() {
    let e = evaluate_above(&scale_out_policy(), breach(99.0, 70.0), &service(9), now());
    assert_eq!(
        (e.target, e.clamped_by),
        (Some(10), Some(Clamp::MaxCapacity))
    );

    let e = evaluate_above(&scale_out_policy(), breach(99.0, 70.0), &service(10), now());
    assert_eq!((e.target, e.held_by), (None, Some(Hold::AtMaxCapacity)));

    let e = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &service(2), now());
    assert_eq!((e.target, e.held_by), (None, Some(Hold::AtMinCapacity)));
}

#[test]
fn percent_change_rounds_toward_zero_and_honours_min_magnitude() {
    // (base, percent, min magnitude, expected delta)
    for (base, percent, min, expected) in [
        (4, 25, None, 1),
        (4, 25, Some(2), 2),
        (10, 33, None, 3),
        (10, -33, None, -3),
        // 0.3 of a task is one task; -0.3 is minus one.
        (3, 10, None, 1),
        (3, -10, None, -1),
        // +50% of 1 is 0.5: one task.
        (1, 50, None, 1),
        (12, -50, None, -6),
        // 12.7 rounds down; -6.67 rounds up.
        (127, 10, None, 12),
        (667, -1, None, -6),
        (3, 10, Some(1), 1),
        (3, -10, Some(1), -1),
        (200, 50, Some(5), 100),
        (0, 100, Some(1), 1),
    ] {
        assert_eq!(
            percent_change(base, percent, min),
            expected,
            "{percent}% of {base} with min {min:?}"
        );
    }
}

#[test]
fn exact_capacity_sets_the_count() {
    let policy = ScalingPolicy {
        adjustment_type: AdjustmentType::ExactCapacity,
        steps: vec![step(Some(0.0), None, 8)],
        ..scale_out_policy()
    };
    let e = evaluate_above(&policy, breach(71.0, 70.0), &service(3), now());
    assert_eq!(e.target, Some(8));
    let e = evaluate_above(&policy, breach(71.0, 70.0), &service(8), now());
    assert_eq!(e.held_by, Some(Hold::AlreadyAtTarget));
}

#[test]
fn capacity_added_in_a_scale_out_cooldown_counts_toward_the_next_step() {
    // +1 happened 30 s ago from 4 (now 5); a +3 step inside the cooldown adds 2 more.
    let mut svc = service(5);
    svc.memory = ScalingMemory {
        last_scaled_at: Some(now() - TimeDelta::seconds(30)),
        last_direction: Some(Direction::Out),
        scale_out_base: Some(4),
        ..ScalingMemory::default()
    };
    let e = evaluate_above(&scale_out_policy(), breach(90.0, 70.0), &svc, now());
    assert_eq!(e.computed_from, 4);
    assert_eq!(e.target, Some(7));
    assert!(e.within_scale_out_cooldown);

    // The same +1 step inside the cooldown adds nothing.
    let e = evaluate_above(&scale_out_policy(), breach(75.0, 70.0), &svc, now());
    assert_eq!((e.target, e.held_by), (None, Some(Hold::ScaleOutCooldown)));

    // After the cooldown, +1 applies to the current count again.
    svc.memory.last_scaled_at = Some(now() - TimeDelta::seconds(61));
    let e = evaluate_above(&scale_out_policy(), breach(75.0, 70.0), &svc, now());
    assert_eq!((e.computed_from, e.target), (5, Some(6)));
}

#[test]
fn a_top_up_inside_the_cooldown_keeps_its_start_and_base() {
    let started = now() - TimeDelta::seconds(30);
    let before = ScalingMemory {
        last_scaled_at: Some(started),
        last_direction: Some(Direction::Out),
        scale_out_base: Some(4),
        ..ScalingMemory::default()
    };
    let mut svc = service(5);
    svc.memory = before.clone();
    let e = evaluate_above(&scale_out_policy(), breach(90.0, 70.0), &svc, now());
    let after = before.after(&e, 5, "k", now());
    assert_eq!(after.last_scaled_at, Some(started));
    assert_eq!(after.scale_out_base, Some(4));
    assert_eq!(after.last_target, Some(7));
}

#[test]
fn scale_in_waits_out_its_cooldown_and_any_deployment() {
    let mut svc = service(6);
    svc.memory.last_scaled_at = Some(now() - TimeDelta::seconds(100));
    svc.memory.last_direction = Some(Direction::Out);
    let e = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &svc, now());
    assert_eq!(e.held_by, Some(Hold::ScaleInCooldown));

    svc.memory.last_scaled_at = Some(now() - TimeDelta::seconds(301));
    let e = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &svc, now());
    assert_eq!(e.target, Some(5));

    svc.deployment_in_progress = true;
    let e = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &svc, now());
    assert_eq!(e.held_by, Some(Hold::DeploymentInProgress));
}

#[test]
fn scale_out_goes_ahead_during_a_scale_in_cooldown_and_a_deployment() {
    let mut svc = service(4);
    svc.deployment_in_progress = true;
    svc.memory.last_scaled_at = Some(now() - TimeDelta::seconds(10));
    svc.memory.last_direction = Some(Direction::In);
    let e = evaluate_above(&scale_out_policy(), breach(75.0, 70.0), &svc, now());
    assert_eq!(e.target, Some(5));
    assert!(!e.within_scale_out_cooldown);
}

#[test]
fn scale_out_wins_and_scale_in_needs_everyone() {
    let svc = service(6);
    let mut old = svc.clone();
    old.memory.last_scaled_at = Some(now() - TimeDelta::hours(1));
    let out = evaluate_above(&scale_out_policy(), breach(75.0, 70.0), &old, now());
    let big_out = evaluate_above(&scale_out_policy(), breach(95.0, 70.0), &old, now());
    let scale_in = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &old, now());

    assert_eq!(
        choose(&[out, big_out, scale_in.clone()]),
        Choice::Apply { index: 1 }
    );
    assert_eq!(
        choose(std::slice::from_ref(&scale_in)),
        Choice::Apply { index: 0 }
    );

    // A scale-out held at max still vetoes a scale-in.
    let mut at_max = old.clone();
    at_max.desired_count = 10;
    let held_out = evaluate_above(&scale_out_policy(), breach(75.0, 70.0), &at_max, now());
    let wants_in = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &at_max, now());
    assert_eq!(
        choose(&[wants_in, held_out]),
        Choice::ScaleInVetoed {
            by_policy: "cpu-high".into()
        }
    );
    assert_eq!(choose(&[]), Choice::Nothing);
}

#[test]
fn trigger_keys_fit_a_tag_and_stay_distinct() {
    let short = "alarm:cpu-high@2026-11-21T10:00:00.000Z";
    assert_eq!(trigger_key(short), short);
    let a = format!("alarm:{}@1", "x".repeat(300));
    let b = format!("alarm:{}@2", "x".repeat(300));
    assert!(trigger_key(&a).len() <= 200);
    assert_ne!(trigger_key(&a), trigger_key(&b));
    assert_eq!(trigger_key(&a), trigger_key(&a));
}

#[test]
fn step_bounds_below_the_threshold_are_exclusive_below_and_inclusive_above() {
    let steps = [
        step(Some(-10.0), Some(0.0), -1),
        step(None, Some(-10.0), -2),
        step(Some(0.0), None, 1),
    ];
    let matching = |breach: f64, side: ThresholdSide| {
        steps
            .iter()
            .filter(|s| s.contains(breach, side))
            .map(|s| s.scaling_adjustment)
            .collect::<Vec<_>>()
    };
    // Above the threshold: [lo, hi).
    assert_eq!(matching(0.0, ThresholdSide::Above), [1]);
    assert_eq!(matching(5.0, ThresholdSide::Above), [1]);
    // Below it: (lo, hi].
    assert_eq!(matching(0.0, ThresholdSide::Below), [-1]);
    assert_eq!(matching(-10.0, ThresholdSide::Below), [-2]);
    assert_eq!(matching(-9.5, ThresholdSide::Below), [-1]);
    // The side of a zero breach is the alarm's: <= alarms look below.
    assert_eq!(ThresholdSide::of(0.0, true), ThresholdSide::Below);
    assert_eq!(ThresholdSide::of(0.0, false), ThresholdSide::Above);
    assert_eq!(ThresholdSide::of(-0.5, false), ThresholdSide::Below);
}

#[test]
fn a_le_alarm_exactly_at_its_threshold_takes_the_step_ending_at_zero() {
    let policy = ScalingPolicy {
        alarm: "cpu-low".into(),
        steps: vec![step(None, Some(0.0), -1), step(Some(0.0), None, -3)],
        ..scale_out_policy()
    };
    let e = evaluate(
        &policy,
        breach(30.0, 30.0),
        true,
        Limits::new(policy.bounds),
        &service(6),
        now(),
    );
    assert_eq!(e.target, Some(5), "{e:?}");
    assert!(e.rule.contains("(-inf, 0] -1"), "{}", e.rule);
}

#[test]
fn a_breach_no_step_covers_vetoes_scale_in() {
    let high = evaluate_above(&scale_out_policy(), breach(65.0, 70.0), &service(6), now());
    assert_eq!(high.held_by, Some(Hold::NoMatchingStep));
    let low = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &service(6), now());
    assert_eq!(low.direction, Some(Direction::In));
    assert_eq!(
        choose(&[high, low]),
        Choice::ScaleInVetoed {
            by_policy: "cpu-high".into()
        }
    );
}

#[test]
fn a_drill_holding_the_service_holds_scale_in_but_not_scale_out() {
    let mut svc = service(6);
    svc.drill_in_progress = Some("scale-web-1790000000000".into());
    let e = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &svc, now());
    assert_eq!(e.held_by, Some(Hold::DrillInProgress));
    assert_eq!(e.target, None);
    let e = evaluate_above(&scale_out_policy(), breach(90.0, 70.0), &svc, now());
    assert!(e.target.is_some_and(|t| t > 6), "{e:?}");
    // A count above the bounds waits too: the drill may have raised it.
    let d = decide(
        &[],
        &service_held_by_drill(14),
        CapacityBounds { min: 2, max: 10 },
    );
    assert_eq!(
        (d.target, d.correction_held_by),
        (None, Some(Hold::DrillInProgress))
    );
}

fn service_held_by_drill(desired: u32) -> ServiceState {
    let mut svc = service(desired);
    svc.drill_in_progress = Some("scale-web-1790000000000".into());
    svc
}

#[test]
fn a_count_outside_the_bounds_is_brought_back() {
    let bounds = CapacityBounds { min: 2, max: 10 };
    // Policies holding: the bound still applies.
    let held = evaluate_above(&scale_out_policy(), breach(99.0, 70.0), &service(14), now());
    let d = decide(&[held], &service(14), bounds);
    assert_eq!((d.target, d.out_of_bounds), (Some(10), Some(14)));
    let d = decide(&[], &service(0), bounds);
    assert_eq!((d.target, d.out_of_bounds), (Some(2), Some(0)));
    // In bounds and nothing to do: nothing.
    assert_eq!(decide(&[], &service(5), bounds).target, None);
    // Above the bounds during a deployment: the scale-in waits.
    let mut deploying = service(14);
    deploying.deployment_in_progress = true;
    let d = decide(&[], &deploying, bounds);
    assert_eq!(
        (d.target, d.correction_held_by),
        (None, Some(Hold::DeploymentInProgress))
    );
    // Below them, the raise does not wait.
    deploying.desired_count = 0;
    assert_eq!(decide(&[], &deploying, bounds).target, Some(2));
}

#[test]
fn deployments_and_task_sets_suspend_scale_in() {
    let settled = RolloutPart { settling: false };
    let settling = RolloutPart { settling: true };
    for (deployments, task_sets, expected) in [
        (vec![settled], vec![], false),
        (vec![settling], vec![], true),
        (vec![settled, settled], vec![], true),
        // CODE_DEPLOY / EXTERNAL: no deployments, task sets instead.
        (vec![], vec![settled], false),
        (vec![], vec![settled, settled], true),
        (vec![], vec![settling], true),
    ] {
        assert_eq!(
            rollout_in_progress(&deployments, &task_sets),
            expected,
            "{deployments:?} {task_sets:?}"
        );
    }
}

#[test]
fn marks_answer_every_delivery_of_a_state_change_however_late() {
    let at = now();
    let memory = ScalingMemory::default().with_marks([("cpu-high", at)]);
    assert!(memory.answered("cpu-high", at));
    assert!(memory.answered("cpu-high", at - TimeDelta::hours(6)));
    assert!(!memory.answered("cpu-high", at + TimeDelta::milliseconds(1)));
    assert!(!memory.answered("cpu-low", at - TimeDelta::hours(6)));
    // A mark never moves back.
    let memory = memory.with_marks([("cpu-high", at - TimeDelta::hours(1))]);
    assert!(memory.answered("cpu-high", at));
}

#[test]
fn memory_status_tells_unapplied_from_another_writer() {
    let recorded = ScalingMemory {
        last_target: Some(6),
        last_trigger: Some("k".into()),
        ..ScalingMemory::default()
    };
    let unapplied = recorded.clone().with_applied(false);
    assert_eq!(unapplied.status(6), MemoryStatus::InEffect);
    assert_eq!(
        unapplied.status(4),
        MemoryStatus::Unapplied {
            target: 6,
            trigger: Some("k".into())
        }
    );
    let applied = recorded.with_applied(true);
    assert_eq!(
        applied.status(4),
        MemoryStatus::ChangedElsewhere {
            last_set: 6,
            found: 4
        }
    );
}

#[test]
fn the_replaced_count_tells_whether_a_change_landed_without_a_second_write() {
    // Recorded before UpdateService: 4 → 6, never marked applied afterwards.
    let recorded = ScalingMemory {
        last_target: Some(6),
        last_trigger: Some("k".into()),
        replaced: Some(4),
        ..ScalingMemory::default()
    }
    .with_applied(false);
    // Still 4: UpdateService never landed, and a retry of "k" completes it.
    assert_eq!(
        recorded.status(4),
        MemoryStatus::Unapplied {
            target: 6,
            trigger: Some("k".into())
        }
    );
    // 6: it landed.
    assert_eq!(recorded.status(6), MemoryStatus::InEffect);
    // 9: it landed and another writer moved the count since; nothing to complete.
    assert_eq!(
        recorded.status(9),
        MemoryStatus::ChangedElsewhere {
            last_set: 6,
            found: 9
        }
    );
}

/// A CPU target-tracking policy on prod/web at 60%.
fn tracking_policy(
    disable_scale_in: bool,
) -> ecs_control_domain::target_tracking::TargetTrackingPolicy {
    ecs_control_domain::target_tracking::TargetTrackingPolicy {
        name: if disable_scale_in {
            "cpu, no scale-in"
        } else {
            "cpu"
        }
        .into(),
        target: ServiceRef::new("prod", "web"),
        metric: ecs_control_domain::target_tracking::TrackedMetric::EcsCpu,
        target_value: 60.0,
        scale_out_datapoints: 3,
        scale_in_datapoints: 15,
        scale_in_ratio: 0.9,
        disable_scale_in,
        bounds: CapacityBounds { min: 2, max: 10 },
        cooldowns: Cooldowns {
            scale_out_seconds: 60,
            scale_in_seconds: 300,
        },
        fallback: None,
    }
}

/// `values` one a minute, the newest a minute before now.
fn run(values: &[f64]) -> Vec<ecs_control_domain::alarm::MetricPoint> {
    let n = values.len() as i64;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| ecs_control_domain::alarm::MetricPoint {
            at: now() - TimeDelta::minutes(n - i as i64),
            value,
        })
        .collect()
}

/// AWS: scale in "only if all of the target tracking policies (with the
/// scale-in portion enabled) are ready to scale in". A policy whose scale-in is
/// disabled has no vote, whether it sits at its target or cannot see its metric;
/// one with scale-in enabled keeps its veto (see docs/scaler.md: a step
/// policy's scale-in waits for it).
#[test]
fn only_policies_that_may_scale_in_vote_on_a_scale_in() {
    use ecs_control_domain::target_tracking::evaluate_tracking;
    let mut old = service(6);
    old.memory.last_scaled_at = Some(now() - TimeDelta::hours(1));
    let wants_in = evaluate_above(&scale_in_policy(), breach(10.0, 30.0), &old, now());
    let limits = Limits::new(CapacityBounds { min: 2, max: 10 });
    let between = run(&[55.0; 15]);
    let cases = [
        (
            tracking_policy(true),
            between.clone(),
            Choice::Apply { index: 0 },
        ),
        (
            tracking_policy(true),
            Vec::new(),
            Choice::Apply { index: 0 },
        ),
        (
            tracking_policy(false),
            between,
            Choice::ScaleInVetoed {
                by_policy: "cpu".into(),
            },
        ),
        (
            tracking_policy(false),
            Vec::new(),
            Choice::ScaleInVetoed {
                by_policy: "cpu".into(),
            },
        ),
    ];
    for (policy, points, expected) in cases {
        let tracking = evaluate_tracking(&policy, &points, limits, &old, now());
        assert!(
            matches!(
                tracking.held_by,
                Some(Hold::AlreadyAtTarget | Hold::MissingData)
            ),
            "{tracking:?}"
        );
        assert_eq!(
            choose(&[wants_in.clone(), tracking]),
            expected,
            "{} with {} datapoints",
            policy.name,
            points.len()
        );
    }
    // A policy without scale-in still wins a scale-out.
    let hot = evaluate_tracking(
        &tracking_policy(true),
        &run(&[90.0; 3]),
        limits,
        &old,
        now(),
    );
    assert_eq!(choose(&[wants_in, hot]), Choice::Apply { index: 1 });
}

/// Target tracking sets capacity "in proportion": 3 tasks at 80% of a 60%
/// target need exactly 4, whether the metric is written 80 or 0.8.
#[test]
fn target_tracking_counts_the_same_ratio_the_same_however_it_is_written() {
    use ecs_control_domain::target_tracking::tracked_count;
    for (current, metric, target, count) in [
        (3, 0.8, 0.6, 4),
        (3, 80.0, 60.0, 4),
        (7, 0.3, 0.1, 21),
        (10, 0.7, 0.1, 70),
        (3, 0.81, 0.6, 5),
        (4, 84.0, 60.0, 6),
    ] {
        assert_eq!(
            tracked_count(current, metric, target),
            count,
            "ceil({current} × {metric} / {target})"
        );
    }
}
