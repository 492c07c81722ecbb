//! Every AWS call each function makes, failed in every way the emulator's
//! fault layer knows: throttled, a 500, a slow answer, a connection dropped
//! before AWS acted, and one dropped after AWS acted (the answer lost), once
//! or as often as the SDK retries. Each function either reaches the end state
//! of a fault-free run, or fails retryably and reaches it when the event is
//! delivered again, as Lambda's retries do. Nothing is half-applied: the
//! scaler's tags agree with the count and no breach is added twice, the
//! registrar's target groups hold each running task once and nothing else,
//! the probe never publishes a batch twice, and a drill (or the sweep after
//! it) always leaves the service as it found it, with no lock held.
//!
//! The calls to fail are the ones a fault-free run made, counted at the
//! emulator, so a call the functions start making is covered without a change
//! here. The SDK keeps its standard retries (3 attempts) with millisecond
//! backoff.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use e2e::drill_world::{start, world_of, World};
use e2e::site::TestSite;
use e2e::{sample_event, Aws, Emulator, Network, TASK_PORT};
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::ecs::{tag_keys, EcsAdapter};
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{ProbeConfig, RegistrarConfig, ScalerConfig};
use ecs_control::invocation::InvocationError;
use probe::handler::Prober;
use probe::http::HttpAdapter;
use registrar::handler::Registrar;
use scaler::decision::Action;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;

/// One way a call fails, `times` calls in a row.
#[derive(Clone, Copy, Debug)]
struct Fault {
    kind: &'static str,
    times: u32,
    delay_seconds: f64,
}

/// The SDK makes 3 attempts: once is absorbed by its retries, 3 times is not.
const FAULTS: &[Fault] = &[
    Fault {
        kind: "throttle",
        times: 1,
        delay_seconds: 0.0,
    },
    Fault {
        kind: "throttle",
        times: 3,
        delay_seconds: 0.0,
    },
    Fault {
        kind: "server_error",
        times: 3,
        delay_seconds: 0.0,
    },
    Fault {
        kind: "slow",
        times: 1,
        delay_seconds: 1.0,
    },
    Fault {
        kind: "timeout",
        times: 1,
        delay_seconds: 0.2,
    },
    Fault {
        kind: "lost_answer",
        times: 1,
        delay_seconds: 0.0,
    },
    Fault {
        kind: "lost_answer",
        times: 3,
        delay_seconds: 0.0,
    },
    // A hang: no answer for longer than the attempt time-out every client
    // gets (`ecs_control::aws::deadline`), which cuts it off and retries.
    Fault {
        kind: "timeout",
        times: 1,
        delay_seconds: HANG_SECONDS,
    },
];

/// Longer than `deadline::MAX_ATTEMPT`, the attempt time-out outside an invocation.
const HANG_SECONDS: f64 = 10.5;

/// Each case's service settles its deployment this fast (a case waits for it).
fn quick_deployments() {
    Emulator::shared().control("POST", "settings", &json!({"deployment_seconds": 0.3}));
}

/// Deliveries of one event before the test gives up on it.
const MOST_DELIVERIES: usize = 5;

/// Fails the next `fault.times` calls of `operation`; the returned guard
/// proves, when checked, that the function made every one of those calls.
fn inject(region: &str, operation: &str, fault: Fault) -> Injected {
    let emulator = Emulator::shared();
    // No fault is left over from a previous case: each was used up (checked),
    // and the tests in this binary share the emulator, so none clears it.
    let calls_before = emulator.calls(region).get(operation).copied().unwrap_or(0);
    emulator.control(
        "POST",
        "faults",
        &json!({
            "region": region, "operation": operation, "kind": fault.kind,
            "times": fault.times, "delay_seconds": fault.delay_seconds
        }),
    );
    Injected {
        region: region.to_string(),
        operation: operation.to_string(),
        fault,
        calls_before,
    }
}

struct Injected {
    region: String,
    operation: String,
    fault: Fault,
    calls_before: u64,
}

impl Injected {
    /// Every faulted call was made, and, where the function needs the call
    /// to succeed, made once more after them. A lost answer's change is made
    /// (another call may find nothing to do) and a slow call succeeds.
    fn assert_consumed(&self, what: &str, needs_the_call: bool) {
        let made = Emulator::shared()
            .calls(&self.region)
            .get(&self.operation)
            .copied()
            .unwrap_or(0)
            - self.calls_before;
        let changes_nothing = !matches!(self.fault.kind, "slow" | "lost_answer");
        let least = u64::from(self.fault.times) + u64::from(needs_the_call && changes_nothing);
        assert!(
            made >= least,
            "{what}: the fault was not used up: {made} calls of {}, at least {least} expected",
            self.operation
        );
    }
}

