//! Every event parser and configuration loader, fed arbitrary JSON values and
//! mutations of every sample in `events/` and every document in `infra/`: no
//! input panics, and each gets a result or a clear, bounded error. Each run
//! prints its case count.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use e2e::workspace_root;
use ecs_control::config::{DrillConfig, ProbeConfig, RegistrarConfig, ScalerConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use std::path::Path;

const CASES: u32 = 256;
/// No error message may run longer than this, whatever it was fed.
const LONGEST_MESSAGE: usize = 4_096;

/// Words the parsers look for, so arbitrary values reach past the first check.
const WORDS: &[&str] = &[
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "RUNNING",
    "STOPPED",
    "PROVISIONING",
    "aws.cloudwatch",
    "aws.ecs",
    "aws.events",
    "CloudWatch Alarm State Change",
    "ECS Task State Change",
    "Scheduled Event",
    "run",
    "reconcile",
    "set_desired_count",
    "apply_step",
    "preview_bounds",
    "start",
    "continue",
    "sweep",
    "service:web",
    "demo",
    "web",
    "web-cpu-high",
    "arn:aws:ecs:us-east-1:123456789012:task/demo/0f9d3c5e",
    "arn:aws:ecs:eu-west-1:999999999999:cluster/demo",
    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-cpu-high",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    "https://web.example.com/health",
    "2026-11-21T10:02:40.991+0000",
    "",
];

const KEYS: &[&str] = &[
    "source",
    "detail-type",
    "detail",
    "alarmName",
    "alarmData",
    "state",
    "value",
    "timestamp",
    "previousState",
    "configuration",
    "Records",
    "Sns",
    "Message",
    "command",
    "cluster",
    "service",
    "services",
    "desired_count",
    "reason",
    "request_id",
    "dry_run",
    "checks",
    "adhoc",
    "taskArn",
    "clusterArn",
    "group",
    "lastStatus",
    "desiredStatus",
    "attachments",
    "policies",
    "steps",
    "target_groups",
    "drill",
    "kind",
    "id",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        // Now and then a huge string: it must never be echoed whole.
        (1_000usize..200_000).prop_map(|n| Value::from("x".repeat(n))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_-]{1,12}",
    ]
}

/// One change at one place in a document.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), key(), json_value()).prop_map(|(at, k, v)| Mutation::Insert(at, k, v)),
    ]
}

/// Every place in a value, as JSON pointers (the root is "").
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_string());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, &format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn mutate(mut document: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let mut places = Vec::new();
        pointers(&document, "", &mut places);
        let pick = |at: usize| places[at % places.len()].clone();
        match m {
            Mutation::Replace(at, v) => {
                if let Some(slot) = document.pointer_mut(&pick(*at)) {
                    *slot = v.clone();
                }
            }
            Mutation::Remove(at) => {
                let place = pick(*at);
                if let Some((parent, last)) = place.rsplit_once('/') {
                    match document.pointer_mut(parent) {
                        Some(Value::Object(map)) => {
                            map.remove(&last.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(i) = last.parse::<usize>() {
                                if i < items.len() {
                                    items.remove(i);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Insert(at, k, v) => match document.pointer_mut(&pick(*at)) {
                Some(Value::Object(map)) => {
                    map.insert(k.clone(), v.clone());
                }
                Some(Value::Array(items)) => items.push(v.clone()),
                _ => {}
            },
        }
    }
    document
}

fn json_files(dir: &Path) -> Vec<Value> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read");
            found.push(serde_json::from_str(&text).expect("sample is JSON"));
        }
    }
    found
}

/// Feeds `parse` with `inputs` and checks each answer; prints the counts.
fn fuzz<S: Strategy<Value = Value>>(
    name: &str,
    inputs: S,
    parse: impl Fn(Value) -> Result<(), String>,
) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let parsed = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    runner
        .run(&inputs, |input| {
            match parse(input) {
                Ok(()) => parsed.set(parsed.get() + 1),
                Err(message) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(!message.trim().is_empty(), "an error must say something");
                    prop_assert!(
                        message.len() <= LONGEST_MESSAGE,
                        "a {}-byte error echoes its input: {}",
                        message.len(),
                        &message[..200]
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    println!(
        "fuzz {name}: {} cases, {} parsed, {} refused with a clear error",
        parsed.get() + refused.get(),
        parsed.get(),
        refused.get()
    );
}

fn samples() -> Vec<Value> {
    json_files(&workspace_root().join("events"))
}

fn mutated(documents: Vec<Value>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(documents),
        prop::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(document, mutations)| mutate(document, &mutations))
}

type Parser = fn(Value) -> Result<(), String>;

fn event_parsers() -> [(&'static str, Parser); 5] {
    [
        ("SQS batches", |v| {
            let records = ecs_control::batch::records(&v).unwrap_or_default();
            match records.into_iter().find_map(|r| match r {
                ecs_control::batch::Record::Unreadable { error, .. } => Some(error),
                ecs_control::batch::Record::Readable(_) => None,
            }) {
                Some(error) => Err(error.to_string()),
                None => Ok(()),
            }
        }),
        ("scaler events", |v| {
            scaler::events::parse(v)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("registrar events", |v| {
            registrar::events::parse(v)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("probe events", |v| {
            probe::events::parse(v).map(drop).map_err(|e| e.to_string())
        }),
        ("drill events", |v| {
            drill::events::parse(v).map(drop).map_err(|e| e.to_string())
        }),
    ]
}

fn config_loaders() -> [(&'static str, &'static str, Parser); 4] {
    [
        ("scaler policies", "scaler-policies.json", |v| {
            ScalerConfig::parse(&v.to_string())
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("registrar config", "registrar-config.json", |v| {
            RegistrarConfig::parse(&v.to_string())
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("probe config", "probe-config.json", |v| {
            ProbeConfig::parse(&v.to_string())
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        ("drills", "drills.json", |v| {
            DrillConfig::parse(&v.to_string())
                .map(drop)
                .map_err(|e| e.to_string())
        }),
    ]
}

#[test]
fn event_parsers_take_arbitrary_json() {
    for (name, parse) in event_parsers() {
        fuzz(&format!("{name} (arbitrary JSON)"), json_value(), parse);
    }
}

#[test]
fn event_parsers_take_mutated_samples() {
    for (name, parse) in event_parsers() {
        fuzz(
            &format!("{name} (mutated samples)"),
            mutated(samples()),
            parse,
        );
    }
}

#[test]
fn config_loaders_take_arbitrary_json_and_mutated_documents() {
    for (name, file, parse) in config_loaders() {
        fuzz(&format!("{name} (arbitrary JSON)"), json_value(), parse);
        let text = std::fs::read_to_string(workspace_root().join("infra").join(file)).expect("doc");
        let document: Value = serde_json::from_str(&text).expect("JSON");
        fuzz(
            &format!("{name} (mutated {file})"),
            mutated(vec![document]),
            parse,
        );
    }
}
