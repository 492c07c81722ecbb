//! HTTP adapter: one check attempt with reqwest, measuring time to first byte,
//! total latency and the server certificate's remaining days.

use chrono::Utc;
use ecs_control::domain::probe::{FailureReason, HttpObservation, HttpResponse};
use ecs_control::domain::probe::{HttpCheck, IpPreference};
use ecs_control::ports::HttpChecks;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Redirects followed when a check follows them.
const MAX_REDIRECTS: usize = 10;

/// Resolves names and orders (or filters) the addresses by family preference.
#[derive(Debug, Clone, Copy)]
struct FamilyResolver(IpPreference);

impl Resolve for FamilyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let preference = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let mut addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let v4_first = matches!(
                preference,
                IpPreference::Ipv4Preferred | IpPreference::Ipv4Only
            );
            match preference {
                IpPreference::Ipv4Only => addrs.retain(SocketAddr::is_ipv4),
                IpPreference::Ipv6Only => addrs.retain(SocketAddr::is_ipv6),
                _ => {}
            }
            // Stable sort: the resolver's order within a family is kept.
            addrs.sort_by_key(|a| a.is_ipv4() != v4_first);
            if addrs.is_empty() {
                return Err(format!(
                    "{host} has no address of the allowed family ({preference:?})"
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Client settings that differ between checks; one client per distinct set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    follow_redirects: bool,
    ip_preference: IpPreference,
    extra_ca_pem: Option<Vec<u8>>,
    /// Only to read an expired certificate's dates: the check has failed already.
    read_expired_certificate: bool,
}

/// [`HttpChecks`] over reqwest, sharing connection pools between checks with the same settings.
#[derive(Debug, Default)]
pub struct HttpAdapter {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl HttpAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(
        &self,
        check: &HttpCheck,
        read_expired_certificate: bool,
    ) -> Result<reqwest::Client, FailureReason> {
        let key = ClientKey {
            follow_redirects: check.follow_redirects,
            ip_preference: check.ip_preference,
            extra_ca_pem: check.extra_ca_pem.clone(),
            read_expired_certificate,
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(if key.follow_redirects {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            })
            .dns_resolver(Arc::new(FamilyResolver(key.ip_preference)))
            .tls_info(true)
            .tls_danger_accept_invalid_certs(key.read_expired_certificate)
            .no_proxy()
            .user_agent(concat!("ecs-control-probe/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &key.extra_ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| FailureReason::Tls {
                    detail: format!("ca_certificate_file is not PEM: {e}"),
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| FailureReason::Connection {
            detail: format!("cannot build the HTTP client: {e}"),
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Maps a transport error to what an operator needs to hear.
fn failure(error: &reqwest::Error) -> FailureReason {
    if error.is_timeout() {
        return FailureReason::Timeout;
    }
    if error.is_redirect() {
        return FailureReason::TooManyRedirects;
    }
    let mut chain = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return FailureReason::ConnectionRefused {
                        detail: io.to_string(),
                    }
                }
                std::io::ErrorKind::TimedOut => return FailureReason::Timeout,
                _ => {}
            }
        }
        chain.push(e.to_string());
        source = e.source();
    }
    let detail = chain.join(": ");
    let lower = detail.to_ascii_lowercase();
    if lower.contains("expired") && (lower.contains("certificate") || lower.contains("tls")) {
        FailureReason::TlsExpired { detail }
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        FailureReason::Tls { detail }
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("no address") {
        FailureReason::Dns { detail }
    } else {
        FailureReason::Connection { detail }
    }
}

fn certificate_days_remaining(response: &reqwest::Response) -> Option<f64> {
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let expires = cert.validity().not_after.timestamp();
    Some((expires - Utc::now().timestamp()) as f64 / 86_400.0)
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl HttpAdapter {
    /// The days left (negative: since expiry) on a certificate the handshake
    /// refused as expired, read over a connection that does not verify it and
    /// sends nothing but a HEAD request.
    async fn expired_certificate_days(
        &self,
        check: &HttpCheck,
        timeout: std::time::Duration,
    ) -> Option<f64> {
        let client = self.client(check, true).ok()?;
        let response = client.head(&check.url).timeout(timeout).send().await.ok()?;
        certificate_days_remaining(&response).map(|days| days.min(0.0))
    }
}

impl HttpChecks for HttpAdapter {
    async fn attempt(
        &self,
        check: &HttpCheck,
        max_body_bytes: usize,
        timeout: std::time::Duration,
    ) -> HttpObservation {
        let started = Instant::now();
        let mut observation = HttpObservation {
            outcome: Err(FailureReason::Timeout),
            latency_ms: 0.0,
            time_to_first_byte_ms: None,
            certificate_days_remaining: None,
        };
        let client = match self.client(check, false) {
            Ok(client) => client,
            Err(reason) => {
                observation.outcome = Err(reason);
                return observation;
            }
        };
        let method =
            reqwest::Method::from_bytes(check.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = client.request(method, &check.url).timeout(timeout);
        for (name, value) in &check.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &check.body {
            request = request.body(body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                observation.latency_ms = millis(started);
                observation.outcome = Err(failure(&e));
                if matches!(observation.outcome, Err(FailureReason::TlsExpired { .. })) {
                    // Say how long ago: CertificateDaysRemaining goes to zero or below.
                    let left = timeout.saturating_sub(started.elapsed());
                    observation.certificate_days_remaining =
                        self.expired_certificate_days(check, left).await;
                }
                return observation;
            }
        };
        observation.time_to_first_byte_ms = Some(millis(started));
        observation.certificate_days_remaining = certificate_days_remaining(&response);
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        // Read no more than the limit: a huge body must not exhaust the Lambda's memory.
        let mut body = Vec::with_capacity(
            usize::try_from(response.content_length().unwrap_or(0))
                .unwrap_or(max_body_bytes)
                .min(max_body_bytes),
        );
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = max_body_bytes.saturating_sub(body.len());
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    observation.latency_ms = millis(started);
                    observation.outcome = Err(failure(&e));
                    return observation;
                }
            }
        }
        observation.latency_ms = millis(started);
        observation.outcome = Ok(HttpResponse {
            status,
            headers,
            // Valid UTF-8 (the usual case) becomes the string without a copy.
            body: String::from_utf8(body)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            body_truncated: truncated,
        });
        observation
    }
}