/// What a fault-free run of `act` calls, by operation, in `region`.
async fn calls_made<F: Future<Output = ()>>(region: &str, act: F) -> Vec<String> {
    let before = Emulator::shared().calls(region);
    act.await;
    let after = Emulator::shared().calls(region);
    after
        .into_iter()
        .filter(|(operation, count)| before.get(operation) != Some(count))
        .map(|(operation, _)| operation)
        .collect()
}

/// Delivers an event until it succeeds, each time a minute later; every
/// failure must be retryable. Returns how many deliveries it took.
async fn deliver_until_done<F, Fut>(what: &str, mut deliver: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), InvocationError>>,
{
    for delivery in 0..MOST_DELIVERIES {
        match deliver(delivery).await {
            Ok(()) => return delivery + 1,
            Err(e) => assert!(e.is_retryable(), "{what}: a fault must fail retryably: {e}"),
        }
    }
    panic!("{what}: still failing after {MOST_DELIVERIES} deliveries");
}

/// Prints what was tried, and checks that some fault outlasted the SDK's
/// retries (so redelivery was exercised).
fn summarise(function: &str, operations: &[String], cases: usize, redelivered: usize) {
    println!(
        "{function}: {} operations ({}) × {} faults = {cases} cases, {redelivered} needed another delivery",
        operations.len(),
        operations.join(", "),
        FAULTS.len()
    );
    assert!(
        redelivered > 0,
        "{function}: some faults outlast the SDK's retries"
    );
}

fn minutes(n: usize) -> TimeDelta {
    TimeDelta::minutes(i64::try_from(n).expect("small"))
}

// ---------------------------------------------------------------- scaler

const SCALER_REGION: &str = "eu-north-1";
const STARTING_COUNT: i32 = 2;
/// 85 against 70 selects the +2 step.
const BREACH: f64 = 85.0;
const SCALED_COUNT: i32 = 4;

/// One service, its alarm in ALARM, and a scaler for its policy, in a
/// cluster of its own.
async fn scaler_case(aws: &Aws, cluster: &str) -> (RealScaler, Value) {
    let config = Emulator::shared().sdk_config_quick_retries(SCALER_REGION);
    let alarm = format!("{cluster}-cpu-high");
    aws.create_service(cluster, "web", STARTING_COUNT).await;
    aws.wait_for_deployment(cluster, "web").await;
    aws.service_alarm(
        &alarm,
        (cluster, "web"),
        "CPUUtilization",
        ComparisonOperator::GreaterThanThreshold,
        70.0,
    )
    .await;
    let t0 = Utc::now();
    aws.put_service_metric((cluster, "web"), "CPUUtilization", BREACH, t0 - minutes(1))
        .await;
    aws.set_alarm_state(&alarm, 70.0, StateValue::Alarm, BREACH)
        .await;
    let policy = json!({
        "alarm": alarm, "cluster": cluster, "service": "web",
        "adjustment_type": "ChangeInCapacity",
        "steps": [
            {"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 10, "scaling_adjustment": 1},
            {"metric_interval_lower_bound": 10, "metric_interval_upper_bound": 20, "scaling_adjustment": 2},
            {"metric_interval_lower_bound": 20, "scaling_adjustment": 3}
        ],
        "min_capacity": 1, "max_capacity": 20
    });
    let scaler = Scaler::new(
        ScalerConfig::parse(&json!({ "policies": [policy] }).to_string()).expect("policy"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    let mut event = sample_event("scaler/alarm-state-change.json");
    event["region"] = SCALER_REGION.into();
    event["detail"]["alarmName"] = alarm.as_str().into();
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:{SCALER_REGION}:123456789012:alarm:{alarm}"
    )]);
    event["detail"]["state"]["timestamp"] =
        t0.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string().into();
    (scaler, event)
}

