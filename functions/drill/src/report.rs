//! What an invocation returns: its report, and what a post-mortem needs of
//! a drill: one summary per drill an invocation touched (who asked, what it did, when, how it ended), and the same as a
//! short Markdown report to paste into an incident document.

use crate::events::Command;
use crate::journal::{Entry, Step};
use chrono::{DateTime, SecondsFormat, Utc};
use ecs_control::domain::drill::{Outcome, Snapshot};
use ecs_control::domain::service::ServiceRef;
use serde::Serialize;

/// What an invocation planned, did and found.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub command: Command,
    pub drill: Option<String>,
    pub drill_id: Option<String>,
    pub kind: Option<&'static str>,
    pub service: Option<ServiceRef>,
    /// What the drill would do (plan) or did (execute), and its rollback.
    pub plan: Vec<String>,
    pub rollback_plan: Vec<String>,
    pub snapshot: Option<Snapshot>,
    pub outcome: Option<Outcome>,
    pub rolled_back: bool,
    /// Half-done drills found (expired locks) and rolled back.
    pub recovered: Vec<String>,
    /// Drills the sweep ended: crashed ones (lock expired), and ones between
    /// invocations whose stop condition fired or that the safety lever halted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<SweptDrill>,
    pub journal: Vec<Entry>,
    /// One summary per drill this invocation ran or ended, for a post-mortem.
    pub summaries: Vec<DrillSummary>,
    /// The summaries and their timelines as Markdown, to paste into an
    /// incident document.
    pub markdown: String,
}

/// A drill the sweep ended, and how.
#[derive(Debug, Clone, Serialize)]
pub struct SweptDrill {
    pub drill_id: String,
    /// The drill's name, as its saved state gives it.
    pub drill: String,
    pub service: ServiceRef,
    pub why: String,
    pub outcome: Outcome,
}

impl DrillReport {
    pub(crate) fn new(command: Command) -> Self {
        Self {
            command,
            drill: None,
            drill_id: None,
            kind: None,
            service: None,
            plan: Vec::new(),
            rollback_plan: Vec::new(),
            snapshot: None,
            outcome: None,
            rolled_back: false,
            recovered: Vec::new(),
            swept: Vec::new(),
            journal: Vec::new(),
            summaries: Vec::new(),
            markdown: String::new(),
        }
    }
}

/// The most journal entries a Markdown report lists; the journal has them all.
const TIMELINE_ENTRIES: usize = 40;

/// Who asked for an invocation: the command's `requested_by`, and Lambda's
/// request id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requester {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One drill, as this invocation saw it end (or suspend).
#[derive(Debug, Clone, Serialize)]
pub struct DrillSummary {
    pub drill: String,
    pub drill_id: Option<String>,
    pub kind: Option<&'static str>,
    pub service: Option<ServiceRef>,
    /// `start`, `continue` or `sweep`.
    pub command: &'static str,
    #[serde(flatten)]
    pub requester: Requester,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_seconds: f64,
    /// The outcome's label (`passed`, `aborted`, `rollback_failed`, ...).
    pub status: &'static str,
    /// Whether the steady state or a check failed at any point.
    pub deviated: bool,
    /// What the drill changed, in order.
    pub actions: Vec<String>,
    /// `rolled_back`, `failed`, `pending` (suspended), or `none`.
    pub rollback: &'static str,
}

