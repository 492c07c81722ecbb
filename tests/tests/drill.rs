//! Drills through the real adapters against the emulator and a site on
//! loopback: each kind in plan and execute, refusals, an abort with rollback,
//! a drill suspended and continued, and a crashed drill swept up. Restores are
//! verified by reading ECS and ELBv2 back.
//!
//! The emulator runs no ECS service scheduler and no EventBridge: where a
//! drill needs them (stopped tasks replaced, an alarm reaching the scaler),
//! a stand-in task here plays them.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue};
use chrono::{TimeDelta, Utc};
use drill::handler::{DrillReport, LOCK_TAG, STATE_TAG};
use e2e::crash_points::CrashPoint;
use e2e::drill_world::{start, world, world_of, CLUSTER, SERVICE};
use e2e::{sample_event, TASK_PORT};
use ecs_control::domain::drill::{Lock, Outcome, SavedState, Snapshot};
use serde_json::json;
use std::sync::Arc;

fn outcome(report: &DrillReport) -> &Outcome {
    report.outcome.as_ref().expect("an outcome")
}

#[tokio::test]
async fn scale_plans_without_acting_then_holds_and_restores() {
    let w = world("eu-west-1").await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "desired_count": 4, "hold_seconds": 2}),
        json!({}),
    );
    let plan = d
        .handle(start("scale-web", "plan"), None)
        .await
        .expect("plan");
    assert_eq!(outcome(&plan), &Outcome::Planned);
    assert!(plan.plan[0].contains("2 -> 4"), "{:?}", plan.plan);
    assert!(
        plan.rollback_plan[0].contains("to 2"),
        "{:?}",
        plan.rollback_plan
    );
    assert_eq!(w.desired().await, 2, "plan changes nothing");
    assert!(w.drill_tags().await.is_empty(), "plan takes no lock");

    let report = d
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("execute");
    // The hold ran at 4 tasks; running (2) is not desired (4): the after-check fails, and rolls back.
    assert!(
        matches!(outcome(&report), Outcome::Failed { why } if why.contains("running 2 is not the desired 4")),
        "{report:?}"
    );
    assert!(report.rolled_back);
    assert_eq!(w.desired().await, 2, "restored");
    assert!(w.drill_tags().await.is_empty(), "the lock is released");
    assert!(report
        .journal
        .iter()
        .any(|e| e.what.starts_with("restore read back") && e.ok));
}

#[tokio::test]
async fn stopped_tasks_are_replaced_and_the_targets_follow() {
    let w = Arc::new(world("eu-west-2").await);
    let scheduler = w.scheduler();
    let d = w.driller(
        "stop-one",
        json!({"type": "stop_tasks", "count": 1}),
        json!({}),
    );
    let plan = d
        .handle(start("stop-one", "plan"), None)
        .await
        .expect("plan");
    assert!(plan.plan[0].contains("stop 1 of"), "{:?}", plan.plan);

    let report = d
        .handle(start("stop-one", "execute"), None)
        .await
        .expect("execute");
    scheduler.abort();
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    assert!(report
        .journal
        .iter()
        .any(|e| e.what.starts_with("stopped task")));
    let healthy = w
        .aws
        .targets(&w.target_group)
        .await
        .iter()
        .filter(|(_, _, s)| s == "healthy")
        .count();
    assert!(healthy >= 2, "the replacement is registered and healthy");
}

