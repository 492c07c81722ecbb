//! A stand-in for Lambda's runtime API on loopback, for timing one function
//! process: when it first asked for work (ready), when it was handed an event,
//! and when it answered.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How an invocation ended, and when.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub at: Instant,
    /// `response`, `error` or `init/error`.
    pub kind: String,
    pub body: String,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::Receiver<Value>>,
    asked: mpsc::Sender<Instant>,
    dispatched: Mutex<Option<Instant>>,
    outcomes: mpsc::Sender<Outcome>,
}

/// One process's runtime API; stops with the runtime that started it.
pub struct RuntimeApi {
    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: mpsc::Sender<Value>,
    asked: mpsc::Receiver<Instant>,
    outcomes: mpsc::Receiver<Outcome>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (StatusCode, HeaderMap, String) {
    let _ = shared.asked.send(Instant::now()).await;
    let Some(event) = shared.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    *shared.dispatched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", "bench-request".to_string()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".to_string(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".to_string(),
        ),
        ("content-type", "application/json".to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, event.to_string())
}

async fn finish(shared: &Shared, kind: &str, body: String) -> (StatusCode, Json<Value>) {
    let _ = shared
        .outcomes
        .send(Outcome {
            at: Instant::now(),
            kind: kind.to_string(),
            body,
        })
        .await;
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "OK"})),
    )
}

impl RuntimeApi {
    /// Serves on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let (events, events_rx) = mpsc::channel(1);
        let (asked_tx, asked) = mpsc::channel(8);
        let (outcomes_tx, outcomes) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            asked: asked_tx,
            dispatched: Mutex::new(None),
            outcomes: outcomes_tx,
        });
        let base = "/2018-06-01/runtime";
        let app = Router::new()
            .route(&format!("{base}/invocation/next"), get(next))
            .route(
                &format!("{base}/invocation/{{id}}/response"),
                post(|State(s): State<Arc<Shared>>, Path(_id): Path<String>, body: String| async move {
                    finish(&s, "response", body).await
                }),
            )
            .route(
                &format!("{base}/invocation/{{id}}/error"),
                post(|State(s): State<Arc<Shared>>, Path(_id): Path<String>, body: String| async move {
                    finish(&s, "error", body).await
                }),
            )
            .route(
                &format!("{base}/init/error"),
                post(|State(s): State<Arc<Shared>>, body: String| async move {
                    finish(&s, "init/error", body).await
                }),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("bound").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            events,
            asked,
            outcomes,
            shared,
            server,
        }
    }

    /// When the process first asked for an event, or its init error.
    ///
    /// # Errors
    /// The init error's body, or a timeout.
    pub async fn ready(&mut self, within: Duration) -> Result<Instant, String> {
        tokio::select! {
            asked = self.asked.recv() => asked.ok_or_else(|| "runtime API closed".to_string()),
            outcome = self.outcomes.recv() => Err(outcome.map_or_else(String::new, |o| o.body)),
            () = tokio::time::sleep(within) => Err(format!("not ready within {within:?}")),
        }
    }

    /// Hands the process `event` and waits for its answer: (when it was handed
    /// over, how it ended).
    ///
    /// # Errors
    /// When the process does not answer within `within`.
    pub async fn invoke(
        &mut self,
        event: Value,
        within: Duration,
    ) -> Result<(Instant, Outcome), String> {
        self.events
            .send(event)
            .await
            .map_err(|_| "runtime API closed".to_string())?;
        let outcome = tokio::time::timeout(within, self.outcomes.recv())
            .await
            .map_err(|_| format!("no answer within {within:?}"))?
            .ok_or_else(|| "runtime API closed".to_string())?;
        let dispatched = self
            .shared
            .dispatched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(outcome.at);
        Ok((dispatched, outcome))
    }
}
