//! The configuration checked against ELBv2 with the first event (before any is
//! acted on; see `ecs_control::startup`): every
//! target group exists, takes IP targets of the binding's address family on its
//! port, and one service's groups share a VPC. A read that fails for a passing
//! reason is logged and skipped.

use ecs_control::config::verify::target_groups_agree;
use ecs_control::config::{ConfigError, RegistrarConfig};
use ecs_control::ports::TargetGroupCatalog;

/// # Errors
/// A [`ConfigError`] naming the binding that disagrees with its target group.
pub async fn verify(
    config: &RegistrarConfig,
    groups: &impl TargetGroupCatalog,
) -> Result<(), ConfigError> {
    let mut arns: Vec<String> = config
        .services
        .iter()
        .flat_map(|s| s.target_groups.iter().map(|g| g.target_group_arn.clone()))
        .collect();
    arns.sort();
    arns.dedup();
    match groups.describe_target_groups(&arns).await {
        Ok(facts) => target_groups_agree(config, &facts),
        Err(e) => {
            tracing::warn!(error = %e, "cold-start check of the target groups skipped");
            Ok(())
        }
    }
}
