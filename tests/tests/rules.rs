//! The EventBridge rules in `infra/template.yaml` pass the events a function
//! acts on and drop those it would only ignore: every sample in `events/`
//! is matched against the rule's pattern as EventBridge matches (exact
//! values, `prefix`, `$or`; every field of the pattern must match).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::workspace_root;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn sample(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(workspace_root().join(path)).unwrap()).unwrap()
}

/// The template's parameter names: a `!Ref` to one reaches this loader as the
/// bare name, and the deployment decides its value.
fn parameters() -> Vec<String> {
    template()["Parameters"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// `text` with each `${Parameter}` that has a default replaced by it.
fn with_defaults(text: &str) -> String {
    let template = template();
    let mut text = text.to_string();
    for (name, spec) in template["Parameters"].as_hash().unwrap() {
        let (Some(name), Some(default)) = (name.as_str(), spec["Default"].as_str()) else {
            continue;
        };
        text = text.replace(&format!("${{{name}}}"), default);
    }
    text
}

/// One allowed value of a pattern's list against the event's value.
fn value_matches(allowed: &Yaml, actual: &Value) -> bool {
    match allowed {
        // A value the template fills in from a parameter (`!Sub …${…}`):
        // the deployment decides it, so any value stands in for it here.
        Yaml::String(s) if s.contains("${") => true,
        Yaml::String(s) => actual.as_str() == Some(s.as_str()),
        Yaml::Hash(h) => {
            let prefix = h
                .get(&Yaml::String("prefix".into()))
                .and_then(Yaml::as_str)
                .expect("only prefix matching is used");
            if parameters().iter().any(|p| p == prefix) {
                return actual.is_string();
            }
            // `!Sub "service:${ManagedServicePrefix}"`: the parameter's default
            // stands in, as a deploy that leaves it unset gets.
            let prefix = with_defaults(prefix);
            if prefix.contains("${") {
                return actual.is_string();
            }
            actual.as_str().is_some_and(|a| a.starts_with(&prefix))
        }
        other => panic!("unexpected pattern value {other:?}"),
    }
}

/// EventBridge's matching: every key of the pattern is present and matches.
fn matches(pattern: &Yaml, event: &Value) -> bool {
    pattern.as_hash().unwrap().iter().all(|(key, allowed)| {
        let key = key.as_str().unwrap();
        if key == "$or" {
            return allowed.as_vec().unwrap().iter().any(|p| matches(p, event));
        }
        let Some(actual) = event.get(key) else {
            return false;
        };
        match allowed {
            Yaml::Array(values) => values.iter().any(|v| value_matches(v, actual)),
            Yaml::Hash(_) => matches(allowed, actual),
            other => panic!("unexpected pattern {other:?}"),
        }
    })
}

fn pattern(template: &Yaml, rule: &str) -> Yaml {
    template["Resources"][rule]["Properties"]["EventPattern"].clone()
}

fn with_statuses(mut event: Value, last: &str, desired: &str) -> Value {
    event["detail"]["lastStatus"] = last.into();
    event["detail"]["desiredStatus"] = desired.into();
    event
}

#[test]
fn the_task_rule_passes_the_transitions_the_registrar_acts_on_and_no_other() {
    let template = template();
    let rule = pattern(&template, "RegistrarTaskRule");
    for acting in [
        "events/registrar/task-running.json",
        "events/registrar/task-stopping.json",
        "events/registrar/task-stopped.json",
        "events/registrar/task-spot-termination.json",
    ] {
        assert!(matches(&rule, &sample(acting)), "{acting} is dropped");
    }
    let running = sample("events/registrar/task-running.json");
    // Starting up, and winding down after the target was deregistered.
    for (last, desired) in [
        ("PROVISIONING", "RUNNING"),
        ("PENDING", "RUNNING"),
        ("ACTIVATING", "RUNNING"),
        ("DEPROVISIONING", "STOPPED"),
        ("PENDING", "STOPPED"),
    ] {
        let event = with_statuses(running.clone(), last, desired);
        assert!(!matches(&rule, &event), "{last}/{desired} passes");
    }
    // Deactivating (behind a load balancer) may still be a target.
    let deactivating = with_statuses(running.clone(), "DEACTIVATING", "STOPPED");
    assert!(matches(&rule, &deactivating));
    // A task run outside a service is never the registrar's.
    let mut standalone = running;
    standalone["detail"]["group"] = "family:web-task".into();
    assert!(!matches(&rule, &standalone));
}

#[test]
fn the_alarm_rule_passes_alarm_state_changes_to_alarm_only() {
    let template = template();
    let rule = pattern(&template, "ScalerAlarmRule");
    assert!(matches(
        &rule,
        &sample("events/scaler/alarm-state-change.json")
    ));
    assert!(!matches(
        &rule,
        &sample("events/scaler/alarm-state-change-ok.json")
    ));
}
