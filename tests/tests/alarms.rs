//! Every failure pages someone: read from `infra/template.yaml`, each alarm
//! notifies on ALARM and on OK, each failure queue has an alarm on messages
//! arriving, each dead-letter queue one on its depth rising, each function the
//! Lambda health alarms, and `docs/operations.md` has a section for each alarm.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::workspace_root;
use yaml_rust2::{Yaml, YamlLoader};

const FUNCTIONS: &[&str] = &["Scaler", "Registrar", "Probe", "Drill"];
const HEALTH: &[(&str, &str)] = &[
    ("Errors", "Errors"),
    ("Throttles", "Throttles"),
    ("AsyncEventAge", "AsyncEventAge"),
    ("AsyncEventsDropped", "AsyncEventsDropped"),
    ("NearTimeout", "Duration"),
];

fn template() -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// `(logical id, properties)` of every resource of `kind`.
fn resources<'a>(template: &'a Yaml, kind: &str) -> Vec<(&'a str, &'a Yaml)> {
    template["Resources"]
        .as_hash()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().unwrap(), &r["Properties"]))
        .collect()
}

/// The text of a value whose YAML tag (`!Ref`, `!GetAtt`) the loader drops.
fn text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => format!("{other:?}"),
    }
}

fn dimension(properties: &Yaml) -> String {
    properties["Dimensions"]
        .as_vec()
        .map(|d| text(&d[0]["Value"]))
        .unwrap_or_default()
}

#[test]
fn every_alarm_notifies_on_alarm_and_on_ok() {
    let template = template();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 30, "{}", alarms.len());
    for (name, properties) in alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let value = text(&properties[actions]);
            assert!(
                value.contains("AlertTopicArn") && value.contains("AlertTopic"),
                "{name} has no {actions} to the alert topic: {value:?}"
            );
        }
    }
    // An address alone is enough to page: the stack makes the topic for it.
    let topics = resources(&template, "AWS::SNS::Topic");
    assert_eq!(topics.len(), 1);
    assert_eq!(
        text(&topics[0].1["Subscription"][0]["Endpoint"]),
        "AlertEmail"
    );
}

#[test]
fn every_failure_queue_alarms_on_each_arrival_and_every_dead_letter_queue_on_its_rise() {
    let template = template();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    for function in FUNCTIONS {
        let queue = format!("{function}Failures.QueueName");
        assert!(
            alarms.iter().any(|(_, p)| {
                p["MetricName"].as_str() == Some("NumberOfMessagesSent")
                    && dimension(p) == queue
                    && p["Statistic"].as_str() == Some("Sum")
            }),
            "no arrival alarm on {queue}"
        );
    }
    for function in ["Scaler", "Registrar"] {
        let queue = format!("{function}DeadLetters.QueueName");
        assert!(
            alarms.iter().any(|(_, p)| {
                let metrics = p["Metrics"].as_vec().cloned().unwrap_or_default();
                metrics
                    .iter()
                    .any(|m| text(&m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]) == queue)
                    && metrics
                        .iter()
                        .any(|m| m["Expression"].as_str() == Some("DIFF(depth)"))
            }),
            "no alarm on {queue} rising"
        );
    }
}

#[test]
fn every_function_has_the_lambda_health_alarms() {
    let template = template();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let timeouts = |function: &str| {
        template["Resources"][format!("{function}Function").as_str()]["Properties"]["Timeout"]
            .as_i64()
            .unwrap()
    };
    for function in FUNCTIONS {
        for (suffix, metric) in HEALTH {
            let name = format!("{function}{suffix}");
            let (_, properties) = alarms
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no alarm {name}"));
            assert_eq!(properties["Namespace"].as_str(), Some("AWS/Lambda"));
            assert_eq!(properties["MetricName"].as_str(), Some(*metric), "{name}");
            assert_eq!(
                dimension(properties),
                format!("{function}Function"),
                "{name}"
            );
            if *metric == "Duration" {
                // 80% of the timeout, in milliseconds.
                let threshold = properties["Threshold"].as_i64().unwrap();
                assert_eq!(threshold, timeouts(function) * 800, "{name}");
            }
        }
    }
}

#[test]
fn the_runbook_has_a_section_for_every_alarm() {
    let template = template();
    let runbook = std::fs::read_to_string(workspace_root().join("docs/operations.md")).unwrap();
    let missing: Vec<&str> = resources(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !runbook.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md has no section for {missing:?}"
    );
}