#[tokio::test]
async fn a_graceful_stop_drains_the_tasks_targets_before_stopping_them() {
    let w = Arc::new(world("il-central-1").await);
    let scheduler = w.scheduler();
    let d = w.driller_with_registrar(
        "stop-gracefully",
        json!({"type": "stop_tasks", "count": 1, "stop": "graceful", "max_drain_seconds": 20}),
        json!({}),
    );
    let plan = d
        .handle(start("stop-gracefully", "plan"), None)
        .await
        .expect("plan");
    assert!(
        plan.plan[0].contains("drained from its target groups first"),
        "{:?}",
        plan.plan
    );
    let report = d
        .handle(start("stop-gracefully", "execute"), None)
        .await
        .expect("execute");
    scheduler.abort();
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    let steps: Vec<&str> = report.journal.iter().map(|e| e.what.as_str()).collect();
    let position = |prefix: &str| {
        steps
            .iter()
            .position(|s| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {steps:?}"))
    };
    // Deregistered, drained (the group's 2 s delay), and only then stopped.
    assert!(position("graceful stop") < position("the chosen targets have drained"));
    assert!(position("the chosen targets have drained") < position("stopped task"));

    // A graceful stop of a service the registrar does not bind is refused
    // when the function starts, naming the field.
    let Err(refused) = w
        .driller(
            "stop-gracefully",
            json!({"type": "stop_tasks", "count": 1, "stop": "graceful"}),
            json!({}),
        )
        .with_target_bindings(None)
    else {
        panic!("a graceful stop with nothing to drain was accepted");
    };
    assert_eq!(refused.field, "drills[0].kind.stop");
}

#[tokio::test]
async fn a_drained_target_goes_unnoticed_and_is_registered_again() {
    let w = world("eu-west-3").await;
    let d = w.driller(
        "drain-one",
        json!({"type": "drain_target", "target_group_arn": w.target_group, "port": TASK_PORT, "hold_seconds": 2}),
        json!({}),
    );
    let plan = d
        .handle(start("drain-one", "plan"), None)
        .await
        .expect("plan");
    let drained = plan
        .snapshot
        .as_ref()
        .unwrap()
        .drained
        .clone()
        .expect("a target to drain");
    assert!(plan.rollback_plan.iter().any(|r| r.contains("register")));

    let report = d
        .handle(start("drain-one", "execute"), None)
        .await
        .expect("execute");
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    let back = w
        .aws
        .targets(&w.target_group)
        .await
        .into_iter()
        .find(|(ip, port, _)| *ip == drained.ip && *port == drained.port)
        .expect("the drained target is back");
    assert_ne!(back.2, "draining");
}

#[tokio::test]
async fn an_alarm_drill_drives_the_scaler_and_is_undone() {
    let w = Arc::new(world("eu-north-1").await);
    w.aws.demo_alarms().await;
    // EventBridge's stand-in: the alarm's state changes reach the scaler; and
    // ECS's: the new task starts, so running reaches the raised count.
    let bridge = w.bridge("web-cpu-high");
    let scheduler = w.scheduler();
    let d = w.driller(
        "cpu-alarm",
        json!({"type": "alarm", "alarm": "web-cpu-high"}),
        json!({}),
    );
    let plan = d
        .handle(start("cpu-alarm", "plan"), None)
        .await
        .expect("plan");
    assert_eq!(outcome(&plan), &Outcome::Planned);
    assert_ne!(
        w.aws.alarm_state("web-cpu-high").await.0,
        "ALARM",
        "plan sets nothing"
    );

    let report = d
        .handle(start("cpu-alarm", "execute"), None)
        .await
        .expect("execute");
    bridge.abort();
    scheduler.abort();
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    // The rollback sets the alarm back to OK; the scaler's answer (2 -> 3) is
    // the scaler's to undo by its own scale-in rules, not the drill's.
    assert!(
        !report
            .journal
            .iter()
            .any(|e| e.what.starts_with("desired count 3 -> 2")),
        "the drill did not change the count itself: {:?}",
        report.journal
    );
    assert_eq!(w.desired().await, 3);
    assert_eq!(w.aws.alarm_state("web-cpu-high").await.0, "OK");
}

#[tokio::test]
async fn refusals_an_abort_and_a_suspended_drill() {
    let w = world("ap-south-1").await;
    // The steady state does not hold: refused, nothing touched.
    let strict = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
        json!({"steady_state": {"target_groups": [{"target_group_arn": w.target_group, "min_healthy": 5}]}}),
    );
    let refused = strict
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("refused");
    assert!(matches!(outcome(&refused), Outcome::Refused { why } if why.contains("fewer than 5")));
    assert!(w.drill_tags().await.is_empty());

    // An abort alarm that goes to ALARM mid-drill stops it at the next poll and
    // rolls back, even with a policy of never.
    abort_alarm(&w, StateValue::Ok).await;
    let aborting = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 30}),
        json!({"abort_alarms": ["web-5xx"], "rollback": "never",
               "steady_state": {"running_equals_desired": false}}),
    );
    let fire = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        w.aws
            .set_alarm_state("web-5xx", 1.0, StateValue::Alarm, 40.0)
            .await;
    };
    let (aborted, ()) = tokio::join!(aborting.handle(start("scale-web", "execute"), None), fire);
    let aborted = aborted.expect("aborted");
    assert_eq!(
        outcome(&aborted),
        &Outcome::Aborted {
            alarm: "web-5xx".into()
        }
    );
    assert!(aborted.rolled_back);
    assert_eq!(w.desired().await, 2);
    w.aws
        .set_alarm_state("web-5xx", 1.0, StateValue::Ok, 0.0)
        .await;

    // A drill longer than its invocation suspends; a second drill is refused
    // meanwhile; continuing it finishes and restores.
    let long = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 13}),
        json!({"steady_state": {"running_equals_desired": false}}),
    );
    let end = Utc::now() + TimeDelta::seconds(12);
    let first = long
        .handle(start("scale-web", "execute"), Some(end))
        .await
        .expect("first");
    assert_eq!(outcome(&first), &Outcome::InProgress);
    assert_eq!(w.desired().await, 3);
    let second = long
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("second");
    assert!(
        matches!(outcome(&second), Outcome::Refused { why } if why.contains("one drill per service"))
    );
    let id = first.drill_id.clone().expect("an id");
    let finished = long
        .handle(json!({"command": "continue", "drill_id": id}), None)
        .await
        .expect("continued");
    assert_eq!(
        outcome(&finished),
        &Outcome::Passed,
        "{:?}",
        finished.journal
    );
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());
}

