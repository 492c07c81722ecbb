//! Predictive scaling: capacity ahead of the load a forecast expects, the way
//! Application Auto Scaling's predictive policies start it, and said in numbers.
//!
//! The forecast itself is made outside this crate (it needs a forecasting
//! library); here are the rules around it: the series it learns from, how much
//! seasonality that history can show, the capacity a forecast load asks for,
//! and how that capacity joins the bounds the other triggers give.

use crate::alarm::MetricPoint;
use crate::policy::{CapacityBounds, MAGNITUDE_LIMIT};
use crate::rounding::ceil_count;
use crate::service::ServiceRef;
use crate::target_tracking::TrackedMetric;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

/// AWS's default scheduling buffer: capacity starts 5 minutes early.
pub const DEFAULT_SCHEDULING_BUFFER_SECONDS: u32 = 300;
/// AWS takes a buffer below one hour.
pub const MAX_SCHEDULING_BUFFER_SECONDS: u32 = 3599;
/// How far ahead a forecast reaches, as AWS's does.
pub const FORECAST_HOURS: u32 = 48;
/// How much history a forecast learns from.
pub const HISTORY_DAYS: i64 = 14;
/// The periods a load metric may be read at: 5 minutes or an hour.
pub const FORECAST_PERIODS: [u32; 2] = [300, 3600];
/// The default period: hourly, as AWS forecasts.
pub const DEFAULT_FORECAST_PERIOD_SECONDS: u32 = 3600;
/// A forecast older than this is made again from fresh history.
pub const REFRESH_MINUTES: i64 = 60;
/// Fewer datapoints than this make no forecast.
pub const MIN_HISTORY_DATAPOINTS: usize = 6;
/// The stretch the forecast's accuracy is measured on.
pub const BACKTEST_DAYS: i64 = 7;

/// What a predictive policy does with its forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictiveMode {
    /// Forecast and record, change nothing: for building trust first.
    ForecastOnly,
    /// The forecast raises the minimum ahead of the load.
    ForecastAndScale,
}

/// What happens when the forecast asks for more than `max_capacity`, as
/// AWS's `MaxCapacityBreachBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "behavior", rename_all = "snake_case")]
pub enum MaxCapacityBreach {
    /// The max stands: the forecast raises the min at most to it.
    HonorMaxCapacity,
    /// The max rises to the forecast capacity plus `buffer_percent` of it.
    IncreaseMaxCapacity { buffer_percent: u32 },
}

/// One `predictive` policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictivePolicy {
    pub name: String,
    pub target: ServiceRef,
    /// The load metric: its value per period is the service's whole load.
    pub metric: TrackedMetric,
    /// The load one task carries at target, in the metric's units per period.
    pub load_per_task: f64,
    pub mode: PredictiveMode,
    pub scheduling_buffer_seconds: u32,
    pub max_capacity_breach: MaxCapacityBreach,
    /// The period the metric is read and forecast at.
    pub period_seconds: u32,
    pub bounds: CapacityBounds,
}

/// How much history a forecast learned from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryUsed {
    pub datapoints: usize,
    /// Gaps between datapoints, filled in by a straight line.
    pub filled: usize,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub hours: f64,
    /// The seasons the history is long enough to show: `daily`, `weekly`.
    pub seasonality: Vec<&'static str>,
}

/// The forecast's error on the last week: a forecast made from the history
/// before that week, against what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    /// Mean absolute percentage error, over the periods with load.
    pub mape_percent: Option<f64>,
    pub periods: usize,
    pub note: String,
}

/// A forecast of the load, one value per period from `starts_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub made_at: DateTime<Utc>,
    pub period_seconds: u32,
    pub starts_at: DateTime<Utc>,
    #[serde(skip)]
    pub loads: Vec<f64>,
    pub history: HistoryUsed,
    pub backtest: Backtest,
}

/// One interval of a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastInterval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub load: f64,
}

impl Forecast {
    fn period(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.period_seconds))
    }

    /// Where the forecast stops.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.starts_at + self.period() * i32::try_from(self.loads.len()).unwrap_or(i32::MAX)
    }

    /// The interval with the highest load among those that overlap
    /// `[from, until]`: the first such, when several tie. `None` when the
    /// forecast covers none of it.
    pub fn peak_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<ForecastInterval> {
        let period = self.period();
        let mut best: Option<ForecastInterval> = None;
        for (i, load) in self.loads.iter().enumerate() {
            let starts_at = self.starts_at + period * i32::try_from(i).ok()?;
            let ends_at = starts_at + period;
            if ends_at <= from || starts_at > until {
                continue;
            }
            if best.is_none_or(|b| *load > b.load) {
                best = Some(ForecastInterval {
                    starts_at,
                    ends_at,
                    load: *load,
                });
            }
        }
        best
    }

    /// Whether the forecast is due to be made again at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        now - self.made_at >= TimeDelta::minutes(REFRESH_MINUTES) || now < self.made_at
    }
}

