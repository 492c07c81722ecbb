//! Cold-start verification: the configuration checked against what AWS has,
//! read once, so a mismatch is an error naming the field before the first
//! event, not a surprise during it. Pure: the callers read AWS.

use super::{ConfigError, DrillConfig, RegistrarConfig, ScalerConfig};
use crate::domain::drill::DrillKind;
use crate::domain::registration::{AddressFamily, TargetGroupFacts};
use std::collections::BTreeMap;

/// Environment variable with the prefix every alarm the scaler reads must
/// start with (the template's `AlarmNamePrefix`, which scopes its IAM policy
/// and its EventBridge rule).
pub const ALARM_NAME_PREFIX_ENV: &str = "SCALER_ALARM_NAME_PREFIX";
/// The prefix every alarm an alarm drill forces must start with.
pub const DRILL_ALARM_NAME_PREFIX_ENV: &str = "DRILL_ALARM_NAME_PREFIX";
/// The prefix of the names of the target groups drain drills may change.
pub const DRILL_TARGET_GROUP_NAME_PREFIX_ENV: &str = "DRILL_TARGET_GROUP_NAME_PREFIX";
/// The prefix of the names of the services drills may change.
pub const DRILL_SERVICE_NAME_PREFIX_ENV: &str = "DRILL_SERVICE_NAME_PREFIX";

/// Every alarm a step policy names starts with `prefix`.
///
/// # Errors
/// Names the first policy whose alarm does not.
pub fn alarms_match_prefix(config: &ScalerConfig, prefix: &str) -> Result<(), ConfigError> {
    for (i, policy) in config.policies.iter().enumerate() {
        if !policy.alarm.starts_with(prefix) {
            return Err(ConfigError::new(
                format!("policies[{i}].alarm"),
                format!(
                    "{:?} does not start with {prefix:?} ({ALARM_NAME_PREFIX_ENV}): the scaler's IAM \
                     policy may not read it, and its state changes are not delivered",
                    policy.alarm
                ),
            ));
        }
    }
    Ok(())
}

/// The name part of a target group ARN
/// (`arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>`).
pub fn target_group_name(arn: &str) -> Option<&str> {
    let (_, resource) = arn.rsplit_once(":targetgroup/")?;
    let (name, id) = resource.split_once('/')?;
    (!name.is_empty() && !id.is_empty() && !id.contains('/')).then_some(name)
}

/// A target group the IAM policy's `targetgroup/<prefix>*` pattern covers.
///
/// # Errors
/// Says why not (not a target group ARN, or outside the prefix), naming
/// `variable`, the setting that holds the prefix.
pub fn target_group_in_prefix(arn: &str, prefix: &str, variable: &str) -> Result<(), String> {
    let Some(name) = target_group_name(arn) else {
        return Err(format!(
            "{arn:?} is not a target group ARN (…:targetgroup/<name>/<id>)"
        ));
    };
    if name.starts_with(prefix) {
        return Ok(());
    }
    Err(format!(
        "target group {name:?} does not start with {prefix:?} ({variable}, the template's \
         TargetGroupNamePrefix): its IAM policy may not change it; name the group with the \
         prefix or deploy with a prefix that covers it"
    ))
}

