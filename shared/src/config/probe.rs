//! The probe's document: HTTP(S) checks, target groups to watch, where metrics go.
//!
//! # Secret header values
//!
//! A check's header value is a string, sent as written, or a reference to a
//! secret, read once at cold start so that the secret is in neither the
//! template's parameters nor the function's environment:
//!
//! ```json
//! "headers": {
//!   "Authorization": {"secretsmanager": "ecs-control/probe/api", "json_key": "token", "prefix": "Bearer "},
//!   "X-Api-Key": {"ssm": "/ecs-control/probe/api-key"}
//! }
//! ```
//!
//! `secretsmanager` takes a secret's name or full ARN (its `SecretString`, or
//! with `json_key` that key of it as JSON); `ssm` a parameter's name (a
//! `SecureString`, decrypted); `prefix` goes before the value. Every reference
//! must lie under `PROBE_SECRETS_PATH` (`ecs-control/probe/`: a secret's name,
//! or a parameter's without its leading `/`), the one pattern the function's
//! IAM policy grants. They are read through the AWS Parameters and Secrets
//! Lambda Extension (`ecs_control::aws::secrets`); a value never appears in a
//! log line, a report or an error. Ad-hoc checks and drills' checks take
//! strings only.

mod kinds;
mod references;

pub use references::{references_outside_path, HeaderReference, SECRETS_PATH_ENV};

use super::{parse_json, read_document, ConfigError};
use crate::domain::address_guard::{host_allowed, AddressGuard};
use crate::domain::probe::kinds::CheckKind;
use crate::domain::probe::{
    Expectations, ExpectedStatus, HeaderCheck, HeaderRule, HeaderValue, IpPreference,
    JsonAssertion, JsonRule, Pattern, ProbeCheck, StatusRange,
};
use crate::domain::secret::SecretRef;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const PROBE_CONFIG_ENV: &str = "PROBE_CONFIG";
pub const PROBE_CONFIG_FILE_ENV: &str = "PROBE_CONFIG_FILE";
/// When set, turns ad-hoc checks on (`true`) or off (`false`), whatever the document says.
pub const ADHOC_ENABLED_ENV: &str = "PROBE_ADHOC_ENABLED";
/// When set, the comma-separated hosts ad-hoc checks may reach, instead of the document's.
pub const ADHOC_ALLOWED_HOSTS_ENV: &str = "PROBE_ADHOC_ALLOWED_HOSTS";
/// When set, the comma-separated private ranges ad-hoc checks may reach, instead of the document's.
pub const ADHOC_ALLOWED_RANGES_ENV: &str = "PROBE_ADHOC_ALLOWED_RANGES";

const DEFAULT_NAMESPACE: &str = "EcsControl/Probe";
/// Every check and target group at once, up to this many: the shipped default
/// fits the work, and is lowered at cold start to what the memory holds.
const MAX_CONCURRENCY: usize = 256;
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Health pages are small; 256 KiB for each of 256 checks fits in 128 MB.
const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_RETRIES: u32 = 5;
const MAX_TIMEOUT_MS: u64 = 60_000;
/// The pause before a check's first retry; each further one doubles it.
const DEFAULT_RETRY_BACKOFF_MS: u64 = 200;
const MAX_RETRY_BACKOFF_MS: u64 = 5_000;

/// A target group whose health the probe counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchedTargetGroup {
    /// The `TargetGroup` dimension of its metrics.
    pub name: String,
    pub target_group_arn: String,
}

/// The probe's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub namespace: String,
    pub concurrency: usize,
    /// Whether the document set `concurrency` (a default may be lowered to fit).
    pub concurrency_set: bool,
    pub max_body_bytes: usize,
    pub checks: Vec<ProbeCheck>,
    pub target_groups: Vec<WatchedTargetGroup>,
    pub adhoc: AdhocPolicy,
    /// Header values the document takes from a secret store: not in `checks`
    /// until [`ProbeConfig::resolve_references`] reads them at cold start.
    pub references: Vec<HeaderReference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    // Read straight into entries (not through `Value`): the document's checks
    // are most of a cold start's parsing, and errors still name `checks[i].field`.
    #[serde(default)]
    checks: Vec<CheckEntry>,
    #[serde(default)]
    target_groups: Vec<WatchedTargetGroup>,
    #[serde(default)]
    adhoc: AdhocPolicy,
}

/// Whether operators may run checks given in the invocation, and to where.
/// Off by default: whoever can invoke the probe could otherwise use it to reach
/// anything the function's network reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdhocPolicy {
    #[serde(default)]
    pub enabled: bool,
    /// Hosts ad-hoc checks may reach: `api.example.com`, or `*.example.com`
    /// for any subdomain. Every redirect's host is held to it too.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Special-purpose ranges (loopback, link-local, private, ...) ad-hoc
    /// checks may still reach, as CIDR blocks (`10.20.0.0/16`). The Lambda
    /// runtime API is refused whatever this says.
    #[serde(default, deserialize_with = "ranges")]
    pub allowed_ranges: Vec<ipnet::IpNet>,
}

