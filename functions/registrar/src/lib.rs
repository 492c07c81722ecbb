//! The registrar: ALB target groups follow the running tasks of ECS services.

pub mod cold_start;
pub mod events;
pub mod handler;
mod task_changes;

/// Environment variable that turns on shadow mode: every decision is a dry run.
pub const DRY_RUN_ENV: &str = "REGISTRAR_DRY_RUN";