#[tokio::test]
async fn a_crashed_drill_is_found_and_rolled_back() {
    let w = world("ap-southeast-1").await;
    // A drill that set 5 and died: its lock has expired, its state remains.
    let service = w.aws.service(CLUSTER, SERVICE).await;
    let arn = service.service_arn().unwrap().to_string();
    let lock = Lock {
        drill_id: "scale-web-1".into(),
        expires_at: Utc::now() - TimeDelta::minutes(1),
        holder: "crashed".into(),
        busy_until: None,
    };
    let saved = SavedState {
        drill_id: "scale-web-1".into(),
        drill_name: "scale-web".into(),
        deadline: Utc::now() - TimeDelta::minutes(3),
        snapshot: Snapshot {
            desired_count: 2,
            drained: None,
        },
        alarm: None,
        target_group_arn: None,
        // It set 5 from 2.
        count_delta: Some(3),
        delta_confirmed: true,
        restore_to: None,
    };
    w.aws
        .ecs
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(LOCK_TAG)
                .value(lock.encode())
                .build(),
        )
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(STATE_TAG)
                .value(saved.encode())
                .build(),
        )
        .send()
        .await
        .expect("tag");
    w.aws.set_desired_count(CLUSTER, SERVICE, 5).await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
        json!({}),
    );
    let swept = d
        .handle(sample_event("drill/sweep-schedule.json"), None)
        .await
        .expect("sweep");
    assert_eq!(swept.recovered, ["scale-web-1"]);
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());
}

#[tokio::test]
async fn an_aws_failure_mid_drill_rolls_back_whatever_the_policy() {
    let region = "ca-central-1";
    let w = world(region).await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 1}),
        json!({"rollback": "never"}),
    );
    // Every attempt the SDK makes fails: the change is never made.
    e2e::Emulator::shared().fail(region, "UpdateService", "server_error", 3);
    let report = d
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("reported");
    assert!(
        matches!(outcome(&report), Outcome::Failed { why } if why.contains("acting failed")),
        "{report:?}"
    );
    assert!(report.rolled_back, "rolled back despite rollback: never");
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty(), "the lock is released");
}

/// An abort alarm named `web-5xx` on the world's service, in `state`.
async fn abort_alarm(w: &e2e::drill_world::World, state: StateValue) {
    w.aws
        .service_alarm(
            "web-5xx",
            (CLUSTER, SERVICE),
            "HTTPCode_Target_5XX_Count",
            ComparisonOperator::GreaterThanThreshold,
            1.0,
        )
        .await;
    let value = if state == StateValue::Alarm {
        40.0
    } else {
        0.0
    };
    w.aws.set_alarm_state("web-5xx", 1.0, state, value).await;
}

fn acted(report: &DrillReport) -> bool {
    report.journal.iter().any(|e| {
        e.step == drill::journal::Step::Action
            && !e.what.starts_with("locked")
            && !e.what.starts_with("released")
    })
}

#[tokio::test]
async fn an_abort_alarm_already_in_alarm_refuses_the_drill_before_it_acts() {
    let w = world("us-east-2").await;
    abort_alarm(&w, StateValue::Alarm).await;
    let d = w.driller(
        "stop-one",
        json!({"type": "stop_tasks", "count": 1}),
        json!({"abort_alarms": ["web-5xx"]}),
    );
    let before = w.aws.targets(&w.target_group).await.len();
    for mode in ["plan", "execute"] {
        let report = d.handle(start("stop-one", mode), None).await.expect(mode);
        assert!(
            matches!(outcome(&report), Outcome::Refused { why } if why.contains("web-5xx")),
            "{mode}: {report:?}"
        );
        assert!(!acted(&report), "{mode}: {:?}", report.journal);
    }
    assert_eq!(w.desired().await, 2);
    let running = w
        .aws
        .ecs
        .list_tasks()
        .cluster(CLUSTER)
        .service_name(SERVICE)
        .send()
        .await
        .unwrap();
    assert_eq!(running.task_arns().len(), 2, "no task was stopped");
    assert_eq!(w.aws.targets(&w.target_group).await.len(), before);
    assert!(w.drill_tags().await.is_empty(), "no lock was taken");
}

