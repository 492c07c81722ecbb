//! Pure decisions: no I/O, no AWS SDK types. This crate depends on neither
//! the SDKs nor the Lambda runtime, so its Cargo.toml enforces the rule; its
//! tables and property tests build and run in seconds:
//! `cargo test -p ecs-control-domain`.

pub mod address_guard;
pub mod alarm;
pub mod breach;
pub mod budget;
pub mod drain;
pub mod drill;
pub mod echo;
pub mod evaluation;
pub mod fallback;
pub mod metric_batch;
pub mod pace;
pub mod policy;
pub mod predictive;
pub mod probe;
pub mod registration;
pub mod rounding;
pub mod scale_in;
pub mod scaling;
pub mod schedule;
pub mod schedule_expression;
pub mod secret;
pub mod service;
pub mod suspension;
pub mod target_tracking;
pub mod zone;
