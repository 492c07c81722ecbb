//! Scale-in behaviour, as Kubernetes' HPA gives it: a stabilisation window
//! and a rate. Both apply to the scale-in a step or target-tracking policy
//! asks for (not to windows, manual commands or a return within bounds), and
//! both sit beside the pace, which still stages what they let through.
//!
//! - **Stabilisation**: a scale-in goes ahead only once scale-in has been
//!   wanted for the whole window, and then only to the highest count wanted
//!   in the window. A tick that wants no scale-in (it holds, or scales out)
//!   recommends the count it found, which ends the run: HPA's "highest
//!   recommendation over the window" where a held tick recommends the
//!   current count. A run with nothing wanted for a whole window (the
//!   scaler was suspended or not invoked) starts again.
//! - **Rate**: at most so many tasks, or so many percent of the count at the
//!   period's start (at least one task), removed per period.
//!
//! What is wanted is kept in time buckets of an eighth of the window (at
//! least a minute), so the memory fits one tag; a bucket's highest
//! counts until its end leaves the window, so a recommendation may weigh up
//! to one bucket longer than the window, never shorter.

use super::evaluation::Hold;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// The longest window and period: a day.
pub const MAX_MINUTES: u32 = 1440;
/// Buckets per window: what the memory holds at most (plus the one filling).
const BUCKETS: u32 = 8;

/// How many tasks a period may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimit {
    Tasks(u32),
    /// Of the count when the period began; at least one task.
    Percent(u32),
}

/// At most `limit` removed per `per_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleInRate {
    pub limit: RateLimit,
    pub per_minutes: u32,
}

/// A service's scale-in behaviour; the default changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScaleInBehaviour {
    /// 0 for none.
    pub stabilisation_minutes: u32,
    pub rate: Option<ScaleInRate>,
}

/// A run of evaluations that each wanted a scale-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Streak {
    /// When the run began (epoch seconds).
    pub since: i64,
    /// Per bucket (its start, epoch seconds), the highest count wanted; oldest first.
    pub buckets: Vec<(i64, u32)>,
}

/// The rate's current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RatePeriod {
    pub started: i64,
    /// The count when it began.
    pub base: u32,
    pub removed: u32,
}

/// What scale-in behaviour remembers of a service (kept in a tag).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScaleInMemory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streak: Option<Streak>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<RatePeriod>,
}

impl ScaleInMemory {
    /// As a tag value: `s<since>`, then `<bucket>=<count>` each, then
    /// `r<started>/<base>/<removed>`, space-separated; empty when empty.
    pub fn encode(&self) -> String {
        let mut parts = Vec::new();
        if let Some(streak) = &self.streak {
            parts.push(format!("s{}", streak.since));
            parts.extend(streak.buckets.iter().map(|(at, n)| format!("{at}={n}")));
        }
        if let Some(p) = &self.period {
            parts.push(format!("r{}/{}/{}", p.started, p.base, p.removed));
        }
        parts.join(" ")
    }

    /// Reads [`ScaleInMemory::encode`]'s form; a part it cannot read is dropped.
    pub fn decode(raw: &str) -> Self {
        let mut memory = ScaleInMemory::default();
        for part in raw.split_whitespace() {
            if let Some(since) = part.strip_prefix('s') {
                if let Ok(since) = since.parse() {
                    memory.streak = Some(Streak {
                        since,
                        buckets: Vec::new(),
                    });
                }
            } else if let Some(rate) = part.strip_prefix('r') {
                let numbers: Vec<&str> = rate.split('/').collect();
                if let [started, base, removed] = numbers[..] {
                    if let (Ok(started), Ok(base), Ok(removed)) =
                        (started.parse(), base.parse(), removed.parse())
                    {
                        memory.period = Some(RatePeriod {
                            started,
                            base,
                            removed,
                        });
                    }
                }
            } else if let Some((at, n)) = part.split_once('=') {
                if let (Some(streak), Ok(at), Ok(n)) = (&mut memory.streak, at.parse(), n.parse()) {
                    streak.buckets.push((at, n));
                }
            }
        }
        memory
    }
}

/// What the behaviour does to a policy's scale-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ScaleInVerdict {
    /// Scale in to `target` (the wanted count or a higher one).
    Proceed { target: u32, why: Option<String> },
    /// Not now.
    Held { hold: Hold, why: String },
}

fn minutes(n: u32) -> TimeDelta {
    TimeDelta::minutes(i64::from(n))
}

