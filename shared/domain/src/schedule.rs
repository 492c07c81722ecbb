//! Time windows: bounds that change with the clock (more tasks in business
//! hours, fewer at night), in the operator's time zone.
//!
//! Whether a window is open is computed from the time alone, never from the
//! ticks that came before: a missed tick or a restart finds the window that
//! should be open open. An opening is named by its scheduled start, to the
//! minute, so every tick inside it agrees which opening it is. A window ends
//! when the wall clock in its zone reads its start plus its duration (what a
//! start action and an end action give on AWS). A start or end in a
//! spring-forward gap happens when the gap ends; one in a fall-back overlap
//! happens once, in the first pass.

use super::policy::CapacityBounds;
use super::schedule_expression::ScheduleExpression;
use super::zone::Zone;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::Serialize;

/// When a window is open.
#[derive(Debug, Clone)]
pub enum WindowTiming {
    /// Opens at each start `schedule` names, read in `time_zone`, until the
    /// wall clock there reads that start plus `duration`.
    Recurring {
        schedule: ScheduleExpression,
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

/// One opening of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Recurring windows' starts are searched this far back at most.
const LONGEST_WINDOW: TimeDelta = TimeDelta::days(31);

/// More than any daylight-saving shift (2 hours at most, Antarctica/Troll),
/// so a search in local time starting this much early misses no opening.
const ZONE_SLACK: TimeDelta = TimeDelta::hours(3);

/// `t` without its seconds: schedules name minutes.
fn to_the_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

impl ScheduleWindow {
    /// The openings whose start is at or after about `from` (a few hours
    /// early, never late), in order of their start.
    pub fn openings(&self, from: DateTime<Utc>) -> Box<dyn Iterator<Item = Opening> + '_> {
        match &self.timing {
            WindowTiming::Once { start, end } => Box::new(std::iter::once(Opening {
                start: *start,
                end: *end,
            })),
            WindowTiming::Recurring {
                schedule,
                time_zone,
                duration,
            } => {
                let zone = *time_zone;
                let duration = *duration;
                let utc = schedule.starts_are_utc();
                let search = if utc {
                    from.naive_utc()
                } else {
                    from.with_timezone(&zone).naive_local()
                };
                let starts = schedule.starts_from(to_the_minute(search - ZONE_SLACK));
                Box::new(starts.filter_map(move |start| {
                    let (start, local) = if utc {
                        let at = start.and_utc();
                        (at, at.with_timezone(&zone).naive_local())
                    } else {
                        (zone.instant(&start)?, start)
                    };
                    // The end is a wall-clock time: start plus duration as the clock reads.
                    // A start and end both in one gap never open.
                    let end = zone.instant(&(local + duration))?;
                    (end > start).then_some(Opening { start, end })
                }))
            }
        }
    }

    /// The opening in progress at `now`, if any: the earliest one still open.
    pub fn opening_at(&self, now: DateTime<Utc>) -> Option<Opening> {
        let longest = match &self.timing {
            WindowTiming::Recurring { duration, .. } => (*duration).min(LONGEST_WINDOW),
            WindowTiming::Once { .. } => TimeDelta::zero(),
        };
        self.openings(now - longest)
            .take_while(|o| o.start <= now)
            .find(|o| o.start <= now && now < o.end)
    }

    /// When the window now open began, if it is open at `now`.
    pub fn opened_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.opening_at(now).map(|o| o.start)
    }

    /// Every instant in `[from, until)` at which the window opens or closes.
    pub fn edges(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let within = |t: &DateTime<Utc>| from <= *t && *t < until;
        let longest = match &self.timing {
            WindowTiming::Recurring { duration, .. } => (*duration).min(LONGEST_WINDOW),
            WindowTiming::Once { .. } => TimeDelta::zero(),
        };
        let mut edges = Vec::new();
        for opening in self.openings(from - longest) {
            if opening.start >= until {
                break;
            }
            edges.extend([opening.start, opening.end].into_iter().filter(within));
        }
        edges
    }
}

