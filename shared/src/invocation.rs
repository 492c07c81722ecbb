//! What the functions share about an invocation's outcome: the error type that
//! tells Lambda whether retrying can help, and the one-line decision log.

use crate::config::ConfigError;
pub use crate::echo::{capped, ECHO_LIMIT};
use crate::ports::{FailureKind, PortError};
use lambda_runtime::Diagnostic;
use serde::Serialize;

/// A payload a function does not accept. Its message, in the response and the
/// log, is capped: a hostile payload is never echoed whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", capped(&self.0, ECHO_LIMIT))]
pub struct MalformedEvent(pub String);

/// ECS cluster and service names are at most 255 characters.
pub const ECS_NAME_LIMIT: usize = 255;
/// An ARN is at most 2,048 characters.
pub const ARN_LIMIT: usize = 2048;

impl MalformedEvent {
    /// Refuses a `value` longer than AWS allows, saying how long it was
    /// without repeating it.
    ///
    /// # Errors
    /// When `value` has more than `limit` characters.
    pub fn check_length(what: &str, value: &str, limit: usize) -> Result<(), Self> {
        let length = value.chars().count();
        if length > limit {
            return Err(Self(format!(
                "{what} is {length} characters; at most {limit} are allowed"
            )));
        }
        Ok(())
    }

    /// `what: cause`, for a payload part that failed to parse.
    pub fn because(what: &str, cause: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {cause}"))
    }

    /// A JSON object of no accepted shape: names its keys and what was expected.
    pub fn unrecognised(
        object: &serde_json::Map<String, serde_json::Value>,
        expected: &str,
    ) -> Self {
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        Self(format!(
            "unrecognised event with keys {keys:?}: expected {expected}"
        ))
    }

    /// An EventBridge event of a detail-type the function does not handle.
    pub fn unsupported_detail_type(detail_type: &str, expected: &[&str]) -> Self {
        Self(format!(
            "unsupported EventBridge detail-type {detail_type:?}: expected {}",
            expected
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }
}

/// Why an invocation failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("malformed event: {0}")]
    MalformedEvent(#[from] MalformedEvent),
    #[error("rejected command: {}", capped(.0, ECHO_LIMIT))]
    RejectedCommand(String),
    #[error("{0}")]
    Aws(#[from] PortError),
    /// The configuration disagrees with what AWS has (an alarm or target group
    /// it names): no event is acted on until it is fixed.
    #[error("{0}")]
    Configuration(#[from] ConfigError),
    #[error("{failed} of {total} {unit} failed ({detail}); the rest were applied and a retry does not redo them")]
    PartialFailure {
        failed: usize,
        total: usize,
        unit: &'static str,
        retryable: bool,
        detail: String,
    },
}

impl InvocationError {
    /// Throttling, 5xx and timeouts are worth retrying; bad input and missing resources are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            InvocationError::MalformedEvent(_)
            | InvocationError::RejectedCommand(_)
            | InvocationError::Configuration(_) => false,
            InvocationError::Aws(e) => e.kind == FailureKind::Retryable,
            InvocationError::PartialFailure { retryable, .. } => *retryable,
        }
    }

    fn category(&self) -> &'static str {
        match self {
            InvocationError::MalformedEvent(_) => "MalformedEvent",
            InvocationError::RejectedCommand(_) => "RejectedCommand",
            InvocationError::Aws(e) => match e.kind {
                FailureKind::Retryable => "AwsUnavailable",
                FailureKind::NotFound => "ResourceNotFound",
                FailureKind::Rejected => "AwsRejected",
            },
            InvocationError::PartialFailure { .. } => "PartialFailure",
            InvocationError::Configuration(_) => "Configuration",
        }
    }

    /// The outcome of `total` independent pieces of work, of which `failures` failed.
    ///
    /// # Errors
    /// The one failure when there was one piece, else a [`InvocationError::PartialFailure`].
    pub fn from_failures(
        mut failures: Vec<PortError>,
        total: usize,
        unit: &'static str,
    ) -> Result<(), InvocationError> {
        match failures.len() {
            0 => Ok(()),
            1 if total == 1 => Err(InvocationError::Aws(failures.remove(0))),
            failed => Err(InvocationError::PartialFailure {
                failed,
                total,
                unit,
                retryable: failures.iter().any(|e| e.kind == FailureKind::Retryable),
                detail: failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}

impl From<InvocationError> for Diagnostic {
    fn from(error: InvocationError) -> Self {
        let class = if error.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        Diagnostic {
            error_type: format!("{class}.{}", error.category()),
            error_message: error.to_string(),
        }
    }
}

/// Ends a cold start that cannot go on: logs the error once, reports it to
/// Lambda's init error endpoint (`/runtime/init/error`) so whoever invoked the
/// function sees `Runtime.InitError` with the message and the field to fix,
/// not a bare exit, then exits.
pub async fn fail_init(error: &dyn std::fmt::Display) -> ! {
    let message = error.to_string();
    tracing::error!("{message}");
    if let Err(e) = report_init_error(&message).await {
        tracing::warn!(error = %e, "the init error could not be reported to the runtime API");
    }
    std::process::exit(1)
}

/// Posts `message` to the runtime API's init error endpoint.
async fn report_init_error(message: &str) -> Result<(), lambda_runtime::Error> {
    let diagnostic = Diagnostic {
        error_type: "Runtime.InitError".into(),
        error_message: message.to_string(),
    };
    let client = lambda_runtime_api_client::Client::builder().build()?;
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(lambda_runtime_api_client::body::Body::from(
            serde_json::to_vec(&diagnostic)?,
        ))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("the runtime API answered {}", response.status()).into());
    }
    Ok(())
}

/// One metric in CloudWatch Embedded Metric Format: a JSON line on stdout that
/// Lambda's log pipeline turns into a metric, with no PutMetricData call and
/// no permission beyond writing logs.
pub fn embedded_metric(
    namespace: &str,
    dimensions: &[(&str, &str)],
    name: &str,
    value: f64,
    at: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        name: value,
    });
    if let Some(object) = line.as_object_mut() {
        for (key, dimension) in dimensions {
            object.insert((*key).to_string(), serde_json::Value::from(*dimension));
        }
    }
    line
}

/// The namespace of the controllers' own metrics.
pub const CONTROLLER_NAMESPACE: &str = "EcsControl";

/// A count a controller reports about itself (a decision, a hold, a registration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControllerMetric {
    pub name: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub value: f64,
    /// When the value was true, if not when the record was decided (a
    /// datapoint read from history, a forecast's interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ControllerMetric {
    pub fn new(name: &'static str, dimensions: Vec<(&'static str, String)>, value: f64) -> Self {
        Self {
            name,
            dimensions,
            value,
            at: None,
        }
    }

    /// The same value, as of `at`.
    pub fn as_of(self, at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            at: Some(at),
            ..self
        }
    }
}

