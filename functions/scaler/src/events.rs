//! The payloads the scaler accepts, told apart by shape, turned into triggers.

use aws_lambda_events::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmData};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use ecs_control::batch;
use ecs_control::domain::alarm::AlarmState;
use ecs_control::domain::policy::AdjustmentType;
use ecs_control::domain::scaling::trigger_key;
use ecs_control::domain::service::ServiceRef;
use ecs_control::domain::suspension::Suspended;
pub use ecs_control::invocation::MalformedEvent;
use ecs_control::invocation::ECS_NAME_LIMIT;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an alarm notice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSource {
    EventBridge,
    AlarmAction,
    Sns,
}

/// An alarm changed state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmNotice {
    pub source: AlarmSource,
    pub alarm: String,
    pub state: AlarmState,
    pub state_changed_at: DateTime<Utc>,
}

impl AlarmNotice {
    /// Identical for every delivery of one state change, whatever carried it,
    /// so an alarm wired to both EventBridge and SNS acts once.
    pub fn key(&self) -> String {
        trigger_key(&format!(
            "alarm:{}@{}",
            self.alarm,
            self.state_changed_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        ))
    }
}

/// What an operator asks for by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum ManualChange {
    /// Set the desired count (kept within the service's configured bounds).
    SetDesiredCount { desired_count: u32 },
    /// Apply one adjustment, as a policy step would.
    ApplyStep {
        adjustment_type: AdjustmentType,
        adjustment: i64,
        #[serde(default)]
        min_adjustment_magnitude: Option<u32>,
    },
    /// Show the bounds the time windows give over the coming hours; reads only.
    PreviewBounds {
        #[serde(default = "default_preview_hours")]
        hours: u32,
    },
    /// Show the next hours of forecast load and capacity of the service's
    /// predictive policies, beside the bounds; reads only.
    PreviewForecast {
        #[serde(default = "default_forecast_hours")]
        hours: u32,
    },
    /// Suspend the parts named (all three when none is), as Application Auto
    /// Scaling's `SuspendedState`: kept on the service until resumed.
    Suspend {
        #[serde(flatten)]
        parts: Suspended,
    },
    /// Resume the parts named (all three when none is).
    Resume {
        #[serde(flatten)]
        parts: Suspended,
    },
}

/// The whole forecast.
fn default_forecast_hours() -> u32 {
    ecs_control::domain::predictive::FORECAST_HOURS
}

/// A week: every weekly window shows at least once.
fn default_preview_hours() -> u32 {
    168
}

/// A manual command: `{"command": "set_desired_count" | "apply_step" | "preview_bounds" | "preview_forecast" | ...,
/// "cluster", "service", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualCommand {
    pub cluster: String,
    pub service: String,
    #[serde(flatten)]
    pub change: ManualChange,
    #[serde(default)]
    pub dry_run: bool,
    /// Why, for the record and the logs.
    #[serde(default)]
    pub reason: Option<String>,
    /// Makes a retried command a no-op; defaults to the Lambda request id.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl ManualCommand {
    pub fn service_ref(&self) -> ServiceRef {
        ServiceRef::new(&self.cluster, &self.service)
    }
}

/// What an invocation asks the scaler to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// One or more alarm state changes (SNS may batch records).
    AlarmChange { notices: Vec<AlarmNotice> },
    /// The scheduled tick: re-checks every alarm the policies name, and runs
    /// target tracking, time windows, budgets and staged changes.
    Recheck { event_id: String },
    /// An operator's command.
    Manual { command: ManualCommand },
}

/// A parsed invocation: the trigger, and whether the payload asked for a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub trigger: Trigger,
    pub dry_run: bool,
}

const ALARM_DETAIL_TYPE: &str = "CloudWatch Alarm State Change";
const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";

/// SNS alarm message; `AlarmDescription` may be null or absent, so it is not read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmMessage {
    alarm_name: String,
    new_state_value: String,
    state_change_time: String,
}

/// A key the command does not know is refused, naming it: a typo such as
/// `dryrun` must not make a dry run act. (serde's `deny_unknown_fields` does
/// not work beside `flatten`; every key the command knows is in its own
/// serialised form, each `Option` as null.)
fn refuse_unknown_keys(payload: &Value, command: &ManualCommand) -> Result<(), MalformedEvent> {
    let known = serde_json::to_value(command).unwrap_or(Value::Null);
    let unknown: Vec<&str> = payload
        .as_object()
        .into_iter()
        .flat_map(|given| given.keys())
        .filter(|key| known.get(key.as_str()).is_none())
        .map(String::as_str)
        .collect();
    match unknown.as_slice() {
        [] => Ok(()),
        keys => Err(MalformedEvent(format!(
            "manual command: unknown key(s) {}",
            shown_keys(keys)
        ))),
    }
}

/// Keys as a message shows them: quoted, at most ten, each cut.
fn shown_keys(keys: &[&str]) -> String {
    let mut shown: Vec<String> = keys
        .iter()
        .take(10)
        .map(|k| format!("{:?}", ecs_control::echo::capped(k, 64)))
        .collect();
    if keys.len() > 10 {
        shown.push(format!("and {} more", keys.len() - 10));
    }
    shown.join(", ")
}

/// CloudWatch alarm names are at most 255 characters.
const ALARM_NAME_LIMIT: usize = 255;
/// An operator's reason is kept in the record and the log: a paragraph at most.
const REASON_LIMIT: usize = 1024;

fn within(what: &str, value: &str, limit: usize) -> Result<(), MalformedEvent> {
    MalformedEvent::check_length(what, value, limit)
}

