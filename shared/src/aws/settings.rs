//! The SDK's settings, from the environment Lambda gives a function: the
//! region, the execution role's credentials (environment variables, or the
//! container endpoint where Lambda serves them instead), and the standard
//! variables that move endpoints and tune retries.
//!
//! Profiles, instance metadata and web identity are not looked for: a Lambda
//! sandbox has none of them, and the code that reads them (with an STS
//! client) is about a tenth of every binary.
//! To run a function elsewhere with a profile, export its credentials first
//! (`aws configure export-credentials --format env`).

use crate::config::ConfigError;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::retry::{RetryConfig, RetryMode};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Where Lambda (or ECS) serves credentials when they are not in the environment.
const CONTAINER_CREDENTIALS: [&str; 2] = [
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// What the environment says the SDK should do, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkSettings {
    pub region: String,
    /// `AWS_ENDPOINT_URL`: every service at one address (an emulator's).
    pub endpoint_url: Option<String>,
    pub use_fips: Option<bool>,
    pub use_dual_stack: Option<bool>,
    pub retry_mode: RetryMode,
    pub max_attempts: Option<u32>,
    /// Credentials come from the container endpoint when the environment has none.
    pub container_credentials: bool,
}

impl SdkSettings {
    /// Reads the settings through `lookup` (the process environment in a
    /// function); an empty variable counts as unset, a bad one is an error
    /// naming it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                ConfigError::new(
                    "AWS_REGION",
                    "is not set (Lambda sets it; elsewhere, name the region)",
                )
            })?;
        let endpoint_url = get("AWS_ENDPOINT_URL")
            .map(|value| match url::Url::parse(&value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(value),
                _ => Err(ConfigError::new(
                    "AWS_ENDPOINT_URL",
                    format!("{value:?} is not an http:// or https:// URL"),
                )),
            })
            .transpose()?;
        let flag = |name: &str| {
            get(name)
                .map(|value| match value.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(ConfigError::new(
                        name,
                        format!("{value:?} is neither true nor false"),
                    )),
                })
                .transpose()
        };
        let retry_mode = get("AWS_RETRY_MODE")
            .map(|value| {
                value.parse::<RetryMode>().map_err(|_| {
                    ConfigError::new(
                        "AWS_RETRY_MODE",
                        format!("{value:?} is neither standard nor adaptive"),
                    )
                })
            })
            .transpose()?
            .unwrap_or(RetryMode::Standard);
        let max_attempts = get("AWS_MAX_ATTEMPTS")
            .map(|value| match value.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ConfigError::new(
                    "AWS_MAX_ATTEMPTS",
                    format!("{value:?} is not a whole number of at least 1"),
                )),
            })
            .transpose()?;
        let container_credentials = CONTAINER_CREDENTIALS.iter().any(|name| get(name).is_some());
        // Half a key pair, or none and no endpoint: every call would fail on
        // its first signature, so the cold start says it instead.
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "AWS_SECRET_ACCESS_KEY",
                    "is not set, but AWS_ACCESS_KEY_ID is",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "AWS_ACCESS_KEY_ID",
                    "is not set, but AWS_SECRET_ACCESS_KEY is",
                ))
            }
            (None, None) if !container_credentials => {
                return Err(ConfigError::new(
                    "AWS_ACCESS_KEY_ID",
                    "no credentials: neither AWS_ACCESS_KEY_ID nor a container credentials \
                     endpoint is set (Lambda sets them; elsewhere, export a profile's)",
                ))
            }
            _ => {}
        }
        Ok(Self {
            region,
            endpoint_url,
            use_fips: flag("AWS_USE_FIPS_ENDPOINT")?,
            use_dual_stack: flag("AWS_USE_DUALSTACK_ENDPOINT")?,
            retry_mode,
            max_attempts,
            container_credentials,
        })
    }

    /// The shared SDK configuration these settings describe, over the one
    /// HTTP client stack of every function.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut retry = match self.retry_mode {
            RetryMode::Adaptive => RetryConfig::adaptive(),
            _ => RetryConfig::standard(),
        };
        if let Some(attempts) = self.max_attempts {
            retry = retry.with_max_attempts(attempts);
        }
        // One client stack for the calls and for the container endpoint.
        let http = super::http_client();
        let mut builder = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .credentials_provider(self.credentials(&http))
            .identity_cache(aws_config::identity::IdentityCache::lazy().build())
            .http_client(http)
            .retry_config(retry);
        builder.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
        builder.set_endpoint_url(self.endpoint_url.clone());
        builder.set_use_fips(self.use_fips);
        builder.set_use_dual_stack(self.use_dual_stack);
        builder.build()
    }

    /// The environment's credentials, else the container endpoint's (read
    /// from the environment by the provider when first asked).
    fn credentials(&self, http: &SharedHttpClient) -> SharedCredentialsProvider {
        let environment = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
        if !self.container_credentials {
            return SharedCredentialsProvider::new(environment);
        }
        let provider_config =
            aws_config::provider_config::ProviderConfig::default().with_http_client(http.clone());
        let container = aws_config::ecs::EcsCredentialsProvider::builder()
            .configure(&provider_config)
            .build();
        SharedCredentialsProvider::new(
            CredentialsProviderChain::first_try("Environment", environment)
                .or_else("ContainerEndpoint", container),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Settings from a region and a key pair, then `vars` (a later entry
    /// wins; an empty value counts as unset).
    fn settings(vars: &[(&str, &str)]) -> Result<SdkSettings, ConfigError> {
        let base = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let vars: HashMap<String, String> = base
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SdkSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn lambda_s_environment_gives_the_defaults() {
        let read = settings(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ])
        .expect("valid");
        assert_eq!(
            read,
            SdkSettings {
                region: "eu-west-1".into(),
                endpoint_url: None,
                use_fips: None,
                use_dual_stack: None,
                retry_mode: RetryMode::Standard,
                max_attempts: None,
                container_credentials: false,
            }
        );
        let fallback = settings(&[
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            // Credentials from the container endpoint alone.
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
        ])
        .expect("valid");
        assert_eq!(fallback.region, "us-west-2");
        assert!(fallback.container_credentials);
    }

    #[test]
    fn the_standard_variables_are_honoured() {
        let read = settings(&[
            ("AWS_REGION", "us-gov-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_USE_FIPS_ENDPOINT", "TRUE"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "false"),
            ("AWS_RETRY_MODE", "adaptive"),
            ("AWS_MAX_ATTEMPTS", "5"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:9000/creds",
            ),
        ])
        .expect("valid");
        assert_eq!(read.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            (read.use_fips, read.use_dual_stack),
            (Some(true), Some(false))
        );
        assert_eq!(
            (read.retry_mode, read.max_attempts),
            (RetryMode::Adaptive, Some(5))
        );
        assert!(read.container_credentials);
        let config = read.sdk_config();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-gov-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert_eq!(config.use_fips(), Some(true));
        let retry = config.retry_config().expect("retry config");
        assert_eq!(
            (retry.mode(), retry.max_attempts()),
            (RetryMode::Adaptive, 5)
        );
    }

    #[test]
    fn a_bad_variable_is_named() {
        let cases = [
            (vec![("AWS_REGION", "")], "AWS_REGION"),
            (
                vec![("AWS_ENDPOINT_URL", "localhost:4566")],
                "AWS_ENDPOINT_URL",
            ),
            (
                vec![("AWS_USE_FIPS_ENDPOINT", "yes")],
                "AWS_USE_FIPS_ENDPOINT",
            ),
            (
                vec![("AWS_USE_DUALSTACK_ENDPOINT", "1")],
                "AWS_USE_DUALSTACK_ENDPOINT",
            ),
            (vec![("AWS_RETRY_MODE", "legacy")], "AWS_RETRY_MODE"),
            (vec![("AWS_MAX_ATTEMPTS", "0")], "AWS_MAX_ATTEMPTS"),
            (vec![("AWS_MAX_ATTEMPTS", "many")], "AWS_MAX_ATTEMPTS"),
            (vec![("AWS_SECRET_ACCESS_KEY", "")], "AWS_SECRET_ACCESS_KEY"),
            (vec![("AWS_ACCESS_KEY_ID", "")], "AWS_ACCESS_KEY_ID"),
            (
                vec![("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
                "AWS_ACCESS_KEY_ID",
            ),
        ];
        for (vars, field) in cases {
            let err = settings(&vars).expect_err(field);
            assert_eq!(err.field, field, "{}", err.problem);
        }
    }
}
