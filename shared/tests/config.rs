//! Policy documents: the shipped example parses; every mistake names its field.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use ecs_control::config::ScalerConfig;
use ecs_control::domain::policy::AdjustmentType;
use ecs_control::domain::service::ServiceRef;

const EXAMPLE: &str = include_str!("../../infra/scaler-policies.json");

#[test]
fn the_shipped_example_parses() {
    let config = ScalerConfig::parse(EXAMPLE).expect("example parses");
    assert_eq!(config.policies.len(), 3);
    let web = ServiceRef::new("demo", "web");
    assert_eq!(config.policies_for_service(&web).count(), 3);
    assert_eq!(
        config.alarm_names(),
        ["web-cpu-high", "web-cpu-low", "web-under-pressure"]
    );
    let exact = config
        .policies_for_alarm("web-under-pressure")
        .next()
        .expect("policy");
    assert_eq!(exact.adjustment_type, AdjustmentType::ExactCapacity);
    assert_eq!(exact.cooldowns.scale_out_seconds, 300, "default cooldown");
}

fn policy(overrides: &str) -> String {
    let base = r#""alarm": "a", "cluster": "c", "service": "s", "adjustment_type": "ChangeInCapacity",
        "steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1}],
        "min_capacity": 1, "max_capacity": 5"#;
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&format!("{{{base}}}")).expect("base");
    let extra: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&format!("{{{overrides}}}")).expect("overrides");
    fields.extend(extra);
    serde_json::Value::Object(fields).to_string()
}

