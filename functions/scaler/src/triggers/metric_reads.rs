//! Every metric an invocation's decisions read, fetched up front in as few
//! `GetMetricData` calls as CloudWatch allows (one, for up to 500 queries),
//! however many services and policies the invocation evaluates.

use crate::decision::{DecisionRecord, MetricReadings, ReadKey};
use crate::handler::Scaler;
use chrono::{DateTime, Utc};
use ecs_control::domain::alarm::{AlarmState, AlarmStatus};
use ecs_control::domain::metric_batch::{plan_batches, within, MetricRead};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, ScalerEcs, TargetGroups};
use std::collections::{BTreeMap, BTreeSet};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// Reads what the services' step and tracking policies need.
    pub(crate) async fn read_metrics(
        &self,
        services: &BTreeSet<ServiceRef>,
        statuses: &BTreeMap<String, AlarmStatus>,
        record: &mut DecisionRecord,
        now: DateTime<Utc>,
    ) -> MetricReadings {
        let mut keys = Vec::new();
        let mut reads = Vec::new();
        let alarms: BTreeSet<&str> = services
            .iter()
            .flat_map(|s| self.config.policies_for_service(s))
            .map(|p| p.alarm.as_str())
            .collect();
        for alarm in alarms {
            let Some(metric) = statuses
                .get(alarm)
                .filter(|s| s.state == AlarmState::Alarm)
                .and_then(|s| s.metric.as_ref())
            else {
                continue;
            };
            let (start, end) = metric.window(now);
            keys.push(ReadKey::Alarm(alarm.to_string()));
            reads.push(MetricRead {
                queries: metric.queries.clone(),
                start,
                end,
            });
        }
        for service in services {
            for (index, policy) in self.config.tracking_for_service(service).enumerate() {
                let (start, end) = policy.window(now);
                keys.push(ReadKey::Tracking(service.clone(), index));
                reads.push(MetricRead {
                    queries: policy.metric.queries(service),
                    start,
                    end,
                });
            }
        }
        let mut readings = MetricReadings::new();
        for batch in plan_batches(&reads) {
            record.calls.push("cloudwatch:GetMetricData");
            let answered = self
                .alarms
                .metric_data(&batch.queries, batch.start, batch.end)
                .await
                .map_err(|e| e.to_string());
            for (index, id) in batch.answers {
                let reading = match &answered {
                    Ok(series) => Ok(series
                        .get(&id)
                        .map(|points| within(points, &reads[index]))
                        .unwrap_or_default()),
                    Err(e) => Err(e.clone()),
                };
                readings.insert(keys[index].clone(), reading);
            }
        }
        readings
    }
}
