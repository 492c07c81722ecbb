//! The budget ceiling: a service never runs more tasks than its hourly budget pays for.

use super::rounding::floor_count;
use serde::Serialize;

/// A task's size, as its task definition states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskSize {
    /// CPU units; 1,024 is one vCPU.
    pub cpu_units: u32,
    pub memory_mib: u32,
}

/// Prices per vCPU-hour and per GB-hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    pub per_vcpu_hour: f64,
    pub per_gb_hour: f64,
}

/// Fargate on Linux/x86_64 in us-east-1 (USD).
pub const FARGATE_X86_64: Prices = Prices {
    per_vcpu_hour: 0.040_48,
    per_gb_hour: 0.004_445,
};

/// Fargate on Linux/ARM64 (Graviton) in us-east-1 (USD).
pub const FARGATE_ARM64: Prices = Prices {
    per_vcpu_hour: 0.032_38,
    per_gb_hour: 0.003_56,
};

/// A service's hourly budget and the prices it is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    pub max_hourly_cost: f64,
    pub prices: Prices,
}

/// The most tasks a budget pays for, and how that was computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetCeiling {
    pub task_hourly_cost: f64,
    pub max_tasks: u32,
    /// e.g. `floor(2.00 / (0.25 vCPU × 0.04048 + 0.5 GB × 0.004445)) = 161`.
    pub arithmetic: String,
}

impl TaskSize {
    pub fn vcpus(self) -> f64 {
        f64::from(self.cpu_units) / 1024.0
    }

    pub fn gigabytes(self) -> f64 {
        f64::from(self.memory_mib) / 1024.0
    }

    /// What one task costs an hour at `prices`.
    pub fn hourly_cost(self, prices: Prices) -> f64 {
        self.vcpus() * prices.per_vcpu_hour + self.gigabytes() * prices.per_gb_hour
    }
}

/// `floor(budget / task cost)`; a task that costs nothing is not limited.
pub fn ceiling(budget: Budget, size: TaskSize) -> BudgetCeiling {
    let cost = size.hourly_cost(budget.prices);
    let max_tasks = if cost > 0.0 {
        // A budget of exactly N tasks' cost allows N.
        let tasks = floor_count(budget.max_hourly_cost / cost);
        // Bounded: the quotient is clamped before the cast.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let tasks = tasks.clamp(0.0, f64::from(u32::MAX)) as u32;
        tasks
    } else {
        u32::MAX
    };
    BudgetCeiling {
        task_hourly_cost: cost,
        max_tasks,
        arithmetic: format!(
            "floor({} / ({} vCPU × {} + {} GB × {})) = {max_tasks}",
            budget.max_hourly_cost,
            size.vcpus(),
            budget.prices.per_vcpu_hour,
            size.gigabytes(),
            budget.prices.per_gb_hour
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_budget_over_the_task_cost_rounded_down() {
        let size = TaskSize {
            cpu_units: 1024,
            memory_mib: 2048,
        };
        let prices = Prices {
            per_vcpu_hour: 0.04,
            per_gb_hour: 0.005,
        };
        // One task: 0.04 + 2 × 0.005 = 0.05 an hour.
        for (budget, tasks) in [(0.0, 0), (0.049, 0), (0.05, 1), (0.5, 10), (0.549, 10)] {
            let ceiling = ceiling(
                Budget {
                    max_hourly_cost: budget,
                    prices,
                },
                size,
            );
            assert_eq!(ceiling.max_tasks, tasks, "{budget}: {}", ceiling.arithmetic);
        }
    }
}