impl AdhocPolicy {
    /// Whether `host` is on the allowlist (case-insensitive).
    pub fn allows(&self, host: &str) -> bool {
        host_allowed(&self.allowed_hosts, host)
    }

    /// The guard every ad-hoc check's connections follow.
    pub fn guard(&self) -> AddressGuard {
        AddressGuard::for_adhoc(&self.allowed_hosts, &self.allowed_ranges)
    }
}

/// CIDR blocks; an address alone is a block of one.
fn ranges<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| parse_range(text).map_err(serde::de::Error::custom))
        .collect()
}

fn parse_range(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR block (10.20.0.0/16) or an address"))
}

/// Where a check comes from: the configuration may name local files (a CA
/// bundle); a check given in an invocation may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSource {
    Configuration,
    Invocation,
}

/// Checks in flight may take at most this share of the function's memory.
const BODY_MEMORY_SHARE: usize = 2;
/// What a check in flight holds besides its body: the connection's read
/// buffer, which holds the response head (16 KiB), TLS state and record
/// buffers, and the request. The probe's bench measures 17 to 24 KiB over
/// HTTP and 37 to 45 KiB over HTTPS; this keeps a margin over both.
pub const IN_FLIGHT_BYTES_PER_CHECK: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckEntry {
    name: String,
    /// One request; or one of `steps`, `tcp`, `dns` ([`kinds`]).
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    steps: Option<Vec<kinds::StepEntry>>,
    #[serde(default)]
    tcp: Option<kinds::TcpEntry>,
    #[serde(default)]
    dns: Option<kinds::DnsEntry>,
    #[serde(default)]
    method: Option<String>,
    /// A string, or a reference object (read by [`header_value`]).
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    expected_status: Option<Vec<StatusEntry>>,
    #[serde(default)]
    body_must_match: Vec<PatternEntry>,
    #[serde(default)]
    body_must_not_match: Vec<PatternEntry>,
    #[serde(default)]
    header_checks: Vec<HeaderEntry>,
    #[serde(default)]
    json_assertions: Vec<JsonEntry>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    follow_redirects: Option<bool>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    ip_version: Option<IpPreference>,
    #[serde(default)]
    ca_certificate_file: Option<String>,
    #[serde(default)]
    retry_backoff_ms: Option<u64>,
    #[serde(default)]
    degraded_after_ms: Option<u64>,
    /// Refuse loopback, link-local, private and other special-purpose
    /// addresses on every hop (always so for ad-hoc checks).
    #[serde(default)]
    deny_private_addresses: Option<bool>,
}

/// `{"path": "$.status", "equals": "ok"}`, or with `matches` (a pattern) or
/// `exists: true`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    path: String,
    #[serde(default)]
    equals: Option<Value>,
    #[serde(default)]
    matches: Option<PatternEntry>,
    #[serde(default)]
    exists: Option<bool>,
}

/// `200`, or `"200-299"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum StatusEntry {
    Code(u16),
    Range(String),
}

