//! The load forecast behind predictive scaling, made by the `augurs` library:
//! MSTL decomposition with the daily and weekly seasons the history is long
//! enough to show, and an ETS model of what is left (the trend). The rules
//! around it (the series, the seasons, the capacity) are in
//! [`crate::domain::predictive`].

use crate::domain::alarm::MetricPoint;
use crate::domain::predictive::{
    mape, regular_series, seasonal_periods, Backtest, Forecast, HistoryUsed, BACKTEST_DAYS,
    FORECAST_HOURS, HISTORY_DAYS, MIN_HISTORY_DATAPOINTS,
};
use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Why no forecast could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error(
        "{datapoints} datapoints of history; a forecast needs at least {MIN_HISTORY_DATAPOINTS}"
    )]
    NotEnoughHistory { datapoints: usize },
    #[error("the forecasting model failed: {0}")]
    Model(String),
}

/// Forecasts the load from its history: one value per `period_seconds` from
/// the period after the last complete one in `points`, until `FORECAST_HOURS`
/// after `now`. Points of the period under way at `now` (not yet complete) are
/// left out. The forecast learns from the last `HISTORY_DAYS` of them; its
/// error on the last week is measured by forecasting that week from the
/// `HISTORY_DAYS` before it, so `points` should reach a week further back
/// (`HISTORY_DAYS + BACKTEST_DAYS` in all).
///
/// # Errors
/// Too little history, or a model that cannot fit it.
pub fn make_forecast(
    points: &[MetricPoint],
    period_seconds: u32,
    now: DateTime<Utc>,
) -> Result<Forecast, ForecastError> {
    let period = TimeDelta::seconds(i64::from(period_seconds));
    let current = now.duration_trunc(period).unwrap_or(now);
    let complete: Vec<MetricPoint> = points.iter().filter(|p| p.at < current).cloned().collect();
    let Some((first, values, filled)) = regular_series(&complete, period_seconds) else {
        return Err(ForecastError::NotEnoughHistory { datapoints: 0 });
    };
    if values.len() < MIN_HISTORY_DATAPOINTS {
        return Err(ForecastError::NotEnoughHistory {
            datapoints: values.len() - filled,
        });
    }
    let steps = |n: usize| period * i32::try_from(n).unwrap_or(i32::MAX);
    let starts_at = first + steps(values.len());
    let until = now + TimeDelta::hours(i64::from(FORECAST_HOURS));
    let horizon = usize::try_from(
        ((until - starts_at).num_seconds() + period.num_seconds() - 1) / period.num_seconds(),
    )
    .unwrap_or(0)
    .max(1);
    let backtest = backtest(&values, period_seconds);
    // The forecast learns from the last HISTORY_DAYS; anything older only
    // served the backtest.
    let span = usize::try_from(HISTORY_DAYS * 86_400 / i64::from(period_seconds)).unwrap_or(0);
    let skipped = values.len().saturating_sub(span);
    let first = first + steps(skipped);
    let filled = filled_in(&complete, first, period, values.len() - skipped);
    let values = &values[skipped..];
    let datapoints = values.len() - filled;
    let loads = predict(values, period_seconds, horizon)?;
    let seasonality = seasonal_periods(period_seconds, values.len())
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    Ok(Forecast {
        made_at: now,
        period_seconds,
        starts_at,
        loads,
        history: HistoryUsed {
            datapoints,
            filled,
            from: Some(first),
            until: Some(starts_at),
            hours: (starts_at - first).num_seconds() as f64 / 3600.0,
            seasonality,
        },
        backtest,
    })
}

/// How many of the `len` periods from `first` no datapoint covers.
fn filled_in(points: &[MetricPoint], first: DateTime<Utc>, period: TimeDelta, len: usize) -> usize {
    let until = first + period * i32::try_from(len).unwrap_or(i32::MAX);
    let mut covered: Vec<DateTime<Utc>> = points
        .iter()
        .filter(|p| p.value.is_finite() && p.at >= first && p.at < until)
        .filter_map(|p| p.at.duration_trunc(period).ok())
        .collect();
    covered.sort();
    covered.dedup();
    len - covered.len()
}

/// `horizon` values after `values`, never below zero (no load is the least).
pub fn predict(
    values: &[f64],
    period_seconds: u32,
    horizon: usize,
) -> Result<Vec<f64>, ForecastError> {
    let model_error = |e: &dyn std::fmt::Display| ForecastError::Model(e.to_string());
    let seasons: Vec<usize> = seasonal_periods(period_seconds, values.len())
        .into_iter()
        .map(|(season, _)| season)
        .collect();
    let point = if seasons.is_empty() {
        // Under two days of history: no season to learn, the trend alone.
        AutoETS::non_seasonal()
            .fit(values)
            .map_err(|e| model_error(&e))?
            .predict(horizon, None)
            .map_err(|e| model_error(&e))?
            .point
    } else {
        MSTLModel::new(seasons, AutoETS::non_seasonal().into_trend_model())
            .fit(values)
            .map_err(|e| model_error(&e))?
            .predict(horizon, None)
            .map_err(|e| model_error(&e))?
            .point
    };
    Ok(point
        .into_iter()
        .map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 })
        .collect())
}

