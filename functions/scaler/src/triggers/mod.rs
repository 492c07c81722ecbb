//! One module per trigger. Each turns its input into policy evaluations, or
//! narrows the limits, for the one decide-and-apply path in [`crate::handler`].

pub mod budget;
pub mod manual;
pub mod metric_reads;
pub mod pace;
pub mod predictive;
pub mod schedules;
pub mod step_alarms;
pub mod target_tracking;

use crate::decision::{DecisionRecord, ServiceDecision, TriggerInputs};
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::alarm::AlarmState;
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::scaling::{Limits, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{AlarmStates, PortError, ScalerEcs, TargetGroups};
use std::collections::BTreeSet;

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The scheduled tick: every service whose alarm is in ALARM, and every
    /// service with target tracking, time windows, a budget or a pace.
    pub(crate) async fn on_tick(
        &self,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let names = self.config.alarm_names();
        let statuses = if names.is_empty() {
            Default::default()
        } else {
            self.describe(&names, record).await?
        };
        record.alarms_checked = statuses.values().cloned().collect();
        let services: BTreeSet<ServiceRef> = self
            .config
            .policies
            .iter()
            .filter(|p| {
                statuses
                    .get(&p.alarm)
                    .is_some_and(|s| s.state == AlarmState::Alarm)
            })
            .map(|p| p.target.clone())
            .chain(self.config.tick_services())
            // A drain-first service's drain, if any, moves on each tick.
            .chain(self.drain_first_services())
            .collect();
        if services.is_empty() {
            record.ignored = Some("no alarm named by a policy is in ALARM".into());
            return Ok(());
        }
        let inputs = TriggerInputs {
            statuses,
            notices: &[],
            metrics: Default::default(),
            states: Default::default(),
        };
        self.act_on_services(services, inputs, record, now).await
    }
}

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// The bounds a decision keeps to now: the policy bounds, narrowed by the
    /// open time windows, the min raised by the forecasts, then narrowed by
    /// the budget.
    pub(crate) async fn limits(
        &self,
        service: &ServiceRef,
        bounds: CapacityBounds,
        state: &ServiceState,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Result<Limits, PortError> {
        let scheduled = if state.memory.suspended.scheduled {
            decision
                .notes
                .push("scheduled scaling is suspended: time windows do not apply".into());
            bounds
        } else {
            self.scheduled_bounds(service, bounds, decision, now)
        };
        let forecast = self
            .predictive_bounds(
                service,
                scheduled,
                state.memory.suspended.scheduled,
                decision,
                now,
            )
            .await;
        self.budget_limits(service, forecast, state, decision).await
    }
}
