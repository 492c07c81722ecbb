//! Pure decisions: no I/O, no AWS SDK types.

pub mod alarm;
pub mod budget;
pub mod pace;
pub mod policy;
pub mod probe;
pub mod registration;
pub mod scaling;
pub mod schedule;
pub mod service;
pub mod target_tracking;
