//! Helpers the functions' tests share (feature `testing`, for dev-dependencies
//! only): hostile inputs and what their refusal must look like.

use crate::invocation::InvocationError;
use lambda_runtime::Diagnostic;

/// `event` with `change` made to it.
pub fn changed(
    mut event: serde_json::Value,
    change: &dyn Fn(&mut serde_json::Value),
) -> serde_json::Value {
    change(&mut event);
    event
}

/// A refusal says `says`, is of `error_type`, and does not echo a hostile
/// input whole (under 1,000 characters, whatever it was given).
///
/// # Panics
/// When any of that does not hold: this is a test assertion.
#[allow(clippy::panic)] // an assertion
pub fn assert_clear_refusal(err: InvocationError, says: &str, error_type: &str) {
    let message = err.to_string();
    assert!(
        message.contains(says),
        "{says}: {}",
        &message[..message.len().min(300)]
    );
    assert!(message.len() < 1_000, "echoed {} bytes", message.len());
    assert_eq!(Diagnostic::from(err).error_type, error_type, "{says}");
}

/// A stand-in for the AWS Parameters and Secrets Lambda Extension on a
/// loopback port. It answers `GET /secretsmanager/get?secretId=` and
/// `GET /systemsmanager/parameters/get?name=` from what it holds, in the shape
/// of GetSecretValue's and GetParameter's JSON, only to requests whose
/// `X-Aws-Parameters-Secrets-Token` is the role token it was given; a
/// parameter read without `withDecryption=true` comes back encrypted, and
/// anything it does not hold is a 404.
#[derive(Debug, Default)]
pub struct FakeExtension {
    token: String,
    secrets: std::collections::BTreeMap<String, String>,
    parameters: std::collections::BTreeMap<String, String>,
}

/// A [`FakeExtension`] serving; it stops when dropped.
#[derive(Debug)]
pub struct RunningExtension {
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RunningExtension {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RunningExtension {
    /// The targets (path and query) it was asked for, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl FakeExtension {
    /// An extension that takes `role_token`.
    pub fn new(role_token: &str) -> Self {
        Self {
            token: role_token.to_string(),
            ..Self::default()
        }
    }

    /// Holds a secret whose `SecretString` is `value`, read by exactly `id`.
    #[must_use]
    pub fn secret(mut self, id: &str, value: &str) -> Self {
        self.secrets.insert(id.to_string(), value.to_string());
        self
    }

    /// Holds a `SecureString` parameter.
    #[must_use]
    pub fn parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.insert(name.to_string(), value.to_string());
        self
    }

    /// A loopback port nothing listens on (bound, then let go).
    ///
    /// # Panics
    /// When no loopback port can be bound: this is a test helper.
    #[allow(clippy::expect_used)] // a test helper fails loudly
    pub async fn free_port() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        listener.local_addr().expect("bound").port()
    }

    /// Serves on a free loopback port.
    pub async fn start(self) -> RunningExtension {
        self.start_on(0).await
    }

