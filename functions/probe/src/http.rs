//! HTTP adapter: one check attempt over connections of its own. The host is
//! resolved by our resolver and every address put to the check's guard
//! ([`connect`]); TLS is rustls, with the verified chain's expiry noted
//! ([`tls`]); the exchange is hyper's HTTP/1.1 client connection, one per
//! hop, driven within the attempt so that its timeout ends it. Each phase
//! (name lookup, connect, handshake, first byte, transfer) is timed.
//!
//! Memory per check in flight is bounded: hyper's buffer holds the response
//! head ([`HEAD_BYTES`]), and the body kept never grows past `max_body_bytes`
//! whatever its framing; what is past it is never read.

mod connect;
mod steps;
mod tcp;
mod tls;

pub use connect::{Resolve, SystemResolver};

use chrono::Utc;
use connect::millis;
use ecs_control::domain::probe::kinds::CheckKind;
use ecs_control::domain::probe::redirect::{follow, Hop, Next, MAX_REDIRECTS};
use ecs_control::domain::probe::{
    Answer, FailureReason, HttpObservation, HttpResponse, Phases, ProbeCheck, StepOutcome,
};
use ecs_control::ports::CheckAttempts;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use url::{Host, Position, Url};

/// The most a response's status line and headers may take, and so the most
/// hyper's read buffer grows to for them. Counted in the memory a check in
/// flight needs (`ProbeConfig::fits_in_memory`).
pub const HEAD_BYTES: usize = 16 * 1024;
/// What one read of the connection asks for: a health page's head fits.
const READ_BYTES: usize = 4 * 1024;
/// The most headers a response may have.
const MAX_HEADERS: usize = 100;
const USER_AGENT: &str = concat!("ecs-control-probe/", env!("CARGO_PKG_VERSION"));

/// [`CheckAttempts`] over a connection per hop.
#[derive(Debug)]
pub struct HttpAdapter<R = SystemResolver> {
    tls: tls::TlsConfigs,
    resolver: R,
    /// Where the Lambda runtime API listens: never a check's destination.
    runtime_api: Vec<SocketAddr>,
}

impl HttpAdapter {
    /// The adapter on the system's resolver, kept off the runtime API that
    /// `AWS_LAMBDA_RUNTIME_API` names.
    pub fn new() -> Self {
        Self::with_resolver(SystemResolver)
    }
}

impl Default for HttpAdapter {
    fn default() -> Self {
        Self::new()
    }
}

/// The addresses `AWS_LAMBDA_RUNTIME_API` stands for: `host:port` in
/// Lambda, a URL under some local runtimes.
fn runtime_api_from_env() -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return Vec::new();
    };
    let authority = api
        .split_once("://")
        .map_or(api.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    authority
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default()
}

impl<R: Resolve> HttpAdapter<R> {
    /// The adapter on another resolver (a test's, say).
    pub fn with_resolver(resolver: R) -> Self {
        Self {
            tls: tls::TlsConfigs::default(),
            resolver,
            runtime_api: runtime_api_from_env(),
        }
    }

    /// Keeps checks off `addrs` as off the runtime API (tests name their own).
    pub fn runtime_api(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.runtime_api = addrs;
        self
    }
}

/// What an attempt measured besides its outcome, kept when it times out.
#[derive(Debug, Default)]
struct Notes {
    phases: Phases,
    /// When the last TLS hop's verified chain first expires (Unix seconds).
    chain_expires: Option<i64>,
    /// The steps of a multi-step attempt (or a TCP dialogue's moves), as
    /// each ended.
    steps: Vec<StepOutcome>,
    /// The step under way and when it began: reported as timed out if the
    /// attempt's time runs out inside it.
    in_step: Option<(String, Instant)>,
}

impl Notes {
    fn begin_step(&mut self, name: String) {
        self.in_step = Some((name, Instant::now()));
    }

