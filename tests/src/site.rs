//! A small web site on loopback for the probe's tests and demo: healthy, slow,
//! failing, wrong-body and redirecting pages, a log-in and the page it opens,
//! over HTTP and over HTTPS with a certificate from a test CA that expires in
//! 30 days; and a mail-server-like TCP dialogue with STARTTLS.

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Days the test certificate is valid for.
pub const CERTIFICATE_DAYS: i64 = 30;
/// Days until the intermediate CA in the HTTPS site's chain expires (before its leaf).
pub const INTERMEDIATE_DAYS: i64 = 20;
/// How long ago the expired site's certificate expired.
pub const EXPIRED_DAYS_AGO: i64 = 10;
/// How long `/slow` takes to answer.
pub const SLOW_MS: u64 = 1_500;
/// The token `POST /login` hands out, in its JSON body.
pub const LOGIN_TOKEN: &str = "t-7f3a9c";
/// The session `POST /login` hands out, in its `x-session` header.
pub const LOGIN_SESSION: &str = "s-42";
/// The order `POST /login` names; `GET /orders/{id}` opens only this one.
pub const LOGIN_ORDER: &str = "17";

/// The running site; its servers stop when the test's runtime ends.
#[derive(Debug)]
pub struct TestSite {
    pub http: String,
    pub https: String,
    /// HTTPS with a certificate (signed by the same CA) that expired 10 days ago.
    pub https_expired: String,
    /// HTTPS whose server also sends an expired cross-signed copy of its
    /// intermediate, which the verified path does not use (its leaf expires
    /// in 30 days, its intermediate in a year).
    pub https_cross_signed: String,
    /// PEM file of the CA that signed the HTTPS certificates.
    pub ca_file: PathBuf,
    /// A loopback port where nothing listens.
    pub closed_port: u16,
    /// A loopback port speaking a mail server's opening: a `220` greeting,
    /// `EHLO` answered with `250` lines that offer `STARTTLS`, then TLS (the
    /// HTTPS site's certificate, for `localhost`) and `EHLO` again.
    pub smtp_port: u16,
    handles: Vec<axum_server::Handle<SocketAddr>>,
    smtp: tokio::task::JoinHandle<()>,
}

impl Drop for TestSite {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.shutdown();
        }
        self.smtp.abort();
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn routes() -> Router {
    Router::new()
        .route(
            "/ok",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok","version":"7"}"#,
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
                "finally"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response() }),
        )
        .route(
            "/maintenance",
            get(|| async { "<h1>Down for maintenance</h1>" }),
        )
        .route("/moved", get(|| async { Redirect::to("/ok") }))
        .route("/loop", get(|| async { Redirect::to("/loop") }))
        .route("/big", get(|| async { "x".repeat(4 * 1024 * 1024) }))
        .route("/login", post(login))
        .route("/orders/{id}", get(order))
}

async fn login() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-session"), LOGIN_SESSION),
        ],
        format!(r#"{{"token":"{LOGIN_TOKEN}","order":{{"id":"{LOGIN_ORDER}"}}}}"#),
    )
}

/// The order page: only with the log-in's token and session.
async fn order(Path(id): Path<String>, headers: HeaderMap) -> axum::response::Response {
    let header_is =
        |name: &str, want: &str| headers.get(name).and_then(|v| v.to_str().ok()) == Some(want);
    if !header_is("authorization", &format!("Bearer {LOGIN_TOKEN}"))
        || !header_is("x-session", LOGIN_SESSION)
    {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    }
    if id != LOGIN_ORDER {
        return (StatusCode::NOT_FOUND, "no such order").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"id":"{id}","state":"shipped"}}"#),
    )
        .into_response()
}

/// Serves one mail-server-like dialogue; any unexpected line ends it.
async fn smtp_dialogue(
    stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut plain = BufReader::new(stream);
    plain.write_all(b"220 localhost ESMTP test\r\n").await?;
    let mut line = String::new();
    plain.read_line(&mut line).await?;
    if !line.starts_with("EHLO") {
        return plain.write_all(b"500 say EHLO\r\n").await;
    }
    plain
        .write_all(b"250-localhost\r\n250-SIZE 1000000\r\n250 STARTTLS\r\n")
        .await?;
    line.clear();
    plain.read_line(&mut line).await?;
    if line.trim_end() != "STARTTLS" {
        return plain.write_all(b"221 bye\r\n").await;
    }
    plain.write_all(b"220 ready for TLS\r\n").await?;
    let mut secure = BufReader::new(acceptor.accept(plain.into_inner()).await?);
    loop {
        line.clear();
        if secure.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let answer: &[u8] = if line.starts_with("EHLO") {
            b"250-localhost\r\n250 AUTH PLAIN\r\n"
        } else if line.starts_with("QUIT") {
            secure.write_all(b"221 bye\r\n").await?;
            return secure.flush().await;
        } else {
            b"500 unknown\r\n"
        };
        secure.write_all(answer).await?;
        secure.flush().await?;
    }
}

async fn bind(addr: SocketAddr) -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind(addr).expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let local = listener.local_addr().expect("local addr");
    (listener, local)
}

