//! How the AWS adapters classify failures: throttling and 5xx are retryable,
//! missing resources are not found, the rest is rejected.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, MetricAlarm, MetricDataResult, StateValue, Statistic,
};
use aws_sdk_ecs::operation::describe_services::{DescribeServicesError, DescribeServicesOutput};
use aws_sdk_ecs::operation::update_service::UpdateServiceError;
use aws_sdk_ecs::types::error::{AccessDeniedException, ClusterNotFoundException};
use aws_sdk_ecs::types::{
    Deployment, DeploymentController, DeploymentControllerType, DeploymentRolloutState, Failure,
    Service, StabilityStatus, Tag, TaskSet,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use ecs_control::aws::cloudwatch::CloudWatchAlarms;
use ecs_control::aws::ecs::{tag_keys, EcsAdapter};
use ecs_control::domain::alarm::Comparison;
use ecs_control::domain::scaling::Direction;
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{AlarmStates, EcsServices, FailureKind};

fn web() -> ServiceRef {
    ServiceRef::new("prod", "web")
}

fn throttled() -> Response {
    let mut response = Response::new(
        StatusCode::try_from(400).expect("status"),
        SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

#[tokio::test]
async fn ecs_throttling_is_retryable() {
    let rule = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_response(throttled)
        .repeatedly()
        .build();
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule]));
    let err = ecs.describe_service(&web()).await.expect_err("throttled");
    assert_eq!(err.kind, FailureKind::Retryable, "{err}");
    assert!(err.to_string().contains("ecs:DescribeServices"), "{err}");
}

#[tokio::test]
async fn ecs_server_errors_are_retryable() {
    let rule = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule]));
    let err = ecs.set_desired_count(&web(), 3).await.expect_err("503");
    assert_eq!(err.kind, FailureKind::Retryable, "{err}");
}

#[tokio::test]
async fn a_missing_cluster_is_not_found() {
    let rule = mock!(aws_sdk_ecs::Client::describe_services).then_error(|| {
        DescribeServicesError::ClusterNotFoundException(
            ClusterNotFoundException::builder()
                .message("Cluster not found.")
                .meta(
                    ErrorMetadata::builder()
                        .code("ClusterNotFoundException")
                        .message("Cluster not found.")
                        .build(),
                )
                .build(),
        )
    });
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, [&rule]));
    let err = ecs.describe_service(&web()).await.expect_err("missing");
    assert_eq!(err.kind, FailureKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_missing_service_is_not_found() {
    let rule = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(
                Failure::builder()
                    .arn("arn:aws:ecs:us-east-1:123456789012:service/prod/web")
                    .reason("MISSING")
                    .build(),
            )
            .build()
    });
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, [&rule]));
    let err = ecs.describe_service(&web()).await.expect_err("missing");
    assert_eq!(err.kind, FailureKind::NotFound);
    assert!(err.message.contains("MISSING"), "{err}");
}

#[tokio::test]
async fn access_denied_is_rejected() {
    let rule = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::AccessDeniedException(
            AccessDeniedException::builder().message("no").build(),
        )
    });
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, [&rule]));
    let err = ecs.set_desired_count(&web(), 3).await.expect_err("denied");
    assert_eq!(err.kind, FailureKind::Rejected);
}

#[tokio::test]
async fn service_state_reads_counts_deployment_and_memory() {
    let rule = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_arn("arn:aws:ecs:us-east-1:123456789012:service/prod/web")
                    .status("ACTIVE")
                    .desired_count(4)
                    .running_count(3)
                    .pending_count(1)
                    .deployments(
                        Deployment::builder()
                            .status("PRIMARY")
                            .rollout_state(DeploymentRolloutState::Completed)
                            .build(),
                    )
                    .tags(
                        Tag::builder()
                            .key(tag_keys::LAST_DIRECTION)
                            .value("out")
                            .build(),
                    )
                    .tags(
                        Tag::builder()
                            .key(tag_keys::SCALE_OUT_BASE)
                            .value("2")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, [&rule]));
    let state = ecs.describe_service(&web()).await.expect("state");
    assert_eq!(
        (
            state.desired_count,
            state.running_count,
            state.pending_count
        ),
        (4, 3, 1)
    );
    assert!(!state.deployment_in_progress);
    assert_eq!(state.memory.last_direction, Some(Direction::Out));
    assert_eq!(state.memory.scale_out_base, Some(2));
}

