//! Drain-first scale-in through the scaler's handler, against fakes of ECS
//! (with a scheduler that stops only unprotected tasks) and of the
//! registrar's target groups: each step, a scale-out that cancels, a crash
//! between steps, the opt-out and the dry run.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::config::{RegistrarConfig, ScalerConfig};
use ecs_control::domain::drain::DrainPhase;
use ecs_control::domain::registration::HealthState;
use ecs_control::ports::FailureKind;
use scaler::handler::{Action, DecisionRecord, Scaler};
use serde_json::{json, Value};
use std::collections::BTreeSet;

mod fakes;
use fakes::*;

const REGISTRAR: &str = include_str!("../../../infra/registrar-config.json");
const GROUP: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const PEERED: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-peered-vpc/fedcba9876543210";

type DrainingScaler = Scaler<FakeEcs, FakeAlarms, FakeElb>;

/// The sample policies, with `services` entries added.
fn policies(services: Value) -> ScalerConfig {
    let mut document: Value = serde_json::from_str(POLICIES).unwrap();
    document["services"] = services;
    ScalerConfig::parse(&document.to_string()).expect("policies")
}

/// demo/web at 6 tasks (two in each of three zones), all registered in
/// both of the registrar's groups.
fn world(services: Value) -> DrainingScaler {
    let ecs = FakeEcs::with_service(web(), 6);
    ecs.run_tasks(&web(), 6);
    let registrar = RegistrarConfig::parse(REGISTRAR).expect("registrar document");
    let elb = FakeElb::registered_as(&ecs, &registrar);
    Scaler::new(policies(services), ecs, FakeAlarms::all_ok(), false)
        .with_target_groups(elb, Some(&registrar))
        .expect("bindings")
}

fn set_count(count: u32, request: &str) -> Value {
    json!({"command": "set_desired_count", "cluster": "demo", "service": "web",
           "desired_count": count, "reason": "test", "request_id": request})
}

fn tick(id: &str) -> Value {
    let mut event = sample("recheck-schedule");
    event["id"] = id.into();
    event
}

async fn run(s: &DrainingScaler, event: Value, at: DateTime<Utc>) -> DecisionRecord {
    s.handle(event, "req", at).await.expect("handled")
}

fn ecs(s: &DrainingScaler) -> &FakeEcs {
    s.ports().0
}

fn elb(s: &DrainingScaler) -> &FakeElb {
    s.target_groups()
}

fn held(s: &DrainingScaler) -> BTreeSet<String> {
    ecs(s)
        .running(&web())
        .into_iter()
        .filter(|t| t.info.drain_hold_until.is_some())
        .map(|t| t.info.task_arn)
        .collect()
}

#[tokio::test]
async fn a_scale_in_drains_its_tasks_then_ecs_stops_exactly_those() {
    let s = world(json!([]));
    let start = now();

    // 1. Chosen across zones, held, recorded, deregistered: the count stays.
    let record = run(&s, set_count(2, "in-to-2"), start).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Draining, "{d:?}");
    assert_eq!((d.before, d.after), (Some(6), Some(6)));
    let report = d.drain.as_ref().expect("drain report");
    let zones: Vec<&str> = report
        .chosen
        .iter()
        .map(|c| c.zone.as_deref().unwrap())
        .collect();
    assert_eq!(zones.len(), 4);
    for zone in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        // Two of each zone: the two that stay are in different zones.
        assert!(
            zones.iter().filter(|z| **z == zone).count() <= 2,
            "{zones:?}"
        );
    }
    let chosen: BTreeSet<String> = report.chosen.iter().map(|c| c.task_arn.clone()).collect();
    assert_eq!(held(&s), chosen);
    assert_eq!(ecs(&s).desired(&web()), 6);
    for group in [GROUP, PEERED] {
        assert_eq!(
            elb(&s).states(group),
            [(HealthState::Healthy, 2), (HealthState::Draining, 4)]
                .into_iter()
                .collect()
        );
    }
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(memory.drain.as_ref().map(|d| (d.from, d.to)), Some((6, 2)));

    // 2. Still draining: nothing changes.
    let record = run(&s, tick("t1"), start + TimeDelta::minutes(1)).await;
    assert_eq!(record.services[0].action, Action::Draining);
    assert_eq!(ecs(&s).desired(&web()), 6);

    // 3. Drained: the two that stay are protected, the count comes down,
    //    and ECS stops exactly the four chosen.
    elb(&s).finish_draining();
    let record = run(&s, tick("t2"), start + TimeDelta::minutes(2)).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert_eq!(d.after, Some(2));
    assert_eq!(d.drain.as_ref().unwrap().tasks_protected, 2);
    let left: BTreeSet<String> = ecs(&s)
        .running(&web())
        .into_iter()
        .map(|t| t.info.task_arn)
        .collect();
    assert!(left.is_disjoint(&chosen), "ECS stopped a task that stays");
    assert_eq!(left.len(), 2);
    assert!(ecs(&s)
        .running(&web())
        .iter()
        .all(|t| t.protected.is_some()));

    // 4. Stopped: protection lifted, the drain forgotten.
    let record = run(&s, tick("t3"), start + TimeDelta::minutes(3)).await;
    assert!(
        record.services[0]
            .notes
            .iter()
            .any(|n| n.contains("lifting protection")),
        "{:?}",
        record.services[0]
    );
    assert!(ecs(&s)
        .running(&web())
        .iter()
        .all(|t| t.protected.is_none()));
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(memory.drain, None);
    assert_eq!(ecs(&s).desired(&web()), 2);
}

