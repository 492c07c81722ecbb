//! Shared library of the ECS control functions: configuration, the ports the
//! functions need, and their AWS adapters. The pure decisions live in the
//! `ecs-control-domain` crate, re-exported here as `domain`.

pub use ecs_control_domain as domain;

pub mod aws;
pub mod batch;
pub mod config;
pub mod echo;
pub mod forecast;
pub mod invocation;
pub mod log_size;
pub mod logging;
pub mod ports;
pub mod startup;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
