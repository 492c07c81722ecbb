//! Target registration: what a target group must gain and lose so that the
//! targets the registrar owns are exactly the running tasks.
//!
//! Ownership: in a configured target group, the registrar owns the targets on
//! the port it registers there. Targets on any other port are foreign and never
//! touched. Targets already `draining` are left to drain.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// ELBv2 takes at most this many targets per Register/DeregisterTargets call here
/// (as the Kubernetes load balancer controller does).
pub const TARGETS_PER_CALL: usize = 200;

/// A target as ELBv2 identifies it: IP and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    pub ip: String,
    pub port: u16,
}

impl Target {
    pub fn new(ip: impl Into<String>, port: u16) -> Self {
        Self {
            ip: ip.into(),
            port,
        }
    }
}

/// The target health states ELBv2 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
    /// A state this code does not know (reported as seen).
    Other,
}

impl HealthState {
    pub fn parse(s: &str) -> Self {
        match s {
            "initial" => HealthState::Initial,
            "healthy" => HealthState::Healthy,
            "unhealthy" => HealthState::Unhealthy,
            "unused" => HealthState::Unused,
            "draining" => HealthState::Draining,
            "unavailable" => HealthState::Unavailable,
            _ => HealthState::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Initial => "initial",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Unused => "unused",
            HealthState::Draining => "draining",
            HealthState::Unavailable => "unavailable",
            HealthState::Other => "other",
        }
    }

    /// `initial` and `draining` are on their way somewhere: transitioning, not failing.
    pub fn is_transitioning(self) -> bool {
        matches!(self, HealthState::Initial | HealthState::Draining)
    }
}

/// A target as DescribeTargetHealth reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredTarget {
    pub target: Target,
    pub state: HealthState,
    /// ELBv2's reason code, e.g. `Elb.InitialHealthChecking`, `Target.Timeout`.
    pub reason: Option<String>,
}

/// What to change in one target group for one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetDiff {
    pub register: Vec<Target>,
    pub deregister: Vec<Target>,
    /// Owned targets already registered and running.
    pub unchanged: usize,
    /// Targets on other ports: not ours, left alone.
    pub foreign: usize,
    /// Owned targets draining and not running: left to drain.
    pub draining: usize,
    /// Running IPs whose target is still draining: registered again only once
    /// it has drained (ELBv2 keeps a deregistered target for the group's
    /// deregistration delay), by a later reconcile.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wait_for_drain: Vec<Target>,
}

impl TargetDiff {
    pub fn is_empty(&self) -> bool {
        self.register.is_empty() && self.deregister.is_empty()
    }
}

/// The diff that makes the non-draining targets on `port` equal `running_ips`.
/// A running IP whose target is draining waits until it has drained.
pub fn diff(port: u16, running_ips: &BTreeSet<String>, current: &[RegisteredTarget]) -> TargetDiff {
    let mut result = TargetDiff::default();
    let mut active: BTreeSet<&str> = BTreeSet::new();
    let mut draining: BTreeSet<&str> = BTreeSet::new();
    for registered in current {
        if registered.target.port != port {
            result.foreign += 1;
        } else if registered.state == HealthState::Draining {
            draining.insert(&registered.target.ip);
        } else {
            active.insert(&registered.target.ip);
        }
    }
    for ip in running_ips {
        if active.contains(ip.as_str()) {
            result.unchanged += 1;
        } else if draining.contains(ip.as_str()) {
            result.wait_for_drain.push(Target::new(ip.clone(), port));
        } else {
            result.register.push(Target::new(ip.clone(), port));
        }
    }
    result.deregister = active
        .iter()
        .filter(|ip| !running_ips.contains(**ip))
        .map(|ip| Target::new(*ip, port))
        .collect();
    result.draining = draining
        .iter()
        .filter(|ip| !running_ips.contains(**ip))
        .count();
    result
}

/// A target worth an operator's look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthConcern {
    pub target: Target,
    pub state: HealthState,
    pub reason: Option<String>,
    /// For `initial`: how long its task has been running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_running_seconds: Option<i64>,
}