/// `"text"` (substring) or `{"regex": "..."}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PatternEntry {
    Substring(String),
    Regex { regex: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderEntry {
    name: String,
    #[serde(default)]
    present: Option<bool>,
    #[serde(default)]
    absent: Option<bool>,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    matches: Option<PatternEntry>,
}

impl ProbeConfig {
    /// Reads the document from `PROBE_CONFIG` or `PROBE_CONFIG_FILE`.
    ///
    /// # Errors
    /// When neither (or both) is set, a file cannot be read, or the document is invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::parse(&read_document(
            PROBE_CONFIG_ENV,
            PROBE_CONFIG_FILE_ENV,
            "probe document",
        )?)?;
        // The deployment decides who may run what: its switches win over the document.
        if std::env::var_os(ADHOC_ENABLED_ENV).is_some() {
            config.adhoc.enabled = super::flag_from_env(ADHOC_ENABLED_ENV)?;
        }
        if let Ok(hosts) = std::env::var(ADHOC_ALLOWED_HOSTS_ENV) {
            config.adhoc.allowed_hosts = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Ok(ranges) = std::env::var(ADHOC_ALLOWED_RANGES_ENV) {
            config.adhoc.allowed_ranges = ranges
                .split(',')
                .filter(|r| !r.trim().is_empty())
                .map(|r| parse_range(r).map_err(|e| ConfigError::new(ADHOC_ALLOWED_RANGES_ENV, e)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(memory_mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .ok()
            .and_then(|m| m.parse().ok())
        {
            if !config.concurrency_set {
                config.concurrency = config
                    .concurrency
                    .min(config.concurrency_fitting(memory_mb));
            }
            config.fits_in_memory(memory_mb)?;
        }
        Ok(config)
    }

    /// What one check in flight may hold: its body, and the head and
    /// connection state around it.
    fn bytes_per_check(&self) -> usize {
        self.max_body_bytes
            .saturating_add(IN_FLIGHT_BYTES_PER_CHECK)
    }

    /// How many checks in flight fit in the share of `memory_mb` they may take.
    pub fn concurrency_fitting(&self, memory_mb: usize) -> usize {
        let budget = memory_mb.saturating_mul(1024 * 1024) / BODY_MEMORY_SHARE;
        (budget / self.bytes_per_check()).clamp(1, MAX_CONCURRENCY)
    }

    /// Refuses a configuration whose checks in flight (`max_body_bytes` and
    /// [`IN_FLIGHT_BYTES_PER_CHECK`] for each of `concurrency` checks) could
    /// take more than half of `memory_mb`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming both fields and what would fit.
    pub fn fits_in_memory(&self, memory_mb: usize) -> Result<(), ConfigError> {
        let budget = memory_mb.saturating_mul(1024 * 1024) / BODY_MEMORY_SHARE;
        let needed = self.bytes_per_check().saturating_mul(self.concurrency);
        if needed > budget {
            return Err(ConfigError::new(
                "max_body_bytes",
                format!(
                    "(max_body_bytes {} + {IN_FLIGHT_BYTES_PER_CHECK} for the head and connection) \
                     x concurrency {} = {needed} bytes in flight, more than half of the function's \
                     {memory_mb} MB; lower max_body_bytes or concurrency (at most {} bytes of body \
                     each at this concurrency)",
                    self.max_body_bytes,
                    self.concurrency,
                    (budget / self.concurrency.max(1)).saturating_sub(IN_FLIGHT_BYTES_PER_CHECK)
                ),
            ));
        }
        Ok(())
    }

    /// Parses and validates a probe document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field.
    pub fn parse(document: &str) -> Result<Self, ConfigError> {
        let parsed: Document = parse_json(document, "probe document")?;
        let namespace = parsed
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        if namespace.trim().is_empty() || namespace.len() > 255 || namespace.starts_with("AWS/") {
            return Err(ConfigError::new(
                "namespace",
                "must be 1 to 255 characters and not start with AWS/ (reserved for AWS)",
            ));
        }
        let concurrency = parsed.concurrency.unwrap_or(MAX_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::new("concurrency", "must be between 1 and 256"));
        }
        let max_body_bytes = parsed.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if parsed.checks.is_empty() && parsed.target_groups.is_empty() {
            return Err(ConfigError::new(
                "checks",
                "configure at least one check or target group",
            ));
        }
        let mut names = BTreeSet::new();
        let mut checks = Vec::with_capacity(parsed.checks.len());
        let mut references = Vec::new();
        for (i, entry) in parsed.checks.into_iter().enumerate() {
            let (check, referenced) =
                check_from_entry(entry, &format!("checks[{i}]"), CheckSource::Configuration)?;
            references.extend(referenced);
            if !names.insert(check.name.clone()) {
                return Err(ConfigError::new(
                    format!("checks[{i}].name"),
                    format!("{:?} is used by another check", check.name),
                ));
            }
            checks.push(check);
        }
        let mut groups = BTreeSet::new();
        for (i, group) in parsed.target_groups.iter().enumerate() {
            let at = |field: &str| format!("target_groups[{i}].{field}");
            validate_dimension(&group.name).map_err(|p| ConfigError::new(at("name"), p))?;
            if !group.target_group_arn.contains(":targetgroup/") {
                return Err(ConfigError::new(
                    at("target_group_arn"),
                    format!("{:?} is not a target group ARN", group.target_group_arn),
                ));
            }
            if !groups.insert(&group.name) {
                return Err(ConfigError::new(at("name"), "used by another target group"));
            }
        }
        Ok(Self {
            namespace,
            concurrency,
            concurrency_set: parsed.concurrency.is_some(),
            max_body_bytes,
            checks,
            target_groups: parsed.target_groups,
            adhoc: parsed.adhoc,
            references,
        })
    }

    pub fn check(&self, name: &str) -> Option<&ProbeCheck> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A metric dimension value: letters, digits and `._-/` up to 255 characters.
fn validate_dimension(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1 to 255 letters, digits or ._-/ (it names metrics)"
        ))
    }
}