/// The tasks a load needs: `ceil(load ÷ load per task)`. No load, or a
/// negative forecast, needs none; a count beyond what a policy may name is
/// cut to it.
pub fn capacity_for(load: f64, load_per_task: f64) -> u32 {
    if !(load.is_finite() && load > 0.0 && load_per_task > 0.0) {
        return 0;
    }
    let tasks = ceil_count(load / load_per_task).min(MAGNITUDE_LIMIT as f64);
    // In range: between 0 and MAGNITUDE_LIMIT.
    tasks as u32
}

/// What the forecast asks of the service now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastDecision {
    pub policy: String,
    pub mode: PredictiveMode,
    /// The interval whose load sets the capacity: the highest of those that
    /// start before now plus the scheduling buffer.
    pub interval: ForecastInterval,
    pub arithmetic: String,
    pub capacity: u32,
    pub bounds_before: CapacityBounds,
    pub bounds_after: CapacityBounds,
    /// Whether the forecast moved the bounds.
    pub applied: bool,
    pub note: String,
    pub made_at: DateTime<Utc>,
    pub history: HistoryUsed,
    pub backtest: Backtest,
}

/// What `policy`'s forecast asks of the bounds at `now`: the capacity for
/// the highest load forecast from now until now plus the scheduling buffer,
/// so capacity is running by the time the load arrives and stays through
/// the interval it was forecast for. `None` when the forecast does not
/// reach now.
pub fn decide(
    policy: &PredictivePolicy,
    forecast: &Forecast,
    bounds: CapacityBounds,
    now: DateTime<Utc>,
) -> Option<ForecastDecision> {
    let until = now + TimeDelta::seconds(i64::from(policy.scheduling_buffer_seconds));
    let interval = forecast.peak_between(now, until)?;
    let capacity = capacity_for(interval.load, policy.load_per_task);
    let arithmetic = format!(
        "ceil({:.2} / {}) = {capacity}",
        interval.load, policy.load_per_task
    );
    let (bounds_after, note) = join(policy, capacity, bounds);
    Some(ForecastDecision {
        policy: policy.name.clone(),
        mode: policy.mode,
        interval,
        arithmetic,
        capacity,
        bounds_before: bounds,
        bounds_after,
        applied: bounds_after != bounds,
        note,
        made_at: forecast.made_at,
        history: forecast.history.clone(),
        backtest: forecast.backtest.clone(),
    })
}

/// How a forecast capacity joins the bounds in force (the policy bounds as
/// the windows narrowed them): like a window, it raises the minimum, never
/// lowers anything, so predictive scaling never scales in by itself, and
/// target tracking and step policies act on top. The budget narrows what
/// this gives, after.
pub fn join(
    policy: &PredictivePolicy,
    capacity: u32,
    bounds: CapacityBounds,
) -> (CapacityBounds, String) {
    if policy.mode == PredictiveMode::ForecastOnly {
        return (
            bounds,
            format!("forecast_only: {capacity} tasks recorded, the bounds are left as they are"),
        );
    }
    let max = match policy.max_capacity_breach {
        MaxCapacityBreach::HonorMaxCapacity => bounds.max,
        MaxCapacityBreach::IncreaseMaxCapacity { buffer_percent } => {
            let buffered = ceil_count(f64::from(capacity) * f64::from(100 + buffer_percent) / 100.0)
                .min(MAGNITUDE_LIMIT as f64) as u32;
            bounds.max.max(buffered)
        }
    };
    let min = bounds.min.max(capacity.min(max));
    let after = CapacityBounds { min, max };
    let note = if capacity <= bounds.min {
        format!(
            "{capacity} tasks forecast, at or below the min {}: the bounds stand",
            bounds.min
        )
    } else if capacity > bounds.max && max == bounds.max {
        format!(
            "{capacity} tasks forecast, above the max {}: the min rises to the max (honor_max_capacity)",
            bounds.max
        )
    } else if max > bounds.max {
        format!(
            "{capacity} tasks forecast: the min rises to {min} and the max from {} to {max} (increase_max_capacity)",
            bounds.max
        )
    } else {
        format!(
            "{capacity} tasks forecast: the min rises from {} to {min}",
            bounds.min
        )
    };
    (after, note)
}

