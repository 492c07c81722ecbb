//! Schedule expressions in the forms users already write: Application Auto
//! Scaling's `cron(…)`, `at(…)` and `rate(…)`, and a plain 5-field Unix cron
//! pattern. Anything else is refused, so a pattern is never read in a sense
//! its author did not mean (six bare fields could be seconds-first or
//! year-last; the parser must not guess).
//!
//! Cron and `at` times are local civil times; [`super::zone::Zone::instant`]
//! turns them into instants.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The forms accepted, with an example of each, for error messages.
pub const FORMS: &str = "use cron(0 8 ? * MON-FRI *) (AWS: minutes hours day-of-month month \
     day-of-week year, 1 = SUN, ? in one day field), at(2026-12-24T08:00:00), rate(6 hours), \
     or a 5-field Unix pattern such as 0 8 * * 1-5";

/// The longest `rate(…)` interval: a year.
const LONGEST_RATE: TimeDelta = TimeDelta::days(366);

/// When a recurring window opens.
#[derive(Debug, Clone)]
pub enum ScheduleExpression {
    /// Every match of a cron pattern, read in local civil time.
    Cron(Box<Cron>),
    /// Once, at a local civil time.
    At(NaiveDateTime),
    /// Every `interval`, counted from 1970-01-01T00:00 UTC (so `rate(1 hour)`
    /// opens on the hour): a rate has no start of its own, and counting from
    /// a fixed instant keeps every tick agreeing on the openings.
    Rate(TimeDelta),
}

impl ScheduleExpression {
    /// Reads one expression.
    ///
    /// # Errors
    /// Why `raw` is none of the accepted forms, in words, without [`FORMS`].
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let inner = |prefix: &str| {
            raw.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(fields) = inner("cron(") {
            return aws_cron(fields).map(|c| Self::Cron(Box::new(c)));
        }
        if let Some(time) = inner("at(") {
            return NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S")
                .map(Self::At)
                .map_err(|e| format!("at() takes a local time yyyy-mm-ddThh:mm:ss: {e}"));
        }
        if let Some(rate) = inner("rate(") {
            return rate_interval(rate).map(Self::Rate);
        }
        match raw.split_whitespace().count() {
            5 => unix_cron(raw).map(|c| Self::Cron(Box::new(c))),
            6 => Err(
                "six bare fields are ambiguous (seconds first, or AWS's year last); \
                      write AWS's form as cron(…)"
                    .into(),
            ),
            n => Err(format!("a bare cron pattern has 5 fields, not {n}")),
        }
    }
}

/// AWS's six fields: minutes, hours, day-of-month, month, day-of-week
/// (1–7 = SUN–SAT), year; `?` in exactly one of the two day fields.
fn aws_cron(fields: &str) -> Result<Cron, String> {
    let parts: Vec<&str> = fields.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, year] = parts.as_slice() else {
        return Err(format!(
            "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), not {}",
            parts.len()
        ));
    };
    if (*day_of_month == "?") == (*day_of_week == "?") {
        return Err("cron() needs ? in exactly one of day-of-month and day-of-week".into());
    }
    // Quartz numbering (1 = SUN) is what AWS uses; croner calls it alternative weekdays.
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .build()
        .parse(&format!(
            "0 {minutes} {hours} {day_of_month} {month} {day_of_week} {year}"
        ))
        .map_err(|e| format!("not a valid cron(): {e}"))
}

/// A Unix pattern: minutes hours day-of-month month day-of-week (0 or 7 = SUN).
fn unix_cron(pattern: &str) -> Result<Cron, String> {
    if pattern.contains('@') {
        return Err("nicknames such as @daily are not accepted".into());
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| format!("not a valid cron pattern: {e}"))
}

/// `N minute(s)`, `N hour(s)` or `N day(s)`, N a whole number from 1.
fn rate_interval(rate: &str) -> Result<TimeDelta, String> {
    let usage = || {
        "rate() takes a whole number and a unit: rate(5 minutes), rate(1 hour), rate(2 days)"
            .to_string()
    };
    let (value, unit) = rate.split_once(' ').ok_or_else(usage)?;
    let value: i64 = value.trim().parse().map_err(|_| usage())?;
    if value < 1 {
        return Err(usage());
    }
    let unit = match unit.trim() {
        "minute" | "minutes" => TimeDelta::try_minutes(value),
        "hour" | "hours" => TimeDelta::try_hours(value),
        "day" | "days" => TimeDelta::try_days(value),
        _ => return Err(usage()),
    };
    match unit {
        Some(interval) if interval <= LONGEST_RATE => Ok(interval),
        _ => Err(format!(
            "a rate() interval is at most {} days",
            LONGEST_RATE.num_days()
        )),
    }
}

