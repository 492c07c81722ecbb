//! Step scaling: an alarm in ALARM picks a step by how far its metric is past
//! the threshold, read at decision time.

use crate::decision::ReadKey;
use crate::decision::{DecisionRecord, ServiceDecision, TriggerInputs};
use crate::events::AlarmNotice;
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::alarm::{
    breach_from_datapoints, breach_from_reason_data, AlarmState, AlarmStatus,
};
use ecs_control::domain::policy::ScalingPolicy;
use ecs_control::domain::scaling::{evaluate, Breach, Limits, PolicyEvaluation, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};
use std::collections::{BTreeMap, BTreeSet};

/// A step policy's evaluation, and the alarm state change it answers.
pub(crate) type StepEvaluation = (PolicyEvaluation, Option<(String, DateTime<Utc>)>);

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    pub(crate) async fn on_alarm_change(
        &self,
        notices: &[AlarmNotice],
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), InvocationError> {
        let mut ignored = Vec::new();
        let mut acting = Vec::new();
        for notice in notices {
            if notice.state != AlarmState::Alarm {
                ignored.push(format!(
                    "alarm {} went to {}: only ALARM acts",
                    notice.alarm,
                    notice.state.as_str()
                ));
            } else if self
                .config
                .policies_for_alarm(&notice.alarm)
                .next()
                .is_none()
            {
                ignored.push(format!("no policy names alarm {}", notice.alarm));
            } else {
                acting.push(notice);
            }
        }
        if acting.is_empty() {
            record.ignored = Some(ignored.join("; "));
            return Ok(());
        }
        let services: BTreeSet<ServiceRef> = acting
            .iter()
            .flat_map(|n| self.config.policies_for_alarm(&n.alarm))
            .map(|p| p.target.clone())
            .collect();
        // Decide from the alarms as they are now, not as the (possibly late) event says.
        let statuses = self.alarm_statuses_for(&services, record).await?;
        record.alarms_checked = statuses.values().cloned().collect();
        let still_alarming: Vec<&AlarmNotice> = acting
            .into_iter()
            .filter(|n| {
                let current = statuses.get(&n.alarm);
                let fresh = current.is_some_and(|s| s.state == AlarmState::Alarm);
                if !fresh {
                    ignored.push(format!(
                        "alarm {} is no longer in ALARM (now {}): the event is stale",
                        n.alarm,
                        current.map_or("missing", |s| s.state.as_str())
                    ));
                }
                fresh
            })
            .collect();
        if !ignored.is_empty() {
            record.ignored = Some(ignored.join("; "));
        }
        let services: BTreeSet<ServiceRef> = still_alarming
            .iter()
            .flat_map(|n| self.config.policies_for_alarm(&n.alarm))
            .map(|p| p.target.clone())
            .collect();
        let notices: Vec<AlarmNotice> = still_alarming.into_iter().cloned().collect();
        let inputs = TriggerInputs {
            statuses,
            notices: &notices,
            metrics: Default::default(),
            states: Default::default(),
        };
        self.act_on_services(services, inputs, record, now).await
    }

    async fn alarm_statuses_for(
        &self,
        services: &BTreeSet<ServiceRef>,
        record: &mut DecisionRecord,
    ) -> Result<BTreeMap<String, AlarmStatus>, InvocationError> {
        let mut names: Vec<String> = services
            .iter()
            .flat_map(|s| self.config.policies_for_service(s))
            .map(|p| p.alarm.clone())
            .collect();
        names.sort();
        names.dedup();
        self.describe(&names, record).await
    }

    pub(crate) async fn describe(
        &self,
        names: &[String],
        record: &mut DecisionRecord,
    ) -> Result<BTreeMap<String, AlarmStatus>, InvocationError> {
        record.calls.push("cloudwatch:DescribeAlarms");
        let found = self.alarms.describe_alarms(names).await?;
        Ok(found.into_iter().map(|s| (s.name.clone(), s)).collect())
    }

    /// One evaluation per step policy of the service whose alarm is in ALARM.
    pub(crate) async fn step_evaluations(
        &self,
        service: &ServiceRef,
        inputs: &TriggerInputs<'_>,
        state: &ServiceState,
        limits: Limits,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Vec<StepEvaluation> {
        let mut evaluations = Vec::new();
        for policy in self.config.policies_for_service(service) {
            let Some(status) = inputs
                .statuses
                .get(&policy.alarm)
                .filter(|s| s.state == AlarmState::Alarm)
            else {
                continue;
            };
            decision.alarms_in_alarm.push(policy.alarm.clone());
            let changed_at = inputs
                .notices
                .iter()
                .filter(|n| n.alarm == policy.alarm)
                .map(|n| n.state_changed_at)
                .chain(status.state_transitioned_at)
                .max();
            let (breach, note) = breach(policy, status, inputs);
            let looks_below = status
                .metric
                .as_ref()
                .is_some_and(|m| m.comparison.looks_below());
            let mut evaluation = evaluate(policy, breach, looks_below, limits, state, now);
            evaluation.breach_note = note;
            evaluations.push((evaluation, changed_at.map(|at| (policy.alarm.clone(), at))));
        }
        evaluations
    }
}

/// The breach that picks the step: the alarm's metric as read for this
/// invocation, combined as the policy says; the alarm's reason data only when
/// that read failed or found nothing.
fn breach(
    policy: &ScalingPolicy,
    status: &AlarmStatus,
    inputs: &TriggerInputs<'_>,
) -> (Breach, Option<String>) {
    let fallback = || breach_from_reason_data(status.reason_data.as_deref());
    let Some(metric) = &status.metric else {
        return (fallback(), None);
    };
    let note = match inputs.metrics.get(&ReadKey::Alarm(status.name.clone())) {
        Some(Ok(points)) => {
            let values: Vec<f64> = points.iter().map(|p| p.value).collect();
            let evaluated = metric.evaluated(&values);
            match breach_from_datapoints(evaluated, policy.metric_aggregation, metric.threshold) {
                Some(breach) => return (breach, None),
                None => "the alarm's metric has no datapoints in its window".to_string(),
            }
        }
        Some(Err(e)) => format!("reading the alarm's metric failed: {e}"),
        None => "the alarm's metric returns no query".to_string(),
    };
    (
        fallback(),
        Some(format!("{note}; used the alarm's reason data")),
    )
}