/// Every alarm an alarm drill forces starts with `prefix` (the template's
/// `AlarmNamePrefix`, which scopes `SetAlarmState`).
///
/// # Errors
/// Names the first alarm drill outside the prefix.
pub fn drill_alarms_match_prefix(config: &DrillConfig, prefix: &str) -> Result<(), ConfigError> {
    for (i, drill) in config.drills.iter().enumerate() {
        if let DrillKind::Alarm { alarm } = &drill.kind {
            if !alarm.starts_with(prefix) {
                return Err(ConfigError::new(
                    format!("drills[{i}].kind.alarm"),
                    format!(
                        "{alarm:?} does not start with {prefix:?} ({DRILL_ALARM_NAME_PREFIX_ENV}): \
                         the drill's IAM policy may not force it"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every target group a drain drill names is one its IAM policy covers.
///
/// # Errors
/// Names the first drain drill whose group is outside the prefix.
pub fn drill_groups_match_prefix(config: &DrillConfig, prefix: &str) -> Result<(), ConfigError> {
    for (i, drill) in config.drills.iter().enumerate() {
        if let DrillKind::DrainTarget {
            target_group_arn, ..
        } = &drill.kind
        {
            target_group_in_prefix(target_group_arn, prefix, DRILL_TARGET_GROUP_NAME_PREFIX_ENV)
                .map_err(|problem| {
                    ConfigError::new(format!("drills[{i}].kind.target_group_arn"), problem)
                })?;
        }
    }
    Ok(())
}

/// Every service a drill names starts with `prefix` (the template's
/// `DrillServicePrefix`, which scopes the drill's `UpdateService` and its
/// lock tags to `service/<cluster>/<prefix>*`).
///
/// # Errors
/// Names the first drill whose service is outside the prefix.
pub fn drill_services_match_prefix(config: &DrillConfig, prefix: &str) -> Result<(), ConfigError> {
    match config
        .drills
        .iter()
        .position(|d| !d.service.service.starts_with(prefix))
    {
        None => Ok(()),
        Some(i) => Err(ConfigError::new(
            format!("drills[{i}].service"),
            format!(
                "service {:?} does not start with {prefix:?} ({DRILL_SERVICE_NAME_PREFIX_ENV}, the \
                 template's DrillServicePrefix): the drill's IAM policy may not change it; name \
                 the service with the prefix or deploy with a prefix that covers it",
                config.drills[i].service.service
            ),
        )),
    }
}

/// Every alarm a step policy names exists (`found`: the names DescribeAlarms returned).
///
/// # Errors
/// Names the first policy whose alarm does not exist.
pub fn alarms_exist(config: &ScalerConfig, found: &[String]) -> Result<(), ConfigError> {
    for (i, policy) in config.policies.iter().enumerate() {
        if !found.contains(&policy.alarm) {
            return Err(ConfigError::new(
                format!("policies[{i}].alarm"),
                format!(
                    "no metric or composite alarm is named {:?} in this account and region",
                    policy.alarm
                ),
            ));
        }
    }
    Ok(())
}

/// Every target group the registrar names exists, takes IP targets of the
/// binding's address family on the binding's port, and a service's groups
/// reached from inside the VPC share one VPC.
///
/// # Errors
/// Names the first binding that disagrees with its group.
pub fn target_groups_agree(
    config: &RegistrarConfig,
    facts: &[TargetGroupFacts],
) -> Result<(), ConfigError> {
    let by_arn: BTreeMap<&str, &TargetGroupFacts> =
        facts.iter().map(|f| (f.arn.as_str(), f)).collect();
    for (i, binding) in config.services.iter().enumerate() {
        let mut first_vpc: Option<(usize, &str)> = None;
        for (j, group) in binding.target_groups.iter().enumerate() {
            let at = |field: &str| format!("services[{i}].target_groups[{j}].{field}");
            let Some(found) = by_arn.get(group.target_group_arn.as_str()) else {
                return Err(ConfigError::new(
                    at("target_group_arn"),
                    format!("target group {} does not exist", group.target_group_arn),
                ));
            };
            if found.target_type != "ip" {
                return Err(ConfigError::new(
                    at("target_group_arn"),
                    format!(
                        "the target group's type is {:?}; the registrar registers task IPs, which needs type \"ip\"",
                        found.target_type
                    ),
                ));
            }
            let family = match group.address_family {
                AddressFamily::Ipv4 => "ipv4",
                AddressFamily::Ipv6 => "ipv6",
            };
            if let Some(kind) = &found.ip_address_type {
                // A dualstack or ipv4 group takes IPv4 targets; an ipv6 group IPv6 ones.
                let takes = if kind == "ipv6" { "ipv6" } else { "ipv4" };
                if takes != family {
                    return Err(ConfigError::new(
                        at("address_family"),
                        format!("is {family}, but the target group's IpAddressType {kind} takes {takes} targets"),
                    ));
                }
            }
            if let Some(port) = found.port.filter(|p| *p != group.port) {
                return Err(ConfigError::new(
                    at("port"),
                    format!(
                        "{} differs from the target group's port {port}: health checks and listeners use the group's",
                        group.port
                    ),
                ));
            }
            if group.outside_vpc {
                continue;
            }
            match (first_vpc, found.vpc_id.as_deref()) {
                (Some((k, vpc)), Some(this)) if vpc != this => {
                    return Err(ConfigError::new(
                        at("target_group_arn"),
                        format!(
                        "the group is in {this}, target_groups[{k}] in {vpc}: one service's tasks \
                             are in one VPC; set outside_vpc for a group they reach from another"
                    ),
                    ))
                }
                (None, Some(this)) => first_vpc = Some((j, this)),
                _ => {}
            }
        }
    }
    Ok(())
}