impl ScheduleExpression {
    /// The scheduled starts, in local civil time, from `from` on (inclusive),
    /// oldest first. A rate's starts are instants: they are given in UTC and
    /// marked so the caller does not read them through a time zone.
    pub(crate) fn starts_from(
        &self,
        from: NaiveDateTime,
    ) -> Box<dyn Iterator<Item = NaiveDateTime> + '_> {
        match self {
            // Civil time as if it were UTC: the cron crate then matches fields without any zone rules.
            ScheduleExpression::Cron(cron) => Box::new(
                cron.iter_from(from.and_utc(), croner::Direction::Forward)
                    .map(|t| t.naive_utc()),
            ),
            ScheduleExpression::At(at) => Box::new((*at >= from).then_some(*at).into_iter()),
            ScheduleExpression::Rate(interval) => {
                let every = interval.num_seconds().max(60);
                let first = from.and_utc().timestamp().div_euclid(every)
                    + i64::from(from.and_utc().timestamp().rem_euclid(every) != 0);
                Box::new((first..).map_while(move |k| {
                    DateTime::<Utc>::from_timestamp(k.checked_mul(every)?, 0).map(|t| t.naive_utc())
                }))
            }
        }
    }

    /// Whether [`Self::starts_from`] gives UTC instants rather than local times.
    pub(crate) fn starts_are_utc(&self) -> bool {
        matches!(self, ScheduleExpression::Rate(_))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::{Datelike, NaiveDate, Weekday};

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn next(raw: &str, from: NaiveDateTime, n: usize) -> Vec<NaiveDateTime> {
        ScheduleExpression::parse(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .starts_from(from)
            .take(n)
            .collect()
    }

    /// The AWS examples from "Schedule recurring scaling actions using cron
    /// expressions" and the forms of "Scheduled scaling for Application Auto
    /// Scaling", against the days they name. 2026-11-23 is a Monday.
    #[test]
    fn aws_scheduled_action_forms_mean_what_aws_says() {
        let monday = local(2026, 11, 23, 0, 0);
        // "cron(0 10 * * ? *)": 10:00 every day.
        assert_eq!(
            next("cron(0 10 * * ? *)", monday, 2),
            [local(2026, 11, 23, 10, 0), local(2026, 11, 24, 10, 0)]
        );
        // Day-of-week 1 is Sunday, 2 Monday … 7 Saturday.
        assert_eq!(
            next("cron(0 8 ? * 1 *)", monday, 1)[0].weekday(),
            Weekday::Sun
        );
        assert_eq!(
            next("cron(0 8 ? * 7 *)", monday, 1)[0].weekday(),
            Weekday::Sat
        );
        let weekdays: Vec<Weekday> = next("cron(0 8 ? * 2-6 *)", monday, 7)
            .iter()
            .map(Datelike::weekday)
            .collect();
        use Weekday::*;
        assert_eq!(weekdays, [Mon, Tue, Wed, Thu, Fri, Mon, Tue]);
        assert_eq!(
            next("cron(0 8 ? * MON-FRI *)", monday, 7),
            next("cron(0 8 ? * 2-6 *)", monday, 7)
        );
        // "cron(0 18 ? * MON-FRI *)", "cron(0 8 1 * ? *)": the first of every month.
        assert_eq!(
            next("cron(0 8 1 * ? *)", monday, 2),
            [local(2026, 12, 1, 8, 0), local(2027, 1, 1, 8, 0)]
        );
        // The year field limits the years.
        assert_eq!(
            next("cron(15 12 * * ? 2027)", monday, 1),
            [local(2027, 1, 1, 12, 15)]
        );
        // at(): once, at the local time it names.
        assert_eq!(
            next("at(2026-12-24T08:00:00)", monday, 5),
            [local(2026, 12, 24, 8, 0)]
        );
        assert!(next("at(2026-11-01T08:00:00)", monday, 5).is_empty());
        // rate(): every interval, on its multiples since 1970-01-01T00:00 UTC.
        assert_eq!(
            next("rate(6 hours)", local(2026, 11, 23, 7, 10), 2),
            [local(2026, 11, 23, 12, 0), local(2026, 11, 23, 18, 0)]
        );
        assert_eq!(
            next("rate(1 minute)", local(2026, 11, 23, 7, 10), 1),
            [local(2026, 11, 23, 7, 10)]
        );
        // A plain Unix pattern keeps Unix numbering (1 = MON).
        let unix: Vec<Weekday> = next("0 8 * * 1-5", monday, 5)
            .iter()
            .map(Datelike::weekday)
            .collect();
        assert_eq!(unix, [Mon, Tue, Wed, Thu, Fri]);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (raw, why) in [
            // AWS's form pasted without cron(): six bare fields are never read seconds-first.
            ("0 8 * * MON-FRI *", "ambiguous"),
            ("0 0 8 * * *", "ambiguous"),
            ("0 8 * *", "5 fields, not 4"),
            ("@daily", "5 fields, not 1"),
            ("cron(0 8 * * MON-FRI)", "6 fields"),
            ("cron(0 8 * * MON-FRI *)", "? in exactly one"),
            ("cron(0 8 1 * MON *)", "? in exactly one"),
            ("cron(0 25 ? * MON *)", "not a valid cron()"),
            ("at(2026-12-24 08:00)", "yyyy-mm-ddThh:mm:ss"),
            ("at(2026-12-24T08:00:00+01:00)", "yyyy-mm-ddThh:mm:ss"),
            ("rate(0 minutes)", "whole number"),
            ("rate(5 weeks)", "whole number"),
            ("rate(five minutes)", "whole number"),
            ("rate(400 days)", "at most 366 days"),
            ("", "5 fields, not 0"),
        ] {
            let err = ScheduleExpression::parse(raw).expect_err(raw);
            assert!(err.contains(why), "{raw}: {err}");
        }
    }
}