#[tokio::test]
async fn cloudwatch_server_errors_are_retryable() {
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let alarms = CloudWatchAlarms::new(mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::Sequential,
        [&rule]
    ));
    let err = alarms
        .describe_alarms(&["cpu-high".to_string()])
        .await
        .expect_err("500");
    assert_eq!(err.kind, FailureKind::Retryable, "{err}");
}

#[tokio::test]
async fn alarm_names_are_asked_for_in_pages_of_one_hundred() {
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| r.alarm_names().len() <= 100)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let alarms = CloudWatchAlarms::new(mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&rule]
    ));
    let names: Vec<String> = (0..250).map(|i| format!("alarm-{i}")).collect();
    let found = alarms.describe_alarms(&names).await.expect("described");
    assert!(found.is_empty());
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn targets_outside_the_vpc_are_registered_in_zone_all_and_always_with_their_port() {
    use aws_sdk_elasticloadbalancingv2::operation::deregister_targets::DeregisterTargetsOutput;
    use aws_sdk_elasticloadbalancingv2::operation::register_targets::RegisterTargetsOutput;
    use ecs_control::aws::elbv2::Elbv2Adapter;
    use ecs_control::domain::registration::Target;
    use ecs_control::ports::TargetGroups;

    let register = mock!(aws_sdk_elasticloadbalancingv2::Client::register_targets)
        .match_requests(|r| {
            r.targets()
                .iter()
                .all(|t| t.availability_zone() == Some("all") && t.port() == Some(8080))
        })
        .then_output(|| RegisterTargetsOutput::builder().build());
    let deregister = mock!(aws_sdk_elasticloadbalancingv2::Client::deregister_targets)
        .match_requests(|r| r.targets().iter().all(|t| t.port() == Some(8080)))
        .then_output(|| DeregisterTargetsOutput::builder().build());
    let elb = Elbv2Adapter::new(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&register, &deregister]
    ));
    let targets = [
        Target::new("192.168.7.1", 8080),
        Target::new("192.168.7.2", 8080),
    ];
    let arn =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
    elb.register(arn, &targets, true).await.expect("registered");
    elb.deregister(arn, &targets, true)
        .await
        .expect("deregistered");
    assert_eq!((register.num_calls(), deregister.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_unknown_target_group_is_not_found_and_elb_throttling_is_retryable() {
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthError;
    use aws_sdk_elasticloadbalancingv2::types::error::TargetGroupNotFoundException;
    use ecs_control::aws::elbv2::Elbv2Adapter;
    use ecs_control::ports::TargetGroups;

    let missing =
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_error(|| {
            DescribeTargetHealthError::TargetGroupNotFoundException(
                TargetGroupNotFoundException::builder()
                    .meta(ErrorMetadata::builder().code("TargetGroupNotFound").build())
                    .build(),
            )
        });
    let elb = Elbv2Adapter::new(mock_client!(aws_sdk_elasticloadbalancingv2, [&missing]));
    let err = elb.targets("arn:tg").await.expect_err("missing");
    assert_eq!(err.kind, FailureKind::NotFound, "{err}");

    let throttled = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .sequence()
        .http_response(|| {
            Response::new(
                StatusCode::try_from(400).expect("status"),
                SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
                ),
            )
        })
        .repeatedly()
        .build();
    let elb = Elbv2Adapter::new(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::Sequential,
        [&throttled]
    ));
    let err = elb.targets("arn:tg").await.expect_err("throttled");
    assert_eq!(err.kind, FailureKind::Retryable, "{err}");
}

#[tokio::test]
async fn task_sets_of_a_blue_green_service_count_as_a_deployment() {
    let service = |sets: Vec<TaskSet>| {
        move || {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_arn("arn:aws:ecs:us-east-1:123456789012:service/prod/web")
                        .status("ACTIVE")
                        .desired_count(4)
                        .deployment_controller(
                            DeploymentController::builder()
                                .r#type(DeploymentControllerType::CodeDeploy)
                                .build()
                                .expect("controller"),
                        )
                        .set_task_sets(Some(sets.clone()))
                        .build(),
                )
                .build()
        }
    };
    let set = |status: &str, stability: StabilityStatus| {
        TaskSet::builder()
            .status(status)
            .stability_status(stability)
            .build()
    };
    for (sets, expected) in [
        (vec![set("PRIMARY", StabilityStatus::SteadyState)], false),
        (vec![set("PRIMARY", StabilityStatus::Stabilizing)], true),
        (
            vec![
                set("PRIMARY", StabilityStatus::SteadyState),
                set("ACTIVE", StabilityStatus::SteadyState),
            ],
            true,
        ),
        (
            vec![
                set("PRIMARY", StabilityStatus::SteadyState),
                set("DRAINING", StabilityStatus::SteadyState),
            ],
            false,
        ),
    ] {
        let rule = mock!(aws_sdk_ecs::Client::describe_services).then_output(service(sets.clone()));
        let ecs = EcsAdapter::new(mock_client!(aws_sdk_ecs, [&rule]));
        let state = ecs.describe_service(&web()).await.expect("state");
        assert_eq!(state.deployment_in_progress, expected, "{sets:?}");
    }
}

