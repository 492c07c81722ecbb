//! The payloads the drill function accepts.

use ecs_control::domain::drill::Mode;
pub use ecs_control::invocation::MalformedEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `{"command": "start", "drill": "<name>", "mode": "plan" | "execute"}`
    Start { drill: String, mode: Mode },
    /// `{"command": "continue", "drill_id": "<id>"}`: resume a drill a former
    /// invocation suspended when its time ran out.
    Continue { drill_id: String },
    /// The scheduled tick: find drills left half-done (their lock expired) and
    /// roll them back.
    Sweep,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartEntry {
    #[allow(dead_code)]
    command: String,
    drill: String,
    #[serde(default = "plan")]
    mode: ModeEntry,
    /// Who asked, for the summary (read by [`requested_by`]).
    #[serde(default)]
    #[allow(dead_code)]
    requested_by: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ModeEntry {
    Plan,
    Execute,
}

/// Plan is the default: a drill acts only when asked to in so many words.
fn plan() -> ModeEntry {
    ModeEntry::Plan
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContinueEntry {
    #[allow(dead_code)]
    command: String,
    drill_id: String,
    #[serde(default)]
    #[allow(dead_code)]
    requested_by: Option<String>,
}

/// The most characters of `requested_by` a summary keeps.
pub const REQUESTED_BY_LIMIT: usize = 128;

/// Who a manual command says asked for it (`"requested_by": "alice"`), cut
/// to [`REQUESTED_BY_LIMIT`] characters; a schedule says no one.
pub fn requested_by(payload: &Value) -> Option<String> {
    let who = payload.get("requested_by")?.as_str()?.trim();
    (!who.is_empty()).then(|| who.chars().take(REQUESTED_BY_LIMIT).collect())
}

/// Tells the payload's kind and parses it.
///
/// # Errors
/// [`MalformedEvent`] naming what was expected.
pub fn parse(payload: Value) -> Result<Command, MalformedEvent> {
    let Some(object) = payload.as_object() else {
        return Err(MalformedEvent("expected a JSON object".into()));
    };
    if object.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Command::Sweep);
    }
    match object.get("command").and_then(Value::as_str) {
        Some("start") => {
            let entry: StartEntry = read_entry("start command", payload)?;
            Ok(Command::Start {
                drill: entry.drill,
                mode: match entry.mode {
                    ModeEntry::Plan => Mode::Plan,
                    ModeEntry::Execute => Mode::Execute,
                },
            })
        }
        Some("continue") => {
            let entry: ContinueEntry = read_entry("continue command", payload)?;
            Ok(Command::Continue {
                drill_id: entry.drill_id,
            })
        }
        Some("sweep") => Ok(Command::Sweep),
        _ => Err(MalformedEvent::unrecognised(
            object,
            "a command (start, continue or sweep) or a scheduled event",
        )),
    }
}

/// A command's entry, or an error naming the field that was wrong.
fn read_entry<T: serde::de::DeserializeOwned>(
    what: &str,
    payload: Value,
) -> Result<T, MalformedEvent> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        // A key may be any length: its name is cut as any echo is.
        let field = ecs_control::echo::capped(&e.path().to_string(), 64);
        if field == "." {
            MalformedEvent::because(what, e.inner())
        } else {
            MalformedEvent::because(&format!("{what}: field {field}"), e.inner())
        }
    })
}