#[tokio::test]
async fn a_long_poll_never_sleeps_past_the_invocation_deadline() {
    let w = world("us-west-1").await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 100}),
        json!({"steady_state": {"running_equals_desired": false},
               "max_duration_seconds": 200, "poll_seconds": 60}),
    );
    // Lambda stops this invocation in 14 s: the drill must be suspended by then.
    let end = Utc::now() + TimeDelta::seconds(14);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(14),
        d.handle(start("scale-web", "execute"), Some(end)),
    )
    .await
    .expect("returned before Lambda's deadline")
    .expect("suspended");
    assert_eq!(outcome(&report), &Outcome::InProgress, "{report:?}");
    assert!(Utc::now() < end);
}

#[tokio::test]
async fn a_drill_never_leaves_fewer_tasks_than_its_floor() {
    // A one-task service: a third of it, or one task, would stop it all.
    let one = world_of("sa-east-1", 1).await;
    for kind in [
        json!({"type": "stop_tasks", "percent": 33}),
        json!({"type": "stop_tasks", "count": 1}),
    ] {
        let d = one.driller("stop", kind.clone(), json!({}));
        let report = d
            .handle(start("stop", "execute"), None)
            .await
            .expect("refused");
        assert!(
            matches!(outcome(&report), Outcome::Refused { why } if why.contains("floor")),
            "{kind}: {report:?}"
        );
        assert!(!acted(&report), "{kind}: {:?}", report.journal);
    }
    assert_eq!(
        one.running_tasks().await.len(),
        1,
        "the only task still runs"
    );

    // Two tasks: more than there are, or half with a floor of two healthy,
    // or below or above the scaler's bounds (2 to 10 for web).
    let w = world_of("ap-northeast-1", 2).await;
    let scaler =
        ecs_control::config::ScalerConfig::parse(include_str!("../../infra/scaler-policies.json"))
            .expect("policies");
    let service = ecs_control::domain::service::ServiceRef::new(CLUSTER, SERVICE);
    let bounds = [(
        service.clone(),
        scaler.bounds_for_service(&service).expect("web's bounds"),
    )]
    .into_iter()
    .collect::<std::collections::BTreeMap<_, _>>();
    let two_healthy = json!({"steady_state": {"target_groups": [
        {"target_group_arn": w.target_group, "min_healthy": 2}]}});
    for (kind, extra, why) in [
        (
            json!({"type": "stop_tasks", "count": 5}),
            json!({}),
            "floor of 2",
        ),
        (
            json!({"type": "stop_tasks", "percent": 50}),
            two_healthy,
            "floor of 2",
        ),
        (
            json!({"type": "scale", "adjustment": -1, "hold_seconds": 1}),
            json!({}),
            "floor of 2",
        ),
        (
            json!({"type": "scale", "desired_count": 11, "hold_seconds": 1}),
            json!({}),
            "max_capacity 10",
        ),
    ] {
        let d = w
            .driller("floored", kind.clone(), extra)
            .with_capacity_bounds(bounds.clone());
        let report = d
            .handle(start("floored", "execute"), None)
            .await
            .expect("refused");
        assert!(
            matches!(outcome(&report), Outcome::Refused { why: w } if w.contains(why)),
            "{kind}: {report:?}"
        );
        assert!(!acted(&report), "{kind}: {:?}", report.journal);
    }
    assert_eq!(w.running_tasks().await.len(), 2);
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());

    // What could never be safe is refused when the document is read.
    for (kind, field) in [
        (json!({"type": "stop_tasks", "percent": 100}), "kind.count"),
        (
            json!({"type": "scale", "desired_count": 0, "hold_seconds": 1}),
            "kind.desired_count",
        ),
    ] {
        let document = json!({"drills": [{"name": "x", "cluster": CLUSTER, "service": SERVICE, "kind": kind}]});
        let err =
            ecs_control::config::DrillConfig::parse(&document.to_string()).expect_err("refused");
        assert_eq!(err.field, format!("drills[0].{field}"), "{err}");
    }
}

