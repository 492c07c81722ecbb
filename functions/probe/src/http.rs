//! HTTP adapter: one check attempt over a connection of its own (HTTP/1.1 on
//! tokio, TLS by rustls, the response read by httparse), measuring the name
//! lookup, time to first byte, total latency and the days left on the
//! earliest-expiring certificate the server presented.
//!
//! A check needs one request and its answer, so this holds a few KiB per
//! check in flight, not the buffers and channels of a pooled client: the
//! default run has hundreds of checks in flight at once.

use chrono::Utc;
use ecs_control::domain::probe::{FailureReason, HttpObservation, HttpResponse};
use ecs_control::domain::probe::{HeaderValue, HttpCheck, IpPreference};
use ecs_control::ports::HttpChecks;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::{Host, Url};

/// Redirects followed when a check follows them.
const MAX_REDIRECTS: usize = 10;
/// The most a response's status line and headers may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers a response may have.
const MAX_HEADERS: usize = 100;
/// What one read asks for: a response head usually fits.
const READ_BYTES: usize = 4 * 1024;
const USER_AGENT: &str = concat!("ecs-control-probe/", env!("CARGO_PKG_VERSION"));

tokio::task_local! {
    /// Where the certificate verifier notes when the chain the server of the
    /// current handshake presented first expires (Unix seconds); the
    /// handshake runs within the attempt, so the verifier sees this.
    static CHAIN_EXPIRES: Arc<Mutex<Option<i64>>>;
}