/// The alarm's step applied once, and the scaler's memory agrees with it.
async fn assert_scaled_once(aws: &Aws, cluster: &str, what: &str) {
    let service = aws.service(cluster, "web").await;
    assert_eq!(service.desired_count(), SCALED_COUNT, "{what}");
    let tags = aws.service_tags(service.service_arn().expect("arn")).await;
    assert_eq!(
        tags.get(tag_keys::LAST_TARGET).map(String::as_str),
        Some(SCALED_COUNT.to_string().as_str()),
        "{what}: {tags:?}"
    );
}

type RealScaler = Scaler<EcsAdapter, CloudWatchAlarms>;

async fn handle(
    scaler: &RealScaler,
    event: &Value,
    at: DateTime<Utc>,
) -> Result<(), InvocationError> {
    scaler.handle(event.clone(), "faults", at).await.map(drop)
}

#[tokio::test]
async fn the_scaler_reaches_the_fault_free_end_state_through_every_fault() {
    quick_deployments();
    let aws = Aws::new(&Emulator::shared().sdk_config_quick_retries(SCALER_REGION));
    let (scaler, event) = scaler_case(&aws, "clean").await;
    let operations = calls_made(SCALER_REGION, async {
        handle(&scaler, &event, Utc::now())
            .await
            .expect("fault-free run");
    })
    .await;
    assert_scaled_once(&aws, "clean", "fault-free").await;
    assert!(
        operations.contains(&"UpdateService".to_string()),
        "{operations:?}"
    );

    let mut case = 0;
    let mut redelivered = 0;
    for operation in &operations {
        for fault in FAULTS {
            case += 1;
            let cluster = format!("case-{case}");
            let (scaler, event) = scaler_case(&aws, &cluster).await;
            let injected = inject(SCALER_REGION, operation, *fault);
            let what = format!("{operation} {fault:?}");
            let t0 = Utc::now();
            let deliveries =
                deliver_until_done(&what, |n| handle(&scaler, &event, t0 + minutes(n))).await;
            // A failed metric read falls back to the alarm's own reason data.
            injected.assert_consumed(&what, operation != "GetMetricData");
            redelivered += deliveries - 1;
            // A duplicate after success changes nothing, and is known as one
            // (not merely held by a cooldown).
            let duplicate = scaler
                .handle(event.clone(), "faults", t0 + minutes(deliveries))
                .await
                .expect("duplicate");
            let actions: Vec<Action> = duplicate.services.iter().map(|s| s.action).collect();
            assert_eq!(actions, [Action::Duplicate], "{what}: {duplicate:?}");
            assert_scaled_once(&aws, &cluster, &what).await;
        }
    }
    summarise("scaler", &operations, case, redelivered);
}

// ---------------------------------------------------------------- registrar

const REGISTRAR_REGION: &str = "eu-south-1";
const RUNNING_TASKS: usize = 3;

struct RegistrarCase {
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
    groups: [String; 2],
    running: Vec<String>,
}