/// Unhealthy targets, and targets still `initial` although their task has been
/// running for longer than `initial_grace`.
pub fn health_concerns(
    current: &[RegisteredTarget],
    port: u16,
    task_started_at: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
    initial_grace: TimeDelta,
) -> Vec<HealthConcern> {
    current
        .iter()
        .filter(|r| r.target.port == port)
        .filter_map(|r| {
            let running_for = task_started_at
                .get(&r.target.ip)
                .map(|started| now - *started);
            let concern = match r.state {
                HealthState::Unhealthy | HealthState::Unavailable => true,
                HealthState::Initial => running_for.is_some_and(|d| d > initial_grace),
                _ => false,
            };
            concern.then(|| HealthConcern {
                target: r.target.clone(),
                state: r.state,
                reason: r.reason.clone(),
                task_running_seconds: (r.state == HealthState::Initial)
                    .then(|| running_for.map(|d| d.num_seconds()))
                    .flatten(),
            })
        })
        .collect()
}

/// Attachment types that carry a task's ENI: `ElasticNetworkInterface` in
/// DescribeTasks, `eni` in EventBridge events.
pub const ENI_ATTACHMENT_TYPES: [&str; 2] = ["ElasticNetworkInterface", "eni"];
/// The attachment detail holding the ENI's private IPv4 address.
pub const PRIVATE_IP_DETAIL: &str = "privateIPv4Address";
/// The attachment detail holding the ENI's IPv6 address.
pub const PRIVATE_IPV6_DETAIL: &str = "privateIPv6Address";

/// Which address of a task a target group takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    #[default]
    Ipv4,
    Ipv6,
}

/// What ELBv2 says about a target group, for the registrar's cold-start check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroupFacts {
    pub arn: String,
    /// `ip`, `instance`, `lambda` or `alb`.
    pub target_type: String,
    pub vpc_id: Option<String>,
    pub port: Option<u16>,
    /// `ipv4` or `ipv6`.
    pub ip_address_type: Option<String>,
}

/// A task's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskAddresses {
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

/// A task's addresses from what events and DescribeTasks both carry: the
/// details of its attachments (`(attachment type, name, value)`), else its
/// containers' interfaces (`(IPv4, IPv6)`).
pub fn task_addresses<'a>(
    attachment_details: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    container_interfaces: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> TaskAddresses {
    let mut found = TaskAddresses::default();
    for (kind, name, value) in attachment_details {
        if !ENI_ATTACHMENT_TYPES.contains(&kind) {
            continue;
        }
        match name {
            PRIVATE_IP_DETAIL => found.ipv4 = found.ipv4.or_else(|| Some(value.to_string())),
            PRIVATE_IPV6_DETAIL => found.ipv6 = found.ipv6.or_else(|| Some(value.to_string())),
            _ => {}
        }
    }
    for (ipv4, ipv6) in container_interfaces {
        found.ipv4 = found.ipv4.or_else(|| ipv4.map(str::to_string));
        found.ipv6 = found.ipv6.or_else(|| ipv6.map(str::to_string));
    }
    found
}

/// What an ECS task is and where it can be reached, from an event or DescribeTasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    pub task_arn: String,
    pub last_status: String,
    pub desired_status: String,
    /// Rises with every change of the task; orders events.
    pub version: Option<i64>,
    pub private_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ipv6: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub stop_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Set while the scaler drains the task ahead of a scale-in: until then
    /// the registrar keeps it out of its groups (read from the task's tags,
    /// which only `DescribeTasks` carries, never an event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_hold_until: Option<DateTime<Utc>>,
}

impl TaskInfo {
    /// Whether the scaler is draining the task at `now`: the registrar
    /// neither registers it nor counts it as running.
    pub fn held_for_drain(&self, now: DateTime<Utc>) -> bool {
        self.drain_hold_until.is_some_and(|until| now < until)
    }

    /// The task's address in `family`.
    pub fn address(&self, family: AddressFamily) -> Option<&str> {
        match family {
            AddressFamily::Ipv4 => self.private_ip.as_deref(),
            AddressFamily::Ipv6 => self.private_ipv6.as_deref(),
        }
    }
}

/// A service's tasks meant to run, as far as ECS could describe them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceTasks {
    pub tasks: Vec<TaskInfo>,
    /// Tasks `ListTasks` named that `DescribeTasks` reported missing: the set
    /// is not fully known, so nothing may be deregistered on its account.
    pub missing: Vec<String>,
}

/// The default share of a group's owned targets one reconcile may deregister.
pub const DEFAULT_MAX_DEREGISTER_SHARE: f64 = 0.5;

