//! The probe's handler against fakes of its ports, fed by the samples in `events/`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeZone, Utc};
use ecs_control::config::ProbeConfig;
use ecs_control::domain::probe::ProbeCheck;
use ecs_control::domain::probe::{
    Answer, FailureReason, HttpObservation, HttpResponse, MetricDatum, Phases,
};
use ecs_control::domain::registration::{HealthState, RegisteredTarget, Target};
use ecs_control::ports::{CheckAttempts, FailureKind, MetricsSink, PortError, TargetGroups};
use ecs_control::testing::{assert_clear_refusal, changed};
use lambda_runtime::Diagnostic;
use probe::handler::Prober;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const CONFIG: &str = include_str!("../../../infra/probe-config.json");

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/probe/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 5, 0)
        .single()
        .unwrap_or_default()
}

fn ok(body: &str, content_type: &str) -> HttpObservation {
    HttpObservation {
        outcome: Ok(Answer::Response(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            body_truncated: false,
        })),
        steps: Vec::new(),
        latency_ms: 42.0,
        phases: Phases {
            dns_ms: Some(3.5),
            connect_ms: Some(1.5),
            tls_ms: Some(4.0),
            time_to_first_byte_ms: Some(30.0),
            transfer_ms: Some(2.0),
        },
        certificate_days_remaining: Some(61.5),
    }
}

fn failed(reason: FailureReason) -> HttpObservation {
    HttpObservation {
        outcome: Err(reason),
        steps: Vec::new(),
        latency_ms: 2000.0,
        phases: Phases::default(),
        certificate_days_remaining: None,
    }
}

/// Scripted answers per check name (consumed in order; the last one repeats),
/// and how long each check's server takes to answer.
#[derive(Default)]
struct FakeHttp {
    answers: Mutex<HashMap<String, Vec<HttpObservation>>>,
    delays: Mutex<HashMap<String, Duration>>,
    attempts: Mutex<HashMap<String, u32>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeHttp {
    fn answer(&self, check: &str, observations: Vec<HttpObservation>) {
        self.answers
            .lock()
            .unwrap()
            .insert(check.to_string(), observations);
    }

    fn slow(&self, check: &str, delay: Duration) {
        self.delays.lock().unwrap().insert(check.to_string(), delay);
    }

    fn attempts(&self, check: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(check)
            .copied()
            .unwrap_or_default()
    }
}

impl CheckAttempts for FakeHttp {
    async fn attempt(&self, check: &ProbeCheck, _max: usize, timeout: Duration) -> HttpObservation {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = self
            .delays
            .lock()
            .unwrap()
            .get(&check.name)
            .copied()
            .unwrap_or(Duration::from_millis(10));
        // A server slower than the attempt's timeout is a timeout.
        tokio::time::sleep(delay.min(timeout)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if delay > timeout {
            return failed(FailureReason::Timeout);
        }
        *self
            .attempts
            .lock()
            .unwrap()
            .entry(check.name.clone())
            .or_default() += 1;
        let mut answers = self.answers.lock().unwrap();
        let list = answers.entry(check.name.clone()).or_default();
        match list.len() {
            0 => ok("{\"status\":\"ok\"}", "application/json"),
            1 => list[0].clone(),
            _ => list.remove(0),
        }
    }
}

#[derive(Default)]
struct FakeElb {
    missing: bool,
    /// How long a read takes (none unless set).
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl TargetGroups for FakeElb {
    async fn targets(&self, arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.missing {
            return Err(PortError::new(
                FailureKind::NotFound,
                "elasticloadbalancing:DescribeTargetHealth",
                format!("TargetGroupNotFound: {arn}"),
            ));
        }
        Ok([
            HealthState::Healthy,
            HealthState::Healthy,
            HealthState::Initial,
            HealthState::Draining,
            HealthState::Unhealthy,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, state)| RegisteredTarget {
            target: Target::new(format!("10.0.0.{i}"), 8080),
            state,
            reason: None,
        })
        .collect())
    }