/// A service with running tasks, bound to two target groups; one group holds
/// a target of no task.
async fn registrar_case(aws: &Aws, network: &Network, cluster: &str) -> RegistrarCase {
    let config = Emulator::shared().sdk_config_quick_retries(REGISTRAR_REGION);
    let groups = [
        aws.ip_target_group(&format!("{cluster}-a"), &network.vpc_id)
            .await,
        aws.ip_target_group(&format!("{cluster}-b"), &network.vpc_id)
            .await,
    ];
    aws.create_awsvpc_service(cluster, "web", network).await;
    aws.set_desired_count(cluster, "web", i32::try_from(RUNNING_TASKS).expect("small"))
        .await;
    let tasks = aws
        .run_service_tasks(cluster, "web", network, RUNNING_TASKS)
        .await;
    aws.wait_for_deployment(cluster, "web").await;
    aws.register_target(&groups[0], "10.0.250.250", TASK_PORT)
        .await;
    let document = json!({"services": [{
        "cluster": cluster, "service": "web",
        "target_groups": groups.iter().map(|arn| json!({"target_group_arn": arn, "port": TASK_PORT})).collect::<Vec<_>>()
    }]});
    let registrar = Registrar::new(
        RegistrarConfig::parse(&document.to_string()).expect("config"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
        false,
    );
    let mut running: Vec<String> = tasks.into_iter().map(|(_, ip)| ip).collect();
    running.sort();
    RegistrarCase {
        registrar,
        groups,
        running,
    }
}

/// Each group holds every running task once, and nothing else that is not draining.
async fn assert_groups_hold_the_running_tasks(aws: &Aws, case: &RegistrarCase, what: &str) {
    for group in &case.groups {
        let active: Vec<String> = aws
            .active_targets(group)
            .await
            .into_iter()
            .filter(|(_, port)| *port == TASK_PORT)
            .map(|(ip, _)| ip)
            .collect();
        assert_eq!(active, case.running, "{what}: {group}");
    }
}

/// The scheduled reconcile of every bound service.
async fn reconcile(case: &RegistrarCase, at: DateTime<Utc>) -> Result<(), InvocationError> {
    let tick = sample_event("registrar/reconcile-schedule.json");
    case.registrar.handle(tick, at).await.map(drop)
}

#[tokio::test]
async fn the_registrar_completes_a_partly_failed_reconcile_on_redelivery() {
    quick_deployments();
    let aws = Aws::new(&Emulator::shared().sdk_config_quick_retries(REGISTRAR_REGION));
    let network = aws.network().await;
    let clean = registrar_case(&aws, &network, "clean").await;
    let operations = calls_made(REGISTRAR_REGION, async {
        reconcile(&clean, Utc::now()).await.expect("fault-free run");
    })
    .await;
    assert_groups_hold_the_running_tasks(&aws, &clean, "fault-free").await;
    for needed in ["RegisterTargets", "DeregisterTargets"] {
        assert!(operations.iter().any(|o| o == needed), "{operations:?}");
    }

    let mut case_number = 0;
    let mut redelivered = 0;
    for operation in &operations {
        for fault in FAULTS {
            case_number += 1;
            let case = registrar_case(&aws, &network, &format!("case-{case_number}")).await;
            let injected = inject(REGISTRAR_REGION, operation, *fault);
            let what = format!("{operation} {fault:?}");
            let t0 = Utc::now();
            let deliveries = deliver_until_done(&what, |n| reconcile(&case, t0 + minutes(n))).await;
            injected.assert_consumed(&what, true);
            redelivered += deliveries - 1;
            reconcile(&case, t0 + minutes(deliveries))
                .await
                .expect("duplicate");
            assert_groups_hold_the_running_tasks(&aws, &case, &what).await;
        }
    }
    summarise("registrar", &operations, case_number, redelivered);
}

// ---------------------------------------------------------------- probe

const PROBE_REGION: &str = "eu-west-3";

/// How many `CheckSuccess` samples each minute from `from` on holds for `check`.
async fn samples_per_minute(
    aws: &Aws,
    namespace: &str,
    check: &str,
    from: DateTime<Utc>,
) -> BTreeMap<i64, f64> {
    let at = |t: DateTime<Utc>| aws_smithy_types::DateTime::from_millis(t.timestamp_millis());
    let out = aws
        .cloudwatch
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name("CheckSuccess")
        .dimensions(Dimension::builder().name("Check").value(check).build())
        .start_time(at(from
            .duration_trunc(TimeDelta::minutes(1))
            .expect("minute")
            - minutes(1)))
        .end_time(at(from + minutes(MOST_DELIVERIES + 2)))
        .period(60)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .expect("get_metric_statistics");
    out.datapoints()
        .iter()
        .map(|d| {
            (
                d.timestamp().map(|t| t.secs()).unwrap_or_default(),
                d.sample_count().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_probe_never_publishes_a_batch_twice() {
    let site = TestSite::start().await;
    let config = Emulator::shared().sdk_config_quick_retries(PROBE_REGION);
    let aws = Aws::new(&config);
    let network = aws.network().await;
    let group = aws.ip_target_group("probed", &network.vpc_id).await;
    aws.register_target(&group, "10.0.0.7", TASK_PORT).await;
    let prober = |namespace: &str| {
        let document = json!({
            "namespace": namespace,
            "checks": [
                {"name": "home", "url": format!("{}/ok", site.http)},
                {"name": "broken", "url": format!("{}/fail", site.http)}
            ],
            "target_groups": [{"name": "probed", "target_group_arn": group}]
        });
        Prober::new(
            ProbeConfig::parse(&document.to_string()).expect("config"),
            HttpAdapter::new(),
            Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config)),
            CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&config)),
        )
    };
    let tick = sample_event("probe/scheduled-tick.json");
    // Each delivery measures in a minute of its own.
    let t0 = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .expect("whole minute")
        + TimeDelta::seconds(10);
    let operations = calls_made(PROBE_REGION, async {
        prober("Faults/Clean")
            .handle(tick.clone(), t0, None)
            .await
            .expect("fault-free run");
    })
    .await;
    assert_eq!(operations, ["DescribeTargetHealth", "PutMetricData"]);

    let mut case = 0;
    let mut redelivered = 0;
    for operation in &operations {
        for fault in FAULTS {
            case += 1;
            let namespace = format!("Faults/Case{case}");
            let probe = prober(&namespace);
            let injected = inject(PROBE_REGION, operation, *fault);
            let what = format!("{operation} {fault:?}");
            let deliveries = deliver_until_done(&what, |n| {
                let (probe, tick, what, fault) = (&probe, tick.clone(), &what, *fault);
                async move {
                    let report = probe.handle(tick, t0 + minutes(n), None).await?;
                    // A count that failed past the SDK's retries is reported, not
                    // fatal: the checks' metrics still go out.
                    let group = &report.target_groups[0];
                    assert!(
                        group.counts.is_some() || fault.times >= 3,
                        "{what}: {group:?}"
                    );
                    Ok(())
                }
            })
            .await;
            // A count defeated by its fault is reported, not retried.
            injected.assert_consumed(&what, operation == "PutMetricData");
            redelivered += deliveries - 1;
            for check in ["home", "broken"] {
                let samples = samples_per_minute(&aws, &namespace, check, t0).await;
                assert!(
                    samples.values().all(|count| *count == 1.0),
                    "{what}: a batch landed twice: {samples:?}"
                );
                // The last delivery's batch landed; a failed one at most once.
                let landed = samples.len();
                assert!((1..=deliveries).contains(&landed), "{what}: {samples:?}");
            }
        }
    }
    summarise("probe", &operations, case, redelivered);
}

// ---------------------------------------------------------------- drill

const DRILL_REGION: &str = "ap-southeast-1";

/// A drill that acts and restores: one more task for a second, then back.
fn scale_drill(w: &World) -> e2e::drill_world::RealDriller {
    w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
        json!({"steady_state": {"running_equals_desired": false},
               "max_duration_seconds": 10, "poll_seconds": 1}),
    )
}

