//! The drill function: rehearses failure on purpose, safely, with a journal.

pub mod events;
pub mod handler;
pub mod journal;
pub mod report;