/// The bucket length for a window: an eighth of it, at least a minute.
fn bucket_length(window_minutes: u32) -> i64 {
    i64::from(window_minutes.div_ceil(BUCKETS).max(1)) * 60
}

/// An evaluation that wanted no policy scale-in: the run of wanting ends.
pub fn no_scale_in(memory: &ScaleInMemory) -> ScaleInMemory {
    ScaleInMemory {
        streak: None,
        period: memory.period,
    }
}

/// A policy's scale-in from `from` to `wanted` (below it) through the
/// stabilisation window, then the rate, and the memory to keep if it goes
/// ahead (or is held).
pub fn limit_scale_in(
    behaviour: ScaleInBehaviour,
    memory: &ScaleInMemory,
    from: u32,
    wanted: u32,
    now: DateTime<Utc>,
) -> (ScaleInVerdict, ScaleInMemory) {
    let mut kept = memory.clone();
    let mut target = wanted;
    let mut why = Vec::new();
    let window = behaviour.stabilisation_minutes;
    if window > 0 {
        let length = bucket_length(window);
        let bucket = now.timestamp().div_euclid(length) * length;
        let window_start = (now - minutes(window)).timestamp();
        let fresh = Streak {
            since: now.timestamp(),
            buckets: Vec::new(),
        };
        let mut streak = match kept.streak.take() {
            // A run with nothing wanted within the window was cut off (the
            // scaler was suspended, or not invoked): it starts again.
            Some(old) if !old.buckets.iter().any(|(at, _)| at + length > window_start) => fresh,
            Some(old) => old,
            None => fresh,
        };
        match streak.buckets.last_mut() {
            Some((at, highest)) if *at == bucket => *highest = (*highest).max(wanted),
            _ => streak.buckets.push((bucket, wanted)),
        }
        streak.buckets.retain(|(at, _)| at + length > window_start);
        let highest = streak
            .buckets
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(wanted);
        let wanted_for = now.timestamp() - streak.since;
        kept.streak = Some(streak);
        if wanted_for < i64::from(window) * 60 {
            return (
                ScaleInVerdict::Held {
                    hold: Hold::ScaleInStabilising,
                    why: format!(
                        "scale-in wanted for {} of the {window} min stabilisation window; the highest count wanted meanwhile is {highest}",
                        wanted_for / 60
                    ),
                },
                kept,
            );
        }
        if highest >= from {
            return (
                ScaleInVerdict::Held {
                    hold: Hold::ScaleInStabilising,
                    why: format!(
                        "the highest count wanted in the last {window} min is {highest}, not below {from}"
                    ),
                },
                kept,
            );
        }
        if highest > wanted {
            why.push(format!(
                "to {highest}, the highest count wanted in the last {window} min"
            ));
        }
        target = highest;
    }
    if let Some(rate) = behaviour.rate {
        let mut period = kept
            .period
            .filter(|p| now.timestamp() < p.started + i64::from(rate.per_minutes) * 60)
            .unwrap_or(RatePeriod {
                started: now.timestamp(),
                base: from,
                removed: 0,
            });
        let allowed = match rate.limit {
            RateLimit::Tasks(n) => n,
            RateLimit::Percent(p) => (u64::from(period.base) * u64::from(p) / 100)
                .try_into()
                .unwrap_or(u32::MAX)
                .max(1),
        };
        let remaining = allowed.saturating_sub(period.removed);
        if remaining == 0 {
            kept.period = Some(period);
            return (
                ScaleInVerdict::Held {
                    hold: Hold::ScaleInRate,
                    why: format!(
                        "{} of the {allowed} tasks the rate allows every {} min are removed; the next period begins {}",
                        period.removed,
                        rate.per_minutes,
                        DateTime::from_timestamp(
                            period.started + i64::from(rate.per_minutes) * 60,
                            0
                        )
                        .map_or_else(String::new, |t| t.to_rfc3339())
                    ),
                },
                kept,
            );
        }
        let floor = from.saturating_sub(remaining);
        if floor > target {
            why.push(format!(
                "to {floor}: the rate allows {remaining} more of {allowed} every {} min",
                rate.per_minutes
            ));
            target = floor;
        }
        period.removed += from - target;
        kept.period = Some(period);
    }
    let why = (!why.is_empty()).then(|| why.join("; "));
    (ScaleInVerdict::Proceed { target, why }, kept)
}