fn pattern(entry: PatternEntry, field: &str) -> Result<Pattern, ConfigError> {
    match entry {
        PatternEntry::Substring(s) if s.is_empty() => Err(ConfigError::new(
            field,
            "an empty substring matches everything",
        )),
        PatternEntry::Substring(s) => Ok(Pattern::Substring(s)),
        PatternEntry::Regex { regex } => regex_lite::Regex::new(&regex)
            .map(Pattern::Regex)
            .map_err(|e| ConfigError::new(field, format!("invalid regex: {e}"))),
    }
}

fn status_range(entry: StatusEntry, field: &str) -> Result<StatusRange, ConfigError> {
    let bad = || {
        ConfigError::new(
            field,
            "expected a status code (200) or a range (\"200-299\")",
        )
    };
    let (from, to) = match entry {
        StatusEntry::Code(code) => (code, code),
        StatusEntry::Range(text) => match text.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let code = text.trim().parse().map_err(|_| bad())?;
                (code, code)
            }
        },
    };
    if !(100..=599).contains(&from) || !(100..=599).contains(&to) || from > to {
        return Err(ConfigError::new(
            field,
            format!("{from}-{to} is not a range of HTTP status codes (100-599)"),
        ));
    }
    Ok(StatusRange { from, to })
}

/// Parses one check, from the document or from an ad-hoc invocation; errors
/// name fields under `at` (e.g. `checks[2].timeout_ms`). Header values by
/// reference are refused: only the probe document's own checks are resolved
/// at cold start.
///
/// # Errors
/// A [`ConfigError`] naming the first offending field.
pub fn parse_check(raw: Value, at: &str, source: CheckSource) -> Result<ProbeCheck, ConfigError> {
    let entry: CheckEntry = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let name = if path == "." {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        ConfigError::new(name, e.into_inner().to_string())
    })?;
    let (check, references) = check_from_entry(entry, at, source)?;
    match references.first() {
        None => Ok(check),
        Some(reference) => Err(ConfigError::new(
            reference.field.clone(),
            "a secret reference is read only in the probe document's checks; write the value here",
        )),
    }
}

/// A request's method: `GET` unless given, upper-case letters.
fn http_method(given: Option<String>, field: &str) -> Result<String, ConfigError> {
    let method = given.unwrap_or_else(|| "GET".to_string());
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ConfigError::new(
            field,
            format!("{method:?} is not an HTTP method (GET, HEAD, POST, ...)"),
        ));
    }
    Ok(method)
}

/// A check, and the header values it takes by reference (not in the check yet).
fn check_from_entry(
    entry: CheckEntry,
    at: &str,
    source: CheckSource,
) -> Result<(ProbeCheck, Vec<HeaderReference>), ConfigError> {
    let field = |name: &str| format!("{at}.{name}");
    validate_dimension(&entry.name).map_err(|p| ConfigError::new(field("name"), p))?;
    let others = kinds::KindEntries {
        steps: entry.steps,
        tcp: entry.tcp,
        dns: entry.dns,
    };
    let (kind, url) = match entry.url {
        Some(raw) if others.steps.is_none() && others.tcp.is_none() && others.dns.is_none() => {
            let url = url::Url::parse(&raw)
                .map_err(|e| ConfigError::new(field("url"), format!("{raw:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ConfigError::new(
                    field("url"),
                    "must be an http:// or https:// URL with a host",
                ));
            }
            (CheckKind::Http, url.to_string())
        }
        Some(_) => {
            return Err(ConfigError::new(
                at,
                "give exactly one of url, steps, tcp, dns",
            ))
        }
        None => kinds::kind_of(others, at)?,
    };
    let method = http_method(entry.method, &field("method"))?;
    // A plain value is sent as written (a name must be a token and a value one
    // line); a reference waits for the cold start to read it.
    let mut request_headers = Vec::with_capacity(entry.headers.len());
    let mut references = Vec::new();
    for (name, value) in entry.headers {
        let at = field(&format!("headers.{name}"));
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::new(at, "is not an HTTP header name"));
        }
        match header_value(value, &at)? {
            Header::Plain(value) => request_headers.push((name, HeaderValue::Plain(value))),
            Header::Reference { .. } if source == CheckSource::Invocation => {
                return Err(ConfigError::new(
                    at,
                    "is configuration only: an invocation may not read secrets",
                ))
            }
            Header::Reference {
                source: store,
                json_key,
                prefix,
            } => references.push(HeaderReference {
                check: entry.name.clone(),
                header: name,
                field: at,
                source: store,
                json_key,
                prefix,
            }),
        }
    }
    let expect = expectations(
        ExpectationEntries {
            expected_status: entry.expected_status,
            body_must_match: entry.body_must_match,
            body_must_not_match: entry.body_must_not_match,
            header_checks: entry.header_checks,
            json_assertions: entry.json_assertions,
        },
        at,
    )?;
    let timeout_ms = entry.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            field("timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    let retries = entry.retries.unwrap_or(0);
    if retries > MAX_RETRIES {
        return Err(ConfigError::new(
            field("retries"),
            format!("at most {MAX_RETRIES}"),
        ));
    }
    let retry_backoff_ms = entry.retry_backoff_ms.unwrap_or(DEFAULT_RETRY_BACKOFF_MS);
    if retry_backoff_ms > MAX_RETRY_BACKOFF_MS {
        return Err(ConfigError::new(
            field("retry_backoff_ms"),
            format!("at most {MAX_RETRY_BACKOFF_MS}"),
        ));
    }
    if let Some(degraded_after_ms) = entry.degraded_after_ms {
        if !(1..timeout_ms).contains(&degraded_after_ms) {
            return Err(ConfigError::new(
                field("degraded_after_ms"),
                format!("must be between 1 and the check's timeout_ms ({timeout_ms}), exclusive"),
            ));
        }
    }
    let extra_ca_pem = match entry.ca_certificate_file {
        None => None,
        Some(_) if source == CheckSource::Invocation => {
            return Err(ConfigError::new(
                field("ca_certificate_file"),
                "is configuration only: an invocation may not name a file to read",
            ))
        }
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            ConfigError::new(
                field("ca_certificate_file"),
                format!("cannot read {path}: {e}"),
            )
        })?),
    };
    let check = ProbeCheck {
        name: entry.name,
        url,
        method,
        headers: request_headers,
        body: entry.body,
        expect,
        timeout: Duration::from_millis(timeout_ms),
        follow_redirects: entry.follow_redirects.unwrap_or(true),
        retries,
        retry_backoff: Duration::from_millis(retry_backoff_ms),
        degraded_after: entry.degraded_after_ms.map(Duration::from_millis),
        ip_preference: entry.ip_version.unwrap_or_default(),
        extra_ca_pem,
        guard: AddressGuard {
            deny_private: entry.deny_private_addresses.unwrap_or(false),
            ..AddressGuard::default()
        },
        kind,
    };
    Ok((check, references))
}

