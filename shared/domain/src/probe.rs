//! Probe verdicts: whether a check's response met its expectations, and if
//! not, the reason an operator reads first; and the metrics a run publishes.

pub mod kinds;
pub mod redirect;

use super::address_guard::AddressGuard;
use super::registration::HealthState;
use super::secret::Secret;
use regex_lite::Regex;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Which address family to connect over. IPv4 first by default: an IPv6-first
/// probe reports IPv4-only hosts as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpPreference {
    #[default]
    Ipv4Preferred,
    Ipv6Preferred,
    Ipv4Only,
    Ipv6Only,
}

/// One check, validated: one HTTP(S) request (`url`, `method`, `headers`,
/// `body`, judged by `expect`), or the steps, TCP dialogue or lookup its
/// `kind` says. Timeout, retries, degradation and the guard apply to every kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCheck {
    pub name: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Option<String>,
    pub expect: Expectations,
    pub timeout: Duration,
    pub follow_redirects: bool,
    /// Further attempts before a failure counts.
    pub retries: u32,
    pub ip_preference: IpPreference,
    /// The pause before the first retry; each further one doubles it
    /// ([`retry_pause`]).
    pub retry_backoff: Duration,
    /// A passed check slower than this is degraded (`CheckDegraded`).
    pub degraded_after: Option<Duration>,
    /// Extra trusted roots (PEM), read at cold start, for private CAs.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Where its connections may go, checked on every hop.
    pub guard: AddressGuard,
    /// What an attempt does: one request (the fields above), steps, TCP or DNS.
    pub kind: kinds::CheckKind,
}

/// A request header's value: as the document wrote it, or read from a secret
/// store at cold start. A secret prints as `<redacted>` (`Debug`, `Serialize`);
/// a plain value prints as itself, as it always has.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Plain(String),
    Secret(Secret),
}

impl HeaderValue {
    /// The value to send.
    pub fn expose(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(secret) => secret.expose(),
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(value: &str) -> Self {
        Self::Plain(value.to_string())
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(value) => fmt::Debug::fmt(value, f),
            Self::Secret(secret) => fmt::Debug::fmt(secret, f),
        }
    }
}

impl Serialize for HeaderValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Plain(value) => serializer.serialize_str(value),
            Self::Secret(secret) => secret.serialize(serializer),
        }
    }
}

/// An inclusive range of HTTP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

/// The status codes a check accepts; 2xx unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStatus(pub Vec<StatusRange>);

impl Default for ExpectedStatus {
    fn default() -> Self {
        Self(vec![StatusRange { from: 200, to: 299 }])
    }
}

impl ExpectedStatus {
    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|r| (r.from..=r.to).contains(&status))
    }
}

impl fmt::Display for ExpectedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                if r.from == r.to {
                    r.from.to_string()
                } else {
                    format!("{}-{}", r.from, r.to)
                }
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl Serialize for ExpectedStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Text to look for: a substring, or a regular expression.
#[derive(Debug, Clone)]
pub enum Pattern {
    Substring(String),
    Regex(Regex),
}

