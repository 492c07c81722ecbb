//! The drill's records: the invocation's journal (every step, in order, as
//! it happened) and what a running drill saves on its service for a rollback
//! after a crash (the lock and the saved state), which must read back exactly
//! what was written and read a damaged tag as no record, never as another.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, Utc};
use drill::journal::{Journal, Step};
use ecs_control::domain::drill::{Lock, LockState, SavedState, Snapshot};
use ecs_control::domain::registration::Target;

#[test]
fn the_journal_keeps_every_step_in_order_with_its_drill_and_verdict() {
    let mut journal = Journal::default();
    let steps = [
        (Step::Check, "steady state holds", true),
        (Step::Action, "desired count 2 -> 4", true),
        (Step::Observation, "desired 4, running 3", false),
        (Step::Rollback, "desired count 4 -> 2", true),
        (Step::Verdict, "Passed", true),
    ];
    for (step, what, ok) in steps {
        journal.record("scale-web-1", step, what, ok);
    }
    let kept: Vec<(Step, &str, bool)> = journal
        .entries
        .iter()
        .map(|e| (e.step, e.what.as_str(), e.ok))
        .collect();
    assert_eq!(kept, steps);
    assert!(journal.entries.iter().all(|e| e.drill_id == "scale-web-1"));
    assert!(journal.entries.windows(2).all(|w| w[0].at <= w[1].at));
    // As the report and the log carry it.
    let line = serde_json::to_value(&journal.entries[2]).unwrap();
    assert_eq!(line["step"], "observation");
    assert_eq!(line["ok"], false);
    assert_eq!(line["what"], "desired 4, running 3");
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap()
}

/// A small seeded generator (xorshift): the same states every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn maybe<T>(&mut self, value: T) -> Option<T> {
        (self.below(2) == 0).then_some(value)
    }
}

fn state(rng: &mut Seeded) -> SavedState {
    let name = ["scale-web", "stop_tasks.1", "a", "drain-one-web-target"]
        [usize::try_from(rng.below(4)).unwrap()];
    let desired = u32::try_from(rng.below(2_000)).unwrap();
    let delta = i64::try_from(rng.below(2_001)).unwrap() - 1_000;
    let count_delta = rng.maybe(delta);
    let ip = ["10.0.0.7", "fd00:ec2::2a", "192.168.1.200"][usize::try_from(rng.below(3)).unwrap()];
    let port = u16::try_from(rng.below(65_536)).unwrap();
    let restore_to = u32::try_from(rng.below(50)).unwrap();
    SavedState {
        drill_id: format!("{name}-{}", rng.below(1 << 45)),
        drill_name: name.to_string(),
        deadline: at(i64::try_from(rng.below(1 << 30)).unwrap()),
        snapshot: Snapshot {
            desired_count: desired,
            drained: rng.maybe(Target::new(ip, port)),
        },
        alarm: rng.maybe("web-cpu-high".to_string()),
        target_group_arn: rng.maybe(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
                .to_string(),
        ),
        count_delta,
        // Without a delta, there is nothing to confirm.
        delta_confirmed: count_delta.is_some() && rng.below(2) == 0,
        restore_to: count_delta.and_then(|_| rng.maybe(restore_to)),
    }
}

#[test]
fn a_saved_state_reads_back_exactly_what_was_written() {
    let mut rng = Seeded(0x5eed_d0c5);
    for _ in 0..2_000 {
        let saved = state(&mut rng);
        let written = saved.encode();
        assert_eq!(SavedState::decode(&written), Some(saved), "{written}");
        // An ECS tag value is at most 256 characters of `[\w\s_.:/=+\-@]`.
        assert!(
            written.len() <= 256,
            "{} characters: {written}",
            written.len()
        );
        assert!(
            written
                .chars()
                .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c)),
            "{written}"
        );
    }
}

#[test]
fn a_damaged_saved_state_is_no_state_never_another() {
    let saved = SavedState {
        drill_id: "scale-web-1795476762193".into(),
        drill_name: "scale-web".into(),
        deadline: at(600),
        snapshot: Snapshot {
            desired_count: 2,
            drained: Some(Target::new("10.0.0.7", 8080)),
        },
        alarm: Some("web-cpu-high".into()),
        target_group_arn: Some(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/01".into(),
        ),
        count_delta: Some(2),
        delta_confirmed: true,
        restore_to: None,
    };
    let written = saved.encode();
    for damaged in [
        String::new(),
        "-".into(),
        "garbage".into(),
        written.replace("/2:2/", "/two:2/"),
        written.replace("/2:2/", "/2:x2/"),
        written.replace("/2:2/", "/-2:2/"),
        written.replace("/2:2/", "/2:2:z/"),
        written.replace("10.0.0.7:8080", "10.0.0.7:80800"),
        written.replace("10.0.0.7:8080", "10.0.0.7"),
        written.replace("1790000600", "soon"),
        written.replace("1790000600", "99999999999999999999"),
        // Cut after the count: the older form has no alarm and no group,
        // but keeps its target; a cut through the target leaves none.
        written[..written.find("10.0.0.7").unwrap()].to_string(),
        // An alarm without its group is not a form that was ever written.
        written[..written.rfind("/arn:").unwrap()].to_string(),
    ] {
        assert_eq!(SavedState::decode(&damaged), None, "{damaged}");
    }
    // Every cut of the value either reads as nothing or as a state whose
    // count and drill are the ones written: a cut never invents a drill.
    for cut in 0..written.len() {
        if let Some(read) = SavedState::decode(&written[..cut]) {
            assert_eq!(read.snapshot.desired_count, 2, "{}", &written[..cut]);
            assert!(
                saved.drill_id.starts_with(&read.drill_id),
                "{}",
                &written[..cut]
            );
        }
    }
}

#[test]
fn the_older_form_without_alarm_and_group_still_reads() {
    let read = SavedState::decode("scale-web-1/scale-web/1790000600/3/-").expect("older form");
    assert_eq!(read.snapshot.desired_count, 3);
    assert_eq!((&read.alarm, &read.target_group_arn), (&None, &None));
    // Without a delta, a rollback goes back to the snapshot's count.
    assert_eq!((read.count_delta, read.delta_confirmed), (None, false));
    assert_eq!(read.restore_count(7, None), 3);
}

#[test]
fn a_lock_reads_back_and_a_damaged_one_is_free() {
    let now = at(0);
    let lock = Lock {
        drill_id: "scale-web-1".into(),
        expires_at: at(300),
        holder: "00ff00ff00ff00ff".into(),
        busy_until: Some(at(60)),
    };
    assert_eq!(
        Lock::state(Some(&lock.encode()), now),
        LockState::Held(lock.clone())
    );
    assert_eq!(
        Lock::state(Some(&lock.encode()), at(300)),
        LockState::Expired(lock.clone())
    );
    let idle = Lock {
        busy_until: None,
        ..lock.clone()
    };
    assert_eq!(
        Lock::state(Some(&idle.encode()), now),
        LockState::Held(idle)
    );
    for damaged in [
        None,
        Some(""),
        Some("garbage"),
        Some("scale-web-1@soon@x@0"),
    ] {
        assert_eq!(Lock::state(damaged, now), LockState::Free, "{damaged:?}");
    }
    // A lock from before it had a holder is held by nobody in particular.
    match Lock::state(Some("scale-web-1@1790000300"), now) {
        LockState::Held(old) => assert_eq!((old.holder.as_str(), old.busy_until), ("", None)),
        other => panic!("{other:?}"),
    }
    assert!(lock.busy(at(59)) && !lock.busy(at(60)));
}
