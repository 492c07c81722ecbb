//! The probe through its real adapters: HTTP(S) against a site on loopback,
//! metrics into the emulator's CloudWatch, target health from its ELBv2.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use chrono::Utc;
use e2e::site::{TestSite, CERTIFICATE_DAYS, EXPIRED_DAYS_AGO, INTERMEDIATE_DAYS, SLOW_MS};
use e2e::{Aws, Emulator, TASK_PORT};
use ecs_control::aws::cloudwatch::CloudWatchMetrics;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::ProbeConfig;
use ecs_control::domain::probe::FailureReason;
use probe::handler::{CheckReport, ProbeReport, Prober};
use probe::http::HttpAdapter;
use serde_json::{json, Value};

type RealProber = Prober<HttpAdapter, Elbv2Adapter, CloudWatchMetrics>;

fn prober(region: &str, config: &Value) -> RealProber {
    let sdk = Emulator::shared().sdk_config(region);
    Prober::new(
        ProbeConfig::parse(&config.to_string()).expect("config"),
        HttpAdapter::new(),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)),
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&sdk)),
    )
}

fn tick() -> Value {
    e2e::sample_event("probe/scheduled-tick.json")
}

fn check<'a>(report: &'a ProbeReport, name: &str) -> &'a CheckReport {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

