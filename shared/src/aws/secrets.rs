//! Secret values through the AWS Parameters and Secrets Lambda Extension: a
//! process beside the function that reads Secrets Manager and Parameter Store
//! with the function's role, and caches what it read. One GET on localhost per
//! reference, at cold start, over hyper's HTTP/1 client connection (in every
//! binary already, under the SDK's client): no SDK crate for two reads.
//!
//! What this relies on, from AWS's pages on the extension ("Use AWS Secrets
//! Manager secrets in AWS Lambda functions"; "Using Parameter Store parameters
//! in AWS Lambda functions"):
//! - it listens on localhost, on `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, 2773 when unset;
//! - `GET /secretsmanager/get?secretId=<name or ARN>` answers with
//!   GetSecretValue's JSON (`SecretString`);
//! - `GET /systemsmanager/parameters/get?name=<name>&withDecryption=true`
//!   answers with GetParameter's JSON (`Parameter.Value`, decrypted);
//! - every request carries `X-Aws-Parameters-Secrets-Token`, the value of
//!   `AWS_SESSION_TOKEN`, which the extension checks.
//!
//! The extension may not listen yet when the function's init begins, so a
//! refused connection is tried again for a moment before it counts.

use crate::config::ConfigError;
use crate::domain::secret::{Secret, SecretRef};
use crate::invocation::capped;
use crate::ports::{FailureKind, PortError, SecretValues};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::io::ErrorKind;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The extension's port, when not the default.
pub const PORT_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
const DEFAULT_PORT: u16 = 2773;
/// The header that carries the execution role's token to the extension.
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";
const ROLE_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";

/// How long a refused connection is tried again: the extension starts beside
/// the function, and a cold start should not wait long on one that is absent.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(400);
/// The extension answers from its cache, or after one call to the store.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A secret is at most 64 KiB; its answer, JSON-escaped, a few times that.
const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// How much of an error answer is repeated (it names the secret, not its value).
const ERROR_ECHO: usize = 300;

const GET_SECRET_VALUE: &str = "GetSecretValue";
const GET_PARAMETER: &str = "GetParameter";

/// The extension on localhost.
#[derive(Debug, Clone)]
pub struct ExtensionSecrets {
    port: u16,
    /// The role's token is a credential: it prints redacted, like a secret.
    token: Option<Secret>,
    connect_within: Duration,
}

impl ExtensionSecrets {
    /// The extension on `localhost:port`, sent `role_token` (none: every
    /// read fails, saying so).
    pub fn new(port: u16, role_token: Option<Secret>) -> Self {
        Self {
            port,
            token: role_token,
            connect_within: CONNECT_WITHIN,
        }
    }

    /// The extension where Lambda's environment says it is.
    ///
    /// # Errors
    /// When `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` is set to something other than a port.
    pub fn from_env() -> Result<Self, ConfigError> {
        let port = match std::env::var(PORT_ENV) {
            Ok(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    ConfigError::new(PORT_ENV, format!("{value:?} is not a port (1 to 65535)"))
                })?,
            _ => DEFAULT_PORT,
        };
        let token = std::env::var(ROLE_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        Ok(Self::new(port, token))
    }

    /// How long a refused connection is tried again (2 s unless changed).
    #[must_use]
    pub fn connect_within(mut self, window: Duration) -> Self {
        self.connect_within = window;
        self
    }

