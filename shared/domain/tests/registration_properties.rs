//! Invariants of the target diff, over generated target groups and task sets.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use ecs_control_domain::registration::{diff, HealthState, RegisteredTarget, Target};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const PORT: u16 = 8080;

fn state() -> impl Strategy<Value = HealthState> {
    prop_oneof![
        Just(HealthState::Initial),
        Just(HealthState::Healthy),
        Just(HealthState::Unhealthy),
        Just(HealthState::Unused),
        Just(HealthState::Draining),
        Just(HealthState::Unavailable),
    ]
}

/// A target group: (ip index, port, state), with unique (ip, port).
fn target_group() -> impl Strategy<Value = Vec<RegisteredTarget>> {
    proptest::collection::btree_map(
        (0u8..40, prop_oneof![Just(PORT), Just(9090u16)]),
        state(),
        0..60,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|((ip, port), state)| RegisteredTarget {
                target: Target::new(format!("10.0.0.{ip}"), port),
                state,
                reason: None,
            })
            .collect()
    })
}

fn running() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set((0u8..40).prop_map(|i| format!("10.0.0.{i}")), 0..40)
}

/// ELBv2's effect: registering makes a target active, deregistering makes it drain.
fn apply(
    current: &[RegisteredTarget],
    register: &[Target],
    deregister: &[Target],
) -> BTreeMap<Target, HealthState> {
    let mut group: BTreeMap<Target, HealthState> = current
        .iter()
        .map(|r| (r.target.clone(), r.state))
        .collect();
    for t in register {
        group.insert(t.clone(), HealthState::Initial);
    }
    for t in deregister {
        group.insert(t.clone(), HealthState::Draining);
    }
    group
}

proptest! {
    #[test]
    fn after_the_diff_the_group_holds_exactly_the_running_tasks(current in target_group(), running in running()) {
        let d = diff(PORT, &running, &current);
        let after = apply(&current, &d.register, &d.deregister);

        let active: BTreeSet<String> = after
            .iter()
            .filter(|(t, s)| t.port == PORT && **s != HealthState::Draining)
            .map(|(t, _)| t.ip.clone())
            .collect();
        // A running task whose target still drains waits: ELBv2 documents
        // that a target is registered again only after its deregistration
        // delay, so it is named to wait and left draining.
        let draining: BTreeSet<String> = current
            .iter()
            .filter(|r| r.target.port == PORT && r.state == HealthState::Draining)
            .map(|r| r.target.ip.clone())
            .collect();
        let expected: BTreeSet<String> = running.difference(&draining).cloned().collect();
        prop_assert_eq!(&active, &expected);
        let waiting: BTreeSet<String> = d.wait_for_drain.iter().map(|t| t.ip.clone()).collect();
        let should_wait: BTreeSet<String> = running.intersection(&draining).cloned().collect();
        prop_assert_eq!(&waiting, &should_wait);

        for before in &current {
            let now = after.get(&before.target).copied();
            if before.target.port != PORT {
                // Foreign targets are never touched.
                prop_assert_eq!(now, Some(before.state));
            } else if before.state == HealthState::Draining && !running.contains(&before.target.ip) {
                // Draining targets are left to drain.
                prop_assert_eq!(now, Some(HealthState::Draining));
            }
        }
        prop_assert!(d.register.iter().chain(&d.deregister).all(|t| t.port == PORT));
    }

    #[test]
    fn a_second_diff_after_applying_the_first_is_empty(current in target_group(), running in running()) {
        let d = diff(PORT, &running, &current);
        let after: Vec<RegisteredTarget> = apply(&current, &d.register, &d.deregister)
            .into_iter()
            .map(|(target, state)| RegisteredTarget { target, state, reason: None })
            .collect();
        prop_assert!(diff(PORT, &running, &after).is_empty());
    }
}
