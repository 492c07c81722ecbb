//! What a check does on each attempt besides one HTTP request: a sequence of
//! requests that carry values from one to the next, a TCP dialogue, or a
//! name lookup.

use super::{Expectations, FailureReason, HeaderValue, Pattern};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The most steps a multi-step check may have.
pub const MAX_STEPS: usize = 10;

/// What one attempt of a check does.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CheckKind {
    /// One HTTP(S) request: the check's `url`, `method`, `headers`, `body`,
    /// judged by its `expect`.
    #[default]
    Http,
    /// HTTP(S) requests in order; the first failing step fails the check.
    Steps(Vec<HttpStep>),
    Tcp(TcpCheck),
    Dns(DnsCheck),
}

/// One request of a multi-step check. Its `url`, header values and `body`
/// may name `${value}`s that earlier steps extracted.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpStep {
    pub name: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Option<String>,
    pub expect: Expectations,
    pub extract: Vec<Extraction>,
}

/// A value a step takes from its response for the steps after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub name: String,
    pub from: ExtractFrom,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExtractFrom {
    /// The first value a JSONPath selects in the body (a string as itself,
    /// anything else as its JSON text).
    Json(serde_json_path::JsonPath),
    /// A response header's value (name in lower case).
    Header(String),
}

/// Values extracted so far, by name. Never logged or reported: a step may
/// extract a session token.
pub type StepValues = BTreeMap<String, String>;

impl Extraction {
    /// The value from a response's body and headers.
    ///
    /// # Errors
    /// [`FailureReason::JsonMismatch`] or [`FailureReason::HeaderMismatch`]
    /// when the response has no such value.
    pub fn take(&self, body: &str, headers: &[(String, String)]) -> Result<String, FailureReason> {
        match &self.from {
            ExtractFrom::Json(path) => {
                let missing = || FailureReason::JsonMismatch {
                    path: path.to_string(),
                    expected: format!("a value to extract as {}", self.name),
                };
                let value: serde_json::Value = serde_json::from_str(body).map_err(|_| missing())?;
                let found = path.query(&value).first().cloned().ok_or_else(missing)?;
                Ok(match found {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                })
            }
            ExtractFrom::Header(name) => headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| FailureReason::HeaderMismatch {
                    header: name.clone(),
                    expected: format!("present, to extract as {}", self.name),
                    present: false,
                }),
        }
    }
}

/// Where `${name}` may be used: the names a template refers to.
pub fn referenced_names(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

/// `template` with each `${name}` replaced by `encode(value)`. Every name
/// was checked against earlier steps' extractions when the check was read.
pub fn substitute(template: &str, values: &StepValues, encode: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        match values.get(&after[..end]) {
            Some(value) => out.push_str(&encode(value)),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A TCP check: connect (over TLS if `tls`), then the dialogue in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub dialogue: Vec<TcpStep>,
}

/// One move of a TCP dialogue, as blackbox exporter's `query_response`.
#[derive(Debug, Clone, PartialEq)]
pub enum TcpStep {
    /// Write this text.
    Send(String),
    /// Read lines until one matches (within the attempt's timeout).
    Expect(Pattern),
    /// Start TLS on the connection (after, say, `STARTTLS` and its answer).
    StartTls,
}

/// How a report names a move: `send "EHLO x\r\n"`, `expect ^250 `, `starttls`.
impl std::fmt::Display for TcpStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcpStep::Send(text) => write!(f, "send {text:?}"),
            TcpStep::Expect(pattern) => write!(f, "expect {pattern}"),
            TcpStep::StartTls => f.write_str("starttls"),
        }
    }
}

/// Which addresses a DNS check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    /// A and AAAA.
    Any,
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Any => "A or AAAA",
        })
    }
}

/// A name lookup through the function's resolver: it must answer, with
/// addresses of the asked type, each within `answers_in` when given.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    pub name: String,
    pub record_type: RecordType,
    pub answers_in: Vec<IpNet>,
}

