//! ECS's scheduler and task lifecycle: task states, task events, deployments that fail or stick.
//!
//! Each region has its own lifecycle settings; tests that share a region set
//! the same ones and use their own cluster.

use super::*;
use aws_sdk_ecs::types::DesiredStatus;
use e2e::emulator_ecs::{state, states};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// eu-west-3: states last a second, long enough to see each one by polling.
const SLOW_REGION: (&str, f64) = ("eu-west-3", 1.0);
/// eu-south-1: quicker states, for events and ownership.
const EVENTS_REGION: (&str, f64) = ("eu-south-1", 0.3);
/// ap-northeast-3: deployments that fail or stick.
const DEPLOY_REGION: (&str, f64) = ("ap-northeast-3", 0.2);

fn scheduled((region, seconds): (&str, f64)) -> Aws {
    let aws = aws(region);
    aws.schedule_tasks(seconds);
    aws
}

fn pair(last: &str, desired: &str) -> (String, String) {
    (last.to_string(), desired.to_string())
}

#[tokio::test]
async fn a_higher_desired_count_starts_tasks_through_provisioning_and_pending() {
    let aws = scheduled(SLOW_REGION);
    aws.create_service("lc-start", "web", 0).await;
    aws.set_desired_count("lc-start", "web", 1).await;

    let started = aws
        .wait_for_tasks(
            ("lc-start", "web"),
            DesiredStatus::Running,
            "started a task",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(started.len(), 1, "{:?}", states(&started));
    let arn = started[0].task_arn().expect("arn").to_string();
    let seen = aws.watch_task("lc-start", &arn, "RUNNING").await;
    assert_eq!(
        seen,
        [
            pair("PROVISIONING", "RUNNING"),
            pair("PENDING", "RUNNING"),
            pair("RUNNING", "RUNNING"),
        ]
    );
    let service = aws.service("lc-start", "web").await;
    assert_eq!((service.running_count(), service.pending_count()), (1, 0));
}

#[tokio::test]
async fn scale_in_stops_an_unprotected_task_through_stopping_and_deprovisioning() {
    let aws = scheduled(SLOW_REGION);
    aws.create_service("lc-stop", "web", 2).await;
    let running = aws
        .wait_for_tasks(
            ("lc-stop", "web"),
            DesiredStatus::Running,
            "ran two tasks",
            |t| t.len() == 2 && t.iter().all(|t| t.last_status() == Some("RUNNING")),
        )
        .await;
    // The scheduler stops the newest first: protect the newest.
    let mut by_age: Vec<_> = running
        .iter()
        .map(|t| (t.created_at().cloned(), t.task_arn().unwrap().to_string()))
        .collect();
    by_age.sort();
    let (older, newer) = (by_age[0].1.clone(), by_age[1].1.clone());
    aws.ecs
        .update_task_protection()
        .cluster("lc-stop")
        .tasks(&newer)
        .protection_enabled(true)
        .send()
        .await
        .expect("update_task_protection");

    aws.set_desired_count("lc-stop", "web", 1).await;
    let stopping = aws
        .wait_for_tasks(
            ("lc-stop", "web"),
            DesiredStatus::Stopped,
            "stopped a task",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(stopping.len(), 1, "{:?}", states(&stopping));
    assert_eq!(stopping[0].task_arn(), Some(older.as_str()));
    let seen = aws.watch_task("lc-stop", &older, "STOPPED").await;
    assert_eq!(
        seen,
        [
            pair("RUNNING", "STOPPED"),
            pair("STOPPING", "STOPPED"),
            pair("DEPROVISIONING", "STOPPED"),
            pair("STOPPED", "STOPPED"),
        ]
    );
    let stopped = aws.task("lc-stop", &older).await;
    assert_eq!(
        stopped.stop_code().map(|c| c.as_str()),
        Some("ServiceSchedulerInitiated")
    );
    assert!(stopped.stopping_at().is_some() && stopped.stopped_at().is_some());
    // The protected task still runs.
    assert_eq!(
        state(&aws.task("lc-stop", &newer).await),
        pair("RUNNING", "RUNNING")
    );
}

#[tokio::test]
async fn every_task_change_is_an_event_with_a_growing_version() {
    let (region, _) = EVENTS_REGION;
    let aws = scheduled(EVENTS_REGION);
    let network = aws.network().await;
    aws.create_awsvpc_service("lc-events", "web", &network)
        .await;
    aws.set_desired_count("lc-events", "web", 1).await;
    let running = aws
        .wait_for_tasks(
            ("lc-events", "web"),
            DesiredStatus::Running,
            "ran a task",
            |t| t.len() == 1 && t[0].last_status() == Some("RUNNING"),
        )
        .await;
    let arn = running[0].task_arn().expect("arn").to_string();
    aws.set_desired_count("lc-events", "web", 0).await;
    aws.watch_task("lc-events", &arn, "STOPPED").await;

    let emulator = Emulator::shared();
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = emulator.task_events(region, &arn);
        if events
            .last()
            .is_some_and(|e| e["detail"]["lastStatus"] == "STOPPED")
        {
            break events;
        }
        assert!(Instant::now() < deadline, "no STOPPED event: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let changes: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["lastStatus"].as_str().unwrap().to_string(),
                e["detail"]["desiredStatus"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            pair("PROVISIONING", "RUNNING"),
            pair("PENDING", "RUNNING"),
            pair("RUNNING", "RUNNING"),
            pair("RUNNING", "STOPPED"),
            pair("STOPPING", "STOPPED"),
            pair("DEPROVISIONING", "STOPPED"),
            pair("STOPPED", "STOPPED"),
        ]
    );
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["detail"]["version"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, (1..=7).collect::<Vec<i64>>());
    // DescribeTasks reports the version of the latest event.
    assert_eq!(aws.task("lc-events", &arn).await.version(), versions[6]);

    let sample = e2e::sample_event("registrar/task-stopping.json");
    let cluster_arn = format!("arn:aws:ecs:{region}:123456789012:cluster/lc-events");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["source"], "aws.ecs");
        assert_eq!(event["detail-type"], "ECS Task State Change");
        assert_eq!(event["version"], "0");
        assert_eq!(event["resources"], json!([arn]));
        let detail = &event["detail"];
        assert_eq!(detail["clusterArn"], cluster_arn.as_str());
        assert_eq!(detail["taskArn"], arn.as_str());
        assert_eq!(detail["group"], "service:web");
        assert!(detail["startedBy"]
            .as_str()
            .unwrap()
            .starts_with("ecs-svc/"));
        assert!(
            detail["availabilityZone"]
                .as_str()
                .unwrap()
                .starts_with(region),
            "{detail}"
        );
        for key in ["createdAt", "updatedAt", "taskDefinitionArn", "launchType"] {
            assert!(detail[key].is_string(), "{key} in {detail}");
        }
        // The address the registrar reads, where the sample has it.
        let ip = |d: &Value| {
            d["attachments"][0]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == "privateIPv4Address")
                .map(|x| x["value"].clone())
        };
        assert!(ip(detail).is_some() && ip(&sample["detail"]).is_some());
        assert_eq!(
            detail["containers"][0]["networkInterfaces"][0]["privateIpv4Address"],
            ip(detail).unwrap()
        );
        let started = i >= 2;
        assert_eq!(detail["startedAt"].is_string(), started, "{detail}");
        let stopping = i >= 3;
        for key in ["stoppingAt", "stopCode", "stoppedReason"] {
            assert_eq!(detail[key].is_string(), stopping, "{key} in {detail}");
        }
        assert_eq!(detail["stoppedAt"].is_string(), i == 6, "{detail}");
        // The registrar takes it as the change of a task of lc-events/web.
        let parsed = registrar::events::parse(event.clone()).expect("the registrar parses it");
        match parsed.trigger {
            registrar::events::Trigger::TaskChange {
                cluster, service, ..
            } => assert_eq!(
                (cluster.as_str(), service.as_deref()),
                ("lc-events", Some("web"))
            ),
            other => panic!("not a task change: {other:?}"),
        }
    }
    assert_eq!(
        events[3]["detail"]["stopCode"],
        sample["detail"]["stopCode"]
    );
}

