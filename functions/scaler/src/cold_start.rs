//! The configuration checked against AWS with the first event (before any is
//! acted on; see `ecs_control::startup`): every
//! alarm a policy names exists, and every service a policy resizes is active.
//! A read that fails for a passing reason (throttling, a timeout) is logged and
//! skipped: the first event will meet the same AWS anyway.

use ecs_control::config::verify::alarms_exist;
use ecs_control::config::{ConfigError, ScalerConfig};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, EcsServices};
use std::collections::BTreeMap;

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
    // Ten services a DescribeServices call, side by side: the first event
    // waits for these, and a document may name dozens of services.
    let first_policy: BTreeMap<&ServiceRef, usize> = config.services().collect();
    let services: Vec<ServiceRef> = first_policy.keys().map(|s| (*s).clone()).collect();
    match ecs.inactive_services(&services).await {
        Ok(inactive) => {
            // The first policy, in document order, whose service is not active.
            let first = inactive
                .iter()
                .filter_map(|(service, why)| Some((*first_policy.get(service)?, service, why)))
                .min_by_key(|(index, ..)| *index);
            if let Some((index, service, why)) = first {
                return Err(ConfigError::new(
                    format!("policies[{index}].service"),
                    format!("{service} is not an active ECS service: {why}"),
                ));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cold-start check of the services skipped"),
    }
    Ok(())
}
