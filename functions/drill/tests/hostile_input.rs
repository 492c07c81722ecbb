//! Hostile payloads for the drill function: malformed shapes, wrong types,
//! huge numbers, unknown fields, empty strings and overlong names. Each is
//! refused before any AWS call, with an error that names what is wrong, is
//! not retried, and never echoes the input whole (under 1,000 bytes), as the
//! scaler's, registrar's and probe's tables require of theirs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a test fails loudly

use chrono::{DateTime, Utc};
use drill::handler::Driller;
use ecs_control::config::DrillConfig;
use ecs_control::domain::alarm::{AlarmState, AlarmStatus, MetricPoint, MetricQuery};
use ecs_control::domain::budget::TaskSize;
use ecs_control::domain::probe::{HttpObservation, MetricDatum, ProbeCheck};
use ecs_control::domain::registration::{RegisteredTarget, ServiceTasks, Target, TaskInfo};
use ecs_control::domain::scaling::{ScalingMemory, ServiceState};
use ecs_control::domain::service::ServiceRef;
use ecs_control::invocation::InvocationError;
use ecs_control::ports::{
    AlarmControls, AlarmStates, CheckAttempts, DrillControls, EcsServices, EcsTasks, FailureKind,
    MetricsSink, PortError, TaggedService, TargetGroups, TaskControls,
};
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Every port at once, none of which may be used: each call is logged and refused.
#[derive(Debug, Clone, Default)]
struct Untouched(Arc<Mutex<Vec<&'static str>>>);

impl Untouched {
    fn touch<T>(&self, operation: &'static str) -> Result<T, PortError> {
        self.0.lock().unwrap().push(operation);
        Err(PortError::new(
            FailureKind::Rejected,
            operation,
            "a refused payload touched AWS",
        ))
    }

    fn calls(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

impl EcsServices for Untouched {
    async fn describe_service(&self, _: &ServiceRef) -> Result<ServiceState, PortError> {
        self.touch("ecs:DescribeServices")
    }
    async fn inactive_services(
        &self,
        _: &[ServiceRef],
    ) -> Result<Vec<(ServiceRef, String)>, PortError> {
        self.touch("ecs:DescribeServices")
    }
    async fn remember(&self, _: &str, _: &ScalingMemory) -> Result<(), PortError> {
        self.touch("ecs:TagResource")
    }
    async fn set_desired_count(&self, _: &ServiceRef, _: u32) -> Result<(), PortError> {
        self.touch("ecs:UpdateService")
    }
    async fn task_size(&self, _: &str) -> Result<Option<TaskSize>, PortError> {
        self.touch("ecs:DescribeTaskDefinition")
    }
}

impl EcsTasks for Untouched {
    async fn service_tasks(&self, _: &ServiceRef) -> Result<ServiceTasks, PortError> {
        self.touch("ecs:ListTasks")
    }
    async fn describe_task(&self, _: &str, _: &str) -> Result<Option<TaskInfo>, PortError> {
        self.touch("ecs:DescribeTasks")
    }
}

impl TaskControls for Untouched {
    async fn hold_for_drain(
        &self,
        _: &str,
        _: &[String],
        _: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        self.touch("ecs:TagResource (task)")
    }
    async fn protection(
        &self,
        _: &str,
        _: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, PortError> {
        self.touch("ecs:GetTaskProtection")
    }
    async fn protect(
        &self,
        _: &str,
        _: &[String],
        _: Option<u32>,
    ) -> Result<Vec<(String, String)>, PortError> {
        self.touch("ecs:UpdateTaskProtection")
    }
}

impl DrillControls for Untouched {
    async fn tagged_service(&self, _: &ServiceRef) -> Result<TaggedService, PortError> {
        self.touch("ecs:DescribeServices (tags)")
    }
    async fn tag_service(&self, _: &str, _: &[(String, String)]) -> Result<(), PortError> {
        self.touch("ecs:TagResource")
    }
    async fn untag_service(&self, _: &str, _: &[String]) -> Result<(), PortError> {
        self.touch("ecs:UntagResource")
    }
    async fn drills_halted(&self, _: &str) -> Result<Option<String>, PortError> {
        self.touch("ecs:ListTagsForResource (cluster)")
    }
    async fn stop_task(&self, _: &str, _: &str, _: &str) -> Result<(), PortError> {
        self.touch("ecs:StopTask")
    }
}

impl TargetGroups for Untouched {
    async fn targets(&self, _: &str) -> Result<Vec<RegisteredTarget>, PortError> {
        self.touch("elasticloadbalancing:DescribeTargetHealth")
    }
    async fn register(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        self.touch("elasticloadbalancing:RegisterTargets")
    }
    async fn deregister(&self, _: &str, _: &[Target], _: bool) -> Result<(), PortError> {
        self.touch("elasticloadbalancing:DeregisterTargets")
    }
}

impl AlarmStates for Untouched {
    async fn describe_alarms(&self, _: &[String]) -> Result<Vec<AlarmStatus>, PortError> {
        self.touch("cloudwatch:DescribeAlarms")
    }
    async fn metric_data(
        &self,
        _: &[MetricQuery],
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>, PortError> {
        self.touch("cloudwatch:GetMetricData")
    }
}

impl AlarmControls for Untouched {
    async fn set_alarm_state(&self, _: &str, _: AlarmState, _: &str) -> Result<(), PortError> {
        self.touch("cloudwatch:SetAlarmState")
    }
}

impl CheckAttempts for Untouched {
    async fn attempt(
        &self,
        check: &ProbeCheck,
        _: usize,
        _: std::time::Duration,
    ) -> HttpObservation {
        panic!("a refused payload ran check {}", check.name)
    }
}

impl MetricsSink for Untouched {
    async fn put(&self, _: &str, _: &[MetricDatum], _: DateTime<Utc>) -> Result<(), PortError> {
        self.touch("cloudwatch:PutMetricData")
    }
}

type UntouchedDriller = Driller<Untouched, Untouched, Untouched, Untouched, Untouched>;

/// The drill document the samples name, on ports that must not be used.
fn driller(ports: &Untouched) -> UntouchedDriller {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/drills.json"
    ))
    .unwrap();
    Driller::new(
        DrillConfig::parse(&text).expect("the shipped drill document"),
        ports.clone(),
        ports.clone(),
        ports.clone(),
        ports.clone(),
        ports.clone(),
    )
}

/// The refusal says `says`, is of `error_type`, is under 1,000 bytes
/// whatever it was given, and no AWS call was made.
async fn assert_refused(payload: Value, says: &str, error_type: &str) {
    let shown = ecs_control::invocation::capped(&payload.to_string(), 200);
    let ports = Untouched::default();
    let err: InvocationError = driller(&ports)
        .handle(payload, None)
        .await
        .expect_err(&shown);
    let message = err.to_string();
    assert!(
        message.contains(says),
        "{shown}: expected {says:?} in {:?}",
        ecs_control::invocation::capped(&message, 300)
    );
    assert!(
        message.len() < 1_000,
        "{shown}: a {}-byte message",
        message.len()
    );
    assert_eq!(Diagnostic::from(err).error_type, error_type, "{shown}");
    assert_eq!(ports.calls(), Vec::<&str>::new(), "{shown}");
}

const MALFORMED: &str = "NonRetryable.MalformedEvent";
const REJECTED: &str = "NonRetryable.RejectedCommand";

#[tokio::test]
async fn hostile_inputs_are_refused_before_any_aws_call_with_a_clear_bounded_error() {
    let huge = "x".repeat(1 << 20);
    let start = |change: &dyn Fn(&mut Value)| {
        let mut payload = json!({"command": "start", "drill": "scale-web-up", "mode": "plan"});
        change(&mut payload);
        payload
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        // Shapes that are not a command at all.
        (json!(null), "expected a JSON object", MALFORMED),
        (json!("start"), "expected a JSON object", MALFORMED),
        (json!(42), "expected a JSON object", MALFORMED),
        (
            json!([{"command": "start"}]),
            "expected a JSON object",
            MALFORMED,
        ),
        (json!({}), "unrecognised event with keys []", MALFORMED),
        (
            json!({"command": 7}),
            "unrecognised event with keys [\"command\"]",
            MALFORMED,
        ),
        (
            json!({"command": ""}),
            "a command (start, continue or sweep)",
            MALFORMED,
        ),
        (
            json!({"command": "START", "drill": "scale-web-up"}),
            "a command (start, continue or sweep)",
            MALFORMED,
        ),
        (
            json!({"command": huge.clone()}),
            "a command (start, continue or sweep)",
            MALFORMED,
        ),
        (json!({ huge.clone(): "start" }), "bytes, cut)", MALFORMED),
        // Missing and wrongly typed fields of a start.
        (
            json!({"command": "start"}),
            "start command: missing field `drill`",
            MALFORMED,
        ),
        (
            start(&|p| p["drill"] = json!(7)),
            "start command: field drill: invalid type: integer `7`, expected a string",
            MALFORMED,
        ),
        (
            start(&|p| p["drill"] = json!(1e308)),
            "start command: field drill: invalid type: floating point",
            MALFORMED,
        ),
        (
            start(&|p| p["drill"] = json!({"name": "scale-web-up"})),
            "start command: field drill: invalid type: map",
            MALFORMED,
        ),
        (
            start(&|p| p["drill"] = json!(null)),
            "start command: field drill: invalid type: null",
            MALFORMED,
        ),
        (
            start(&|p| p["mode"] = json!("EXECUTE")),
            "unknown variant `EXECUTE`, expected `plan` or `execute`",
            MALFORMED,
        ),
        (
            start(&|p| p["mode"] = json!(true)),
            "start command: field mode: invalid type: boolean `true`",
            MALFORMED,
        ),
        (
            start(&|p| p["mode"] = huge.clone().into()),
            "bytes, cut)",
            MALFORMED,
        ),
        (
            start(&|p| p["requested_by"] = json!(5)),
            "start command: field requested_by: invalid type: integer `5`",
            MALFORMED,
        ),
        // Unknown fields: refused, never ignored (a typo of `mode` must not
        // run a drill the caller meant to plan).
        (
            start(&|p| p["mdoe"] = json!("plan")),
            "start command: field mdoe: unknown field `mdoe`",
            MALFORMED,
        ),
        (
            start(&|p| p["dry_run"] = json!(true)),
            "start command: field dry_run: unknown field `dry_run`",
            MALFORMED,
        ),
        (
            start(&|p| p[huge.as_str()] = json!(1)),
            "start command: field xxx",
            MALFORMED,
        ),
        // Names no drill has: empty, overlong, a near miss.
        (
            start(&|p| p["drill"] = json!("")),
            "no drill is named \"\"",
            REJECTED,
        ),
        (
            start(&|p| p["drill"] = huge.clone().into()),
            "no drill is named \"xxx",
            REJECTED,
        ),
        (
            start(&|p| p["drill"] = json!("scale-web-up ")),
            "no drill is named \"scale-web-up \"",
            REJECTED,
        ),
        // A continue: missing, wrongly typed, empty, huge ids.
        (
            json!({"command": "continue"}),
            "continue command: missing field `drill_id`",
            MALFORMED,
        ),
        (
            json!({"command": "continue", "drill_id": 18_446_744_073_709_551_615_u64}),
            "continue command: field drill_id: invalid type: integer `18446744073709551615`",
            MALFORMED,
        ),
        (
            json!({"command": "continue", "drill_id": -1}),
            "continue command: field drill_id: invalid type: integer `-1`",
            MALFORMED,
        ),
        (
            json!({"command": "continue", "drill_id": ""}),
            "\"\" is not a drill id",
            REJECTED,
        ),
        (
            json!({"command": "continue", "drill_id": "nodash"}),
            "\"nodash\" is not a drill id",
            REJECTED,
        ),
        (
            json!({"command": "continue", "drill_id": format!("{huge}-1")}),
            "no drill is named \"xxx",
            REJECTED,
        ),
        (
            json!({"command": "continue", "drill_id": "no-such-drill-1795476762193"}),
            "no drill is named \"no-such-drill\"",
            REJECTED,
        ),
        (
            json!({"command": "continue", "drill_id": "scale-web-up-1", "mode": "execute"}),
            "continue command: field mode: unknown field `mode`",
            MALFORMED,
        ),
    ];
    for (payload, says, error_type) in cases {
        assert_refused(payload, says, error_type).await;
    }
}

/// The contract is 1,000 bytes, whatever characters a name is made of.
#[tokio::test]
async fn a_name_of_multibyte_characters_is_not_echoed_past_the_bound() {
    let wide = "é".repeat(1 << 16);
    assert_refused(
        json!({"command": "start", "drill": wide}),
        "no drill is named",
        REJECTED,
    )
    .await;
    let wider = "\u{1F600}".repeat(1 << 16);
    assert_refused(
        json!({"command": "continue", "drill_id": wider}),
        "is not a drill id",
        REJECTED,
    )
    .await;
}

/// A value of the wrong type is refused naming its field, as a missing or
/// unknown key is.
#[tokio::test]
async fn a_wrongly_typed_field_is_named() {
    for (payload, field) in [
        (json!({"command": "start", "drill": 7}), "drill"),
        (
            json!({"command": "start", "drill": "scale-web-up", "mode": true}),
            "mode",
        ),
        (json!({"command": "continue", "drill_id": 7}), "drill_id"),
    ] {
        assert_refused(payload, field, MALFORMED).await;
    }
}

/// The reason comes after the id: the id is cut, not the reason.
#[tokio::test]
async fn an_overlong_drill_id_is_refused_saying_why() {
    assert_refused(
        json!({"command": "continue", "drill_id": "x".repeat(1 << 20)}),
        "is not a drill id",
        REJECTED,
    )
    .await;
}
