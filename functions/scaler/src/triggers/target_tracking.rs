//! Target tracking: each policy reads its metric's last one-minute datapoints
//! with `GetMetricData`; the count it asks for is computed in
//! [`ecs_control::domain::target_tracking`], with the arithmetic in the record.

use crate::decision::ReadKey;
use crate::decision::TriggerInputs;
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::scaling::{Hold, Limits, PolicyEvaluation, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::target_tracking::evaluate_tracking;
use ecs_control::ports::{AlarmStates, EcsServices};

impl<E: EcsServices, A: AlarmStates> Scaler<E, A> {
    /// One evaluation per target-tracking policy of the service, from the
    /// metrics read for this invocation. A metric that could not be read is
    /// missing data: that policy changes nothing, and its evaluation says why.
    pub(crate) fn tracking_evaluations(
        &self,
        service: &ServiceRef,
        inputs: &TriggerInputs<'_>,
        state: &ServiceState,
        limits: Limits,
        now: DateTime<Utc>,
    ) -> Vec<PolicyEvaluation> {
        self.config
            .tracking_for_service(service)
            .enumerate()
            .map(|(index, policy)| {
                let key = ReadKey::Tracking(service.clone(), index);
                match inputs.metrics.get(&key) {
                    Some(Ok(points)) => evaluate_tracking(policy, points, limits, state, now),
                    Some(Err(e)) => evaluate_tracking(policy, &[], limits, state, now)
                        .held(Hold::MissingData, format!("reading the metric failed: {e}")),
                    None => evaluate_tracking(policy, &[], limits, state, now)
                        .held(Hold::MissingData, "the metric was not read".to_string()),
                }
            })
            .collect()
    }
}
