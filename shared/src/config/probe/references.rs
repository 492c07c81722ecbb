//! Header values by reference: which references the deployment's path covers,
//! and reading them once at cold start through a [`SecretValues`] port.

use super::ProbeConfig;
use crate::config::ConfigError;
use crate::domain::probe::HeaderValue;
use crate::domain::secret::{Secret, SecretRef};
use crate::ports::{PortError, SecretValues};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet};

/// The path every reference must lie under (`ecs-control/probe/`): the one
/// pattern the probe's IAM policy grants on Secrets Manager and Parameter Store.
pub const SECRETS_PATH_ENV: &str = "PROBE_SECRETS_PATH";

/// Distinct references read side by side: the extension fetches what it has
/// not cached from the stores, which throttle.
const READS_AT_ONCE: usize = 4;

/// A header whose value is read from a secret store at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderReference {
    /// The check's name (unique in the document).
    pub check: String,
    /// The header's name, as written.
    pub header: String,
    /// `checks[i].headers.<name>`, what errors name.
    pub field: String,
    pub source: SecretRef,
    /// Send this key of the secret's JSON rather than the whole string.
    pub json_key: Option<String>,
    /// Sent before the value (`Bearer `).
    pub prefix: Option<String>,
}

impl HeaderReference {
    /// The reference as errors name it: store, id and key, never the value.
    fn describe(&self) -> String {
        match &self.json_key {
            Some(key) => format!("{} (json_key {key:?})", self.source),
            None => self.source.to_string(),
        }
    }
}

/// Every reference of `config` that `path` (`PROBE_SECRETS_PATH`; `None`
/// when unset) does not cover, each an error naming the header's field and
/// the variable; one error naming the variable when the path itself is
/// unusable. Empty when the document references nothing, whatever the path.
pub fn references_outside_path(config: &ProbeConfig, path: Option<&str>) -> Vec<ConfigError> {
    if config.references.is_empty() {
        return Vec::new();
    }
    let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
        return config
            .references
            .iter()
            .map(|r| {
                ConfigError::new(
                    r.field.clone(),
                    format!(
                        "reads {} but {SECRETS_PATH_ENV} is not set: set it to the path the \
                         probe's IAM policy grants (e.g. ecs-control/probe/) and keep every \
                         reference under it",
                        r.describe()
                    ),
                )
            })
            .collect();
    };
    if let Some(problem) = path_problem(path) {
        return vec![ConfigError::new(SECRETS_PATH_ENV, problem)];
    }
    config
        .references
        .iter()
        .filter(|r| !r.source.lies_under(path))
        .map(|r| {
            ConfigError::new(
                r.field.clone(),
                format!(
                    "reads {}, whose name {:?} is not under {path:?} ({SECRETS_PATH_ENV}): the \
                     probe's IAM policy grants that path only; keep the secret under it",
                    r.describe(),
                    r.source.policy_name()
                ),
            )
        })
        .collect()
}

/// Why `path` cannot bound references, if it cannot.
fn path_problem(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some(format!(
            "{path:?} starts with /: write it as a secret's name starts (ecs-control/probe/); \
             a parameter's name is compared without its leading /"
        ));
    }
    if !path.ends_with('/') {
        return Some(format!(
            "{path:?} must end with / so that it covers one folder \
             (ecs-control/probe would also cover ecs-control/probe-admin)"
        ));
    }
    None
}

