//! Predictive scaling through the real adapters against the emulator: two
//! weeks of the ALB's request count, seeded with `PutMetricData` on a clock
//! relative to now, with a peak at the same hour every day; the scaler reads
//! it with `GetMetricData` and raises the count a scheduling buffer before
//! the next peak, or only records it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use e2e::{sample_event, Aws, Emulator};
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::EcsAdapter;
use ecs_control::config::ScalerConfig;
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::json;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";
const TARGET_GROUP: &str = "targetgroup/web/0123456789abcdef";
const LOAD_BALANCER: &str = "app/front/fedcba9876543210";

struct World {
    aws: Aws,
    scaler: Scaler<EcsAdapter, CloudWatchAlarms>,
    /// The start of the first peak hour after now: three hours ahead.
    peak: DateTime<Utc>,
}

/// 60,000 requests an hour in the peak hour and the next, 12,000 otherwise,
/// for the 14 days before the hour under way; 20,000 a task: 3 tasks at the
/// peak, 1 outside it.
async fn world(region: &str, mode: &str) -> World {
    let config = Emulator::shared().sdk_config(region);
    let aws = Aws::new(&config);
    aws.create_service(CLUSTER, SERVICE, 1).await;
    aws.wait_for_deployment(CLUSTER, SERVICE).await;
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let peak = hour + TimeDelta::hours(3);
    let dimensions = [
        ("LoadBalancer", LOAD_BALANCER),
        ("TargetGroup", TARGET_GROUP),
    ]
    .map(|(name, value)| Dimension::builder().name(name).value(value).build());
    let datums: Vec<MetricDatum> = (1..=14 * 24)
        .map(|h| {
            let start = hour - TimeDelta::hours(h);
            let hours_before_peak = (peak - start).num_hours() % 24;
            let requests = if matches!(hours_before_peak, 0 | 23) {
                60_000.0
            } else {
                12_000.0
            };
            MetricDatum::builder()
                .metric_name("RequestCount")
                .set_dimensions(Some(dimensions.to_vec()))
                .value(requests)
                .timestamp(aws_smithy_types::DateTime::from_millis(
                    (start + TimeDelta::minutes(30)).timestamp_millis(),
                ))
                .build()
        })
        .collect();
    aws.cloudwatch
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .set_metric_data(Some(datums))
        .send()
        .await
        .expect("put_metric_data");
    let arn = |kind: &str, id: &str| {
        format!("arn:aws:elasticloadbalancing:{region}:123456789012:{kind}/{id}")
    };
    let document = json!({
        "policies": [{
            "type": "predictive", "cluster": CLUSTER, "service": SERVICE, "name": "requests",
            "metric": "alb_request_count",
            "target_group_arn": arn("targetgroup", "web/0123456789abcdef"),
            "load_balancer_arn": arn("loadbalancer", LOAD_BALANCER),
            "load_per_task": 20000, "mode": mode, "scheduling_buffer_seconds": 600,
            "min_capacity": 1, "max_capacity": 10
        }]
    });
    let scaler = Scaler::new(
        ScalerConfig::parse(&document.to_string()).expect("policy document"),
        EcsAdapter::new(aws_sdk_ecs::Client::new(&config)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config)),
        false,
    );
    World { aws, scaler, peak }
}

impl World {
    async fn tick(&self, at: DateTime<Utc>) -> DecisionRecord {
        let mut event = sample_event("scaler/recheck-schedule.json");
        event["id"] = format!("tick-{}", at.timestamp()).into();
        self.scaler
            .handle(event, "e2e-request", at)
            .await
            .expect("tick")
    }

    async fn desired(&self) -> i32 {
        self.aws.desired_count(CLUSTER, SERVICE).await
    }
}

#[tokio::test]
async fn forecast_and_scale_raises_the_count_a_buffer_before_the_daily_peak() {
    let w = world("eu-west-1", "forecast_and_scale").await;
    // Eleven minutes before the peak the 10-minute buffer does not reach it.
    let record = w.tick(w.peak - TimeDelta::minutes(11)).await;
    assert_eq!(record.calls, ["cloudwatch:GetMetricData"]);
    let made = serde_json::to_value(&record.forecasts_made).unwrap();
    assert_eq!(made[0]["outcome"]["kind"], "made", "{made}");
    assert_eq!(made[0]["outcome"]["history"]["datapoints"], 14 * 24);
    let forecast = &record.services[0].forecasts[0];
    assert_eq!(forecast.capacity, 1, "{}", forecast.arithmetic);
    assert_eq!(w.desired().await, 1);

    // Ten minutes before: the buffer reaches the peak hour; 3 tasks start.
    let record = w.tick(w.peak - TimeDelta::minutes(10)).await;
    let decision = &record.services[0];
    let forecast = &decision.forecasts[0];
    assert_eq!(forecast.interval.starts_at, w.peak);
    assert_eq!(forecast.capacity, 3, "{}", forecast.arithmetic);
    assert!(forecast.applied, "{}", forecast.note);
    assert_eq!(decision.action, Action::Scaled, "{}", decision.reason);
    assert_eq!(w.desired().await, 3);
    // The forecast made ten minutes ago still stands: no read.
    assert!(record.calls.is_empty(), "{:?}", record.calls);
}

#[tokio::test]
async fn forecast_only_records_the_peak_and_leaves_the_count() {
    let w = world("eu-west-2", "forecast_only").await;
    let record = w.tick(w.peak - TimeDelta::minutes(5)).await;
    let decision = &record.services[0];
    let forecast = &decision.forecasts[0];
    assert_eq!(forecast.capacity, 3, "{}", forecast.arithmetic);
    assert!(!forecast.applied);
    assert_eq!(decision.action, Action::Held, "{}", decision.reason);
    assert_eq!(w.desired().await, 1);
}