/// The name serde gives a unit variant (`held`, `budget_ceiling`), for a dimension value.
pub fn variant_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Adds up metrics with the same name and dimensions.
pub fn summed(metrics: impl IntoIterator<Item = ControllerMetric>) -> Vec<ControllerMetric> {
    let mut out: Vec<ControllerMetric> = Vec::new();
    for metric in metrics {
        match out.iter_mut().find(|m| {
            m.name == metric.name && m.dimensions == metric.dimensions && m.at == metric.at
        }) {
            Some(found) => found.value += metric.value,
            None => out.push(metric),
        }
    }
    out
}

/// The decision line: the record as a JSON object, not a string inside a field,
/// so Logs Insights filters on its fields (`decision.services.0.action`). It
/// carries the invocation's context (`function_request_id`, `cold_start`,
/// `xray_trace_id`, `function_version`) to join it to the request, and stays
/// under CloudWatch Logs' event limit by the rule in [`crate::log_size`]
/// (`truncated: true` and what was cut, when it applies).
pub fn decision_line(
    function: &str,
    record: &impl Serialize,
    at: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let mut decision = serde_json::to_value(record)
        .unwrap_or_else(|e| serde_json::Value::from(format!("the record did not serialize: {e}")));
    let truncation =
        crate::log_size::fit(&mut decision, "decision", crate::log_size::DECISION_LIMIT);
    let mut line = serde_json::Map::new();
    line.insert(
        "timestamp".into(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    line.insert("level".into(), "INFO".into());
    line.insert("message".into(), "decision".into());
    line.insert("function".into(), function.into());
    line.extend(crate::logging::context_fields());
    line.insert(
        "document_version".into(),
        crate::config::document_version().into(),
    );
    if let Some(truncation) = truncation {
        line.insert("truncated".into(), true.into());
        line.insert(
            "truncation".into(),
            serde_json::to_value(truncation).unwrap_or_default(),
        );
    }
    line.insert("decision".into(), decision);
    serde_json::Value::Object(line)
}

/// Writes the decision line, then one Embedded Metric Format line per metric
/// (each also carrying the `Function` dimension and the invocation's
/// context), to stdout, where Lambda's log pipeline keeps the first for
/// queries and turns the rest into metrics.
pub fn log_decision(
    function: &str,
    record: &impl Serialize,
    metrics: &[ControllerMetric],
    at: chrono::DateTime<chrono::Utc>,
) {
    println!("{}", decision_line(function, record, at));
    for metric in metrics {
        let mut dimensions: Vec<(&str, &str)> = vec![("Function", function)];
        dimensions.extend(metric.dimensions.iter().map(|(k, v)| (*k, v.as_str())));
        crate::logging::write_line(embedded_metric(
            CONTROLLER_NAMESPACE,
            &dimensions,
            metric.name,
            metric.value,
            metric.at.unwrap_or(at),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_payload_is_never_echoed_whole() {
        let huge = "x".repeat(1 << 20);
        let message = MalformedEvent(format!("alarm {huge}: unknown state")).to_string();
        assert!(message.len() < 600, "{}", message.len());
        assert!(
            message.ends_with("(1048597 bytes, cut)"),
            "{}",
            &message[300..]
        );
        assert_eq!(capped("short", 10), "short");
    }

    #[test]
    fn a_decision_line_holds_the_record_as_an_object_and_metrics_are_emf() {
        let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let line = decision_line(
            "scaler",
            &serde_json::json!({"services": [{"action": "held"}]}),
            at,
        );
        assert_eq!(line["decision"]["services"][0]["action"], "held");
        let emf = embedded_metric(
            "EcsControl",
            &[("Function", "scaler"), ("Action", "held")],
            "Decisions",
            2.0,
            at,
        );
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][1],
            "Action"
        );
        assert_eq!(
            (emf["Decisions"].as_f64(), emf["Action"].as_str()),
            (Some(2.0), Some("held"))
        );
        let metrics = summed([
            ControllerMetric::new("Decisions", vec![("Action", "held".into())], 1.0),
            ControllerMetric::new("Decisions", vec![("Action", "held".into())], 1.0),
            ControllerMetric::new("Decisions", vec![("Action", "scaled".into())], 1.0),
        ]);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[0].value, 2.0);
    }

    #[test]
    fn a_decision_line_stays_under_the_event_limit_whatever_the_fleet() {
        let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let services: Vec<serde_json::Value> = (0..50_000)
            .map(|i| serde_json::json!({"cluster": "prod", "service": format!("s{i}"), "action": "held"}))
            .collect();
        let small = decision_line(
            "scaler",
            &serde_json::json!({"services": services[..3]}),
            at,
        );
        assert!(small.get("truncated").is_none(), "{small}");
        let line = decision_line("scaler", &serde_json::json!({"services": services}), at);
        let size = line.to_string().len();
        assert!(size < 256 * 1024, "{size}");
        assert_eq!(line["truncated"], true);
        let cut = &line["truncation"]["cut"][0];
        assert_eq!(cut["path"], "decision.services");
        let kept = line["decision"]["services"].as_array().map_or(0, Vec::len);
        assert_eq!(
            (cut["kept"].as_u64(), cut["removed"].as_u64()),
            (Some(kept as u64), Some(50_000 - kept as u64))
        );
        assert_eq!(line["decision"]["services"][0]["service"], "s0");
        // What joins it to its request and its document is still there.
        for field in ["message", "function", "cold_start", "document_version"] {
            assert!(
                line.get(field).is_some(),
                "{field}: {}",
                &line.to_string()[..500]
            );
        }
    }

    #[test]
    fn error_types_say_whether_to_retry() {
        let throttled = PortError::new(FailureKind::Retryable, "ecs:ListTasks", "Rate exceeded");
        let missing = PortError::new(FailureKind::NotFound, "ecs:DescribeServices", "MISSING");
        for (error, expected) in [
            (
                InvocationError::MalformedEvent(MalformedEvent("x".into())),
                "NonRetryable.MalformedEvent",
            ),
            (
                InvocationError::RejectedCommand("x".into()),
                "NonRetryable.RejectedCommand",
            ),
            (
                InvocationError::Aws(throttled.clone()),
                "Retryable.AwsUnavailable",
            ),
            (
                InvocationError::Aws(missing.clone()),
                "NonRetryable.ResourceNotFound",
            ),
        ] {
            assert_eq!(Diagnostic::from(error).error_type, expected);
        }
        let partial = InvocationError::from_failures(vec![throttled, missing], 3, "services")
            .expect_err("two failed");
        assert!(partial.is_retryable());
        assert!(partial.to_string().starts_with("2 of 3 services failed"));
    }
}
