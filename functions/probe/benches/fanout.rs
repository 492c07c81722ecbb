//! How long one invocation takes for many checks, against the slowest check,
//! and how much memory it needs. Prints a table; asserts nothing.
//!
//! `cargo bench -p probe --bench fanout`. The endpoints run in a process of
//! their own (this bench, started again as the server), and each row runs in a
//! fresh process, so a row's peak RSS is the probe's alone and its own; each
//! row runs three times and the median run (by invocation time) is printed.
//! "invocation ms" is a fresh process's first run (the first HTTPS handshake
//! reads the system's roots); "warm ms" is the same checks run again, as the
//! next scheduled run of a warm function. `FANOUT_ROWS=https` runs only the
//! rows whose "delays scheme checks" contain the text.
//!
//! Delays: "mixed" spreads 10 to 200 ms; "100 ms, one 2 s" has every endpoint
//! answer in 100 ms but the first, which takes 2 s; "every 50th 2 s" has four
//! such among 200; "hold 1 s" keeps every check in flight for a second, and
//! its rows say what one check in flight costs: the RSS while all are in
//! flight, less the RSS before, per check. "256 KiB bodies" answers each
//! check with a body of the default `max_body_bytes`. "defaults" rows run the
//! shipped configuration as a 128 MB function would (the concurrency that
//! memory fits).

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use ecs_control::config::ProbeConfig;
use ecs_control::domain::probe::MetricDatum;
use ecs_control::domain::registration::{RegisteredTarget, Target};
use ecs_control::ports::{MetricsSink, PortError, TargetGroups};
use probe::handler::Prober;
use probe::http::HttpAdapter;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Never called: the runs below publish nothing and watch no target group.
struct Unused;

impl TargetGroups for Unused {
    async fn targets(&self, _: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        Ok(Vec::new())
    }
    async fn register(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        Ok(())
    }
    async fn deregister(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        Ok(())
    }
}

impl MetricsSink for Unused {
    async fn put(&self, _: &str, _: &[MetricDatum], _: DateTime<Utc>) -> Result<(), PortError> {
        Ok(())
    }
}

/// A `/proc/self/status` figure in MiB: `VmHWM` (peak) or `VmRSS` (now).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

const SLOWEST_MS: u64 = 200;
const BODY_BYTES: usize = 256 * 1024;

/// How long endpoint `i` of a scenario takes to answer, in ms.
fn delay(scenario: &str, i: usize) -> u64 {
    match scenario {
        "100 ms, one 2 s" if i == 0 => 2_000,
        "every 50th 2 s" if i % 50 == 0 => 2_000,
        "100 ms, one 2 s" | "every 50th 2 s" | "100 ms" => 100,
        "hold 1 s" => 1_000,
        "256 KiB bodies" => 100,
        _ => 10 + (i as u64 * 37) % (SLOWEST_MS - 9),
    }
}

