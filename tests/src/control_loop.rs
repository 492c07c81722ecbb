//! The whole loop on the local emulator, minute by minute on the emulator's
//! clock (starting at the current minute): a site on loopback slows down when
//! its tasks are few; the probe measures it and publishes `CheckLatency`; at
//! the next minute boundary the emulator evaluates the alarms on those
//! datapoints, as CloudWatch does once a minute, and emits each state change
//! as an event, which reaches the scaler; the emulator's ECS scheduler starts
//! or stops tasks to meet the desired count, each task through its states, and
//! emits each change, which reaches the registrar; targets turn healthy; the
//! site recovers.
//!
//! The functions run through their handlers and real adapters, fed the events
//! the emulator emitted, as EventBridge rules would deliver them.

use crate::emulator_clock::minute_of;
use crate::{control_request, sample_event, Aws, Emulator, TASK_PORT};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::aws::elbv2::Elbv2Adapter;
use ecs_control::config::{ProbeConfig, RegistrarConfig, ScalerConfig};
use ecs_control::invocation::variant_name;
use probe::handler::Prober;
use probe::http::HttpAdapter;
use registrar::handler::Registrar;
use scaler::handler::Scaler;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";
const CHECK: &str = "web-latency";
pub const HIGH_ALARM: &str = "loop-latency-high";
pub const LOW_ALARM: &str = "loop-latency-low";
/// Latency above this (ms, the minute's average) is too slow.
pub const HIGH_MS: f64 = 300.0;
/// Below this for three minutes, the service has more tasks than it needs.
pub const LOW_MS: f64 = 60.0;

/// A site whose answer takes `work_ms / healthy targets`: load spread over capacity.
struct LoadedSite {
    url: String,
    work_ms: Arc<AtomicU64>,
    capacity: Arc<AtomicU32>,
}

