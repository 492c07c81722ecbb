//! The configuration checked against AWS with the first event (before any is
//! acted on; see `ecs_control::startup`): every
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
    // Read side by side: the first event waits for these. A policy document
    // names few services; ECS's rate limits allow far more reads than that.
    let reads: Vec<_> = config
        .services()
        .map(|(service, index)| {
            let read = ecs.describe_service(service);
            async move { (service, index, read.await) }
        })
        .collect();
    let reads = futures::future::join_all(reads).await;
    for (service, index, read) in reads {
        match read {
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