fn state_of(alarm: &str, value: &str) -> Result<AlarmState, MalformedEvent> {
    AlarmState::parse(value)
        .ok_or_else(|| MalformedEvent(format!("alarm {alarm}: unknown state {value:?}")))
}

/// Alarm timestamps come as `2019-10-02T17:04:40.989+0000` (no colon in the offset).
fn parse_alarm_time(alarm: &str, raw: &str) -> Result<DateTime<Utc>, MalformedEvent> {
    DateTime::parse_from_rfc3339(raw)
        .or_else(|_| DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| MalformedEvent::because(&format!("alarm {alarm}: timestamp {raw:?}"), e))
}

fn notice_from_alarm_data(
    source: AlarmSource,
    data: CloudWatchAlarmData<Value, Value>,
) -> Result<AlarmNotice, MalformedEvent> {
    let alarm = data.alarm_name;
    within("the alarm name", &alarm, ALARM_NAME_LIMIT)?;
    let state = data
        .state
        .ok_or_else(|| MalformedEvent(format!("alarm {alarm}: the event has no state")))?;
    let value = serde_json::to_value(&state.value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(AlarmNotice {
        source,
        state: state_of(&alarm, &value)?,
        state_changed_at: state.timestamp,
        alarm,
    })
}

fn parse_sns(payload: Value) -> Result<Trigger, MalformedEvent> {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| MalformedEvent("SNS event: Records is not a list".into()))?;
    let mut notices = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let message = record
            .pointer("/Sns/Message")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                MalformedEvent(format!(
                    "SNS event: Records[{i}].Sns.Message is not a string"
                ))
            })?;
        let parsed: SnsAlarmMessage = serde_json::from_str(message).map_err(|e| {
            MalformedEvent::because(
                &format!("SNS event: Records[{i}].Sns.Message is not a CloudWatch alarm"),
                e,
            )
        })?;
        within("the alarm name", &parsed.alarm_name, ALARM_NAME_LIMIT)?;
        notices.push(AlarmNotice {
            source: AlarmSource::Sns,
            state: state_of(&parsed.alarm_name, &parsed.new_state_value)?,
            state_changed_at: parse_alarm_time(&parsed.alarm_name, &parsed.state_change_time)?,
            alarm: parsed.alarm_name,
        });
    }
    if notices.is_empty() {
        return Err(MalformedEvent("SNS event: Records is empty".into()));
    }
    Ok(Trigger::AlarmChange { notices })
}

/// Tells the payload's kind by its shape and parses it.
///
/// # Errors
/// [`MalformedEvent`] naming what was expected, for any payload the scaler does not accept.
pub fn parse(payload: Value) -> Result<Invocation, MalformedEvent> {
    let Some(object) = payload.as_object() else {
        return Err(MalformedEvent(format!(
            "expected a JSON object, got {}",
            match &payload {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        )));
    };
    let dry_run = object
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    if batch::is_sqs_batch(&payload) {
        return Err(batch::not_one_event());
    }
    let trigger = if object.contains_key("Records") {
        parse_sns(payload)?
    } else if object.contains_key("command") {
        let command: ManualCommand = serde_json::from_value(payload.clone())
            .map_err(|e| MalformedEvent::because("manual command", e))?;
        refuse_unknown_keys(&payload, &command)?;
        within("cluster", &command.cluster, ECS_NAME_LIMIT)?;
        within("service", &command.service, ECS_NAME_LIMIT)?;
        within(
            "reason",
            command.reason.as_deref().unwrap_or(""),
            REASON_LIMIT,
        )?;
        Trigger::Manual { command }
    } else if object.contains_key("alarmData") {
        let event: CloudWatchAlarm<Value, Value> = serde_json::from_value(payload)
            .map_err(|e| MalformedEvent::because("alarm action payload", e))?;
        Trigger::AlarmChange {
            notices: vec![notice_from_alarm_data(
                AlarmSource::AlarmAction,
                event.alarm_data,
            )?],
        }
    } else if let Some(detail_type) = object.get("detail-type").and_then(Value::as_str) {
        match detail_type {
            ALARM_DETAIL_TYPE => {
                let event: EventBridgeEvent<CloudWatchAlarmData<Value, Value>> =
                    serde_json::from_value(payload)
                        .map_err(|e| MalformedEvent::because("EventBridge alarm event", e))?;
                Trigger::AlarmChange {
                    notices: vec![notice_from_alarm_data(
                        AlarmSource::EventBridge,
                        event.detail,
                    )?],
                }
            }
            SCHEDULED_DETAIL_TYPE => {
                let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
                    .map_err(|e| MalformedEvent::because("scheduled event", e))?;
                let event_id = event
                    .id
                    .ok_or_else(|| MalformedEvent("scheduled event: missing id".into()))?;
                Trigger::Recheck { event_id }
            }
            other => {
                return Err(MalformedEvent::unsupported_detail_type(
                    other,
                    &[ALARM_DETAIL_TYPE, SCHEDULED_DETAIL_TYPE],
                ))
            }
        }
    } else {
        return Err(MalformedEvent::unrecognised(
            object,
            "an EventBridge alarm or scheduled event, an alarm action payload (alarmData), \
             an SNS alarm notification (Records), a manual command (command), \
             or an SQS batch of them (Records from aws:sqs)",
        ));
    };
    let dry_run = dry_run || matches!(&trigger, Trigger::Manual { command } if command.dry_run);
    Ok(Invocation { trigger, dry_run })
}
