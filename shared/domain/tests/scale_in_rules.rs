//! Scale-in behaviour as tables: the stabilisation window, the rate, both
//! together, and the memory that carries them between invocations.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ecs_control_domain::evaluation::Hold;
use ecs_control_domain::scale_in::{
    limit_scale_in, no_scale_in, RateLimit, ScaleInBehaviour, ScaleInMemory, ScaleInRate,
    ScaleInVerdict,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

/// One step of a run: minutes after t0, the count found, the count a policy
/// wants (`None`: no policy wants scale-in) → the count set, or the hold.
type Step = (i64, u32, Option<u32>, Result<u32, Hold>);

/// Plays `steps` through `behaviour`, carrying the memory, as ticks do.
fn play(behaviour: ScaleInBehaviour, steps: &[Step]) {
    let mut memory = ScaleInMemory::default();
    for &(minute, from, wanted, expected) in steps {
        let now = t0() + TimeDelta::minutes(minute);
        let Some(wanted) = wanted else {
            memory = no_scale_in(&memory);
            continue;
        };
        let (verdict, kept) = limit_scale_in(behaviour, &memory, from, wanted, now);
        memory = kept;
        let got = match &verdict {
            ScaleInVerdict::Proceed { target, .. } => Ok(*target),
            ScaleInVerdict::Held { hold, .. } => Err(*hold),
        };
        assert_eq!(
            got, expected,
            "minute {minute}, {from} → {wanted}: {verdict:?}"
        );
        // What is kept reads back the same from its tag.
        assert_eq!(ScaleInMemory::decode(&memory.encode()), memory);
    }
}

#[test]
fn stabilisation_waits_the_whole_window_then_takes_the_highest_count_wanted() {
    let five_minutes = ScaleInBehaviour {
        stabilisation_minutes: 5,
        rate: None,
    };
    play(
        five_minutes,
        &[
            // Wanted for 0 and 2 minutes of 5: held.
            (0, 10, Some(6), Err(Hold::ScaleInStabilising)),
            (2, 10, Some(4), Err(Hold::ScaleInStabilising)),
            // Five minutes of wanting: to 6, the highest wanted in them.
            (5, 10, Some(5), Ok(6)),
            // A minute on, minute 0's 6 has left the window: 5 is the highest.
            (6, 6, Some(3), Ok(5)),
            // A tick that wants no scale-in ends the run ...
            (7, 5, None, Ok(5)),
            // ... and the next scale-in waits a whole window again.
            (8, 5, Some(2), Err(Hold::ScaleInStabilising)),
            (13, 5, Some(2), Ok(2)),
        ],
    );
}

#[test]
fn stabilisation_holds_when_the_highest_count_wanted_is_not_below_the_count() {
    play(
        ScaleInBehaviour {
            stabilisation_minutes: 3,
            rate: None,
        },
        &[
            (0, 10, Some(9), Err(Hold::ScaleInStabilising)),
            // Scaled in elsewhere to 8 meanwhile: 9 was wanted within the window.
            (3, 8, Some(7), Err(Hold::ScaleInStabilising)),
            // Minute 0's 9 is out of the window (minutes 1 to 4) now.
            (4, 8, Some(7), Ok(7)),
        ],
    );
}

#[test]
fn the_rate_counts_tasks_or_percent_per_period() {
    let two_per_five = ScaleInBehaviour {
        stabilisation_minutes: 0,
        rate: Some(ScaleInRate {
            limit: RateLimit::Tasks(2),
            per_minutes: 5,
        }),
    };
    play(
        two_per_five,
        &[
            (0, 10, Some(4), Ok(8)),
            // The period's two are used.
            (1, 8, Some(4), Err(Hold::ScaleInRate)),
            (4, 8, Some(4), Err(Hold::ScaleInRate)),
            // A new period.
            (5, 8, Some(4), Ok(6)),
            (6, 6, Some(5), Err(Hold::ScaleInRate)),
            // The next period: one wanted, one of two used; one more may go.
            (10, 6, Some(5), Ok(5)),
            (11, 5, Some(1), Ok(4)),
            (12, 4, Some(1), Err(Hold::ScaleInRate)),
        ],
    );
    let ten_percent = ScaleInBehaviour {
        stabilisation_minutes: 0,
        rate: Some(ScaleInRate {
            limit: RateLimit::Percent(10),
            per_minutes: 1,
        }),
    };
    play(
        ten_percent,
        &[
            // 10% of 25 is 2.5: two tasks.
            (0, 25, Some(10), Ok(23)),
            (1, 23, Some(10), Ok(21)),
            // 10% of 5 is under one: one task, never none.
            (10, 5, Some(1), Ok(4)),
        ],
    );
}

#[test]
fn stabilisation_then_rate() {
    play(
        ScaleInBehaviour {
            stabilisation_minutes: 2,
            rate: Some(ScaleInRate {
                limit: RateLimit::Tasks(1),
                per_minutes: 1,
            }),
        },
        &[
            (0, 10, Some(4), Err(Hold::ScaleInStabilising)),
            (1, 10, Some(4), Err(Hold::ScaleInStabilising)),
            // Stabilised to 4, then the rate lets one go.
            (2, 10, Some(4), Ok(9)),
            (2, 9, Some(4), Err(Hold::ScaleInRate)),
            (3, 9, Some(4), Ok(8)),
        ],
    );
}

#[test]
fn the_memory_fits_one_tag_for_the_longest_window() {
    let day = ScaleInBehaviour {
        stabilisation_minutes: 1440,
        rate: Some(ScaleInRate {
            limit: RateLimit::Tasks(1),
            per_minutes: 1440,
        }),
    };
    let mut memory = ScaleInMemory::default();
    for minute in (0..3 * 1440).step_by(7) {
        let now = t0() + TimeDelta::minutes(minute);
        let (_, kept) = limit_scale_in(day, &memory, 1_000_000, 999_999 - minute as u32, now);
        memory = kept;
        let tag = memory.encode();
        assert!(
            tag.chars().count() <= 256,
            "{} characters: {tag}",
            tag.len()
        );
        assert!(tag
            .chars()
            .all(ecs_control_domain::scaling::tag_char_allowed));
    }
    assert_eq!(
        ScaleInMemory::decode("s12 x=y r1/2"),
        ScaleInMemory {
            streak: Some(ecs_control_domain::scale_in::Streak {
                since: 12,
                buckets: Vec::new()
            }),
            period: None
        }
    );
}

#[test]
fn a_run_cut_off_for_a_whole_window_starts_again() {
    play(
        ScaleInBehaviour {
            stabilisation_minutes: 5,
            rate: None,
        },
        &[
            (0, 10, Some(6), Err(Hold::ScaleInStabilising)),
            (4, 10, Some(6), Err(Hold::ScaleInStabilising)),
            // Suspended, or not invoked, for an hour: the old run counts for
            // nothing, and the window is waited out again.
            (64, 10, Some(6), Err(Hold::ScaleInStabilising)),
            (67, 10, Some(6), Err(Hold::ScaleInStabilising)),
            (69, 10, Some(6), Ok(6)),
        ],
    );
}