/// The error a forecast made a week ago (from the `HISTORY_DAYS` before
/// then, or what there is) would have had over the week since.
fn backtest(values: &[f64], period_seconds: u32) -> Backtest {
    let week = usize::try_from(BACKTEST_DAYS * 86_400 / i64::from(period_seconds)).unwrap_or(0);
    if values.len() < week + MIN_HISTORY_DATAPOINTS {
        return Backtest {
            mape_percent: None,
            periods: 0,
            note: format!(
                "a week plus {MIN_HISTORY_DATAPOINTS} periods of history are needed to measure the forecast on the last week"
            ),
        };
    }
    let (before, last_week) = values.split_at(values.len() - week);
    let span = usize::try_from(HISTORY_DAYS * 86_400 / i64::from(period_seconds)).unwrap_or(0);
    let before = &before[before.len().saturating_sub(span)..];
    match predict(before, period_seconds, week) {
        Ok(forecast) => {
            let error = mape(last_week, &forecast);
            Backtest {
                mape_percent: error,
                periods: last_week.len(),
                note: match error {
                    Some(_) => format!(
                        "forecast from the {} periods before the last week, against that week",
                        before.len()
                    ),
                    None => "the last week had no load to measure against".into(),
                },
            }
        }
        Err(e) => Backtest {
            mape_percent: None,
            periods: 0,
            note: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Hourly load peaking at noon on weekdays, half on weekends.
    fn seasonal(hours: usize, start: DateTime<Utc>) -> Vec<MetricPoint> {
        (0..hours)
            .map(|h| {
                let at = start + TimeDelta::hours(h as i64);
                let hour = (h % 24) as f64;
                let weekend = matches!((h / 24) % 7, 5 | 6);
                let day = 200.0 + 800.0 * (-(hour - 12.0).powi(2) / 8.0).exp();
                MetricPoint {
                    at,
                    value: if weekend { day / 2.0 } else { day },
                }
            })
            .collect()
    }

    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
    }

    #[test]
    fn three_weeks_of_a_daily_peak_forecast_the_next_peak_and_say_how_much_history_there_was() {
        // Three weeks: two to learn from, and one more for the backtest.
        let history = seasonal(21 * 24, monday());
        let now = monday() + TimeDelta::days(21) + TimeDelta::minutes(20);
        let forecast = make_forecast(&history, 3600, now).unwrap();
        assert_eq!(forecast.starts_at, monday() + TimeDelta::days(21));
        assert_eq!(forecast.history.from, Some(monday() + TimeDelta::days(7)));
        assert_eq!(forecast.history.datapoints, 336);
        assert_eq!(forecast.history.seasonality, vec!["daily", "weekly"]);
        assert!((forecast.history.hours - 336.0).abs() < 1e-9);
        // 48 hours from now, covering the hour under way.
        assert_eq!(forecast.loads.len(), 49);
        let noon = forecast.loads[12];
        let night = forecast.loads[2];
        assert!((noon - 1000.0).abs() < 50.0, "noon {noon}");
        assert!((night - 200.0).abs() < 50.0, "night {night}");
        let mape = forecast.backtest.mape_percent.unwrap();
        assert!(mape < 10.0, "{mape}");
        assert_eq!(forecast.backtest.periods, 168);
    }

    #[test]
    fn two_weeks_forecast_with_both_seasons_and_measure_the_last_week_on_what_is_before_it() {
        let history = seasonal(14 * 24, monday());
        let forecast = make_forecast(&history, 3600, monday() + TimeDelta::days(14)).unwrap();
        assert_eq!(forecast.history.seasonality, vec!["daily", "weekly"]);
        // The backtest had one week to learn from: no weekly season, so it
        // misses the weekend and says so in its error.
        assert!(forecast.backtest.mape_percent.unwrap() > 10.0);
    }

    #[test]
    fn the_first_day_forecasts_from_what_there_is_and_says_so() {
        let history = seasonal(10, monday());
        let forecast = make_forecast(&history, 3600, monday() + TimeDelta::hours(10)).unwrap();
        assert_eq!(forecast.history.datapoints, 10);
        assert!(forecast.history.seasonality.is_empty());
        assert_eq!(forecast.backtest.mape_percent, None);
        assert!(forecast.loads.iter().all(|l| l.is_finite() && *l >= 0.0));
        let none = make_forecast(&history[..3], 3600, monday() + TimeDelta::hours(3));
        assert_eq!(
            none.unwrap_err(),
            ForecastError::NotEnoughHistory { datapoints: 3 }
        );
    }

    #[test]
    fn the_period_under_way_is_not_learned_from() {
        let mut history = seasonal(48, monday());
        // A partial hour at 02:00 on day 3: far below a whole hour's load.
        history.push(MetricPoint {
            at: monday() + TimeDelta::hours(48),
            value: 1.0,
        });
        let now = monday() + TimeDelta::hours(48) + TimeDelta::minutes(10);
        let forecast = make_forecast(&history, 3600, now).unwrap();
        assert_eq!(forecast.history.datapoints, 48);
        assert_eq!(forecast.starts_at, monday() + TimeDelta::hours(48));
    }
}
