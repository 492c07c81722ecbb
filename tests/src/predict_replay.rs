//! `make predict`: three weeks of per-minute load, with daily and weekly
//! seasons, noise and one spike no forecast can know, replayed through
//! target tracking alone, target tracking with a predictive policy, and
//! perfect foresight. The forecast is the scaler's own
//! ([`ecs_control::forecast::make_forecast`], made again every hour from the
//! trailing history at 5-minute periods) and joins the bounds through the scaler's own rule
//! ([`ecs_control::domain::predictive::decide`]). Target tracking is decided
//! each minute by the scaler's own functions
//! ([`ecs_control::domain::target_tracking::evaluate_tracking`], then
//! [`ecs_control::domain::scaling::decide`] with the joined bounds, and the
//! cooldown memory a change leaves): out when the last 3 minutes are all above
//! the target, to `ceil(count × newest / target)`, topped up from the same base
//! within the 60 s cooldown; in when the last 15 are all below 90% of it, from
//! the highest of them, 300 s after any change.

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Timelike, Utc, Weekday};
use ecs_control::domain::alarm::MetricPoint;
use ecs_control::domain::policy::{CapacityBounds, Cooldowns};
use ecs_control::domain::predictive::{
    capacity_for, decide, mape, Forecast, MaxCapacityBreach, PredictiveMode, PredictivePolicy,
};
use ecs_control::domain::scaling::{self, Limits, ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::target_tracking::{
    evaluate_tracking, TargetTrackingPolicy, TrackedMetric,
};
use ecs_control::forecast::make_forecast;

/// Requests a minute one task serves before requests fail.
pub const TASK_CAPACITY: f64 = 1000.0;
/// What tracking and the forecast hold each task at: 80% of what it serves.
pub const TARGET_PER_TASK: f64 = 800.0;
/// Minutes from a task's start until it serves.
pub const STARTUP_MINUTES: usize = 3;
const BOUNDS: CapacityBounds = CapacityBounds { min: 1, max: 200 };

/// What to replay.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    pub seed: u64,
    /// Peak requests a minute on a weekday.
    pub peak: f64,
    /// How often the forecast is made again.
    pub refresh_hours: i64,
    pub scheduling_buffer_seconds: u32,
    /// The forecast's period: 300 s follows a half-hour ramp; 3600 s averages it away.
    pub period_seconds: u32,
}

impl Default for Replay {
    fn default() -> Self {
        Self {
            seed: 7,
            peak: 20_000.0,
            refresh_hours: 1,
            scheduling_buffer_seconds: 600,
            period_seconds: 300,
        }
    }
}

/// One set-up's figures over the third week.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: &'static str,
    pub under_capacity_minutes: usize,
    pub task_hours: f64,
}

/// The three set-ups, and the forecast's error on the third week.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Each period's forecast against its load, every period of the week.
    pub mape_all: Option<f64>,
    /// The same without the spike's periods: the seasonal part.
    pub mape_seasonal: Option<f64>,
}

/// Monday 00:00, the first minute of the history.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

const WEEK: usize = 7 * 24 * 60;
/// The spike: Wednesday of the third week, 14:00 for 20 minutes, three times the load.
const SPIKE_START: usize = 2 * WEEK + 2 * 24 * 60 + 14 * 60;
const SPIKE_MINUTES: usize = 20;
/// Minutes the scaler runs before the scored week begins.
const LEAD_IN_MINUTES: usize = 120;

/// The share of the weekday peak at a minute of the day: a quiet night, the
/// working day starting in half an hour (08:30 to 09:00), a plateau, a fall
/// through the evening.
fn daily_shape(minute_of_day: usize) -> f64 {
    let hour = minute_of_day as f64 / 60.0;
    match hour {
        h if h < 8.5 => 0.12,
        h if h < 9.0 => 0.12 + 0.88 * (h - 8.5) / 0.5,
        h if h < 17.0 => 1.0,
        h if h < 22.0 => 1.0 - 0.7 * (h - 17.0) / 5.0,
        h => 0.3 - 0.18 * (h - 22.0) / 2.0,
    }
}

