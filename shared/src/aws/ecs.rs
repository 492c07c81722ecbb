//! ECS adapter: service state, scaling memory in service tags, desired count,
//! and the tasks of a service.

use super::classify;
use super::request_rate::{Family, RequestBudget};
use crate::domain::budget::TaskSize;
use crate::domain::drain::DrainMemory;
use crate::domain::drill::{Lock, LockState, DRILL_LOCK_TAG};
use crate::domain::pace::PaceMemory;
use crate::domain::registration::{task_addresses, ServiceTasks, TaskInfo};
use crate::domain::scale_in::ScaleInMemory;
use crate::domain::scaling::{
    rollout_in_progress, Direction, RolloutPart, ScalingMemory, ServiceState,
};
use crate::domain::service::ServiceRef;
use crate::domain::suspension::Suspended;
use crate::ports::{
    DrillControls, EcsServices, EcsTasks, FailureKind, PortError, TaggedService, TaskControls,
    DRILL_HALT_TAG,
};
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{
    DeploymentRolloutState, DesiredStatus, Service, ServiceField, StabilityStatus, Tag, Task,
};
use aws_sdk_ecs::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// Tag keys that hold the scaler's memory on each service it resizes.
pub mod tag_keys {
    pub const LAST_SCALED_AT: &str = "ecs-scaler:last-scaled-at";
    pub const LAST_DIRECTION: &str = "ecs-scaler:last-direction";
    pub const SCALE_OUT_BASE: &str = "ecs-scaler:scale-out-base";
    pub const LAST_TRIGGER: &str = "ecs-scaler:last-trigger";
    pub const LAST_TARGET: &str = "ecs-scaler:last-target";
    pub const APPLIED: &str = "ecs-scaler:applied";
    pub const REPLACED: &str = "ecs-scaler:replaced";
    pub const ALARM_MARKS: &str = "ecs-scaler:alarm-marks";
    pub const COMMANDS: &str = "ecs-scaler:commands";
    pub const PACE: &str = "ecs-scaler:pace";
    pub const SUSPENDED: &str = "ecs-scaler:suspended";
    pub const BLIND: &str = "ecs-scaler:blind";
    pub const SCALE_IN: &str = "ecs-scaler:scale-in";
    pub const DRAIN: &str = "ecs-scaler:drain";
    /// On a task (not the service): the task is being drained ahead of a
    /// scale-in, and the registrar holds it out of its groups until this
    /// time (epoch seconds).
    pub const DRAIN_HOLD_UNTIL: &str = "ecs-scaler:drain-hold-until";
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
        (
            tag_keys::APPLIED,
            memory.applied.map(|a| a.to_string()).unwrap_or_default(),
        ),
        (
            tag_keys::REPLACED,
            memory.replaced.map(|r| r.to_string()).unwrap_or_default(),
        ),
        (
            tag_keys::ALARM_MARKS,
            memory
                .alarm_marks
                .iter()
                .map(|(alarm, at)| format!("{alarm}={at}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (tag_keys::COMMANDS, memory.recent_commands.join(" ")),
        (
            tag_keys::PACE,
            memory
                .pace
                .as_ref()
                .map(PaceMemory::encode)
                .unwrap_or_default(),
        ),
        (tag_keys::SUSPENDED, memory.suspended.encode()),
        (
            tag_keys::BLIND,
            memory
                .blind
                .iter()
                .map(|(policy, since)| format!("{policy}={since}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (tag_keys::SCALE_IN, memory.scale_in.encode()),
        (
            tag_keys::DRAIN,
            memory
                .drain
                .as_ref()
                .map(DrainMemory::encode)
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
            tag_keys::APPLIED => memory.applied = value.parse().ok(),
            tag_keys::REPLACED => memory.replaced = value.parse().ok(),
            tag_keys::ALARM_MARKS => {
                memory.alarm_marks = value
                    .split_whitespace()
                    .filter_map(|entry| {
                        let (alarm, at) = entry.split_once('=')?;
                        Some((alarm.to_string(), at.parse().ok()?))
                    })
                    .collect();
            }
            tag_keys::COMMANDS => {
                memory.recent_commands = value.split_whitespace().map(str::to_string).collect();
            }
            tag_keys::PACE => memory.pace = PaceMemory::decode(value),
            tag_keys::SUSPENDED => memory.suspended = Suspended::decode(value),
            tag_keys::SCALE_IN => memory.scale_in = ScaleInMemory::decode(value),
            tag_keys::DRAIN => memory.drain = DrainMemory::decode(value),
            tag_keys::BLIND => {
                memory.blind = value
                    .split_whitespace()
                    .filter_map(|entry| {
                        let (policy, since) = entry.split_once('=')?;
                        Some((policy.to_string(), since.parse().ok()?))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    memory
}

/// [`EcsServices`] and [`EcsTasks`] backed by ECS.
#[derive(Debug, Clone)]
pub struct EcsAdapter {
    client: Client,
    /// This function's share of AWS's request rates (clones share it).
    budget: RequestBudget,
}

impl EcsAdapter {
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

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl EcsAdapter {
    /// The service with its tags, when ECS has it and it is active.
    async fn active_service(&self, service: &ServiceRef) -> Result<Service, PortError> {
        const OP: &str = "ecs:DescribeServices";
        self.budget.take(Family::EcsServiceRead).await;
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
        out.services()
            .first()
            .filter(|s| s.status() == Some("ACTIVE"))
            .cloned()
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::NotFound,
                    OP,
                    format!("service {service} is not an active service"),
                )
            })
    }
}

/// Services one `DescribeServices` call may name.
const DESCRIBE_SERVICES_LIMIT: usize = 10;

/// Reads of one kind in flight at once: with ECS's 30 ms or so a call, four
/// read a 300-service fleet in under half a second, and stay inside the
/// service-read bucket's burst.
const READS_IN_FLIGHT: usize = 4;

/// Why ECS did not describe `wanted` as active, from one `DescribeServices`
/// answer; `None` when it did. A failure names the service by its ARN, whose
/// last part is the name.
/// Whether a described service (or a failure's ARN) is `wanted`, which may
/// be named by its name or its ARN.
fn names(wanted: &ServiceRef, name: Option<&str>, arn: Option<&str>) -> bool {
    name == Some(wanted.service.as_str())
        || arn.is_some_and(|a| a == wanted.service || a.ends_with(&format!("/{}", wanted.service)))
}

fn inactive_reason(out: &DescribeServicesOutput, wanted: &ServiceRef) -> Option<String> {
    let is_wanted = |name: Option<&str>, arn: Option<&str>| names(wanted, name, arn);
    if let Some(found) = out
        .services()
        .iter()
        .find(|s| is_wanted(s.service_name(), s.service_arn()))
    {
        return match found.status() {
            Some("ACTIVE") => None,
            status => Some(format!("its status is {}", status.unwrap_or("unknown"))),
        };
    }
    let reason = out
        .failures()
        .iter()
        .find(|f| is_wanted(None, f.arn()))
        .and_then(|f| f.reason())
        .unwrap_or("not described");
    Some(reason.to_string())
}

/// What the scaler reads of a service ECS described.
fn service_state(found: &Service) -> ServiceState {
    let deployments: Vec<RolloutPart> = found
        .deployments()
        .iter()
        .map(|d| RolloutPart {
            settling: d.status() == Some("PRIMARY")
                && d.rollout_state() == Some(&DeploymentRolloutState::InProgress),
        })
        .collect();
    // CODE_DEPLOY and EXTERNAL services deploy through task sets instead.
    let task_sets: Vec<RolloutPart> = found
        .task_sets()
        .iter()
        .filter(|t| t.status() != Some("DRAINING"))
        .map(|t| RolloutPart {
            settling: t.stability_status() == Some(&StabilityStatus::Stabilizing),
        })
        .collect();
    let deployment_in_progress = rollout_in_progress(&deployments, &task_sets);
    let tags = || {
        found
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
    };
    let memory = memory_from_tags(tags());
    // Held or expired alike: an expired lock is a drill still to roll back.
    let drill_in_progress =
        tags()
            .find(|(key, _)| *key == DRILL_LOCK_TAG)
            .and_then(
                |(_, value)| match Lock::state(Some(value), chrono::Utc::now()) {
                    LockState::Held(lock) | LockState::Expired(lock) => Some(lock.drill_id),
                    LockState::Free => None,
                },
            );
    ServiceState {
        arn: found.service_arn().unwrap_or_default().to_string(),
        desired_count: count(found.desired_count()),
        running_count: count(found.running_count()),
        pending_count: count(found.pending_count()),
        deployment_in_progress,
        task_definition: found.task_definition().map(str::to_string),
        memory,
        drill_in_progress,
    }
}

impl EcsServices for EcsAdapter {
    async fn inactive_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        const OP: &str = "ecs:DescribeServices";
        let mut by_cluster: BTreeMap<&str, Vec<&ServiceRef>> = BTreeMap::new();
        for service in services {
            by_cluster
                .entry(&service.cluster)
                .or_default()
                .push(service);
        }
        let reads = by_cluster
            .into_iter()
            .flat_map(|(cluster, list)| {
                list.chunks(DESCRIBE_SERVICES_LIMIT)
                    .map(|chunk| (cluster, chunk.to_vec()))
                    .collect::<Vec<_>>()
            })
            .map(|(cluster, chunk)| async move {
                self.budget.take(Family::EcsServiceRead).await;
                let answer = self
                    .client
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(chunk.iter().map(|s| s.service.clone()).collect()))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e));
                let out = match answer {
                    Ok(out) => out,
                    // No such cluster: none of its services is active.
                    Err(e) if e.kind == FailureKind::NotFound => {
                        return Ok(chunk
                            .into_iter()
                            .map(|s| (s.clone(), e.message.clone()))
                            .collect());
                    }
                    Err(e) => return Err(e),
                };
                Ok::<_, PortError>(
                    chunk
                        .into_iter()
                        .filter_map(|s| inactive_reason(&out, s).map(|why| (s.clone(), why)))
                        .collect::<Vec<_>>(),
                )
            });
        let mut inactive = Vec::new();
        for read in futures::future::join_all(reads).await {
            inactive.extend(read?);
        }
        Ok(inactive)
    }

    async fn describe_service(&self, service: &ServiceRef) -> Result<ServiceState, PortError> {
        Ok(service_state(&self.active_service(service).await?))
    }

    async fn describe_services(
        &self,
        services: &[ServiceRef],
    ) -> Result<BTreeMap<ServiceRef, Result<ServiceState, PortError>>, PortError> {
        const OP: &str = "ecs:DescribeServices";
        let mut by_cluster: BTreeMap<&str, Vec<&ServiceRef>> = BTreeMap::new();
        for service in services {
            by_cluster
                .entry(&service.cluster)
                .or_default()
                .push(service);
        }
        // Owned, so that each read's future holds no borrow of this list.
        let chunks: Vec<(String, Vec<ServiceRef>)> = by_cluster
            .into_iter()
            .flat_map(|(cluster, list)| {
                list.chunks(DESCRIBE_SERVICES_LIMIT)
                    .map(|chunk| {
                        (
                            cluster.to_string(),
                            chunk.iter().map(|s| (*s).clone()).collect(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let reads = futures::stream::iter(chunks.into_iter().map(|(cluster, chunk)| async move {
            self.budget.take(Family::EcsServiceRead).await;
            let out = self
                .client
                .describe_services()
                .cluster(&cluster)
                .set_services(Some(chunk.iter().map(|s| s.service.clone()).collect()))
                .include(ServiceField::Tags)
                .send()
                .await
                .map_err(|e| classify(OP, e));
            let out = match out {
                Ok(out) => out,
                // No such cluster: none of its services can be read.
                Err(e) if e.kind == FailureKind::NotFound => {
                    return Ok(chunk
                        .into_iter()
                        .map(|s| (s, Err(e.clone())))
                        .collect::<Vec<_>>());
                }
                Err(e) => return Err(e),
            };
            Ok(chunk
                .into_iter()
                .map(|wanted| {
                    let not_found = |why: &str| {
                        PortError::new(
                            FailureKind::NotFound,
                            OP,
                            format!("service {wanted}: {why}"),
                        )
                    };
                    let state = match inactive_reason(&out, &wanted) {
                        Some(why) => Err(not_found(&why)),
                        None => out
                            .services()
                            .iter()
                            .find(|s| names(&wanted, s.service_name(), s.service_arn()))
                            .map(service_state)
                            .ok_or_else(|| not_found("not described")),
                    };
                    (wanted, state)
                })
                .collect())
        }))
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<Result<Vec<_>, PortError>>>()
        .await;
        let mut states = BTreeMap::new();
        for read in reads {
            states.extend(read?);
        }
        Ok(states)
    }

    async fn remember(&self, service_arn: &str, memory: &ScalingMemory) -> Result<(), PortError> {
        let tags = memory_to_tags(memory)
            .into_iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        self.budget.take(Family::EcsTagModify).await;
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
        self.budget.take(Family::EcsServiceModify).await;
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

    async fn task_size(&self, task_definition_arn: &str) -> Result<Option<TaskSize>, PortError> {
        const OP: &str = "ecs:DescribeTaskDefinition";
        self.budget.take(Family::EcsTaskDefinitionRead).await;
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition_arn)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let definition = out.task_definition().ok_or_else(|| {
            PortError::new(
                FailureKind::NotFound,
                OP,
                format!("task definition {task_definition_arn} not found"),
            )
        })?;
        // Task-level sizes are strings of CPU units and MiB ("256", "512").
        let parse = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u32>().ok());
        Ok(
            match (parse(definition.cpu()), parse(definition.memory())) {
                (Some(cpu_units), Some(memory_mib)) => Some(TaskSize {
                    cpu_units,
                    memory_mib,
                }),
                _ => None,
            },
        )
    }
}

fn task_info(task: &Task) -> TaskInfo {
    let addresses = task_addresses(
        task.attachments().iter().flat_map(|a| {
            let kind = a.r#type().unwrap_or_default();
            a.details()
                .iter()
                .filter_map(move |d| Some((kind, d.name()?, d.value()?)))
        }),
        task.containers()
            .iter()
            .flat_map(|c| c.network_interfaces())
            .map(|n| (n.private_ipv4_address(), n.ipv6_address())),
    );
    TaskInfo {
        task_arn: task.task_arn().unwrap_or_default().to_string(),
        last_status: task.last_status().unwrap_or_default().to_string(),
        desired_status: task.desired_status().unwrap_or_default().to_string(),
        version: Some(task.version()),
        private_ip: addresses.ipv4,
        private_ipv6: addresses.ipv6,
        started_at: task
            .started_at()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        stop_code: task.stop_code().map(|c| c.as_str().to_string()),
        availability_zone: task.availability_zone().map(str::to_string),
        drain_hold_until: task
            .tags()
            .iter()
            .find(|t| t.key() == Some(tag_keys::DRAIN_HOLD_UNTIL))
            .and_then(|t| t.value()?.parse().ok())
            .and_then(|epoch| DateTime::from_timestamp(epoch, 0)),
    }
}

/// DescribeTasks takes at most 100 tasks a call.
const TASKS_PER_DESCRIBE: usize = 100;

/// How many `DescribeTasks` calls one listing keeps in flight: pages are
/// described while the next is listed, without bursting past ECS's rate.
const DESCRIBES_IN_FLIGHT: usize = 4;

impl EcsAdapter {
    /// Describes up to 100 tasks; what ECS reports as a failure (`MISSING`) is
    /// returned by ARN beside the tasks it described.
    async fn describe_page(
        &self,
        cluster: &str,
        arns: Vec<String>,
    ) -> Result<ServiceTasks, PortError> {
        self.budget.take(Family::EcsClusterResourceRead).await;
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            // The drain hold is a task tag.
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
            .await
            .map_err(|e| classify("ecs:DescribeTasks", e))?;
        Ok(ServiceTasks {
            tasks: out.tasks().iter().map(task_info).collect(),
            missing: out
                .failures()
                .iter()
                .map(|f| f.arn().unwrap_or_default().to_string())
                .collect(),
        })
    }

    /// One `ListTasks` page (ECS returns at most 100 ARNs a page).
    async fn list_page(
        &self,
        service: &ServiceRef,
        next_token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), PortError> {
        self.budget.take(Family::EcsClusterResourceRead).await;
        let out = self
            .client
            .list_tasks()
            .cluster(&service.cluster)
            .service_name(&service.service)
            .desired_status(DesiredStatus::Running)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| classify("ecs:ListTasks", e))?;
        Ok((
            out.task_arns().to_vec(),
            out.next_token().map(str::to_string),
        ))
    }
}

impl EcsTasks for EcsAdapter {
    /// Lists the running tasks page by page and describes each page as it
    /// arrives, up to [`DESCRIBES_IN_FLIGHT`] at once, while the next is listed.
    async fn service_tasks(&self, service: &ServiceRef) -> Result<ServiceTasks, PortError> {
        let (pages, listed) = futures::channel::mpsc::unbounded::<Vec<String>>();
        let lister = async move {
            let mut token = None;
            loop {
                let (arns, next) = self.list_page(service, token).await?;
                // ECS lists at most 100 a page, as many as DescribeTasks takes;
                // the chunking only guards against a larger page.
                for chunk in arns.chunks(TASKS_PER_DESCRIBE) {
                    // The receiver lives until the listing ends.
                    let _ = pages.unbounded_send(chunk.to_vec());
                }
                token = next;
                if token.is_none() {
                    return Ok::<(), PortError>(());
                }
            }
        };
        let describer = listed
            .map(|arns| self.describe_page(&service.cluster, arns))
            .buffered(DESCRIBES_IN_FLIGHT)
            .try_fold(ServiceTasks::default(), |mut all, page| async move {
                all.tasks.extend(page.tasks);
                all.missing.extend(page.missing);
                Ok(all)
            });
        let (listing, described) = futures::future::join(lister, describer).await;
        listing?;
        described
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, TaskInfo>, PortError> {
        let mut found = BTreeMap::new();
        for chunk in task_arns.chunks(TASKS_PER_DESCRIBE) {
            let page = self.describe_page(cluster, chunk.to_vec()).await?;
            found.extend(page.tasks.into_iter().map(|t| (t.task_arn.clone(), t)));
        }
        Ok(found)
    }

    async fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskInfo>, PortError> {
        Ok(self
            .describe_page(cluster, vec![task_arn.to_string()])
            .await?
            .tasks
            .into_iter()
            .next())
    }
}

impl DrillControls for EcsAdapter {
    async fn tagged_service(&self, service: &ServiceRef) -> Result<TaggedService, PortError> {
        let found = self.active_service(service).await?;
        let tags = found
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        Ok(TaggedService {
            arn: found.service_arn().unwrap_or_default().to_string(),
            desired_count: count(found.desired_count()),
            tags,
        })
    }

    async fn tag_service(
        &self,
        service_arn: &str,
        tags: &[(String, String)],
    ) -> Result<(), PortError> {
        let tags = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        self.budget.take(Family::EcsTagModify).await;
        self.client
            .tag_resource()
            .resource_arn(service_arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("ecs:TagResource", e))?;
        Ok(())
    }

    async fn drills_halted(&self, cluster: &str) -> Result<Option<String>, PortError> {
        const OP: &str = "ecs:DescribeClusters";
        self.budget.take(Family::EcsClusterRead).await;
        let out = self
            .client
            .describe_clusters()
            .clusters(cluster)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let Some(found) = out.clusters().first() else {
            return Err(PortError::new(
                FailureKind::NotFound,
                OP,
                format!("cluster {cluster} not found"),
            ));
        };
        Ok(found
            .tags()
            .iter()
            .find(|t| t.key() == Some(DRILL_HALT_TAG))
            .map(|t| t.value().unwrap_or_default().to_string()))
    }

    async fn untag_service(&self, service_arn: &str, keys: &[String]) -> Result<(), PortError> {
        self.budget.take(Family::EcsTagModify).await;
        self.client
            .untag_resource()
            .resource_arn(service_arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| classify("ecs:UntagResource", e))?;
        Ok(())
    }

    async fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> Result<(), PortError> {
        self.budget.take(Family::EcsClusterResourceModify).await;
        self.client
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| classify("ecs:StopTask", e))?;
        Ok(())
    }
}

/// UpdateTaskProtection takes at most 10 tasks a call.
const TASKS_PER_PROTECTION: usize = 10;

impl TaskControls for EcsAdapter {
    /// One `TagResource` (or `UntagResource`) a task: ECS tags one resource a call.
    async fn hold_for_drain(
        &self,
        _cluster: &str,
        task_arns: &[String],
        until: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        for arn in task_arns {
            self.budget.take(Family::EcsTagModify).await;
            let sent = match until {
                Some(until) => self
                    .client
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(
                        Tag::builder()
                            .key(tag_keys::DRAIN_HOLD_UNTIL)
                            .value(until.timestamp().to_string())
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("ecs:TagResource", e)),
                None => self
                    .client
                    .untag_resource()
                    .resource_arn(arn)
                    .tag_keys(tag_keys::DRAIN_HOLD_UNTIL)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("ecs:UntagResource", e)),
            };
            match sent {
                Err(e) if e.kind == FailureKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    async fn protection(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        let mut protected = BTreeMap::new();
        for chunk in task_arns.chunks(TASKS_PER_DESCRIBE) {
            self.budget.take(Family::EcsClusterResourceRead).await;
            let out = self
                .client
                .get_task_protection()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("ecs:GetTaskProtection", e))?;
            for task in out.protected_tasks() {
                let expiry = task
                    .expiration_date()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                if let (true, Some(arn), Some(expiry)) =
                    (task.protection_enabled(), task.task_arn(), expiry)
                {
                    protected.insert(arn.to_string(), expiry);
                }
            }
        }
        Ok(protected)
    }

    async fn protect(
        &self,
        cluster: &str,
        task_arns: &[String],
        minutes: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        let mut refused = Vec::new();
        for chunk in task_arns.chunks(TASKS_PER_PROTECTION) {
            self.budget.take(Family::EcsClusterResourceModify).await;
            let out = self
                .client
                .update_task_protection()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .protection_enabled(minutes.is_some())
                .set_expires_in_minutes(minutes.and_then(|m| i32::try_from(m).ok()))
                .send()
                .await
                .map_err(|e| classify("ecs:UpdateTaskProtection", e))?;
            refused.extend(out.failures().iter().map(|f| {
                (
                    f.arn().unwrap_or_default().to_string(),
                    [f.reason(), f.detail()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": "),
                )
            }));
        }
        Ok(refused)
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
            applied: Some(false),
            replaced: Some(4),
            drain: Some(DrainMemory::new(
                Utc.with_ymd_and_hms(2026, 11, 21, 10, 1, 0).unwrap(),
                6,
                2,
            )),
            blind: crate::domain::fallback::blind_marks(
                &Default::default(),
                &[("cpu at 60", true), ("requests", true)],
                Utc::now(),
            ),
            ..ScalingMemory::default()
        }
        .with_marks([("web-cpu-high", Utc::now()), ("web-cpu-low", Utc::now())])
        .with_command("deploy-42");
        let tags = memory_to_tags(&memory);
        let back = memory_from_tags(tags.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, memory);
    }

    #[test]
    fn a_full_memory_fits_ecs_tag_rules() {
        let mut memory = ScalingMemory {
            last_scaled_at: Some(Utc::now()),
            last_direction: Some(Direction::In),
            scale_out_base: Some(u32::MAX),
            last_trigger: Some(crate::domain::scaling::trigger_key(&"(é,!)#".repeat(500))),
            last_target: Some(u32::MAX),
            applied: Some(true),
            replaced: Some(u32::MAX),
            drain: Some(DrainMemory {
                phase: crate::domain::drain::DrainPhase::Lowered,
                lowered_at: Some(Utc::now()),
                ..DrainMemory::new(Utc::now(), u32::MAX, u32::MAX - 1)
            }),
            ..ScalingMemory::default()
        };
        for i in 0..40 {
            let at = Utc::now() + chrono::TimeDelta::days(i);
            memory = memory
                .with_marks([(format!("alarm-{i}").as_str(), at)])
                .with_command(&format!("command-{i}"));
            let policies: Vec<String> = (0..=i).map(|p| format!("policy-{p}")).collect();
            let judged: Vec<(&str, bool)> = policies.iter().map(|p| (p.as_str(), true)).collect();
            memory.blind = crate::domain::fallback::blind_marks(&memory.blind, &judged, at);
        }
        for (key, value) in memory_to_tags(&memory) {
            assert!(key.chars().count() <= 128, "{key}");
            assert!(
                value.chars().count() <= 256,
                "{key}: {} characters",
                value.len()
            );
            assert!(
                value.chars().all(crate::domain::scaling::tag_char_allowed),
                "{key}: {value}"
            );
        }
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

    #[test]
    fn a_drill_lock_on_the_service_is_read_as_a_drill_in_progress_held_or_expired() {
        let with_tags = |tags: Vec<(&str, String)>| {
            let mut service = Service::builder()
                .service_arn("arn:aws:ecs:us-east-1:123456789012:service/demo/web")
                .desired_count(3);
            for (key, value) in tags {
                service = service.tags(Tag::builder().key(key).value(value).build());
            }
            service_state(&service.build())
        };
        assert_eq!(with_tags(vec![]).drill_in_progress, None);
        let lock = |expires_in: i64| Lock {
            drill_id: "scale-web-1790000000000".into(),
            expires_at: chrono::Utc::now() + chrono::TimeDelta::seconds(expires_in),
            holder: "a1b2".into(),
            busy_until: None,
        };
        for expires_in in [600, -600] {
            let state = with_tags(vec![(DRILL_LOCK_TAG, lock(expires_in).encode())]);
            assert_eq!(
                state.drill_in_progress.as_deref(),
                Some("scale-web-1790000000000"),
                "expires in {expires_in} s"
            );
        }
        let garbage = with_tags(vec![(DRILL_LOCK_TAG, "not a lock".into())]);
        assert_eq!(garbage.drill_in_progress, None);
    }

    #[test]
    fn a_service_is_inactive_when_missing_or_not_active_and_found_by_name_or_arn() {
        use aws_sdk_ecs::types::{Failure, Service};
        let out = DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("web")
                    .status("ACTIVE")
                    .build(),
            )
            .services(
                Service::builder()
                    .service_name("old")
                    .service_arn("arn:aws:ecs:us-east-1:123456789012:service/demo/old")
                    .status("INACTIVE")
                    .build(),
            )
            .failures(
                Failure::builder()
                    .arn("arn:aws:ecs:us-east-1:123456789012:service/demo/gone")
                    .reason("MISSING")
                    .build(),
            )
            .build();
        let reason = |name: &str| inactive_reason(&out, &ServiceRef::new("demo", name));
        assert_eq!(reason("web"), None);
        assert_eq!(reason("old").as_deref(), Some("its status is INACTIVE"));
        assert_eq!(
            reason("arn:aws:ecs:us-east-1:123456789012:service/demo/old").as_deref(),
            Some("its status is INACTIVE")
        );
        assert_eq!(reason("gone").as_deref(), Some("MISSING"));
        assert_eq!(reason("never-asked").as_deref(), Some("not described"));
    }
}