#[tokio::test]
async fn a_drain_takes_only_its_own_services_targets_and_never_the_last() {
    let w = world("eu-central-1").await;
    // Another service, `api`, in the same cluster and network: its own group,
    // and a group it shares with `web`.
    w.aws
        .create_awsvpc_service(CLUSTER, "api", &w.network)
        .await;
    let api: Vec<String> = w
        .aws
        .run_service_tasks(CLUSTER, "api", &w.network, 2)
        .await
        .into_iter()
        .map(|(_, ip)| ip)
        .collect();
    let web: Vec<String> = w
        .aws
        .targets(&w.target_group)
        .await
        .into_iter()
        .map(|(ip, _, _)| ip)
        .collect();
    let api_group = w.aws.ip_target_group("api", &w.network.vpc_id).await;
    let shared = w.aws.ip_target_group("shared", &w.network.vpc_id).await;
    for ip in &api {
        w.aws.register_target(&api_group, ip, TASK_PORT).await;
        w.aws.register_target(&shared, ip, TASK_PORT).await;
    }
    for ip in &web {
        w.aws.register_target(&shared, ip, TASK_PORT).await;
    }
    w.aws.wait_until_healthy(&api_group).await;
    w.aws.wait_until_healthy(&shared).await;
    let drain = |group: &str| {
        w.driller(
            "drain",
            json!({"type": "drain_target", "target_group_arn": group, "port": TASK_PORT, "hold_seconds": 1}),
            json!({}),
        )
    };

    // A group holding only another service's targets: nothing of web's to drain.
    let report = drain(&api_group)
        .handle(start("drain", "execute"), None)
        .await
        .expect("refused");
    assert!(
        matches!(outcome(&report), Outcome::Refused { why } if why.contains("belongs to a running task")),
        "{report:?}"
    );
    assert!(!acted(&report), "{:?}", report.journal);
    assert_eq!(w.aws.active_targets(&api_group).await.len(), 2);

    // A shared group: every choice is one of web's targets, and is recorded.
    let d = drain(&shared);
    for _ in 0..6 {
        let plan = d.handle(start("drain", "plan"), None).await.expect("plan");
        let chosen = plan
            .snapshot
            .as_ref()
            .and_then(|s| s.drained.clone())
            .expect("a target");
        assert!(
            web.contains(&chosen.ip),
            "{} is not web's: {web:?}",
            chosen.ip
        );
        assert!(plan
            .journal
            .iter()
            .any(|e| e.what.starts_with(&format!("chose {}:", chosen.ip))));
    }
    let report = d
        .handle(start("drain", "execute"), None)
        .await
        .expect("drained");
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    let drained = report
        .snapshot
        .as_ref()
        .and_then(|s| s.drained.clone())
        .expect("drained");
    assert!(web.contains(&drained.ip));
    for ip in &api {
        assert!(w
            .aws
            .active_targets(&shared)
            .await
            .contains(&(ip.clone(), TASK_PORT)));
    }

    // A group with one healthy target: it is never drained.
    let one = world_of("us-west-2", 1).await;
    let d = one.driller(
        "drain",
        json!({"type": "drain_target", "target_group_arn": one.target_group, "port": TASK_PORT, "hold_seconds": 1}),
        json!({}),
    );
    let report = d
        .handle(start("drain", "execute"), None)
        .await
        .expect("refused");
    assert!(
        matches!(outcome(&report), Outcome::Refused { why } if why.contains("last healthy")),
        "{report:?}"
    );
    assert_eq!(one.aws.active_targets(&one.target_group).await.len(), 1);
}

#[tokio::test]
async fn two_drills_started_at_once_never_both_act() {
    let w = world("eu-south-1").await;
    let drill = |_| {
        w.driller(
            "race",
            json!({"type": "scale", "adjustment": 1, "hold_seconds": 0}),
            json!({}),
        )
    };
    let (a, b) = (drill(0), drill(1));
    let mut won = 0;
    // Two invocations at the same instant, then with the second a little
    // later each round, so its check lands inside the first one's steps.
    for round in 0..6u64 {
        let later = async {
            tokio::time::sleep(std::time::Duration::from_millis(round * round * 6)).await;
            b.handle(start("race", "execute"), None).await
        };
        let (first, second) = tokio::join!(a.handle(start("race", "execute"), None), later);
        let (first, second) = (first.expect("first"), second.expect("second"));
        assert!(
            !(acted(&first) && acted(&second)),
            "round {round}: both acted\n{:?}\n{:?}",
            first.journal,
            second.journal
        );
        won += usize::from(acted(&first) || acted(&second));
        assert_eq!(w.desired().await, 2, "round {round}");
        assert!(w.drill_tags().await.is_empty(), "round {round}");
    }
    assert!(won > 0, "some round had a winner");
}

