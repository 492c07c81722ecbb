//! The budget ceiling: the most tasks `max_hourly_cost` pays for, from the
//! task size its task definition states.

use crate::decision::ServiceDecision;
use crate::handler::Scaler;
use ecs_control::domain::budget::{ceiling, TaskSize};
use ecs_control::domain::policy::CapacityBounds;
use ecs_control::domain::scaling::{Limits, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, PortError, ScalerEcs, TargetGroups};

impl<E: ScalerEcs, A: AlarmStates, G: TargetGroups> Scaler<E, A, G> {
    /// Lowers the max to what the budget pays for. The min stays: a budget
    /// below it is noted, and the service keeps its floor.
    pub(crate) async fn budget_limits(
        &self,
        service: &ServiceRef,
        bounds: CapacityBounds,
        state: &ServiceState,
        decision: &mut ServiceDecision,
    ) -> Result<Limits, PortError> {
        let Some(budget) = self.config.settings_for(service).budget else {
            return Ok(Limits::new(bounds));
        };
        let size = match &state.task_definition {
            Some(arn) => self.task_size(arn, decision).await?,
            None => None,
        };
        let Some(size) = size else {
            // Without a size no cost is known: fail closed, no task is added.
            decision.notes.push(
                "the budget cannot be counted: the task definition states no task-level CPU and memory; \
                 no scale-out until it does"
                    .into(),
            );
            let max = state.desired_count.clamp(bounds.min, bounds.max);
            return Ok(Limits {
                bounds: CapacityBounds { max, ..bounds },
                max_is_budget: max < bounds.max,
            });
        };
        let found = ceiling(budget, size);
        let max = found.max_tasks.clamp(bounds.min, bounds.max);
        if found.max_tasks < bounds.min {
            // A floor someone set on purpose (a window's or the policy's) is kept over the budget.
            let policy_min = self.config.bounds_for_service(service).map(|b| b.min);
            let whose = if policy_min.is_some_and(|min| min < bounds.min) {
                let names: Vec<&str> = decision.windows.iter().map(|w| w.name.as_str()).collect();
                format!(
                    "the min {} the open window {} sets",
                    bounds.min,
                    names.join(", ")
                )
            } else {
                format!("min_capacity {}", bounds.min)
            };
            decision.notes.push(format!(
                "the budget pays for {} tasks, below {whose}: the min wins",
                found.max_tasks
            ));
        }
        decision.budget = Some(found);
        Ok(Limits {
            bounds: CapacityBounds { max, ..bounds },
            max_is_budget: max < bounds.max,
        })
    }

    /// The task definition's size, read once per cold start per task definition.
    async fn task_size(
        &self,
        task_definition: &str,
        decision: &mut ServiceDecision,
    ) -> Result<Option<TaskSize>, PortError> {
        let cached = self
            .task_sizes
            .lock()
            .ok()
            .and_then(|sizes| sizes.get(task_definition).copied());
        if let Some(size) = cached {
            return Ok(size);
        }
        decision.calls.push("ecs:DescribeTaskDefinition");
        let size = self.ecs.task_size(task_definition).await?;
        if let Ok(mut sizes) = self.task_sizes.lock() {
            sizes.insert(task_definition.to_string(), size);
        }
        Ok(size)
    }
}