impl Pattern {
    pub fn is_found_in(&self, text: &str) -> bool {
        match self {
            Pattern::Substring(needle) => text.contains(needle.as_str()),
            Pattern::Regex(re) => re.is_match(text),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Pattern::Substring(a), Pattern::Substring(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a response header must (not) be.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderRule {
    Present,
    Absent,
    Equals(String),
    Matches(Pattern),
}

/// A rule on one response header (names compare case-insensitively).
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderCheck {
    /// Lower case.
    pub name: String,
    pub rule: HeaderRule,
}

/// What the values a JSONPath selects must be.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRule {
    /// The path selects something.
    Exists,
    /// Every value it selects equals this one.
    Equals(serde_json::Value),
    /// Every value it selects matches: a string as itself, anything else as
    /// its JSON text (`42`, `true`).
    Matches(Pattern),
}

/// An assertion on the response's body, read as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonAssertion {
    /// An RFC 9535 JSONPath (`$.status`, `$.items[*].healthy`).
    pub path: serde_json_path::JsonPath,
    pub rule: JsonRule,
}

impl JsonAssertion {
    /// Whether `body` meets the assertion. A path that selects nothing fails
    /// every rule: `$.status` equal to "ok" is not met by a body without one.
    fn holds_for(&self, body: &serde_json::Value) -> bool {
        let selected = self.path.query(body);
        if selected.is_empty() {
            return false;
        }
        selected.iter().all(|value| match &self.rule {
            JsonRule::Exists => true,
            JsonRule::Equals(expected) => *value == expected,
            JsonRule::Matches(pattern) => match value {
                serde_json::Value::String(text) => pattern.is_found_in(text),
                other => pattern.is_found_in(&other.to_string()),
            },
        })
    }

    /// What was expected, for the failure's reason (never the value found:
    /// a body may carry a token).
    fn expected(&self) -> String {
        match &self.rule {
            JsonRule::Exists => "to exist".to_string(),
            JsonRule::Equals(value) => format!("to equal {value}"),
            JsonRule::Matches(pattern) => format!("to match {pattern}"),
        }
    }
}

/// Everything a response must satisfy to count as a success.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    pub status: ExpectedStatus,
    pub body_must_match: Vec<Pattern>,
    pub body_must_not_match: Vec<Pattern>,
    pub headers: Vec<HeaderCheck>,
    /// Assertions on the body as JSON; any makes a body that is not JSON a failure.
    pub json: Vec<JsonAssertion>,
}

/// A response as received (the body possibly cut at the configured limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_truncated: bool,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How an attempt ended when it did not fail on the way.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A response for the handler to judge against the check's `expect`.
    Response(HttpResponse),
    /// The adapter judged the attempt as it went (every step, the TCP
    /// dialogue, the lookup's answers) and it passed; the last status, if any.
    Passed { status: Option<u16> },
}

/// One step of a multi-step attempt, as reported (extracted values never are).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepOutcome {
    pub name: String,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

/// What one attempt at a check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpObservation {
    pub outcome: Result<Answer, FailureReason>,
    /// Each step a multi-step attempt reached, in order (empty otherwise).
    pub steps: Vec<StepOutcome>,
    /// From the start of the attempt to the end of the body (or the failure).
    pub latency_ms: f64,
    /// The attempt's phases, each summed over the redirects it followed.
    pub phases: Phases,
    /// Days until the first certificate of the verified chain expires (HTTPS only).
    pub certificate_days_remaining: Option<f64>,
}

/// Where an attempt's time went, as blackbox exporter divides it: each phase
/// the attempt reached, summed over its hops (a redirect is a new connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Resolving the host's name (an address in the URL resolves nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_ms: Option<f64>,
    /// Opening the TCP connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    /// The TLS handshake (HTTPS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    /// From sending the request to the response's head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_byte_ms: Option<f64>,
    /// From the head to the end of the body (or as much as was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_ms: Option<f64>,
}

impl Phases {
    /// Adds `ms` to a phase, which counts from then on.
    pub fn add(slot: &mut Option<f64>, ms: f64) {
        *slot = Some(slot.unwrap_or(0.0) + ms);
    }
}