#[tokio::test]
async fn a_running_drill_is_not_continued_twice_and_only_its_holder_releases_it() {
    let w = world("ap-northeast-2").await;
    let arn = w
        .aws
        .service(CLUSTER, SERVICE)
        .await
        .service_arn()
        .unwrap()
        .to_string();
    let d = w.driller(
        "hold",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 3}),
        json!({"steady_state": {"running_equals_desired": false}}),
    );
    let foreign = Lock {
        drill_id: "other-1".into(),
        expires_at: Utc::now() + TimeDelta::minutes(10),
        holder: "other".into(),
        busy_until: None,
    };
    let meddle = async {
        let lock = loop {
            if let Some(lock) = w.aws.service_tags(&arn).await.get(LOCK_TAG) {
                break lock.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // While the first invocation drives the drill, a continue is refused.
        let id = lock.split('@').next().unwrap().to_string();
        let second = d
            .handle(json!({"command": "continue", "drill_id": id}), None)
            .await
            .expect("refused");
        assert!(
            matches!(outcome(&second), Outcome::Refused { why } if why.contains("is running")),
            "{second:?}"
        );
        assert!(!second
            .journal
            .iter()
            .any(|e| e.step == drill::journal::Step::Rollback));
        // Another holder's lock replaces it: the drill must not remove it.
        w.put_lock(&foreign).await;
    };
    let (first, ()) = tokio::join!(d.handle(start("hold", "execute"), None), meddle);
    let first = first.expect("finished");
    assert_eq!(outcome(&first), &Outcome::Passed, "{:?}", first.journal);
    assert_eq!(w.desired().await, 2, "its own change is still rolled back");
    assert_eq!(
        w.aws.service_tags(&arn).await.get(LOCK_TAG),
        Some(&foreign.encode()),
        "the other holder's lock stays"
    );
}

#[tokio::test]
async fn a_drill_without_a_steady_state_still_needs_running_to_equal_desired() {
    let w = world("me-central-1").await;
    // Three desired, two running: the service is not steady.
    w.aws.set_desired_count(CLUSTER, SERVICE, 3).await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
        json!({"steady_state": null}),
    );
    let report = d
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("refused");
    assert!(
        matches!(outcome(&report), Outcome::Refused { why } if why.contains("running 2 is not the desired 3")),
        "{report:?}"
    );
    assert!(!acted(&report));
    assert_eq!(w.desired().await, 3);
    // The shipped alarm drill states its steady state.
    let shipped =
        ecs_control::config::DrillConfig::parse(include_str!("../../infra/drills.json")).unwrap();
    let alarm = shipped.drill("web-cpu-alarm").expect("the alarm drill");
    assert!(alarm.steady_state.running_equals_desired);
    assert!(!alarm.steady_state.target_groups.is_empty());
    assert!(!alarm.steady_state.probe_checks.is_empty());
}

#[tokio::test]
async fn a_rollback_that_fails_keeps_the_lock_and_the_sweep_finishes_it() {
    let region = "eu-central-2";
    let w = world(region).await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 2}),
        json!({"steady_state": {"running_equals_desired": false}}),
    );
    // Once the drill has acted, every UpdateService fails: the restore cannot land.
    let break_restore = async {
        while w.desired().await != 3 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        e2e::Emulator::shared().fail(region, "UpdateService", "server_error", 3);
    };
    let (report, ()) = tokio::join!(d.handle(start("scale-web", "execute"), None), break_restore);
    let report = report.expect("reported");
    assert_eq!(outcome(&report).label(), "rollback_failed", "{report:?}");
    assert!(!report.rolled_back);
    assert_eq!(w.desired().await, 3);
    assert_eq!(
        w.drill_tags().await.len(),
        2,
        "the lock and the state are kept"
    );
    // Another drill is refused meanwhile.
    let other = d
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("refused");
    assert!(
        matches!(outcome(&other), Outcome::Refused { .. }),
        "{other:?}"
    );
    w.expire_lock().await;
    let swept = d
        .handle(sample_event("drill/sweep-schedule.json"), None)
        .await
        .expect("sweep");
    assert_eq!(swept.recovered.len(), 1, "{swept:?}");
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());
}

#[tokio::test]
async fn the_sweep_undoes_a_crashed_drain_and_alarm_without_their_document() {
    let w = world("ap-southeast-2").await;
    w.aws.demo_alarms().await;
    // The sweep runs with a document that no longer names the crashed drills.
    let sweeper = w.driller(
        "other",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
        json!({}),
    );
    let kinds = [
        json!({"type": "drain_target", "target_group_arn": w.target_group, "port": TASK_PORT, "hold_seconds": 30}),
        json!({"type": "alarm", "alarm": "web-cpu-high"}),
    ];
    for kind in kinds {
        let d = w.driller(
            "crashing",
            kind.clone(),
            json!({"steady_state": {"running_equals_desired": false}}),
        );
        // The function dies a moment after it acted.
        let run = d.handle(start("crashing", "execute"), None);
        let crashed = tokio::time::timeout(std::time::Duration::from_millis(1500), run).await;
        assert!(crashed.is_err(), "{kind}: still running when it died");
        let changed = w.aws.alarm_state("web-cpu-high").await.0 == "ALARM"
            || w.aws.active_targets(&w.target_group).await.len() == 1;
        assert!(changed, "{kind}: it had acted");
        w.expire_lock().await;
        let swept = sweeper
            .handle(sample_event("drill/sweep-schedule.json"), None)
            .await
            .expect("sweep");
        assert_eq!(swept.recovered.len(), 1, "{kind}: {swept:?}");
        assert_ne!(w.aws.alarm_state("web-cpu-high").await.0, "ALARM", "{kind}");
        assert_eq!(
            w.aws.active_targets(&w.target_group).await.len(),
            2,
            "{kind}"
        );
        assert_eq!(w.desired().await, 2, "{kind}");
        assert!(w.drill_tags().await.is_empty(), "{kind}");
        w.aws.wait_until_healthy(&w.target_group).await;
    }
}