    async fn register(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        unreachable!("the probe never registers")
    }

    async fn deregister(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        unreachable!("the probe never deregisters")
    }
}

#[derive(Default)]
struct FakeMetrics {
    puts: Mutex<Vec<(String, Vec<MetricDatum>)>>,
    fail: Mutex<Option<FailureKind>>,
    /// How long a call takes (none unless set).
    delay: Duration,
}

impl MetricsSink for FakeMetrics {
    async fn put(
        &self,
        ns: &str,
        data: &[MetricDatum],
        _at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        tokio::time::sleep(self.delay).await;
        if let Some(kind) = *self.fail.lock().unwrap() {
            return Err(PortError::new(
                kind,
                "cloudwatch:PutMetricData",
                "Rate exceeded",
            ));
        }
        self.puts
            .lock()
            .unwrap()
            .push((ns.to_string(), data.to_vec()));
        Ok(())
    }
}

type TestProber = Prober<FakeHttp, FakeElb, FakeMetrics>;

fn prober_with(config: &str) -> TestProber {
    Prober::new(
        ProbeConfig::parse(config).expect("config"),
        FakeHttp::default(),
        FakeElb::default(),
        FakeMetrics::default(),
    )
}

fn metric(p: &TestProber, name: &str, dimension: &str) -> Option<f64> {
    p.ports()
        .2
        .puts
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, data)| data.iter())
        .find(|d| d.name == name && d.dimensions[0].1 == dimension)
        .map(|d| d.value)
}

#[tokio::test]
async fn a_scheduled_run_checks_everything_and_publishes() {
    let p = prober_with(CONFIG);
    p.ports().0.answer(
        "web-home",
        vec![ok("<h1>Down for maintenance</h1>", "text/html")],
    );
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    assert_eq!(report.checks.len(), 3);
    assert_eq!(
        report.failed_checks, 1,
        "a failed check is data, not an error"
    );
    let metrics = probe::handler::controller_metrics(&report, false);
    let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
    assert_eq!(
        (
            value("Checks"),
            value("FailedChecks"),
            value("PublishFailures")
        ),
        (Some(3.0), Some(1.0), Some(0.0))
    );
    let home = report
        .checks
        .iter()
        .find(|c| c.name == "web-home")
        .expect("home");
    assert_eq!(
        home.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("body contains /(?i)maintenance/")
    );
    assert_eq!(metric(&p, "CheckSuccess", "web-home"), Some(0.0));
    assert_eq!(metric(&p, "CheckSuccess", "web-health"), Some(1.0));
    assert_eq!(metric(&p, "CheckLatency", "web-health"), Some(42.0));
    assert_eq!(metric(&p, "TimeToFirstByte", "web-health"), Some(30.0));
    assert_eq!(
        metric(&p, "CertificateDaysRemaining", "web-health"),
        Some(61.5)
    );
    assert_eq!(metric(&p, "HttpStatusCode", "web-health"), Some(200.0));
    assert_eq!(metric(&p, "DnsLookupTime", "web-health"), Some(3.5));
    assert_eq!(metric(&p, "ConnectTime", "web-health"), Some(1.5));
    assert_eq!(metric(&p, "TlsHandshakeTime", "web-health"), Some(4.0));
    assert_eq!(metric(&p, "TransferTime", "web-health"), Some(2.0));
    // The failed check is counted under its reason's kind, the passed one not at all.
    let failures: Vec<Vec<(&str, String)>> = p
        .ports()
        .2
        .puts
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, data)| data.iter())
        .filter(|d| d.name == "CheckFailure")
        .map(|d| d.dimensions.clone())
        .collect();
    assert_eq!(
        failures,
        [vec![
            ("Check", "web-home".to_string()),
            ("FailureReason", "body_forbidden".to_string())
        ]]
    );
    assert_eq!(metric(&p, "HealthyTargets", "web"), Some(2.0));
    assert_eq!(metric(&p, "TransitioningTargets", "web"), Some(2.0));
    assert_eq!(metric(&p, "UnhealthyTargets", "web"), Some(1.0));
    let puts = p.ports().2.puts.lock().unwrap();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].0, "EcsControl/Probe");
}

