//! Every sample in `events/drill/` parses to the command it is named for, and
//! what is not a drill command is refused clearly.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use drill::events::{parse, Command};
use ecs_control::domain::drill::Mode;
use serde_json::{json, Value};

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/drill/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_sample_parses_to_its_command() {
    let start = |drill: &str, mode| Command::Start {
        drill: drill.into(),
        mode,
    };
    for (name, expected) in [
        ("start-scale-plan", start("scale-web-up", Mode::Plan)),
        (
            "start-stop-tasks",
            start("stop-a-third-of-web", Mode::Execute),
        ),
        (
            "start-drain-target",
            start("drain-one-web-target", Mode::Execute),
        ),
        ("start-alarm", start("web-cpu-alarm", Mode::Execute)),
        (
            "continue",
            Command::Continue {
                drill_id: "scale-web-up-1795476762193".into(),
            },
        ),
        ("sweep-schedule", Command::Sweep),
    ] {
        assert_eq!(parse(sample(name)).expect(name), expected, "{name}");
    }
}

#[test]
fn plan_is_the_default_and_anything_else_is_refused() {
    assert_eq!(
        parse(json!({"command": "start", "drill": "d"})).expect("start"),
        Command::Start {
            drill: "d".into(),
            mode: Mode::Plan
        }
    );
    // Each refusal names what is wrong: the field missing, the value refused,
    // or the shape expected.
    for (bad, says) in [
        (
            json!({"command": "start"}),
            "start command: missing field `drill`",
        ),
        (
            json!({"command": "start", "drill": "d", "mode": "yolo"}),
            "start command: field mode: unknown variant `yolo`, expected `plan` or `execute`",
        ),
        (
            json!({"command": "start", "drill": 7}),
            "start command: field drill: invalid type: integer `7`, expected a string",
        ),
        (
            json!({"command": "start", "drill": "d", "dry_run": true}),
            "start command: field dry_run: unknown field `dry_run`",
        ),
        (
            json!({"command": "explode"}),
            "unrecognised event with keys [\"command\"]: expected a command (start, continue or sweep) or a scheduled event",
        ),
        (
            json!({"command": "continue"}),
            "continue command: missing field `drill_id`",
        ),
        (
            json!({"command": "continue", "drill_id": ["d-1"]}),
            "continue command: field drill_id: invalid type: sequence, expected a string",
        ),
        (json!([1]), "expected a JSON object"),
    ] {
        let refused = parse(bad.clone()).expect_err(&bad.to_string());
        assert!(refused.0.starts_with(says), "{bad}: {refused}");
    }
}