impl ProbeConfig {
    /// Reads every header value the document references and puts it in its
    /// check, as a [`HeaderValue::Secret`]. References outside `path` are
    /// refused before anything is read; each distinct reference is read once.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the header (`checks[i].headers.<name>`) and
    /// its reference, never the value: outside `path`, unreadable, without
    /// its `json_key`, or not a header value once prefixed.
    pub async fn resolve_references(
        mut self,
        path: Option<&str>,
        secrets: &impl SecretValues,
    ) -> Result<Self, ConfigError> {
        if let Some(first) = references_outside_path(&self, path).into_iter().next() {
            return Err(first);
        }
        let distinct: BTreeSet<&SecretRef> = self.references.iter().map(|r| &r.source).collect();
        let read: BTreeMap<SecretRef, Result<Secret, PortError>> = stream::iter(distinct)
            .map(|source| async move { (source.clone(), secrets.read_secret(source).await) })
            .buffer_unordered(READS_AT_ONCE)
            .collect()
            .await;
        for reference in std::mem::take(&mut self.references) {
            let value = match read.get(&reference.source) {
                Some(Ok(secret)) => sent_value(&reference, secret)?,
                Some(Err(e)) => {
                    let problem = format!("cannot read {}: {e}", reference.describe());
                    return Err(ConfigError::new(reference.field, problem));
                }
                None => {
                    let problem = format!("{} was not read", reference.describe());
                    return Err(ConfigError::new(reference.field, problem));
                }
            };
            let Some(check) = self.checks.iter_mut().find(|c| c.name == reference.check) else {
                return Err(ConfigError::new(reference.field, "belongs to no check"));
            };
            // In name order among the plain values, as the document's map had them.
            let at = check
                .headers
                .partition_point(|(name, _)| *name < reference.header);
            check
                .headers
                .insert(at, (reference.header, HeaderValue::Secret(value)));
        }
        Ok(self)
    }
}