/// Caps a diff's deregistrations at `max_share` of the owned targets (those on
/// its port, not draining), at least one; returns what was held back.
pub fn cap_deregistrations(diff: &mut TargetDiff, max_share: f64) -> Vec<Target> {
    let owned = diff.unchanged + diff.deregister.len();
    // Truncation is the rule: never more than the share (and at least one).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let allowed = ((owned as f64 * max_share).floor() as usize).max(1);
    if diff.deregister.len() <= allowed {
        return Vec::new();
    }
    diff.deregister.split_off(allowed)
}

/// What a task's state asks of its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "why", rename_all = "snake_case")]
pub enum TaskAction {
    /// Running and meant to run: register (after confirming with ECS).
    Register,
    /// Meant to stop: deregister now, so the load balancer drains it before the container dies.
    Deregister,
    /// Nothing to do yet.
    Wait(String),
}

pub fn action_for(task: &TaskInfo) -> TaskAction {
    match (task.last_status.as_str(), task.desired_status.as_str()) {
        (_, "STOPPED") => TaskAction::Deregister,
        ("RUNNING", "RUNNING") => TaskAction::Register,
        (last, desired) => TaskAction::Wait(format!(
            "the task is {last} (desired {desired}), not running yet"
        )),
    }
}

/// `service:web` → `web`.
pub fn service_from_group(group: &str) -> Option<&str> {
    group.strip_prefix("service:").filter(|s| !s.is_empty())
}

