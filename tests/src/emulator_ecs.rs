//! ECS's service scheduler and task lifecycle in the emulator
//! (`tests/emulator/strict_ecs.py`): the scheduler starts and stops a
//! service's tasks, each task goes PROVISIONING -> PENDING -> RUNNING and,
//! told to stop, STOPPING -> DEPROVISIONING -> STOPPED, each change an
//! "ECS Task State Change" event; a service's next deployment can be made to
//! fail or stick. Settings are a region's own, so tests sharing an emulator
//! in other regions see none of it.

use crate::{control_request, Aws, Emulator};
use aws_sdk_ecs::types::{
    DeploymentCircuitBreaker, DeploymentConfiguration, DesiredStatus, Service, Task,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a test waits for the emulator's ECS to do something.
pub const ECS_PATIENCE: Duration = Duration::from_secs(30);

/// How often a test polls ECS while it waits.
const POLL: Duration = Duration::from_millis(50);

impl Emulator {
    /// The "ECS Task State Change" events of one task, oldest first.
    pub fn task_events(&self, region: &str, task_arn: &str) -> Vec<Value> {
        self.events("aws.ecs", region)
            .into_iter()
            .filter(|e| e["detail-type"] == "ECS Task State Change")
            .filter(|e| e["resources"][0] == task_arn)
            .collect()
    }
}

impl Aws {
    fn ecs_lifecycle(&self, settings: &Value) -> Value {
        let mut body = settings.clone();
        body["region"] = self.region.clone().into();
        control_request(&self.endpoint, "POST", "ecs-lifecycle", &body)
    }

    /// Turns the service scheduler on in this region, every task state
    /// (provisioning, pending, stop window, stopping, deprovisioning) lasting
    /// `seconds`.
    pub fn schedule_tasks(&self, seconds: f64) {
        self.ecs_lifecycle(&json!({
            "scheduler": true,
            "provisioning_seconds": seconds,
            "pending_seconds": seconds,
            "stop_seconds": seconds,
            "stopping_seconds": seconds,
            "deprovisioning_seconds": seconds,
        }));
    }

    /// Makes the service's next deployment `fail` (its tasks fail to start)
    /// or `stick` (its tasks stay PENDING).
    pub fn next_deployment(&self, cluster: &str, service: &str, mode: &str) {
        self.ecs_lifecycle(&json!({
            "cluster": cluster,
            "service": service,
            "next_deployment": mode,
        }));
    }

    /// Turns the deployment circuit breaker on for the service.
    pub async fn enable_circuit_breaker(&self, cluster: &str, service: &str, rollback: bool) {
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .deployment_circuit_breaker(
                        DeploymentCircuitBreaker::builder()
                            .enable(true)
                            .rollback(rollback)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("update_service");
    }

    /// The service's tasks with this desired status, as DescribeTasks has them.
    pub async fn service_tasks(
        &self,
        cluster: &str,
        service: &str,
        desired: DesiredStatus,
    ) -> Vec<Task> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(desired)
            .send()
            .await
            .expect("list_tasks");
        if listed.task_arns().is_empty() {
            return Vec::new();
        }
        self.describe_tasks(cluster, listed.task_arns()).await
    }

    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Vec<Task> {
        let described = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .send()
            .await
            .expect("describe_tasks");
        described.tasks().to_vec()
    }

    /// One task, as DescribeTasks has it now.
    pub async fn task(&self, cluster: &str, task_arn: &str) -> Task {
        self.describe_tasks(cluster, &[task_arn.to_string()])
            .await
            .into_iter()
            .next()
            .expect("the task is described")
    }

    /// Polls until `ready` holds of the service's tasks with this desired
    /// status (at most [`ECS_PATIENCE`]); returns them.
    pub async fn wait_for_tasks(
        &self,
        (cluster, service): (&str, &str),
        desired: DesiredStatus,
        what: &str,
        ready: impl Fn(&[Task]) -> bool,
    ) -> Vec<Task> {
        let deadline = Instant::now() + ECS_PATIENCE;
        loop {
            let tasks = self.service_tasks(cluster, service, desired.clone()).await;
            if ready(&tasks) {
                return tasks;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}/{service}: never {what}: {:?}",
                states(&tasks)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls one task until its last status is `until` (at most
    /// [`ECS_PATIENCE`]); returns each (lastStatus, desiredStatus) it was
    /// seen in, in order, once each.
    pub async fn watch_task(
        &self,
        cluster: &str,
        task_arn: &str,
        until: &str,
    ) -> Vec<(String, String)> {
        let deadline = Instant::now() + ECS_PATIENCE;
        let mut seen: Vec<(String, String)> = Vec::new();
        loop {
            let task = self.task(cluster, task_arn).await;
            let state = state(&task);
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if state.0 == until {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{task_arn} never reached {until}: {seen:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the service until `ready` holds of it (at most [`ECS_PATIENCE`]).
    pub async fn wait_for_service(
        &self,
        (cluster, service): (&str, &str),
        what: &str,
        ready: impl Fn(&Service) -> bool,
    ) -> Service {
        let deadline = Instant::now() + ECS_PATIENCE;
        loop {
            let found = self.service(cluster, service).await;
            if ready(&found) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}/{service}: never {what}: {:?}",
                found.deployments()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A task's (lastStatus, desiredStatus).
pub fn state(task: &Task) -> (String, String) {
    (
        task.last_status().unwrap_or_default().to_string(),
        task.desired_status().unwrap_or_default().to_string(),
    )
}

/// Each task's (lastStatus, desiredStatus), for messages.
pub fn states(tasks: &[Task]) -> Vec<(String, String)> {
    tasks.iter().map(state).collect()
}