impl LoadedSite {
    async fn start() -> Self {
        let work_ms = Arc::new(AtomicU64::new(0));
        let capacity = Arc::new(AtomicU32::new(1));
        let (work, cap) = (work_ms.clone(), capacity.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let (work, cap) = (work.clone(), cap.clone());
                async move {
                    let ms =
                        work.load(Ordering::SeqCst) / u64::from(cap.load(Ordering::SeqCst).max(1));
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            work_ms,
            capacity,
        }
    }
}

/// What one minute of the loop saw and did.
#[derive(Debug, Clone)]
pub struct Minute {
    pub minute: i64,
    pub latency_ms: f64,
    /// Alarm name → state at the minute boundary after the probe's datapoint.
    pub alarms: BTreeMap<String, String>,
    /// What the scaler did, per event it got: (trigger, action, before, after).
    pub scaler: Vec<(String, String, u32, u32)>,
    pub desired: u32,
    pub running: usize,
    pub registered: usize,
    pub deregistered: usize,
    /// Targets by state after the minute.
    pub targets: BTreeMap<String, usize>,
}

/// The loop's world: one region of an emulator, the site, and the three functions.
pub struct ControlLoop {
    pub aws: Aws,
    region: String,
    target_group: String,
    site: LoadedSite,
    prober: Prober<HttpAdapter, Elbv2Adapter, CloudWatchMetrics>,
    scaler: Scaler<EcsAdapter, CloudWatchAlarms>,
    registrar: Registrar<EcsAdapter, Elbv2Adapter>,
    /// How many of the region's emitted events (alarm, task) were delivered.
    delivered: (usize, usize),
    alarm_states: BTreeMap<String, String>,
    /// Minute 0: the first minute boundary after the loop starts, on the
    /// region's clock.
    pub t0: DateTime<Utc>,
}

fn check_dimension() -> Dimension {
    Dimension::builder().name("Check").value(CHECK).build()
}

impl ControlLoop {
    /// A service of 2 tasks behind an `ip` target group, the alarms on the
    /// probe's latency, and the three functions configured for them.
    pub async fn start(emulator: &Emulator, region: &str) -> Self {
        // Targets turn healthy a second after registration.
        emulator.control("POST", "settings", &json!({"healthy_seconds": 1}));
        let config = emulator.sdk_config(region);
        let aws = Aws::new(&config);
        // The loop's minutes start at the next minute boundary, a second in.
        let t0 = minute_of(aws.clock_now()) + TimeDelta::minutes(1);
        aws.set_clock(t0 + TimeDelta::seconds(1));
        // ECS's scheduler keeps the desired count, each task state a tenth of a second.
        aws.schedule_tasks(0.1);
        let (_network, target_group) = aws.awsvpc_service_with_group(CLUSTER, SERVICE, 2).await;
        for (name, threshold, comparison, periods) in [
            (
                HIGH_ALARM,
                HIGH_MS,
                ComparisonOperator::GreaterThanThreshold,
                1,
            ),
            (LOW_ALARM, LOW_MS, ComparisonOperator::LessThanThreshold, 3),
        ] {
            aws.cloudwatch
                .put_metric_alarm()
                .alarm_name(name)
                .namespace("EcsControl/Probe")
                .metric_name("CheckLatency")
                .dimensions(check_dimension())
                .statistic(Statistic::Average)
                .period(60)
                .evaluation_periods(periods)
                .datapoints_to_alarm(periods)
                .threshold(threshold)
                .comparison_operator(comparison)
                .send()
                .await
                .expect("put_metric_alarm");
        }
        let site = LoadedSite::start().await;
        let policies = json!({"policies": [
            {"alarm": HIGH_ALARM, "cluster": CLUSTER, "service": SERVICE,
             "adjustment_type": "ChangeInCapacity",
             "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 2}],
             "min_capacity": 2, "max_capacity": 8,
             "scale_out_cooldown_seconds": 60, "scale_in_cooldown_seconds": 120},
            {"alarm": LOW_ALARM, "cluster": CLUSTER, "service": SERVICE,
             "adjustment_type": "ChangeInCapacity",
             "steps": [{"metric_interval_upper_bound": 0, "scaling_adjustment": -1}],
             "min_capacity": 2, "max_capacity": 8,
             "scale_out_cooldown_seconds": 60, "scale_in_cooldown_seconds": 120}
        ]});
        let registrar_document = json!({"services": [{"cluster": CLUSTER, "service": SERVICE,
            "target_groups": [{"target_group_arn": target_group, "port": TASK_PORT}]}]});
        let probe_document = json!({"namespace": "EcsControl/Probe", "checks": [
            {"name": CHECK, "url": site.url, "timeout_ms": 5000}
        ]});
        let ecs = || EcsAdapter::new(aws_sdk_ecs::Client::new(&config));
        let elb = || Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&config));
        let mut world = Self {
            prober: Prober::new(
                ProbeConfig::parse(&probe_document.to_string()).expect("probe document"),
                HttpAdapter::new(),
                elb(),
                CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&config)),
            ),
            scaler: Scaler::new(
                ScalerConfig::parse(&policies.to_string()).expect("policies"),
                ecs(),
                CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
                false,
            ),
            registrar: Registrar::new(
                RegistrarConfig::parse(&registrar_document.to_string()).expect("document"),
                ecs(),
                elb(),
                false,
            ),
            aws,
            region: region.to_string(),
            target_group,
            site,
            delivered: (0, 0),
            alarm_states: BTreeMap::new(),
            t0,
        };
        world.follow_desired_count(world.t0).await;
        world
    }

    /// Sets the work each request brings (ms at one task).
    pub fn set_load(&self, work_ms: u64) {
        self.site.work_ms.store(work_ms, Ordering::SeqCst);
    }

    async fn desired(&self) -> u32 {
        u32::try_from(self.aws.desired_count(CLUSTER, SERVICE).await).unwrap_or(0)
    }

    /// The events of `source` the emulator emitted in this region since the
    /// `delivered`-th.
    fn emitted_since(&self, source: &str, delivered: usize) -> (Vec<Value>, usize) {
        let answer = control_request(
            &self.aws.endpoint,
            "GET",
            &format!("events?source={source}"),
            &json!({}),
        );
        let events: Vec<Value> = answer["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["region"] == self.region.as_str())
            .cloned()
            .collect();
        let total = events.len();
        (events.into_iter().skip(delivered).collect(), total)
    }

    /// Waits for ECS's scheduler to meet the desired count (every task of the
    /// service RUNNING or STOPPED), then delivers each task state change it
    /// emitted to the registrar, as the rule would. Returns the running count
    /// and the (registered, deregistered) targets.
    async fn follow_desired_count(&mut self, now: DateTime<Utc>) -> (usize, usize, usize) {
        let desired = self.desired().await as usize;
        let running = self
            .aws
            .wait_for_tasks(
                (CLUSTER, SERVICE),
                DesiredStatus::Running,
                "at its desired count",
                |tasks| {
                    tasks.len() == desired
                        && tasks.iter().all(|t| t.last_status() == Some("RUNNING"))
                },
            )
            .await
            .len();
        self.aws
            .wait_for_tasks(
                (CLUSTER, SERVICE),
                DesiredStatus::Stopped,
                "done stopping",
                |tasks| tasks.iter().all(|t| t.last_status() == Some("STOPPED")),
            )
            .await;
        let (events, total) = self.emitted_since("aws.ecs", self.delivered.1);
        self.delivered.1 = total;
        let (mut registered, mut deregistered) = (0, 0);
        for event in events {
            let record = self.registrar.handle(event, now).await.expect("registrar");
            for call in record.groups.iter().flat_map(|g| &g.calls).filter(|c| c.ok) {
                match call.operation {
                    "elasticloadbalancing:RegisterTargets" => registered += call.targets.len(),
                    "elasticloadbalancing:DeregisterTargets" => {
                        deregistered += call.targets.len();
                    }
                    _ => {}
                }
            }
        }
        if registered > 0 {
            self.aws.wait_until_healthy(&self.target_group).await;
        }
        (running, registered, deregistered)
    }

    async fn target_states(&self) -> BTreeMap<String, usize> {
        let mut states = BTreeMap::new();
        for (_, _, state) in self.aws.targets(&self.target_group).await {
            *states.entry(state).or_insert(0) += 1;
        }
        states
    }

    /// One minute: probe, the clock to the next minute boundary (the alarms
    /// evaluated there), scaler (events for changed alarms, then its tick),
    /// ECS following the desired count, the registrar, the targets.
    pub async fn minute(&mut self, k: i64) -> Minute {
        let now = self.t0 + TimeDelta::minutes(k) + TimeDelta::seconds(30);
        self.site.capacity.store(
            u32::try_from(
                self.target_states()
                    .await
                    .get("healthy")
                    .copied()
                    .unwrap_or(0),
            )
            .unwrap_or(1),
            Ordering::SeqCst,
        );
        let report = self
            .prober
            .handle(sample_event("probe/scheduled-tick.json"), now, None)
            .await
            .expect("probe");
        let latency_ms = report.checks[0].measured.latency_ms;
        // CloudWatch evaluates on the minute: the datapoint counts at the next one.
        self.aws
            .evaluate_alarms_at(self.t0 + TimeDelta::minutes(k + 1) + TimeDelta::seconds(1));
        let mut scaler = Vec::new();
        let (events, total) = self.emitted_since("aws.cloudwatch", self.delivered.0);
        self.delivered.0 = total;
        for event in events {
            let name = event["detail"]["alarmName"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let state = event["detail"]["state"]["value"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let record = self
                .scaler
                .handle(event, "loop", now)
                .await
                .expect("scaler");
            if let Some(d) = record.services.first() {
                scaler.push((
                    format!("{name} → {state}"),
                    variant_name(&d.action),
                    d.before.unwrap_or(0),
                    d.after.unwrap_or(0),
                ));
            }
            self.alarm_states.insert(name, state);
        }
        let states = self.alarm_states.clone();
        let mut tick = sample_event("scaler/recheck-schedule.json");
        tick["id"] = format!("loop-minute-{k}").into();
        let record = self.scaler.handle(tick, "loop", now).await.expect("tick");
        if let Some(d) = record.services.first() {
            scaler.push((
                "tick".to_string(),
                variant_name(&d.action),
                d.before.unwrap_or(0),
                d.after.unwrap_or(0),
            ));
        }
        let (running, registered, deregistered) = self.follow_desired_count(now).await;
        Minute {
            minute: k,
            latency_ms,
            alarms: states,
            scaler,
            desired: self.desired().await,
            running,
            registered,
            deregistered,
            targets: self.target_states().await,
        }
    }
}

/// A minute in words, as the demo prints it.
pub fn describe(m: &Minute) -> String {
    let alarms: Vec<String> = m.alarms.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let scaler: Vec<String> = m
        .scaler
        .iter()
        .map(|(trigger, action, before, after)| format!("{trigger}: {action} {before} -> {after}"))
        .collect();
    let targets: Vec<String> = m.targets.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(
        "minute {:>2}: latency {:>4.0} ms | {} | scaler: {} | desired {}, running {} | registered {}, deregistered {} | targets: {}",
        m.minute,
        m.latency_ms,
        alarms.join(", "),
        if scaler.is_empty() { "-".to_string() } else { scaler.join("; ") },
        m.desired,
        m.running,
        m.registered,
        m.deregistered,
        targets.join(", ")
    )
}