/// Verifies as the platform verifier does, after noting when the served chain
/// first expires: an intermediate may expire before the leaf, and a chain
/// refused as expired still has its dates noted.
#[derive(Debug)]
struct ChainExpiry {
    inner: RootsOnFirstHandshake,
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
        let _ = CHAIN_EXPIRES.try_with(|slot| {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = earliest;
        });
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

/// The stream ended before the response did.
fn closed_early() -> FailureReason {
    connection_error("the server closed the connection before the response ended")
}

fn connection_error(detail: impl Into<String>) -> FailureReason {
    FailureReason::Connection {
        detail: detail.into(),
    }
}

/// The TLS settings for checks that trust the platform's roots and, if
/// given, a check's extra CA (read now, so a bad file is reported as such).
fn new_tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, FailureReason> {
    let extra_roots = match extra_ca_pem {
        Some(pem) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("ca_certificate_file is not PEM: {e}")))?,
        None => Vec::new(),
    };
    let verifier = ChainExpiry {
        inner: RootsOnFirstHandshake {
            extra_roots,
            verifier: std::sync::OnceLock::new(),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`HttpChecks`] over a connection per attempt; TLS settings are made once
/// (and once per distinct extra CA) and shared.
#[derive(Debug, Default)]
pub struct HttpAdapter {
    platform_roots: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    with_extra_ca: Mutex<HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>,
}

impl HttpAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn tls_config(
        &self,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<Arc<rustls::ClientConfig>, FailureReason> {
        let Some(pem) = extra_ca_pem else {
            if let Some(config) = self.platform_roots.get() {
                return Ok(config.clone());
            }
            let config = new_tls_config(None)?;
            return Ok(self.platform_roots.get_or_init(|| config).clone());
        };
        let mut configs = self
            .with_extra_ca
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Looked up by the bytes themselves: an attempt copies nothing.
        if let Some(config) = configs.get(pem) {
            return Ok(config.clone());
        }
        let config = new_tls_config(Some(pem))?;
        configs.insert(pem.to_vec(), config.clone());
        Ok(config)
    }
}

/// What an attempt measured besides its outcome, kept when it times out.
#[derive(Debug, Default)]
struct Notes {
    dns_ms: Option<f64>,
    time_to_first_byte_ms: Option<f64>,
    /// When the last TLS server's chain first expires (Unix seconds).
    chain_expires: Option<i64>,
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// One request of an attempt: the first, or one a redirect led to.
struct Request {
    url: Url,
    method: String,
    headers: Vec<(String, HeaderValue)>,
    body: Option<String>,
}

/// A response's status line and headers, as received.
struct Head {
    status: u16,
    /// Names in lower case, in the order received.
    headers: Vec<(String, String)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the body after a head ends (RFC 9112, section 6.3).
#[derive(Debug, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(method: &str, head: &Head) -> Result<Framing, FailureReason> {
    if method == "HEAD" || matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Framing::None);
    }
    if let Some(codings) = head.values("transfer-encoding").last() {
        let last = codings.rsplit(',').next().unwrap_or_default().trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in head.values("content-length").flat_map(|v| v.split(',')) {
        let parsed = value
            .trim()
            .parse::<u64>()
            .map_err(|_| connection_error(format!("invalid Content-Length {value:?}")))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(connection_error("conflicting Content-Length headers"));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Parses a complete head at the start of `bytes`, with how many bytes it took.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Head)>, FailureReason> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => Ok(Some((
            used,
            Head {
                status: response.code.unwrap_or_default(),
                headers: response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            },
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(connection_error(format!("invalid response: {e}"))),
    }
}

/// Reads more of the response into `buffer`; the end of the stream is an error.
async fn read_more(conn: &mut dyn Connection, buffer: &mut Vec<u8>) -> Result<(), FailureReason> {
    buffer.reserve(READ_BYTES);
    match conn.read_buf(buffer).await {
        Ok(0) => Err(closed_early()),
        Ok(_) => Ok(()),
        Err(e) => Err(io_failure(&e)),
    }
}

/// Reads the final head (informational 1xx answers are passed over); what was
/// read past it stays in `buffer`.
async fn read_head(conn: &mut dyn Connection, buffer: &mut Vec<u8>) -> Result<Head, FailureReason> {
    loop {
        match parse_head(buffer)? {
            Some((used, head)) => {
                buffer.drain(..used);
                if (100..=199).contains(&head.status) && head.status != 101 {
                    continue;
                }
                return Ok(head);
            }
            None if buffer.len() >= MAX_HEAD_BYTES => {
                return Err(connection_error(format!(
                    "the response's headers exceed {} KiB",
                    MAX_HEAD_BYTES / 1024
                )))
            }
            None => read_more(conn, buffer).await?,
        }
    }
}

/// Reads the body as `framing` says, keeping at most `limit` bytes; whether
/// more was sent.
async fn read_body(
    conn: &mut dyn Connection,
    mut buffer: Vec<u8>,
    framing: Framing,
    limit: usize,
) -> Result<(Vec<u8>, bool), FailureReason> {
    match framing {
        Framing::None => Ok((Vec::new(), false)),
        Framing::Length(length) => {
            let wanted = usize::try_from(length).map_or(limit, |l| l.min(limit));
            let mut body = buffer;
            body.truncate(wanted);
            body.reserve_exact(wanted - body.len());
            while body.len() < wanted {
                let left = (wanted - body.len()) as u64;
                match (&mut *conn).take(left).read_buf(&mut body).await {
                    Ok(0) => return Err(closed_early()),
                    Ok(_) => {}
                    Err(e) => return Err(io_failure(&e)),
                }
            }
            Ok((body, length > wanted as u64))
        }
        Framing::UntilClose => {
            let mut body = buffer;
            while body.len() <= limit {
                body.reserve(READ_BYTES);
                let left = (limit.saturating_add(1) - body.len()) as u64;
                match (&mut *conn).take(left).read_buf(&mut body).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(io_failure(&e)),
                }
            }
            let truncated = body.len() > limit;
            body.truncate(limit);
            Ok((body, truncated))
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                let size = loop {
                    match httparse::parse_chunk_size(&buffer) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buffer.drain(..used);
                            break size;
                        }
                        Ok(httparse::Status::Partial) if buffer.len() < READ_BYTES => {
                            read_more(conn, &mut buffer).await?;
                        }
                        _ => return Err(connection_error("invalid chunked body")),
                    }
                };
                if size == 0 {
                    return Ok((body, false));
                }
                let mut left = size;
                while left > 0 {
                    if buffer.is_empty() {
                        read_more(conn, &mut buffer).await?;
                    }
                    let here = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
                    let room = limit - body.len();
                    if here > room {
                        body.extend_from_slice(&buffer[..room]);
                        return Ok((body, true));
                    }
                    body.extend(buffer.drain(..here));
                    left -= here as u64;
                }
                while buffer.len() < 2 {
                    read_more(conn, &mut buffer).await?;
                }
                if &buffer[..2] != b"\r\n" {
                    return Err(connection_error("invalid chunked body"));
                }
                buffer.drain(..2);
            }
        }
    }
}

