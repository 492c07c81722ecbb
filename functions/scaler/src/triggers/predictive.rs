//! Predictive policies: the forecast each keeps (made again from fresh
//! history every `REFRESH_MINUTES`, every stale policy's history in as few
//! `GetMetricData` calls as CloudWatch allows), the minimum it raises ahead
//! of the load, and the `preview_forecast` command.

use crate::decision::{DecisionRecord, ForecastMade, ForecastPreview, ServiceDecision};
use crate::forecast_cache::Cached;
use crate::handler::Scaler;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use ecs_control::domain::alarm::MetricPoint;
use ecs_control::domain::metric_batch::{plan_batches, within, MetricRead};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::predictive::{
    decide, preview, PredictivePolicy, BACKTEST_DAYS, FORECAST_HOURS, HISTORY_DAYS,
};
use ecs_control::domain::schedule::bounds_at;
use ecs_control::domain::service::ServiceRef;
use ecs_control::forecast::make_forecast;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most one invocation spends fitting forecasts: the rest keep the
/// forecast they have and are made on the next tick.
const FITTING_BUDGET: Duration = Duration::from_secs(10);

/// Where a policy's history starts: two weeks to learn from and one more to
/// measure the forecast on, whole periods.
fn history_start(policy: &PredictivePolicy, now: DateTime<Utc>) -> DateTime<Utc> {
    let period = TimeDelta::seconds(i64::from(policy.period_seconds));
    now.duration_trunc(period).unwrap_or(now) - TimeDelta::days(HISTORY_DAYS + BACKTEST_DAYS)
}

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// Makes again the forecasts of `services` that are due: their history
    /// read together, then fitted one by one within the invocation's budget.
    /// Returns the `GetMetricData` calls made.
    pub(crate) async fn refresh_forecasts(
        &self,
        services: &BTreeSet<ServiceRef>,
        made: &mut Vec<ForecastMade>,
        now: DateTime<Utc>,
    ) -> usize {
        let due: Vec<&PredictivePolicy> = services
            .iter()
            .flat_map(|s| self.config.predictive_for_service(s))
            .filter(|p| self.forecasts.of(p).is_none_or(|c| c.is_due(now)))
            .collect();
        if due.is_empty() {
            return 0;
        }
        let reads: Vec<MetricRead> = due
            .iter()
            .map(|p| MetricRead {
                queries: p.metric.queries_at(&p.target, p.period_seconds),
                start: history_start(p, now),
                end: now,
            })
            .collect();
        let mut histories: Vec<Result<Vec<MetricPoint>, String>> =
            vec![Err("not read".into()); due.len()];
        let batches = plan_batches(&reads);
        for batch in &batches {
            let answered = self
                .alarms
                .metric_data(&batch.queries, batch.start, batch.end)
                .await
                .map_err(|e| e.to_string());
            for (index, id) in &batch.answers {
                histories[*index] = match &answered {
                    Ok(series) => Ok(series
                        .get(id)
                        .map(|points| within(points, &reads[*index]))
                        .unwrap_or_default()),
                    Err(e) => Err(e.clone()),
                };
            }
        }
        let started = Instant::now();
        for (policy, history) in due.into_iter().zip(histories) {
            let entry = ForecastMade::new(policy);
            let points = match history {
                Ok(points) => points,
                Err(why) => {
                    let why = format!("its history could not be read: {why}");
                    made.push(entry.missing(&why));
                    self.forecasts.keep(policy, Cached::missing(now, why, true));
                    continue;
                }
            };
            if started.elapsed() > FITTING_BUDGET {
                made.push(entry.deferred());
                // An older forecast still covers the coming hours.
                if !matches!(self.forecasts.of(policy), Some(Cached::Made(_))) {
                    let why =
                        "put off: an invocation's fitting budget was spent; the next makes it";
                    self.forecasts
                        .keep(policy, Cached::missing(now, why.into(), true));
                }
                continue;
            }
            match make_forecast(&points, policy.period_seconds, now) {
                Ok(forecast) => {
                    made.push(entry.made(&forecast, last_complete(&points, policy, now)));
                    self.forecasts
                        .keep(policy, Cached::Made(Arc::new(forecast)));
                }
                Err(e) => {
                    made.push(entry.missing(&e.to_string()));
                    self.forecasts
                        .keep(policy, Cached::missing(now, e.to_string(), false));
                }
            }
        }
        batches.len()
    }

    /// The bounds once `service`'s predictive policies join them: each
    /// forecast in `forecast_and_scale` raises the min for the coming
    /// interval (suspended with scheduled scaling), and every forecast is
    /// recorded.
    pub(crate) async fn predictive_bounds(
        &self,
        service: &ServiceRef,
        mut bounds: CapacityBounds,
        scheduled_suspended: bool,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> CapacityBounds {
        if self.config.predictive_for_service(service).next().is_none() {
            return bounds;
        }
        // A manual command, or a retry after a tick's failed read.
        let one = BTreeSet::from([service.clone()]);
        let mut made = Vec::new();
        for _ in 0..self.refresh_forecasts(&one, &mut made, now).await {
            decision.calls.push("cloudwatch:GetMetricData");
        }
        decision.forecasts_made.extend(made);
        for policy in self.config.predictive_for_service(service) {
            let forecast = match self.forecasts.of(policy) {
                Some(Cached::Made(forecast)) => forecast,
                Some(Cached::Missing { why, .. }) => {
                    decision
                        .notes
                        .push(format!("{}: no forecast: {why}", policy.name));
                    continue;
                }
                None => {
                    decision
                        .notes
                        .push(format!("{}: no forecast yet", policy.name));
                    continue;
                }
            };
            let Some(mut joined) = decide(policy, &forecast, bounds, now) else {
                decision.notes.push(format!(
                    "{}: the forecast made at {} does not reach now",
                    policy.name, forecast.made_at
                ));
                continue;
            };
            if scheduled_suspended && joined.applied {
                joined.bounds_after = joined.bounds_before;
                joined.applied = false;
                joined.note = format!(
                    "scheduled scaling is suspended: the forecast is recorded, not applied ({})",
                    joined.note
                );
            }
            bounds = joined.bounds_after;
            decision.forecasts.push(joined);
        }
        bounds
    }

    /// The `preview_forecast` command: the next hours of forecast load and
    /// capacity for each of the service's predictive policies, beside the
    /// bounds timeline `preview_bounds` gives.
    pub(crate) async fn preview_forecast(
        &self,
        service: &ServiceRef,
        hours: u32,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let bounds = self.bounds(service)?;
        if hours == 0 || hours > FORECAST_HOURS {
            return Err(InvocationError::RejectedCommand(format!(
                "hours must be between 1 and {FORECAST_HOURS}; got {hours}"
            )));
        }
        if self.config.predictive_for_service(service).next().is_none() {
            return Err(InvocationError::RejectedCommand(format!(
                "{service} has no predictive policy: there is no forecast to preview"
            )));
        }
        self.preview_bounds(service, hours, record, now)?;
        record.ignored = None;
        let one = BTreeSet::from([service.clone()]);
        let mut made = Vec::new();
        for _ in 0..self.refresh_forecasts(&one, &mut made, now).await {
            record.calls.push("cloudwatch:GetMetricData");
        }
        let windows = self.config.schedules_for_service(service);
        let mut previews = Vec::new();
        for policy in self.config.predictive_for_service(service) {
            let (forecast, missing) = match self.forecasts.of(policy) {
                Some(Cached::Made(forecast)) => (Some(forecast), None),
                Some(Cached::Missing { why, .. }) => (None, Some(why)),
                None => (None, Some("not made yet".to_string())),
            };
            previews.push(ForecastPreview {
                policy: policy.name.clone(),
                mode: policy.mode,
                load_per_task: policy.load_per_task,
                scheduling_buffer_seconds: policy.scheduling_buffer_seconds,
                made_at: forecast.as_ref().map(|f| f.made_at),
                history: forecast.as_ref().map(|f| f.history.clone()),
                backtest: forecast.as_ref().map(|f| f.backtest.clone()),
                missing,
                rows: forecast
                    .map(|f| {
                        preview(policy, &f, now, hours, |at| {
                            bounds_at(&windows, bounds, at).bounds
                        })
                    })
                    .unwrap_or_default(),
            });
        }
        record.forecasts_made = made;
        record.forecast_preview = Some(previews);
        Ok(())
    }
}

/// The newest complete period of the history, for the dashboard's actual load.
fn last_complete(
    points: &[MetricPoint],
    policy: &PredictivePolicy,
    now: DateTime<Utc>,
) -> Option<MetricPoint> {
    let period = TimeDelta::seconds(i64::from(policy.period_seconds));
    let current = now.duration_trunc(period).unwrap_or(now);
    points
        .iter()
        .filter(|p| p.at < current && p.value.is_finite())
        .max_by_key(|p| p.at)
        .cloned()
}
