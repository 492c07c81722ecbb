//! Pure decisions: no I/O, no AWS SDK types.

pub mod alarm;
pub mod policy;
pub mod probe;
pub mod registration;
pub mod scaling;
pub mod service;