#[tokio::test]
async fn retries_happen_before_a_failure_counts() {
    let p = prober_with(CONFIG);
    // web-health allows one retry: a timeout then a success passes.
    p.ports().0.answer(
        "web-health",
        vec![
            failed(FailureReason::Timeout),
            ok("{\"status\":\"ok\"}", "application/json"),
        ],
    );
    // web-home allows none.
    p.ports()
        .0
        .answer("web-home", vec![failed(FailureReason::Timeout)]);
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    let by_name = |n: &str| report.checks.iter().find(|c| c.name == n).expect(n);
    assert!(by_name("web-health").success);
    assert_eq!(by_name("web-health").attempts, 2);
    assert!(!by_name("web-home").success);
    assert_eq!(by_name("web-home").reason, Some(FailureReason::Timeout));
    assert_eq!(p.ports().0.attempts("web-home"), 1);
}

/// One check that always fails after 10 ms, with `retries` and `backoff_ms`.
fn failing_check_config(retries: u32, backoff_ms: u64) -> String {
    serde_json::json!({"checks": [{
        "name": "flaky", "url": "http://flaky.internal/health",
        "retries": retries, "retry_backoff_ms": backoff_ms
    }]})
    .to_string()
}

#[tokio::test(start_paused = true)]
async fn retries_pause_doubling_and_are_not_made_without_time_for_them() {
    let p = prober_with(&failing_check_config(2, 200));
    p.ports().0.answer(
        "flaky",
        vec![failed(FailureReason::ConnectionRefused {
            detail: "no".into(),
        })],
    );
    let started = tokio::time::Instant::now();
    let report = p
        .handle(
            serde_json::json!({"command": "run", "publish": false}),
            now(),
            None,
        )
        .await
        .expect("run");
    // Three attempts of 10 ms, with 200 then 400 ms between them.
    assert_eq!(report.checks[0].attempts, 3);
    assert_eq!(started.elapsed(), Duration::from_millis(630));

    // With 1.5 s left for checks (3.5 s to the deadline, less the 2 s kept
    // to publish), a 2 s pause leaves no time for a second attempt.
    let p = prober_with(&failing_check_config(5, 2_000));
    p.ports().0.answer(
        "flaky",
        vec![failed(FailureReason::ConnectionRefused {
            detail: "no".into(),
        })],
    );
    let deadline = now() + chrono::TimeDelta::milliseconds(3_500);
    let report = p
        .handle(
            serde_json::json!({"command": "run", "publish": false}),
            now(),
            Some(deadline),
        )
        .await
        .expect("run");
    assert_eq!(
        report.checks[0].attempts, 1,
        "a 2 s pause does not fit in 1.5 s"
    );
    assert!(!report.checks[0].success);
}

#[tokio::test]
async fn a_passed_check_over_its_threshold_is_degraded_not_failed() {
    // Every fake answer takes 42 ms.
    let config = serde_json::json!({"checks": [
        {"name": "slow", "url": "http://a.internal/", "degraded_after_ms": 30},
        {"name": "quick", "url": "http://b.internal/", "degraded_after_ms": 100},
        {"name": "plain", "url": "http://c.internal/"}
    ]})
    .to_string();
    let p = prober_with(&config);
    for name in ["slow", "quick", "plain"] {
        p.ports().0.answer(name, vec![ok("ok", "text/plain")]);
    }
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    let by_name = |n: &str| report.checks.iter().find(|c| c.name == n).expect(n);
    assert!(by_name("slow").success);
    assert_eq!(by_name("slow").measured.degraded, Some(true));
    assert_eq!(by_name("quick").measured.degraded, Some(false));
    assert_eq!(by_name("plain").measured.degraded, None);
    assert_eq!(metric(&p, "CheckSuccess", "slow"), Some(1.0));
    assert_eq!(metric(&p, "CheckDegraded", "slow"), Some(1.0));
    assert_eq!(metric(&p, "CheckDegraded", "quick"), Some(0.0));
    assert_eq!(metric(&p, "CheckDegraded", "plain"), None);
}