/// A drill's own change is taken off the count found at rollback: a real
/// scale-out made meanwhile (here by hand, as the scaler would) is kept.
#[tokio::test]
async fn a_rollback_keeps_a_scale_out_made_during_the_drill() {
    let w = world("ap-southeast-4").await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 4}),
        json!({"rollback": "always", "steady_state": {"running_equals_desired": false}}),
    );
    let scale_out = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        // The drill made 2 -> 4; real load adds one more.
        w.aws.set_desired_count(CLUSTER, SERVICE, 5).await;
    };
    let (report, ()) = tokio::join!(d.handle(start("scale-web", "execute"), None), scale_out);
    let report = report.expect("report");
    assert_eq!(outcome(&report), &Outcome::Passed, "{:?}", report.journal);
    assert!(report.rolled_back);
    assert_eq!(w.desired().await, 3, "{:?}", report.journal);
    assert!(w.drill_tags().await.is_empty());
}

async fn cluster_arn(w: &e2e::drill_world::World) -> String {
    w.aws
        .ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .expect("describe_clusters")
        .clusters()[0]
        .cluster_arn()
        .expect("arn")
        .to_string()
}

/// Between invocations, the sweep watches a drill's stop conditions: an abort
/// alarm in ALARM, or the safety lever (a tag on the cluster), rolls it back
/// at once; with the lever on, no drill starts.
#[tokio::test]
async fn the_sweep_watches_stop_conditions_and_the_safety_lever_between_invocations() {
    let w = world("me-south-1").await;
    abort_alarm(&w, StateValue::Ok).await;
    let d = w.driller(
        "scale-web",
        json!({"type": "scale", "adjustment": 1, "hold_seconds": 60}),
        json!({"abort_alarms": ["web-5xx"], "steady_state": {"running_equals_desired": false}}),
    );
    let sweep = || d.handle(sample_event("drill/sweep-schedule.json"), None);
    let suspend = || async {
        let first = d
            .handle(
                start("scale-web", "execute"),
                Some(Utc::now() + TimeDelta::seconds(12)),
            )
            .await
            .expect("first invocation");
        assert_eq!(outcome(&first), &Outcome::InProgress, "{:?}", first.journal);
        assert_eq!(w.desired().await, 3);
        // Its invocation's busy mark, kept to the second, has passed.
        tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
        first.drill_id.expect("an id")
    };

    // Nothing fires: the sweep leaves a suspended drill alone.
    let id = suspend().await;
    let quiet = sweep().await.expect("sweep");
    assert!(quiet.swept.is_empty(), "{:?}", quiet.journal);
    assert_eq!(w.desired().await, 3);

    // The abort alarm fires while no invocation runs: the sweep rolls back.
    w.aws
        .set_alarm_state("web-5xx", 1.0, StateValue::Alarm, 40.0)
        .await;
    let swept = sweep().await.expect("sweep");
    assert_eq!(swept.swept.len(), 1, "{:?}", swept.journal);
    assert_eq!(swept.swept[0].drill_id, id);
    assert!(
        matches!(&swept.swept[0].outcome, Outcome::Aborted { alarm } if alarm.contains("web-5xx"))
    );
    // The post-mortem: a summary and a report for the swept drill, and its
    // journal entries under its own id.
    assert_eq!(swept.summaries.len(), 1, "{:?}", swept.summaries);
    assert_eq!(swept.summaries[0].status, "aborted");
    assert_eq!(swept.summaries[0].rollback, "rolled_back");
    assert!(
        swept.markdown.contains(&format!("(`{id}`): aborted")),
        "{}",
        swept.markdown
    );
    assert!(swept.journal.iter().any(|e| e.drill_id == id));
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());
    w.aws
        .set_alarm_state("web-5xx", 1.0, StateValue::Ok, 0.0)
        .await;

    // The safety lever: a suspended drill is rolled back by the next sweep,
    // and no drill starts while it is on.
    let id = suspend().await;
    let cluster = cluster_arn(&w).await;
    w.aws
        .ecs
        .tag_resource()
        .resource_arn(&cluster)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("ecs-drill:halt")
                .value("incident-4711")
                .build(),
        )
        .send()
        .await
        .expect("tag the cluster");
    let swept = sweep().await.expect("sweep");
    assert_eq!(swept.swept.len(), 1, "{:?}", swept.journal);
    assert_eq!(swept.swept[0].drill_id, id);
    assert!(
        matches!(&swept.swept[0].outcome, Outcome::Aborted { alarm } if alarm.contains("safety lever"))
    );
    assert_eq!(w.desired().await, 2);
    let refused = d
        .handle(start("scale-web", "execute"), None)
        .await
        .expect("refused");
    assert!(
        matches!(outcome(&refused), Outcome::Refused { why } if why.contains("incident-4711")),
        "{refused:?}"
    );
    assert_eq!(w.desired().await, 2);
    assert!(w.drill_tags().await.is_empty());
    w.aws
        .ecs
        .untag_resource()
        .resource_arn(&cluster)
        .tag_keys("ecs-drill:halt")
        .send()
        .await
        .expect("untag the cluster");
}

