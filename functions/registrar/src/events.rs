//! The payloads the registrar accepts, told apart by shape.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use ecs_control::batch;
use ecs_control::domain::registration::{
    cluster_name, service_from_group, task_addresses, TaskAddresses, TaskInfo,
};
use ecs_control::domain::service::ServiceRef;
pub use ecs_control::invocation::MalformedEvent;
use ecs_control::invocation::{ARN_LIMIT, ECS_NAME_LIMIT};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `detail` of an `ECS Task State Change` event (the parts the registrar reads).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskStateDetail {
    cluster_arn: String,
    task_arn: String,
    #[serde(default)]
    group: Option<String>,
    last_status: String,
    desired_status: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    stop_code: Option<String>,
    #[serde(default)]
    availability_zone: Option<String>,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    #[serde(default)]
    network_interfaces: Vec<NetworkInterface>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInterface {
    #[serde(default)]
    private_ipv4_address: Option<String>,
    #[serde(default)]
    ipv6_address: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Attachment {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    details: Vec<AttachmentDetail>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AttachmentDetail {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

impl TaskStateDetail {
    /// The ENI's addresses, else a container interface's: events carry either.
    fn addresses(&self) -> TaskAddresses {
        task_addresses(
            self.attachments.iter().flat_map(|a| {
                let kind = a.kind.as_deref().unwrap_or_default();
                a.details
                    .iter()
                    .filter_map(move |d| Some((kind, d.name.as_deref()?, d.value.as_deref()?)))
            }),
            self.containers
                .iter()
                .flat_map(|c| &c.network_interfaces)
                .map(|n| (n.private_ipv4_address.as_deref(), n.ipv6_address.as_deref())),
        )
    }
}

/// A task event of a configured service that may act (running, or told to stop).
#[derive(Debug, Clone)]
pub(crate) struct TaskEvent {
    pub cluster: String,
    pub service: ServiceRef,
    pub task: TaskInfo,
}

/// Which services a reconcile covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSelector {
    pub cluster: String,
    pub service: String,
}

/// A manual command: `{"command": "reconcile", "services": [...], "dry_run": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualCommand {
    command: String,
    #[serde(default)]
    services: Option<Vec<ServiceSelector>>,
    #[serde(default)]
    dry_run: bool,
    /// Lift the cap on deregistrations for this run (the operator has looked).
    #[serde(default)]
    force: bool,
}

/// What an invocation asks the registrar to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A task changed state.
    TaskChange {
        cluster: String,
        /// From the task's group (`service:<name>`); `None` for standalone tasks.
        service: Option<String>,
        /// Boxed: a task is far larger than the other triggers.
        task: Box<TaskInfo>,
    },
    /// A queue batch's run of task events, handled together (never parsed:
    /// each message's body is a `TaskChange`).
    TaskChanges {
        /// The events of the run, and the tasks they are about.
        events: usize,
        tasks: usize,
    },
    /// Bring target groups in line with running tasks: every configured service,
    /// or the ones named.
    Reconcile {
        manual: bool,
        services: Option<Vec<ServiceRef>>,
        /// Deregister past `max_deregister_share` (manual commands only).
        force: bool,
    },
}

/// A parsed invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub trigger: Trigger,
    pub dry_run: bool,
}

const TASK_DETAIL_TYPE: &str = "ECS Task State Change";
const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
const RECONCILE_COMMAND: &str = "reconcile";

