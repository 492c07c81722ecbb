//! Run → checks and target-group counts, concurrently → verdicts → metrics → report.

use crate::events::{self, Run};
use chrono::{DateTime, Utc};
use ecs_control::config::probe::WatchedTargetGroup;
use ecs_control::config::ProbeConfig;
use ecs_control::domain::probe::HttpCheck;
use ecs_control::domain::probe::{
    check_metrics, count_targets, target_metrics, verdict, CheckMeasurement, FailureReason,
    MetricDatum, TargetCounts, METRICS_PER_CALL,
};
use ecs_control::invocation::{log_decision, InvocationError};
use ecs_control::ports::{HttpChecks, MetricsSink, TargetGroups};
use futures::stream::{self, StreamExt};
use serde::Serialize;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub url: String,
    pub success: bool,
    /// Why it failed (on the last attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    pub attempts: u32,
    #[serde(flatten)]
    pub measured: CheckMeasurement,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

/// One target group's counts.
#[derive(Debug, Clone, Serialize)]
pub struct TargetGroupReport {
    pub name: String,
    pub target_group_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<TargetCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What was published.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Publication {
    pub namespace: String,
    pub enabled: bool,
    pub metrics: usize,
    pub calls: usize,
}

/// Everything one invocation checked and published.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub manual: bool,
    pub started_at: DateTime<Utc>,
    pub checks: Vec<CheckReport>,
    pub target_groups: Vec<TargetGroupReport>,
    pub failed_checks: usize,
    pub published: Publication,
}

/// The probe: configuration and ports, built once per cold start.
#[derive(Debug)]
pub struct Prober<H, G, M> {
    config: ProbeConfig,
    http: H,
    elb: G,
    metrics: M,
}

impl<H: HttpChecks, G: TargetGroups, M: MetricsSink> Prober<H, G, M> {
    pub fn new(config: ProbeConfig, http: H, elb: G, metrics: M) -> Self {
        Self {
            config,
            http,
            elb,
            metrics,
        }
    }

    /// The ports, for inspection.
    pub fn ports(&self) -> (&H, &G, &M) {
        (&self.http, &self.elb, &self.metrics)
    }

    /// Handles one invocation. A failed check is data in the report, not an error.
    ///
    /// # Errors
    /// A malformed event or an unknown check name (not retryable), or failing to
    /// publish metrics (retryable when CloudWatch throttles or fails).
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ProbeReport, InvocationError> {
        let run = events::parse(payload).inspect_err(|e| {
            tracing::error!(error = %e, "malformed event");
        })?;
        let checks = self.select(&run)?;
        let groups: Vec<&WatchedTargetGroup> = if run.target_groups {
            self.config.target_groups.iter().collect()
        } else {
            Vec::new()
        };

        let concurrency = self.config.concurrency;
        let check_reports = stream::iter(checks)
            .map(|check| self.run_check(check))
            .buffered(concurrency)
            .collect::<Vec<_>>();
        let group_reports = stream::iter(groups)
            .map(|group| self.count_group(group))
            .buffered(concurrency)
            .collect::<Vec<_>>();
        let (checks, target_groups) = futures::join!(check_reports, group_reports);

        let mut report = ProbeReport {
            manual: run.manual,
            started_at: now,
            failed_checks: checks.iter().filter(|c| !c.success).count(),
            checks,
            target_groups,
            published: Publication {
                namespace: self.config.namespace.clone(),
                enabled: run.publish,
                ..Publication::default()
            },
        };
        let result = if run.publish {
            self.publish(&mut report, now).await
        } else {
            Ok(())
        };
        for check in report.checks.iter().filter(|c| !c.success) {
            let reason = check.reason.as_ref().map(ToString::to_string);
            tracing::warn!(check = %check.name, reason = reason.as_deref().unwrap_or(""), "check failed");
        }
        log_decision("probe", &report);
        result.map(|()| report)
    }

    fn select<'a>(&'a self, run: &'a Run) -> Result<Vec<&'a HttpCheck>, InvocationError> {
        let mut selected: Vec<&HttpCheck> = match &run.checks {
            Some(names) => names
                .iter()
                .map(|name| {
                    self.config.check(name).ok_or_else(|| {
                        InvocationError::RejectedCommand(format!("no check is named {name:?}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            None if run.adhoc.is_empty() => self.config.checks.iter().collect(),
            None => Vec::new(),
        };
        selected.extend(run.adhoc.iter());
        Ok(selected)
    }

    /// Attempts a check up to `1 + retries` times; the last attempt is reported.
    async fn run_check(&self, check: &HttpCheck) -> CheckReport {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let observation = self.http.attempt(check, self.config.max_body_bytes).await;
            let (status, truncated, outcome) = match &observation.outcome {
                Ok(response) => (
                    Some(response.status),
                    response.body_truncated,
                    verdict(&check.expect, response),
                ),
                Err(reason) => (None, false, Err(reason.clone())),
            };
            let success = outcome.is_ok();
            if success || attempts > check.retries {
                return CheckReport {
                    name: check.name.clone(),
                    url: check.url.clone(),
                    success,
                    reason: outcome.err(),
                    attempts,
                    measured: CheckMeasurement {
                        success,
                        latency_ms: observation.latency_ms,
                        time_to_first_byte_ms: observation.time_to_first_byte_ms,
                        status,
                        certificate_days_remaining: observation.certificate_days_remaining,
                    },
                    body_truncated: truncated,
                };
            }
        }
    }

    async fn count_group(&self, group: &WatchedTargetGroup) -> TargetGroupReport {
        let mut report = TargetGroupReport {
            name: group.name.clone(),
            target_group_arn: group.target_group_arn.clone(),
            counts: None,
            error: None,
        };
        match self.elb.targets(&group.target_group_arn).await {
            Ok(targets) => report.counts = Some(count_targets(targets.iter().map(|t| t.state))),
            // Reported, not fatal: the checks' metrics still matter.
            Err(e) => report.error = Some(e.to_string()),
        }
        report
    }

    async fn publish(
        &self,
        report: &mut ProbeReport,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let data: Vec<MetricDatum> = report
            .checks
            .iter()
            .flat_map(|c| check_metrics(&c.name, &c.measured))
            .chain(report.target_groups.iter().flat_map(|g| {
                g.counts
                    .as_ref()
                    .map(|counts| target_metrics(&g.name, counts))
                    .unwrap_or_default()
            }))
            .collect();
        for batch in data.chunks(METRICS_PER_CALL) {
            self.metrics.put(&self.config.namespace, batch, now).await?;
            report.published.calls += 1;
            report.published.metrics += batch.len();
        }
        Ok(())
    }
}