/// The summaries of `report`: its own drill, then each drill the sweep ended.
pub fn summaries(
    report: &DrillReport,
    requester: &Requester,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
) -> Vec<DrillSummary> {
    let command = match &report.command {
        crate::events::Command::Start { .. } => "start",
        crate::events::Command::Continue { .. } => "continue",
        crate::events::Command::Sweep => "sweep",
    };
    let summary = |drill: &str,
                   drill_id: Option<&str>,
                   kind: Option<&'static str>,
                   service: Option<&ServiceRef>,
                   outcome: &Outcome,
                   rolled_back: bool| {
        let entries: Vec<&Entry> = report
            .journal
            .iter()
            .filter(|e| drill_id.is_none_or(|id| e.drill_id == id))
            .collect();
        let started = entries.first().map_or(started_at, |e| e.at.min(started_at));
        DrillSummary {
            drill: drill.to_string(),
            drill_id: drill_id.map(str::to_string),
            kind,
            service: service.cloned(),
            command,
            requester: requester.clone(),
            started_at: started,
            ended_at,
            duration_seconds: (ended_at - started).num_milliseconds() as f64 / 1000.0,
            status: outcome.label(),
            deviated: matches!(outcome, Outcome::Failed { .. } | Outcome::Aborted { .. })
                || entries.iter().any(|e| e.step == Step::Observation && !e.ok),
            actions: entries
                .iter()
                .filter(|e| matches!(e.step, Step::Action | Step::Rollback) && e.ok)
                .map(|e| e.what.clone())
                .collect(),
            rollback: match outcome {
                Outcome::RollbackFailed { .. } => "failed",
                Outcome::InProgress => "pending",
                _ if rolled_back => "rolled_back",
                _ => "none",
            },
        }
    };
    let own = report
        .drill
        .as_deref()
        .zip(report.outcome.as_ref())
        .map(|(drill, outcome)| {
            summary(
                drill,
                report.drill_id.as_deref(),
                report.kind,
                report.service.as_ref(),
                outcome,
                report.rolled_back,
            )
        });
    own.into_iter()
        .chain(report.swept.iter().map(|swept| {
            summary(
                &swept.drill,
                Some(&swept.drill_id),
                None,
                Some(&swept.service),
                &swept.outcome,
                !matches!(swept.outcome, Outcome::RollbackFailed { .. }),
            )
        }))
        .collect()
}