/// `arn:aws:ecs:us-east-1:123456789012:cluster/demo` → `demo`; a bare name stays as it is.
pub fn cluster_name(cluster: &str) -> &str {
    cluster
        .rsplit_once(":cluster/")
        .map_or(cluster, |(_, name)| name)
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:...` → (partition, region, account).
pub fn arn_scope(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(_), Some(region), Some(account), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((partition, region, account))
}

/// Why a task is none of the registrar's business when its ARN is in another
/// partition, region or account than every target group it would feed;
/// `None` when it shares one's, or when either ARN says nothing of it.
pub fn foreign_task<'a>(
    task_arn: &str,
    group_arns: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let task = arn_scope(task_arn)?;
    let groups: Vec<(&str, &str, &str)> = group_arns.into_iter().filter_map(arn_scope).collect();
    if groups.is_empty() || groups.contains(&task) {
        return None;
    }
    let (_, region, account) = task;
    let (_, group_region, group_account) = groups[0];
    Some(format!(
        "the task is in account {account}, region {region}; its service's target groups are in \
         account {group_account}, region {group_region}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_of_another_account_or_region_is_foreign() {
        let group = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123";
        let ours = "arn:aws:ecs:us-east-1:123456789012:task/demo/abc";
        assert_eq!(foreign_task(ours, [group]), None);
        for other in [
            "arn:aws:ecs:eu-west-1:123456789012:task/demo/abc",
            "arn:aws:ecs:us-east-1:999999999999:task/demo/abc",
            "arn:aws-cn:ecs:us-east-1:123456789012:task/demo/abc",
        ] {
            assert!(foreign_task(other, [group]).is_some(), "{other}");
        }
        assert_eq!(foreign_task("not-an-arn", [group]), None);
    }

    fn registered(ip: &str, port: u16, state: HealthState) -> RegisteredTarget {
        RegisteredTarget {
            target: Target::new(ip, port),
            state,
            reason: None,
        }
    }

    #[test]
    fn diff_registers_missing_and_deregisters_stale_only_on_its_port() {
        let running: BTreeSet<String> = ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
            .map(String::from)
            .into();
        let current = [
            registered("10.0.0.1", 8080, HealthState::Healthy),
            registered("10.0.0.3", 8080, HealthState::Healthy),
            registered("10.0.0.4", 8080, HealthState::Draining),
            registered("10.0.0.5", 8080, HealthState::Draining),
            registered("10.0.0.9", 9090, HealthState::Healthy),
        ];
        let d = diff(8080, &running, &current);
        assert_eq!(d.register, [Target::new("10.0.0.2", 8080)]);
        assert_eq!(d.deregister, [Target::new("10.0.0.3", 8080)]);
        // ELBv2: a deregistered target stays draining for the deregistration
        // delay; a running IP waits for it to drain, then registers.
        assert_eq!(d.wait_for_drain, [Target::new("10.0.0.4", 8080)]);
        assert_eq!((d.unchanged, d.foreign, d.draining), (1, 1, 1));
    }

    #[test]
    fn task_states_map_to_actions() {
        let task = |last: &str, desired: &str| TaskInfo {
            task_arn: "t".into(),
            last_status: last.into(),
            desired_status: desired.into(),
            version: None,
            private_ip: None,
            private_ipv6: None,
            started_at: None,
            stop_code: None,
            availability_zone: None,
            drain_hold_until: None,
        };
        assert_eq!(
            action_for(&task("RUNNING", "RUNNING")),
            TaskAction::Register
        );
        assert_eq!(
            action_for(&task("RUNNING", "STOPPED")),
            TaskAction::Deregister
        );
        assert_eq!(
            action_for(&task("STOPPED", "STOPPED")),
            TaskAction::Deregister
        );
        assert!(matches!(
            action_for(&task("PROVISIONING", "RUNNING")),
            TaskAction::Wait(_)
        ));
    }

    #[test]
    fn deregistrations_are_capped_at_a_share_of_the_owned_targets() {
        let targets = |n: usize| {
            (0..n)
                .map(|i| Target::new(format!("10.0.0.{i}"), 80))
                .collect::<Vec<_>>()
        };
        // 8 of 10 stale: half may go.
        let mut d = TargetDiff {
            deregister: targets(8),
            unchanged: 2,
            ..TargetDiff::default()
        };
        let held = cap_deregistrations(&mut d, 0.5);
        assert_eq!((d.deregister.len(), held.len()), (5, 3));
        // One stale target of one may always go.
        let mut d = TargetDiff {
            deregister: targets(1),
            ..TargetDiff::default()
        };
        assert!(cap_deregistrations(&mut d, 0.5).is_empty());
        assert_eq!(d.deregister.len(), 1);
    }

    #[test]
    fn addresses_come_from_the_eni_else_the_containers() {
        let from_eni = task_addresses(
            [
                ("eni", "subnetId", "subnet-1"),
                ("eni", PRIVATE_IP_DETAIL, "10.0.0.1"),
                ("eni", PRIVATE_IPV6_DETAIL, "2600::1"),
                ("other", PRIVATE_IP_DETAIL, "192.168.0.1"),
            ],
            [(Some("10.9.9.9"), None)],
        );
        assert_eq!(from_eni.ipv4.as_deref(), Some("10.0.0.1"));
        assert_eq!(from_eni.ipv6.as_deref(), Some("2600::1"));
        let from_containers =
            task_addresses([], [(None, None), (Some("10.9.9.9"), Some("2600::9"))]);
        assert_eq!(from_containers.ipv4.as_deref(), Some("10.9.9.9"));
        assert_eq!(from_containers.ipv6.as_deref(), Some("2600::9"));
    }

    #[test]
    fn names_come_out_of_groups_and_arns() {
        assert_eq!(service_from_group("service:web"), Some("web"));
        assert_eq!(service_from_group("family:web"), None);
        assert_eq!(
            cluster_name("arn:aws:ecs:us-east-1:123456789012:cluster/demo"),
            "demo"
        );
        assert_eq!(cluster_name("demo"), "demo");
    }

    #[test]
    fn unhealthy_and_stuck_initial_targets_are_concerns() {
        let now = DateTime::<Utc>::from_timestamp(10_000, 0).unwrap_or_default();
        let started: BTreeMap<String, DateTime<Utc>> = [
            ("10.0.0.2".to_string(), now - TimeDelta::seconds(900)),
            ("10.0.0.3".to_string(), now - TimeDelta::seconds(30)),
        ]
        .into();
        let current = [
            registered("10.0.0.1", 80, HealthState::Unhealthy),
            registered("10.0.0.2", 80, HealthState::Initial),
            registered("10.0.0.3", 80, HealthState::Initial),
            registered("10.0.0.4", 80, HealthState::Healthy),
        ];
        let concerns = health_concerns(&current, 80, &started, now, TimeDelta::seconds(300));
        let ips: Vec<&str> = concerns.iter().map(|c| c.target.ip.as_str()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(concerns[1].task_running_seconds, Some(900));
    }
}

/// A batch's events for one task, reduced to the one to act on. Events come
/// late, twice and out of order; ECS's `version` rises with every change of a
/// task, so the highest wins. A desired status of STOPPED is final (a task
/// never runs again once told to stop), so it wins over any RUNNING event,
/// whatever the versions say. Equal versions: the later event. An address
/// the winner lacks is taken from the others (a STOPPED event may carry none).
pub fn newest_state(events: &[TaskInfo]) -> Option<TaskInfo> {
    let stopping = |t: &TaskInfo| t.desired_status == "STOPPED";
    let mut newest = events.first()?.clone();
    for event in &events[1..] {
        let newer = match (stopping(event), stopping(&newest)) {
            (true, false) => true,
            (false, true) => false,
            _ => event.version >= newest.version,
        };
        if newer {
            newest = event.clone();
        }
    }
    for event in events {
        if newest.private_ip.is_none() {
            newest.private_ip.clone_from(&event.private_ip);
        }
        if newest.private_ipv6.is_none() {
            newest.private_ipv6.clone_from(&event.private_ipv6);
        }
    }
    Some(newest)
}

/// Whether ECS's view of a stopping task shows it still holding `ip`: its
/// network interface stays attached until DEPROVISIONING, and an address
/// belongs to one interface of a VPC at a time, so no other task can hold it
/// yet and deregistering it cannot remove another task's target.
pub fn still_holds_address(task: &TaskInfo, family: AddressFamily, ip: &str) -> bool {
    const ATTACHED: [&str; 5] = [
        "PENDING",
        "ACTIVATING",
        "RUNNING",
        "DEACTIVATING",
        "STOPPING",
    ];
    task.desired_status == "STOPPED"
        && ATTACHED.contains(&task.last_status.as_str())
        && task.address(family) == Some(ip)
}

#[cfg(test)]
mod newest_state_tests {
    use super::*;

    fn event(version: Option<i64>, last: &str, desired: &str, ip: Option<&str>) -> TaskInfo {
        TaskInfo {
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/demo/a".into(),
            last_status: last.into(),
            desired_status: desired.into(),
            version,
            private_ip: ip.map(str::to_string),
            private_ipv6: None,
            started_at: None,
            stop_code: None,
            availability_zone: None,
            drain_hold_until: None,
        }
    }

    #[test]
    fn the_highest_version_wins_in_any_order() {
        let pending = event(Some(2), "PENDING", "RUNNING", Some("10.0.0.1"));
        let running = event(Some(3), "RUNNING", "RUNNING", Some("10.0.0.1"));
        for events in [
            vec![pending.clone(), running.clone()],
            vec![running.clone(), pending.clone()],
        ] {
            assert_eq!(newest_state(&events), Some(running.clone()));
        }
    }

    #[test]
    fn desired_stopped_wins_over_any_running_event_whatever_its_version() {
        let stopping = event(Some(4), "RUNNING", "STOPPED", Some("10.0.0.1"));
        // A RUNNING event with a higher version than a stop cannot be real
        // (the stop is final); the stop still wins.
        let odd = event(Some(9), "RUNNING", "RUNNING", Some("10.0.0.1"));
        assert_eq!(
            newest_state(&[stopping.clone(), odd.clone()]),
            Some(stopping.clone())
        );
        assert_eq!(newest_state(&[odd, stopping.clone()]), Some(stopping));
    }

    #[test]
    fn a_final_event_without_an_address_keeps_the_address_seen_before() {
        let stopping = event(Some(4), "RUNNING", "STOPPED", Some("10.0.0.1"));
        let stopped = event(Some(6), "STOPPED", "STOPPED", None);
        let newest = newest_state(&[stopping, stopped]).expect("one");
        assert_eq!(newest.last_status, "STOPPED");
        assert_eq!(newest.private_ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn equal_versions_take_the_later_event_and_no_events_give_none() {
        let first = event(None, "RUNNING", "RUNNING", Some("10.0.0.1"));
        let second = event(None, "RUNNING", "RUNNING", Some("10.0.0.2"));
        assert_eq!(newest_state(&[first, second.clone()]), Some(second));
        assert_eq!(newest_state(&[]), None);
    }

    #[test]
    fn only_a_stopping_task_with_its_interface_attached_holds_its_address() {
        let v4 = AddressFamily::Ipv4;
        let ip = "10.0.0.1";
        assert!(still_holds_address(
            &event(Some(4), "RUNNING", "STOPPED", Some(ip)),
            v4,
            ip
        ));
        assert!(still_holds_address(
            &event(Some(5), "STOPPING", "STOPPED", Some(ip)),
            v4,
            ip
        ));
        for (last, desired, address) in [
            ("DEPROVISIONING", "STOPPED", Some(ip)),
            ("STOPPED", "STOPPED", Some(ip)),
            ("RUNNING", "STOPPED", Some("10.0.0.2")),
            ("RUNNING", "RUNNING", Some(ip)),
        ] {
            assert!(
                !still_holds_address(&event(Some(5), last, desired, address), v4, ip),
                "{last}/{desired}/{address:?}"
            );
        }
    }
}