#[tokio::test]
async fn a_scale_out_during_the_drain_cancels_it_and_brings_the_targets_back() {
    let s = world(json!([]));
    run(&s, set_count(2, "in-to-2"), now()).await;
    assert_eq!(held(&s).len(), 4);

    let record = run(&s, set_count(8, "out-to-8"), now() + TimeDelta::minutes(1)).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert_eq!(d.after, Some(8));
    assert!(d.reason.contains("cancels the drain"), "{}", d.reason);
    assert_eq!(d.drain.as_ref().unwrap().targets_registered, 8);
    assert!(held(&s).is_empty());
    assert_eq!(
        elb(&s).states(GROUP),
        [(HealthState::Initial, 4), (HealthState::Healthy, 2)]
            .into_iter()
            .collect()
    );
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(memory.drain, None);
    assert_eq!(ecs(&s).desired(&web()), 8);
}

#[tokio::test]
async fn a_crash_after_the_holds_retries_with_the_same_tasks() {
    let s = world(json!([]));
    // The memory write fails after the tasks were held.
    ecs(&s).fail_next("ecs:TagResource", FailureKind::Retryable);
    let err = s.handle(set_count(2, "in-to-2"), "req", now()).await;
    assert!(err.is_err());
    let first = held(&s);
    assert_eq!(first.len(), 4);
    assert_eq!(ecs(&s).desired(&web()), 6);
    // Nothing left its groups yet.
    assert_eq!(
        elb(&s).states(GROUP),
        [(HealthState::Healthy, 6)].into_iter().collect()
    );

    // The retry chooses the held tasks again, whatever the order would say.
    let record = run(&s, set_count(2, "in-to-2"), now() + TimeDelta::seconds(10)).await;
    assert_eq!(record.services[0].action, Action::Draining);
    let chosen: BTreeSet<String> = record.services[0]
        .drain
        .as_ref()
        .unwrap()
        .chosen
        .iter()
        .map(|c| c.task_arn.clone())
        .collect();
    assert_eq!(chosen, first);
}

#[tokio::test]
async fn a_crash_after_deregistration_is_finished_by_the_next_tick() {
    let s = world(json!([]));
    run(&s, set_count(2, "in-to-2"), now()).await;
    elb(&s).finish_draining();
    // The count write fails after the drain was recorded as lowered.
    ecs(&s).fail_next("ecs:UpdateService", FailureKind::Retryable);
    assert!(s
        .handle(tick("t1"), "req", now() + TimeDelta::minutes(1))
        .await
        .is_err());
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(
        memory.drain.as_ref().map(|d| d.phase),
        Some(DrainPhase::Lowered)
    );
    assert_eq!(ecs(&s).desired(&web()), 6);

    let record = run(&s, tick("t2"), now() + TimeDelta::minutes(2)).await;
    assert_eq!(
        record.services[0].action,
        Action::Scaled,
        "{:?}",
        record.services[0]
    );
    assert_eq!(ecs(&s).desired(&web()), 2);
    assert!(held(&s).is_empty(), "ECS stopped the chosen tasks");
}

#[tokio::test]
async fn targets_still_registered_after_a_crash_are_deregistered_by_the_next_tick() {
    let s = world(json!([]));
    // The first deregistration never happens (the function stopped first):
    // put the targets back as if it had not.
    run(&s, set_count(2, "in-to-2"), now()).await;
    for targets in elb(&s).groups.lock().unwrap().values_mut() {
        for state in targets.values_mut() {
            *state = HealthState::Healthy;
        }
    }
    let record = run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Draining);
    assert_eq!(d.drain.as_ref().unwrap().targets_deregistered, 8);
    assert_eq!(ecs(&s).desired(&web()), 6);
}

#[tokio::test]
async fn the_drain_lowers_the_count_at_its_bound_even_if_targets_still_drain() {
    let s = world(json!([{"cluster": "demo", "service": "web", "max_drain_seconds": 120}]));
    run(&s, set_count(2, "in-to-2"), now()).await;
    let record = run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    assert_eq!(record.services[0].action, Action::Draining);
    let record = run(&s, tick("t2"), now() + TimeDelta::minutes(2)).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert!(
        d.notes.iter().any(|n| n.contains("bound passed")),
        "{:?}",
        d.notes
    );
}

