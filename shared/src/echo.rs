//! How much of what a caller sent a message repeats (the domain's rule).

pub use crate::domain::echo::{capped, ECHO_LIMIT};
