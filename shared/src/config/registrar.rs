//! The registrar's document: which services feed which target groups, on which port.

use super::{parse_json, read_document, ConfigError};
use crate::domain::registration::{AddressFamily, DEFAULT_MAX_DEREGISTER_SHARE};
use crate::domain::service::ServiceRef;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Environment variable holding the registrar document as JSON.
pub const REGISTRAR_CONFIG_ENV: &str = "REGISTRAR_CONFIG";
/// Environment variable naming a file that holds it.
pub const REGISTRAR_CONFIG_FILE_ENV: &str = "REGISTRAR_CONFIG_FILE";
/// When set, the share of a group's owned targets one reconcile may deregister,
/// instead of the document's `max_deregister_share`.
pub const MAX_DEREGISTER_SHARE_ENV: &str = "REGISTRAR_MAX_DEREGISTER_SHARE";
/// When set (the template sets it from `TargetGroupNamePrefix`), the prefix
/// of the names of the target groups the registrar's IAM policy lets it
/// change; every group the document names must have it.
pub const TARGET_GROUP_NAME_PREFIX_ENV: &str = "REGISTRAR_TARGET_GROUP_NAME_PREFIX";
/// When set (the template sets it from `ManagedServicePrefix`), the prefix of
/// the names of the services whose task events the queue's rule passes on;
/// every service the document names must have it, or its events never come.
pub const SERVICE_NAME_PREFIX_ENV: &str = "REGISTRAR_SERVICE_NAME_PREFIX";

const DEFAULT_INITIAL_GRACE_SECONDS: u32 = 300;

/// One target group a service's tasks are registered in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroupBinding {
    pub target_group_arn: String,
    /// The port registered for every task (the container port).
    pub port: u16,
    /// Register with `AvailabilityZone=all`: for task IPs outside the target group's VPC.
    #[serde(default)]
    pub outside_vpc: bool,
    /// Which of a task's addresses the group takes: `ipv4` (default) or `ipv6`
    /// (the group's `IpAddressType` must be `ipv6`).
    #[serde(default)]
    pub address_family: AddressFamily,
}

/// A service and the target groups its running tasks belong in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBinding {
    pub service: ServiceRef,
    pub target_groups: Vec<TargetGroupBinding>,
}

/// The registrar's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrarConfig {
    pub services: Vec<ServiceBinding>,
    /// A target still `initial` this long after its task started is reported as stuck.
    pub initial_grace_seconds: u32,
    /// The largest share of a group's owned targets one reconcile deregisters,
    /// unless the operator's command says `force`.
    pub max_deregister_share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    services: Vec<ServiceEntry>,
    #[serde(default)]
    initial_grace_seconds: Option<u32>,
    #[serde(default)]
    max_deregister_share: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    cluster: String,
    service: String,
    target_groups: Vec<TargetGroupBinding>,
}