/// The expectation fields of a check or a step, as written.
struct ExpectationEntries {
    expected_status: Option<Vec<StatusEntry>>,
    body_must_match: Vec<PatternEntry>,
    body_must_not_match: Vec<PatternEntry>,
    header_checks: Vec<HeaderEntry>,
    json_assertions: Vec<JsonEntry>,
}

/// What a response must satisfy; errors name fields under `at`.
fn expectations(parts: ExpectationEntries, at: &str) -> Result<Expectations, ConfigError> {
    let field = |name: &str| format!("{at}.{name}");
    let status = match parts.expected_status {
        None => ExpectedStatus::default(),
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                field("expected_status"),
                "list at least one status",
            ))
        }
        Some(list) => ExpectedStatus(
            list.into_iter()
                .enumerate()
                .map(|(j, s)| status_range(s, &field(&format!("expected_status[{j}]"))))
                .collect::<Result<_, _>>()?,
        ),
    };
    let patterns = |list: Vec<PatternEntry>, name: &str| -> Result<Vec<Pattern>, ConfigError> {
        list.into_iter()
            .enumerate()
            .map(|(j, p)| pattern(p, &field(&format!("{name}[{j}]"))))
            .collect()
    };
    let body_must_match = patterns(parts.body_must_match, "body_must_match")?;
    let body_must_not_match = patterns(parts.body_must_not_match, "body_must_not_match")?;
    let mut headers = Vec::with_capacity(parts.header_checks.len());
    for (j, h) in parts.header_checks.into_iter().enumerate() {
        let at = field(&format!("header_checks[{j}]"));
        let rules = [
            h.present == Some(true),
            h.absent == Some(true),
            h.equals.is_some(),
            h.matches.is_some(),
        ];
        if rules.iter().filter(|r| **r).count() != 1 {
            return Err(ConfigError::new(
                at,
                "give exactly one of present: true, absent: true, equals, matches",
            ));
        }
        let rule = if h.present == Some(true) {
            HeaderRule::Present
        } else if h.absent == Some(true) {
            HeaderRule::Absent
        } else if let Some(v) = h.equals {
            HeaderRule::Equals(v)
        } else if let Some(p) = h.matches {
            HeaderRule::Matches(pattern(p, &format!("{at}.matches"))?)
        } else {
            HeaderRule::Present
        };
        headers.push(HeaderCheck {
            name: h.name.to_ascii_lowercase(),
            rule,
        });
    }
    let mut json = Vec::with_capacity(parts.json_assertions.len());
    for (j, a) in parts.json_assertions.into_iter().enumerate() {
        let at = field(&format!("json_assertions[{j}]"));
        let path = serde_json_path::JsonPath::parse(&a.path).map_err(|e| {
            // Built without the regex functions, which would carry the full
            // regex crate into every binary.
            let hint = if a.path.contains("match(") || a.path.contains("search(") {
                " (JSONPath's match() and search() are not available: select the value and give \"matches\")"
            } else {
                ""
            };
            ConfigError::new(
                format!("{at}.path"),
                format!("{:?} is not a JSONPath: {e}{hint}", a.path),
            )
        })?;
        let rule = match (a.equals, a.matches, a.exists) {
            (Some(value), None, None) => JsonRule::Equals(value),
            (None, Some(p), None) => JsonRule::Matches(pattern(p, &format!("{at}.matches"))?),
            (None, None, Some(true)) => JsonRule::Exists,
            _ => {
                return Err(ConfigError::new(
                    at,
                    "give exactly one of equals, matches, exists: true",
                ))
            }
        };
        json.push(JsonAssertion { path, rule });
    }
    Ok(Expectations {
        status,
        body_must_match,
        body_must_not_match,
        headers,
        json,
    })
}

