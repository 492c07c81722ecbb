//! The built probe, as Lambda runs it, keeps ad-hoc checks (and configured
//! ones that ask) off the function's own runtime API, the metadata endpoints
//! and private addresses: judged on the address each hop connects to, so
//! neither a redirect nor a name that resolves inward gets through.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

mod support;

use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::run_probe;

/// A site on 127.0.0.1: `/ok`, and `/to?url=…` answering 302 to that URL.
/// Counts the requests it serves.
async fn site() -> (u16, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let app =
        Router::new()
            .route(
                "/ok",
                get(|State(n): State<Arc<AtomicUsize>>| async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }),
            )
            .route(
                "/to",
                get(
                    |State(n): State<Arc<AtomicUsize>>,
                     Query(q): Query<HashMap<String, String>>| async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        Redirect::to(&q["url"])
                    },
                ),
            )
            .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, served)
}

/// Each check's (success, reason kind, reason detail) from the probe's answer.
fn verdicts(record: &str) -> HashMap<String, (bool, String, String)> {
    let record: Value = serde_json::from_str(record).expect("the report");
    record["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&c["name"]),
                (
                    c["success"] == true,
                    text(&c["reason"]["kind"]),
                    text(&c["reason"]["detail"]),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_the_runtime_api_the_metadata_endpoint_or_another_host_are_refused() {
    let (port, _) = site().await;
    let site = format!("http://127.0.0.1:{port}");
    // The deployment lets ad-hoc checks reach loopback (where this site is):
    // the runtime API is refused even so.
    let document = json!({
        "checks": [{"name": "home", "url": format!("{site}/ok")}],
        "adhoc": {
            "enabled": true,
            "allowed_hosts": ["127.0.0.1", "169.254.169.254"],
            "allowed_ranges": ["127.0.0.0/8"]
        }
    });
    let to = |target: &str| format!("{site}/to?url={target}");
    let event = json!({"command": "run", "adhoc": [
        {"name": "direct", "url": format!("{site}/ok")},
        {"name": "to-runtime-api",
         "url": to("http://RUNTIME_API/2018-06-01/runtime/invocation/next")},
        {"name": "to-metadata",
         "url": to("http://169.254.169.254/latest/meta-data/iam/security-credentials/")},
        {"name": "to-another-host", "url": to("http://elsewhere.invalid/")}
    ]});
    let ((kind, record), logged) = run_probe("guard-redirects", &document, &[], event).await;
    assert_eq!(kind, "response", "{record}\n{logged}");
    let verdicts = verdicts(&record);
    let (ok, _, _) = &verdicts["direct"];
    assert!(ok, "{record}");
    let (ok, reason, detail) = &verdicts["to-runtime-api"];
    assert!(
        !ok && reason == "address_denied" && detail.contains("runtime API"),
        "{record}"
    );
    let (ok, reason, detail) = &verdicts["to-metadata"];
    assert!(
        !ok && reason == "address_denied" && detail.contains("link-local"),
        "{record}"
    );
    let (ok, reason, detail) = &verdicts["to-another-host"];
    assert!(
        !ok && reason == "redirect_refused" && detail.contains("elsewhere.invalid"),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_on_the_allowlist_that_resolves_to_loopback_is_refused_before_connecting() {
    let (port, served) = site().await;
    // `localhost` passes the name check; the address it resolves to does not.
    // A configured check that asks for the guard is held to it too.
    let document = json!({
        "checks": [{"name": "guarded", "url": format!("http://127.0.0.1:{port}/ok"),
                    "deny_private_addresses": true}],
        "adhoc": {"enabled": true, "allowed_hosts": ["localhost"]}
    });
    let event = json!({"command": "run", "checks": ["guarded"], "adhoc": [
        {"name": "rebinding", "url": format!("http://localhost:{port}/ok")}
    ]});
    let ((kind, record), logged) = run_probe("guard-rebinding", &document, &[], event).await;
    assert_eq!(kind, "response", "{record}\n{logged}");
    let verdicts = verdicts(&record);
    for name in ["rebinding", "guarded"] {
        let (ok, reason, detail) = &verdicts[name];
        assert!(
            !ok && reason == "address_denied" && detail.contains("loopback"),
            "{name}: {record}"
        );
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "no request reached the site"
    );
}