    /// Serves on `port` of 127.0.0.1.
    ///
    /// # Panics
    /// When the port cannot be bound: this is a test helper.
    #[allow(clippy::expect_used)] // a test helper fails loudly
    pub async fn start_on(self, port: u16) -> RunningExtension {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the loopback port");
        let port = listener.local_addr().expect("bound").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let fake = std::sync::Arc::new(self);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (fake, seen) = (fake.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = fake.answer(stream, &seen).await;
                });
            }
        });
        RunningExtension {
            port,
            requests,
            server,
        }
    }

    /// Reads one request's head and answers it, closing the connection.
    async fn answer(
        &self,
        mut stream: tokio::net::TcpStream,
        seen: &std::sync::Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buffer[..read]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.split("\r\n");
        let target = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or_default()
            .to_string();
        let token = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("x-aws-parameters-secrets-token")
                .then(|| value.trim().to_string())
        });
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(target.clone());
        let (status, body) = self.respond(&target, token.as_deref());
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }

    fn respond(&self, target: &str, token: Option<&str>) -> (&'static str, String) {
        use serde_json::json;
        if token != Some(self.token.as_str()) {
            // The fake's status for a missing or wrong token; callers treat
            // every refusal alike.
            let body = json!({"message": "missing or invalid X-Aws-Parameters-Secrets-Token"});
            return ("401 Unauthorized", body.to_string());
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let arg = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let not_found = |kind: &str| {
            let body = json!({"__type": kind, "message": format!("{target} was not found")});
            ("404 Not Found", body.to_string())
        };
        match path {
            "/secretsmanager/get" => {
                let id = arg("secretId").unwrap_or_default();
                match self.secrets.get(&id) {
                    Some(value) => {
                        let body = json!({
                            "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbC123"),
                            "Name": id,
                            "SecretString": value,
                            "VersionId": "00000000-0000-0000-0000-000000000001",
                            "VersionStages": ["AWSCURRENT"],
                            "CreatedDate": "2026-01-01T00:00:00.000Z"
                        });
                        ("200 OK", body.to_string())
                    }
                    None => not_found("ResourceNotFoundException"),
                }
            }
            "/systemsmanager/parameters/get" => {
                let name = arg("name").unwrap_or_default();
                let decrypted = arg("withDecryption").as_deref() == Some("true");
                match self.parameters.get(&name) {
                    Some(value) => {
                        let value = if decrypted {
                            value.clone()
                        } else {
                            "AQICAHhEncryptedBlobOfTheFake==".to_string()
                        };
                        let body = json!({
                            "Parameter": {
                                "ARN": format!("arn:aws:ssm:us-east-1:123456789012:parameter/{}", name.trim_start_matches('/')),
                                "DataType": "text",
                                "Name": name,
                                "Type": "SecureString",
                                "Value": value,
                                "Version": 1
                            },
                            "ResultMetadata": {}
                        });
                        ("200 OK", body.to_string())
                    }
                    None => not_found("ParameterNotFound"),
                }
            }
            _ => not_found("UnknownOperation"),
        }
    }
}

/// CloudWatch Logs' largest event (256 KB) less the 26 bytes it counts per event.
pub const LOG_EVENT_LIMIT: usize = 256 * 1024 - 26;

/// Of the lines two or more invocations of one process wrote (as
/// [`assert_operable_lines`] returns them), only the first decision's
/// invocation is a cold start: every line of a later request says it is not.
///
/// # Panics
/// When there is no decision line, no later request, or a later one claims a cold start.
#[allow(clippy::expect_used)] // a test helper fails loudly
pub fn assert_only_the_first_invocation_is_a_cold_start(lines: &[serde_json::Value]) {
    let first = lines
        .iter()
        .find(|l| l["message"] == "decision")
        .expect("a decision line");
    assert_eq!(first["cold_start"], true, "{first}");
    let later: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l.get("function_request_id")
                .is_some_and(|id| *id != first["function_request_id"])
        })
        .collect();
    assert!(!later.is_empty(), "{lines:#?}");
    assert!(later.iter().all(|l| l["cold_start"] == false), "{later:#?}");
}

/// Checks every line of `logged` (a function's stdout and stderr, JSON log
/// format) is one an operator can join and query: a JSON object under the
/// event limit, with its text at the top-level `message` (a metric line has
/// none), the function's name and version and `cold_start`; a decision,
/// journal or metric line also names its request, and a line that names its
/// request carries `trace` when one was given. Returns the lines.
///
/// # Panics
/// When any of that does not hold: this is a test assertion.
#[allow(clippy::panic)] // an assertion
pub fn assert_operable_lines(logged: &str, trace: Option<&str>) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for text in logged.lines().filter(|l| !l.trim().is_empty()) {
        let shown = crate::invocation::capped(text, 300);
        assert!(
            text.len() < LOG_EVENT_LIMIT,
            "{} bytes: {shown}",
            text.len()
        );
        let line: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON line ({e}): {shown}"));
        assert!(line.is_object(), "not an object: {shown}");
        assert!(line.get("fields").is_none(), "text under fields: {shown}");
        let metric = line.get("_aws").is_some();
        assert!(
            metric || line["message"].is_string(),
            "no top-level message: {shown}"
        );
        for field in ["function_name", "function_version"] {
            assert!(line[field].is_string(), "no {field}: {shown}");
        }
        assert!(line["cold_start"].is_boolean(), "no cold_start: {shown}");
        let request = line.get("function_request_id");
        if metric || line["message"] == "decision" || line["message"] == "journal" {
            assert!(request.is_some(), "no function_request_id: {shown}");
        }
        if let (Some(_), Some(trace)) = (request, trace) {
            assert_eq!(line["xray_trace_id"], trace, "{shown}");
        }
        lines.push(line);
    }
    lines
}