impl TestSite {
    /// Starts both servers on free loopback ports (within the current Tokio runtime).
    pub async fn start() -> Self {
        // Both ring and aws-lc-rs are linked in: say which one serves TLS here.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (plain, plain_addr) = bind(loopback).await;
        let (tls, tls_addr) = bind(loopback).await;
        let (expired_tls, expired_addr) = bind(loopback).await;
        let (cross_tls, cross_addr) = bind(loopback).await;
        let closed_port = std::net::TcpListener::bind(loopback)
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");

        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ecs-control test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let ymd = |t: chrono::DateTime<chrono::Utc>| {
            rcgen::date_time_ymd(
                t.format("%Y").to_string().parse().expect("year"),
                t.format("%m").to_string().parse().expect("month"),
                t.format("%d").to_string().parse().expect("day"),
            )
        };
        let days = |n: i64| ymd(chrono::Utc::now() + chrono::TimeDelta::days(n));
        // The served chain: a leaf, and an intermediate CA that expires first.
        let intermediate_key = rcgen::KeyPair::generate().expect("intermediate key");
        let mut intermediate_params =
            rcgen::CertificateParams::new(Vec::new()).expect("intermediate params");
        intermediate_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        intermediate_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ecs-control test intermediate");
        intermediate_params.not_after = days(INTERMEDIATE_DAYS);
        let intermediate = intermediate_params
            .clone()
            .signed_by(&intermediate_key, &issuer)
            .expect("intermediate");
        let intermediate_issuer = rcgen::Issuer::new(intermediate_params, intermediate_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.not_after = days(CERTIFICATE_DAYS);
        let cert = params.signed_by(&key, &intermediate_issuer).expect("cert");
        let expired_key = rcgen::KeyPair::generate().expect("key");
        let mut expired_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        expired_params.not_before = ymd(chrono::Utc::now() - chrono::TimeDelta::days(100));
        expired_params.not_after =
            ymd(chrono::Utc::now() - chrono::TimeDelta::days(EXPIRED_DAYS_AGO));
        let expired_cert = expired_params
            .signed_by(&expired_key, &issuer)
            .expect("expired cert");

        // Another intermediate, valid for a year, and a copy of it (same name,
        // same key) cross-signed by an untrusted old root and expired, sent
        // first, as servers kept sending such copies after an old root expired.
        let old_root_key = rcgen::KeyPair::generate().expect("old root key");
        let mut old_root_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        old_root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        old_root_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ecs-control retired root");
        let old_root = rcgen::Issuer::new(old_root_params, old_root_key);
        let current_key = rcgen::KeyPair::generate().expect("intermediate key");
        let mut current_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        current_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        current_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "ecs-control current intermediate",
        );
        current_params.not_after = days(365);
        let current = current_params
            .clone()
            .signed_by(&current_key, &issuer)
            .expect("current intermediate");
        let mut cross_params = current_params.clone();
        cross_params.not_before = ymd(chrono::Utc::now() - chrono::TimeDelta::days(400));
        cross_params.not_after =
            ymd(chrono::Utc::now() - chrono::TimeDelta::days(EXPIRED_DAYS_AGO));
        let cross_signed = cross_params
            .signed_by(&current_key, &old_root)
            .expect("cross-signed intermediate");
        let current_issuer = rcgen::Issuer::new(current_params, current_key);
        let cross_leaf_key = rcgen::KeyPair::generate().expect("key");
        let mut cross_leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        cross_leaf_params.not_after = days(CERTIFICATE_DAYS);
        let cross_leaf = cross_leaf_params
            .signed_by(&cross_leaf_key, &current_issuer)
            .expect("leaf");
        let cross_config = RustlsConfig::from_pem(
            format!(
                "{}{}{}",
                cross_leaf.pem(),
                cross_signed.pem(),
                current.pem()
            )
            .into_bytes(),
            cross_leaf_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("tls config");

        let ca_file = std::env::temp_dir().join(format!(
            "ecs-control-test-ca-{}-{}.pem",
            std::process::id(),
            tls_addr.port()
        ));
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
        let chain = format!("{}{}", cert.pem(), intermediate.pem());
        let tls_config =
            RustlsConfig::from_pem(chain.into_bytes(), key.serialize_pem().into_bytes())
                .await
                .expect("tls config");

        let expired_config = RustlsConfig::from_pem(
            expired_cert.pem().into_bytes(),
            expired_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("tls config");

        let plain_handle = axum_server::Handle::new();
        let tls_handle = axum_server::Handle::new();
        let expired_handle = axum_server::Handle::new();
        let cross_handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(plain)
            .expect("http server")
            .handle(plain_handle.clone());
        tokio::spawn(server.serve(routes().into_make_service()));
        let server = axum_server::from_tcp_rustls(tls, tls_config.clone())
            .expect("https server")
            .handle(tls_handle.clone());
        tokio::spawn(server.serve(routes().into_make_service()));
        let server = axum_server::from_tcp_rustls(expired_tls, expired_config)
            .expect("https server")
            .handle(expired_handle.clone());
        tokio::spawn(server.serve(routes().into_make_service()));
        let server = axum_server::from_tcp_rustls(cross_tls, cross_config)
            .expect("https server")
            .handle(cross_handle.clone());
        tokio::spawn(server.serve(routes().into_make_service()));
        let smtp_listener = tokio::net::TcpListener::bind(loopback)
            .await
            .expect("bind loopback");
        let smtp_port = smtp_listener.local_addr().expect("local addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config.get_inner());
        let smtp = tokio::spawn(async move {
            while let Ok((stream, _)) = smtp_listener.accept().await {
                tokio::spawn(smtp_dialogue(stream, acceptor.clone()));
            }
        });

        Self {
            http: format!("http://127.0.0.1:{}", plain_addr.port()),
            https: format!("https://localhost:{}", tls_addr.port()),
            https_expired: format!("https://localhost:{}", expired_addr.port()),
            https_cross_signed: format!("https://localhost:{}", cross_addr.port()),
            ca_file,
            closed_port,
            smtp_port,
            handles: vec![plain_handle, tls_handle, expired_handle, cross_handle],
            smtp,
        }
    }
}
