//! ECS's scheduler and task lifecycle: task states, task events, deployments that fail or stick.

#[allow(unused_imports)]
use super::*;