/// A window open at the time of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenWindow {
    pub name: String,
    pub opened_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
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
        let Some(opening) = window.opening_at(now) else {
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
            opened_at: opening.start,
            closes_at: opening.end,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    fn window(expression: &str, zone: &str, minutes: i64) -> ScheduleWindow {
        ScheduleWindow {
            name: expression.into(),
            timing: WindowTiming::Recurring {
                schedule: ScheduleExpression::parse(expression).unwrap(),
                time_zone: Zone::named(zone).unwrap(),
                duration: TimeDelta::minutes(minutes),
            },
            min_capacity: Some(5),
            max_capacity: None,
            desired_count: None,
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap()
    }

    fn openings(
        w: &ScheduleWindow,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut found: Vec<DateTime<Utc>> = w
            .edges(from, until)
            .into_iter()
            .filter(|t| w.opened_at(*t) == Some(*t))
            .collect();
        found.dedup();
        found
    }

    #[test]
    fn an_opening_is_its_scheduled_start_to_the_minute_on_every_tick() {
        let w = window("0 10 * * *", "UTC", 120);
        let start = utc(2026, 11, 21, 10, 0);
        for late in [0, 1, 200, 999, 60_700, 7_199_999] {
            let now = start + TimeDelta::milliseconds(late);
            assert_eq!(w.opened_at(now), Some(start), "{now}");
        }
        assert_eq!(w.opened_at(start + TimeDelta::minutes(120)), None);
        assert_eq!(w.opened_at(start - TimeDelta::milliseconds(1)), None);
    }

    /// Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:00-03:00
    /// happens twice (00:00-01:00 and 01:00-02:00 UTC).
    #[test]
    fn a_start_in_the_repeated_hour_opens_once_and_closes_by_the_wall_clock() {
        let short = window("30 2 * * *", "Europe/Berlin", 10);
        // First pass 02:30 CEST = 00:30 UTC, until 02:40 = 00:40 UTC.
        assert_eq!(
            short.opened_at(utc(2026, 10, 25, 0, 35)),
            Some(utc(2026, 10, 25, 0, 30))
        );
        assert_eq!(short.opened_at(utc(2026, 10, 25, 0, 40)), None);
        // Second pass, 02:35 CET: not open again.
        assert_eq!(short.opened_at(utc(2026, 10, 25, 1, 35)), None);
        assert_eq!(
            openings(&short, utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 6, 0)),
            [utc(2026, 10, 25, 0, 30)]
        );
        // 02:30 for 30 minutes ends when the clock reads 03:00, after the second pass: one opening throughout.
        let long = window("30 2 * * *", "Europe/Berlin", 30);
        for now in [utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 45)] {
            assert_eq!(long.opened_at(now), Some(utc(2026, 10, 25, 0, 30)), "{now}");
        }
        assert_eq!(long.opened_at(utc(2026, 10, 25, 2, 0)), None);
    }

    /// Berlin, 2027-03-28: 02:00 CET becomes 03:00 CEST; 02:00-03:00 never happens.
    #[test]
    fn a_start_in_the_skipped_hour_opens_once_when_the_gap_ends() {
        let w = window("30 2 * * *", "Europe/Berlin", 60);
        assert_eq!(
            openings(&w, utc(2027, 3, 27, 22, 0), utc(2027, 3, 28, 6, 0)),
            [utc(2027, 3, 28, 1, 0)]
        );
        // It ends when the clock reads 03:30 CEST, 01:30 UTC.
        assert_eq!(
            w.opened_at(utc(2027, 3, 28, 1, 29)),
            Some(utc(2027, 3, 28, 1, 0))
        );
        assert_eq!(w.opened_at(utc(2027, 3, 28, 1, 30)), None);
        // An hourly window whose 02:00 and 03:00 starts both fall at 01:00 UTC opens once there.
        let hourly = window("0 * * * *", "Europe/Berlin", 30);
        let found = openings(&hourly, utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 3, 0));
        assert_eq!(
            found,
            [
                utc(2027, 3, 28, 0, 0),
                utc(2027, 3, 28, 1, 0),
                utc(2027, 3, 28, 2, 0)
            ]
        );
    }

    #[test]
    fn a_night_window_ends_at_its_wall_clock_time_across_a_change() {
        // 22:00 for 9 hours: 07:00 the next morning as the clock reads it,
        // 10 hours later on the night the clocks go back.
        let night = window("0 22 * * *", "Europe/Berlin", 540);
        let opened = utc(2026, 10, 24, 20, 0);
        assert_eq!(night.opened_at(utc(2026, 10, 25, 5, 30)), Some(opened));
        assert_eq!(
            night.opening_at(opened).map(|o| o.end),
            Some(utc(2026, 10, 25, 6, 0))
        );
        // On a night without a change it is 9 hours.
        let plain = night.opening_at(utc(2026, 11, 21, 21, 0)).unwrap();
        assert_eq!(plain.end - plain.start, TimeDelta::hours(9));
    }

    #[test]
    fn at_and_rate_windows_open_when_they_say() {
        let at = window("at(2026-12-24T08:00:00)", "Europe/Berlin", 120);
        assert_eq!(
            at.opened_at(utc(2026, 12, 24, 7, 30)),
            Some(utc(2026, 12, 24, 7, 0))
        );
        assert_eq!(at.opened_at(utc(2026, 12, 24, 9, 0)), None);
        assert_eq!(at.opened_at(utc(2027, 12, 24, 7, 30)), None);
        let rate = window("rate(6 hours)", "UTC", 60);
        assert_eq!(
            rate.opened_at(utc(2026, 11, 21, 12, 30)),
            Some(utc(2026, 11, 21, 12, 0))
        );
        assert_eq!(rate.opened_at(utc(2026, 11, 21, 13, 30)), None);
        let aws = window("cron(0 8 ? * MON-FRI *)", "UTC", 60);
        // 2026-11-21 is a Saturday, 2026-11-23 a Monday.
        assert_eq!(aws.opened_at(utc(2026, 11, 21, 8, 30)), None);
        assert_eq!(
            aws.opened_at(utc(2026, 11, 23, 8, 30)),
            Some(utc(2026, 11, 23, 8, 0))
        );
    }
}
