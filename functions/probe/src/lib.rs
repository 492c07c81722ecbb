//! The probe: synthetic HTTP(S) checks and target-group health, published as CloudWatch metrics.

pub mod cold_start;
pub mod events;
pub mod handler;
pub mod http;