#[tokio::test]
async fn verdicts_against_real_servers() {
    let site = TestSite::start().await;
    let ca = site.ca_file.display().to_string();
    let config = json!({
        "checks": [
            {"name": "ok", "url": format!("{}/ok", site.http),
             "body_must_match": [{"regex": "\"version\":\"\\d+\""}],
             "header_checks": [{"name": "content-type", "matches": "application/json"}]},
            {"name": "slow", "url": format!("{}/slow", site.http), "timeout_ms": SLOW_MS / 3},
            {"name": "failing", "url": format!("{}/fail", site.http)},
            {"name": "wrong-body", "url": format!("{}/maintenance", site.http),
             "body_must_not_match": [{"regex": "(?i)maintenance"}]},
            {"name": "redirect-followed", "url": format!("{}/moved", site.http), "body_must_match": ["ok"]},
            {"name": "redirect-not-followed", "url": format!("{}/moved", site.http),
             "follow_redirects": false, "expected_status": ["300-399"]},
            {"name": "redirect-loop", "url": format!("{}/loop", site.http)},
            {"name": "refused", "url": format!("http://127.0.0.1:{}/", site.closed_port)},
            {"name": "untrusted-with-credentials",
             "url": format!("{}/ok", site.https.replace("https://", "https://probe:s3cret@"))},
            {"name": "tls", "url": format!("{}/ok", site.https), "ca_certificate_file": ca},
            {"name": "tls-untrusted", "url": format!("{}/ok", site.https)},
            {"name": "tls-wrong-name", "url": format!("{}/ok", site.https.replace("localhost", "127.0.0.1")),
             "ca_certificate_file": ca},
            {"name": "tls-expired", "url": format!("{}/ok", site.https_expired), "ca_certificate_file": ca},
            {"name": "tls-cross-signed", "url": format!("{}/ok", site.https_cross_signed), "ca_certificate_file": ca},
            {"name": "big-body", "url": format!("{}/big", site.http), "body_must_not_match": ["y"]},
            {"name": "json-wrong", "url": format!("{}/ok", site.http),
             "json_assertions": [{"path": "$.status", "equals": "degraded"}]},
            {"name": "json-not-json", "url": format!("{}/maintenance", site.http),
             "json_assertions": [{"path": "$.status", "exists": true}]}
        ]
    });
    let p = prober("us-east-1", &config);
    let report = p
        .handle(
            json!({"command": "run", "publish": false}),
            Utc::now(),
            None,
        )
        .await
        .expect("run");

    let ok = check(&report, "ok");
    assert!(ok.success, "{:?}", ok.reason);
    assert_eq!(ok.measured.status, Some(200));
    let ttfb = ok.measured.phases.time_to_first_byte_ms.expect("ttfb");
    assert!(ttfb > 0.0 && ttfb <= ok.measured.latency_ms);

    assert_eq!(check(&report, "slow").reason, Some(FailureReason::Timeout));
    assert_eq!(
        check(&report, "failing").reason,
        Some(FailureReason::StatusMismatch {
            status: 500,
            expected: "200-299".into()
        })
    );
    assert!(matches!(
        check(&report, "wrong-body").reason,
        Some(FailureReason::BodyForbidden { .. })
    ));
    assert!(check(&report, "redirect-followed").success);
    let not_followed = check(&report, "redirect-not-followed");
    assert!(not_followed.success, "{:?}", not_followed.reason);
    assert_eq!(not_followed.measured.status, Some(303));
    assert_eq!(
        check(&report, "redirect-loop").reason,
        Some(FailureReason::TooManyRedirects)
    );
    assert!(
        matches!(
            check(&report, "refused").reason,
            Some(FailureReason::ConnectionRefused { .. })
        ),
        "{:?}",
        check(&report, "refused").reason
    );

    let tls = check(&report, "tls");
    assert!(tls.success, "{:?}", tls.reason);
    // A trusted chain for another name is refused, and says so.
    let wrong_name = check(&report, "tls-wrong-name");
    assert!(
        matches!(&wrong_name.reason, Some(FailureReason::Tls { detail }) if detail.contains("not valid for name")),
        "{:?}",
        wrong_name.reason
    );
    assert_eq!(wrong_name.measured.certificate_days_remaining, None);
    // localhost is looked up; 127.0.0.1 needs no lookup.
    assert!(
        tls.measured.phases.dns_ms.is_some_and(|ms| ms >= 0.0),
        "{:?}",
        tls.measured
    );
    assert_eq!(ok.measured.phases.dns_ms, None);
    // The intermediate in the served chain expires before the leaf: it counts.
    let days = tls.measured.certificate_days_remaining.expect("days");
    assert!(
        (days - INTERMEDIATE_DAYS as f64).abs() < 1.5 && INTERMEDIATE_DAYS < CERTIFICATE_DAYS,
        "certificate days remaining {days}"
    );
    assert!(
        matches!(
            check(&report, "tls-untrusted").reason,
            Some(FailureReason::Tls { .. })
        ),
        "{:?}",
        check(&report, "tls-untrusted").reason
    );
    // An expired certificate is said so, and its days remaining go below zero.
    let expired = check(&report, "tls-expired");
    assert!(
        matches!(expired.reason, Some(FailureReason::TlsExpired { .. })),
        "{:?}",
        expired.reason
    );
    let days = expired.measured.certificate_days_remaining.expect("days");
    assert!(
        (days + EXPIRED_DAYS_AGO as f64).abs() < 1.5,
        "certificate days remaining {days}"
    );
    // An expired copy of the intermediate, sent but not on the verified
    // path, does not count: the leaf's 30 days do (the intermediate has a year).
    let cross = check(&report, "tls-cross-signed");
    assert!(cross.success, "{:?}", cross.reason);
    let days = cross.measured.certificate_days_remaining.expect("days");
    assert!(
        (days - CERTIFICATE_DAYS as f64).abs() < 1.5,
        "certificate days remaining {days}"
    );
    let tls_phases = &tls.measured.phases;
    assert!(
        tls_phases.connect_ms.is_some()
            && tls_phases.tls_ms.is_some()
            && tls_phases.transfer_ms.is_some(),
        "{tls_phases:?}"
    );
    assert_eq!(
        ok.measured.phases.tls_ms, None,
        "plain HTTP has no handshake"
    );
    let big = check(&report, "big-body");
    assert!(big.success && big.body_truncated);
    for name in ["json-wrong", "json-not-json"] {
        let reason = check(&report, name).reason.clone().expect("failed");
        assert_eq!(reason.kind(), "json_mismatch", "{name}: {reason}");
    }
    assert_eq!(report.failed_checks, 11);
    // Neither the report nor a failure's detail repeats a URL's credentials.
    let text = serde_json::to_string(&report).expect("json");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("REDACTED@localhost"), "{text}");
}

