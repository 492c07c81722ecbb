//! The pace: a service never gains (or loses) tasks faster than configured, so
//! what sits behind it (a database's connection limit) keeps up. A larger
//! change is taken in stages, one a minute, remembered between invocations.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// The most tasks a service may gain or lose in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pace {
    pub max_added_per_minute: Option<u32>,
    pub max_removed_per_minute: Option<u32>,
}

/// What the pace remembers of a service (kept in a tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaceMemory {
    /// When the current minute of counting began.
    pub minute_started: DateTime<Utc>,
    pub added: u32,
    pub removed: u32,
    /// The count a staged change is still heading for.
    pub staged: Option<u32>,
}

impl PaceMemory {
    /// As a tag value: `<epoch seconds>/<added>/<removed>/<staged or ->`.
    pub fn encode(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.minute_started.timestamp(),
            self.added,
            self.removed,
            self.staged.map_or("-".to_string(), |s| s.to_string())
        )
    }

    /// Reads [`PaceMemory::encode`]'s form; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('/');
        let started = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
        let added = parts.next()?.parse().ok()?;
        let removed = parts.next()?.parse().ok()?;
        let staged = match parts.next()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        parts.next().is_none().then_some(Self {
            minute_started: started,
            added,
            removed,
            staged,
        })
    }
}

/// The step the pace allows now toward a wanted count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paced {
    /// The count to set now (the count found when the pace allows nothing).
    pub target: u32,
    /// The count still to come in later stages, if any.
    pub staged: Option<u32>,
    /// Tasks still to come after this step.
    pub still_to_come: u32,
    /// The memory to keep after this step.
    pub memory: Option<PaceMemory>,
}

fn minute_running(memory: Option<&PaceMemory>, now: DateTime<Utc>) -> Option<&PaceMemory> {
    memory.filter(|m| now >= m.minute_started && now < m.minute_started + TimeDelta::minutes(1))
}

/// Limits a change from `from` to `wanted` to what the pace allows in the
/// minute running at `now`, counting what this minute already added or removed.
pub fn limit(
    pace: Pace,
    memory: Option<&PaceMemory>,
    from: u32,
    wanted: u32,
    now: DateTime<Utc>,
) -> Paced {
    let running = minute_running(memory, now);
    let (minute_started, added, removed) =
        running.map_or((now, 0, 0), |m| (m.minute_started, m.added, m.removed));
    let (target, added, removed) = if wanted >= from {
        let allowed = pace
            .max_added_per_minute
            .map_or(u32::MAX, |max| max.saturating_sub(added));
        let step = (wanted - from).min(allowed);
        (from + step, added + step, removed)
    } else {
        let allowed = pace
            .max_removed_per_minute
            .map_or(u32::MAX, |max| max.saturating_sub(removed));
        let step = (from - wanted).min(allowed);
        (from - step, added, removed + step)
    };
    let staged = (target != wanted).then_some(wanted);
    let paced = pace.max_added_per_minute.is_some() || pace.max_removed_per_minute.is_some();
    Paced {
        target,
        staged,
        still_to_come: target.abs_diff(wanted),
        memory: paced.then_some(PaceMemory {
            minute_started,
            added,
            removed,
            staged,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap_or_default()
    }

    const FIVE_OUT: Pace = Pace {
        max_added_per_minute: Some(5),
        max_removed_per_minute: None,
    };

    #[test]
    fn a_large_scale_out_is_staged_a_minute_at_a_time() {
        // 4 → 16 at five a minute: 9, 14, 16.
        let first = limit(FIVE_OUT, None, 4, 16, at(0));
        assert_eq!(
            (first.target, first.staged, first.still_to_come),
            (9, Some(16), 7)
        );
        // Later in the same minute nothing more is allowed.
        let same_minute = limit(FIVE_OUT, first.memory.as_ref(), 9, 16, at(30));
        assert_eq!((same_minute.target, same_minute.still_to_come), (9, 7));
        let second = limit(FIVE_OUT, first.memory.as_ref(), 9, 16, at(60));
        assert_eq!((second.target, second.staged), (14, Some(16)));
        let third = limit(FIVE_OUT, second.memory.as_ref(), 14, 16, at(120));
        assert_eq!(
            (third.target, third.staged, third.still_to_come),
            (16, None, 0)
        );
    }

    #[test]
    fn without_a_limit_for_the_direction_the_change_is_whole() {
        let paced = limit(FIVE_OUT, None, 16, 2, at(0));
        assert_eq!((paced.target, paced.staged), (2, None));
        let unpaced = limit(Pace::default(), None, 1, 100, at(0));
        assert_eq!((unpaced.target, unpaced.memory), (100, None));
    }

    #[test]
    fn the_memory_survives_its_tag() {
        let memory = PaceMemory {
            minute_started: at(0),
            added: 5,
            removed: 0,
            staged: Some(16),
        };
        assert_eq!(PaceMemory::decode(&memory.encode()), Some(memory.clone()));
        let done = PaceMemory {
            staged: None,
            ..memory
        };
        assert_eq!(PaceMemory::decode(&done.encode()), Some(done));
        for bad in ["", "x/1/2/3", "1/2/3", "1/2/3/4/5", "1/-1/0/-"] {
            assert_eq!(PaceMemory::decode(bad), None, "{bad}");
        }
    }
}