fn io_failure(error: &std::io::Error) -> FailureReason {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => FailureReason::ConnectionRefused {
            detail: error.to_string(),
        },
        std::io::ErrorKind::TimedOut => FailureReason::Timeout,
        _ => connection_error(error.to_string()),
    }
}

/// A failed handshake, said as the operator needs it: an expired chain apart.
fn handshake_failure(error: &std::io::Error) -> FailureReason {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return connection_error(format!("during the TLS handshake: {error}"));
    };
    let detail = tls.to_string();
    match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => FailureReason::TlsExpired { detail },
        _ if detail.to_ascii_lowercase().contains("expired") => {
            FailureReason::TlsExpired { detail }
        }
        _ => FailureReason::Tls { detail },
    }
}

/// Orders (or filters) looked-up addresses by family preference, keeping the
/// resolver's order within a family.
fn by_preference(
    mut addrs: Vec<SocketAddr>,
    preference: IpPreference,
) -> Result<Vec<SocketAddr>, String> {
    match preference {
        IpPreference::Ipv4Only => addrs.retain(SocketAddr::is_ipv4),
        IpPreference::Ipv6Only => addrs.retain(SocketAddr::is_ipv6),
        _ => {}
    }
    let v4_first = matches!(
        preference,
        IpPreference::Ipv4Preferred | IpPreference::Ipv4Only
    );
    addrs.sort_by_key(|a| a.is_ipv4() != v4_first);
    if addrs.is_empty() {
        return Err(format!("no address of the allowed family ({preference:?})"));
    }
    Ok(addrs)
}

/// Opens a TCP connection to the URL's host, looking the name up (timed) if
/// it is not an address; addresses are tried in order.
async fn connect(
    url: &Url,
    preference: IpPreference,
    notes: &mut Notes,
) -> Result<TcpStream, FailureReason> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| connection_error("the URL has no port"))?;
    let addrs = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Domain(name)) => {
            let started = Instant::now();
            let looked_up = tokio::net::lookup_host((name, port)).await;
            notes.dns_ms = Some(millis(started));
            let addrs = looked_up.map_err(|e| FailureReason::Dns {
                detail: format!("{name}: {e}"),
            })?;
            by_preference(addrs.collect(), preference).map_err(|e| FailureReason::Dns {
                detail: format!("{name} has {e}"),
            })?
        }
        None => return Err(connection_error("the URL has no host")),
    };
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or_else(
        || connection_error("no address to connect to"),
        |e| io_failure(&e),
    ))
}

