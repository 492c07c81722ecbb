//! The configuration checked against AWS once, before the first event: every
//! alarm a policy names exists, and every service a policy resizes is active.
//! A read that fails for a passing reason (throttling, a timeout) is logged and
//! skipped: the first event will meet the same AWS anyway.

use ecs_control::config::verify::alarms_exist;
use ecs_control::config::{ConfigError, ScalerConfig};
use ecs_control::ports::{AlarmStates, EcsServices, FailureKind};

/// # Errors
/// A [`ConfigError`] naming the policy whose alarm or service AWS does not have.
pub async fn verify(
    config: &ScalerConfig,
    alarms: &impl AlarmStates,
    ecs: &impl EcsServices,
) -> Result<(), ConfigError> {
    let names = config.alarm_names();
    if !names.is_empty() {
        match alarms.describe_alarms(&names).await {
            Ok(found) => {
                let found: Vec<String> = found.into_iter().map(|a| a.name).collect();
                alarms_exist(config, &found)?;
            }
            Err(e) => tracing::warn!(error = %e, "cold-start check of the alarms skipped"),
        }
    }
    for (service, index) in config.services() {
        match ecs.describe_service(service).await {
            Ok(_) => {}
            Err(e) if e.kind == FailureKind::NotFound => {
                return Err(ConfigError::new(
                    format!("policies[{index}].service"),
                    format!("{service} is not an active ECS service: {}", e.message),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, %service, "cold-start check of the service skipped")
            }
        }
    }
    Ok(())
}
