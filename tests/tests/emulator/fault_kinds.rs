//! Faults that look like AWS's worst, and the pending-fault list.

#[allow(unused_imports)]
use super::*;
