//! Invariants of the scaling decision, over generated policies and services.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control_domain::policy::{
    AdjustmentType, CapacityBounds, Cooldowns, MetricAggregation, ScalingPolicy, StepAdjustment,
};
use ecs_control_domain::scaling::{
    adjusted, evaluate, percent_change, Breach, BreachSource, Direction, Limits, ScalingMemory,
    ServiceState,
};
use ecs_control_domain::service::ServiceRef;
use proptest::prelude::*;

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

fn adjustment_type() -> impl Strategy<Value = AdjustmentType> {
    prop_oneof![
        Just(AdjustmentType::ChangeInCapacity),
        Just(AdjustmentType::PercentChangeInCapacity),
        Just(AdjustmentType::ExactCapacity),
    ]
}

prop_compose! {
    fn policy()(
        adjustment_type in adjustment_type(),
        cut in -50.0f64..50.0,
        below in -1000i64..1000,
        above in -1000i64..1000,
        min in 0u32..50,
        span in 0u32..200,
        min_magnitude in proptest::option::of(1u32..20),
        out_cd in 0u32..600,
        in_cd in 0u32..600,
    ) -> ScalingPolicy {
        let fix = |a: i64| if adjustment_type == AdjustmentType::ExactCapacity { a.abs() } else { a };
        ScalingPolicy {
            alarm: "a".into(),
            target: ServiceRef::new("c", "s"),
            adjustment_type,
            steps: vec![
                StepAdjustment { metric_interval_lower_bound: None, metric_interval_upper_bound: Some(cut), scaling_adjustment: fix(below) },
                StepAdjustment { metric_interval_lower_bound: Some(cut), metric_interval_upper_bound: None, scaling_adjustment: fix(above) },
            ],
            metric_aggregation: MetricAggregation::Average,
            min_adjustment_magnitude: (adjustment_type == AdjustmentType::PercentChangeInCapacity).then_some(min_magnitude).flatten(),
            bounds: CapacityBounds { min, max: min + span },
            cooldowns: Cooldowns { scale_out_seconds: out_cd, scale_in_seconds: in_cd },
        }
    }
}

prop_compose! {
    fn service()(
        desired in 0u32..400,
        deploying in any::<bool>(),
        ago in proptest::option::of(0i64..1200),
        direction in proptest::option::of(prop_oneof![Just(Direction::Out), Just(Direction::In)]),
        base in proptest::option::of(0u32..400),
    ) -> ServiceState {
        ServiceState {
            arn: "arn".into(),
            desired_count: desired,
            running_count: desired,
            pending_count: 0,
            deployment_in_progress: deploying,
            task_definition: None,
            memory: ScalingMemory {
                last_scaled_at: ago.map(|s| now() - TimeDelta::seconds(s)),
                last_direction: direction,
                scale_out_base: base,
                ..ScalingMemory::default()
            },
            drill_in_progress: None,
        }
    }
}

fn breach() -> impl Strategy<Value = Breach> {
    prop_oneof![
        (-200.0f64..200.0).prop_map(|v| Breach::Measured {
            metric_value: v,
            threshold: 0.0,
            source: BreachSource::ReasonData,
        }),
        Just(Breach::Unknown { why: "test".into() }),
    ]
}

proptest! {
    /// A change never lands outside [min, max], and never moves away from the bounds.
    #[test]
    fn bounds_are_never_crossed(policy in policy(), svc in service(), breach in breach()) {
        let e = evaluate_above(&policy, breach, &svc, now());
        if let Some(target) = e.target {
            prop_assert!(target >= policy.bounds.min && target <= policy.bounds.max, "{e:?}");
            prop_assert_ne!(target, svc.desired_count);
            match e.direction {
                Some(Direction::Out) => prop_assert!(target > svc.desired_count),
                Some(Direction::In) => prop_assert!(target < svc.desired_count),
                None => prop_assert!(false, "a change without a direction"),
            }
        }
    }

    /// Applying a decision and then seeing the same trigger again changes nothing more:
    /// the second evaluation of the same alarm either holds or asks for the count already set.
    #[test]
    fn repeating_a_trigger_never_scales_twice(policy in policy(), svc in service(), breach in breach()) {
        let first = evaluate_above(&policy, breach.clone(), &svc, now());
        if let Some(target) = first.target {
            let mut after = svc.clone();
            after.desired_count = target;
            after.memory = svc.memory.after(&first, svc.desired_count, "k", now());
            let again = evaluate_above(&policy, breach, &after, now());
            // With a cooldown configured the repeat is absorbed by the rules alone; with
            // none, the trigger key the handler records is what stops it.
            let cooldown = match first.direction {
                Some(Direction::Out) => policy.cooldowns.scale_out_seconds,
                _ => policy.cooldowns.scale_in_seconds,
            };
            if cooldown > 0 {
                prop_assert!(again.target.is_none(), "{first:?} then {again:?}");
            }
        }
    }

    /// The rounding EC2 Auto Scaling documents for percent steps: a result
    /// greater than 1 is rounded down, less than -1 rounded up, and anything
    /// strictly between 0 and 1 (or -1 and 0) becomes 1 (or -1); then the
    /// minimum magnitude, when set, raises a smaller change to it.
    #[test]
    fn percent_rounding(base in 0u32..10_000, percent in -1000i64..1000, min in proptest::option::of(1u32..50)) {
        let delta = percent_change(base, percent, min);
        let exact = f64::from(base) * percent as f64 / 100.0;
        let rounded = if exact > 1.0 {
            exact.floor()
        } else if exact < -1.0 {
            exact.ceil()
        } else if exact > 0.0 {
            1.0
        } else if exact < 0.0 {
            -1.0
        } else {
            exact
        } as i64;
        let expected = match min {
            Some(m) if percent != 0 && rounded.abs() < i64::from(m) => i64::from(m) * percent.signum(),
            _ => rounded,
        };
        prop_assert_eq!(delta, expected);
    }

    /// No adjustment, percentage or count in range overflows or panics, and the
    /// result never leaves the bounds.
    #[test]
    fn arithmetic_saturates(
        adjustment_type in adjustment_type(),
        base in any::<u32>(),
        adjustment in -1_000_000i64..=1_000_000,
        min in proptest::option::of(any::<u32>()),
        lo in 0u32..1_000_000,
        span in 0u32..1_000_000,
    ) {
        let proposed = adjusted(adjustment_type, base, adjustment, min);
        let bounds = CapacityBounds { min: lo, max: lo + span };
        let target = bounds.clamp(proposed);
        prop_assert!(target >= bounds.min && target <= bounds.max);
    }
}