/// The `FailureReason` of each `CheckFailure` metric in `namespace`.
async fn failure_reasons(cloudwatch: &aws_sdk_cloudwatch::Client, namespace: &str) -> Vec<String> {
    let listed = cloudwatch
        .list_metrics()
        .namespace(namespace)
        .metric_name("CheckFailure")
        .send()
        .await
        .expect("list metrics");
    listed
        .metrics()
        .iter()
        .flat_map(|m| m.dimensions())
        .filter(|d| d.name() == Some("FailureReason"))
        .filter_map(|d| d.value().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_json_check_sample_runs_against_a_real_server_and_publishes_its_kind() {
    let site = TestSite::start().await;
    let region = "eu-west-1";
    // The sample, pointed at the site; the deployment lets ad-hoc checks
    // reach it (loopback, so its range is allowed).
    let mut event = e2e::sample_event("probe/adhoc-json-check.json");
    event["adhoc"][0]["url"] = format!("{}/ok", site.http).into();
    event["publish"] = true.into();
    let config = json!({
        "namespace": "EcsControl/ProbeJson",
        "checks": [{"name": "home", "url": format!("{}/ok", site.http)}],
        "adhoc": {"enabled": true, "allowed_hosts": ["127.0.0.1"], "allowed_ranges": ["127.0.0.1/32"]}
    });
    let p = prober(region, &config);
    let report = p.handle(event, Utc::now(), None).await.expect("run");
    let json = check(&report, "orders-api-health");
    assert!(json.success, "{:?}", json.reason);
    assert_eq!(json.measured.degraded, Some(false));
    // A failing JSON assertion is published under its kind.
    let mut failing = e2e::sample_event("probe/adhoc-json-check.json");
    failing["adhoc"][0]["url"] = format!("{}/ok", site.http).into();
    failing["adhoc"][0]["json_assertions"][0]["equals"] = "down".into();
    failing["adhoc"][0]["retries"] = 0.into();
    failing["publish"] = true.into();
    let report = p.handle(failing, Utc::now(), None).await.expect("run");
    assert!(!report.checks[0].success);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&Emulator::shared().sdk_config(region));
    let reasons = failure_reasons(&cloudwatch, "EcsControl/ProbeJson").await;
    assert_eq!(reasons, ["json_mismatch"]);
    let degraded = cloudwatch
        .list_metrics()
        .namespace("EcsControl/ProbeJson")
        .metric_name("CheckDegraded")
        .send()
        .await
        .expect("list metrics");
    assert_eq!(degraded.metrics().len(), 1, "{degraded:?}");
}

#[tokio::test]
async fn metrics_land_in_cloudwatch_and_target_health_is_counted() {
    let site = TestSite::start().await;
    let region = "us-west-2";
    let aws = Aws::new(&Emulator::shared().sdk_config(region));
    let network = aws.network().await;
    let group = aws.ip_target_group("web", &network.vpc_id).await;
    for ip in ["10.0.0.11", "10.0.0.12", "10.0.0.13"] {
        aws.register_target(&group, ip, TASK_PORT).await;
    }
    // New targets are initial until their health checks pass.
    let states: Vec<String> = aws.targets(&group).await.into_iter().map(|t| t.2).collect();
    assert_eq!(states, ["initial"; 3]);
    aws.wait_until_healthy(&group).await;
    let config = json!({
        "namespace": "EcsControl/ProbeTest",
        "checks": [
            {"name": "home", "url": format!("{}/ok", site.http)},
            {"name": "broken", "url": format!("{}/fail", site.http)}
        ],
        "target_groups": [{"name": "web", "target_group_arn": group}]
    });
    let p = prober(region, &config);
    let now = Utc::now();
    let report = p.handle(tick(), now, None).await.expect("run");
    assert_eq!(report.published.calls, 1);
    let counts = report.target_groups[0].counts.as_ref().expect("counted");
    assert_eq!(counts.by_state["healthy"], 3);

    let average = |metric: &'static str, name: &'static str, value: &'static str| {
        let cloudwatch = aws.cloudwatch.clone();
        async move {
            let start = aws_smithy_types_datetime(now - chrono::TimeDelta::minutes(5));
            let end = aws_smithy_types_datetime(now + chrono::TimeDelta::minutes(5));
            let out = cloudwatch
                .get_metric_statistics()
                .namespace("EcsControl/ProbeTest")
                .metric_name(metric)
                .dimensions(Dimension::builder().name(name).value(value).build())
                .start_time(start)
                .end_time(end)
                .period(60)
                .statistics(Statistic::Average)
                .send()
                .await
                .expect("get_metric_statistics");
            out.datapoints().first().and_then(|d| d.average())
        }
    };
    assert_eq!(average("CheckSuccess", "Check", "home").await, Some(1.0));
    assert_eq!(average("CheckSuccess", "Check", "broken").await, Some(0.0));
    assert_eq!(
        average("HttpStatusCode", "Check", "broken").await,
        Some(500.0)
    );
    assert_eq!(
        average("HealthyTargets", "TargetGroup", "web").await,
        Some(3.0)
    );
    assert_eq!(
        average("HealthyTargetPercent", "TargetGroup", "web").await,
        Some(100.0)
    );
    assert!(average("CheckLatency", "Check", "home").await.is_some());

    let names = aws.metric_names("EcsControl/ProbeTest").await;
    for expected in [
        "CheckLatency",
        "CheckSuccess",
        "TimeToFirstByte",
        "TransitioningTargets",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

fn aws_smithy_types_datetime(t: chrono::DateTime<Utc>) -> aws_sdk_cloudwatch::primitives::DateTime {
    aws_sdk_cloudwatch::primitives::DateTime::from_millis(t.timestamp_millis())
}

#[tokio::test]
async fn a_batch_over_ten_kilobytes_is_sent_gzipped_and_lands() {
    let site = TestSite::start().await;
    let region = "eu-west-1";
    let aws = Aws::new(&Emulator::shared().sdk_config(region));
    let checks: Vec<Value> = (0..80)
        .map(|i| json!({"name": format!("endpoint-{i:02}"), "url": format!("{}/ok", site.http)}))
        .collect();
    let config = json!({"namespace": "EcsControl/ProbeGzip", "concurrency": 16, "checks": checks});
    let p = prober(region, &config);
    let report = p.handle(tick(), Utc::now(), None).await.expect("published");
    assert_eq!(report.published.calls, 1);
    // Each check publishes several metrics with its name: the CBOR body is well over 10 KB,
    // which the SDK compresses.
    assert!(
        report.published.metrics >= 300,
        "{}",
        report.published.metrics
    );
    let names = aws.metric_names("EcsControl/ProbeGzip").await;
    assert!(names.iter().any(|n| n == "CheckSuccess"), "{names:?}");
}

/// An ad-hoc sample pointed at loopback, with the deployment's guard letting
/// 127.0.0.1 (and only it) through.
fn loopback_adhoc_config(site: &TestSite, hosts: &[&str]) -> Value {
    json!({
        "checks": [{"name": "home", "url": format!("{}/ok", site.http)}],
        "adhoc": {"enabled": true, "allowed_hosts": hosts, "allowed_ranges": ["127.0.0.1/32"]}
    })
}

#[tokio::test]
async fn the_steps_sample_carries_a_token_and_a_session_from_one_step_to_the_next() {
    let site = TestSite::start().await;
    let p = prober("us-east-1", &loopback_adhoc_config(&site, &["127.0.0.1"]));
    let sample = e2e::sample_event("probe/adhoc-steps-check.json");
    let pointed = |mut event: Value| {
        for step in event["adhoc"][0]["steps"].as_array_mut().expect("steps") {
            let url = step["url"]
                .as_str()
                .expect("url")
                .replace("https://shop.example.com", &site.http);
            step["url"] = url.into();
        }
        event
    };

    let report = p
        .handle(pointed(sample.clone()), Utc::now(), None)
        .await
        .expect("run");
    let journey = check(&report, "checkout-journey");
    // The order page answers 200 only with the log-in's token (from its JSON
    // body) and session (from its header), at the order id (from its body).
    assert!(journey.success, "{:?} {:?}", journey.reason, journey.steps);
    let steps: Vec<(&str, bool, Option<u16>)> = journey
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.success, s.status))
        .collect();
    assert_eq!(
        steps,
        [("log-in", true, Some(200)), ("open-order", true, Some(200))]
    );
    assert_eq!(journey.measured.status, Some(200));

    // A value taken from the wrong place: the second step goes out without
    // the session, is refused, and the check fails there, saying so.
    let mut wrong = pointed(sample.clone());
    wrong["adhoc"][0]["steps"][0]["extract"]["session"] = json!({"header": "x-request-id"});
    wrong["adhoc"][0]["retries"] = 0.into();
    let report = p.handle(wrong, Utc::now(), None).await.expect("run");
    let journey = &report.checks[0];
    assert!(!journey.success);
    assert_eq!(journey.steps.len(), 1, "{:?}", journey.steps);
    assert!(!journey.steps[0].success);
    let reason = format!("{:?}", journey.reason);
    assert!(reason.contains("x-request-id"), "{reason}");

    // The last step's expectation fails: both steps reported, the first passed.
    let mut cancelled = pointed(sample.clone());
    cancelled["adhoc"][0]["steps"][1]["json_assertions"][0]["equals"] = "cancelled".into();
    cancelled["adhoc"][0]["retries"] = 0.into();
    let report = p.handle(cancelled, Utc::now(), None).await.expect("run");
    let journey = &report.checks[0];
    assert!(
        matches!(journey.reason, Some(FailureReason::JsonMismatch { .. })),
        "{:?}",
        journey.reason
    );
    let passed: Vec<bool> = journey.steps.iter().map(|s| s.success).collect();
    assert_eq!(passed, [true, false]);

    // A later step on a host the deployment does not allow is refused before
    // any connection, though the first step's host was allowed.
    let mut elsewhere = pointed(sample);
    let url = elsewhere["adhoc"][0]["steps"][1]["url"]
        .as_str()
        .expect("url")
        .replace("127.0.0.1", "localhost");
    elsewhere["adhoc"][0]["steps"][1]["url"] = url.into();
    elsewhere["adhoc"][0]["retries"] = 0.into();
    let report = p.handle(elsewhere, Utc::now(), None).await.expect("run");
    let journey = &report.checks[0];
    assert!(
        matches!(journey.reason, Some(FailureReason::AddressDenied { .. })),
        "{:?}",
        journey.reason
    );
    assert_eq!(journey.steps.iter().filter(|s| s.success).count(), 1);
}