impl DnsCheck {
    /// Judges the addresses a lookup returned.
    ///
    /// # Errors
    /// [`FailureReason::Dns`] naming what is missing or out of range.
    pub fn verdict(&self, answers: &[IpAddr]) -> Result<(), FailureReason> {
        let wanted: Vec<&IpAddr> = answers
            .iter()
            .filter(|ip| match self.record_type {
                RecordType::A => ip.is_ipv4(),
                RecordType::Aaaa => ip.is_ipv6(),
                RecordType::Any => true,
            })
            .collect();
        if wanted.is_empty() {
            return Err(FailureReason::Dns {
                detail: format!("{} has no {} record", self.name, self.record_type),
            });
        }
        if self.answers_in.is_empty() {
            return Ok(());
        }
        match wanted
            .iter()
            .find(|ip| !self.answers_in.iter().any(|r| r.contains(**ip)))
        {
            Some(outside) => Err(FailureReason::Dns {
                detail: format!(
                    "{} answered {outside}, outside {}",
                    self.name,
                    self.answers_in
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_substituted_where_named_and_encoded_as_asked() {
        let values: StepValues = [("token".to_string(), "a b/c".to_string())].into();
        let upper = |v: &str| v.replace(' ', "%20").replace('/', "%2F");
        assert_eq!(
            substitute("https://x/orders/${token}?q=${token}", &values, upper),
            "https://x/orders/a%20b%2Fc?q=a%20b%2Fc"
        );
        assert_eq!(
            substitute("Bearer ${token}", &values, str::to_string),
            "Bearer a b/c"
        );
        assert_eq!(
            substitute("${other} and ${", &values, str::to_string),
            "${other} and ${"
        );
        assert_eq!(referenced_names("a ${x} b ${y}z ${"), ["x", "y"]);
    }

    #[test]
    fn values_are_extracted_from_json_or_headers() {
        let json = Extraction {
            name: "id".into(),
            from: ExtractFrom::Json(serde_json_path::JsonPath::parse("$.order.id").expect("path")),
        };
        assert_eq!(
            json.take(r#"{"order":{"id":42}}"#, &[]),
            Ok("42".to_string())
        );
        assert_eq!(
            json.take(r#"{"order":{"id":"x1"}}"#, &[]),
            Ok("x1".to_string())
        );
        assert_eq!(
            json.take("{}", &[]).map_err(|e| e.kind()),
            Err("json_mismatch")
        );
        let header = Extraction {
            name: "session".into(),
            from: ExtractFrom::Header("x-session".into()),
        };
        let headers = [("x-session".to_string(), "s1".to_string())];
        assert_eq!(header.take("", &headers), Ok("s1".to_string()));
        assert_eq!(
            header.take("", &[]).map_err(|e| e.kind()),
            Err("header_mismatch")
        );
    }

    #[test]
    fn a_lookup_must_answer_within_its_ranges() {
        let check = |record_type, ranges: &[&str]| DnsCheck {
            name: "db.internal".into(),
            record_type,
            answers_in: ranges.iter().map(|r| r.parse().expect("range")).collect(),
        };
        let v4: IpAddr = "10.1.2.3".parse().expect("ip");
        let v6: IpAddr = "fd00::1".parse().expect("ip");
        assert!(check(RecordType::A, &[]).verdict(&[v4]).is_ok());
        assert!(check(RecordType::Aaaa, &[]).verdict(&[v4]).is_err());
        assert!(check(RecordType::Any, &["10.0.0.0/8"])
            .verdict(&[v4])
            .is_ok());
        assert!(check(RecordType::Any, &["10.0.0.0/8"])
            .verdict(&[v4, v6])
            .is_err());
        assert!(check(RecordType::A, &["10.0.0.0/8"])
            .verdict(&[v4, v6])
            .is_ok());
        assert!(check(RecordType::A, &[]).verdict(&[]).is_err());
    }
}