#[test]
fn every_mistake_names_its_field() {
    let cases = [
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(r#""min_capacity": "two""#)
            ),
            "policies[0].min_capacity",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(r#""adjustment_type": "Double""#)
            ),
            "policies[0].adjustment_type",
        ),
        (
            format!(r#"{{"policies": [{}]}}"#, policy(r#""max_capacity": 0"#)),
            "policies[0].max_capacity",
        ),
        (
            format!(r#"{{"policies": [{}]}}"#, policy(r#""alarm": " ""#)),
            "policies[0].alarm",
        ),
        (
            format!(r#"{{"policies": [{}]}}"#, policy(r#""steps": []"#)),
            "policies[0].steps",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(
                    r#""steps": [{"metric_interval_lower_bound": 0, "metric_interval_upper_bound": 10, "scaling_adjustment": 1},
                                 {"metric_interval_lower_bound": 5, "scaling_adjustment": 2}]"#
                )
            ),
            "policies[0].steps[1]",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(
                    r#""steps": [{"metric_interval_lower_bound": 3, "metric_interval_upper_bound": 1, "scaling_adjustment": 1}]"#
                )
            ),
            "policies[0].steps[0].metric_interval_upper_bound",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(r#""min_adjustment_magnitude": 2"#)
            ),
            "policies[0].min_adjustment_magnitude",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(
                    r#""steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 1, "cooldown": 5}]"#
                )
            ),
            "policies[0].steps[0].cooldown",
        ),
        (
            format!(
                r#"{{"policies": [{}, {}]}}"#,
                policy(""),
                policy(r#""alarm": "b", "max_capacity": 9"#)
            ),
            "policies[1].min_capacity",
        ),
        (
            format!(r#"{{"policies": [{}, {}]}}"#, policy(""), policy("")),
            "policies[1].alarm",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(
                    r#""steps": [{"metric_interval_lower_bound": 0, "scaling_adjustment": 9223372036854775807}]"#
                )
            ),
            "policies[0].steps[0].scaling_adjustment",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(r#""max_capacity": 4000000000"#)
            ),
            "policies[0].max_capacity",
        ),
        (
            format!(
                r#"{{"policies": [{}]}}"#,
                policy(r#""metric_aggregation_type": "Median""#)
            ),
            "policies[0].metric_aggregation_type",
        ),
        (r#"{"policy": []}"#.to_string(), "policy"),
        ("not json".to_string(), "policy document"),
    ];
    for (document, field) in cases {
        let err = ScalerConfig::parse(&document).expect_err(&document);
        assert_eq!(err.field, field, "{err} for {document}");
        assert!(
            err.to_string().starts_with("invalid configuration: "),
            "{err}"
        );
    }
}

#[test]
fn the_other_triggers_name_their_fields() {
    let step = policy("");
    let tracking = |extra: &str| {
        format!(
            r#"{{"type": "target_tracking", "cluster": "c", "service": "s", "metric": "ecs_cpu",
                "target_value": 60, "min_capacity": 1, "max_capacity": 5{extra}}}"#
        )
    };
    let with = |policies: &[String], rest: &str| {
        format!(r#"{{"policies": [{}]{rest}}}"#, policies.join(","))
    };
    let cases = [
        (
            with(
                &[
                    step.clone(),
                    tracking(""),
                    tracking(r#", "name": "t2""#).replace("60", "0"),
                ],
                "",
            ),
            "policies[2].target_value",
        ),
        (
            with(&[tracking("").replace(r#""ecs_cpu""#, r#""ecs_disk""#)], ""),
            "policies[0].metric",
        ),
        (
            with(
                &[tracking("").replace(r#""ecs_cpu""#, r#""alb_requests_per_target""#)],
                "",
            ),
            "policies[0].target_group_arn",
        ),
        (
            with(&[tracking(r#", "scale_in_below_percent": 120"#)], ""),
            "policies[0].scale_in_below_percent",
        ),
        (
            with(
                &[
                    tracking(r#", "metric": {"namespace": "N", "statistic": "Sum"}"#)
                        .replace(r#""metric": "ecs_cpu","#, ""),
                ],
                "",
            ),
            "policies[0].metric",
        ),
        (
            with(
                &[tracking("").replace("target_tracking", "step_tracking")],
                "",
            ),
            "policies[0].type",
        ),
        (
            with(
                &[
                    tracking(r#", "min_capacity": 2"#).replace(r#""min_capacity": 1, "#, ""),
                    step.clone(),
                ],
                "",
            ),
            "policies[1].min_capacity",
        ),
        (
            with(
                std::slice::from_ref(&step),
                r#", "services": [{"cluster": "c", "service": "s", "max_tasks_added_per_minute": 0}]"#,
            ),
            "services[0].max_tasks_added_per_minute",
        ),
        (
            with(
                std::slice::from_ref(&step),
                r#", "services": [{"cluster": "c", "service": "other", "max_hourly_cost": 1}]"#,
            ),
            "services[0].service",
        ),
        (
            with(
                std::slice::from_ref(&step),
                r#", "services": [{"cluster": "c", "service": "s", "max_hourly_cost": 1, "cpu_architecture": "sparc"}]"#,
            ),
            "services[0].cpu_architecture",
        ),
        (
            with(
                std::slice::from_ref(&step),
                r#", "schedules": [{"cluster": "c", "service": "s", "cron": "0 8 * * *", "min_capacity": 2}]"#,
            ),
            "schedules[0].duration_minutes",
        ),
        (
            with(
                std::slice::from_ref(&step),
                r#", "schedules": [{"cluster": "c", "service": "s", "start": "tomorrow", "duration_minutes": 5, "min_capacity": 2}]"#,
            ),
            "schedules[0].start",
        ),
    ];
    for (document, field) in cases {
        let err = ScalerConfig::parse(&document).expect_err(&document);
        assert_eq!(err.field, field, "{document}: {err}");
    }
}

#[test]
fn a_custom_metric_and_metric_math_parse() {
    let document = r#"{"policies": [
        {"type": "target_tracking", "cluster": "c", "service": "s", "target_value": 100,
         "metric": {"namespace": "Shop", "metric_name": "QueueDepth",
                    "dimensions": {"Queue": "orders"}, "statistic": "Average"},
         "min_capacity": 1, "max_capacity": 5},
        {"type": "target_tracking", "cluster": "c", "service": "s", "target_value": 50,
         "metric": {"expression": "m1 / m2",
                    "metrics": {"m1": {"namespace": "Shop", "metric_name": "Backlog", "statistic": "Sum"},
                                "m2": {"namespace": "Shop", "metric_name": "Workers", "statistic": "Average"}}},
         "min_capacity": 1, "max_capacity": 5}
    ]}"#;
    let config = ScalerConfig::parse(document).expect("parses");
    let service = ServiceRef::new("c", "s");
    let queries: Vec<usize> = config
        .tracking_for_service(&service)
        .map(|p| p.metric.queries(&service).len())
        .collect();
    assert_eq!(queries, [1, 3]);
    assert_eq!(config.tick_services(), [service]);
}

#[test]
fn a_drill_outside_the_drill_service_prefix_fails_the_cold_start_check() {
    let drills = ecs_control::config::DrillConfig::parse(include_str!("../../infra/drills.json"))
        .expect("example parses");
    ecs_control::config::verify::drill_services_match_prefix(&drills, "")
        .expect("an empty prefix covers all");
    let first = drills.drills[0].service.service.clone();
    ecs_control::config::verify::drill_services_match_prefix(&drills, &first[..1])
        .expect("covered by its first letter");
    let err = ecs_control::config::verify::drill_services_match_prefix(&drills, "zz-")
        .expect_err("outside zz-");
    assert_eq!(err.field, "drills[0].service");
    assert!(err.problem.contains("DRILL_SERVICE_NAME_PREFIX"), "{err}");
    assert!(err.problem.contains("DrillServicePrefix"), "{err}");
}

#[test]
fn the_registrar_refuses_a_service_its_rule_does_not_pass_on() {
    let config = ecs_control::config::RegistrarConfig::parse(include_str!(
        "../../infra/registrar-config.json"
    ))
    .expect("example parses");
    config.check_service_prefix("we").expect("web is covered");
    config
        .check_service_prefix("")
        .expect("an empty prefix covers all");
    let err = config
        .check_service_prefix("api-")
        .expect_err("web is outside api-");
    assert_eq!(err.field, "services[0].service");
    assert!(
        err.problem.contains("REGISTRAR_SERVICE_NAME_PREFIX"),
        "{err}"
    );
    assert!(err.problem.contains("ManagedServicePrefix"), "{err}");
}

#[test]
fn the_registrar_refuses_a_group_outside_its_policy_prefix() {
    let config = ecs_control::config::RegistrarConfig::parse(include_str!(
        "../../infra/registrar-config.json"
    ))
    .expect("example parses");
    // The sample's groups are named web and web-peered-vpc.
    config
        .check_target_group_prefix("web")
        .expect("both covered");
    config
        .check_target_group_prefix("")
        .expect("an empty prefix covers all");
    let err = config
        .check_target_group_prefix("web-peered")
        .expect_err("web is outside web-peered");
    assert_eq!(err.field, "services[0].target_groups[0].target_group_arn");
    assert!(
        err.problem.contains("REGISTRAR_TARGET_GROUP_NAME_PREFIX"),
        "{err}"
    );
    assert!(err.problem.contains("TargetGroupNamePrefix"), "{err}");
}

#[test]
fn target_group_names_are_read_from_their_arns() {
    use ecs_control::config::verify::target_group_name;
    assert_eq!(
        target_group_name("arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/prod-web/0123456789abcdef"),
        Some("prod-web")
    );
    assert_eq!(
        target_group_name(
            "arn:aws-cn:elasticloadbalancing:cn-north-1:111122223333:targetgroup/a/b"
        ),
        Some("a")
    );
    for not_a_group in [
        "",
        "prod-web",
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/prod-web/0123",
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/prod-web",
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup//0123",
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/prod-web/0123/extra",
    ] {
        assert_eq!(target_group_name(not_a_group), None, "{not_a_group}");
    }
}

#[test]
fn drills_stay_within_the_prefixes_their_policy_grants() {
    use ecs_control::config::verify::{drill_alarms_match_prefix, drill_groups_match_prefix};
    let config = ecs_control::config::DrillConfig::parse(include_str!("../../infra/drills.json"))
        .expect("example parses");
    drill_alarms_match_prefix(&config, "web-").expect("the sample's alarm drill is web-…");
    drill_groups_match_prefix(&config, "web").expect("the sample's drain drill is on web");
    let err = drill_alarms_match_prefix(&config, "prod-").expect_err("outside prod-");
    assert!(err.field.ends_with(".kind.alarm"), "{err}");
    assert!(err.problem.contains("DRILL_ALARM_NAME_PREFIX"), "{err}");
    let err = drill_groups_match_prefix(&config, "api").expect_err("outside api");
    assert!(err.field.ends_with(".kind.target_group_arn"), "{err}");
    assert!(
        err.problem.contains("DRILL_TARGET_GROUP_NAME_PREFIX"),
        "{err}"
    );
}

#[test]
fn an_alarm_outside_the_prefix_is_refused() {
    let config = ScalerConfig::parse(EXAMPLE).expect("example parses");
    ecs_control::config::verify::alarms_match_prefix(&config, "web-").expect("all start with web-");
    let err = ecs_control::config::verify::alarms_match_prefix(&config, "prod-")
        .expect_err("none starts with prod-");
    assert_eq!(err.field, "policies[0].alarm");
}

#[test]
fn the_shipped_drills_parse_and_mistakes_name_their_field() {
    let document = include_str!("../../infra/drills.json");
    let config = ecs_control::config::DrillConfig::parse(document).expect("example parses");
    assert_eq!(config.drills.len(), 4);
    for (from, to, field) in [
        (
            r#""hold_seconds": 300"#,
            r#""hold_seconds": 3000"#,
            "drills[0].kind.hold_seconds",
        ),
        (
            r#""percent": 33"#,
            r#""percent": 0"#,
            "drills[1].kind.count",
        ),
        (
            r#""name": "web-cpu-alarm""#,
            r#""name": "web cpu alarm""#,
            "drills[3].name",
        ),
        (
            r#""poll_seconds": 5"#,
            r#""poll_seconds": 0"#,
            "drills[2].poll_seconds",
        ),
        (
            r#""rollback": "always""#,
            r#""rollback": "sometimes""#,
            "drills[0].rollback",
        ),
        (
            r#""url": "https://web.example.com/health", "expected_status""#,
            r#""url": "ftp://web.example.com/health", "expected_status""#,
            "drills[0].steady_state.probe_checks[0].url",
        ),
    ] {
        let err =
            ecs_control::config::DrillConfig::parse(&document.replacen(from, to, 1)).expect_err(to);
        assert_eq!(err.field, field, "{to}: {err}");
    }
}
