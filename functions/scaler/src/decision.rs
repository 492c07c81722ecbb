//! What a decision is made of and what it records: the per-service decision,
//! the invocation's record, and what the triggers hand to the decision (the
//! metrics read up front, the pace's step). The handler and every trigger
//! import these; none of them is imported back.

use crate::events::{AlarmNotice, Trigger};
use chrono::{DateTime, Utc};
use ecs_control::domain::alarm::{AlarmStatus, MetricPoint};
use ecs_control::domain::budget::BudgetCeiling;
use ecs_control::domain::drain::{DrainFacts, DrainMemory, DrainStep};
use ecs_control::domain::pace::Paced;
use ecs_control::domain::predictive::{
    Backtest, Forecast, ForecastDecision, ForecastRow, HistoryUsed, PredictiveMode,
    PredictivePolicy,
};
use ecs_control::domain::scale_in::ScaleInVerdict;
use ecs_control::domain::scaling::{Choice, Limits, MemoryStatus, PolicyEvaluation, ServiceState};
use ecs_control::domain::schedule::{BoundsPeriod, OpenWindow};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::suspension::Suspended;
use ecs_control::ports::PortError;
use serde::Serialize;
use std::collections::BTreeMap;

/// What happened to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The desired count was changed.
    Scaled,
    /// A change was decided but not made (dry run).
    WouldScale,
    /// Every policy held, or a scale-in was vetoed.
    Held,
    /// A scale-in is draining the tasks it removes: the count is lowered
    /// once their targets have left their groups.
    Draining,
    /// This trigger was already applied to the service.
    Duplicate,
    /// Reading or changing the service failed.
    Failed,
}

/// The decision for one service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDecision {
    pub service: ServiceRef,
    pub seen: Option<ServiceState>,
    /// What the scaler's memory says about the count found.
    pub memory: Option<MemoryStatus>,
    /// What an operator has suspended on the service.
    #[serde(skip_serializing_if = "Suspended::is_none")]
    pub suspended: Suspended,
    pub alarms_in_alarm: Vec<String>,
    /// The bounds this decision kept to: the policy bounds narrowed by open
    /// windows and the budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The time windows open now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<OpenWindow>,
    /// What each predictive policy's forecast asked of the bounds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<ForecastDecision>,
    /// Forecasts this decision made again (a manual command, or a retry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecasts_made: Vec<ForecastMade>,
    /// The budget's ceiling and its arithmetic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetCeiling>,
    pub evaluations: Vec<PolicyEvaluation>,
    pub choice: Option<Choice>,
    /// The count found, when it was outside the bounds and is brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<u32>,
    /// The pace's step, when a pace is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pace: Option<Paced>,
    /// What the service's scale-in behaviour (stabilisation, rate) made of
    /// a policy's scale-in, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_in: Option<ScaleInVerdict>,
    /// A drain-first scale-in: what it chose, found and did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// What else the scaler noticed (another writer, an unapplied change).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub action: Action,
    pub reason: String,
    pub before: Option<u32>,
    pub after: Option<u32>,
    pub calls: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A drain step that failed: the decision went on without it (a
    /// scale-out still cancels the drain), and the trigger fails afterwards
    /// so it is retried.
    #[serde(skip)]
    pub(crate) drain_failure: Option<PortError>,
}

impl ServiceDecision {
    /// `outcome`, failed by a drain step's failure when nothing else failed
    /// and the count was not changed (a scale-out that cancelled the drain
    /// has made the step moot).
    pub(crate) fn with_drain_failure(
        &mut self,
        outcome: Result<(), PortError>,
    ) -> Result<(), PortError> {
        match (outcome, self.drain_failure.take()) {
            (Ok(()), Some(e)) if self.action != Action::Scaled => Err(e),
            (outcome, _) => outcome,
        }
    }
}

impl ServiceDecision {
    pub(crate) fn new(service: ServiceRef) -> Self {
        Self {
            service,
            seen: None,
            memory: None,
            suspended: Suspended::default(),
            alarms_in_alarm: Vec::new(),
            limits: None,
            windows: Vec::new(),
            forecasts: Vec::new(),
            forecasts_made: Vec::new(),
            budget: None,
            evaluations: Vec::new(),
            choice: None,
            out_of_bounds: None,
            pace: None,
            scale_in: None,
            drain: None,
            notes: Vec::new(),
            action: Action::Held,
            reason: String::new(),
            before: None,
            after: None,
            calls: Vec::new(),
            error: None,
            drain_failure: None,
        }
    }
}