#[tokio::test(start_paused = true)]
async fn target_group_reads_keep_to_their_own_lane_and_the_deadline() {
    let groups: Vec<Value> = (0..60)
        .map(|i| serde_json::json!({"name": format!("g{i}"),
            "target_group_arn": format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g{i}/0123456789abcdef")}))
        .collect();
    let checks: Vec<Value> = (0..8)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "url": format!("http://s{i}.internal/")}))
        .collect();
    let config = serde_json::json!({"concurrency": 8, "checks": checks, "target_groups": groups});
    let p = Prober::new(
        ProbeConfig::parse(&config.to_string()).expect("config"),
        FakeHttp::default(),
        FakeElb {
            delay: Duration::from_secs(1),
            ..FakeElb::default()
        },
        FakeMetrics::default(),
    );
    // 12 s to the deadline: 10 s for the work, 15 s of group reads at 4 at once.
    let deadline = now() + chrono::TimeDelta::seconds(12);
    let report = p
        .handle(sample("scheduled-tick"), now(), Some(deadline))
        .await
        .expect("run");
    assert_eq!(p.ports().1.max_in_flight.load(Ordering::SeqCst), 4);
    // Every check ran at once beside them, none waiting on a group's slot.
    assert_eq!(p.ports().0.max_in_flight.load(Ordering::SeqCst), 8);
    assert!(report.checks.iter().all(|c| c.success));
    let read = report
        .target_groups
        .iter()
        .filter(|g| g.counts.is_some())
        .count();
    assert_eq!(read, 40, "4 at once for 10 s");
    assert!(report
        .target_groups
        .iter()
        .filter(|g| g.counts.is_none())
        .all(|g| g.error.as_deref().is_some_and(|e| e.contains("unfinished"))));
}

#[tokio::test(start_paused = true)]
async fn publishing_that_would_outlast_the_deadline_fails_retryably_in_time() {
    let p = Prober::new(
        ProbeConfig::parse(CONFIG).expect("config"),
        FakeHttp::default(),
        FakeElb::default(),
        FakeMetrics {
            delay: Duration::from_secs(30),
            ..FakeMetrics::default()
        },
    );
    let started = tokio::time::Instant::now();
    let deadline = now() + chrono::TimeDelta::seconds(10);
    let err = p
        .handle(sample("scheduled-tick"), now(), Some(deadline))
        .await
        .expect_err("not published in time");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let diagnostic: Diagnostic = err.into();
    assert!(
        diagnostic.error_type.starts_with("Retryable"),
        "{diagnostic:?}"
    );
    assert!(
        diagnostic.error_message.contains("deadline"),
        "{diagnostic:?}"
    );
}

#[tokio::test]
async fn a_manual_run_of_one_check_publishes_nothing() {
    let p = prober_with(CONFIG);
    let report = p
        .handle(sample("manual-run-one-check"), now(), None)
        .await
        .expect("run");
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].name, "web-health");
    assert!(report.target_groups.is_empty());
    assert!(!report.published.enabled);
    assert!(p.ports().2.puts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_adhoc_check_runs_alone_and_is_not_published() {
    let p = prober_with(&with_adhoc(&["web.example.com"]));
    p.ports().0.answer(
        "drill-login-page",
        vec![ok("<form>Sign in</form>", "text/html; charset=utf-8")],
    );
    let report = p
        .handle(sample("adhoc-check"), now(), None)
        .await
        .expect("run");
    assert_eq!(report.checks.len(), 1);
    assert!(report.checks[0].success, "{:?}", report.checks[0].reason);
    assert!(p.ports().2.puts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_manual_runs_are_clear_non_retryable_errors() {
    let p = prober_with(CONFIG);
    let unknown = serde_json::json!({"command": "run", "checks": ["nope"]});
    let err = p
        .handle(unknown, now(), None)
        .await
        .expect_err("unknown check");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.RejectedCommand"
    );

    let p = prober_with(&with_adhoc(&["web.example.com"]));
    let mut bad_adhoc = sample("adhoc-check");
    bad_adhoc["adhoc"][0]["timeout_ms"] = 0.into();
    let err = p
        .handle(bad_adhoc, now(), None)
        .await
        .expect_err("bad adhoc");
    assert!(err.to_string().contains("adhoc[0].timeout_ms"), "{err}");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.MalformedEvent"
    );

    let err = p
        .handle(
            serde_json::json!({"detail-type": "ECS Task State Change"}),
            now(),
            None,
        )
        .await
        .expect_err("unsupported");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.MalformedEvent"
    );
}

