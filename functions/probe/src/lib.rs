//! The probe: synthetic HTTP(S) checks and target-group health, published as CloudWatch metrics.

pub mod events;
pub mod handler;
pub mod http;
