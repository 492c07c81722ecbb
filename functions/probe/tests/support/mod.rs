//! The built probe on a stand-in for Lambda's runtime API, for the tests
//! that run the binary as Lambda would.

#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)] // a test fails loudly

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const ROLE_TOKEN: &str = "role-token-of-the-sandbox";
pub const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";

/// How an invocation (or the cold start) ended: `response`, `error` or
/// `init/error`, and the body the function posted.
pub type Outcome = (&'static str, String);

pub struct RuntimeApi {
    pub address: String,
    outcomes: mpsc::Receiver<Outcome>,
}

/// Lambda's runtime API for one invocation: hands out `event` once, then
/// keeps the function waiting for the next. `RUNTIME_API` in the event
/// becomes the API's own `host:port` (for checks that try to reach it).
pub async fn runtime_api(event: Value) -> RuntimeApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let event: Value =
        serde_json::from_str(&event.to_string().replace("RUNTIME_API", &address)).unwrap();
    #[derive(Clone)]
    struct Shared {
        event: Value,
        handed: Arc<AtomicBool>,
        outcomes: mpsc::Sender<Outcome>,
    }
    async fn next(State(shared): State<Shared>) -> (StatusCode, HeaderMap, String) {
        if shared.handed.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", "request-1".to_string()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:probe".to_string(),
            ),
            ("lambda-runtime-trace-id", TRACE.to_string()),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        (StatusCode::OK, headers, shared.event.to_string())
    }
    let (sender, outcomes) = mpsc::channel(4);
    let shared = Shared {
        event,
        handed: Arc::default(),
        outcomes: sender,
    };
    let finish = |kind: &'static str| {
        move |State(shared): State<Shared>, body: String| async move {
            let _ = shared.outcomes.send((kind, body)).await;
            StatusCode::ACCEPTED
        }
    };
    let base = "/2018-06-01/runtime";
    let app = Router::new()
        .route(&format!("{base}/invocation/next"), get(next))
        .route(
            &format!("{base}/invocation/{{id}}/response"),
            post(finish("response")),
        )
        .route(
            &format!("{base}/invocation/{{id}}/error"),
            post(finish("error")),
        )
        .route(&format!("{base}/init/error"), post(finish("init/error")))
        .with_state(shared);
    tokio::spawn(async move { axum::serve(listener, app).await });
    RuntimeApi { address, outcomes }
}

/// Runs the built probe with `document` and `env` until its first outcome;
/// returns the outcome and everything the process wrote (stdout and stderr).
pub async fn run_probe(
    name: &str,
    document: &Value,
    env: &[(&str, String)],
    event: Value,
) -> (Outcome, String) {
    let mut api = runtime_api(event).await;
    let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_probe"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "probe")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        // Everything the function logs, down to debug, is searched, in the
        // format the stack deploys.
        .env("AWS_LAMBDA_LOG_LEVEL", "debug")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_SESSION_TOKEN", ROLE_TOKEN)
        .env("PROBE_CONFIG", document.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the probe binary");
    let outcome = tokio::time::timeout(Duration::from_secs(30), api.outcomes.recv())
        .await
        .expect("an outcome within 30 s")
        .expect("the runtime API is up");
    // An init error ends the process; a served invocation leaves it waiting.
    let _ = child.kill();
    let _ = child.wait();
    (outcome, std::fs::read_to_string(&log_path).unwrap())
}