#[tokio::test]
async fn the_opt_out_and_a_service_without_groups_lower_the_count_at_once() {
    let s = world(json!([{"cluster": "demo", "service": "web", "drain_before_scale_in": false}]));
    let record = run(&s, set_count(2, "in-to-2"), now()).await;
    assert_eq!(record.services[0].action, Action::Scaled);
    assert_eq!(ecs(&s).desired(&web()), 2);
    assert!(held(&s).is_empty());
    assert!(record.services[0].drain.is_none());

    // Without the registrar's document, nothing is drained either.
    let plain = Scaler::new(
        policies(json!([])),
        FakeEcs::with_service(web(), 6),
        FakeAlarms::all_ok(),
        false,
    );
    let record = plain
        .handle(set_count(2, "in-to-2"), "req", now())
        .await
        .expect("handled");
    assert_eq!(record.services[0].action, Action::Scaled);
}

#[tokio::test]
async fn a_dry_run_names_the_tasks_it_would_drain_and_changes_nothing() {
    let s = world(json!([]));
    let mut command = set_count(2, "in-to-2");
    command["dry_run"] = true.into();
    let record = run(&s, command, now()).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::WouldScale);
    assert_eq!(d.drain.as_ref().unwrap().chosen.len(), 4);
    assert!(held(&s).is_empty());
    assert_eq!(
        elb(&s).states(GROUP),
        [(HealthState::Healthy, 6)].into_iter().collect()
    );
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(memory.drain, None);
}

#[tokio::test]
async fn asking_to_drain_a_service_the_registrar_does_not_bind_fails_at_cold_start() {
    let ecs = FakeEcs::with_service(web(), 6);
    let registrar = RegistrarConfig::parse(
        &json!({"services": [{"cluster": "demo", "service": "api",
            "target_groups": [{"target_group_arn": GROUP, "port": 8080}]}]})
        .to_string(),
    )
    .expect("registrar document");
    let Err(err) = Scaler::new(
        policies(json!([{"cluster": "demo", "service": "web", "drain_before_scale_in": true}])),
        ecs,
        FakeAlarms::all_ok(),
        false,
    )
    .with_target_groups(FakeElb::default(), Some(&registrar)) else {
        panic!("nothing to drain, yet accepted");
    };
    assert_eq!(err.field, "services[0].drain_before_scale_in");
    assert!(err.to_string().contains("no target groups"), "{err}");
}

#[tokio::test]
async fn a_scale_out_after_the_count_came_down_is_not_taken_back() {
    let s = world(json!([]));
    run(&s, set_count(2, "in-to-2"), now()).await;
    elb(&s).finish_draining();
    run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    assert_eq!(ecs(&s).desired(&web()), 2);
    // ECS has not stopped the drained tasks yet (their stop window).
    for task in ecs(&s).tasks.lock().unwrap().values_mut() {
        task.info.desired_status = "RUNNING".into();
    }
    // Back to the count the drain began from, before the drain finished.
    let record = run(&s, set_count(6, "out-to-6"), now() + TimeDelta::minutes(2)).await;
    assert_eq!(record.services[0].action, Action::Scaled);
    let memory = ecs(&s).services.lock().unwrap()[&web()].memory.clone();
    assert_eq!(memory.drain, None, "the scale-out ends the drain");
    // The next tick does not read 6 as "the lowering never landed".
    let record = run(&s, tick("t3"), now() + TimeDelta::minutes(3)).await;
    assert_ne!(
        record.services[0].action,
        Action::Scaled,
        "{:?}",
        record.services[0]
    );
    assert_eq!(ecs(&s).desired(&web()), 6);
}

#[tokio::test]
async fn with_fewer_tasks_listed_than_the_count_it_lowers_only_to_the_tasks_that_stay() {
    // Desired 6, but 5 tasks run (a replacement is still to come): a drain
    // to 2 can choose 3, and lowering to 2 would leave ECS one undrained
    // task to stop once protection ends.
    let ecs_fake = FakeEcs::with_service(web(), 6);
    ecs_fake.run_tasks(&web(), 5);
    let registrar = RegistrarConfig::parse(REGISTRAR).expect("registrar document");
    let elb_fake = FakeElb::registered_as(&ecs_fake, &registrar);
    let s = Scaler::new(policies(json!([])), ecs_fake, FakeAlarms::all_ok(), false)
        .with_target_groups(elb_fake, Some(&registrar))
        .expect("bindings");
    let record = run(&s, set_count(2, "in-to-2"), now()).await;
    let chosen: BTreeSet<String> = record.services[0]
        .drain
        .as_ref()
        .unwrap()
        .chosen
        .iter()
        .map(|c| c.task_arn.clone())
        .collect();
    assert_eq!(chosen.len(), 3);
    elb(&s).finish_draining();
    let record = run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    assert_eq!(
        record.services[0].after,
        Some(2),
        "{:?}",
        record.services[0]
    );
    let left: BTreeSet<String> = ecs(&s)
        .running(&web())
        .into_iter()
        .map(|t| t.info.task_arn)
        .collect();
    assert!(left.is_disjoint(&chosen));
    assert_eq!(left.len(), 2);
}