/// Why a check failed, as an operator would want it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// No complete answer within the check's timeout.
    Timeout,
    /// Nothing listens on the address.
    ConnectionRefused {
        detail: String,
    },
    /// The name did not resolve (or not to an address of the preferred family).
    Dns {
        detail: String,
    },
    /// The TLS handshake failed: untrusted or mismatched certificate, or protocol.
    Tls {
        detail: String,
    },
    /// The TLS handshake failed because the server's certificate has expired.
    TlsExpired {
        detail: String,
    },
    /// More redirects than allowed.
    TooManyRedirects,
    /// A redirect the check does not follow: to http from https, to a host
    /// off the allowlist, or carrying the check's body to another origin.
    RedirectRefused {
        detail: String,
    },
    /// Every address of the host is one the check may not reach.
    AddressDenied {
        detail: String,
    },
    /// The connection failed or broke some other way.
    Connection {
        detail: String,
    },
    StatusMismatch {
        status: u16,
        expected: String,
    },
    BodyMissing {
        pattern: String,
    },
    BodyForbidden {
        pattern: String,
    },
    /// A JSON assertion failed, or the body is not JSON. The value found is
    /// never echoed.
    JsonMismatch {
        path: String,
        expected: String,
    },
    /// The header's value is never echoed: it may carry a session or a secret.
    HeaderMismatch {
        header: String,
        expected: String,
        present: bool,
    },
    /// The run reached its deadline before this check finished.
    Unfinished,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Timeout => f.write_str("timeout"),
            FailureReason::ConnectionRefused { detail } => {
                write!(f, "connection refused: {detail}")
            }
            FailureReason::Dns { detail } => write!(f, "DNS: {detail}"),
            FailureReason::Tls { detail } => write!(f, "TLS: {detail}"),
            FailureReason::TlsExpired { detail } => write!(f, "TLS: certificate expired: {detail}"),
            FailureReason::TooManyRedirects => f.write_str("too many redirects"),
            FailureReason::RedirectRefused { detail } => write!(f, "redirect refused: {detail}"),
            FailureReason::AddressDenied { detail } => write!(f, "address denied: {detail}"),
            FailureReason::Connection { detail } => write!(f, "connection: {detail}"),
            FailureReason::StatusMismatch { status, expected } => {
                write!(f, "status {status}, expected {expected}")
            }
            FailureReason::BodyMissing { pattern } => write!(f, "body lacks {pattern}"),
            FailureReason::BodyForbidden { pattern } => write!(f, "body contains {pattern}"),
            FailureReason::JsonMismatch { path, expected } => {
                write!(f, "JSON body: {path} expected {expected}")
            }
            FailureReason::HeaderMismatch {
                header,
                expected,
                present,
            } => write!(
                f,
                "header {header}: expected {expected}, {}",
                if *present {
                    "found (value not shown)"
                } else {
                    "absent"
                }
            ),
            FailureReason::Unfinished => {
                f.write_str("unfinished when the run reached its deadline")
            }
        }
    }
}

impl FailureReason {
    /// Every [`FailureReason::kind`], the values of the `FailureReason` dimension.
    pub const KINDS: [&'static str; 15] = [
        "timeout",
        "connection_refused",
        "dns",
        "tls",
        "tls_expired",
        "too_many_redirects",
        "redirect_refused",
        "address_denied",
        "connection",
        "status_mismatch",
        "body_missing",
        "body_forbidden",
        "json_mismatch",
        "header_mismatch",
        "unfinished",
    ];

    /// The reason's kind, one of a fixed set ([`FailureReason::KINDS`]): the
    /// `FailureReason` dimension, so an alarm can tell a TLS failure from a
    /// timeout without a metric per message.
    pub fn kind(&self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::ConnectionRefused { .. } => "connection_refused",
            FailureReason::Dns { .. } => "dns",
            FailureReason::Tls { .. } => "tls",
            FailureReason::TlsExpired { .. } => "tls_expired",
            FailureReason::TooManyRedirects => "too_many_redirects",
            FailureReason::RedirectRefused { .. } => "redirect_refused",
            FailureReason::AddressDenied { .. } => "address_denied",
            FailureReason::Connection { .. } => "connection",
            FailureReason::StatusMismatch { .. } => "status_mismatch",
            FailureReason::BodyMissing { .. } => "body_missing",
            FailureReason::BodyForbidden { .. } => "body_forbidden",
            FailureReason::JsonMismatch { .. } => "json_mismatch",
            FailureReason::HeaderMismatch { .. } => "header_mismatch",
            FailureReason::Unfinished => "unfinished",
        }
    }
}

/// The host a URL names, if it parses.
pub fn url_host(raw: &str) -> Option<String> {
    url::Url::parse(raw)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
}

/// The URL as records and logs may show it: credentials in it are replaced.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("REDACTED");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) => "(not a URL)".to_string(),
    }
}

