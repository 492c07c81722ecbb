//! Which AWS service each call a function makes goes to, recorded by the
//! clients it is given: an interceptor on each SDK client reads every request
//! as it is sent (each attempt, after signing), the way the emulator's fault
//! layer does (`tests/emulator/faults.py`, `identify()`): the service and the
//! region from the signing scope, the operation from `X-Amz-Target`, the
//! rpc-v2-cbor path or the query protocol's `Action`.
//!
//! The emulator counts every call by region and operation only; this adds
//! the service (ECS and CloudWatch share operation names such as
//! `TagResource`), and keeps the JSON bodies of ECS calls, so a test can
//! read which cluster a call named or which tag keys it wrote.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One request a client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The signing scope's region.
    pub region: String,
    /// The signing scope's service (`ecs`, `monitoring`, `elasticloadbalancing`).
    pub signing_service: String,
    /// The API operation (`UpdateService`).
    pub operation: String,
    /// The body, when it is JSON (the ECS API's).
    pub json: Option<serde_json::Value>,
}

impl Call {
    /// The IAM action the call needs: `cloudwatch:PutMetricData` (the
    /// service prefix of the signing name `monitoring` is `cloudwatch`).
    pub fn action(&self) -> String {
        let prefix = match self.signing_service.as_str() {
            "monitoring" => "cloudwatch",
            other => other,
        };
        format!("{prefix}:{}", self.operation)
    }
}

/// Every request the clients made with [`CallLog::ecs`], [`CallLog::elbv2`]
/// and [`CallLog::cloudwatch`] sent, in order.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CallLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// An ECS client on `config` whose requests are logged here.
    pub fn ecs(&self, config: &aws_config::SdkConfig) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(config)
                .interceptor(self.clone())
                .build(),
        )
    }

    /// An ELBv2 client on `config` whose requests are logged here.
    pub fn elbv2(&self, config: &aws_config::SdkConfig) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                .interceptor(self.clone())
                .build(),
        )
    }

    /// A CloudWatch client on `config` whose requests are logged here.
    pub fn cloudwatch(&self, config: &aws_config::SdkConfig) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(config)
                .interceptor(self.clone())
                .build(),
        )
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// How many calls of each operation were made in `region`: what the
    /// emulator's count (`Emulator::calls`) should say of the same calls.
    pub fn counts(&self, region: &str) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for call in self.calls().into_iter().filter(|c| c.region == region) {
            *counts.entry(call.operation).or_insert(0) += 1;
        }
        counts
    }

    fn record(&self, call: Call) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

const CBOR_PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// `(region, service)` of a SigV4 `Authorization` header's credential scope.
fn signing_scope(authorization: &str) -> Option<(String, String)> {
    let scope = authorization.split("Credential=").nth(1)?;
    let mut parts = scope.split('/');
    let (_key, _date) = (parts.next()?, parts.next()?);
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

/// The operation of a request, as the fault layer reads it.
fn operation(target: Option<&str>, uri: &str, body: &[u8]) -> Option<String> {
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or_default();
    if let Some(op) = path.strip_prefix(CBOR_PATH_PREFIX) {
        return Some(op.to_string());
    }
    if let Some(target) = target {
        return target.rsplit('.').next().map(str::to_string);
    }
    let form = String::from_utf8_lossy(body);
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let action = [form.as_ref(), query]
        .into_iter()
        .flat_map(|pairs| pairs.split('&'))
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string);
    action
}

impl aws_sdk_ecs::config::Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ecs::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let headers = request.headers();
        let body = request.body().bytes().unwrap_or_default();
        let scope = headers.get("authorization").and_then(signing_scope);
        let op = operation(headers.get("x-amz-target"), request.uri(), body);
        match (scope, op) {
            (Some((region, signing_service)), Some(operation)) => {
                self.record(Call {
                    region,
                    signing_service,
                    operation,
                    json: serde_json::from_slice(body).ok(),
                });
                Ok(())
            }
            _ => Err(format!("an unsigned or unnamed AWS request to {}", request.uri()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scope_and_the_operation_as_the_fault_layer_does() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261206/eu-west-1/monitoring/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(
            signing_scope(auth),
            Some(("eu-west-1".into(), "monitoring".into()))
        );
        assert_eq!(
            operation(
                None,
                "http://127.0.0.1:1/service/GraniteServiceVersion20100801/operation/PutMetricData",
                b""
            )
            .as_deref(),
            Some("PutMetricData")
        );
        assert_eq!(
            operation(
                Some("AmazonEC2ContainerServiceV20141113.UpdateService"),
                "http://127.0.0.1:1/",
                b"{}"
            )
            .as_deref(),
            Some("UpdateService")
        );
        assert_eq!(
            operation(
                None,
                "http://127.0.0.1:1/",
                b"Action=RegisterTargets&Version=2015-12-01"
            )
            .as_deref(),
            Some("RegisterTargets")
        );
    }
}