/// A drain-first scale-in in a decision record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    /// The drain as found (or as started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainMemory>,
    /// The tasks a new drain chose, with their zones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chosen: Vec<ChosenTask>,
    /// What a drain under way found of the service and its chosen tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<DrainFacts>,
    /// The step taken (or, in a dry run, that would be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<DrainStep>,
    /// What the step did, in words.
    pub summary: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub targets_deregistered: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub targets_registered: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub tasks_protected: usize,
    /// Tasks ECS would not protect, with its reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protection_refused: Vec<(String, String)>,
}

/// A task a drain chose.
#[derive(Debug, Clone, Serialize)]
pub struct ChosenTask {
    pub task_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Everything one invocation saw, decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub trigger: Trigger,
    pub trigger_key: String,
    pub dry_run: bool,
    pub decided_at: DateTime<Utc>,
    /// Set when the whole trigger was ignored, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub alarms_checked: Vec<AlarmStatus>,
    /// The CloudWatch reads the invocation made, shared by every service.
    pub calls: Vec<&'static str>,
    pub services: Vec<ServiceDecision>,
    /// The bounds timeline a `preview_bounds` command asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Vec<BoundsPeriod>>,
    /// The forecasts the invocation made again from fresh history.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecasts_made: Vec<ForecastMade>,
    /// What a `preview_forecast` command asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_preview: Option<Vec<ForecastPreview>>,
}

/// A forecast made again from fresh history, or why it was not.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastMade {
    pub service: ServiceRef,
    pub policy: String,
    pub outcome: ForecastOutcome,
    /// The history's newest complete period: the actual load the dashboard
    /// sets beside the forecast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<MetricPoint>,
}

/// What became of a forecast's refresh.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForecastOutcome {
    Made {
        history: HistoryUsed,
        backtest: Backtest,
        intervals: usize,
    },
    /// No forecast, and why: too little history, a failed read or model.
    Missing { why: String },
    /// The invocation's fitting budget was spent; the next makes it.
    PutOff,
}

impl ForecastMade {
    pub(crate) fn new(policy: &PredictivePolicy) -> Self {
        Self {
            service: policy.target.clone(),
            policy: policy.name.clone(),
            outcome: ForecastOutcome::PutOff,
            observed: None,
        }
    }

    pub(crate) fn made(self, forecast: &Forecast, observed: Option<MetricPoint>) -> Self {
        Self {
            outcome: ForecastOutcome::Made {
                history: forecast.history.clone(),
                backtest: forecast.backtest.clone(),
                intervals: forecast.loads.len(),
            },
            observed,
            ..self
        }
    }

    pub(crate) fn missing(self, why: &str) -> Self {
        Self {
            outcome: ForecastOutcome::Missing { why: why.into() },
            ..self
        }
    }

    pub(crate) fn deferred(self) -> Self {
        Self {
            outcome: ForecastOutcome::PutOff,
            ..self
        }
    }
}

/// One predictive policy's forecast, as `preview_forecast` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastPreview {
    pub policy: String,
    pub mode: PredictiveMode,
    pub load_per_task: f64,
    pub scheduling_buffer_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub made_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryUsed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtest: Option<Backtest>,
    /// Why there is no forecast, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    pub rows: Vec<ForecastRow>,
}

/// What a trigger brings to the per-service decision.
#[derive(Debug, Default)]
pub(crate) struct TriggerInputs<'a> {
    /// Alarm states read at decision time, by name.
    pub statuses: BTreeMap<String, AlarmStatus>,
    /// The alarm state changes being answered (empty for a tick).
    pub notices: &'a [AlarmNotice],
    /// The metrics the decisions read, fetched once for every service.
    pub metrics: MetricReadings,
    /// The services as read together before deciding, 10 a `DescribeServices`
    /// call, when the trigger concerns more than one.
    pub states: BTreeMap<ServiceRef, Result<ServiceState, PortError>>,
}

/// Which decision a read serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ReadKey {
    /// The metric of an alarm in ALARM, for its step policies.
    Alarm(String),
    /// A service's target-tracking policy, by its place among the service's.
    Tracking(ServiceRef, usize),
}

/// The points of each read, or why it could not be read.
pub(crate) type MetricReadings = BTreeMap<ReadKey, Result<Vec<MetricPoint>, String>>;

/// What the pace allows now.
pub(crate) enum PaceOutcome {
    /// Set this count now.
    Step(u32),
    /// The pace allows nothing more this minute; the memory keeps what is staged.
    NothingThisMinute,
}
