//! Shared library of the ECS control functions: pure decisions (`domain`),
//! configuration, the ports the functions need, and their AWS adapters.

pub mod aws;
pub mod config;
pub mod domain;
pub mod invocation;
pub mod ports;