#[tokio::test]
async fn failing_to_publish_is_a_retryable_error() {
    let p = prober_with(CONFIG);
    *p.ports().2.fail.lock().unwrap() = Some(FailureKind::Retryable);
    let err = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect_err("publish failed");
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.AwsUnavailable");
}

#[tokio::test]
async fn an_unreadable_target_group_is_reported_not_fatal() {
    let p = Prober::new(
        ProbeConfig::parse(CONFIG).expect("config"),
        FakeHttp::default(),
        FakeElb {
            missing: true,
            ..FakeElb::default()
        },
        FakeMetrics::default(),
    );
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    let group = &report.target_groups[0];
    assert!(group.counts.is_none());
    assert!(group
        .error
        .as_deref()
        .is_some_and(|e| e.contains("TargetGroupNotFound")));
    assert_eq!(report.checks.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn hundreds_of_checks_run_concurrently_within_the_bound_and_publish_in_batches() {
    let checks: Vec<Value> = (0..300)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "url": format!("http://service-{i}.internal/health")}))
        .collect();
    let config = serde_json::json!({"concurrency": 64, "checks": checks}).to_string();
    let p = prober_with(&config);
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    assert_eq!(report.checks.len(), 300);
    assert_eq!(p.ports().0.max_in_flight.load(Ordering::SeqCst), 64);
    // 300 checks x 9 metrics (success, latency, five phases, status,
    // certificate days) = 2,700 items: three PutMetricData calls.
    let sizes: Vec<usize> = p
        .ports()
        .2
        .puts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, d)| d.len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 700]);
    assert_eq!(
        (report.published.metrics, report.published.calls),
        (2700, 3)
    );
}

/// The shipped document with ad-hoc checks allowed to `hosts`.
fn with_adhoc(hosts: &[&str]) -> String {
    let mut config: Value = serde_json::from_str(CONFIG).expect("config");
    config["adhoc"] = serde_json::json!({"enabled": true, "allowed_hosts": hosts});
    config.to_string()
}

fn many_checks(count: usize, concurrency: usize) -> TestProber {
    let checks: Vec<Value> = (0..count)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "url": format!("http://service-{i}.internal/health"), "timeout_ms": 10000}))
        .collect();
    prober_with(&serde_json::json!({"concurrency": concurrency, "checks": checks}).to_string())
}

