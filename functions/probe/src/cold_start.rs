//! The configuration a cold start builds: the probe document, with the header
//! values it references read from Secrets Manager or Parameter Store before
//! the first check runs (a check never waits on a store, and a reference that
//! cannot be read stops the cold start, naming the header).

use ecs_control::aws::secrets::ExtensionSecrets;
use ecs_control::config::probe::SECRETS_PATH_ENV;
use ecs_control::config::{ConfigError, ProbeConfig};

/// The document from `PROBE_CONFIG` or `PROBE_CONFIG_FILE`, its references
/// resolved through the Parameters and Secrets extension, each under
/// `PROBE_SECRETS_PATH`. A document without references reads nothing more.
///
/// # Errors
/// A [`ConfigError`] naming the field: the document's, the header whose
/// reference is outside the path or cannot be read, or the variable.
pub async fn configuration() -> Result<ProbeConfig, ConfigError> {
    let config = ProbeConfig::from_env()?;
    if config.references.is_empty() {
        return Ok(config);
    }
    let path = std::env::var(SECRETS_PATH_ENV).ok();
    let secrets = ExtensionSecrets::from_env()?;
    config.resolve_references(path.as_deref(), &secrets).await
}
