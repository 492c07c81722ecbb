//! Drain-first scale-in as tables: which tasks leave, across zones and by
//! age, and each step of the drain's state machine.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control_domain::drain::{
    choose_tasks, next_step, to_protect, to_release, DrainCandidate, DrainFacts, DrainMemory,
    DrainOrder, DrainPhase, DrainStep, LowerBecause, PROTECTION_MINUTES, STOP_WAIT_SECONDS,
};
use std::collections::BTreeMap;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

/// `(name, zone, started minutes after t0)`; `None` minutes: not started yet.
type Task<'a> = (&'a str, &'a str, Option<i64>);

/// Tasks, how many to remove, the order → the tasks chosen, in turn.
type ChoiceRow<'a> = (&'a [Task<'a>], usize, DrainOrder, &'a [&'a str]);

fn candidates(tasks: &[Task<'_>]) -> Vec<DrainCandidate> {
    tasks
        .iter()
        .map(|(name, zone, minute)| DrainCandidate {
            task_arn: (*name).to_string(),
            zone: (!zone.is_empty()).then(|| (*zone).to_string()),
            started_at: minute.map(|m| t0() + TimeDelta::minutes(m)),
        })
        .collect()
}

#[test]
fn tasks_leave_from_the_fullest_zone_newest_first_or_oldest_first() {
    let six = [
        ("a1", "az-a", Some(1)),
        ("a2", "az-a", Some(2)),
        ("a3", "az-a", Some(3)),
        ("b1", "az-b", Some(4)),
        ("b2", "az-b", Some(5)),
        ("c1", "az-c", Some(6)),
    ];
    let table: &[ChoiceRow<'_>] = &[
        // The fullest zone gives first; then zones tie and the first named gives.
        (&six, 1, DrainOrder::NewestFirst, &["a3"]),
        (&six, 2, DrainOrder::NewestFirst, &["a3", "a2"]),
        (&six, 3, DrainOrder::NewestFirst, &["a3", "a2", "b2"]),
        (&six, 4, DrainOrder::NewestFirst, &["a3", "a2", "b2", "a1"]),
        (&six, 3, DrainOrder::OldestFirst, &["a1", "a2", "b1"]),
        // Never more than there are.
        (
            &six,
            9,
            DrainOrder::NewestFirst,
            &["a3", "a2", "b2", "a1", "b1", "c1"],
        ),
        (&six, 0, DrainOrder::NewestFirst, &[]),
        // A task not started yet counts as the newest.
        (
            &[
                ("x", "az-a", Some(1)),
                ("pending", "az-a", None),
                ("y", "az-a", Some(9)),
            ],
            1,
            DrainOrder::NewestFirst,
            &["pending"],
        ),
        // Equal start times: the ARN decides, the same way every time.
        (
            &[("t2", "az-a", Some(1)), ("t1", "az-a", Some(1))],
            1,
            DrainOrder::NewestFirst,
            &["t2"],
        ),
        // Tasks without a zone are one zone.
        (
            &[
                ("n1", "", Some(1)),
                ("n2", "", Some(2)),
                ("a1", "az-a", Some(3)),
            ],
            1,
            DrainOrder::NewestFirst,
            &["n2"],
        ),
    ];
    for (tasks, remove, order, expected) in table {
        let chosen = choose_tasks(&candidates(tasks), *remove, *order);
        assert_eq!(chosen, *expected, "{tasks:?} remove {remove} {order:?}");
    }
}

#[test]
fn the_tasks_that_stay_are_as_balanced_across_zones_as_they_can_be() {
    // Every split of up to 9 tasks over three zones, every removal.
    for a in 0..=3usize {
        for b in 0..=3usize {
            for c in 0..=3usize {
                let mut tasks = Vec::new();
                for (zone, n) in [("az-a", a), ("az-b", b), ("az-c", c)] {
                    for k in 0..n {
                        tasks.push(DrainCandidate {
                            task_arn: format!("{zone}-{k}"),
                            zone: Some(zone.to_string()),
                            started_at: Some(t0() + TimeDelta::minutes(i64::try_from(k).unwrap())),
                        });
                    }
                }
                for remove in 0..=tasks.len() {
                    let chosen = choose_tasks(&tasks, remove, DrainOrder::NewestFirst);
                    assert_eq!(chosen.len(), remove);
                    let mut left: BTreeMap<&str, usize> = BTreeMap::new();
                    for t in tasks.iter().filter(|t| !chosen.contains(&t.task_arn)) {
                        *left.entry(t.zone.as_deref().unwrap()).or_default() += 1;
                    }
                    // No zone keeps more than one task over a zone that had
                    // tasks to give.
                    let original: BTreeMap<&str, usize> = [("az-a", a), ("az-b", b), ("az-c", c)]
                        .into_iter()
                        .collect();
                    let most = left.values().copied().max().unwrap_or(0);
                    for (zone, had) in &original {
                        let kept = left.get(zone).copied().unwrap_or(0);
                        if kept < *had {
                            assert!(
                                most <= kept + 1,
                                "{a}/{b}/{c} remove {remove}: {zone} gave a task while another zone kept {most} > {kept} + 1"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn draining(minutes_ago: i64) -> DrainMemory {
    DrainMemory::new(t0() - TimeDelta::minutes(minutes_ago), 6, 2)
}

fn lowered_to(desired: u32, running: usize) -> DrainFacts {
    DrainFacts {
        desired_count: desired,
        ..facts(running, 0, 0)
    }
}

fn lowered(minutes_ago: i64) -> DrainMemory {
    DrainMemory {
        phase: DrainPhase::Lowered,
        lowered_at: Some(t0() - TimeDelta::minutes(minutes_ago)),
        ..draining(minutes_ago + 5)
    }
}

fn facts(running: usize, registered: usize, draining: usize) -> DrainFacts {
    DrainFacts {
        desired_count: 6,
        still_running: running,
        still_registered: registered,
        still_draining: draining,
        staying: 2,
        lowering_held: false,
    }
}

#[test]
fn each_step_of_the_drain_follows_from_what_was_found() {
    let bound = 360;
    let table: Vec<(&str, DrainMemory, DrainFacts, DrainStep)> = vec![
        (
            "targets still registered after a crash: deregister again",
            draining(1),
            facts(4, 2, 2),
            DrainStep::Deregister,
        ),
        (
            "draining within the bound: wait",
            draining(2),
            facts(4, 0, 4),
            DrainStep::WaitForDrain { draining: 4 },
        ),
        (
            "drained: lower",
            draining(2),
            facts(4, 0, 0),
            DrainStep::Lower {
                to: 2,
                why: LowerBecause::Drained,
            },
        ),
        (
            "still draining at the bound: lower anyway",
            draining(6),
            facts(4, 0, 1),
            DrainStep::Lower {
                to: 2,
                why: LowerBecause::BoundReached,
            },
        ),
        (
            "the chosen tasks stopped on their own, not replaced: lower",
            draining(1),
            facts(0, 0, 3),
            DrainStep::Lower {
                to: 2,
                why: LowerBecause::NothingToDrain,
            },
        ),
        (
            "fewer chosen tasks than the scale-in removes (5 listed of 6): lower only to the tasks that stay",
            draining(2),
            DrainFacts {
                staying: 3,
                ..facts(3, 0, 0)
            },
            DrainStep::Lower {
                to: 3,
                why: LowerBecause::Drained,
            },
        ),
        (
            "the chosen tasks were replaced: nothing may come down, the drain is void",
            draining(1),
            DrainFacts {
                staying: 6,
                ..facts(0, 0, 0)
            },
            DrainStep::Abandon { found: 6 },
        ),
        (
            "drained during a deployment, a drill or a suspension: wait",
            draining(2),
            DrainFacts {
                lowering_held: true,
                ..facts(4, 0, 0)
            },
            DrainStep::LoweringHeld,
        ),
        (
            "still draining when its holds run out: void",
            draining(12),
            facts(4, 0, 4),
            DrainStep::Abandon { found: 6 },
        ),
        (
            "the count changed elsewhere while draining: abandon",
            draining(1),
            DrainFacts {
                desired_count: 8,
                ..facts(4, 0, 4)
            },
            DrainStep::Abandon { found: 8 },
        ),
        (
            "lowered, ECS still stopping: wait",
            lowered(1),
            lowered_to(2, 2),
            DrainStep::WaitForStop { running: 2 },
        ),
        (
            "lowered, stopped: finish",
            lowered(1),
            lowered_to(2, 0),
            DrainStep::Finish,
        ),
        (
            "lowered long ago, a task still running: finish (protection lifts, ECS decides)",
            lowered(STOP_WAIT_SECONDS / 60),
            lowered_to(2, 1),
            DrainStep::Finish,
        ),
        (
            "recorded as lowered, the count still the old one: lower again",
            lowered(1),
            lowered_to(6, 4),
            DrainStep::Lower {
                to: 2,
                why: LowerBecause::NotYetLowered,
            },
        ),
        (
            "lowered, then scaled out by someone: wait for the chosen, then finish",
            lowered(1),
            lowered_to(4, 1),
            DrainStep::WaitForStop { running: 1 },
        ),
    ];
    for (what, memory, found, expected) in table {
        assert_eq!(next_step(&memory, found, t0(), bound), expected, "{what}");
    }
}

#[test]
fn the_drain_memory_reads_back_from_its_tag_and_refuses_anything_else() {
    for memory in [draining(3), lowered(2)] {
        assert_eq!(DrainMemory::decode(&memory.encode()), Some(memory.clone()));
        assert!(memory.encode().len() < 64);
    }
    for bad in [
        "",
        "1/6/2",
        "x/6/2/d",
        "1/6/2/q",
        "1/6/2/l",
        "1/6/2/d/extra",
        // A drain only ever lowers the count.
        "1/2/6/d",
        "1/2/2/d",
    ] {
        assert_eq!(DrainMemory::decode(bad), None, "{bad:?}");
    }
    // A held-out task returns to its groups after the bound, the wait for
    // ECS, and a minute.
    let memory = draining(0);
    assert_eq!(
        memory.hold_until(360) - memory.started,
        TimeDelta::seconds(360 + STOP_WAIT_SECONDS + 60)
    );
}

#[test]
fn the_drain_protects_and_releases_only_what_is_its_own() {
    let at = |minutes: i64| Some(t0() + TimeDelta::minutes(minutes));
    let ours = i64::from(PROTECTION_MINUTES);
    let staying = vec![
        ("unprotected".to_string(), None),
        ("expiring-sooner".to_string(), at(1)),
        ("app-protected-for-an-hour".to_string(), at(60)),
        ("ours".to_string(), at(ours)),
    ];
    // Lowering at t0: everything without protection outlasting the drain's.
    assert_eq!(
        to_protect(&staying, t0() + TimeDelta::minutes(ours)),
        ["unprotected", "expiring-sooner"]
    );
    // Finishing: only protection that ends when the drain's does is lifted;
    // the application's hour is left alone.
    assert_eq!(to_release(&staying, t0()), ["expiring-sooner", "ours"]);
    let renewed = vec![("ours-renewed-by-the-app".to_string(), at(ours + 30))];
    assert!(to_release(&renewed, t0()).is_empty());
}