/// The endpoints, over HTTP and HTTPS (a test CA's certificate for
/// localhost); prints `<http port> <https port> <CA file>` and serves until
/// its parent closes its stdin.
async fn serve() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = Router::new()
        .route(
            "/delay/{ms}",
            get(|Path(ms): Path<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "ok"
            }),
        )
        .route(
            "/body/{ms}",
            get(|Path(ms): Path<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "x".repeat(BODY_BYTES)
            }),
        );
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let plain_port = plain.local_addr().map(|a| a.port()).unwrap_or_default();
    let plain_app = app.clone();
    tokio::spawn(async move { axum::serve(plain, plain_app).await });

    let ca_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params
        .self_signed(&ca_key)
        .unwrap_or_else(|e| panic!("{e}"));
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .and_then(|p| p.signed_by(&key, &issuer))
        .unwrap_or_else(|e| panic!("{e}"));
    let ca_file = std::env::temp_dir().join(format!("fanout-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap_or_else(|e| panic!("{e}"));
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        leaf.pem().into_bytes(),
        key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let secure = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let secure_port = secure.local_addr().map(|a| a.port()).unwrap_or_default();
    let _ = secure.set_nonblocking(true);
    let server = axum_server::from_tcp_rustls(secure, tls).unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(server.serve(app.into_make_service()));

    println!("{plain_port} {secure_port} {}", ca_file.display());
    let _ = std::io::stdout().flush();
    // Serve until the parent goes.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    })
    .await;
    let _ = std::fs::remove_file(ca_file);
}

/// One unpublished run of every check, and how long it took (ms).
async fn timed_run(
    prober: &Prober<HttpAdapter, Unused, Unused>,
) -> (probe::handler::ProbeReport, f64) {
    let started = Instant::now();
    let report = prober
        .handle(
            serde_json::json!({"command": "run", "publish": false}),
            Utc::now(),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (report, started.elapsed().as_secs_f64() * 1000.0)
}

/// One row: a scenario's checks run by one invocation, in this process.
async fn row(spec: &str) {
    let fields: Vec<&str> = spec.split('|').collect();
    let [scenario, scheme, checks, concurrency, port, ca_file] = fields[..] else {
        panic!("bad row {spec}");
    };
    let checks: usize = checks.parse().unwrap_or_else(|e| panic!("{e}"));
    let host = if scheme == "https" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let path = if scenario == "256 KiB bodies" {
        "body"
    } else {
        "delay"
    };
    let list: Vec<serde_json::Value> = (0..checks)
        .map(|i| {
            let mut check = serde_json::json!({
                "name": format!("endpoint-{i}"),
                "url": format!("{scheme}://{host}:{port}/{path}/{}", delay(scenario, i)),
                "timeout_ms": 5000
            });
            if scheme == "https" {
                check["ca_certificate_file"] = ca_file.into();
            }
            check
        })
        .collect();
    let mut document = serde_json::json!({"checks": list});
    if concurrency != "defaults" {
        document["concurrency"] = concurrency
            .parse::<usize>()
            .unwrap_or_else(|e| panic!("{e}"))
            .into();
    }
    let mut config = ProbeConfig::parse(&document.to_string()).unwrap_or_else(|e| panic!("{e}"));
    if concurrency == "defaults" {
        // As a cold start at 128 MB does.
        config.concurrency = config.concurrency.min(config.concurrency_fitting(128));
    }
    let concurrency = config.concurrency;
    let prober = Prober::new(config, HttpAdapter::new(), Unused, Unused);
    let before = status_mib("VmRSS:");
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut most = 0.0_f64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(status_mib("VmRSS:"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };
    let (report, wall) = timed_run(&prober).await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let in_flight = sampler.await.unwrap_or(f64::NAN);
    let slowest = report
        .checks
        .iter()
        .map(|c| c.measured.latency_ms)
        .fold(0.0, f64::max);
    let per_check_kib = (in_flight - before) * 1024.0 / concurrency.min(checks) as f64;
    let peak = status_mib("VmHWM:");
    // The same checks again from the same process, as the next scheduled
    // run in a warm function: the roots and TLS settings are made already.
    let (again, warm) = timed_run(&prober).await;
    // For the parent, which prints the median of a row's runs.
    println!(
        "ROW\t{scenario}\t{scheme}\t{checks}\t{concurrency}\t{slowest}\t{wall}\t{peak}\t{per_check_kib}\t{}\t{warm}",
        report.failed_checks + again.failed_checks
    );
}

/// Runs one row `RUNS` times, each in a fresh process, and prints the run
/// whose invocation time is the median: a burst of hundreds of connections
/// on loopback now and then loses a SYN to the kernel's backlog, and a
/// retransmitted SYN costs a second that is the bench machine's, not the
/// probe's.
fn run_row(me: &std::path::Path, scenario: &str, scheme: &str, checks: usize, concurrency: &str) {
    const RUNS: usize = 3;
    let mut runs: Vec<Vec<String>> = Vec::new();
    for _ in 0..RUNS {
        // A server of its own: a run that reached the last one's port from
        // a client port still in that server's TIME_WAIT would wait a second
        // for its SYN to be sent again.
        let (mut server, http_port, https_port, ca_file) = start_server(me);
        let port = if scheme == "https" {
            https_port
        } else {
            http_port
        };
        let spec = format!("{scenario}|{scheme}|{checks}|{concurrency}|{port}|{ca_file}");
        let output = Command::new(me)
            .env("FANOUT_ROW", &spec)
            .stderr(Stdio::inherit())
            .output();
        let Ok(out) = output else {
            println!("{scenario} {scheme} {checks}: the row did not run ({output:?})");
            return;
        };
        drop(server.stdin.take());
        let _ = server.wait();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match text.lines().find_map(|l| l.strip_prefix("ROW\t")) {
            Some(row) => runs.push(row.split('\t').map(str::to_string).collect()),
            None => {
                println!(
                    "{scenario} {scheme} {checks}: the row failed ({})",
                    out.status
                );
                return;
            }
        }
    }
    let number = |run: &Vec<String>, i: usize| run[i].parse::<f64>().unwrap_or(f64::NAN);
    runs.sort_by(|a, b| number(a, 5).total_cmp(&number(b, 5)));
    let run = &runs[RUNS / 2];
    let (slowest, wall) = (number(run, 4), number(run, 5));
    println!(
        "{:<16} {:<6} {:>6} {:>11} {:>12.0} {:>13.0} {:>8.0} {:>11.2} {:>14.1} {:>15.1}  {}",
        run[0],
        run[1],
        run[2],
        run[3],
        slowest,
        wall,
        number(run, 9),
        wall / slowest,
        number(run, 6),
        number(run, 7),
        if run[8] == "0" {
            String::new()
        } else {
            format!("{} failed", run[8])
        }
    );
}

fn main() {
    if std::env::var_os("FANOUT_SERVE").is_some() {
        // The endpoints on every core, so that accepting is not what is measured.
        let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
        return runtime.block_on(serve());
    }
    if let Ok(spec) = std::env::var("FANOUT_ROW") {
        // The probe runs on one thread in Lambda; so does a row.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        return runtime.block_on(row(&spec));
    }
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{:<16} {:<6} {:>6} {:>11} {:>12} {:>13} {:>8} {:>11} {:>14} {:>15}",
        "delays",
        "scheme",
        "checks",
        "concurrency",
        "slowest (ms)",
        "invocation ms",
        "warm ms",
        "per slowest",
        "peak RSS (MiB)",
        "KiB/check held"
    );
    let rows = [
        ("mixed", "http", 50, "32"),
        ("mixed", "http", 200, "32"),
        ("mixed", "http", 200, "128"),
        ("mixed", "http", 500, "128"),
        ("mixed", "http", 500, "256"),
        ("100 ms, one 2 s", "http", 200, "32"),
        ("every 50th 2 s", "http", 200, "32"),
        ("100 ms", "http", 200, "defaults"),
        ("100 ms", "https", 200, "defaults"),
        ("100 ms", "https", 1000, "defaults"),
        ("hold 1 s", "http", 256, "256"),
        ("hold 1 s", "https", 256, "256"),
        ("256 KiB bodies", "http", 256, "defaults"),
    ];
    // `FANOUT_ROWS=https` runs only the rows whose "delays scheme checks" say so.
    let only = std::env::var("FANOUT_ROWS").unwrap_or_default();
    for (scenario, scheme, checks, concurrency) in rows {
        if format!("{scenario} {scheme} {checks}").contains(&only) {
            run_row(&me, scenario, scheme, checks, concurrency);
        }
    }
}

/// Starts the endpoints' process: it, its HTTP and HTTPS ports, its CA file.
fn start_server(me: &std::path::Path) -> (std::process::Child, String, String, String) {
    let mut server = Command::new(me)
        .env("FANOUT_SERVE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut line = String::new();
    if let Some(out) = server.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let [http_port, https_port, ca_file] = &parts[..] else {
        panic!("the server did not start: {line:?}");
    };
    (
        server,
        http_port.clone(),
        https_port.clone(),
        ca_file.clone(),
    )
}
