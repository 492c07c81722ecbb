//! The emulator's clock (`tests/emulator/clock.py`): CloudWatch evaluates
//! alarms once a minute on the minute, not when data arrives, so a test that
//! puts datapoints then moves the clock or asks for an evaluation. Each region
//! can keep its own time, so tests sharing an emulator never move each other's.

use crate::{control_request, Aws, Emulator};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn parse_now(answer: &Value) -> DateTime<Utc> {
    let text = answer["now"].as_str().expect("the clock's now");
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// The latest minute boundary at or before `at`: an alarm's evaluation instant.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp().div_euclid(60) * 60;
    DateTime::from_timestamp(seconds, 0).expect("a time")
}

impl Emulator {
    /// Emulator time in `region`.
    pub fn clock_now(&self, region: &str) -> DateTime<Utc> {
        parse_now(&self.control("GET", &format!("clock?region={region}"), &json!({})))
    }

    /// Moves `region`'s clock `seconds` on, evaluating every alarm of the
    /// region at each minute boundary crossed; returns the new time.
    pub fn advance_clock(&self, region: &str, seconds: u64) -> DateTime<Utc> {
        parse_now(&self.control(
            "POST",
            "clock",
            &json!({"region": region, "advance_seconds": seconds}),
        ))
    }

    /// Puts `region`'s clock at `at` (backwards too), evaluating nothing.
    pub fn set_clock(&self, region: &str, at: DateTime<Utc>) -> DateTime<Utc> {
        parse_now(&self.control(
            "POST",
            "clock",
            &json!({"region": region, "set": at.to_rfc3339()}),
        ))
    }

    /// Evaluates every alarm of `region` at its latest evaluation instant.
    pub fn evaluate_alarms(&self, region: &str) {
        self.control("POST", "alarms/evaluate", &json!({"region": region}));
    }

    /// The events AWS services emitted from `source` in `region`, oldest first.
    pub fn events(&self, source: &str, region: &str) -> Vec<Value> {
        let answer = self.control("GET", &format!("events?source={source}"), &json!({}));
        answer["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["region"] == region)
            .cloned()
            .collect()
    }

    /// The alarm actions run or suppressed in `region`, oldest first.
    pub fn alarm_actions(&self, region: &str) -> Vec<Value> {
        let answer = self.control("GET", &format!("alarm-actions?region={region}"), &json!({}));
        answer["actions"].as_array().cloned().unwrap_or_default()
    }
}

impl Aws {
    fn clock(&self, body: &Value) -> DateTime<Utc> {
        parse_now(&control_request(&self.endpoint, "POST", "clock", body))
    }

    /// Emulator time in this region.
    pub fn clock_now(&self) -> DateTime<Utc> {
        parse_now(&control_request(
            &self.endpoint,
            "GET",
            &format!("clock?region={}", self.region),
            &json!({}),
        ))
    }

    /// Puts this region's clock at `at` (backwards too), evaluating nothing:
    /// a test on a fixed date puts its datapoints in CloudWatch's window.
    pub fn set_clock(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.clock(&json!({"region": self.region, "set": at.to_rfc3339()}))
    }

    /// Puts this region's clock at `at` and evaluates its alarms there: what
    /// CloudWatch would have decided by `at`. For tests on a fixed date.
    pub fn evaluate_alarms_at(&self, at: DateTime<Utc>) {
        self.clock(&json!({"region": self.region, "set": at.to_rfc3339()}));
        self.evaluate_alarms();
    }

    /// Evaluates this region's alarms at its latest evaluation instant.
    pub fn evaluate_alarms(&self) {
        control_request(
            &self.endpoint,
            "POST",
            "alarms/evaluate",
            &json!({"region": self.region}),
        );
    }

    /// Moves this region's clock `seconds` on (alarms evaluated each minute).
    pub fn advance_clock(&self, seconds: u64) -> DateTime<Utc> {
        self.clock(&json!({"region": self.region, "advance_seconds": seconds}))
    }
}