#[tokio::test(start_paused = true)]
async fn one_slow_endpoint_does_not_hold_up_the_others() {
    // 200 endpoints answer in 100 ms; every fiftieth takes 2 s.
    let p = many_checks(200, 32);
    for i in (0..200).step_by(50) {
        p.ports().0.slow(&format!("c{i}"), Duration::from_secs(2));
    }
    for i in (0..200).filter(|i| i % 50 != 0) {
        p.ports()
            .0
            .slow(&format!("c{i}"), Duration::from_millis(100));
    }
    let started = tokio::time::Instant::now();
    let report = p
        .handle(sample("scheduled-tick"), now(), None)
        .await
        .expect("run");
    let took = started.elapsed();
    // 196 fast checks in 32 slots is about 0.7 s, beside the 2 s ones: about 2 s,
    // not 2 s for every window a slow one heads.
    assert!(took < Duration::from_millis(2_500), "{took:?}");
    assert_eq!(report.checks.len(), 200);
    // Reported in configured order, whatever order they finished in.
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[..3], ["c0", "c1", "c2"]);
    assert_eq!(p.ports().0.max_in_flight.load(Ordering::SeqCst), 32);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_hits_its_deadline_still_publishes_and_counts_the_unfinished() {
    // One check at a time; the first server hangs for a minute.
    let p = many_checks(3, 1);
    p.ports().0.slow("c0", Duration::from_secs(60));
    let deadline = now() + chrono::TimeDelta::seconds(5);
    let started = tokio::time::Instant::now();
    let report = p
        .handle(sample("scheduled-tick"), now(), Some(deadline))
        .await
        .expect("published before the deadline");
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let reasons: Vec<Option<FailureReason>> =
        report.checks.iter().map(|c| c.reason.clone()).collect();
    assert_eq!(
        reasons,
        [
            Some(FailureReason::Timeout),
            Some(FailureReason::Unfinished),
            Some(FailureReason::Unfinished)
        ]
    );
    assert_eq!(report.unfinished_checks, 2);
    // Unfinished checks count as failures, so the success alarm sees them.
    for name in ["c0", "c1", "c2"] {
        assert_eq!(metric(&p, "CheckSuccess", name), Some(0.0), "{name}");
    }
}

#[tokio::test]
async fn a_deadline_already_past_is_not_honoured_but_the_checks_run() {
    // AWS sends epoch milliseconds; a runtime that sends a relative figure
    // gives a date in 1970.
    let p = prober_with(CONFIG);
    let bogus = DateTime::from_timestamp_millis(600_000);
    let report = p
        .handle(sample("scheduled-tick"), now(), bogus)
        .await
        .expect("run");
    assert_eq!(report.unfinished_checks, 0);
    assert!(report.checks_deadline.is_none());
    assert!(report.checks.iter().all(|c| c.success));
}

#[tokio::test]
async fn adhoc_checks_are_refused_unless_allowed_and_allowlisted() {
    // The shipped document allows none.
    let p = prober_with(CONFIG);
    let err = p
        .handle(sample("adhoc-check"), now(), None)
        .await
        .expect_err("off by default");
    assert!(err.to_string().contains("adhoc.enabled"), "{err}");

    let p = prober_with(&with_adhoc(&["*.internal.example.com"]));
    let err = p
        .handle(sample("adhoc-check"), now(), None)
        .await
        .expect_err("not allowlisted");
    assert!(err.to_string().contains("web.example.com"), "{err}");
    assert_eq!(
        Diagnostic::from(err).error_type,
        "NonRetryable.RejectedCommand"
    );
    assert_eq!(p.ports().0.attempts("drill-login-page"), 0);

    // Never under a configured check's name.
    let p = prober_with(&with_adhoc(&["web.example.com"]));
    let mut named = sample("adhoc-check");
    named["adhoc"][0]["name"] = "web-health".into();
    let err = p.handle(named, now(), None).await.expect_err("name taken");
    assert!(err.to_string().contains("configured check"), "{err}");

    // Never a local file.
    let mut file = sample("adhoc-check");
    file["adhoc"][0]["ca_certificate_file"] = "/etc/passwd".into();
    let err = p.handle(file, now(), None).await.expect_err("no files");
    assert!(
        err.to_string().contains("adhoc[0].ca_certificate_file"),
        "{err}"
    );
}

#[tokio::test]
async fn credentials_and_header_values_are_not_echoed() {
    let p = prober_with(&with_adhoc(&["web.example.com"]));
    let mut run = sample("adhoc-check");
    run["adhoc"][0]["url"] = "https://probe:s3cret@web.example.com/login".into();
    p.ports().0.answer(
        "drill-login-page",
        vec![ok("<form>Sign in</form>", "session=abc123; secret")],
    );
    let report = p.handle(run, now(), None).await.expect("run");
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains("s3cret"), "{json}");
    assert!(!json.contains("abc123"), "{json}");
    assert!(report.checks[0].url.contains("REDACTED@web.example.com"));
}