/// The TCP sample, aimed at the site's mail-like server on `localhost`.
fn tcp_sample_at(site: &TestSite) -> Value {
    let mut check = e2e::sample_event("probe/adhoc-tcp-check.json")["adhoc"][0].clone();
    check["tcp"]["host"] = "localhost".into();
    check["tcp"]["port"] = site.smtp_port.into();
    check
}

#[tokio::test]
async fn the_tcp_sample_holds_a_dialogue_and_upgrades_it_with_starttls() {
    let site = TestSite::start().await;
    // STARTTLS verifies the server as HTTPS does: configured with the test
    // CA, the whole dialogue passes, and the certificate's days are reported.
    let mut configured = tcp_sample_at(&site);
    configured["ca_certificate_file"] = site.ca_file.display().to_string().into();
    let mut expects_more = configured.clone();
    expects_more["name"] = "expects-pipelining".into();
    expects_more["tcp"]["dialogue"][2] = json!({"expect": {"regex": "^250[ -]PIPELINING"}});
    expects_more["timeout_ms"] = 1_000.into();
    let mut untrusted = tcp_sample_at(&site);
    untrusted["name"] = "untrusted".into();
    let config = json!({"checks": [configured, expects_more, untrusted]});
    let report = prober("us-east-1", &config)
        .handle(tick(), Utc::now(), None)
        .await
        .expect("run");

    let relay = check(&report, "mail-relay-starttls");
    assert!(relay.success, "{:?}", relay.reason);
    assert_eq!(relay.url, format!("tcp://localhost:{}", site.smtp_port));
    let days = relay.measured.certificate_days_remaining.expect("days");
    // The leaf (30 days) is signed by an intermediate that ends first (20).
    assert!((days - INTERMEDIATE_DAYS as f64).abs() <= 1.0, "{days}");
    assert!(
        relay.measured.phases.tls_ms.is_some(),
        "{:?}",
        relay.measured.phases
    );

    // Each move of the dialogue is reported.
    let moves: Vec<&str> = relay.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        moves,
        [
            "expect /^220 /",
            "send \"EHLO probe.example.com\\r\\n\"",
            "expect /^250[ -]STARTTLS/",
            "send \"STARTTLS\\r\\n\"",
            "expect /^220 /",
            "starttls",
            "send \"EHLO probe.example.com\\r\\n\"",
            "expect /^250 /",
            "send \"QUIT\\r\\n\""
        ]
    );
    assert!(relay.steps.iter().all(|s| s.success));

    // The server never offers PIPELINING and then waits for a command: the
    // check times out, and its report says in which move.
    let pipelining = check(&report, "expects-pipelining");
    assert_eq!(pipelining.reason, Some(FailureReason::Timeout));
    let waited = pipelining.steps.last().expect("a move");
    assert_eq!(waited.name, "expect /^250[ -]PIPELINING/");
    assert_eq!(waited.reason, Some(FailureReason::Timeout));
    assert_eq!(pipelining.steps.len(), 3, "{:?}", pipelining.steps);

    // Without the CA, the upgrade fails as TLS, after the plaintext part.
    let untrusted = check(&report, "untrusted");
    assert!(
        matches!(untrusted.reason, Some(FailureReason::Tls { .. })),
        "{:?}",
        untrusted.reason
    );
}

