//! Time windows: bounds that change with the clock (more tasks in business
//! hours, fewer at night), in the operator's time zone.
//!
//! Whether a window is open is computed from the time alone, never from the
//! ticks that came before: a missed tick or a restart finds the window that
//! should be open open. Daylight-saving changes follow the cron crate's rules
//! (a start in the spring-forward gap opens just after it; a start in the
//! fall-back overlap opens once, at its first occurrence).

use super::policy::CapacityBounds;
use super::zone::Zone;
use chrono::{DateTime, TimeDelta, Utc};
use croner::Cron;
use serde::Serialize;

/// When a window is open.
#[derive(Debug, Clone)]
pub enum WindowTiming {
    /// Opens at every match of a cron pattern, in `time_zone`, for `duration`.
    Recurring {
        cron: Box<Cron>,
        time_zone: Zone,
        duration: TimeDelta,
    },
    /// Open once, from `start` until `end`.
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// A validated window; built only by the configuration loader (`ecs_control::config`).
#[derive(Debug, Clone)]
pub struct ScheduleWindow {
    /// How records name the window, e.g. `business-hours` or `schedules[0]`.
    pub name: String,
    pub timing: WindowTiming,
    pub min_capacity: Option<u32>,
    pub max_capacity: Option<u32>,
    /// A count to move to once, when the window opens.
    pub desired_count: Option<u32>,
}

/// Recurring windows' starts are searched this far back at most.
const LONGEST_WINDOW: TimeDelta = TimeDelta::days(31);

impl ScheduleWindow {
    /// When the window now open began, if it is open at `now`.
    pub fn opened_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.timing {
            WindowTiming::Once { start, end } => (*start <= now && now < *end).then_some(*start),
            WindowTiming::Recurring {
                cron,
                time_zone,
                duration,
                ..
            } => {
                // The earliest start after `now - duration`: open if it is not after now.
                let from = (now - *duration).with_timezone(time_zone);
                let start = cron.find_next_occurrence(&from, false).ok()?;
                let start = start.with_timezone(&Utc);
                (start <= now).then_some(start)
            }
        }
    }

    /// Every instant in `[from, until)` at which the window opens or closes.
    pub fn edges(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let within = |t: &DateTime<Utc>| from <= *t && *t < until;
        match &self.timing {
            WindowTiming::Once { start, end } => {
                [*start, *end].into_iter().filter(within).collect()
            }
            WindowTiming::Recurring {
                cron,
                time_zone,
                duration,
                ..
            } => {
                let mut edges = Vec::new();
                let search_from = (from - (*duration).min(LONGEST_WINDOW)).with_timezone(time_zone);
                for start in cron.iter_after(search_from) {
                    let start = start.with_timezone(&Utc);
                    if start >= until {
                        break;
                    }
                    edges.extend([start, start + *duration].into_iter().filter(within));
                }
                edges
            }
        }
    }
}

/// A window open at the time of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenWindow {
    pub name: String,
    pub opened_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<u32>,
}

/// The bounds at one instant, and the windows that make them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledBounds {
    pub bounds: CapacityBounds,
    pub open: Vec<OpenWindow>,
}

/// The bounds in force at `now`: the policy bounds outside every window;
/// inside, the highest min and the lowest max the open windows set, never
/// beyond the policy bounds.
pub fn bounds_at(
    windows: &[&ScheduleWindow],
    policy: CapacityBounds,
    now: DateTime<Utc>,
) -> ScheduledBounds {
    let mut open = Vec::new();
    let mut min: Option<u32> = None;
    let mut max: Option<u32> = None;
    for window in windows {
        let Some(opened_at) = window.opened_at(now) else {
            continue;
        };
        if let Some(m) = window.min_capacity {
            min = Some(min.map_or(m, |x| x.max(m)));
        }
        if let Some(m) = window.max_capacity {
            max = Some(max.map_or(m, |x| x.min(m)));
        }
        open.push(OpenWindow {
            name: window.name.clone(),
            opened_at,
            desired_count: window.desired_count,
        });
    }
    let within = |v: u32| v.clamp(policy.min, policy.max);
    let max = max.map_or(policy.max, within);
    // Configuration refuses windows whose min exceeds another's max; should
    // they meet anyway, the max wins, as the lower cost.
    let min = min.map_or(policy.min, within).min(max);
    ScheduledBounds {
        bounds: CapacityBounds { min, max },
        open,
    }
}

/// One stretch of the bounds timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundsPeriod {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// The windows open during the stretch.
    pub windows: Vec<String>,
}

/// The bounds from `from` for `hours`, as stretches of equal bounds and windows.
pub fn preview(
    windows: &[&ScheduleWindow],
    policy: CapacityBounds,
    from: DateTime<Utc>,
    hours: u32,
) -> Vec<BoundsPeriod> {
    let until = from + TimeDelta::hours(i64::from(hours));
    let mut instants: Vec<DateTime<Utc>> = windows
        .iter()
        .flat_map(|w| w.edges(from, until))
        .chain([from])
        .collect();
    instants.sort();
    instants.dedup();
    let mut periods: Vec<BoundsPeriod> = Vec::new();
    for (i, &at) in instants.iter().enumerate() {
        let next = instants.get(i + 1).copied().unwrap_or(until);
        let now = bounds_at(windows, policy, at);
        let names: Vec<String> = now.open.into_iter().map(|w| w.name).collect();
        match periods.last_mut() {
            Some(last)
                if last.min_capacity == now.bounds.min
                    && last.max_capacity == now.bounds.max
                    && last.windows == names =>
            {
                last.until = next;
            }
            _ => periods.push(BoundsPeriod {
                from: at,
                until: next,
                min_capacity: now.bounds.min,
                max_capacity: now.bounds.max,
                windows: names,
            }),
        }
    }
    periods
}
