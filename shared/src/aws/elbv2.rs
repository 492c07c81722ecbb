//! ELBv2 adapter: target health, registration and deregistration.

use super::classify;
use super::request_rate::{Family, RequestBudget};
use crate::domain::registration::{HealthState, RegisteredTarget, Target, TargetGroupFacts};
use crate::ports::{FailureKind, PortError, TargetGroupCatalog, TargetGroups};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use aws_sdk_elasticloadbalancingv2::Client;

/// The AvailabilityZone value for IP targets outside the target group's VPC.
const OUTSIDE_VPC_ZONE: &str = "all";

/// [`TargetGroups`] backed by ELBv2.
#[derive(Debug, Clone)]
pub struct Elbv2Adapter {
    client: Client,
    /// This function's share of AWS's request rates (clones share it).
    budget: RequestBudget,
}

impl Elbv2Adapter {
    pub fn new(client: Client) -> Self {
        Self {
            client: super::deadline::with_deadline!(client),
            budget: RequestBudget::default(),
        }
    }

    /// The same adapter, keeping to `budget` instead.
    #[must_use]
    pub fn with_budget(mut self, budget: RequestBudget) -> Self {
        self.budget = budget;
        self
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

impl Elbv2Adapter {
    /// One `DescribeTargetHealth`: every target of the group, or the ones
    /// named. A named target that is not registered comes back as `unused`
    /// with `Target.NotRegistered`; it is left out, as it is not in the group.
    async fn target_health(
        &self,
        target_group_arn: &str,
        named: Option<Vec<TargetDescription>>,
    ) -> Result<Vec<RegisteredTarget>, PortError> {
        self.budget.take(Family::ElbDescribe).await;
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .set_targets(named)
            .send()
            .await
            .map_err(|e| classify("elasticloadbalancing:DescribeTargetHealth", e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                d.target_health()
                    .and_then(|h| h.reason())
                    .is_none_or(|r| r.as_str() != NOT_REGISTERED)
            })
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
}

/// The reason ELBv2 gives a named target that is not in the group.
const NOT_REGISTERED: &str = "Target.NotRegistered";

impl TargetGroups for Elbv2Adapter {
    async fn targets(&self, target_group_arn: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        self.target_health(target_group_arn, None).await
    }

    async fn targets_among(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<Vec<RegisteredTarget>, PortError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let named = targets
            .iter()
            .map(|t| {
                TargetDescription::builder()
                    .id(&t.ip)
                    .port(i32::from(t.port))
                    .build()
            })
            .collect();
        self.target_health(target_group_arn, Some(named)).await
    }

    async fn register(
        &self,
        target_group_arn: &str,
        targets: &[Target],
        outside_vpc: bool,
    ) -> Result<(), PortError> {
        self.budget.take(Family::ElbTargets).await;
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
        self.budget.take(Family::ElbTargets).await;
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

/// DescribeTargetGroups takes at most 20 ARNs a call.
const GROUPS_PER_CALL: usize = 20;

impl TargetGroupCatalog for Elbv2Adapter {
    async fn describe_target_groups(
        &self,
        arns: &[String],
    ) -> Result<Vec<TargetGroupFacts>, PortError> {
        const OP: &str = "elasticloadbalancing:DescribeTargetGroups";
        let mut found = Vec::new();
        // One ARN a call when a batch names a missing group: the batch fails whole.
        for batch in arns.chunks(GROUPS_PER_CALL) {
            self.budget.take(Family::ElbDescribe).await;
            let out = match self
                .client
                .describe_target_groups()
                .set_target_group_arns(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| classify(OP, e))
            {
                Ok(out) => out.target_groups().to_vec(),
                Err(e) if e.kind == FailureKind::NotFound => {
                    let mut one_by_one = Vec::new();
                    for arn in batch {
                        self.budget.take(Family::ElbDescribe).await;
                        match self
                            .client
                            .describe_target_groups()
                            .target_group_arns(arn)
                            .send()
                            .await
                            .map_err(|e| classify(OP, e))
                        {
                            Ok(out) => one_by_one.extend(out.target_groups().to_vec()),
                            Err(e) if e.kind == FailureKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                    one_by_one
                }
                Err(e) => return Err(e),
            };
            found.extend(out.iter().map(|g| {
                TargetGroupFacts {
                    arn: g.target_group_arn().unwrap_or_default().to_string(),
                    target_type: g
                        .target_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    vpc_id: g.vpc_id().map(str::to_string),
                    port: g.port().and_then(|p| u16::try_from(p).ok()),
                    ip_address_type: g.ip_address_type().map(|t| t.as_str().to_string()),
                }
            }));
        }
        Ok(found)
    }
}
