//! Run → checks and target-group counts, concurrently → verdicts → metrics → report.

use crate::events::{self, Run};
use chrono::{DateTime, Utc};
use ecs_control::config::probe::WatchedTargetGroup;
use ecs_control::config::ProbeConfig;
use ecs_control::domain::probe::kinds::CheckKind;
use ecs_control::domain::probe::ProbeCheck;
use ecs_control::domain::probe::{
    check_metrics, count_targets, degraded, redacted_url, retry_pause, target_metrics, url_host,
    verdict, Answer, CheckMeasurement, FailureReason, MetricDatum, Phases, StepOutcome,
    TargetCounts, METRICS_PER_CALL,
};
use ecs_control::invocation::{log_decision, ControllerMetric, InvocationError};
use ecs_control::ports::{CheckAttempts, FailureKind, MetricsSink, PortError, TargetGroups};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

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
    /// A multi-step check's steps, as far as the reported attempt went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepOutcome>,
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

/// Time kept back from the invocation's deadline to publish what finished.
const PUBLISH_RESERVE: Duration = Duration::from_secs(2);
/// An attempt is not started with less time than this left.
const SHORTEST_ATTEMPT: Duration = Duration::from_millis(100);

/// Target groups read at once: each read waits on the ELB Describe budget
/// the adapter keeps (half of AWS's 40 burst and 10 a second), so more at
/// once would only wait, and the registrar shares the account's bucket.
const GROUP_READS_AT_ONCE: usize = 4;
/// Time kept back from the invocation's deadline to answer once published.
const ANSWER_RESERVE: Duration = Duration::from_millis(250);

/// A finished piece of a run.
enum Done {
    Check(CheckReport),
    Group(TargetGroupReport),
}

/// Everything one invocation checked and published.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub manual: bool,
    pub started_at: DateTime<Utc>,
    /// When the checks had to be done by, to publish before the invocation's deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks_deadline: Option<DateTime<Utc>>,
    /// Checks the deadline cut short (reported failed, and counted as failures).
    pub unfinished_checks: usize,
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