/// Nothing of the drill is left: the count it found, and no lock or saved state.
async fn assert_undone(w: &World, what: &str) {
    assert_eq!(w.desired().await, 2, "{what}: desired count");
    assert!(w.drill_tags().await.is_empty(), "{what}: drill tags left");
}

#[tokio::test]
async fn a_drill_is_never_left_half_done_through_every_fault() {
    let w = world_of(DRILL_REGION, 2).await;
    let operations = calls_made(DRILL_REGION, async {
        scale_drill(&w)
            .handle(start("scale-web", "execute"), None)
            .await
            .expect("fault-free run");
    })
    .await;
    assert_undone(&w, "fault-free").await;
    assert!(
        operations.contains(&"UpdateService".to_string()),
        "{operations:?}"
    );
    let sweep = sample_event("drill/sweep-schedule.json");

    let mut case = 0;
    let mut redelivered = 0;
    for operation in &operations {
        for fault in FAULTS {
            case += 1;
            let injected = inject(DRILL_REGION, operation, *fault);
            let what = format!("{operation} {fault:?}");
            // A run that fails does so retryably; whatever it left, the
            // sweep (once the lock has expired, as after a crash) undoes.
            let deliveries = deliver_until_done(&what, |n| {
                let (w, sweep) = (&w, sweep.clone());
                async move {
                    if n == 0 {
                        scale_drill(w)
                            .handle(start("scale-web", "execute"), None)
                            .await
                            .map(drop)
                    } else {
                        w.expire_lock_if_held().await;
                        scale_drill(w).handle(sweep, None).await.map(drop)
                    }
                }
            })
            .await;
            injected.assert_consumed(&what, false);
            redelivered += deliveries - 1;
            if !w.drill_tags().await.is_empty() {
                // The run ended (reported, not failed) holding what it could
                // not release: the sweep finishes it.
                w.expire_lock_if_held().await;
                scale_drill(&w)
                    .handle(sweep.clone(), None)
                    .await
                    .expect("sweep");
            }
            assert_undone(&w, &what).await;
            w.aws.wait_until_healthy(&w.target_group).await;
        }
    }
    summarise("drill", &operations, case, redelivered);
}