/// The summaries and their timelines as Markdown: a heading and a table per
/// drill, the changes made, and the journal's entries for it.
pub fn markdown(summaries: &[DrillSummary], journal: &[Entry]) -> String {
    let mut out = String::new();
    for s in summaries {
        let id = s.drill_id.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "### Drill `{}` (`{id}`): {}\n\n",
            s.drill, s.status
        ));
        out.push_str("| | |\n| --- | --- |\n");
        let mut row = |name: &str, value: String| {
            out.push_str(&format!("| {name} | {} |\n", cell(&value)));
        };
        row(
            "Service",
            s.service
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string),
        );
        row("Kind", s.kind.unwrap_or("-").to_string());
        row(
            "Requested by",
            format!(
                "{} ({} command, request {})",
                s.requester.requested_by.as_deref().unwrap_or("not given"),
                s.command,
                s.requester.request_id.as_deref().unwrap_or("-")
            ),
        );
        row(
            "Ran",
            format!(
                "{} to {} ({:.1} s)",
                time(s.started_at),
                time(s.ended_at),
                s.duration_seconds
            ),
        );
        row(
            "Steady state",
            if s.deviated { "deviated" } else { "held" }.to_string(),
        );
        row("Rollback", s.rollback.replace('_', " "));
        out.push('\n');
        if !s.actions.is_empty() {
            out.push_str("Changes:\n\n");
            for action in &s.actions {
                out.push_str(&format!("- {action}\n"));
            }
            out.push('\n');
        }
        let entries: Vec<&Entry> = journal
            .iter()
            .filter(|e| s.drill_id.as_deref().is_none_or(|id| e.drill_id == id))
            .collect();
        if !entries.is_empty() {
            out.push_str("| time | step | ok | what |\n| --- | --- | --- | --- |\n");
            for e in entries.iter().take(TIMELINE_ENTRIES) {
                out.push_str(&format!(
                    "| {} | {:?} | {} | {} |\n",
                    time(e.at),
                    e.step,
                    if e.ok { "yes" } else { "no" },
                    cell(&e.what)
                ));
            }
            if entries.len() > TIMELINE_ENTRIES {
                out.push_str(&format!(
                    "\n{} more entries in the journal.\n",
                    entries.len() - TIMELINE_ENTRIES
                ));
            }
            out.push('\n');
        }
    }
    out
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A table cell: one line, no column breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Command;
    use crate::handler::SweptDrill;
    use ecs_control::domain::drill::Mode;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_450_000 + s, 0).unwrap_or_default()
    }

    fn entry(drill_id: &str, s: i64, step: Step, what: &str, ok: bool) -> Entry {
        Entry {
            drill_id: drill_id.into(),
            at: at(s),
            step,
            what: what.into(),
            ok,
        }
    }

    #[test]
    fn a_drill_and_a_swept_one_each_get_a_summary_and_a_report() {
        let service = ServiceRef::new("demo", "web");
        let mut report = DrillReport::new(Command::Start {
            drill: "scale-web".into(),
            mode: Mode::Execute,
        });
        report.drill = Some("scale-web".into());
        report.drill_id = Some("scale-web-1".into());
        report.kind = Some("scale");
        report.service = Some(service.clone());
        report.outcome = Some(Outcome::Aborted {
            alarm: "web-5xx".into(),
        });
        report.rolled_back = true;
        report.swept.push(SweptDrill {
            drill_id: "drain-web-0".into(),
            drill: "drain-web".into(),
            service: service.clone(),
            why: "its lock expired".into(),
            outcome: Outcome::RollbackFailed {
                why: "read back disagrees".into(),
            },
        });
        report.journal = vec![
            entry(
                "drain-web-0",
                0,
                Step::Rollback,
                "drill drain-web-0: rolling back",
                true,
            ),
            entry("scale-web-1", 1, Step::Action, "desired count 2 -> 4", true),
            entry(
                "scale-web-1",
                5,
                Step::Observation,
                "abort alarms in ALARM [\"web-5xx\"] | x",
                false,
            ),
            entry(
                "scale-web-1",
                6,
                Step::Rollback,
                "desired count 4 -> 2",
                true,
            ),
        ];
        let requester = Requester {
            requested_by: Some("alice".into()),
            request_id: Some("req-1".into()),
        };
        let all = summaries(&report, &requester, at(1), at(7));
        assert_eq!(all.len(), 2);
        let own = &all[0];
        assert_eq!(
            (own.status, own.rollback, own.deviated),
            ("aborted", "rolled_back", true)
        );
        assert_eq!(
            own.actions,
            ["desired count 2 -> 4", "desired count 4 -> 2"]
        );
        assert_eq!(own.started_at, at(1));
        assert!((own.duration_seconds - 6.0).abs() < 1e-9);
        assert_eq!(own.requester.requested_by.as_deref(), Some("alice"));
        let swept = &all[1];
        assert_eq!(
            (swept.drill.as_str(), swept.status, swept.rollback),
            ("drain-web", "rollback_failed", "failed")
        );
        assert_eq!(swept.started_at, at(0));

        let text = markdown(&all, &report.journal);
        assert!(
            text.contains("### Drill `scale-web` (`scale-web-1`): aborted"),
            "{text}"
        );
        assert!(
            text.contains("| Requested by | alice (start command, request req-1) |"),
            "{text}"
        );
        assert!(text.contains("| Steady state | deviated |"), "{text}");
        assert!(text.contains("- desired count 2 -> 4"), "{text}");
        // A pipe in an entry does not break the table.
        assert!(text.contains("\\| x"), "{text}");
        assert!(
            text.contains("### Drill `drain-web` (`drain-web-0`): rollback_failed"),
            "{text}"
        );
        // Each drill's timeline holds its own entries only.
        let own_part = &text[..text.find("### Drill `drain-web`").unwrap_or(text.len())];
        assert!(
            !own_part.contains("drill drain-web-0: rolling back"),
            "{text}"
        );
    }
}