#[tokio::test]
async fn the_scheduler_starts_tasks_as_the_service_s_own() {
    let aws = scheduled(EVENTS_REGION);
    aws.create_service("lc-group", "web", 2).await;
    let tasks = aws
        .wait_for_tasks(
            ("lc-group", "web"),
            DesiredStatus::Running,
            "started two tasks",
            |t| t.len() == 2,
        )
        .await;
    let service = aws.service("lc-group", "web").await;
    let deployment = service.deployments()[0].id().expect("deployment id");
    assert!(deployment.starts_with("ecs-svc/"), "{deployment}");
    for task in &tasks {
        assert_eq!(task.group(), Some("service:web"));
        assert_eq!(task.started_by(), Some(deployment));
        assert_eq!(task.task_definition_arn(), service.task_definition());
    }
    let by_starter = aws
        .ecs
        .list_tasks()
        .cluster("lc-group")
        .started_by(deployment)
        .send()
        .await
        .expect("list_tasks");
    assert_eq!(by_starter.task_arns().len(), 2);
}

#[tokio::test]
async fn a_failing_deployment_trips_the_circuit_breaker_and_rolls_back() {
    let aws = scheduled(DEPLOY_REGION);
    let at = ("lc-fail", "web");
    aws.create_service(at.0, at.1, 2).await;
    aws.enable_circuit_breaker(at.0, at.1, true).await;
    aws.wait_for_deployment(at.0, at.1).await;
    let before = aws.service(at.0, at.1).await;
    let stable = before
        .task_definition()
        .expect("task definition")
        .to_string();

    aws.next_deployment(at.0, at.1, "fail");
    aws.deploy_new_revision(at.0, at.1).await;
    let failed = aws
        .wait_for_service(at, "failed its deployment", |s| {
            s.deployments()
                .iter()
                .any(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
        })
        .await;
    let deployment = failed
        .deployments()
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
        .expect("the failed deployment");
    // At least half the desired count, and at least 3.
    assert!(deployment.failed_tasks() >= 3, "{deployment:?}");
    assert_ne!(deployment.task_definition(), Some(stable.as_str()));
    let reason = deployment.rollout_state_reason().unwrap_or_default();
    assert!(reason.contains("circuit breaker"), "{reason}");
    assert!(reason.contains("rolling back"), "{reason}");

    // The new deployment's tasks failed to start.
    let stopped = aws.service_tasks(at.0, at.1, DesiredStatus::Stopped).await;
    assert!(stopped.iter().any(|t| {
        t.stop_code().map(|c| c.as_str()) == Some("TaskFailedToStart")
            && t.started_by() == deployment.id()
    }));

    // The rollback deploys the last completed task definition, and completes.
    let rolled_back = aws
        .wait_for_service(at, "rolled back", |s| {
            s.deployments().len() == 1
                && s.deployments()[0].rollout_state() == Some(&DeploymentRolloutState::Completed)
        })
        .await;
    assert_eq!(rolled_back.task_definition(), Some(stable.as_str()));
    assert_eq!(
        rolled_back.deployments()[0].task_definition(),
        Some(stable.as_str())
    );
    assert_eq!(rolled_back.running_count(), 2);
}

#[tokio::test]
async fn a_stuck_deployment_stays_in_progress_with_pending_tasks() {
    let aws = scheduled(DEPLOY_REGION);
    let at = ("lc-stuck", "web");
    aws.create_service(at.0, at.1, 1).await;
    aws.wait_for_deployment(at.0, at.1).await;
    let old = aws.service_tasks(at.0, at.1, DesiredStatus::Running).await;
    assert_eq!(states(&old), [pair("RUNNING", "RUNNING")]);

    aws.next_deployment(at.0, at.1, "stick");
    aws.deploy_new_revision(at.0, at.1).await;
    let primary = aws.service(at.0, at.1).await.deployments()[0]
        .id()
        .expect("id")
        .to_string();
    aws.wait_for_tasks(at, DesiredStatus::Running, "a pending new task", |t| {
        t.iter()
            .any(|t| t.started_by() == Some(primary.as_str()) && t.last_status() == Some("PENDING"))
    })
    .await;

    // Well past the time a deployment takes, it is still in progress, its
    // task still pending and the old task still running.
    let watch_until = Instant::now() + Duration::from_secs(u64::from(e2e::DEPLOYMENT_SECONDS) * 2);
    while Instant::now() < watch_until {
        let service = aws.service(at.0, at.1).await;
        let deployments = service.deployments();
        assert_eq!(deployments.len(), 2, "{deployments:?}");
        assert_eq!(deployments[0].id(), Some(primary.as_str()));
        assert_eq!(
            deployments[0].rollout_state(),
            Some(&DeploymentRolloutState::InProgress)
        );
        assert_eq!(
            (
                deployments[0].running_count(),
                deployments[0].pending_count()
            ),
            (0, 1)
        );
        let tasks = aws.service_tasks(at.0, at.1, DesiredStatus::Running).await;
        let mut seen = states(&tasks);
        seen.sort();
        assert_eq!(
            seen,
            [pair("PENDING", "RUNNING"), pair("RUNNING", "RUNNING")]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
