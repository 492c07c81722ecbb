//! ECS adapter: service state, scaling memory in service tags, desired count.

use super::classify;
use crate::domain::policy::ServiceRef;
use crate::domain::scaling::{Direction, ScalingMemory, ServiceState};
use crate::ports::{EcsServices, FailureKind, PortError};
use aws_sdk_ecs::types::{DeploymentRolloutState, ServiceField, Tag};
use aws_sdk_ecs::Client;
use chrono::{DateTime, SecondsFormat, Utc};

/// Tag keys that hold the scaler's memory on each service it resizes.
pub mod tag_keys {
    pub const LAST_SCALED_AT: &str = "ecs-scaler:last-scaled-at";
    pub const LAST_DIRECTION: &str = "ecs-scaler:last-direction";
    pub const SCALE_OUT_BASE: &str = "ecs-scaler:scale-out-base";
    pub const LAST_TRIGGER: &str = "ecs-scaler:last-trigger";
    pub const LAST_TARGET: &str = "ecs-scaler:last-target";
}

/// The memory as tag key/value pairs; an unset field is an empty value, so one
/// TagResource call overwrites every field at once.
pub fn memory_to_tags(memory: &ScalingMemory) -> Vec<(&'static str, String)> {
    vec![
        (
            tag_keys::LAST_SCALED_AT,
            memory
                .last_scaled_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_default(),
        ),
        (
            tag_keys::LAST_DIRECTION,
            memory
                .last_direction
                .map(|d| d.as_str().to_string())
                .unwrap_or_default(),
        ),
        (
            tag_keys::SCALE_OUT_BASE,
            memory
                .scale_out_base
                .map(|b| b.to_string())
                .unwrap_or_default(),
        ),
        (
            tag_keys::LAST_TRIGGER,
            memory.last_trigger.clone().unwrap_or_default(),
        ),
        (
            tag_keys::LAST_TARGET,
            memory
                .last_target
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ),
    ]
}

/// Reads the memory back; unknown or unparsable values count as unset.
pub fn memory_from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> ScalingMemory {
    let mut memory = ScalingMemory::default();
    for (key, value) in tags {
        if value.is_empty() {
            continue;
        }
        match key {
            tag_keys::LAST_SCALED_AT => {
                memory.last_scaled_at = DateTime::parse_from_rfc3339(value)
                    .ok()
                    .map(|t| t.with_timezone(&Utc));
            }
            tag_keys::LAST_DIRECTION => memory.last_direction = Direction::parse(value),
            tag_keys::SCALE_OUT_BASE => memory.scale_out_base = value.parse().ok(),
            tag_keys::LAST_TRIGGER => memory.last_trigger = Some(value.to_string()),
            tag_keys::LAST_TARGET => memory.last_target = value.parse().ok(),
            _ => {}
        }
    }
    memory
}

/// [`EcsServices`] backed by ECS.
#[derive(Debug, Clone)]
pub struct EcsServiceAdapter {
    client: Client,
}

impl EcsServiceAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl EcsServices for EcsServiceAdapter {
    async fn describe_service(&self, service: &ServiceRef) -> Result<ServiceState, PortError> {
        const OP: &str = "ecs:DescribeServices";
        let out = self
            .client
            .describe_services()
            .cluster(&service.cluster)
            .services(&service.service)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        if let Some(failure) = out.failures().first() {
            return Err(PortError::new(
                FailureKind::NotFound,
                OP,
                format!(
                    "service {service}: {}",
                    failure.reason().unwrap_or("not found")
                ),
            ));
        }
        let found = out
            .services()
            .first()
            .filter(|s| s.status() == Some("ACTIVE"))
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::NotFound,
                    OP,
                    format!("service {service} is not an active service"),
                )
            })?;
        let deployments = found.deployments();
        let deployment_in_progress = deployments.len() > 1
            || deployments.iter().any(|d| {
                d.status() == Some("PRIMARY")
                    && d.rollout_state() == Some(&DeploymentRolloutState::InProgress)
            });
        let memory = memory_from_tags(
            found
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
        );
        Ok(ServiceState {
            arn: found.service_arn().unwrap_or_default().to_string(),
            desired_count: count(found.desired_count()),
            running_count: count(found.running_count()),
            pending_count: count(found.pending_count()),
            deployment_in_progress,
            memory,
        })
    }

    async fn remember(&self, service_arn: &str, memory: &ScalingMemory) -> Result<(), PortError> {
        let tags = memory_to_tags(memory)
            .into_iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        self.client
            .tag_resource()
            .resource_arn(service_arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("ecs:TagResource", e))?;
        Ok(())
    }

    async fn set_desired_count(
        &self,
        service: &ServiceRef,
        desired_count: u32,
    ) -> Result<(), PortError> {
        let desired = i32::try_from(desired_count).map_err(|_| {
            PortError::new(
                FailureKind::Rejected,
                "ecs:UpdateService",
                format!("desired count {desired_count} is out of range"),
            )
        })?;
        self.client
            .update_service()
            .cluster(&service.cluster)
            .service(&service.service)
            .desired_count(desired)
            .send()
            .await
            .map_err(|e| classify("ecs:UpdateService", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn memory_round_trips_through_tags() {
        let memory = ScalingMemory {
            last_scaled_at: Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).single(),
            last_direction: Some(Direction::Out),
            scale_out_base: Some(4),
            last_trigger: Some("alarm:web-cpu-high@2026-11-21T10:00:00.000Z".into()),
            last_target: Some(6),
        };
        let tags = memory_to_tags(&memory);
        let back = memory_from_tags(tags.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, memory);
    }

    #[test]
    fn empty_and_foreign_tags_read_as_unset() {
        let memory = memory_from_tags([
            (tag_keys::LAST_DIRECTION, ""),
            (tag_keys::SCALE_OUT_BASE, "not a number"),
            ("team", "payments"),
        ]);
        assert_eq!(memory, ScalingMemory::default());
    }
}