    /// Ends the step under way with its outcome.
    fn end_step(&mut self, status: Option<u16>, reason: Option<FailureReason>) {
        if let Some((name, started)) = self.in_step.take() {
            self.steps.push(StepOutcome {
                name,
                success: reason.is_none(),
                status,
                latency_ms: connect::millis(started),
                reason,
            });
        }
    }
}

/// How one hop ended.
enum HopEnd {
    Answered(HttpResponse),
    Redirected(Hop),
}

fn connection_error(detail: impl Into<String>) -> FailureReason {
    FailureReason::Connection {
        detail: detail.into(),
    }
}

/// A hyper error said as a reason: its I/O cause when it has one.
fn hyper_failure(error: &hyper::Error) -> FailureReason {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return connect::io_failure(io);
        }
        source = cause.source();
    }
    if error.is_incomplete_message() {
        return connection_error("the server closed the connection before the response ended");
    }
    if error.is_parse() {
        // Among them a head past HEAD_BYTES ("message head is too large").
        return connection_error(format!("invalid response: {error}"));
    }
    connection_error(error.to_string())
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

/// The hop's request. The check's own headers win over the defaults;
/// framing (`Content-Length`, `Transfer-Encoding`, `Connection`) is ours.
fn request(hop: &Hop) -> Result<http::Request<Full<Bytes>>, FailureReason> {
    let url = &hop.url;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let has = |name: &str| {
        hop.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut builder = http::Request::builder()
        .method(hop.method.as_str())
        .uri(&url[Position::BeforePath..Position::AfterQuery]);
    if !has("host") {
        builder = builder.header(http::header::HOST, host);
    }
    if !has("user-agent") {
        builder = builder.header(http::header::USER_AGENT, USER_AGENT);
    }
    if !has("accept") {
        builder = builder.header(http::header::ACCEPT, "*/*");
    }
    if !has("authorization") {
        if let Some(credentials) = basic_credentials(url) {
            builder = builder.header(http::header::AUTHORIZATION, credentials);
        }
    }
    for (name, value) in &hop.headers {
        let framing = ["content-length", "transfer-encoding", "connection"];
        if !framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            builder = builder.header(name.as_str(), value.expose());
        }
    }
    builder = builder.header(http::header::CONNECTION, "close");
    let body = hop.body.clone().unwrap_or_default();
    if hop.body.is_some() || matches!(hop.method.as_str(), "POST" | "PUT" | "PATCH") {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| connection_error(format!("invalid request: {e}")))
}

/// Appends `chunk` to `body` up to `limit` bytes, growing the buffer at most
/// to `limit` (a doubling `Vec` would reach twice it); whether any of `chunk`
/// was left out.
fn append_capped(body: &mut Vec<u8>, chunk: &[u8], limit: usize) -> bool {
    let room = limit.saturating_sub(body.len());
    let take = chunk.len().min(room);
    if body.capacity() - body.len() < take {
        let wanted = (body.len() + take).max(body.capacity() * 2).min(limit);
        body.reserve_exact(wanted - body.len());
    }
    body.extend_from_slice(&chunk[..take]);
    chunk.len() > room
}

/// Reads a body, keeping at most `limit` bytes; whether more was sent. Stops
/// reading at the first byte past the limit.
async fn read_capped<B>(mut body: B, limit: usize) -> Result<(Vec<u8>, bool), FailureReason>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    let expected = body
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    let mut kept = Vec::with_capacity(expected.unwrap_or(0).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| hyper_failure(&e))?;
        // Trailers say nothing a check asks about.
        if let Ok(data) = frame.into_data() {
            if append_capped(&mut kept, &data, limit) {
                return Ok((kept, true));
            }
        }
    }
    Ok((kept, false))
}

