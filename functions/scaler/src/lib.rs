//! The scaler: resizes ECS services on alarms (step scaling), a metric held at
//! a target, a forecast of the load, time windows, a budget ceiling and a pace.

pub mod cold_start;
pub mod decision;
mod drain;
pub mod events;
mod forecast_cache;
pub mod handler;
pub mod triggers;

/// Environment variable that turns on shadow mode: every decision is a dry run.
pub const DRY_RUN_ENV: &str = "SCALER_DRY_RUN";