/// Requests each minute for three weeks: seasons, ±5% noise and the spike.
pub fn load(replay: &Replay) -> Vec<f64> {
    let mut state = replay.seed.max(1);
    let mut noise = move || {
        // xorshift64: deterministic, and enough for noise.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    (0..3 * WEEK)
        .map(|m| {
            let at = start() + TimeDelta::minutes(m as i64);
            let weekend = matches!(at.weekday(), Weekday::Sat | Weekday::Sun);
            let day = if weekend { 0.45 } else { 1.0 };
            let spike = if (SPIKE_START..SPIKE_START + SPIKE_MINUTES).contains(&m) {
                3.0
            } else {
                1.0
            };
            let minute_of_day = (at.hour() * 60 + at.minute()) as usize;
            replay.peak * day * daily_shape(minute_of_day) * (1.0 + 0.05 * noise()) * spike
        })
        .collect()
}

fn needed(load: f64) -> u32 {
    capacity_for(load, TASK_CAPACITY)
}

/// Sums of `load` per period before minute `until`, as CloudWatch gives
/// `Sum`, over the last 21 days at most (what the scaler reads).
fn history(load: &[f64], until: usize, period_minutes: usize) -> Vec<MetricPoint> {
    load[..until]
        .chunks(period_minutes)
        .enumerate()
        .filter(|(_, chunk)| chunk.len() == period_minutes)
        .map(|(i, chunk)| MetricPoint {
            at: start() + TimeDelta::minutes((i * period_minutes) as i64),
            value: chunk.iter().sum(),
        })
        .collect()
}

fn policy(buffer: u32, period_seconds: u32) -> PredictivePolicy {
    PredictivePolicy {
        name: "requests".into(),
        target: ServiceRef::new("demo", "web"),
        metric: TrackedMetric::EcsCpu,
        load_per_task: TARGET_PER_TASK * f64::from(period_seconds) / 60.0,
        mode: PredictiveMode::ForecastAndScale,
        scheduling_buffer_seconds: buffer,
        max_capacity_breach: MaxCapacityBreach::HonorMaxCapacity,
        period_seconds,
        bounds: BOUNDS,
    }
}

/// Tasks by the minute they start serving; a scale-in removes the newest.
struct Fleet {
    serving_from: Vec<usize>,
}

impl Fleet {
    fn resize(&mut self, desired: u32, minute: usize) {
        let desired = desired as usize;
        while self.serving_from.len() < desired {
            self.serving_from.push(minute + STARTUP_MINUTES);
        }
        self.serving_from.truncate(desired);
    }

    fn serving(&self, minute: usize) -> usize {
        self.serving_from.iter().filter(|m| **m <= minute).count()
    }
}

/// The target-tracking policy the scaler would load for this service.
fn tracking_policy() -> TargetTrackingPolicy {
    TargetTrackingPolicy {
        name: "requests-per-task".into(),
        target: ServiceRef::new("demo", "web"),
        metric: TrackedMetric::EcsCpu,
        target_value: TARGET_PER_TASK,
        scale_out_datapoints: 3,
        scale_in_datapoints: 15,
        scale_in_ratio: 0.9,
        disable_scale_in: false,
        bounds: BOUNDS,
        cooldowns: Cooldowns {
            scale_out_seconds: 60,
            scale_in_seconds: 300,
        },
        fallback: None,
    }
}

/// Target tracking over the third week, decided each minute by the scaler's
/// own rules (`evaluate_tracking`, then `decide` with the bounds, and the
/// cooldown memory a change leaves), with a predictive min when
/// `forecast_min` gives one for the minute.
fn tracking(
    name: &'static str,
    load: &[f64],
    mut forecast_min: impl FnMut(usize) -> Option<u32>,
) -> Outcome {
    let first = 2 * WEEK;
    // The scaler was running before the scored week: starting cold at its
    // first minute would score the harness's start-up, not the scaler.
    let lead_in = first - LEAD_IN_MINUTES;
    let warm = needed(load[lead_in - 1]).max(1);
    let mut fleet = Fleet {
        serving_from: vec![0; warm as usize],
    };
    let policy = tracking_policy();
    let mut service = ServiceState {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/demo/web".into(),
        desired_count: warm,
        running_count: warm,
        pending_count: 0,
        deployment_in_progress: false,
        task_definition: None,
        memory: ScalingMemory::default(),
        drill_in_progress: None,
    };
    // The metric's newest datapoints: enough for the longer run.
    let mut metric: Vec<MetricPoint> = Vec::new();
    let mut under = 0;
    let mut task_minutes = 0usize;
    for (minute, &requests) in load.iter().enumerate().skip(lead_in) {
        let now = start() + TimeDelta::minutes(minute as i64);
        let serving = fleet.serving(minute).max(1);
        if minute >= first {
            if requests > serving as f64 * TASK_CAPACITY {
                under += 1;
            }
            task_minutes += fleet.serving_from.len();
        }
        metric.push(MetricPoint {
            at: now,
            value: requests / serving as f64,
        });
        if metric.len() > 2 * policy.scale_in_datapoints as usize {
            metric.remove(0);
        }
        let bounds = CapacityBounds {
            min: forecast_min(minute).unwrap_or(BOUNDS.min),
            ..BOUNDS
        };
        let evaluations = [evaluate_tracking(
            &policy,
            &metric,
            Limits::new(bounds),
            &service,
            now,
        )];
        let decision = scaling::decide(&evaluations, &service, bounds);
        let Some(target) = decision.target.filter(|t| *t != service.desired_count) else {
            continue;
        };
        let before = service.desired_count;
        service.memory = match decision.chosen(&evaluations) {
            Some(chosen) => service.memory.after(chosen, before, "tracking", now),
            // A raised min: the count returns within the bounds.
            None => service.memory.after_manual(before, target, "bounds", now),
        };
        service.desired_count = target;
        fleet.resize(target, minute);
        service.running_count = fleet.serving(minute) as u32;
    }
    Outcome {
        name,
        under_capacity_minutes: under,
        task_hours: task_minutes as f64 / 60.0,
    }
}

/// Capacity exactly as needed, each task started ahead by its start-up time.
fn foresight(load: &[f64]) -> Outcome {
    let first = 2 * WEEK;
    let mut task_minutes = 0usize;
    let mut under = 0;
    for minute in first..3 * WEEK {
        // Tasks that serve in STARTUP_MINUTES are already paid for.
        let ahead = (minute..=(minute + STARTUP_MINUTES).min(3 * WEEK - 1))
            .map(|m| needed(load[m]))
            .max()
            .unwrap_or(0);
        task_minutes += ahead.max(BOUNDS.min) as usize;
        if load[minute] > f64::from(needed(load[minute])) * TASK_CAPACITY {
            under += 1;
        }
    }
    Outcome {
        name: "perfect foresight",
        under_capacity_minutes: under,
        task_hours: task_minutes as f64 / 60.0,
    }
}

/// Runs the three set-ups.
pub fn run(replay: &Replay) -> Report {
    let load = load(replay);
    let first = 2 * WEEK;
    let alone = tracking("target tracking alone", &load, |_| None);
    let policy = policy(replay.scheduling_buffer_seconds, replay.period_seconds);
    let period_minutes = (replay.period_seconds / 60) as usize;
    let mut forecast: Option<Forecast> = None;
    // The forecast for each period of the week, as made at its start.
    let mut forecast_by_period: Vec<f64> = Vec::new();
    let with_forecast = tracking("target tracking + predictive", &load, |minute| {
        let now = start() + TimeDelta::minutes(minute as i64);
        if forecast.is_none() || minute % (60 * replay.refresh_hours as usize) == 0 {
            forecast = make_forecast(
                &history(&load, minute, period_minutes),
                replay.period_seconds,
                now,
            )
            .ok();
        }
        let made = forecast.as_ref()?;
        if minute >= first && minute % period_minutes == 0 {
            let this_period = made.peak_between(now, now).map_or(0.0, |i| i.load);
            forecast_by_period.push(this_period);
        }
        decide(&policy, made, BOUNDS, now).map(|d| d.bounds_after.min)
    });
    let actual: Vec<f64> = load[first..]
        .chunks(period_minutes)
        .map(|c| c.iter().sum())
        .collect();
    let spike = (SPIKE_START - first) / period_minutes
        ..(SPIKE_START + SPIKE_MINUTES - first).div_ceil(period_minutes);
    let (seasonal_actual, seasonal_forecast): (Vec<f64>, Vec<f64>) = actual
        .iter()
        .zip(&forecast_by_period)
        .enumerate()
        .filter(|(p, _)| !spike.contains(p))
        .map(|(_, (a, f))| (*a, *f))
        .unzip();
    Report {
        outcomes: vec![alone, with_forecast, foresight(&load)],
        mape_all: mape(&actual, &forecast_by_period),
        mape_seasonal: mape(&seasonal_actual, &seasonal_forecast),
    }
}

impl Report {
    /// Under-capacity minutes cut by at least 80% against tracking alone,
    /// for at most 10% more task-hours.
    pub fn goals(&self) -> (bool, bool, bool) {
        let (alone, with) = (&self.outcomes[0], &self.outcomes[1]);
        let cut = with.under_capacity_minutes as f64 <= 0.2 * alone.under_capacity_minutes as f64;
        let cost = with.task_hours <= 1.1 * alone.task_hours;
        let accurate = self.mape_seasonal.is_some_and(|m| m < 10.0);
        (cut, cost, accurate)
    }

    /// One markdown table, and the goals beside the figures.
    pub fn table(&self) -> String {
        let percent = |m: Option<f64>| m.map_or("n/a".to_string(), |m| format!("{m:.1}%"));
        let mut out = String::from(
            "| set-up | minutes under capacity | task-hours | forecast MAPE (all / seasonal) |\n\
             | --- | ---: | ---: | ---: |\n",
        );
        for (i, o) in self.outcomes.iter().enumerate() {
            let mape = if i == 1 {
                format!(
                    "{} / {}",
                    percent(self.mape_all),
                    percent(self.mape_seasonal)
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} | {:.1} | {mape} |\n",
                o.name, o.under_capacity_minutes, o.task_hours
            ));
        }
        let (alone, with) = (&self.outcomes[0], &self.outcomes[1]);
        let cut = 100.0
            * (1.0
                - with.under_capacity_minutes as f64 / alone.under_capacity_minutes.max(1) as f64);
        let more = 100.0 * (with.task_hours / alone.task_hours - 1.0);
        let (cut_met, cost_met, mape_met) = self.goals();
        let verdict = |met: bool| if met { "met" } else { "missed" };
        out.push_str(&format!(
            "\nGoals: under-capacity minutes cut by at least 80%: {cut:.0}% ({}); \
             at most 10% more task-hours: {more:+.1}% ({}); seasonal MAPE under 10%: {} ({}).\n",
            verdict(cut_met),
            verdict(cost_met),
            percent(self.mape_seasonal),
            verdict(mape_met)
        ));
        out
    }
}