/// The name a TLS hop presents and verifies.
fn server_name(url: &Url) -> Result<ServerName<'static>, FailureReason> {
    match url.host() {
        Some(Host::Domain(name)) => {
            ServerName::try_from(name.to_string()).map_err(|e| FailureReason::Tls {
                detail: format!("{name} is not a TLS server name: {e}"),
            })
        }
        Some(Host::Ipv4(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
        Some(Host::Ipv6(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
        None => Err(connection_error("the URL has no host")),
    }
}

/// The request of `hop` over `stream`, with hyper driving the connection in
/// this task: the answer's head, then a redirect to follow or the body.
async fn exchange_on<S>(
    stream: S,
    hop: &Hop,
    check: &ProbeCheck,
    max_body_bytes: usize,
    phases: &mut Phases,
) -> Result<HopEnd, FailureReason>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = request(hop)?;
    // Reads of 4 KiB at a time (a body is taken a read at a time, up to its
    // limit), and a head of at most HEAD_BYTES.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BYTES))
        .max_header_size(HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_failure(&e))?;
    let exchange = async {
        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_failure(&e))?;
        Phases::add(&mut phases.time_to_first_byte_ms, millis(sent));
        let status = response.status().as_u16();
        if check.follow_redirects {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            if let Next::Follow(next) = follow(hop, status, location, &check.guard)? {
                return Ok(HopEnd::Redirected(next));
            }
        }
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let reading = Instant::now();
        let read = read_capped(response.into_body(), max_body_bytes).await;
        Phases::add(&mut phases.transfer_ms, millis(reading));
        let (body, body_truncated) = read?;
        Ok(HopEnd::Answered(HttpResponse {
            status,
            headers,
            // Valid UTF-8 (the usual case) becomes the string without a copy.
            body: String::from_utf8(body)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            body_truncated,
        }))
    };
    let mut connection = std::pin::pin!(connection);
    let mut exchange = std::pin::pin!(exchange);
    tokio::select! {
        biased;
        answer = &mut exchange => answer,
        // The connection ended (closed, or broke): the exchange has its answer
        // or the error, through hyper's channels.
        _ = &mut connection => exchange.await,
    }
}

impl<R: Resolve> HttpAdapter<R> {
    /// One hop on a new connection, to an address the guard admits.
    async fn hop(
        &self,
        hop: &Hop,
        check: &ProbeCheck,
        max_body_bytes: usize,
        notes: &mut Notes,
    ) -> Result<HopEnd, FailureReason> {
        notes.chain_expires = None;
        let addrs = connect::addresses(
            &self.resolver,
            &hop.url,
            check.ip_preference,
            &check.guard,
            &self.runtime_api,
            &mut notes.phases,
        )
        .await?;
        let tcp = connect::connect(&addrs, &mut notes.phases).await?;
        if hop.url.scheme() != "https" {
            return exchange_on(tcp, hop, check, max_body_bytes, &mut notes.phases).await;
        }
        let config = self.tls.get(check.extra_ca_pem.as_deref())?;
        let started = Instant::now();
        let shaken = tls::handshake(
            config,
            server_name(&hop.url)?,
            tcp,
            &mut notes.chain_expires,
        )
        .await;
        Phases::add(&mut notes.phases.tls_ms, millis(started));
        exchange_on(shaken?, hop, check, max_body_bytes, &mut notes.phases).await
    }

    /// One request: it, the redirects it leads to when followed (each
    /// judged by [`follow`] and the guard), and the final answer.
    async fn exchange(
        &self,
        mut hop: Hop,
        check: &ProbeCheck,
        max_body_bytes: usize,
        notes: &mut Notes,
    ) -> Result<HttpResponse, FailureReason> {
        let mut redirects = 0;
        loop {
            match self.hop(&hop, check, max_body_bytes, notes).await? {
                // The certificate is the final hop's (none for plain HTTP:
                // each hop starts with no chain noted).
                HopEnd::Answered(response) => return Ok(response),
                HopEnd::Redirected(_) if redirects == MAX_REDIRECTS => {
                    return Err(FailureReason::TooManyRedirects)
                }
                HopEnd::Redirected(next) => {
                    redirects += 1;
                    hop = next;
                }
            }
        }
    }
}

fn days_until(expires: i64) -> f64 {
    (expires - Utc::now().timestamp()) as f64 / 86_400.0
}

impl<R: Resolve> CheckAttempts for HttpAdapter<R> {
    async fn attempt(
        &self,
        check: &ProbeCheck,
        max_body_bytes: usize,
        timeout: std::time::Duration,
    ) -> HttpObservation {
        let started = Instant::now();
        let mut notes = Notes::default();
        let attempt = async {
            match &check.kind {
                CheckKind::Http => {
                    let url = Url::parse(&check.url)
                        .map_err(|e| connection_error(format!("invalid URL: {e}")))?;
                    let hop = Hop {
                        url,
                        method: check.method.clone(),
                        headers: check.headers.clone(),
                        body: check.body.clone(),
                    };
                    let response = self
                        .exchange(hop, check, max_body_bytes, &mut notes)
                        .await?;
                    Ok(Answer::Response(response))
                }
                CheckKind::Steps(steps) => {
                    steps::run(self, check, steps, max_body_bytes, &mut notes).await
                }
                CheckKind::Tcp(tcp) => tcp::run(self, check, tcp, &mut notes).await,
                CheckKind::Dns(dns) => {
                    let lookup = Instant::now();
                    let answers = self.resolver.lookup(&dns.name, 0).await;
                    Phases::add(&mut notes.phases.dns_ms, millis(lookup));
                    let answers = answers.map_err(|e| FailureReason::Dns {
                        detail: format!("{}: {e}", dns.name),
                    })?;
                    let ips: Vec<std::net::IpAddr> = answers.iter().map(SocketAddr::ip).collect();
                    dns.verdict(&ips)?;
                    Ok(Answer::Passed { status: None })
                }
            }
        };
        let exchanged = tokio::time::timeout(timeout, attempt).await;
        if exchanged.is_err() {
            notes.end_step(None, Some(FailureReason::Timeout));
        }
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
            // Kept when the body then fails: the phases reached are still news.
            phases: notes.phases,
            certificate_days_remaining,
            steps: notes.steps,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecs_control::domain::probe::HeaderValue;

    #[test]
    fn the_request_carries_url_credentials_and_our_framing() {
        let hop = Hop {
            url: Url::parse("http://probe:s%40cret@[::1]:8080/p?q=1#frag").expect("url"),
            method: "POST".into(),
            headers: vec![
                ("content-length".into(), HeaderValue::from("99")),
                ("X-A".into(), HeaderValue::from("b")),
            ],
            body: Some("hi".into()),
        };
        let post = request(&hop).expect("request");
        assert_eq!(post.method(), "POST");
        assert_eq!(post.uri(), "/p?q=1");
        let header = |name: &str| {
            post.headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().expect("text").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(header("host"), ["[::1]:8080"]);
        // "probe:s@cret", as the URL's percent-encoding means it.
        assert_eq!(header("authorization"), ["Basic cHJvYmU6c0BjcmV0"]);
        assert_eq!(header("x-a"), ["b"]);
        assert_eq!(header("content-length"), ["2"]);
        assert_eq!(header("connection"), ["close"]);
        let get = Hop {
            url: Url::parse("http://a.example/").expect("url"),
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
        };
        assert!(request(&get)
            .expect("request")
            .headers()
            .get("content-length")
            .is_none());
    }

    #[test]
    fn a_body_never_holds_more_than_its_limit() {
        let limit = 10_000;
        let mut body = Vec::new();
        let mut truncated = false;
        for _ in 0..100 {
            truncated = append_capped(&mut body, &[b'x'; 999], limit);
            if truncated {
                break;
            }
        }
        assert!(truncated);
        assert_eq!(body.len(), limit);
        assert!(body.capacity() <= limit, "capacity {}", body.capacity());
        let mut exact = Vec::new();
        assert!(!append_capped(&mut exact, &[b'x'; 10], 10));
        assert!(
            append_capped(&mut exact, b"y", 10),
            "a byte past the limit is a cut"
        );
        assert_eq!(exact.len(), 10);
    }
}
