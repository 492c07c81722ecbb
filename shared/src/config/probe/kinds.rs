//! The probe document's other kinds of check: `steps` (HTTP requests in
//! order, values carried between them), `tcp` (a connection and a dialogue)
//! and `dns` (a lookup that must answer). A check gives exactly one of
//! `url`, `steps`, `tcp` and `dns`.

use super::{
    expectations, pattern, ExpectationEntries, HeaderEntry, JsonEntry, PatternEntry, StatusEntry,
};
use crate::config::ConfigError;
use crate::domain::probe::kinds::{
    referenced_names, CheckKind, DnsCheck, ExtractFrom, Extraction, HttpStep, RecordType, TcpCheck,
    TcpStep, MAX_STEPS,
};
use crate::domain::probe::HeaderValue;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepEntry {
    name: String,
    url: String,
    #[serde(default)]
    method: Option<String>,
    /// Strings: a step's values may name `${value}`s, not secrets.
    #[serde(default)]
    headers: BTreeMap<String, String>,
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
    /// `{"token": {"json": "$.token"}, "session": {"header": "x-session"}}`.
    #[serde(default)]
    extract: BTreeMap<String, ExtractEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum ExtractEntry {
    Json(String),
    Header(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TcpEntry {
    host: String,
    port: u16,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    dialogue: Vec<DialogueEntry>,
}

/// `{"send": "EHLO probe\r\n"}`, `{"expect": "^250"}` (a pattern) or `{"starttls": true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DialogueEntry {
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    expect: Option<PatternEntry>,
    #[serde(default)]
    starttls: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsEntry {
    name: String,
    #[serde(default)]
    record_type: Option<String>,
    /// CIDR blocks every answer must fall in.
    #[serde(default)]
    answers_in: Vec<String>,
}

/// The kinds a check entry may give besides `url`.
pub(super) struct KindEntries {
    pub steps: Option<Vec<StepEntry>>,
    pub tcp: Option<TcpEntry>,
    pub dns: Option<DnsEntry>,
}

/// A value's name: what `${name}` refers to.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The URL a template stands for once its values are in (each taken as `x`).
fn url_of_template(template: &str) -> Result<url::Url, String> {
    let sample = crate::domain::probe::kinds::substitute(
        template,
        &referenced_names(template)
            .into_iter()
            .map(|n| (n.to_string(), "x".to_string()))
            .collect(),
        str::to_string,
    );
    let url = url::Url::parse(&sample).map_err(|e| format!("{template:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(url)
}

/// The check's kind, and the URL its reports show (and an ad-hoc check's
/// host is judged by): the first step's, `tcp://host:port`, `dns://name`.
///
/// # Errors
/// A [`ConfigError`] naming the first offending field under `at`.
pub(super) fn kind_of(entries: KindEntries, at: &str) -> Result<(CheckKind, String), ConfigError> {
    let field = |name: &str| format!("{at}.{name}");
    match entries {
        KindEntries {
            steps: Some(steps),
            tcp: None,
            dns: None,
        } => steps_kind(steps, at),
        KindEntries {
            steps: None,
            tcp: Some(tcp),
            dns: None,
        } => {
            if tcp.host.trim().is_empty() || tcp.port == 0 {
                return Err(ConfigError::new(
                    field("tcp"),
                    "give a host and a port (1-65535)",
                ));
            }
            let mut dialogue = Vec::with_capacity(tcp.dialogue.len());
            for (i, step) in tcp.dialogue.into_iter().enumerate() {
                let at = field(&format!("tcp.dialogue[{i}]"));
                dialogue.push(match (step.send, step.expect, step.starttls) {
                    (Some(text), None, None) => TcpStep::Send(text),
                    (None, Some(p), None) => TcpStep::Expect(pattern(p, &format!("{at}.expect"))?),
                    (None, None, Some(true)) if !tcp.tls => TcpStep::StartTls,
                    (None, None, Some(true)) => {
                        return Err(ConfigError::new(
                            at,
                            "starttls on a connection that is TLS from the start",
                        ))
                    }
                    _ => {
                        return Err(ConfigError::new(
                            at,
                            "give exactly one of send, expect, starttls: true",
                        ))
                    }
                });
            }
            let url = format!("tcp://{}:{}", tcp.host, tcp.port);
            url::Url::parse(&url)
                .map_err(|e| ConfigError::new(field("tcp.host"), format!("{:?}: {e}", tcp.host)))?;
            Ok((
                CheckKind::Tcp(TcpCheck {
                    host: tcp.host,
                    port: tcp.port,
                    tls: tcp.tls,
                    dialogue,
                }),
                url,
            ))
        }
        KindEntries {
            steps: None,
            tcp: None,
            dns: Some(dns),
        } => {
            let record_type = match dns
                .record_type
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("ANY") => RecordType::Any,
                Some("A") => RecordType::A,
                Some("AAAA") => RecordType::Aaaa,
                Some(other) => {
                    return Err(ConfigError::new(
                        field("dns.record_type"),
                        format!(
                            "{other:?}: the function's resolver answers A and AAAA (or ANY, both)"
                        ),
                    ))
                }
            };
            let answers_in = dns
                .answers_in
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    super::parse_range(r)
                        .map_err(|e| ConfigError::new(field(&format!("dns.answers_in[{i}]")), e))
                })
                .collect::<Result<_, _>>()?;
            let url = format!("dns://{}", dns.name.trim_end_matches('.'));
            if url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .is_none()
            {
                return Err(ConfigError::new(
                    field("dns.name"),
                    format!("{:?} is not a host name", dns.name),
                ));
            }
            Ok((
                CheckKind::Dns(DnsCheck {
                    name: dns.name,
                    record_type,
                    answers_in,
                }),
                url,
            ))
        }
        _ => Err(ConfigError::new(
            at,
            "give exactly one of url, steps, tcp, dns",
        )),
    }
}

fn steps_kind(entries: Vec<StepEntry>, at: &str) -> Result<(CheckKind, String), ConfigError> {
    if !(1..=MAX_STEPS).contains(&entries.len()) {
        return Err(ConfigError::new(
            format!("{at}.steps"),
            format!("give 1 to {MAX_STEPS} steps"),
        ));
    }
    let mut extracted: BTreeSet<String> = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut steps = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("{at}.steps[{i}]");
        let field = |name: &str| format!("{at}.{name}");
        super::validate_dimension(&entry.name).map_err(|p| ConfigError::new(field("name"), p))?;
        if !names.insert(entry.name.clone()) {
            return Err(ConfigError::new(field("name"), "used by another step"));
        }
        // Every value used is one an earlier step extracts.
        let mut templates = vec![(field("url"), entry.url.as_str())];
        templates.extend(
            entry
                .headers
                .iter()
                .map(|(n, v)| (field(&format!("headers.{n}")), v.as_str())),
        );
        if let Some(body) = &entry.body {
            templates.push((field("body"), body));
        }
        for (place, template) in templates {
            if let Some(unknown) = referenced_names(template)
                .into_iter()
                .find(|n| !extracted.contains(*n))
            {
                return Err(ConfigError::new(
                    place,
                    format!("${{{unknown}}} is not extracted by an earlier step"),
                ));
            }
        }
        url_of_template(&entry.url).map_err(|e| ConfigError::new(field("url"), e))?;
        let method = super::http_method(entry.method, &field("method"))?;
        let mut headers = Vec::with_capacity(entry.headers.len());
        for (name, value) in entry.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    field(&format!("headers.{name}")),
                    "is not an HTTP header name",
                ));
            }
            headers.push((name, HeaderValue::Plain(value)));
        }
        let expect = expectations(
            ExpectationEntries {
                expected_status: entry.expected_status,
                body_must_match: entry.body_must_match,
                body_must_not_match: entry.body_must_not_match,
                header_checks: entry.header_checks,
                json_assertions: entry.json_assertions,
            },
            &at,
        )?;
        let mut extract = Vec::with_capacity(entry.extract.len());
        for (name, from) in entry.extract {
            let place = field(&format!("extract.{name}"));
            if !valid_name(&name) {
                return Err(ConfigError::new(
                    place,
                    "a value's name is letters, digits and _",
                ));
            }
            let from = match from {
                ExtractEntry::Json(path) => {
                    ExtractFrom::Json(serde_json_path::JsonPath::parse(&path).map_err(|e| {
                        ConfigError::new(&place, format!("{path:?} is not a JSONPath: {e}"))
                    })?)
                }
                ExtractEntry::Header(header) => ExtractFrom::Header(header.to_ascii_lowercase()),
            };
            extracted.insert(name.clone());
            extract.push(Extraction { name, from });
        }
        steps.push(HttpStep {
            name: entry.name,
            url: entry.url,
            method,
            headers,
            body: entry.body,
            expect,
            extract,
        });
    }
    let url = steps[0].url.clone();
    Ok((CheckKind::Steps(steps), url))
}