impl RegistrarConfig {
    /// Reads the document from `REGISTRAR_CONFIG` or `REGISTRAR_CONFIG_FILE`.
    ///
    /// # Errors
    /// When neither (or both) is set, the file cannot be read, or the document is invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::parse(&read_document(
            REGISTRAR_CONFIG_ENV,
            REGISTRAR_CONFIG_FILE_ENV,
            "registrar document",
        )?)?;
        if let Ok(raw) = std::env::var(MAX_DEREGISTER_SHARE_ENV) {
            config.max_deregister_share = parse_share(raw.trim().parse().ok())
                .map_err(|problem| ConfigError::new(MAX_DEREGISTER_SHARE_ENV, problem))?;
        }
        if let Ok(prefix) = std::env::var(TARGET_GROUP_NAME_PREFIX_ENV) {
            config.check_target_group_prefix(&prefix)?;
        }
        if let Ok(prefix) = std::env::var(SERVICE_NAME_PREFIX_ENV) {
            config.check_service_prefix(&prefix)?;
        }
        Ok(config)
    }

    /// The document when the deployment ships one (`REGISTRAR_CONFIG` or
    /// `REGISTRAR_CONFIG_FILE` set), for a function that only reads it.
    ///
    /// # Errors
    /// As [`Self::from_env`], when one is set.
    pub fn from_env_if_set() -> Result<Option<Self>, ConfigError> {
        let shipped = [REGISTRAR_CONFIG_ENV, REGISTRAR_CONFIG_FILE_ENV]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        shipped.then(Self::from_env).transpose()
    }

    /// Every service the document names must be one whose task events the
    /// rule passes on: it matches `service:<prefix>*` in the event's `group`.
    ///
    /// # Errors
    /// Names the first service whose name does not start with `prefix`.
    pub fn check_service_prefix(&self, prefix: &str) -> Result<(), ConfigError> {
        match self
            .services
            .iter()
            .position(|b| !b.service.service.starts_with(prefix))
        {
            None => Ok(()),
            Some(i) => Err(ConfigError::new(
                format!("services[{i}].service"),
                format!(
                    "service {:?} does not start with {prefix:?} ({SERVICE_NAME_PREFIX_ENV}, the \
                     template's ManagedServicePrefix): the rule never passes its task events on; \
                     name the service with the prefix or deploy with a prefix that covers it",
                    self.services[i].service.service
                ),
            )),
        }
    }

    /// Every target group the document names must be one the IAM policy lets
    /// the registrar change: the policy grants `targetgroup/<prefix>*`, so the
    /// same statement holds for one group or a thousand.
    ///
    /// # Errors
    /// Names the first binding whose group's name does not start with `prefix`.
    pub fn check_target_group_prefix(&self, prefix: &str) -> Result<(), ConfigError> {
        for (i, binding) in self.services.iter().enumerate() {
            for (j, group) in binding.target_groups.iter().enumerate() {
                super::verify::target_group_in_prefix(
                    &group.target_group_arn,
                    prefix,
                    TARGET_GROUP_NAME_PREFIX_ENV,
                )
                .map_err(|problem| {
                    ConfigError::new(
                        format!("services[{i}].target_groups[{j}].target_group_arn"),
                        problem,
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Parses and validates a registrar document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field.
    pub fn parse(document: &str) -> Result<Self, ConfigError> {
        let parsed: Document = parse_json(document, "registrar document")?;
        if parsed.services.is_empty() {
            return Err(ConfigError::new(
                "services",
                "at least one service is required",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut services = Vec::with_capacity(parsed.services.len());
        for (i, entry) in parsed.services.into_iter().enumerate() {
            let at = |field: &str| format!("services[{i}].{field}");
            for (field, value) in [("cluster", &entry.cluster), ("service", &entry.service)] {
                if value.trim().is_empty() {
                    return Err(ConfigError::new(at(field), "must not be empty"));
                }
            }
            let service = ServiceRef::new(entry.cluster, entry.service);
            if !seen.insert(service.clone()) {
                return Err(ConfigError::new(
                    at("service"),
                    format!("{service} is already configured"),
                ));
            }
            if entry.target_groups.is_empty() {
                return Err(ConfigError::new(
                    at("target_groups"),
                    "at least one target group is required",
                ));
            }
            let mut groups = BTreeSet::new();
            for (j, group) in entry.target_groups.iter().enumerate() {
                let at = |field: &str| format!("services[{i}].target_groups[{j}].{field}");
                if !is_target_group_arn(&group.target_group_arn) {
                    return Err(ConfigError::new(
                        at("target_group_arn"),
                        format!(
                            "{:?} is not a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)",
                            group.target_group_arn
                        ),
                    ));
                }
                if group.port == 0 {
                    return Err(ConfigError::new(at("port"), "must be between 1 and 65535"));
                }
                if !groups.insert(&group.target_group_arn) {
                    return Err(ConfigError::new(
                        at("target_group_arn"),
                        "listed twice for the same service",
                    ));
                }
            }
            services.push(ServiceBinding {
                service,
                target_groups: entry.target_groups,
            });
        }
        let max_deregister_share = parse_share(Some(
            parsed
                .max_deregister_share
                .unwrap_or(DEFAULT_MAX_DEREGISTER_SHARE),
        ))
        .map_err(|problem| ConfigError::new("max_deregister_share", problem))?;
        Ok(Self {
            services,
            initial_grace_seconds: parsed
                .initial_grace_seconds
                .unwrap_or(DEFAULT_INITIAL_GRACE_SECONDS),
            max_deregister_share,
        })
    }

    /// The binding for a service, if it is configured.
    pub fn binding(&self, service: &ServiceRef) -> Option<&ServiceBinding> {
        self.services.iter().find(|b| &b.service == service)
    }

    /// Every service bound to a target group on a port.
    pub fn services_bound_to(&self, target_group_arn: &str, port: u16) -> Vec<&ServiceBinding> {
        self.services
            .iter()
            .filter(|b| {
                b.target_groups
                    .iter()
                    .any(|g| g.target_group_arn == target_group_arn && g.port == port)
            })
            .collect()
    }
}

/// A share of targets: above 0, at most 1.
fn parse_share(value: Option<f64>) -> Result<f64, String> {
    match value {
        Some(share) if share > 0.0 && share <= 1.0 => Ok(share),
        Some(share) => Err(format!("{share} must be above 0 and at most 1")),
        None => Err("must be a number above 0 and at most 1 (0.5 is half)".into()),
    }
}

fn is_target_group_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "elasticloadbalancing"
        && parts[5].starts_with("targetgroup/")
        && parts[5].split('/').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

    #[test]
    fn a_valid_document_parses_with_defaults() {
        let doc = format!(
            r#"{{"services":[{{"cluster":"demo","service":"web","target_groups":[{{"target_group_arn":"{ARN}","port":8080}}]}}]}}"#
        );
        let config = RegistrarConfig::parse(&doc).expect("parses");
        assert_eq!(config.initial_grace_seconds, 300);
        let binding = config
            .binding(&ServiceRef::new("demo", "web"))
            .expect("bound");
        assert!(!binding.target_groups[0].outside_vpc);
    }

    #[test]
    fn mistakes_name_their_field() {
        for (doc, field) in [
            (r#"{"services":[]}"#.to_string(), "services"),
            (
                r#"{"services":[{"cluster":"demo","service":"web","target_groups":[{"target_group_arn":"web","port":8080}]}]}"#.to_string(),
                "services[0].target_groups[0].target_group_arn",
            ),
            (
                format!(r#"{{"services":[{{"cluster":"demo","service":"web","target_groups":[{{"target_group_arn":"{ARN}","port":0}}]}}]}}"#),
                "services[0].target_groups[0].port",
            ),
            (
                format!(r#"{{"services":[{{"cluster":"demo","service":"web","target_groups":[{{"target_group_arn":"{ARN}","port":70000}}]}}]}}"#),
                "services[0].target_groups[0].port",
            ),
            (
                r#"{"services":[{"cluster":"demo","service":"web","target_groups":[]}]}"#.to_string(),
                "services[0].target_groups",
            ),
            (
                format!(r#"{{"services":[{{"cluster":"demo","service":"web","target_groups":[{{"target_group_arn":"{ARN}","port":80,"address_family":"ipv5"}}]}}]}}"#),
                "services[0].target_groups[0].address_family",
            ),
            (
                format!(r#"{{"max_deregister_share":1.5,"services":[{{"cluster":"demo","service":"web","target_groups":[{{"target_group_arn":"{ARN}","port":80}}]}}]}}"#),
                "max_deregister_share",
            ),
        ] {
            let err = RegistrarConfig::parse(&doc).expect_err(&doc);
            assert_eq!(err.field, field, "{err}");
        }
    }
}
