//! Target health from the target: unused, unhealthy, unavailable; targets ELB refuses.

#[allow(unused_imports)]
use super::*;