/// Judges a response against the expectations; the first unmet one is the reason.
///
/// # Errors
/// The [`FailureReason`] of the first expectation the response does not meet.
pub fn verdict(expect: &Expectations, response: &HttpResponse) -> Result<(), FailureReason> {
    if !expect.status.accepts(response.status) {
        return Err(FailureReason::StatusMismatch {
            status: response.status,
            expected: expect.status.to_string(),
        });
    }
    if let Some(p) = expect
        .body_must_match
        .iter()
        .find(|p| !p.is_found_in(&response.body))
    {
        return Err(FailureReason::BodyMissing {
            pattern: p.to_string(),
        });
    }
    if let Some(p) = expect
        .body_must_not_match
        .iter()
        .find(|p| p.is_found_in(&response.body))
    {
        return Err(FailureReason::BodyForbidden {
            pattern: p.to_string(),
        });
    }
    if let Some(first) = expect.json.first() {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&response.body) else {
            let why = if response.body_truncated {
                "a JSON body (it was cut at max_body_bytes)"
            } else {
                "a JSON body"
            };
            return Err(FailureReason::JsonMismatch {
                path: first.path.to_string(),
                expected: why.to_string(),
            });
        };
        if let Some(failed) = expect.json.iter().find(|a| !a.holds_for(&body)) {
            return Err(FailureReason::JsonMismatch {
                path: failed.path.to_string(),
                expected: failed.expected(),
            });
        }
    }
    for check in &expect.headers {
        let found = response.header(&check.name);
        let (ok, expected) = match &check.rule {
            HeaderRule::Present => (found.is_some(), "present".to_string()),
            HeaderRule::Absent => (found.is_none(), "absent".to_string()),
            HeaderRule::Equals(v) => (found == Some(v.as_str()), format!("{v:?}")),
            HeaderRule::Matches(p) => (found.is_some_and(|f| p.is_found_in(f)), p.to_string()),
        };
        if !ok {
            return Err(FailureReason::HeaderMismatch {
                header: check.name.clone(),
                expected,
                present: found.is_some(),
            });
        }
    }
    Ok(())
}

/// CloudWatch units the probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetricUnit {
    Milliseconds,
    Count,
    Percent,
    None,
}

/// One PutMetricData item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDatum {
    pub name: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub value: f64,
    pub unit: MetricUnit,
}

/// PutMetricData takes at most this many items a call.
pub const METRICS_PER_CALL: usize = 1000;

/// Metric names: chosen to read at a glance in the CloudWatch console.
pub mod metric_names {
    /// 1 for a passed check, 0 for a failed one: its Average is the success rate.
    pub const CHECK_SUCCESS: &str = "CheckSuccess";
    pub const CHECK_LATENCY: &str = "CheckLatency";
    pub const TIME_TO_FIRST_BYTE: &str = "TimeToFirstByte";
    pub const HTTP_STATUS_CODE: &str = "HttpStatusCode";
    pub const CERTIFICATE_DAYS_REMAINING: &str = "CertificateDaysRemaining";
    /// The phases of the reported attempt (`Phases`), in milliseconds.
    pub const DNS_LOOKUP_TIME: &str = "DnsLookupTime";
    pub const CONNECT_TIME: &str = "ConnectTime";
    pub const TLS_HANDSHAKE_TIME: &str = "TlsHandshakeTime";
    pub const TRANSFER_TIME: &str = "TransferTime";
    /// 1 for a passed check slower than its `degraded_after_ms`, else 0
    /// (published only for checks with a threshold); `CheckSuccess` stays
    /// pass or fail.
    pub const CHECK_DEGRADED: &str = "CheckDegraded";
    /// 1 for a failed check, under `Check` and `FailureReason` (its kind).
    pub const CHECK_FAILURE: &str = "CheckFailure";
    pub const HEALTHY_TARGETS: &str = "HealthyTargets";
    pub const UNHEALTHY_TARGETS: &str = "UnhealthyTargets";
    pub const INITIAL_TARGETS: &str = "InitialTargets";
    pub const DRAINING_TARGETS: &str = "DrainingTargets";
    pub const UNUSED_TARGETS: &str = "UnusedTargets";
    pub const UNAVAILABLE_TARGETS: &str = "UnavailableTargets";
    /// `initial` plus `draining`: on the way in or out, not failing.
    pub const TRANSITIONING_TARGETS: &str = "TransitioningTargets";
    /// Healthy as a share of targets not transitioning.
    pub const HEALTHY_TARGET_PERCENT: &str = "HealthyTargetPercent";
}