    /// Connects, trying a refused connection again with a growing pause
    /// until `connect_within` has passed.
    async fn connect(&self, operation: &'static str) -> Result<TcpStream, PortError> {
        let started = Instant::now();
        let mut pause = FIRST_BACKOFF;
        loop {
            match TcpStream::connect(("localhost", self.port)).await {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if e.kind() == ErrorKind::ConnectionRefused
                        && started.elapsed() + pause <= self.connect_within =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Err(PortError::new(
                        FailureKind::Retryable,
                        operation,
                        format!(
                            "nothing listens on localhost:{} (refused for {:?}): add the AWS \
                             Parameters and Secrets Lambda Extension's layer to the function, \
                             or set {PORT_ENV} to its port",
                            self.port, self.connect_within
                        ),
                    ))
                }
                Err(e) => {
                    return Err(PortError::new(
                        FailureKind::Retryable,
                        operation,
                        format!("cannot connect to localhost:{}: {e}", self.port),
                    ))
                }
            }
        }
    }

    /// GETs `target` (path and query) and returns a successful answer's body.
    async fn get(&self, operation: &'static str, target: &str) -> Result<Bytes, PortError> {
        let fail = |kind, message: String| PortError::new(kind, operation, message);
        let Some(token) = &self.token else {
            return Err(fail(
                FailureKind::Rejected,
                format!("{ROLE_TOKEN_ENV} is not set: the extension takes it in {TOKEN_HEADER}"),
            ));
        };
        let mut token = http::HeaderValue::from_str(token.expose()).map_err(|_| {
            fail(
                FailureKind::Rejected,
                format!("{ROLE_TOKEN_ENV} is not a header value"),
            )
        })?;
        token.set_sensitive(true);
        let request = http::Request::get(target)
            .header(http::header::HOST, format!("localhost:{}", self.port))
            .header(TOKEN_HEADER, token)
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(FailureKind::Rejected, format!("the request: {e}")))?;
        let stream = self.connect(operation).await?;
        let exchange = async {
            let broken = |e: &dyn std::fmt::Display| {
                fail(
                    FailureKind::Retryable,
                    format!("HTTP with the extension: {e}"),
                )
            };
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| broken(&e))?;
            // The connection is driven apart from the request; it ends with it.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| broken(&*e))?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(ANSWER_WITHIN, exchange)
            .await
            .map_err(|_| {
                fail(
                    FailureKind::Retryable,
                    format!("the extension did not answer within {ANSWER_WITHIN:?}"),
                )
            })??;
        if !status.is_success() {
            let kind = match status.as_u16() {
                404 => FailureKind::NotFound,
                429 | 500.. => FailureKind::Retryable,
                _ => FailureKind::Rejected,
            };
            // An error answer says what went wrong with which secret; no value is in it.
            let said = capped(String::from_utf8_lossy(&body).trim(), ERROR_ECHO);
            return Err(fail(
                kind,
                format!("the extension answered {status}: {said}"),
            ));
        }
        Ok(body)
    }
}

