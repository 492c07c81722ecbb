//! IANA time zones for schedule windows, as a `chrono` time zone over jiff's
//! bundled database.
//!
//! The database is one compressed blob, read only for the zones a document
//! names. A database compiled into static tables (chrono-tz) holds a pointer
//! for every transition of every zone, and a position-independent binary
//! relocates each of them at every cold start, whether or not a window names
//! a zone: the scaler's peak memory was 1.4 MiB higher with it.

use chrono::offset::MappedLocalTime;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone};
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// A time zone of the IANA database, e.g. `Europe/Berlin`. Each zone is
/// loaded once and kept for the life of the process (a document names a
/// handful), so a zone is `Copy`, as the cron crate needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Zone(&'static jiff::tz::TimeZone);

/// The zones loaded so far.
static LOADED: Mutex<Vec<&'static jiff::tz::TimeZone>> = Mutex::new(Vec::new());

impl Zone {
    /// The zone `name` names, in any ASCII case; `None` for a name the
    /// database does not hold.
    pub fn named(name: &str) -> Option<Self> {
        let zone = jiff::tz::db().get(name).ok()?;
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = loaded.iter().find(|z| z.iana_name() == zone.iana_name()) {
            return Some(Zone(found));
        }
        let kept: &'static jiff::tz::TimeZone = Box::leak(Box::new(zone));
        loaded.push(kept);
        Some(Zone(kept))
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        self.0.iana_name().unwrap_or("UTC")
    }

    fn offset(&self, fixed: FixedOffset) -> ZoneOffset {
        ZoneOffset { zone: *self, fixed }
    }

    /// The one instant a schedule means by the local time `local`: in a
    /// fall-back overlap, the first of the two; in a spring-forward gap, the
    /// instant the gap ends (02:30 on a day that skips 02:00–03:00 is 03:00),
    /// so a start or end in either happens once. `None` beyond jiff's years.
    pub fn instant(&self, local: &NaiveDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
        use jiff::tz::AmbiguousOffset;
        let at = |offset: jiff::tz::Offset| {
            local.and_utc() - chrono::TimeDelta::seconds(i64::from(offset.seconds()))
        };
        match self.0.to_ambiguous_timestamp(civil(local)?).offset() {
            AmbiguousOffset::Unambiguous { offset } => Some(at(offset)),
            AmbiguousOffset::Fold { before, .. } => Some(at(before)),
            AmbiguousOffset::Gap { before, .. } => {
                // Read with the offset before the change, `local` lies just past
                // the change (or on it); the change is the gap's end.
                let past = jiff::Timestamp::from_second(at(before).timestamp() + 1).ok()?;
                let change = self.0.preceding(past).next()?.timestamp();
                chrono::DateTime::from_timestamp(change.as_second(), 0)
            }
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The offset in force at one instant of a [`Zone`]; it names its zone, as
/// `chrono` requires of an offset.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}{}", self.zone, self.fixed)
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fixed, f)
    }
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

fn fixed(offset: jiff::tz::Offset) -> FixedOffset {
    // Zones keep within ±15 h; chrono takes up to ±24 h, jiff up to ±26 h.
    FixedOffset::east_opt(offset.seconds()).unwrap_or(chrono::Utc.fix())
}

/// A `chrono` civil time in jiff's terms; `None` beyond jiff's years (±9999).
fn civil(local: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    let narrow = |v: u32| i8::try_from(v).ok();
    jiff::civil::DateTime::new(
        i16::try_from(local.year()).ok()?,
        narrow(local.month())?,
        narrow(local.day())?,
        narrow(local.hour())?,
        narrow(local.minute())?,
        narrow(local.second())?,
        // A leap second (nanoseconds past 10⁹) counts as the second's last instant.
        i32::try_from(local.nanosecond().min(999_999_999)).ok()?,
    )
    .ok()
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        offset.zone
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        match local.and_hms_opt(0, 0, 0) {
            Some(midnight) => self.offset_from_local_datetime(&midnight),
            None => MappedLocalTime::None,
        }
    }

