//! How long one invocation takes for many checks, against the slowest check,
//! and how much memory it needs. Prints a table; asserts nothing.
//!
//! `cargo bench -p probe --bench fanout`. The endpoints run in this process on
//! loopback (each answers after its own delay), so the peak RSS includes the
//! test server. Delays: "mixed" spreads 10 to 200 ms; "100 ms, one 2 s" has
//! every endpoint answer in 100 ms but the first, which takes 2 s; "every 50th
//! 2 s" has four such endpoints among 200.

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

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

const SLOWEST_MS: u64 = 200;

/// How long endpoint `i` of a scenario takes to answer, in ms.
fn delay(scenario: &str, i: usize) -> u64 {
    match scenario {
        "100 ms, one 2 s" if i == 0 => 2_000,
        "every 50th 2 s" if i % 50 == 0 => 2_000,
        "100 ms, one 2 s" | "every 50th 2 s" => 100,
        _ => 10 + (i as u64 * 37) % (SLOWEST_MS - 9),
    }
}

#[tokio::main]
async fn main() {
    let app = Router::new().route(
        "/delay/{ms}",
        get(|Path(ms): Path<u64>| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!(
        "{:<17} {:>7} {:>12} {:>13} {:>14} {:>13} {:>15}",
        "delays",
        "checks",
        "concurrency",
        "slowest (ms)",
        "invocation ms",
        "per slowest",
        "peak RSS (MiB)"
    );
    for (scenario, checks, concurrency) in [
        ("mixed", 50, 32),
        ("mixed", 200, 32),
        ("mixed", 200, 128),
        ("mixed", 500, 128),
        ("mixed", 500, 256),
        ("100 ms, one 2 s", 200, 32),
        ("every 50th 2 s", 200, 32),
    ] {
        let list: Vec<serde_json::Value> = (0..checks)
            .map(|i| {
                let delay = delay(scenario, i);
                serde_json::json!({
                    "name": format!("endpoint-{i}"),
                    "url": format!("http://{addr}/delay/{delay}"),
                    "timeout_ms": 5000
                })
            })
            .collect();
        let config = serde_json::json!({"concurrency": concurrency, "checks": list});
        let prober = Prober::new(
            ProbeConfig::parse(&config.to_string()).unwrap_or_else(|e| panic!("{e}")),
            HttpAdapter::new(),
            Unused,
            Unused,
        );
        let started = Instant::now();
        let report = prober
            .handle(
                serde_json::json!({"command": "run", "publish": false}),
                Utc::now(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        let slowest = report
            .checks
            .iter()
            .map(|c| c.measured.latency_ms)
            .fold(0.0, f64::max);
        println!(
            "{:<17} {:>7} {:>12} {:>13.0} {:>14.0} {:>13.2} {:>15.1}",
            scenario,
            checks,
            concurrency,
            slowest,
            wall,
            wall / slowest,
            peak_rss_mib()
        );
        assert_eq!(report.failed_checks, 0, "every endpoint answers");
    }
}