#[tokio::test]
async fn an_alarm_is_read_with_its_metric_and_the_metric_is_read_back() {
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(
                MetricAlarm::builder()
                    .alarm_name("cpu-low")
                    .state_value(StateValue::Alarm)
                    .namespace("AWS/ECS")
                    .metric_name("CPUUtilization")
                    .statistic(Statistic::Average)
                    .period(60)
                    .evaluation_periods(3)
                    .threshold(20.0)
                    .comparison_operator(ComparisonOperator::LessThanOrEqualToThreshold)
                    .build(),
            )
            .build()
    });
    let read = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| {
            r.metric_data_queries().len() == 1
                && r.metric_data_queries()[0]
                    .metric_stat()
                    .and_then(|s| s.metric())
                    .and_then(|m| m.metric_name())
                    == Some("CPUUtilization")
        })
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("m1")
                        .timestamps(aws_smithy_types::DateTime::from_secs(120))
                        .timestamps(aws_smithy_types::DateTime::from_secs(60))
                        .values(14.0)
                        .values(12.0)
                        .build(),
                )
                .build()
        });
    let alarms = CloudWatchAlarms::new(mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&describe, &read]
    ));
    let found = alarms
        .describe_alarms(&["cpu-low".to_string()])
        .await
        .expect("described");
    let metric = found[0].metric.clone().expect("a metric alarm");
    assert_eq!(metric.threshold, 20.0);
    assert_eq!(metric.comparison, Comparison::LessThanOrEqualToThreshold);
    assert_eq!(metric.period_seconds(), 60);
    let now = chrono::Utc::now();
    let (start, end) = metric.window(now);
    // Three evaluation periods, one before them, and the period now is in.
    assert_eq!((end - start).num_seconds(), 300);
    let series = alarms
        .metric_data(&metric.queries, start, end)
        .await
        .expect("read");
    let values = &series[&metric.queries[0].id];
    assert_eq!(
        values.iter().map(|p| p.value).collect::<Vec<_>>(),
        [12.0, 14.0],
        "oldest first"
    );
}

#[tokio::test]
async fn service_tasks_follow_every_page_describe_a_hundred_at_a_time_and_report_missing() {
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use ecs_control::ports::EcsTasks;

    let arn = |i: usize| format!("arn:aws:ecs:us-east-1:123456789012:task/prod/{i:032x}");
    let first_page = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.next_token().is_none() && r.service_name() == Some("web"))
        .then_output(move || {
            ListTasksOutput::builder()
                .set_task_arns(Some((0..100).map(arn).collect()))
                .next_token("page-2")
                .build()
        });
    let second_page = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            ListTasksOutput::builder()
                .set_task_arns(Some((100..150).map(arn).collect()))
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().len() <= 100)
        .then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(
                    aws_sdk_ecs::types::Task::builder()
                        .task_arn(arn(0))
                        .last_status("RUNNING")
                        .desired_status("RUNNING")
                        .build(),
                )
                .failures(Failure::builder().arn(arn(7)).reason("MISSING").build())
                .build()
        });
    let ecs = EcsAdapter::new(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&first_page, &second_page, &describe]
    ));
    let listed = ecs.service_tasks(&web()).await.expect("listed");
    assert_eq!(first_page.num_calls(), 1);
    assert_eq!(second_page.num_calls(), 1);
    // 150 tasks: two DescribeTasks calls of at most 100.
    assert_eq!(describe.num_calls(), 2);
    assert_eq!(listed.tasks.len(), 2);
    assert_eq!(listed.missing, [arn(7), arn(7)]);
}