#[tokio::test]
async fn an_adhoc_tcp_check_is_held_to_the_guard() {
    let site = TestSite::start().await;
    // Loopback by name: allowed as a host, but 127.0.0.1 is not in the ranges.
    let config = json!({
        "checks": [{"name": "home", "url": format!("{}/ok", site.http)}],
        "adhoc": {"enabled": true, "allowed_hosts": ["localhost"]}
    });
    let mut plain = tcp_sample_at(&site);
    plain["tcp"]["dialogue"] = json!([{"expect": {"regex": "^220 "}}]);
    let event = json!({"command": "run", "adhoc": [plain.clone()], "publish": false});
    let report = prober("us-east-1", &config)
        .handle(event, Utc::now(), None)
        .await
        .expect("run");
    assert!(
        matches!(
            report.checks[0].reason,
            Some(FailureReason::AddressDenied { .. })
        ),
        "{:?}",
        report.checks[0].reason
    );
    // With the range allowed, the same check reads the greeting.
    let event = json!({"command": "run", "adhoc": [plain], "publish": false});
    let report = prober("us-east-1", &loopback_adhoc_config(&site, &["localhost"]))
        .handle(event, Utc::now(), None)
        .await
        .expect("run");
    assert!(report.checks[0].success, "{:?}", report.checks[0].reason);
}

