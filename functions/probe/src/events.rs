//! The payloads the probe accepts: the schedule's tick, or an operator's run.

use ecs_control::config::probe::{parse_check, CheckSource};
use ecs_control::domain::probe::ProbeCheck;
pub use ecs_control::invocation::MalformedEvent;
use serde::Deserialize;
use serde_json::Value;

/// What to run, and whether to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub manual: bool,
    /// Configured checks by name; `None` runs them all.
    pub checks: Option<Vec<String>>,
    /// Checks given in the invocation itself.
    pub adhoc: Vec<ProbeCheck>,
    /// Whether target groups are counted (all of them, on a full run).
    pub target_groups: bool,
    pub publish: bool,
}

/// `{"command": "run", "checks": [...], "adhoc": [...], "publish": false}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCommand {
    command: String,
    #[serde(default)]
    checks: Option<Vec<String>>,
    #[serde(default)]
    adhoc: Vec<Value>,
    #[serde(default)]
    target_groups: Option<bool>,
    #[serde(default)]
    publish: Option<bool>,
}

const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
const RUN_COMMAND: &str = "run";

/// Tells the payload's kind by its shape and parses it.
///
/// # Errors
/// [`MalformedEvent`] naming what was expected, or the ad-hoc check field that is wrong.
pub fn parse(payload: Value) -> Result<Run, MalformedEvent> {
    let Some(object) = payload.as_object() else {
        return Err(MalformedEvent("expected a JSON object".into()));
    };
    if object.get("detail-type").and_then(Value::as_str) == Some(SCHEDULED_DETAIL_TYPE) {
        return Ok(Run {
            manual: false,
            checks: None,
            adhoc: Vec::new(),
            target_groups: true,
            publish: true,
        });
    }
    if let Some(other) = object.get("detail-type").and_then(Value::as_str) {
        return Err(MalformedEvent::unsupported_detail_type(
            other,
            &[SCHEDULED_DETAIL_TYPE],
        ));
    }
    if !object.contains_key("command") {
        return Err(MalformedEvent::unrecognised(
            object,
            "a Scheduled Event or a manual command (command)",
        ));
    }
    let command: RunCommand = serde_json::from_value(payload)
        .map_err(|e| MalformedEvent::because("manual command", e))?;
    if command.command != RUN_COMMAND {
        return Err(MalformedEvent(format!(
            "manual command: unknown command {:?}, expected {RUN_COMMAND:?}",
            command.command
        )));
    }
    let adhoc = command
        .adhoc
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            parse_check(raw, &format!("adhoc[{i}]"), CheckSource::Invocation)
                .map_err(|e| MalformedEvent::because("manual command", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let full = command.checks.is_none() && adhoc.is_empty();
    Ok(Run {
        manual: true,
        // Ad-hoc checks are not published unless asked: their names are not the configured ones.
        publish: command.publish.unwrap_or(adhoc.is_empty()),
        target_groups: command.target_groups.unwrap_or(full),
        checks: command.checks,
        adhoc,
    })
}