/// The header value a reference sends: its prefix, then the secret (or its
/// `json_key`). Errors say what is wrong with the value, never what it is.
fn sent_value(reference: &HeaderReference, secret: &Secret) -> Result<Secret, ConfigError> {
    let refuse = |problem: String| ConfigError::new(reference.field.clone(), problem);
    let source = &reference.source;
    let mut value = reference.prefix.clone().unwrap_or_default();
    let prefix_len = value.len();
    match &reference.json_key {
        None => value.push_str(secret.expose()),
        Some(key) => {
            // A parse error's position says nothing of the value, but is left out anyway.
            let json: serde_json::Value = serde_json::from_str(secret.expose())
                .map_err(|_| refuse(format!("{source} is not JSON, so it has no key {key:?}")))?;
            let Some(object) = json.as_object() else {
                return Err(refuse(format!(
                    "{source} is not a JSON object, so it has no key {key:?}"
                )));
            };
            match object.get(key) {
                Some(serde_json::Value::String(text)) => value.push_str(text),
                Some(_) => return Err(refuse(format!("{source}'s key {key:?} is not a string"))),
                None => {
                    return Err(refuse(format!(
                        "{source} has no key {key:?} (keys are case-sensitive)"
                    )))
                }
            }
        }
    }
    if value.len() == prefix_len {
        return Err(refuse(format!("{} is empty", reference.describe())));
    }
    if http::HeaderValue::from_str(&value).is_err() {
        return Err(refuse(format!(
            "the value of {} is not one line of visible text (a trailing newline?), so it \
             cannot be sent as a header",
            reference.describe()
        )));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::FailureKind;
    use std::sync::Mutex;

    const TOKEN: &str = "tok-9f8e7d";
    const KEY: &str = "key-1a2b3c";

    /// Values by reference; a reference it does not hold is not found, as the
    /// stores answer. Counts reads, to show each distinct reference is read once.
    #[derive(Default)]
    struct FakeSecrets {
        values: BTreeMap<SecretRef, String>,
        reads: Mutex<Vec<SecretRef>>,
    }

    impl FakeSecrets {
        fn with(values: &[(SecretRef, &str)]) -> Self {
            Self {
                values: values
                    .iter()
                    .map(|(r, v)| (r.clone(), (*v).to_string()))
                    .collect(),
                ..Self::default()
            }
        }
    }

    impl SecretValues for FakeSecrets {
        async fn read_secret(&self, reference: &SecretRef) -> Result<Secret, PortError> {
            self.reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(reference.clone());
            self.values.get(reference).map(Secret::new).ok_or_else(|| {
                PortError::new(
                    FailureKind::NotFound,
                    "GetSecretValue",
                    format!(
                        "the extension answered 404 Not Found for {}",
                        reference.id()
                    ),
                )
            })
        }
    }

    fn api() -> SecretRef {
        SecretRef::secrets_manager("ecs-control/probe/api").expect("valid")
    }

    fn key() -> SecretRef {
        SecretRef::parameter("/ecs-control/probe/api-key").expect("valid")
    }

    fn secrets() -> FakeSecrets {
        FakeSecrets::with(&[
            (api(), &format!(r#"{{"token": "{TOKEN}", "count": 3}}"#)),
            (key(), KEY),
        ])
    }

    const DOCUMENT: &str = r#"{"checks": [
        {"name": "orders", "url": "https://api.example.com/orders",
         "headers": {"X-Trace": "probe",
                     "Authorization": {"secretsmanager": "ecs-control/probe/api", "json_key": "token", "prefix": "Bearer "},
                     "X-Api-Key": {"ssm": "/ecs-control/probe/api-key"}}},
        {"name": "stock", "url": "https://api.example.com/stock",
         "headers": {"Authorization": {"prefix": "Bearer ", "json_key": "token", "secretsmanager": "ecs-control/probe/api"}}}
    ]}"#;

    fn parsed(document: &str) -> ProbeConfig {
        ProbeConfig::parse(document).expect("parses")
    }

    #[tokio::test]
    async fn references_resolve_into_their_checks_and_print_redacted() {
        let secrets = secrets();
        let config = parsed(DOCUMENT)
            .resolve_references(Some("ecs-control/probe/"), &secrets)
            .await
            .expect("resolves");
        assert!(config.references.is_empty());
        let sent: Vec<(&str, &str)> = config.checks[0]
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.expose()))
            .collect();
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(
            sent,
            [
                ("Authorization", bearer.as_str()),
                ("X-Api-Key", KEY),
                ("X-Trace", "probe")
            ]
        );
        assert_eq!(config.checks[1].headers[0].1.expose(), bearer);
        // One read per distinct reference, though two checks share one.
        assert_eq!(secrets.reads.lock().expect("reads").len(), 2);
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains(TOKEN) && !shown.contains(KEY), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("\"probe\""));
    }

    #[tokio::test]
    async fn a_document_without_references_needs_no_path_and_reads_nothing() {
        let secrets = FakeSecrets::default();
        let document = r#"{"checks": [{"name": "a", "url": "http://x", "headers": {"Authorization": "Bearer plain"}}]}"#;
        assert!(references_outside_path(&parsed(document), None).is_empty());
        let config = parsed(document)
            .resolve_references(None, &secrets)
            .await
            .expect("nothing to read");
        assert_eq!(
            config.checks[0].headers[0].1,
            HeaderValue::from("Bearer plain")
        );
        assert!(secrets.reads.lock().expect("reads").is_empty());
    }

    #[test]
    fn every_reference_must_lie_under_the_path() {
        let config = parsed(DOCUMENT);
        let fields = |errors: Vec<ConfigError>| -> Vec<String> {
            errors.into_iter().map(|e| e.field).collect()
        };
        assert!(references_outside_path(&config, Some("ecs-control/probe/")).is_empty());
        assert!(references_outside_path(&config, Some("ecs-control/")).is_empty());

        let unset = references_outside_path(&config, None);
        assert!(unset.iter().all(|e| e.problem.contains(SECRETS_PATH_ENV)));
        assert_eq!(
            fields(unset),
            [
                "checks[0].headers.Authorization",
                "checks[0].headers.X-Api-Key",
                "checks[1].headers.Authorization"
            ]
        );
        assert_eq!(references_outside_path(&config, Some(" ")).len(), 3);

        let outside = references_outside_path(&config, Some("ecs-control/probe/keys/"));
        assert_eq!(outside.len(), 3);
        // A parameter is compared without its leading slash.
        assert!(
            outside[1].problem.contains("\"ecs-control/probe/api-key\""),
            "{}",
            outside[1]
        );
        assert!(
            outside[1].problem.contains(SECRETS_PATH_ENV),
            "{}",
            outside[1]
        );

        for unusable in ["/ecs-control/probe/", "ecs-control/probe"] {
            assert_eq!(
                fields(references_outside_path(&config, Some(unusable))),
                [SECRETS_PATH_ENV],
                "{unusable}"
            );
        }
    }

    #[tokio::test]
    async fn a_reference_outside_the_path_is_refused_before_anything_is_read() {
        let secrets = secrets();
        let err = parsed(DOCUMENT)
            .resolve_references(Some("ecs-control/other/"), &secrets)
            .await
            .expect_err("outside");
        assert_eq!(err.field, "checks[0].headers.Authorization");
        assert!(err.to_string().contains(SECRETS_PATH_ENV), "{err}");
        assert!(secrets.reads.lock().expect("reads").is_empty());
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_sent_fails_naming_the_header_and_never_the_value() {
        let api = api();
        let cases: Vec<(String, &str, &str)> = vec![
            // (the secret's value, the header's reference, what the error says)
            (
                format!("{TOKEN}\n"),
                r#"{"secretsmanager": "ecs-control/probe/api"}"#,
                "one line",
            ),
            (
                String::new(),
                r#"{"secretsmanager": "ecs-control/probe/api", "prefix": "Bearer "}"#,
                "is empty",
            ),
            (
                format!(r#"{{"other": "{TOKEN}"}}"#),
                r#"{"secretsmanager": "ecs-control/probe/api", "json_key": "token"}"#,
                "no key \"token\"",
            ),
            (
                format!(r#"{{"token": 7, "x": "{TOKEN}"}}"#),
                r#"{"secretsmanager": "ecs-control/probe/api", "json_key": "token"}"#,
                "not a string",
            ),
            (
                format!("not json {TOKEN}"),
                r#"{"secretsmanager": "ecs-control/probe/api", "json_key": "token"}"#,
                "is not JSON",
            ),
            (
                format!(r#"["{TOKEN}"]"#),
                r#"{"secretsmanager": "ecs-control/probe/api", "json_key": "token"}"#,
                "not a JSON object",
            ),
        ];
        for (value, reference, says) in cases {
            let secrets = FakeSecrets::with(&[(api.clone(), &value)]);
            let document = format!(
                r#"{{"checks": [{{"name": "a", "url": "http://x", "headers": {{"Authorization": {reference}}}}}]}}"#
            );
            let err = parsed(&document)
                .resolve_references(Some("ecs-control/probe/"), &secrets)
                .await
                .expect_err(says);
            assert_eq!(err.field, "checks[0].headers.Authorization", "{err}");
            let message = err.to_string();
            assert!(message.contains(says), "{says}: {message}");
            assert!(message.contains("ecs-control/probe/api"), "{message}");
            assert!(!message.contains(TOKEN), "{message}");
        }
    }

    #[tokio::test]
    async fn a_store_that_fails_fails_the_cold_start_naming_the_reference() {
        let secrets = FakeSecrets::with(&[(api(), &format!(r#"{{"token": "{TOKEN}"}}"#))]);
        let err = parsed(DOCUMENT)
            .resolve_references(Some("ecs-control/probe/"), &secrets)
            .await
            .expect_err("the parameter is missing");
        assert_eq!(err.field, "checks[0].headers.X-Api-Key");
        let message = err.to_string();
        assert!(
            message.contains("ssm \"/ecs-control/probe/api-key\""),
            "{message}"
        );
        assert!(message.contains("404"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
    }
}
