//! HTTP adapter: one check attempt with reqwest, measuring time to first byte,
//! total latency and the days left on the earliest-expiring certificate the
//! server presented.

use chrono::Utc;
use ecs_control::domain::probe::{FailureReason, HttpObservation, HttpResponse};
use ecs_control::domain::probe::{HttpCheck, IpPreference};
use ecs_control::ports::HttpChecks;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Redirects followed when a check follows them.
const MAX_REDIRECTS: usize = 10;

tokio::task_local! {
    /// Where the resolver notes how long a lookup of the current attempt took.
    /// The connection is opened within the attempt's task, so the lookup it
    /// makes sees this (connections are not pooled: each attempt opens one).
    static DNS_TIME: Arc<Mutex<Option<f64>>>;
}

/// Resolves names and orders (or filters) the addresses by family preference.
#[derive(Debug, Clone, Copy)]
struct FamilyResolver(IpPreference);

impl Resolve for FamilyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let preference = self.0;
        let timing = DNS_TIME.try_with(Arc::clone).ok();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let started = Instant::now();
            let looked_up = tokio::net::lookup_host((host.as_str(), 0)).await;
            if let Some(slot) = timing {
                *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(millis(started));
            }
            let mut addrs: Vec<SocketAddr> = looked_up?.collect();
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
    /// `scheme://host:port`: a client's certificate dates are its origin's,
    /// even where one host name serves different certificates on two ports.
    origin: String,
}

/// Per server name, the earliest `notAfter` (Unix seconds) among the
/// certificates it presented in its last handshake.
type Expiries = Arc<Mutex<HashMap<String, i64>>>;

/// Verifies as the platform verifier does, after noting when the served chain
/// first expires: reqwest shows only the leaf, and an intermediate may expire
/// first; a chain refused as expired still has its dates noted.
#[derive(Debug)]
struct ChainExpiry {
    inner: Arc<RootsOnFirstHandshake>,
    expiries: Expiries,
}

/// The platform verifier, made on the first TLS handshake that needs it:
/// reading the platform's trusted roots takes milliseconds and a few hundred
/// KiB, which a probe of plain-HTTP endpoints never needs.
#[derive(Debug)]
struct RootsOnFirstHandshake {
    extra_roots: Vec<CertificateDer<'static>>,
    verifier: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl RootsOnFirstHandshake {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.extra_roots.iter().cloned(),
                    Arc::new(rustls::crypto::ring::default_provider()),
                )
                .map_err(|e| format!("cannot load the trusted roots: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for ChainExpiry {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let earliest = std::iter::once(end_entity)
            .chain(intermediates)
            .filter_map(|der| {
                let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
                Some(cert.validity().not_after.timestamp())
            })
            .min();
        if let Some(earliest) = earliest {
            self.expiries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(server_name.to_str().into_owned(), earliest);
        }
        self.inner.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verifier()?
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verifier()?
            .verify_tls13_signature(message, cert, dss)
    }

    // What the provider verifies, as the platform verifier answers: asked for
    // every handshake's hello, before any root is needed.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_error(detail: String) -> FailureReason {
    FailureReason::Tls { detail }
}

/// The platform's roots (loaded on the first handshake), and a check's extra
/// CA (read now, so a bad file is reported as such): one per distinct CA.
fn verifier(extra_ca_pem: Option<&[u8]>) -> Result<Arc<RootsOnFirstHandshake>, FailureReason> {
    let extra_roots = match extra_ca_pem {
        Some(pem) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("ca_certificate_file is not PEM: {e}")))?,
        None => Vec::new(),
    };
    Ok(Arc::new(RootsOnFirstHandshake {
        extra_roots,
        verifier: std::sync::OnceLock::new(),
    }))
}

/// The TLS settings of a client, verified through [`ChainExpiry`].
fn tls_config(
    inner: Arc<RootsOnFirstHandshake>,
    expiries: Expiries,
) -> Result<rustls::ClientConfig, FailureReason> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainExpiry { inner, expiries }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// [`HttpChecks`] over reqwest, sharing connection pools between checks with the same settings.
#[derive(Debug, Default)]
pub struct HttpAdapter {
    clients: Mutex<HashMap<ClientKey, (reqwest::Client, Expiries)>>,
    verifiers: Mutex<HashMap<Option<Vec<u8>>, Arc<RootsOnFirstHandshake>>>,
}

impl HttpAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, check: &HttpCheck) -> Result<(reqwest::Client, Expiries), FailureReason> {
        let origin = reqwest::Url::parse(&check.url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let key = ClientKey {
            follow_redirects: check.follow_redirects,
            ip_preference: check.ip_preference,
            extra_ca_pem: check.extra_ca_pem.clone(),
            origin,
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let inner = {
            let mut verifiers = self
                .verifiers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match verifiers.get(&key.extra_ca_pem) {
                Some(found) => found.clone(),
                None => {
                    let made = verifier(key.extra_ca_pem.as_deref())?;
                    verifiers.insert(key.extra_ca_pem.clone(), made.clone());
                    made
                }
            }
        };
        let expiries = Expiries::default();
        let tls = tls_config(inner, expiries.clone())?;
        let client = reqwest::Client::builder()
            .redirect(if key.follow_redirects {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            })
            .dns_resolver(Arc::new(FamilyResolver(key.ip_preference)))
            .tls_backend_preconfigured(tls)
            .no_proxy()
            // A fresh connection for every attempt: each measurement includes
            // what a new visitor pays (DNS, connect, TLS), the same each run,
            // and no idle connection holds its buffers past its check.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("ecs-control-probe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FailureReason::Connection {
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        clients.insert(key, (client.clone(), expiries.clone()));
        Ok((client, expiries))
    }
}

/// Maps a transport error to what an operator needs to hear. The error's
/// text leaves out the URL, which may carry credentials.
fn failure(error: reqwest::Error) -> FailureReason {
    let error = &error.without_url();
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

/// Days left on the earliest-expiring certificate `host` presented (negative
/// once expired); `None` for plain HTTP.
fn certificate_days_remaining(expiries: &Expiries, url: &str) -> Option<f64> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.to_string();
    let expires = *expiries
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(host.trim_matches(['[', ']']))?;
    Some((expires - Utc::now().timestamp()) as f64 / 86_400.0)
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
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
            dns_ms: None,
        };
        let (client, expiries) = match self.client(check) {
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
        let dns_time = Arc::new(Mutex::new(None));
        let sent = DNS_TIME.scope(dns_time.clone(), request.send()).await;
        observation.dns_ms = *dns_time
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                observation.latency_ms = millis(started);
                observation.outcome = Err(failure(e));
                if matches!(observation.outcome, Err(FailureReason::TlsExpired { .. })) {
                    // Say how long ago: CertificateDaysRemaining goes to zero or below.
                    observation.certificate_days_remaining =
                        certificate_days_remaining(&expiries, &check.url).map(|d| d.min(0.0));
                }
                return observation;
            }
        };
        observation.time_to_first_byte_ms = Some(millis(started));
        // After redirects, the certificate is the final host's.
        observation.certificate_days_remaining =
            certificate_days_remaining(&expiries, response.url().as_str());
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
                    observation.outcome = Err(failure(e));
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
