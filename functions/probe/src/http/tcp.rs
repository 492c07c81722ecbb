//! A TCP attempt: connect to an address the guard admits (over TLS from the
//! start if asked), then the dialogue in order: send text, read lines until
//! one matches, or start TLS on the connection.

use super::connect::{self, io_failure, millis};
use super::{connection_error, server_name, tls, HttpAdapter, Notes, Resolve};
use ecs_control::domain::probe::kinds::{TcpCheck, TcpStep};
use ecs_control::domain::probe::{Answer, FailureReason, Pattern, Phases, ProbeCheck};
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use url::Url;

/// What one `expect` may read looking for its line.
const EXPECT_BYTES: u64 = 64 * 1024;

enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
}

impl Conn {
    async fn send(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Conn::Plain(stream) => {
                stream.write_all(text.as_bytes()).await?;
                stream.flush().await
            }
            Conn::Tls(stream) => {
                stream.write_all(text.as_bytes()).await?;
                stream.flush().await
            }
        }
    }

    /// The next line (at most `limit` bytes, cut there); empty at the end.
    async fn line(&mut self, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        match self {
            Conn::Plain(stream) => {
                (&mut *stream)
                    .take(limit)
                    .read_until(b'\n', &mut line)
                    .await?
            }
            Conn::Tls(stream) => {
                (&mut **stream)
                    .take(limit)
                    .read_until(b'\n', &mut line)
                    .await?
            }
        };
        Ok(line)
    }
}

/// Reads lines until one matches `pattern`.
async fn expect(conn: &mut Conn, pattern: &Pattern) -> Result<(), FailureReason> {
    let mut read = 0;
    while read < EXPECT_BYTES {
        let line = conn
            .line(EXPECT_BYTES - read)
            .await
            .map_err(|e| io_failure(&e))?;
        if line.is_empty() {
            return Err(connection_error(format!(
                "the server closed the connection before a line matching {pattern}"
            )));
        }
        read += line.len() as u64;
        if pattern.is_found_in(String::from_utf8_lossy(&line).trim_end()) {
            return Ok(());
        }
    }
    Err(connection_error(format!(
        "no line matching {pattern} in the first {} KiB",
        EXPECT_BYTES / 1024
    )))
}

pub(super) async fn run<R: Resolve>(
    adapter: &HttpAdapter<R>,
    check: &ProbeCheck,
    tcp: &TcpCheck,
    notes: &mut Notes,
) -> Result<Answer, FailureReason> {
    let url =
        Url::parse(&check.url).map_err(|e| connection_error(format!("invalid target: {e}")))?;
    let addrs = connect::addresses(
        &adapter.resolver,
        &url,
        check.ip_preference,
        &check.guard,
        &adapter.runtime_api,
        &mut notes.phases,
    )
    .await?;
    let stream = connect::connect(&addrs, &mut notes.phases).await?;
    let mut conn = if tcp.tls {
        Conn::Tls(Box::new(BufReader::new(
            start_tls(adapter, check, &url, stream, notes).await?,
        )))
    } else {
        Conn::Plain(BufReader::new(stream))
    };
    let opened = Instant::now();
    let mut first_read = true;
    for step in &tcp.dialogue {
        notes.begin_step(step.to_string());
        let moved = match step {
            TcpStep::Send(text) => conn.send(text).await.map_err(|e| io_failure(&e)),
            TcpStep::Expect(pattern) => expect(&mut conn, pattern).await.map(|()| {
                if std::mem::take(&mut first_read) {
                    Phases::add(&mut notes.phases.time_to_first_byte_ms, millis(opened));
                }
            }),
            TcpStep::StartTls => match conn {
                Conn::Tls(_) => Err(connection_error("STARTTLS on a connection already in TLS")),
                // Bytes read past the last expected line would be plaintext
                // injected ahead of the handshake.
                Conn::Plain(ref reader) if !reader.buffer().is_empty() => {
                    Err(connection_error("the server sent more before STARTTLS"))
                }
                Conn::Plain(reader) => {
                    match start_tls(adapter, check, &url, reader.into_inner(), notes).await {
                        Ok(stream) => {
                            conn = Conn::Tls(Box::new(BufReader::new(stream)));
                            Ok(())
                        }
                        Err(reason) => {
                            notes.end_step(None, Some(reason.clone()));
                            return Err(reason);
                        }
                    }
                }
            },
        };
        notes.end_step(None, moved.as_ref().err().cloned());
        moved?;
    }
    Ok(Answer::Passed { status: None })
}

async fn start_tls<R: Resolve>(
    adapter: &HttpAdapter<R>,
    check: &ProbeCheck,
    url: &Url,
    stream: TcpStream,
    notes: &mut Notes,
) -> Result<TlsStream<TcpStream>, FailureReason> {
    let config = adapter.tls.get(check.extra_ca_pem.as_deref())?;
    let started = Instant::now();
    let shaken = tls::handshake(config, server_name(url)?, stream, &mut notes.chain_expires).await;
    Phases::add(&mut notes.phases.tls_ms, millis(started));
    shaken
}
