//! Adapters: the only place AWS SDK types appear.

pub mod cloudwatch;
pub mod deadline;
pub mod ecs;
pub mod elbv2;
pub mod request_rate;
pub mod secrets;
pub mod settings;

use crate::config::ConfigError;
use settings::SdkSettings;

use crate::ports::{FailureKind, PortError};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Shared SDK configuration from the function's environment (see
/// [`settings`]; `AWS_ENDPOINT_URL` is how the functions are pointed at an
/// emulator). A bad setting fails the cold start, naming the variable.
pub fn load_sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    SdkSettings::from_lookup(|name| std::env::var(name).ok()).map(|s| s.sdk_config())
}

/// The one HTTP client stack of every function: hyper 1 and rustls with ring.
/// Trusted roots are loaded on the first HTTPS request, not at cold start.
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    SharedHttpClient::new(RootsOnFirstRequest(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    ))
}

/// The SDK's client builds its connector, reading every trusted root on the
/// machine, when a client is made; this defers that to the first request, so
/// a cold start does not wait on it (and a function that makes no AWS call
/// never pays it).
#[derive(Debug)]
struct RootsOnFirstRequest(SharedHttpClient);

impl HttpClient for RootsOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

const NOT_FOUND_CODES: &[&str] = &[
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "TargetGroupNotFound",
    "TargetGroupNotFoundException",
    "ResourceNotFound",
    "ResourceNotFoundException",
];

/// Maps an SDK failure to how the caller should treat it. The SDK has already
/// retried transient failures by the time this sees them.
pub(crate) fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Retryable
        }
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or_default();
            let status = ctx.raw().status().as_u16();
            if THROTTLING_CODES.contains(&code) || status == 429 || status >= 500 {
                FailureKind::Retryable
            } else if NOT_FOUND_CODES.contains(&code) {
                FailureKind::NotFound
            } else {
                FailureKind::Rejected
            }
        }
        SdkError::ConstructionFailure(_) => FailureKind::Rejected,
        _ => FailureKind::Retryable,
    };
    PortError::new(kind, operation, DisplayErrorContext(&err).to_string())
}