#[tokio::test]
async fn a_hold_left_by_something_else_does_not_make_a_task_one_of_the_drains() {
    let s = world(json!([]));
    // The oldest task carries a hold an earlier, crashed drain left behind.
    let oldest = ecs(&s).running(&web())[0].info.task_arn.clone();
    ecs(&s)
        .tasks
        .lock()
        .unwrap()
        .get_mut(&oldest)
        .unwrap()
        .info
        .drain_hold_until = Some(now() - TimeDelta::hours(1));
    let record = run(&s, set_count(4, "in-to-4"), now()).await;
    let chosen: Vec<String> = record.services[0]
        .drain
        .as_ref()
        .unwrap()
        .chosen
        .iter()
        .map(|c| c.task_arn.clone())
        .collect();
    assert!(!chosen.contains(&oldest), "{chosen:?}");
    // A tick while draining deregisters nothing of it.
    run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    elb(&s).finish_draining();
    run(&s, tick("t2"), now() + TimeDelta::minutes(2)).await;
    let left: Vec<String> = ecs(&s)
        .running(&web())
        .into_iter()
        .map(|t| t.info.task_arn)
        .collect();
    assert!(left.contains(&oldest), "the oldest task stays");
    assert_eq!(
        elb(&s).states(GROUP),
        [(HealthState::Healthy, 4)].into_iter().collect()
    );
}

#[tokio::test]
async fn suspended_scale_in_holds_the_lowering_and_a_drain_step_failure_blocks_no_scale_out() {
    let s = world(json!([]));
    run(&s, set_count(2, "in-to-2"), now()).await;
    elb(&s).finish_draining();
    let suspend = json!({"command": "suspend", "cluster": "demo", "service": "web",
        "dynamic_scale_in": true, "request_id": "pause-in"});
    run(&s, suspend, now() + TimeDelta::seconds(30)).await;
    let record = run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    assert_eq!(
        record.services[0].action,
        Action::Draining,
        "{:?}",
        record.services[0]
    );
    assert_eq!(ecs(&s).desired(&web()), 6);

    // The drain's reading of the tasks fails; a scale-out still goes ahead
    // and cancels the drain.
    ecs(&s).fail_next("ecs:DescribeTasks", FailureKind::Retryable);
    let record = run(&s, set_count(7, "out-to-7"), now() + TimeDelta::minutes(2)).await;
    let d = &record.services[0];
    assert_eq!(d.action, Action::Scaled, "{d:?}");
    assert!(
        d.notes.iter().any(|n| n.contains("drain's step failed")),
        "{:?}",
        d.notes
    );
    assert_eq!(ecs(&s).desired(&web()), 7);
    assert!(held(&s).is_empty());
}

#[tokio::test]
async fn a_task_protecting_itself_is_never_chosen() {
    let s = world(json!([]));
    // The newest task protects itself for an hour while it works.
    let busy = ecs(&s)
        .running(&web())
        .last()
        .unwrap()
        .info
        .task_arn
        .clone();
    ecs(&s)
        .tasks
        .lock()
        .unwrap()
        .get_mut(&busy)
        .unwrap()
        .protected = Some(now() + TimeDelta::hours(1));
    let record = run(&s, set_count(2, "in-to-2"), now()).await;
    let chosen: Vec<String> = record.services[0]
        .drain
        .as_ref()
        .unwrap()
        .chosen
        .iter()
        .map(|c| c.task_arn.clone())
        .collect();
    assert_eq!(chosen.len(), 4);
    assert!(!chosen.contains(&busy), "{chosen:?}");
    elb(&s).finish_draining();
    run(&s, tick("t1"), now() + TimeDelta::minutes(1)).await;
    run(&s, tick("t2"), now() + TimeDelta::minutes(2)).await;
    let left: Vec<FakeTask> = ecs(&s).running(&web());
    assert!(left.iter().any(|t| t.info.task_arn == busy));
    // Its own protection is left as it was.
    let kept = left
        .iter()
        .find(|t| t.info.task_arn == busy)
        .unwrap()
        .protected;
    assert_eq!(kept, Some(now() + TimeDelta::hours(1)));
}