/// The function killed at AWS calls of each kind of drill, in turn (a
/// Lambda timeout or a crash at every step: before the lock, under it, after
/// saving, after acting, mid-poll, mid-rollback, before releasing). Each time,
/// once the lock has expired, the sweep leaves the service as it was: its
/// count, its targets, the alarm and no drill tags. Every third call here,
/// each kind from another offset; `make crash-matrix` kills at every call.
#[tokio::test]
async fn a_drill_killed_at_any_call_is_undone_by_the_sweep() {
    let w = world("af-south-1").await;
    w.aws.demo_alarms().await;
    // No race here: a short settle keeps a hundred runs quick.
    let settle = std::time::Duration::from_millis(50);
    let sweeper = w
        .driller(
            "other",
            json!({"type": "scale", "adjustment": 1, "hold_seconds": 1}),
            json!({}),
        )
        .with_lock_settle(settle);
    // Short drills: the scaler is not running, so the alarm drill ends failed
    // at its deadline and rolls back.
    let extra = json!({"steady_state": {"running_equals_desired": false},
                       "max_duration_seconds": 2, "poll_seconds": 1});
    let kinds = [
        json!({"type": "scale", "adjustment": 2, "hold_seconds": 1}),
        json!({"type": "drain_target", "target_group_arn": w.target_group, "port": TASK_PORT, "hold_seconds": 1}),
        json!({"type": "alarm", "alarm": "web-cpu-high"}),
        json!({"type": "stop_tasks", "count": 1}),
    ];
    let every_call = std::env::var_os("CRASH_AT_EVERY_CALL").is_some();
    for (k, kind) in kinds.into_iter().enumerate() {
        let whole = CrashPoint::at(usize::MAX);
        w.crashing_driller("crashing", kind.clone(), extra.clone(), &whole)
            .with_lock_settle(settle)
            .handle(start("crashing", "execute"), None)
            .await
            .expect("a whole run");
        let total = whole.calls();
        if kind["type"] == "stop_tasks" {
            // ECS's scheduler replaces the stopped task.
            w.schedule_once().await;
        }
        // A target registered again is healthy after its checks pass.
        w.aws.wait_until_healthy(&w.target_group).await;
        for at in (1..=total).filter(|at| every_call || (at + k) % 3 == 0) {
            let point = CrashPoint::at(at);
            let d = w
                .crashing_driller("crashing", kind.clone(), extra.clone(), &point)
                .with_lock_settle(settle);
            tokio::select! {
                ended = d.handle(start("crashing", "execute"), None) => {
                    panic!("{kind}: call {at} of {total} was never reached: {ended:?}");
                }
                () = point.reached() => {}
            }
            if !w.drill_tags().await.is_empty() {
                w.expire_lock_if_held().await;
                let swept = sweeper
                    .handle(sample_event("drill/sweep-schedule.json"), None)
                    .await
                    .expect("sweep");
                assert!(swept.swept.len() <= 1, "{kind} at {at}: {swept:?}");
            }
            let at_call = format!("{} killed at call {at} of {total}", kind["type"]);
            assert!(w.drill_tags().await.is_empty(), "{at_call}: tags left");
            assert_eq!(w.desired().await, 2, "{at_call}: desired count");
            assert_ne!(
                w.aws.alarm_state("web-cpu-high").await.0,
                "ALARM",
                "{at_call}: alarm"
            );
            if kind["type"] == "stop_tasks" {
                // The stopped task's target is the registrar's to remove;
                // the scheduler replaces the task for the next round.
                w.schedule_once().await;
            } else {
                assert_eq!(
                    w.aws.active_targets(&w.target_group).await.len(),
                    2,
                    "{at_call}: targets"
                );
            }
            w.aws.wait_until_healthy(&w.target_group).await;
        }
    }
}