/// One row of a `preview_forecast`: an interval's forecast load and capacity,
/// and the bounds in force once the forecast joins them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastRow {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub load: f64,
    /// The capacity the interval's load needs.
    pub capacity: u32,
    /// The bounds before the forecast joins them (policy and windows).
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// The bounds the forecast gives (`forecast_only`: the same).
    pub forecast_min_capacity: u32,
    pub forecast_max_capacity: u32,
}

/// The forecast's intervals from `from` for `hours`, each with the bounds
/// `bounds_at` gives at its start. The capacity starts a scheduling buffer
/// before its interval; the row shows the interval itself.
pub fn preview(
    policy: &PredictivePolicy,
    forecast: &Forecast,
    from: DateTime<Utc>,
    hours: u32,
    bounds_at: impl Fn(DateTime<Utc>) -> CapacityBounds,
) -> Vec<ForecastRow> {
    let until = from + TimeDelta::hours(i64::from(hours));
    let period = forecast.period();
    let mut rows = Vec::new();
    for (i, load) in forecast.loads.iter().enumerate() {
        let Ok(i) = i32::try_from(i) else { break };
        let start = forecast.starts_at + period * i;
        if start + period <= from {
            continue;
        }
        if start >= until {
            break;
        }
        let capacity = capacity_for(*load, policy.load_per_task);
        let bounds = bounds_at(start.max(from));
        let (joined, _) = join(policy, capacity, bounds);
        rows.push(ForecastRow {
            from: start,
            until: start + period,
            load: *load,
            capacity,
            min_capacity: bounds.min,
            max_capacity: bounds.max,
            forecast_min_capacity: joined.min,
            forecast_max_capacity: joined.max,
        });
    }
    rows
}

/// A metric's datapoints as a regular series, one value per period, from the
/// first datapoint's period to the last's: a forecaster needs every period.
/// A gap is filled by a straight line between its neighbours (the count of
/// filled periods is returned), and points are aligned down to their period.
/// Returns the first period's start, the values and how many were filled.
pub fn regular_series(
    points: &[MetricPoint],
    period_seconds: u32,
) -> Option<(DateTime<Utc>, Vec<f64>, usize)> {
    let period = TimeDelta::seconds(i64::from(period_seconds.max(1)));
    let mut aligned: Vec<(DateTime<Utc>, f64)> = points
        .iter()
        .filter(|p| p.value.is_finite())
        .filter_map(|p| Some((p.at.duration_trunc(period).ok()?, p.value)))
        .collect();
    aligned.sort_by_key(|(at, _)| *at);
    aligned.dedup_by_key(|(at, _)| *at);
    let (first, _) = *aligned.first()?;
    let mut values: Vec<f64> = Vec::new();
    let mut filled = 0;
    let mut previous: Option<(i64, f64)> = None;
    for (at, value) in aligned {
        let index = (at - first).num_seconds() / period.num_seconds();
        if let Some((before, was)) = previous {
            let gap = index - before;
            for step in 1..gap {
                let share = step as f64 / gap as f64;
                values.push(was + (value - was) * share);
                filled += 1;
            }
        }
        values.push(value);
        previous = Some((index, value));
    }
    Some((first, values, filled))
}

/// The seasonal periods, in datapoints, a series of `len` periods of
/// `period_seconds` is long enough to learn: two full cycles of a day for
/// the daily season, two of a week for the weekly one.
pub fn seasonal_periods(period_seconds: u32, len: usize) -> Vec<(usize, &'static str)> {
    let per_day = (86_400 / period_seconds.max(1)) as usize;
    [(per_day, "daily"), (per_day * 7, "weekly")]
        .into_iter()
        .filter(|(season, _)| *season >= 2 && len >= 2 * season)
        .collect()
}

/// Mean absolute percentage error of `forecast` against `actual`, over the
/// periods whose actual load is above zero (a percentage of nothing is not
/// defined). `None` when there is none.
pub fn mape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let errors: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .filter(|(a, f)| **a > 0.0 && a.is_finite() && f.is_finite())
        .map(|(a, f)| ((a - f) / a).abs())
        .collect();
    (!errors.is_empty()).then(|| 100.0 * errors.iter().sum::<f64>() / errors.len() as f64)
}