#[test]
fn bodies_in_flight_must_fit_the_function_memory() {
    let config = ProbeConfig::parse(
        r#"{"concurrency": 256, "max_body_bytes": 1048576, "checks": [{"name": "a", "url": "http://x"}]}"#,
    )
    .expect("parses");
    let err = config
        .fits_in_memory(128)
        .expect_err("256 MiB of bodies in 128 MB");
    assert_eq!(err.field, "max_body_bytes");
    assert!(err.to_string().contains("concurrency"), "{err}");
    assert!(config.fits_in_memory(1024).is_ok());
    // The shipped document sets no concurrency: a cold start lowers the
    // default to what fits, counting each check's head and connection too
    // (64 MiB / (256 + 64) KiB = 204 at 128 MB).
    let mut shipped = ProbeConfig::parse(CONFIG).expect("shipped");
    assert_eq!(shipped.concurrency_fitting(128), 204);
    assert_eq!(shipped.concurrency_fitting(256), 256);
    assert!(
        shipped.fits_in_memory(128).is_err(),
        "256 in flight is 80 MiB"
    );
    shipped.concurrency = shipped.concurrency_fitting(128);
    shipped
        .fits_in_memory(128)
        .expect("the shipped document fits the template's 128 MB");
}

#[tokio::test]
async fn hostile_inputs_get_a_clear_answer_and_are_never_echoed_whole() {
    let huge = "x".repeat(1 << 20);
    let with = |name: &str, change: &dyn Fn(&mut Value)| changed(sample(name), change);
    // (payload, what the answer must say, error type): none echoing a megabyte.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with("manual-run-one-check", &|e| {
                e["checks"][0] = huge.clone().into()
            }),
            "bytes, cut)",
            "NonRetryable.RejectedCommand",
        ),
        (
            with("adhoc-check", &|e| {
                e["adhoc"][0]["url"] = huge.clone().into()
            }),
            "adhoc[0].url",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("adhoc-check", &|e| {
                e["adhoc"][0]["name"] = huge.clone().into()
            }),
            "adhoc[0].name",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("adhoc-check", &|e| {
                e["adhoc"][0]["timeout_ms"] = (-5).into()
            }),
            "adhoc[0].timeout_ms",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("adhoc-check", &|e| {
                e["adhoc"][0]["retries"] = 4_000_000_000_u32.into()
            }),
            "adhoc[0].retries",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("adhoc-check", &|e| {
                e["adhoc"][0]["expected_status"] = serde_json::json!(["999-100"])
            }),
            "adhoc[0].expected_status",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("manual-run-one-check", &|e| {
                e["checks"] = "web-health".into()
            }),
            "invalid type: string",
            "NonRetryable.MalformedEvent",
        ),
        (
            with("manual-run-one-check", &|e| {
                e["command"] = huge.clone().into()
            }),
            "bytes, cut)",
            "NonRetryable.MalformedEvent",
        ),
        (
            serde_json::json!({ huge.clone(): 1 }),
            "unrecognised",
            "NonRetryable.MalformedEvent",
        ),
        (
            serde_json::json!(42),
            "expected a JSON object",
            "NonRetryable.MalformedEvent",
        ),
    ];
    let p = prober_with(&with_adhoc(&["web.example.com"]));
    for (payload, says, kind) in cases {
        let err = p.handle(payload, now(), None).await.expect_err("refused");
        assert_clear_refusal(err, says, kind);
    }
    // A host outside the allowlist, and a configured check's name, are refused.
    for change in [
        &(|e: &mut Value| e["adhoc"][0]["url"] = "https://elsewhere.example.org/".into())
            as &dyn Fn(&mut Value),
        &|e: &mut Value| e["adhoc"][0]["name"] = "web-health".into(),
    ] {
        let err = p
            .handle(with("adhoc-check", change), now(), None)
            .await
            .expect_err("refused");
        assert!(err.to_string().len() < 1_000);
    }
}
