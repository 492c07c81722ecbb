//! The probe's HTTP adapter against raw loopback servers: a name that
//! rebinds between hops, bodies far larger than the limit in every framing,
//! and a head larger than the buffer that holds it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use ecs_control::config::probe::{parse_check, CheckSource};
use ecs_control::domain::address_guard::AddressGuard;
use ecs_control::domain::probe::{Answer, HttpResponse, ProbeCheck};
use ecs_control::ports::CheckAttempts;
use probe::http::{HttpAdapter, Resolve, HEAD_BYTES};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers each lookup with the next of its addresses (the last repeats).
#[derive(Debug)]
struct Rebinding(Mutex<Vec<SocketAddr>>);

impl Resolve for Rebinding {
    async fn lookup(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let mut answers = self.0.lock().unwrap();
        let next = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0]
        };
        Ok(vec![next])
    }
}

/// A server on `at` that reads each request's head, answers it with
/// `answer(path)` and closes; returns its address and the paths it served.
async fn raw_server(
    at: &str,
    answer: fn(&str) -> Vec<u8>,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split(' ').nth(1).unwrap_or_default().to_string();
                seen.lock().unwrap().push(path.clone());
                // The client may hang up once it has what it keeps.
                let _ = stream.write_all(&answer(&path)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, served)
}

fn check(url: &str) -> ProbeCheck {
    parse_check(
        json!({"name": "raw", "url": url}),
        "checks[0]",
        CheckSource::Configuration,
    )
    .expect("a check")
}

async fn answer(adapter: &impl CheckAttempts, check: &ProbeCheck, limit: usize) -> HttpResponse {
    match adapter
        .attempt(check, limit, Duration::from_secs(20))
        .await
        .outcome
    {
        Ok(Answer::Response(response)) => response,
        other => panic!("not a response: {other:?}"),
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;
const LIMIT: usize = 256 * 1024;

#[tokio::test]
async fn a_name_that_rebinds_between_hops_is_refused_on_the_hop_that_rebinds() {
    // 127.0.0.2 is the site the deployment allows; the name then resolves
    // to 127.0.0.1 for the redirect's hop.
    let (site, served) = raw_server("127.0.0.2:0", |path| match path {
        "/hop" => b"HTTP/1.1 302 Found\r\nLocation: /inside\r\nContent-Length: 0\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ninside".to_vec(),
    })
    .await;
    let inward: SocketAddr = ([127, 0, 0, 1], site.port()).into();
    let adapter = HttpAdapter::with_resolver(Rebinding(Mutex::new(vec![site, inward])));
    let mut rebinding = check(&format!("http://rebind.test:{}/hop", site.port()));
    rebinding.guard = AddressGuard::for_adhoc(
        &["rebind.test".to_string()],
        &["127.0.0.2/32".parse().unwrap()],
    );
    let observation = adapter
        .attempt(&rebinding, LIMIT, Duration::from_secs(5))
        .await;
    let reason = observation.outcome.expect_err("refused");
    assert_eq!(reason.kind(), "address_denied", "{reason}");
    assert!(reason.to_string().contains("127.0.0.1"), "{reason}");
    assert_eq!(*served.lock().unwrap(), ["/hop"]);
    // Both lookups were timed, as one phase.
    assert!(observation.phases.dns_ms.is_some());
}

#[tokio::test]
async fn bodies_of_ten_megabytes_hold_at_most_max_body_bytes_whatever_their_framing() {
    let (site, _) = raw_server("127.0.0.1:0", |path| {
        let body = vec![b'x'; TEN_MB];
        let mut wire = match path {
            "/close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec(),
            "/length" => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {TEN_MB}\r\n\r\n").into_bytes()
            }
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        };
        if path == "/chunked" {
            for chunk in body.chunks(64 * 1024) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(&body);
        }
        wire
    })
    .await;
    let adapter = HttpAdapter::new();
    for path in ["/close", "/length", "/chunked"] {
        let response = answer(&adapter, &check(&format!("http://{site}{path}")), LIMIT).await;
        assert_eq!(response.body.len(), LIMIT, "{path}");
        assert!(
            response.body.capacity() <= LIMIT,
            "{path}: {}",
            response.body.capacity()
        );
        assert!(response.body_truncated, "{path}");
    }
    // A body that ends at the limit exactly is whole.
    let (exact, _) = raw_server("127.0.0.1:0", |_| {
        let mut wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'y', LIMIT));
        wire
    })
    .await;
    let response = answer(&adapter, &check(&format!("http://{exact}/")), LIMIT).await;
    assert_eq!(
        (response.body.len(), response.body_truncated),
        (LIMIT, false)
    );
}

#[tokio::test]
async fn a_head_larger_than_its_buffer_is_a_failure_not_an_allocation() {
    let (site, _) = raw_server("127.0.0.1:0", |_| {
        let filler = "a".repeat(HEAD_BYTES);
        format!("HTTP/1.1 200 OK\r\nX-Filler: {filler}\r\nContent-Length: 0\r\n\r\n").into_bytes()
    })
    .await;
    let reason = HttpAdapter::new()
        .attempt(
            &check(&format!("http://{site}/")),
            LIMIT,
            Duration::from_secs(5),
        )
        .await
        .outcome
        .expect_err("too large");
    assert_eq!(reason.kind(), "connection", "{reason}");
    assert!(reason.to_string().contains("too large"), "{reason}");
}
