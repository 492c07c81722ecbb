//! The scaler: CloudWatch alarms resize ECS services, following step scaling rules.

pub mod events;
pub mod handler;

/// Environment variable that turns on shadow mode: every decision is a dry run.
pub const DRY_RUN_ENV: &str = "SCALER_DRY_RUN";