/// GetSecretValue's answer, as far as it is read.
#[derive(Deserialize)]
struct SecretAnswer {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// GetParameter's answer, as far as it is read.
#[derive(Deserialize)]
struct ParameterAnswer {
    #[serde(rename = "Parameter")]
    parameter: Option<ParameterValue>,
}

#[derive(Deserialize)]
struct ParameterValue {
    #[serde(rename = "Value")]
    value: Option<String>,
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// An answer that is not the operation's JSON. The parser's message is left
/// out: it can quote the value it met.
fn unreadable(operation: &'static str) -> PortError {
    PortError::new(
        FailureKind::Rejected,
        operation,
        format!("the extension's answer is not {operation}'s JSON"),
    )
}

impl SecretValues for ExtensionSecrets {
    async fn read_secret(&self, reference: &SecretRef) -> Result<Secret, PortError> {
        match reference {
            SecretRef::SecretsManager(id) => {
                let target = format!("/secretsmanager/get?secretId={}", encoded(id));
                let body = self.get(GET_SECRET_VALUE, &target).await?;
                let answer: SecretAnswer =
                    serde_json::from_slice(&body).map_err(|_| unreadable(GET_SECRET_VALUE))?;
                answer.secret_string.map(Secret::new).ok_or_else(|| {
                    PortError::new(
                        FailureKind::Rejected,
                        GET_SECRET_VALUE,
                        "the secret has no SecretString (a binary secret?): header values are \
                         read from SecretString",
                    )
                })
            }
            SecretRef::Parameter(name) => {
                let target = format!(
                    "/systemsmanager/parameters/get?name={}&withDecryption=true",
                    encoded(name)
                );
                let body = self.get(GET_PARAMETER, &target).await?;
                let answer: ParameterAnswer =
                    serde_json::from_slice(&body).map_err(|_| unreadable(GET_PARAMETER))?;
                answer
                    .parameter
                    .and_then(|p| p.value)
                    .map(Secret::new)
                    .ok_or_else(|| unreadable(GET_PARAMETER))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeExtension;

    const ROLE_TOKEN: &str = "role-token-for-the-test";
    const VALUE: &str = "v4lue-from-the-store";

    fn adapter(port: u16) -> ExtensionSecrets {
        ExtensionSecrets::new(port, Some(Secret::new(ROLE_TOKEN)))
    }

    fn secret(id: &str) -> SecretRef {
        SecretRef::secrets_manager(id).expect("valid")
    }

    fn parameter(name: &str) -> SecretRef {
        SecretRef::parameter(name).expect("valid")
    }

    #[tokio::test]
    async fn reads_secrets_and_decrypted_parameters_with_the_role_token() {
        let extension = FakeExtension::new(ROLE_TOKEN)
            .secret("ecs-control/probe/api", VALUE)
            .parameter("/ecs-control/probe/key", VALUE)
            .start()
            .await;
        let secrets = adapter(extension.port);
        let read = secrets
            .read_secret(&secret("ecs-control/probe/api"))
            .await
            .expect("the secret");
        assert_eq!(read.expose(), VALUE);
        let read = secrets
            .read_secret(&parameter("/ecs-control/probe/key"))
            .await
            .expect("the parameter");
        assert_eq!(read.expose(), VALUE);
        assert_eq!(
            extension.requests(),
            [
                "/secretsmanager/get?secretId=ecs-control%2Fprobe%2Fapi",
                "/systemsmanager/parameters/get?name=%2Fecs-control%2Fprobe%2Fkey&withDecryption=true",
            ]
        );
        // The token is a credential too.
        assert!(!format!("{secrets:?}").contains(ROLE_TOKEN));
    }

    #[tokio::test]
    async fn a_missing_secret_or_a_wrong_token_is_an_error_without_a_value() {
        let extension = FakeExtension::new(ROLE_TOKEN)
            .secret("ecs-control/probe/api", VALUE)
            .start()
            .await;
        let missing = adapter(extension.port)
            .read_secret(&secret("ecs-control/probe/gone"))
            .await
            .expect_err("404");
        assert_eq!(missing.kind, FailureKind::NotFound);
        assert_eq!(missing.operation, "GetSecretValue");
        assert!(missing.message.contains("404"), "{missing}");

        let refused = ExtensionSecrets::new(extension.port, Some(Secret::new("another")))
            .read_secret(&secret("ecs-control/probe/api"))
            .await
            .expect_err("wrong token");
        assert!(!refused.message.contains(VALUE), "{refused}");
        assert_ne!(refused.kind, FailureKind::Retryable);

        let untokened = ExtensionSecrets::new(extension.port, None)
            .read_secret(&secret("ecs-control/probe/api"))
            .await
            .expect_err("no token");
        assert!(
            untokened.message.contains("AWS_SESSION_TOKEN"),
            "{untokened}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_tried_again_for_a_moment_then_fails() {
        let port = FakeExtension::free_port().await;
        let window = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let err = adapter(port)
            .connect_within(window)
            .read_secret(&secret("ecs-control/probe/api"))
            .await
            .expect_err("nothing listens");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "gave up after {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "took {waited:?}");
        assert_eq!(err.kind, FailureKind::Retryable);
        assert!(err.message.contains("Parameters and Secrets"), "{err}");
    }

    #[tokio::test]
    async fn an_extension_that_starts_late_is_waited_for() {
        let port = FakeExtension::free_port().await;
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            FakeExtension::new(ROLE_TOKEN)
                .secret("ecs-control/probe/api", VALUE)
                .start_on(port)
                .await
        });
        let read = adapter(port)
            .read_secret(&secret("ecs-control/probe/api"))
            .await
            .expect("read once it listens");
        assert_eq!(read.expose(), VALUE);
        drop(late.await);
    }
}