/// Dimension names.
pub const CHECK_DIMENSION: &str = "Check";
pub const TARGET_GROUP_DIMENSION: &str = "TargetGroup";
/// A failed check's [`FailureReason::kind`].
pub const FAILURE_REASON_DIMENSION: &str = "FailureReason";

/// The longest pause between a check's attempts.
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// The pause before retry `retry` (1 for the first): `base`, doubling with
/// each retry, at most [`MAX_RETRY_PAUSE`]. An endpoint that failed once is
/// given time to recover, not hit again at once.
pub fn retry_pause(retry: u32, base: Duration) -> Duration {
    let doublings = retry.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(MAX_RETRY_PAUSE)
}

/// Whether a check is degraded: passed, but slower than its threshold.
/// `None` for a check without one (nothing to publish).
pub fn degraded(success: bool, latency_ms: f64, threshold: Option<Duration>) -> Option<bool> {
    threshold.map(|t| success && latency_ms > t.as_secs_f64() * 1000.0)
}

/// What one check measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckMeasurement {
    pub success: bool,
    /// Passed but slower than `degraded_after_ms`; absent without a threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<bool>,
    pub latency_ms: f64,
    #[serde(flatten)]
    pub phases: Phases,
    pub status: Option<u16>,
    pub certificate_days_remaining: Option<f64>,
    /// The failure's [`FailureReason::kind`] (the report says the reason whole).
    #[serde(skip)]
    pub failure_kind: Option<&'static str>,
}

/// A check's metrics: success and latency always; each phase it reached, its
/// status and its certificate's days when known; and, when it failed, one
/// `CheckFailure` under the reason's kind. A failure is published only when
/// it happens, so an alarm on `CheckFailure` treats missing data as not
/// breaching.
pub fn check_metrics(check: &str, m: &CheckMeasurement) -> Vec<MetricDatum> {
    use metric_names::*;
    let dims = || vec![(CHECK_DIMENSION, check.to_string())];
    let mut data = vec![
        MetricDatum {
            name: CHECK_SUCCESS,
            dimensions: dims(),
            value: if m.success { 1.0 } else { 0.0 },
            unit: MetricUnit::None,
        },
        MetricDatum {
            name: CHECK_LATENCY,
            dimensions: dims(),
            value: m.latency_ms,
            unit: MetricUnit::Milliseconds,
        },
    ];
    let ms = MetricUnit::Milliseconds;
    let optional = [
        (DNS_LOOKUP_TIME, m.phases.dns_ms, ms),
        (CONNECT_TIME, m.phases.connect_ms, ms),
        (TLS_HANDSHAKE_TIME, m.phases.tls_ms, ms),
        (TIME_TO_FIRST_BYTE, m.phases.time_to_first_byte_ms, ms),
        (TRANSFER_TIME, m.phases.transfer_ms, ms),
        (HTTP_STATUS_CODE, m.status.map(f64::from), MetricUnit::None),
        (
            CERTIFICATE_DAYS_REMAINING,
            m.certificate_days_remaining,
            MetricUnit::None,
        ),
    ];
    data.extend(optional.into_iter().filter_map(|(name, value, unit)| {
        value.map(|value| MetricDatum {
            name,
            dimensions: dims(),
            value,
            unit,
        })
    }));
    if let Some(degraded) = m.degraded {
        data.push(MetricDatum {
            name: CHECK_DEGRADED,
            dimensions: dims(),
            value: if degraded { 1.0 } else { 0.0 },
            unit: MetricUnit::None,
        });
    }
    if let Some(kind) = m.failure_kind.filter(|_| !m.success) {
        data.push(MetricDatum {
            name: CHECK_FAILURE,
            dimensions: vec![
                (CHECK_DIMENSION, check.to_string()),
                (FAILURE_REASON_DIMENSION, kind.to_string()),
            ],
            value: 1.0,
            unit: MetricUnit::Count,
        });
    }
    data
}