/// The request's bytes: its line, headers and body. The check's own headers
/// win over the defaults; framing (`Content-Length`, `Connection`) is ours.
fn request_bytes(request: &Request) -> Vec<u8> {
    let url = &request.url;
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", request.method);
    let mut add = |name: &str, value: &str| {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    };
    if !has("host") {
        add("Host", &host);
    }
    if !has("user-agent") {
        add("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        add("Accept", "*/*");
    }
    if !has("authorization") {
        if let Some(credentials) = basic_credentials(url) {
            add("Authorization", &credentials);
        }
    }
    for (name, value) in &request.headers {
        let framing = ["content-length", "transfer-encoding", "connection"];
        if !framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            add(name, value.expose());
        }
    }
    add("Connection", "close");
    match &request.body {
        Some(body) => add("Content-Length", &body.len().to_string()),
        None if matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") => {
            add("Content-Length", "0");
        }
        None => {}
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = &request.body {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

/// `Basic` credentials from the URL's user and password, as browsers send them.
fn basic_credentials(url: &Url) -> Option<String> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or_default())
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Where a redirect answer leads, if it is one and names a place to go.
fn redirect_target(url: &Url, head: &Head) -> Option<Url> {
    if !matches!(head.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = head.values("location").next()?;
    let next = url.join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// The request a redirect leads to (RFC 9110, section 15.4): 303, and 301 or
/// 302 after a POST, become a GET without a body; credentials do not go to
/// another origin.
fn follow(request: Request, status: u16, next: Url) -> Request {
    let becomes_get = match status {
        303 => request.method != "HEAD",
        301 | 302 => request.method == "POST",
        _ => false,
    };
    let same_origin = next.origin() == request.url.origin();
    let sensitive = ["authorization", "cookie", "proxy-authorization"];
    let headers = request
        .headers
        .into_iter()
        .filter(|(name, _)| same_origin || !sensitive.iter().any(|s| name.eq_ignore_ascii_case(s)))
        .collect();
    Request {
        url: next,
        method: if becomes_get {
            "GET".to_string()
        } else {
            request.method
        },
        headers,
        body: if becomes_get { None } else { request.body },
    }
}

impl HttpAdapter {
    /// Sends `request` on a new connection and reads the answer's head.
    async fn send(
        &self,
        request: &Request,
        check: &HttpCheck,
        notes: &mut Notes,
    ) -> Result<(Box<dyn Connection>, Head, Vec<u8>), FailureReason> {
        notes.chain_expires = None;
        let tcp = connect(&request.url, check.ip_preference, notes).await?;
        let mut conn: Box<dyn Connection> = if request.url.scheme() == "https" {
            let config = self.tls_config(check.extra_ca_pem.as_deref())?;
            let server_name = match request.url.host() {
                Some(Host::Domain(name)) => ServerName::try_from(name.to_string())
                    .map_err(|e| tls_error(format!("{name} is not a TLS server name: {e}")))?,
                Some(Host::Ipv4(ip)) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
                Some(Host::Ipv6(ip)) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
                None => return Err(connection_error("the URL has no host")),
            };
            let expires = Arc::new(Mutex::new(None));
            let handshake = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp);
            let shaken = CHAIN_EXPIRES.scope(expires.clone(), handshake).await;
            notes.chain_expires = *expires
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Box::new(shaken.map_err(|e| handshake_failure(&e))?)
        } else {
            Box::new(tcp)
        };
        let sent = conn.write_all(&request_bytes(request)).await;
        if let Err(e) = sent.and(conn.flush().await) {
            return Err(io_failure(&e));
        }
        let mut buffer = Vec::with_capacity(READ_BYTES);
        let head = read_head(conn.as_mut(), &mut buffer).await?;
        Ok((conn, head, buffer))
    }

    /// One attempt: the request, the redirects it leads to when followed, and
    /// the final answer's body up to `max_body_bytes`.
    async fn exchange(
        &self,
        check: &HttpCheck,
        max_body_bytes: usize,
        started: Instant,
        notes: &mut Notes,
    ) -> Result<HttpResponse, FailureReason> {
        let url =
            Url::parse(&check.url).map_err(|e| connection_error(format!("invalid URL: {e}")))?;
        let mut request = Request {
            url,
            method: check.method.clone(),
            headers: check.headers.clone(),
            body: check.body.clone(),
        };
        let mut redirects = 0;
        loop {
            let (mut conn, head, buffer) = self.send(&request, check, notes).await?;
            if check.follow_redirects {
                if let Some(next) = redirect_target(&request.url, &head) {
                    if redirects == MAX_REDIRECTS {
                        return Err(FailureReason::TooManyRedirects);
                    }
                    redirects += 1;
                    request = follow(request, head.status, next);
                    continue;
                }
            }
            // After redirects, the certificate is the final host's (none for
            // plain HTTP: each request starts with no chain noted).
            notes.time_to_first_byte_ms = Some(millis(started));
            let framing = framing(&request.method, &head)?;
            let (body, truncated) =
                read_body(conn.as_mut(), buffer, framing, max_body_bytes).await?;
            return Ok(HttpResponse {
                status: head.status,
                headers: head.headers,
                // Valid UTF-8 (the usual case) becomes the string without a copy.
                body: String::from_utf8(body)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                body_truncated: truncated,
            });
        }
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn days_until(expires: i64) -> f64 {
    (expires - Utc::now().timestamp()) as f64 / 86_400.0
}

impl HttpChecks for HttpAdapter {
    async fn attempt(
        &self,
        check: &HttpCheck,
        max_body_bytes: usize,
        timeout: std::time::Duration,
    ) -> HttpObservation {
        let started = Instant::now();
        let mut notes = Notes::default();
        let exchanged = tokio::time::timeout(
            timeout,
            self.exchange(check, max_body_bytes, started, &mut notes),
        )
        .await;
        let outcome = exchanged.unwrap_or(Err(FailureReason::Timeout));
        let mut certificate_days_remaining = notes.chain_expires.map(days_until);
        if matches!(outcome, Err(FailureReason::TlsExpired { .. })) {
            // Say how long ago: CertificateDaysRemaining goes to zero or below.
            certificate_days_remaining = certificate_days_remaining.map(|d| d.min(0.0));
        } else if outcome.is_err() {
            certificate_days_remaining = None;
        }
        HttpObservation {
            latency_ms: millis(started),
            // Kept when the body then fails: the head's arrival is still news.
            time_to_first_byte_ms: notes.time_to_first_byte_ms,
            certificate_days_remaining,
            dns_ms: notes.dns_ms,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> Head {
        Head {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "GET",
                head(200, &[("content-length", "12")]),
                Framing::Length(12),
            ),
            (
                "HEAD",
                head(200, &[("content-length", "12")]),
                Framing::None,
            ),
            ("GET", head(204, &[]), Framing::None),
            ("GET", head(304, &[("content-length", "5")]), Framing::None),
            (
                "GET",
                head(
                    200,
                    &[
                        ("transfer-encoding", "gzip, chunked"),
                        ("content-length", "3"),
                    ],
                ),
                Framing::Chunked,
            ),
            (
                "GET",
                head(200, &[("transfer-encoding", "gzip")]),
                Framing::UntilClose,
            ),
            ("GET", head(200, &[]), Framing::UntilClose),
            (
                "GET",
                head(200, &[("content-length", "7, 7")]),
                Framing::Length(7),
            ),
        ];
        for (method, head, expected) in cases {
            assert_eq!(framing(method, &head).ok(), Some(expected));
        }
        assert!(framing("GET", &head(200, &[("content-length", "7, 8")])).is_err());
        assert!(framing("GET", &head(200, &[("content-length", "-1")])).is_err());
    }

    #[test]
    fn redirects_change_method_and_keep_credentials_at_home() {
        let url = Url::parse("https://a.example/form").expect("url");
        let request = || Request {
            url: url.clone(),
            method: "POST".into(),
            headers: vec![
                ("Authorization".into(), "Bearer x".into()),
                ("X-Id".into(), "1".into()),
            ],
            body: Some("data".into()),
        };
        let same = url.join("/next").expect("url");
        let kept = follow(request(), 307, same.clone());
        assert_eq!(
            (kept.method.as_str(), kept.body.as_deref()),
            ("POST", Some("data"))
        );
        assert_eq!(kept.headers.len(), 2);
        let got = follow(request(), 302, same);
        assert_eq!((got.method.as_str(), got.body), ("GET", None));
        let away = follow(
            request(),
            308,
            Url::parse("https://b.example/").expect("url"),
        );
        assert_eq!(
            away.headers,
            vec![("X-Id".to_string(), HeaderValue::from("1"))]
        );
        assert_eq!(away.method, "POST");
    }

    #[test]
    fn a_redirect_needs_a_location_to_an_http_url() {
        let url = Url::parse("http://a.example/x/y").expect("url");
        let to = |status, location: &str| {
            redirect_target(&url, &head(status, &[("location", location)])).map(String::from)
        };
        assert_eq!(to(301, "z").as_deref(), Some("http://a.example/x/z"));
        assert_eq!(
            to(308, "https://b.example/").as_deref(),
            Some("https://b.example/")
        );
        assert_eq!(to(302, "ftp://b.example/"), None);
        assert_eq!(to(200, "/z"), None);
        assert_eq!(redirect_target(&url, &head(302, &[])), None);
    }

    #[test]
    fn the_request_carries_url_credentials_and_our_framing() {
        let request = Request {
            url: Url::parse("http://probe:s%40cret@[::1]:8080/p?q=1#frag").expect("url"),
            method: "POST".into(),
            headers: vec![
                ("content-length".into(), "99".into()),
                ("X-A".into(), "b".into()),
            ],
            body: Some("hi".into()),
        };
        let text = String::from_utf8(request_bytes(&request)).expect("utf-8");
        assert!(
            text.starts_with("POST /p?q=1 HTTP/1.1\r\nHost: [::1]:8080\r\n"),
            "{text}"
        );
        // "probe:s@cret", as the URL's percent-encoding means it.
        assert!(
            text.contains("Authorization: Basic cHJvYmU6c0BjcmV0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("X-A: b\r\n") && !text.contains("99"),
            "{text}"
        );
        assert!(
            text.ends_with("Connection: close\r\nContent-Length: 2\r\n\r\nhi"),
            "{text}"
        );
    }

    #[test]
    fn addresses_follow_the_family_preference() {
        let v4: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let v6: SocketAddr = "[fd00::1]:80".parse().expect("addr");
        let both = vec![v6, v4];
        assert_eq!(
            by_preference(both.clone(), IpPreference::Ipv4Preferred),
            Ok(vec![v4, v6])
        );
        assert_eq!(
            by_preference(both.clone(), IpPreference::Ipv6Preferred),
            Ok(vec![v6, v4])
        );
        assert_eq!(by_preference(both, IpPreference::Ipv4Only), Ok(vec![v4]));
        assert!(by_preference(vec![v4], IpPreference::Ipv6Only).is_err());
    }

    /// Bodies read from `wire` (what follows the head) as `framing` says.
    async fn body_of(
        wire: &[u8],
        framing: Framing,
        limit: usize,
    ) -> Result<(Vec<u8>, bool), FailureReason> {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        let wire = wire.to_vec();
        let writer = tokio::spawn(async move {
            // In pieces, as a network delivers them.
            for piece in wire.chunks(5) {
                if theirs.write_all(piece).await.is_err() {
                    break;
                }
            }
        });
        let read = read_body(&mut ours, Vec::new(), framing, limit).await;
        drop(ours);
        let _ = writer.await;
        read
    }

    #[tokio::test]
    async fn bodies_are_read_by_their_framing_and_cut_at_the_limit() {
        let chunked = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n";
        let read = body_of(chunked, Framing::Chunked, 100).await.expect("body");
        assert_eq!(read, (b"Wikipedia ".to_vec(), false));
        let cut = body_of(chunked, Framing::Chunked, 6).await.expect("body");
        assert_eq!(cut, (b"Wikipe".to_vec(), true));
        let exact = body_of(chunked, Framing::Chunked, 10).await.expect("body");
        assert_eq!(exact, (b"Wikipedia ".to_vec(), false));
        assert!(body_of(b"4\r\nWikiXX", Framing::Chunked, 100)
            .await
            .is_err());

        let read = body_of(b"hello world", Framing::Length(5), 100)
            .await
            .expect("body");
        assert_eq!(read, (b"hello".to_vec(), false));
        let cut = body_of(b"hello world", Framing::Length(11), 4)
            .await
            .expect("body");
        assert_eq!(cut, (b"hell".to_vec(), true));
        assert!(body_of(b"short", Framing::Length(50), 100).await.is_err());

        let read = body_of(b"until the end", Framing::UntilClose, 100)
            .await
            .expect("body");
        assert_eq!(read, (b"until the end".to_vec(), false));
        let cut = body_of(b"until the end", Framing::UntilClose, 5)
            .await
            .expect("body");
        assert_eq!(cut, (b"until".to_vec(), true));
        let exact = body_of(b"until", Framing::UntilClose, 5)
            .await
            .expect("body");
        assert_eq!(exact, (b"until".to_vec(), false));
    }

    #[test]
    fn a_head_is_parsed_whole_or_not_at_all() {
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"),
            Ok(None)
        ));
        let (used, head) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody")
            .expect("valid")
            .expect("complete");
        assert_eq!(used, 45);
        assert_eq!(head.status, 200);
        assert_eq!(
            head.headers,
            vec![("content-type".to_string(), "text/plain".to_string())]
        );
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }
}
