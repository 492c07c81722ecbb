//! Configuration read once at cold start; every error names the field to fix.

pub mod drill;
pub mod probe;
pub mod registrar;
pub mod scaler;
pub mod verify;

pub use drill::DrillConfig;
pub use probe::ProbeConfig;
pub use registrar::RegistrarConfig;
pub use scaler::{ScalerConfig, POLICIES_ENV, POLICIES_FILE_ENV};

use serde::de::DeserializeOwned;

use crate::echo::{capped, ECHO_LIMIT};

/// A configuration problem, with the path of the offending field. What it
/// repeats of the document is capped, like an event's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid configuration: {}: {}",
    capped(&self.field, ECHO_LIMIT),
    capped(&self.problem, ECHO_LIMIT)
)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The JSON document in `inline_env`, or in the file `file_env` names.
///
/// # Errors
/// When neither (or both) is set, or the file cannot be read.
pub fn read_document(inline_env: &str, file_env: &str, what: &str) -> Result<String, ConfigError> {
    match (std::env::var(inline_env).ok(), std::env::var(file_env).ok()) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            inline_env,
            format!("set either {inline_env} or {file_env}, not both"),
        )),
        (Some(json), None) => Ok(remember_version(json)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(remember_version)
            .map_err(|e| ConfigError::new(file_env, format!("cannot read {path}: {e}"))),
        (None, None) => Err(ConfigError::new(
            inline_env,
            format!("not set: give the {what} as JSON in {inline_env}, or its path in {file_env}"),
        )),
    }
}

/// The version of the document this process runs: the start of the SHA-256
/// of its bytes, as read at cold start. Every decision line names it, so an
/// operator can tell which documents a record was decided under after a
/// deploy (`sha256sum my-fleet/<document>` gives the same digits).
pub fn document_version() -> Option<&'static str> {
    DOCUMENT_VERSION.get().map(String::as_str)
}

static DOCUMENT_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The digest of `document`, as [`document_version`] reports it.
pub fn version_of(document: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(document.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn remember_version(document: String) -> String {
    // One document a process: the first read is the one it runs.
    let _ = DOCUMENT_VERSION.set(version_of(&document));
    document
}

/// Deserialises a document, naming the path of the first field that does not fit.
pub(crate) fn parse_json<T: DeserializeOwned>(
    document: &str,
    what: &str,
) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(document);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { what.to_string() } else { path };
        ConfigError::new(field, e.into_inner().to_string())
    })
}

/// Reads a boolean switch; unset is `false`.
///
/// # Errors
/// When the variable holds anything but `true`, `false`, `1` or `0`.
pub fn flag_from_env(name: &str) -> Result<bool, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(false),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            other => Err(ConfigError::new(
                name,
                format!("{other:?} is not a boolean: use true or false"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_version_is_the_start_of_its_sha256() {
        // sha256("") and sha256("abc"), as `sha256sum` prints them.
        assert_eq!(version_of(""), "sha256:e3b0c44298fc");
        assert_eq!(version_of("abc"), "sha256:ba7816bf8f01");
        assert_ne!(version_of("{\"a\":1}"), version_of("{\"a\":2}"));
    }
}