impl<H: CheckAttempts, G: TargetGroups, M: MetricsSink> Prober<H, G, M> {
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
    /// `deadline` is the invocation's (Lambda's `context.deadline`): checks stop
    /// in time to publish what finished before it.
    ///
    /// # Errors
    /// A malformed event, an unknown check name or a refused ad-hoc check (not
    /// retryable), or failing to publish metrics (retryable when CloudWatch
    /// throttles or fails).
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        now: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<ProbeReport, InvocationError> {
        let mut run = events::parse(payload).inspect_err(|e| {
            tracing::error!(error = %e, "malformed event");
        })?;
        self.admit_adhoc(&mut run.adhoc)?;
        let checks = self.select(&run)?;
        let groups: Vec<&WatchedTargetGroup> = if run.target_groups {
            self.config.target_groups.iter().collect()
        } else {
            Vec::new()
        };
        // AWS gives the deadline in epoch milliseconds; a deadline already past
        // (some local runtimes send a relative figure) cannot be honoured, so
        // the checks' own timeouts bound the run instead.
        let deadline = deadline.filter(|d| *d > now);
        let started = Instant::now();
        let checks_deadline =
            deadline.map(|d| d - chrono::TimeDelta::from_std(PUBLISH_RESERVE).unwrap_or_default());
        let budget_end =
            checks_deadline.map(|d| started + (d - now).to_std().unwrap_or(Duration::ZERO));

        // Checks and target-group reads run in lanes of their own, each
        // taken in completion order: a slow check holds one slot, not the
        // start of every check behind it, and group reads, which wait on
        // ELB's Describe budget, never hold a check's slot.
        let check_lane =
            stream::iter(checks.iter().enumerate())
                .map(|(i, check)| async move {
                    (i, Done::Check(self.run_check(check, budget_end).await))
                })
                .buffer_unordered(self.config.concurrency);
        let group_lane = stream::iter(groups.iter().enumerate())
            .map(|(i, group)| async move { (i, Done::Group(self.count_group(group).await)) })
            .buffer_unordered(GROUP_READS_AT_ONCE);
        let mut running = stream::select(check_lane, group_lane);
        let mut check_reports: Vec<Option<CheckReport>> = checks.iter().map(|_| None).collect();
        let mut group_reports: Vec<Option<TargetGroupReport>> =
            groups.iter().map(|_| None).collect();
        loop {
            let next = match budget_end {
                Some(end) => match tokio::time::timeout_at(end, running.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => running.next().await,
            };
            match next {
                Some((i, Done::Check(report))) => check_reports[i] = Some(report),
                Some((i, Done::Group(report))) => group_reports[i] = Some(report),
                None => break,
            }
        }
        drop(running);
        let check_reports: Vec<CheckReport> = check_reports
            .into_iter()
            .zip(&checks)
            .map(|(report, check)| report.unwrap_or_else(|| unfinished(check)))
            .collect();
        let group_reports: Vec<TargetGroupReport> = group_reports
            .into_iter()
            .zip(&groups)
            .map(|(report, group)| {
                report.unwrap_or_else(|| TargetGroupReport {
                    name: group.name.clone(),
                    target_group_arn: group.target_group_arn.clone(),
                    counts: None,
                    error: Some(FailureReason::Unfinished.to_string()),
                })
            })
            .collect();

        let mut report = ProbeReport {
            manual: run.manual,
            started_at: now,
            checks_deadline,
            unfinished_checks: check_reports
                .iter()
                .filter(|c| c.reason == Some(FailureReason::Unfinished))
                .count(),
            failed_checks: check_reports.iter().filter(|c| !c.success).count(),
            checks: check_reports,
            target_groups: group_reports,
            published: Publication {
                namespace: self.config.namespace.clone(),
                enabled: run.publish,
                ..Publication::default()
            },
        };
        let publish_end = deadline.map(|d| {
            let left = (d - now).to_std().unwrap_or(Duration::ZERO);
            started + left.saturating_sub(ANSWER_RESERVE)
        });
        let result = if run.publish {
            self.publish(&mut report, now, publish_end).await
        } else {
            Ok(())
        };
        for check in report.checks.iter().filter(|c| !c.success) {
            let reason = check.reason.as_ref().map(ToString::to_string);
            tracing::warn!(check = %check.name, reason = reason.as_deref().unwrap_or(""), "check failed");
        }
        log_decision(
            "probe",
            &report,
            &controller_metrics(&report, result.is_err()),
            now,
        );
        result.map(|()| report)
    }

    fn select<'a>(&'a self, run: &'a Run) -> Result<Vec<&'a ProbeCheck>, InvocationError> {
        let mut selected: Vec<&ProbeCheck> = match &run.checks {
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

    /// Ad-hoc checks run only where the deployment allows them, only to
    /// allowlisted hosts, and never under a configured check's name (their
    /// metrics would pass for that check's). Each gets the deployment's
    /// guard: every hop's host on the allowlist, every address it connects
    /// to outside the private ranges but those allowed.
    fn admit_adhoc(&self, adhoc: &mut [ProbeCheck]) -> Result<(), InvocationError> {
        let refuse = |why: String| Err(InvocationError::RejectedCommand(why));
        if adhoc.is_empty() {
            return Ok(());
        }
        if !self.config.adhoc.enabled {
            return refuse(
                "ad-hoc checks are off in this deployment (the probe document's adhoc.enabled)"
                    .into(),
            );
        }
        for (i, check) in adhoc.iter_mut().enumerate() {
            if self.config.check(&check.name).is_some() {
                return refuse(format!(
                    "adhoc[{i}].name: {:?} is a configured check's name",
                    check.name
                ));
            }
            let host = url_host(&check.url).unwrap_or_default();
            if !self.config.adhoc.allows(&host) {
                let field = match check.kind {
                    CheckKind::Http => "url",
                    CheckKind::Steps(_) => "steps[0].url",
                    CheckKind::Tcp(_) => "tcp.host",
                    CheckKind::Dns(_) => "dns.name",
                };
                return refuse(format!(
                    "adhoc[{i}].{field}: host {host:?} is not in the probe document's adhoc.allowed_hosts"
                ));
            }
            check.guard = self.config.adhoc.guard();
        }
        Ok(())
    }

    /// Runs each check once (with its retries), publishing and logging
    /// nothing: for a caller that judges the results itself, such as a
    /// drill's steady-state hypothesis.
    pub async fn check_once(&self, checks: &[ProbeCheck]) -> Vec<CheckReport> {
        let mut reports = Vec::with_capacity(checks.len());
        for check in checks {
            reports.push(self.run_check(check, None).await);
        }
        reports
    }

    /// Attempts a check up to `1 + retries` times, each within the check's
    /// timeout and the run's budget, pausing between them ([`retry_pause`]);
    /// the last attempt is reported. A retry whose pause would leave no time
    /// for an attempt is not made.
    async fn run_check(&self, check: &ProbeCheck, budget_end: Option<Instant>) -> CheckReport {
        let mut attempts = 0;
        loop {
            let timeout = match budget_end {
                Some(end) => check
                    .timeout
                    .min(end.saturating_duration_since(Instant::now())),
                None => check.timeout,
            };
            if attempts == 0 && timeout < SHORTEST_ATTEMPT {
                // No time left to start it: unfinished, not a timeout of the endpoint.
                return unfinished(check);
            }
            attempts += 1;
            let observation = self
                .http
                .attempt(check, self.config.max_body_bytes, timeout)
                .await;
            let (status, truncated, outcome) = match &observation.outcome {
                Ok(Answer::Response(response)) => (
                    Some(response.status),
                    response.body_truncated,
                    verdict(&check.expect, response),
                ),
                // Judged step by step as it went: steps, a dialogue, a lookup.
                Ok(Answer::Passed { status }) => (*status, false, Ok(())),
                Err(reason) => (
                    observation.steps.last().and_then(|s| s.status),
                    false,
                    Err(reason.clone()),
                ),
            };
            let success = outcome.is_ok();
            let pause = retry_pause(attempts, check.retry_backoff);
            let out_of_time = budget_end.is_some_and(|end| {
                end.saturating_duration_since(Instant::now()) < pause + SHORTEST_ATTEMPT
            });
            if success || attempts > check.retries || out_of_time {
                let failure_kind = outcome.as_ref().err().map(FailureReason::kind);
                return CheckReport {
                    name: check.name.clone(),
                    url: redacted_url(&check.url),
                    success,
                    reason: outcome.err(),
                    attempts,
                    measured: CheckMeasurement {
                        success,
                        degraded: degraded(success, observation.latency_ms, check.degraded_after),
                        latency_ms: observation.latency_ms,
                        phases: observation.phases,
                        status,
                        certificate_days_remaining: observation.certificate_days_remaining,
                        failure_kind,
                    },
                    body_truncated: truncated,
                    steps: observation.steps,
                };
            }
            tokio::time::sleep(pause).await;
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

    /// Publishes the run's metrics, each call within `publish_end` (the
    /// invocation's deadline, less the time to answer): a call that would
    /// outlast it is abandoned and the run fails retryably, saying how much
    /// was published.
    async fn publish(
        &self,
        report: &mut ProbeReport,
        now: DateTime<Utc>,
        publish_end: Option<Instant>,
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
            let put = self.metrics.put(&self.config.namespace, batch, now);
            match publish_end {
                Some(end) => tokio::time::timeout_at(end, put).await.map_err(|_| {
                    PortError::new(
                        FailureKind::Retryable,
                        "cloudwatch:PutMetricData",
                        format!(
                            "not finished before the invocation's deadline ({} of {} metrics published)",
                            report.published.metrics,
                            data.len()
                        ),
                    )
                })??,
                None => put.await?,
            }
            report.published.calls += 1;
            report.published.metrics += batch.len();
        }
        Ok(())
    }
}

/// The report of a check the deadline cut short: a failure, so the success
/// alarm sees it.
fn unfinished(check: &ProbeCheck) -> CheckReport {
    CheckReport {
        name: check.name.clone(),
        url: redacted_url(&check.url),
        success: false,
        reason: Some(FailureReason::Unfinished),
        attempts: 0,
        measured: CheckMeasurement {
            success: false,
            degraded: check.degraded_after.map(|_| false),
            latency_ms: check.timeout.as_secs_f64() * 1000.0,
            phases: Phases::default(),
            status: None,
            certificate_days_remaining: None,
            failure_kind: Some(FailureReason::Unfinished.kind()),
        },
        body_truncated: false,
        steps: Vec::new(),
    }
}

/// The probe's own metrics for one run: checks run and failed, and whether
/// publishing failed. They travel in the log, so a failed PutMetricData is
/// still seen.
pub fn controller_metrics(report: &ProbeReport, publish_failed: bool) -> Vec<ControllerMetric> {
    let count = |n: usize| n as f64;
    vec![
        ControllerMetric::new("Checks", vec![], count(report.checks.len())),
        ControllerMetric::new("FailedChecks", vec![], count(report.failed_checks)),
        ControllerMetric::new(
            "PublishFailures",
            vec![],
            count(usize::from(publish_failed)),
        ),
    ]
}