/// A header's value as the document gives it.
enum Header {
    Plain(String),
    Reference {
        source: SecretRef,
        json_key: Option<String>,
        prefix: Option<String>,
    },
}

/// What a header reference may say, for the message that refuses anything else.
const REFERENCE_SYNTAX: &str = "a header value is a string, or {\"secretsmanager\": \"<name or ARN>\"} \
     (optionally with \"json_key\") or {\"ssm\": \"<parameter name>\"}, either optionally with \"prefix\"";

/// A string header value (one line of visible text), or a reference object.
fn header_value(value: Value, at: &str) -> Result<Header, ConfigError> {
    let refuse = |problem: String| Err(ConfigError::new(at, problem));
    let object = match value {
        Value::String(text) => {
            if http::HeaderValue::from_str(&text).is_err() {
                return refuse("must be one line of visible text (no control characters)".into());
            }
            return Ok(Header::Plain(text));
        }
        Value::Object(object) => object,
        _ => return refuse(REFERENCE_SYNTAX.into()),
    };
    let mut store = None;
    let mut json_key = None;
    let mut prefix = None;
    for (key, value) in object {
        if !matches!(
            key.as_str(),
            "secretsmanager" | "ssm" | "json_key" | "prefix"
        ) {
            return refuse(format!("unknown key {key:?}: {REFERENCE_SYNTAX}"));
        }
        let Value::String(text) = value else {
            return refuse(format!("{key} must be a string"));
        };
        match key.as_str() {
            "secretsmanager" | "ssm" if store.is_some() => {
                return refuse("give one of secretsmanager or ssm, not both".into())
            }
            "secretsmanager" => {
                store = Some(SecretRef::secrets_manager(&text).map_err(|p| format!("{key} {p}")));
            }
            "ssm" => store = Some(SecretRef::parameter(&text).map_err(|p| format!("{key} {p}"))),
            "json_key" if text.is_empty() => return refuse("json_key must not be empty".into()),
            "json_key" => json_key = Some(text),
            _ if http::HeaderValue::from_str(&text).is_err() => {
                return refuse(
                    "prefix must be one line of visible text (no control characters)".into(),
                )
            }
            _ => prefix = Some(text),
        }
    }
    let source = match store {
        None => return refuse(format!("names no store: {REFERENCE_SYNTAX}")),
        Some(Err(problem)) => return refuse(problem),
        Some(Ok(source)) => source,
    };
    if json_key.is_some() && matches!(source, SecretRef::Parameter(_)) {
        return refuse(
            "json_key reads a key of a Secrets Manager secret's JSON; a parameter has no keys"
                .into(),
        );
    }
    Ok(Header::Reference {
        source,
        json_key,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_check_parses_with_defaults_filled_in() {
        let config = ProbeConfig::parse(
            r#"{"checks": [{"name": "home", "url": "https://example.com/health",
                "expected_status": [200, "300-302"], "body_must_match": ["ok", {"regex": "v\\d+"}],
                "header_checks": [{"name": "Content-Type", "matches": "json"}, {"name": "x-debug", "absent": true}]}],
                "target_groups": [{"name": "web", "target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"}]}"#,
        )
        .expect("parses");
        let check = &config.checks[0];
        assert_eq!(check.method, "GET");
        assert_eq!(check.timeout, Duration::from_secs(5));
        assert!(check.follow_redirects);
        assert_eq!(check.ip_preference, IpPreference::Ipv4Preferred);
        assert_eq!(check.expect.status.to_string(), "200, 300-302");
        assert_eq!(check.expect.headers[0].name, "content-type");
        assert_eq!(config.namespace, "EcsControl/Probe");
    }

    #[test]
    fn mistakes_name_their_field() {
        for (doc, field) in [
            (r#"{"checks": []}"#, "checks"),
            (
                r#"{"checks": [{"name": "a b", "url": "http://x"}]}"#,
                "checks[0].name",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "ftp://x"}]}"#,
                "checks[0].url",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "not a url"}]}"#,
                "checks[0].url",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "expected_status": ["299-200"]}]}"#,
                "checks[0].expected_status[0]",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "body_must_match": [{"regex": "("}]}]}"#,
                "checks[0].body_must_match[0]",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "headers": {"X-A": "1\r\nHost: evil"}}]}"#,
                "checks[0].headers.X-A",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "headers": {"bad name": "1"}}]}"#,
                "checks[0].headers.bad name",
            ),
            (
                // Unicode classes are refused at load, not ignored at match.
                r#"{"checks": [{"name": "a", "url": "http://x", "body_must_not_match": ["x", {"regex": "\\p{L}+"}]}]}"#,
                "checks[0].body_must_not_match[1]",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "timeout_ms": 0}]}"#,
                "checks[0].timeout_ms",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "ip_version": "ipv5"}]}"#,
                "checks[0].ip_version",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "header_checks": [{"name": "h"}]}]}"#,
                "checks[0].header_checks[0]",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]}"#,
                "checks[1].name",
            ),
            (
                r#"{"checks": [{"name": "a", "url": "http://x", "ca_certificate_file": "/nonexistent.pem"}]}"#,
                "checks[0].ca_certificate_file",
            ),
            (
                r#"{"namespace": "AWS/ECS", "checks": [{"name": "a", "url": "http://x"}]}"#,
                "namespace",
            ),
        ] {
            let err = ProbeConfig::parse(doc).expect_err(doc);
            assert_eq!(err.field, field, "{err}");
        }
    }

    fn with_header(value: &str) -> String {
        format!(
            r#"{{"checks": [{{"name": "a", "url": "http://x", "headers": {{"Authorization": {value}}}}}]}}"#
        )
    }

    #[test]
    fn header_references_parse_and_stay_out_of_the_check_until_read() {
        let config = ProbeConfig::parse(&with_header(
            r#"{"secretsmanager": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-control/probe/api-AbC123",
                "json_key": "token", "prefix": "Bearer "}"#,
        ))
        .expect("parses");
        assert!(config.checks[0].headers.is_empty());
        let reference = &config.references[0];
        assert_eq!(
            (
                reference.check.as_str(),
                reference.header.as_str(),
                reference.field.as_str()
            ),
            ("a", "Authorization", "checks[0].headers.Authorization")
        );
        assert_eq!(reference.source.policy_name(), "ecs-control/probe/api");
        assert_eq!(reference.json_key.as_deref(), Some("token"));
        assert_eq!(reference.prefix.as_deref(), Some("Bearer "));

        let config = ProbeConfig::parse(&with_header(r#"{"ssm": "/ecs-control/probe/token"}"#))
            .expect("parses");
        assert_eq!(
            config.references[0].source,
            SecretRef::parameter("/ecs-control/probe/token").expect("valid")
        );
        assert_eq!(config.references[0].prefix, None);
    }

    #[test]
    fn a_reference_says_one_store_and_nothing_else() {
        for (value, says) in [
            (
                r#"{"secret": "ecs-control/probe/api"}"#,
                "unknown key \"secret\"",
            ),
            (
                r#"{"ssm": "/ecs-control/probe/token", "decrypt": true}"#,
                "unknown key \"decrypt\"",
            ),
            (
                r#"{"ssm": ["/ecs-control/probe/token"]}"#,
                "ssm must be a string",
            ),
            (
                r#"{"ssm": "/ecs-control/probe/token", "version": "2"}"#,
                "unknown key \"version\"",
            ),
            (r#"{"prefix": "Bearer "}"#, "names no store"),
            (
                r#"{"secretsmanager": "ecs-control/probe/a", "ssm": "/ecs-control/probe/b"}"#,
                "not both",
            ),
            (
                r#"{"ssm": "/ecs-control/probe/token", "json_key": "token"}"#,
                "a parameter has no keys",
            ),
            (
                r#"{"secretsmanager": "ecs-control/probe/api", "prefix": "Bearer\r\nX-Evil: 1"}"#,
                "prefix must be one line",
            ),
            (
                r#"{"secretsmanager": "ecs-control/probe/api", "json_key": ""}"#,
                "json_key must not be empty",
            ),
            (r#"{"secretsmanager": ""}"#, "1 to 2048 characters"),
            (
                r#"{"secretsmanager": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api"}"#,
                "not a full secret ARN",
            ),
            ("42", "a header value is a string, or"),
            (r#"["Bearer x"]"#, "a header value is a string, or"),
        ] {
            let err = ProbeConfig::parse(&with_header(value)).expect_err(value);
            assert_eq!(err.field, "checks[0].headers.Authorization", "{err}");
            assert!(err.problem.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn only_the_documents_own_checks_read_secrets() {
        let check: Value = serde_json::json!({"name": "a", "url": "http://x",
            "headers": {"Authorization": {"ssm": "/ecs-control/probe/token"}}});
        let err = parse_check(check.clone(), "adhoc[0]", CheckSource::Invocation)
            .expect_err("an invocation may not read secrets");
        assert_eq!(err.field, "adhoc[0].headers.Authorization");
        assert!(err.problem.contains("configuration only"), "{err}");
        // A drill's check is configuration, but nothing resolves its references.
        let err = parse_check(
            check,
            "drills[0].steady_state.probe_checks[0]",
            CheckSource::Configuration,
        )
        .expect_err("a drill's check is not resolved");
        assert_eq!(
            err.field,
            "drills[0].steady_state.probe_checks[0].headers.Authorization"
        );
        // A plain value is still sent as written, and shown as written.
        let plain: Value = serde_json::json!({"name": "a", "url": "http://x",
            "headers": {"Authorization": "Bearer plain"}});
        let check = parse_check(plain, "adhoc[0]", CheckSource::Invocation).expect("plain");
        assert_eq!(
            check.headers,
            [(
                "Authorization".to_string(),
                HeaderValue::from("Bearer plain")
            )]
        );
        assert!(format!("{check:?}").contains("\"Bearer plain\""));
    }

    #[test]
    fn jsonpath_regex_functions_are_refused_with_what_to_use_instead() {
        let raw = serde_json::json!({"name": "c", "url": "http://x",
            "json_assertions": [{"path": "$.items[?match(@.state, 'ok.*')]", "exists": true}]});
        let err = parse_check(raw, "c", CheckSource::Configuration).expect_err("match()");
        assert_eq!(err.field, "c.json_assertions[0].path", "{err}");
        assert!(err.problem.contains("\"matches\""), "{err}");
        // The other standard functions are there.
        let raw = serde_json::json!({"name": "c", "url": "http://x",
            "json_assertions": [{"path": "$.items[?length(@.tags) > 0]", "exists": true}]});
        parse_check(raw, "c", CheckSource::Configuration).expect("length()");
    }

    #[test]
    fn new_check_fields_are_checked_naming_the_field() {
        let cases = [
            (
                serde_json::json!({"json_assertions": [{"path": "status", "equals": "ok"}]}),
                "c.json_assertions[0].path",
            ),
            (
                serde_json::json!({"json_assertions": [{"path": "$.a", "equals": 1, "exists": true}]}),
                "c.json_assertions[0]",
            ),
            (
                serde_json::json!({"json_assertions": [{"path": "$.a", "matches": {"regex": "("}}]}),
                "c.json_assertions[0].matches",
            ),
            (
                serde_json::json!({"degraded_after_ms": 9000}),
                "c.degraded_after_ms",
            ),
            (
                serde_json::json!({"retry_backoff_ms": 60000}),
                "c.retry_backoff_ms",
            ),
        ];
        for (extra, field) in cases {
            let mut check = serde_json::json!({"name": "a", "url": "http://x"});
            for (k, v) in extra.as_object().expect("object") {
                check[k] = v.clone();
            }
            let err = parse_check(check, "c", CheckSource::Configuration).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
        let ok = serde_json::json!({"name": "a", "url": "http://x", "degraded_after_ms": 500,
            "json_assertions": [{"path": "$.items[*].healthy", "equals": true}],
            "deny_private_addresses": true});
        let check = parse_check(ok, "c", CheckSource::Configuration).expect("valid");
        assert_eq!(check.expect.json.len(), 1);
        assert!(check.guard.deny_private);
        assert_eq!(check.degraded_after, Some(Duration::from_millis(500)));
    }

    #[test]
    fn adhoc_ranges_are_cidr_blocks_or_addresses() {
        let config = ProbeConfig::parse(
            r#"{"checks": [{"name": "a", "url": "http://x"}],
                "adhoc": {"enabled": true, "allowed_hosts": ["x"], "allowed_ranges": ["10.20.0.0/16", "127.0.0.1"]}}"#,
        )
        .expect("valid");
        let guard = config.adhoc.guard();
        assert!(guard.deny_private);
        assert_eq!(guard.allowed_ranges.len(), 2);
        let err = ProbeConfig::parse(
            r#"{"checks": [{"name": "a", "url": "http://x"}], "adhoc": {"allowed_ranges": ["10.0.0.0/33"]}}"#,
        )
        .expect_err("not a block");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }
}
