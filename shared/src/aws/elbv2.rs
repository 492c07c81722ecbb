//! ELBv2 adapter: target health, registration and deregistration.

use super::classify;
use crate::domain::registration::{HealthState, RegisteredTarget, Target};
use crate::ports::{PortError, TargetGroups};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use aws_sdk_elasticloadbalancingv2::Client;

/// The AvailabilityZone value for IP targets outside the target group's VPC.
const OUTSIDE_VPC_ZONE: &str = "all";

/// [`TargetGroups`] backed by ELBv2.
#[derive(Debug, Clone)]
pub struct Elbv2Adapter {
    client: Client,
}

impl Elbv2Adapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn descriptions(targets: &[Target], outside_vpc: bool) -> Vec<TargetDescription> {
    targets
        .iter()
        .map(|t| {
            TargetDescription::builder()
                .id(&t.ip)
                .port(i32::from(t.port))
                .set_availability_zone(outside_vpc.then(|| OUTSIDE_VPC_ZONE.to_string()))
                .build()
        })
        .collect()
}

impl TargetGroups for Elbv2Adapter {
    async fn targets(&self, target_group_arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| classify("elasticloadbalancing:DescribeTargetHealth", e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let target = d.target()?;
                let port = u16::try_from(target.port().unwrap_or_default()).ok()?;
                let health = d.target_health();
                Some(RegisteredTarget {
                    target: Target::new(target.id()?, port),
                    state: health
                        .and_then(|h| h.state())
                        .map_or(HealthState::Other, |s| HealthState::parse(s.as_str())),
                    reason: health
                        .and_then(|h| h.reason())
                        .map(|r| r.as_str().to_string()),
                })
            })
            .collect())
    }

    async fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.client
            .register_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(descriptions(targets, outside_vpc)))
            .send()
            .await
            .map_err(|e| classify("elasticloadbalancing:RegisterTargets", e))?;
        Ok(())
    }

    async fn deregister(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.client
            .deregister_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(descriptions(targets, outside_vpc)))
            .send()
            .await
            .map_err(|e| classify("elasticloadbalancing:DeregisterTargets", e))?;
        Ok(())
    }
}
