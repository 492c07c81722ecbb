//! Target tracking: each policy reads its metric's last one-minute datapoints
//! with `GetMetricData`; the count it asks for is computed in
//! [`ecs_control::domain::target_tracking`], with the arithmetic in the record.

use crate::handler::{Scaler, ServiceDecision};
use chrono::{DateTime, Utc};
use ecs_control::domain::scaling::{Hold, Limits, PolicyEvaluation, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::target_tracking::evaluate_tracking;
use ecs_control::ports::{AlarmStates, EcsServices};

impl<E: EcsServices, A: AlarmStates> Scaler<E, A> {
    /// One evaluation per target-tracking policy of the service. A metric that
    /// cannot be read is missing data: that policy changes nothing, and its
    /// evaluation says why.
    pub(crate) async fn tracking_evaluations(
        &self,
        service: &ServiceRef,
        state: &ServiceState,
        limits: Limits,
        decision: &mut ServiceDecision,
        now: DateTime<Utc>,
    ) -> Vec<PolicyEvaluation> {
        let mut evaluations = Vec::new();
        for policy in self.config.tracking_for_service(service) {
            let (start, end) = policy.window(now);
            decision.calls.push("cloudwatch:GetMetricData");
            let queries = policy.metric.queries(service);
            let evaluation = match self.alarms.metric_values(&queries, start, end).await {
                Ok(points) => evaluate_tracking(policy, &points, limits, state, now),
                Err(e) => evaluate_tracking(policy, &[], limits, state, now)
                    .held(Hold::MissingData, format!("reading the metric failed: {e}")),
            };
            evaluations.push(evaluation);
        }
        evaluations
    }
}