    /// One offset, none in a spring-forward gap, or both in a fall-back
    /// overlap (the earlier instant's first), as `chrono` expects.
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        use jiff::tz::AmbiguousOffset;
        let Some(civil) = civil(local) else {
            return MappedLocalTime::None;
        };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                MappedLocalTime::Single(self.offset(fixed(offset)))
            }
            AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.offset(fixed(before)), self.offset(fixed(after)))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        match utc.and_hms_opt(0, 0, 0) {
            Some(midnight) => self.offset_from_utc_datetime(&midnight),
            None => self.offset(chrono::Utc.fix()),
        }
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let instant = jiff::Timestamp::from_second(utc.and_utc().timestamp());
        // Beyond jiff's years (±9999) no zone has rules: UTC.
        let offset = instant.map_or(jiff::tz::Offset::UTC, |t| self.0.to_offset(t));
        self.offset(fixed(offset))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn hours(offset: &ZoneOffset) -> f64 {
        f64::from(offset.fix().local_minus_utc()) / 3600.0
    }

    #[test]
    fn berlin_is_an_hour_ahead_in_winter_and_two_in_summer() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let winter = berlin.offset_from_utc_datetime(&local(2027, 1, 15, 12, 0));
        let summer = berlin.offset_from_utc_datetime(&local(2027, 7, 15, 12, 0));
        assert_eq!((hours(&winter), hours(&summer)), (1.0, 2.0));
        assert_eq!(berlin.name(), "Europe/Berlin");
    }

    #[test]
    fn a_time_in_the_spring_gap_does_not_exist_and_one_in_the_autumn_overlap_happens_twice() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        // 2027-03-28: clocks go from 02:00 to 03:00.
        assert_eq!(
            berlin.offset_from_local_datetime(&local(2027, 3, 28, 2, 30)),
            MappedLocalTime::None
        );
        // 2026-10-25: clocks go from 03:00 back to 02:00; the earlier instant first.
        match berlin.offset_from_local_datetime(&local(2026, 10, 25, 2, 30)) {
            MappedLocalTime::Ambiguous(first, second) => {
                assert_eq!((hours(&first), hours(&second)), (2.0, 1.0));
            }
            other => panic!("expected two offsets, got {other:?}"),
        }
        let utc = berlin
            .from_local_datetime(&local(2027, 3, 28, 3, 30))
            .single()
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(utc.to_rfc3339(), "2027-03-28T01:30:00+00:00");
    }

    #[test]
    fn a_schedule_time_in_the_gap_is_the_gap_end_and_in_the_overlap_the_first_pass() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let utc = |y, m, d, h, min| {
            chrono::Utc
                .with_ymd_and_hms(y, m, d, h, min, 0)
                .single()
                .unwrap()
        };
        // 2027-03-28 skips 02:00-03:00 CET: every time in it means 03:00 CEST, 01:00 UTC.
        for minute in [0, 30, 59] {
            assert_eq!(
                berlin.instant(&local(2027, 3, 28, 2, minute)),
                Some(utc(2027, 3, 28, 1, 0)),
                "02:{minute}"
            );
        }
        assert_eq!(
            berlin.instant(&local(2027, 3, 28, 3, 0)),
            Some(utc(2027, 3, 28, 1, 0))
        );
        // 2026-10-25 passes 02:00-03:00 twice: the first pass, in CEST.
        assert_eq!(
            berlin.instant(&local(2026, 10, 25, 2, 30)),
            Some(utc(2026, 10, 25, 0, 30))
        );
        assert_eq!(
            berlin.instant(&local(2026, 10, 25, 3, 0)),
            Some(utc(2026, 10, 25, 2, 0))
        );
        assert_eq!(
            berlin.instant(&local(2026, 11, 25, 8, 0)),
            Some(utc(2026, 11, 25, 7, 0))
        );
    }

    #[test]
    fn names_are_looked_up_in_any_case_and_unknown_ones_are_refused() {
        assert_eq!(
            Zone::named("america/new_york").unwrap().name(),
            "America/New_York"
        );
        assert_eq!(
            Zone::named("UTC").unwrap(),
            Zone::named("UTC").unwrap(),
            "a zone is loaded once"
        );
        assert!(Zone::named("Mars/Olympus").is_none());
        assert!(Zone::named("").is_none());
    }
}
