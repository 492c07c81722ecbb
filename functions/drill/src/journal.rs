//! The drill's journal: a timeline of every check, action, observation and
//! rollback step, each logged as a JSON line as it happens.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What kind of step an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Check,
    Action,
    Observation,
    Rollback,
    Verdict,
}

/// One step of a drill.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The drill the step belongs to (`sweep` for the sweep's own steps).
    pub drill_id: String,
    pub at: DateTime<Utc>,
    pub step: Step,
    pub what: String,
    pub ok: bool,
}

/// The journal of one invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Journal {
    pub entries: Vec<Entry>,
}

impl Journal {
    /// Records a step and logs it as one JSON line.
    pub fn record(&mut self, drill_id: &str, step: Step, what: impl Into<String>, ok: bool) {
        let entry = Entry {
            drill_id: drill_id.to_string(),
            at: Utc::now(),
            step,
            what: what.into(),
            ok,
        };
        let line = serde_json::json!({
            "level": if ok { "INFO" } else { "WARN" },
            "function": "drill",
            "message": "journal",
            "drill_id": drill_id,
            "entry": &entry,
        });
        ecs_control::logging::write_line(line);
        self.entries.push(entry);
    }
}