#[tokio::test]
async fn the_dns_sample_judges_what_the_resolver_answers() {
    let site = TestSite::start().await;
    let region = "ap-southeast-2";
    let mut config = loopback_adhoc_config(&site, &["localhost"]);
    config["namespace"] = "EcsControl/ProbeDns".into();
    let p = prober(region, &config);
    let mut event = e2e::sample_event("probe/adhoc-dns-check.json");
    event["adhoc"][0]["dns"]["name"] = "localhost".into();
    event["publish"] = true.into();

    // The sample wants its answers inside the VPC's range: localhost is not.
    let report = p
        .handle(event.clone(), Utc::now(), None)
        .await
        .expect("run");
    let outside = &report.checks[0];
    assert!(
        matches!(outside.reason, Some(FailureReason::Dns { .. })),
        "{:?}",
        outside.reason
    );
    let reason = format!("{:?}", outside.reason);
    assert!(
        reason.contains("127.0.0.1") && reason.contains("10.20.0.0/16"),
        "{reason}"
    );

    event["adhoc"][0]["dns"]["answers_in"] = json!(["127.0.0.0/8"]);
    let report = p
        .handle(event.clone(), Utc::now(), None)
        .await
        .expect("run");
    let inside = &report.checks[0];
    assert!(inside.success, "{:?}", inside.reason);
    assert_eq!(inside.url, "dns://localhost");
    assert!(inside.measured.phases.dns_ms.is_some());

    // A name that does not resolve fails as DNS (`.invalid` never does).
    event["adhoc"][0]["dns"]["name"] = "no-such-host.invalid".into();
    event["adhoc"][0]["retries"] = 0.into();
    let mut config = loopback_adhoc_config(&site, &["no-such-host.invalid"]);
    config["namespace"] = "EcsControl/ProbeDns".into();
    let report = prober(region, &config)
        .handle(event, Utc::now(), None)
        .await
        .expect("run");
    assert!(
        matches!(report.checks[0].reason, Some(FailureReason::Dns { .. })),
        "{:?}",
        report.checks[0].reason
    );

    // Both failures are published under the `dns` reason.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&Emulator::shared().sdk_config(region));
    let reasons: std::collections::BTreeSet<String> =
        failure_reasons(&cloudwatch, "EcsControl/ProbeDns")
            .await
            .into_iter()
            .collect();
    assert_eq!(reasons.into_iter().collect::<Vec<_>>(), ["dns"]);
}