/// Targets of one group counted by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetCounts {
    pub by_state: BTreeMap<&'static str, usize>,
    pub transitioning: usize,
    pub total: usize,
}

pub fn count_targets(states: impl IntoIterator<Item = HealthState>) -> TargetCounts {
    let mut counts = TargetCounts::default();
    for state in [
        HealthState::Healthy,
        HealthState::Unhealthy,
        HealthState::Initial,
        HealthState::Draining,
        HealthState::Unused,
        HealthState::Unavailable,
    ] {
        counts.by_state.insert(state.as_str(), 0);
    }
    for state in states {
        *counts.by_state.entry(state.as_str()).or_default() += 1;
        counts.total += 1;
        if state.is_transitioning() {
            counts.transitioning += 1;
        }
    }
    counts
}

pub fn target_metrics(group: &str, counts: &TargetCounts) -> Vec<MetricDatum> {
    use metric_names::*;
    let count = |state: HealthState| {
        counts
            .by_state
            .get(state.as_str())
            .copied()
            .unwrap_or_default() as f64
    };
    let datum = |name, value, unit| MetricDatum {
        name,
        dimensions: vec![(TARGET_GROUP_DIMENSION, group.to_string())],
        value,
        unit,
    };
    let mut data: Vec<MetricDatum> = [
        (HEALTHY_TARGETS, HealthState::Healthy),
        (UNHEALTHY_TARGETS, HealthState::Unhealthy),
        (INITIAL_TARGETS, HealthState::Initial),
        (DRAINING_TARGETS, HealthState::Draining),
        (UNUSED_TARGETS, HealthState::Unused),
        (UNAVAILABLE_TARGETS, HealthState::Unavailable),
    ]
    .into_iter()
    .map(|(name, state)| datum(name, count(state), MetricUnit::Count))
    .collect();
    data.push(datum(
        TRANSITIONING_TARGETS,
        counts.transitioning as f64,
        MetricUnit::Count,
    ));
    let settled = counts.total - counts.transitioning;
    if settled > 0 {
        data.push(datum(
            HEALTHY_TARGET_PERCENT,
            100.0 * count(HealthState::Healthy) / settled as f64,
            MetricUnit::Percent,
        ));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_header_value_is_sent_but_never_shown() {
        let headers = vec![
            ("X-Trace".to_string(), HeaderValue::from("probe-1")),
            (
                "Authorization".to_string(),
                HeaderValue::Secret(Secret::new("Bearer t0ken")),
            ),
        ];
        assert_eq!(headers[1].1.expose(), "Bearer t0ken");
        let shown = format!("{headers:?}");
        assert_eq!(
            shown,
            r#"[("X-Trace", "probe-1"), ("Authorization", <redacted>)]"#
        );
        let json = serde_json::to_string(&headers).unwrap_or_default();
        assert_eq!(
            json,
            r#"[["X-Trace","probe-1"],["Authorization","<redacted>"]]"#
        );
    }

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            body_truncated: false,
        }
    }

    fn regex(s: &str) -> Pattern {
        Pattern::Regex(Regex::new(s).expect("regex"))
    }

    #[test]
    fn verdicts_name_the_first_unmet_expectation() {
        let expect = Expectations {
            status: ExpectedStatus(vec![
                StatusRange { from: 200, to: 299 },
                StatusRange { from: 304, to: 304 },
            ]),
            body_must_match: vec![Pattern::Substring("ok".into()), regex(r"version \d+")],
            body_must_not_match: vec![Pattern::Substring("maintenance".into())],
            headers: vec![
                HeaderCheck {
                    name: "content-type".into(),
                    rule: HeaderRule::Matches(Pattern::Substring("json".into())),
                },
                HeaderCheck {
                    name: "x-debug".into(),
                    rule: HeaderRule::Absent,
                },
            ],
            json: Vec::new(),
        };
        let json = [("content-type", "application/json")];
        let cases: Vec<(HttpResponse, Result<(), &str>)> = vec![
            (response(200, "ok version 3", &json), Ok(())),
            (response(304, "ok version 3", &json), Ok(())),
            (
                response(503, "ok version 3", &json),
                Err("status 503, expected 200-299, 304"),
            ),
            (response(200, "version 3", &json), Err("body lacks \"ok\"")),
            (response(200, "ok", &json), Err(r"body lacks /version \d+/")),
            (
                response(200, "ok version 3 maintenance", &json),
                Err("body contains \"maintenance\""),
            ),
            (
                response(200, "ok version 3", &[("content-type", "text/html")]),
                Err("header content-type: expected \"json\", found (value not shown)"),
            ),
            (
                response(
                    200,
                    "ok version 3",
                    &[("content-type", "application/json"), ("x-debug", "1")],
                ),
                Err("header x-debug: expected absent, found (value not shown)"),
            ),
        ];
        for (resp, expected) in cases {
            let got = verdict(&expect, &resp).map_err(|r| r.to_string());
            assert_eq!(got, expected.map_err(str::to_string), "{resp:?}");
        }
    }

    #[test]
    fn default_expectation_is_any_2xx() {
        let expect = Expectations::default();
        assert!(verdict(&expect, &response(204, "", &[])).is_ok());
        assert!(verdict(&expect, &response(301, "", &[])).is_err());
    }

    #[test]
    fn checks_publish_what_they_measured() {
        let m = CheckMeasurement {
            success: false,
            degraded: None,
            latency_ms: 12.5,
            phases: Phases {
                connect_ms: Some(1.0),
                time_to_first_byte_ms: Some(10.0),
                ..Phases::default()
            },
            status: Some(500),
            certificate_days_remaining: None,
            failure_kind: Some("status_mismatch"),
        };
        let data = check_metrics("home", &m);
        let names: Vec<&str> = data.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "CheckSuccess",
                "CheckLatency",
                "ConnectTime",
                "TimeToFirstByte",
                "HttpStatusCode",
                "CheckFailure"
            ]
        );
        assert_eq!(data[0].value, 0.0);
        assert_eq!(data[0].dimensions, [("Check", "home".to_string())]);
        assert_eq!(
            data[5].dimensions,
            [
                ("Check", "home".to_string()),
                ("FailureReason", "status_mismatch".to_string())
            ]
        );
        let passed = CheckMeasurement {
            success: true,
            failure_kind: None,
            degraded: Some(true),
            ..m
        };
        let data = check_metrics("home", &passed);
        assert!(data.iter().all(|d| d.name != "CheckFailure"));
        let degraded = data
            .iter()
            .find(|d| d.name == "CheckDegraded")
            .map(|d| d.value);
        assert_eq!(degraded, Some(1.0));
    }

    #[test]
    fn json_assertions_hold_for_every_selected_value_and_never_echo_it() {
        let assertion = |path: &str, rule: JsonRule| JsonAssertion {
            path: serde_json_path::JsonPath::parse(path).expect("path"),
            rule,
        };
        let body = r#"{"status":"ok","version":"7","items":[{"healthy":true},{"healthy":true}],"token":"s3cret"}"#;
        let cases = [
            (assertion("$.status", JsonRule::Equals("ok".into())), true),
            (
                assertion("$.items[*].healthy", JsonRule::Equals(true.into())),
                true,
            ),
            (
                assertion(
                    "$.version",
                    JsonRule::Matches(Pattern::Regex(Regex::new(r"^\d+$").expect("re"))),
                ),
                true,
            ),
            (assertion("$.items", JsonRule::Exists), true),
            (assertion("$.missing", JsonRule::Exists), false),
            (
                assertion("$.missing", JsonRule::Equals(serde_json::Value::Null)),
                false,
            ),
            (
                assertion("$.token", JsonRule::Equals("other".into())),
                false,
            ),
            (
                assertion(
                    "$.items[0]",
                    JsonRule::Matches(Pattern::Substring("true".into())),
                ),
                true,
            ),
        ];
        for (a, holds) in cases {
            let expect = Expectations {
                json: vec![a.clone()],
                ..Expectations::default()
            };
            let got = verdict(&expect, &response(200, body, &[]));
            assert_eq!(got.is_ok(), holds, "{} {:?}: {got:?}", a.path, a.rule);
            if let Err(reason) = got {
                assert_eq!(reason.kind(), "json_mismatch");
                assert!(!reason.to_string().contains("s3cret"), "{reason}");
            }
        }
        let expect = Expectations {
            json: vec![assertion("$.status", JsonRule::Exists)],
            ..Expectations::default()
        };
        let mut cut = response(200, r#"{"status":"o"#, &[]);
        cut.body_truncated = true;
        let reason = verdict(&expect, &cut).expect_err("not JSON");
        assert!(reason.to_string().contains("max_body_bytes"), "{reason}");
    }

    #[test]
    fn retries_back_off_doubling_up_to_a_ceiling() {
        let base = Duration::from_millis(200);
        let pauses: Vec<u128> = (1..=7).map(|n| retry_pause(n, base).as_millis()).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(retry_pause(u32::MAX, base), MAX_RETRY_PAUSE);
        assert_eq!(retry_pause(1, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn only_a_passed_check_over_its_threshold_is_degraded() {
        let threshold = Some(Duration::from_millis(500));
        assert_eq!(degraded(true, 800.0, threshold), Some(true));
        assert_eq!(degraded(true, 200.0, threshold), Some(false));
        assert_eq!(degraded(false, 800.0, threshold), Some(false));
        assert_eq!(degraded(true, 800.0, None), None);
    }

    #[test]
    fn every_failure_kind_is_in_the_fixed_set_and_names_the_serialised_kind() {
        let detail = || "x".to_string();
        let reasons = [
            FailureReason::Timeout,
            FailureReason::ConnectionRefused { detail: detail() },
            FailureReason::Dns { detail: detail() },
            FailureReason::Tls { detail: detail() },
            FailureReason::TlsExpired { detail: detail() },
            FailureReason::TooManyRedirects,
            FailureReason::RedirectRefused { detail: detail() },
            FailureReason::AddressDenied { detail: detail() },
            FailureReason::Connection { detail: detail() },
            FailureReason::StatusMismatch {
                status: 500,
                expected: detail(),
            },
            FailureReason::BodyMissing { pattern: detail() },
            FailureReason::BodyForbidden { pattern: detail() },
            FailureReason::JsonMismatch {
                path: detail(),
                expected: detail(),
            },
            FailureReason::HeaderMismatch {
                header: detail(),
                expected: detail(),
                present: false,
            },
            FailureReason::Unfinished,
        ];
        let kinds: Vec<&str> = reasons.iter().map(FailureReason::kind).collect();
        assert_eq!(kinds, FailureReason::KINDS);
        for reason in &reasons {
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json["kind"], reason.kind());
        }
    }

    #[test]
    fn initial_and_draining_count_as_transitioning_not_failing() {
        let counts = count_targets([
            HealthState::Healthy,
            HealthState::Healthy,
            HealthState::Initial,
            HealthState::Draining,
            HealthState::Unhealthy,
        ]);
        assert_eq!(counts.transitioning, 2);
        let data = target_metrics("web", &counts);
        let value = |name: &str| data.iter().find(|d| d.name == name).map(|d| d.value);
        assert_eq!(value("HealthyTargets"), Some(2.0));
        assert_eq!(value("TransitioningTargets"), Some(2.0));
        // 2 healthy of the 3 settled targets.
        let percent = value("HealthyTargetPercent").unwrap_or_default();
        assert!((percent - 66.666).abs() < 0.01, "{percent}");
    }
}
