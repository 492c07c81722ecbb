//! The built probe's cold start with header values by reference: read through
//! the Parameters and Secrets extension (a stand-in on loopback) before the
//! first event, sent with the check, and absent from everything the function
//! logs or answers. A reference that cannot be used stops the cold start,
//! naming the header.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

mod support;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use ecs_control::testing::{assert_operable_lines, FakeExtension};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use support::{run_probe, Outcome, ROLE_TOKEN, TRACE};

const TOKEN: &str = "t0ken-from-secrets-manager";
const API_KEY: &str = "k3y-from-parameter-store";

/// A site whose `/orders` answers 200, noting the headers of each request.
async fn site() -> (u16, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let app = Router::new()
        .route(
            "/orders",
            get(
                |State(seen): State<Arc<Mutex<Vec<HeaderMap>>>>, headers: HeaderMap| async move {
                    seen.lock().unwrap().push(headers);
                    r#"{"status":"ok"}"#
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// Runs the built probe with `document`, its references read through the
/// extension on `extension_port`, until its first outcome.
async fn cold_start(
    name: &str,
    document: &Value,
    extension_port: u16,
    event: Value,
) -> (Outcome, String) {
    let env = [
        (
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            extension_port.to_string(),
        ),
        ("PROBE_SECRETS_PATH", "ecs-control/probe/".to_string()),
    ];
    run_probe(name, document, &env, event).await
}

fn check(site_port: u16, headers: Value) -> Value {
    json!({"checks": [{
        "name": "orders",
        "url": format!("http://127.0.0.1:{site_port}/orders"),
        "body_must_match": ["ok"],
        "headers": headers
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_resolved_at_cold_start_sent_and_never_written() {
    let extension = FakeExtension::new(ROLE_TOKEN)
        .secret(
            "ecs-control/probe/api",
            &json!({"token": TOKEN, "user": "probe"}).to_string(),
        )
        .parameter("/ecs-control/probe/api-key", API_KEY)
        .start()
        .await;
    let (site_port, seen) = site().await;
    let document = check(
        site_port,
        json!({
            "Authorization": {"secretsmanager": "ecs-control/probe/api", "json_key": "token", "prefix": "Bearer "},
            "X-Api-Key": {"ssm": "/ecs-control/probe/api-key"},
            "X-Trace": "probe-trace-7"
        }),
    );
    let ((kind, record), logged) = cold_start(
        "references-resolved",
        &document,
        extension.port,
        json!({"command": "run", "publish": false}),
    )
    .await;
    assert_eq!(kind, "response", "{record}\n{logged}");

    // Read once each, before the check, and sent with it.
    assert_eq!(extension.requests().len(), 2, "{:?}", extension.requests());
    let sent = seen
        .lock()
        .unwrap()
        .pop()
        .expect("the check reached the site");
    assert_eq!(sent["authorization"], format!("Bearer {TOKEN}").as_str());
    assert_eq!(sent["x-api-key"], API_KEY);
    assert_eq!(sent["x-trace"], "probe-trace-7");
    let record: Value = serde_json::from_str(&record).expect("the report");
    assert_eq!(record["checks"][0]["success"], true, "{record:#}");

    // Neither the answer nor anything logged (the decision line included)
    // carries a value, or the role's token.
    assert!(
        logged.contains(r#""message":"decision""#),
        "the log was read: {logged}"
    );
    // It names the document it was decided under, as a deploy shipped it.
    let version = ecs_control::config::version_of(&document.to_string());
    assert!(
        logged.contains(&format!(r#""document_version":"{version}""#)),
        "{version} not in {logged}"
    );
    // Every line, the SDK's and the runtime's included, can be joined to its
    // request and queried.
    let lines = assert_operable_lines(&logged, Some(TRACE));
    let decision = lines
        .iter()
        .find(|l| l["message"] == "decision")
        .expect("a decision line");
    assert_eq!(decision["function_request_id"], "request-1", "{decision}");
    assert_eq!(
        (&decision["cold_start"], &decision["function_version"]),
        (&true.into(), &"$LATEST".into())
    );
    for text in [record.to_string(), logged] {
        for value in [TOKEN, API_KEY, ROLE_TOKEN] {
            assert!(!text.contains(value), "{value} written: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_that_cannot_be_used_stops_the_cold_start_naming_the_header() {
    let extension = FakeExtension::new(ROLE_TOKEN)
        .secret("ecs-control/probe/api", TOKEN)
        .start()
        .await;
    let cases = [
        // (name, the header's value, what the init error must say)
        (
            "outside-the-path",
            json!({"ssm": "/ecs-control/admin/password"}),
            vec!["PROBE_SECRETS_PATH", "ecs-control/admin/password"],
        ),
        (
            "missing-secret",
            json!({"secretsmanager": "ecs-control/probe/gone"}),
            vec!["ecs-control/probe/gone", "404"],
        ),
        (
            "bad-json-key",
            json!({"secretsmanager": "ecs-control/probe/api", "json_key": "token"}),
            vec!["ecs-control/probe/api", "not JSON"],
        ),
    ];
    for (name, value, says) in cases {
        let document = check(9, json!({ "Authorization": value }));
        let ((kind, body), logged) =
            cold_start(name, &document, extension.port, json!({"command": "run"})).await;
        assert_eq!(kind, "init/error", "{name}: {body}\n{logged}");
        let error: Value = serde_json::from_str(&body).expect("a diagnostic");
        let message = error["errorMessage"].as_str().unwrap_or_default();
        assert!(
            message.contains("checks[0].headers.Authorization"),
            "{name}: {message}"
        );
        for said in says {
            assert!(message.contains(said), "{name}: {said}: {message}");
        }
        assert!(
            !message.contains(TOKEN) && !logged.contains(TOKEN),
            "{name}: {logged}"
        );
        // The init error is logged with its text on top, at the cold start.
        let lines = assert_operable_lines(&logged, None);
        assert!(
            lines.iter().any(|l| l["level"] == "ERROR"
                && l["cold_start"] == true
                && l.get("function_request_id").is_none()
                && l["message"] == message),
            "{name}: {logged}"
        );
    }
    // The reference outside the path was never read.
    assert!(
        !extension.requests().iter().any(|r| r.contains("admin")),
        "{:?}",
        extension.requests()
    );
}