/// Tells the payload's kind by its shape and parses it.
///
/// # Errors
/// [`MalformedEvent`] naming what was expected, for any payload the registrar does not accept.
pub fn parse(payload: Value) -> Result<Invocation, MalformedEvent> {
    let Some(object) = payload.as_object() else {
        return Err(MalformedEvent("expected a JSON object".into()));
    };
    let dry_run = object
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if batch::is_sqs_batch(&payload) {
        return Err(batch::not_one_event());
    }
    let trigger = if object.contains_key("command") {
        let command: ManualCommand = serde_json::from_value(payload)
            .map_err(|e| MalformedEvent::because("manual command", e))?;
        if command.command != RECONCILE_COMMAND {
            return Err(MalformedEvent(format!(
                "manual command: unknown command {:?}, expected {RECONCILE_COMMAND:?}",
                command.command
            )));
        }
        Trigger::Reconcile {
            manual: true,
            services: command.services.map(|list| {
                list.into_iter()
                    .map(|s| ServiceRef::new(s.cluster, s.service))
                    .collect()
            }),
            force: command.force,
        }
    } else if let Some(detail_type) = object.get("detail-type").and_then(Value::as_str) {
        match detail_type {
            TASK_DETAIL_TYPE => {
                let event: EventBridgeEvent<TaskStateDetail> = serde_json::from_value(payload)
                    .map_err(|e| MalformedEvent::because("ECS Task State Change event", e))?;
                let detail = event.detail;
                let addresses = detail.addresses();
                Trigger::TaskChange {
                    cluster: cluster_name(&detail.cluster_arn).to_string(),
                    service: detail
                        .group
                        .as_deref()
                        .and_then(service_from_group)
                        .map(str::to_string),
                    task: Box::new(TaskInfo {
                        private_ip: addresses.ipv4,
                        private_ipv6: addresses.ipv6,
                        task_arn: detail.task_arn,
                        last_status: detail.last_status,
                        desired_status: detail.desired_status,
                        version: detail.version,
                        started_at: detail.started_at,
                        stop_code: detail.stop_code,
                        availability_zone: detail.availability_zone,
                        // Events carry no tags: the registrar reads a drain
                        // hold from ECS before it registers a task.
                        drain_hold_until: None,
                    }),
                }
            }
            SCHEDULED_DETAIL_TYPE => Trigger::Reconcile {
                manual: false,
                services: None,
                force: false,
            },
            other => {
                return Err(MalformedEvent::unsupported_detail_type(
                    other,
                    &[TASK_DETAIL_TYPE, SCHEDULED_DETAIL_TYPE],
                ))
            }
        }
    } else {
        return Err(MalformedEvent::unrecognised(
            object,
            "an EventBridge ECS Task State Change or Scheduled Event, a manual command (command), \
             or an SQS batch of them (Records from aws:sqs)",
        ));
    };
    check_lengths(&trigger)?;
    Ok(Invocation { trigger, dry_run })
}

/// Names and ARNs longer than AWS allows are refused, so they are never
/// logged or recorded whole.
fn check_lengths(trigger: &Trigger) -> Result<(), MalformedEvent> {
    match trigger {
        Trigger::TaskChange {
            cluster,
            service,
            task,
        } => {
            MalformedEvent::check_length("the cluster name", cluster, ECS_NAME_LIMIT)?;
            if let Some(service) = service {
                MalformedEvent::check_length("the service name", service, ECS_NAME_LIMIT)?;
            }
            MalformedEvent::check_length("the task ARN", &task.task_arn, ARN_LIMIT)?;
            for (what, value) in [
                ("the last status", &task.last_status),
                ("the desired status", &task.desired_status),
            ] {
                MalformedEvent::check_length(what, value, ECS_NAME_LIMIT)?;
            }
            for address in [&task.private_ip, &task.private_ipv6].into_iter().flatten() {
                // The longest IPv6 text form is 45 characters.
                MalformedEvent::check_length("a task address", address, 45)?;
            }
            if let Some(code) = &task.stop_code {
                MalformedEvent::check_length("the stop code", code, ECS_NAME_LIMIT)?;
            }
        }
        Trigger::TaskChanges { .. } => {}
        Trigger::Reconcile { services, .. } => {
            for service in services.iter().flatten() {
                MalformedEvent::check_length("a cluster name", &service.cluster, ECS_NAME_LIMIT)?;
                MalformedEvent::check_length("a service name", &service.service, ECS_NAME_LIMIT)?;
            }
        }
    }
    Ok(())
}
