//! Target tracking: each policy reads its metric's last one-minute datapoints
//! with `GetMetricData`; the count it asks for is computed in
//! [`ecs_control::domain::target_tracking`], with the arithmetic in the record.

use crate::decision::ReadKey;
use crate::decision::TriggerInputs;
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::fallback::{blind_for, blind_key, blind_marks, with_fallback};
use ecs_control::domain::scaling::{BlindSince, Hold, Limits, PolicyEvaluation, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::target_tracking::{evaluate_tracking, TargetTrackingPolicy};
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// One evaluation per target-tracking policy of the service, from the
    /// metrics read for this invocation. A metric that could not be read is
    /// missing data: that policy changes nothing, and its evaluation says
    /// why, until its fallback (if it has one) takes over. Also returns the
    /// service's blind marks as they stand after this evaluation.
    pub(crate) fn tracking_evaluations(
        &self,
        service: &ServiceRef,
        inputs: &TriggerInputs<'_>,
        state: &ServiceState,
        limits: Limits,
        now: DateTime<Utc>,
    ) -> (Vec<PolicyEvaluation>, BlindSince) {
        let policies: Vec<&TargetTrackingPolicy> =
            self.config.tracking_for_service(service).collect();
        let evaluated: Vec<(PolicyEvaluation, Option<DateTime<Utc>>)> = policies
            .iter()
            .enumerate()
            .map(|(index, policy)| {
                let key = ReadKey::Tracking(service.clone(), index);
                match inputs.metrics.get(&key) {
                    Some(Ok(points)) => (
                        evaluate_tracking(policy, points, limits, state, now),
                        points.iter().map(|p| p.at).max(),
                    ),
                    Some(Err(e)) => (
                        evaluate_tracking(policy, &[], limits, state, now)
                            .held(Hold::MissingData, format!("reading the metric failed: {e}")),
                        None,
                    ),
                    None => (
                        evaluate_tracking(policy, &[], limits, state, now)
                            .held(Hold::MissingData, "the metric was not read".to_string()),
                        None,
                    ),
                }
            })
            .collect();
        let blind: Vec<bool> = evaluated
            .iter()
            .map(|(e, _)| e.held_by == Some(Hold::MissingData))
            .collect();
        let judged: Vec<(&str, bool)> = policies
            .iter()
            .zip(&blind)
            .map(|(p, b)| (p.name.as_str(), *b))
            .collect();
        let marks = blind_marks(&state.memory.blind, &judged, now);
        let evaluations = evaluated
            .into_iter()
            .zip(&policies)
            .enumerate()
            .map(|(index, ((evaluation, newest), policy))| {
                if !blind[index] {
                    return evaluation;
                }
                let others_see = blind
                    .iter()
                    .enumerate()
                    .any(|(other, b)| other != index && !b);
                let since = marks.get(&blind_key(&policy.name)).copied();
                with_fallback(
                    evaluation,
                    policy,
                    blind_for(since, newest, now),
                    others_see,
                    limits,
                    state,
                    now,
                )
            })
            .collect();
        (evaluations, marks)
    }
}
