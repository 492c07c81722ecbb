//! SQS batches. EventBridge rules send a function's events to one SQS FIFO
//! queue with one message group, and an event source mapping hands the
//! function up to ten messages at a time, in order, one batch in flight: the
//! serialisation reserved concurrency would give, without reserving any.
//! Each message's body is a payload the function also takes directly (an
//! EventBridge event, a scheduled event, a manual command); this module reads
//! the envelope, walks the messages one at a time, and answers with the
//! partial batch response the mapping asks for (`ReportBatchItemFailures`).
//!
//! # What is reported, and why
//!
//! Lambda deletes every message of the batch the response does not list, and
//! returns the listed ones to the queue.
//!
//! - **Handled**: not listed.
//! - **Retryable failure** (throttling, a 5xx, a timeout, a partial failure
//!   with a retryable part: [`InvocationError::is_retryable`]): the walk stops;
//!   that message and every later one are listed, so they come back in the
//!   group's order. The messages before it are not listed: they are done.
//! - **Non-retryable failure** (a malformed body, an unknown service, a
//!   rejected command, a missing resource): not listed. It would fail the same
//!   way on every delivery and, in a FIFO group, hold every message behind it
//!   until it reached the dead-letter queue. It is logged at ERROR as a
//!   rejected message, with its message id and the (capped) error, counted in
//!   the summary, and the walk goes on.
//! - **An unreadable record** (no `messageId`, no `body`, a body that is not
//!   JSON, another `eventSource`): a rejected message, as above. After a
//!   retryable failure it is listed like the rest when it has an id.
//!
//! The whole invocation fails, and Lambda returns every message, when the
//! function's configuration check fails (it runs before the first message, so
//! nothing is acted on until it passes), on a timeout or a crash. A payload
//! whose `Records` hold no SQS record is not a batch: it goes to the
//! function's own parser, which refuses what it does not accept as a
//! non-retryable malformed event.
//!
//! Redelivery never acts twice: a message handled before a timeout, or
//! delivered twice, meets the handlers' trigger keys and their reads of the
//! current state. Every return counts a receive, so the queue's
//! `maxReceiveCount` bounds how long an AWS outage holds the group before its
//! messages go to the dead-letter queue.

use crate::invocation::{capped, InvocationError, MalformedEvent, ECHO_LIMIT};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use tracing::Instrument;

/// The `eventSource` of a record an SQS event source mapping delivers.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// SQS message ids are UUIDs (36 characters); anything much longer is not one.
pub const MESSAGE_ID_LIMIT: usize = 128;

/// A FIFO batch holds at most ten messages; a hand-made one may hold more,
/// and the summary lists this many (the counts cover all).
pub const MESSAGES_LISTED: usize = 100;

/// A message the function can read: its id and its parsed body.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub message_id: String,
    /// The payload, as the function would take it directly.
    pub body: Value,
}

/// One record of a batch, in queue order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Readable(QueuedMessage),
    /// Cannot be handled; the id, when it could be read, is what a retry lists.
    Unreadable {
        message_id: Option<String>,
        error: MalformedEvent,
    },
}

impl Record {
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Record::Readable(message) => Some(&message.message_id),
            Record::Unreadable { message_id, .. } => message_id.as_deref(),
        }
    }
}

/// Whether `payload` is an SQS batch: `Records` holding at least one record
/// whose `eventSource` is `aws:sqs` (an SNS record says `EventSource`).
pub fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            records
                .iter()
                .any(|r| r.get("eventSource").and_then(Value::as_str) == Some(SQS_EVENT_SOURCE))
        })
}

/// The refusal of an SQS batch given to a function's parser as one event: a
/// batch is walked message by message, and one inside a message's body is
/// refused, not walked again.
pub fn not_one_event() -> MalformedEvent {
    MalformedEvent(
        "an SQS batch is not one event: its messages are handled in turn, and a message's body \
         cannot be another batch"
            .into(),
    )
}

/// The records of an SQS batch in order, or `None` when `payload` is not one.
pub fn records(payload: &Value) -> Option<Vec<Record>> {
    if !is_sqs_batch(payload) {
        return None;
    }
    let records = payload.get("Records").and_then(Value::as_array)?;
    Some(
        records
            .iter()
            .enumerate()
            .map(|(i, r)| read_record(i, r))
            .collect(),
    )
}

fn read_record(index: usize, record: &Value) -> Record {
    let unreadable = |message_id: Option<&str>, error: MalformedEvent| Record::Unreadable {
        message_id: message_id.map(str::to_string),
        error,
    };
    let at = format!("SQS batch: Records[{index}]");
    let Some(id) = record.get("messageId").and_then(Value::as_str) else {
        return unreadable(None, MalformedEvent(format!("{at}: no messageId")));
    };
    if id.is_empty() {
        return unreadable(None, MalformedEvent(format!("{at}: messageId is empty")));
    }
    // An id too long to be real is not repeated, nor listed.
    if let Err(e) = MalformedEvent::check_length(&format!("{at}: messageId"), id, MESSAGE_ID_LIMIT)
    {
        return unreadable(None, e);
    }
    let message = match SqsMessage::deserialize(record) {
        Ok(message) => message,
        Err(e) => return unreadable(Some(id), MalformedEvent::because(&at, e)),
    };
    let source = message.event_source.as_deref();
    if source != Some(SQS_EVENT_SOURCE) {
        let source = capped(source.unwrap_or("absent"), 64);
        return unreadable(
            Some(id),
            MalformedEvent(format!(
                "{at}: eventSource is {source:?}, not {SQS_EVENT_SOURCE:?}"
            )),
        );
    }
    let Some(body) = message.body else {
        return unreadable(Some(id), MalformedEvent(format!("{at}: no body")));
    };
    match serde_json::from_str(&body) {
        Ok(body) => Record::Readable(QueuedMessage {
            message_id: id.to_string(),
            body,
        }),
        Err(e) => unreadable(
            Some(id),
            MalformedEvent::because(&format!("{at}: the body is not JSON"), e),
        ),
    }
}

/// How one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Handled,
    /// Failed in a way no redelivery mends: dropped (logged at ERROR).
    Rejected,
    /// Failed in a way a retry can mend: listed for redelivery.
    Failed,
    /// Not tried, after a retryable failure: listed, so the order holds.
    Deferred,
}

/// One message in the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageOutcome {
    /// Absent for a record whose id could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub outcome: Outcome,
    /// The Lambda error type (`Retryable.AwsUnavailable`, `NonRetryable.MalformedEvent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened to the batch, message by message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchSummary {
    pub handled: usize,
    pub rejected: usize,
    pub failed: usize,
    pub deferred: usize,
    /// The first [`MESSAGES_LISTED`] messages, in order.
    pub messages: Vec<MessageOutcome>,
    /// Messages past the listed ones (counted above).
    #[serde(skip_serializing_if = "is_zero")]
    pub unlisted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The answer to an SQS batch: `batchItemFailures` at the top level, as the
/// event source mapping reads it, and the summary beside it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResponse {
    #[serde(flatten)]
    pub response: SqsBatchResponse,
    pub summary: BatchSummary,
}

impl BatchResponse {
    /// The message ids listed for redelivery, in order.
    pub fn failed_ids(&self) -> Vec<&str> {
        self.response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    fn note(&mut self, message_id: Option<&str>, outcome: Outcome, error: Option<Diagnostic>) {
        let summary = &mut self.summary;
        match outcome {
            Outcome::Handled => summary.handled += 1,
            Outcome::Rejected => summary.rejected += 1,
            Outcome::Failed => summary.failed += 1,
            Outcome::Deferred => summary.deferred += 1,
        }
        if let (Outcome::Failed | Outcome::Deferred, Some(id)) = (outcome, message_id) {
            self.response.add_failure(id);
        }
        if summary.messages.len() >= MESSAGES_LISTED {
            summary.unlisted += 1;
            return;
        }
        let (error_type, error) = error
            .map(|d| (d.error_type, capped(&d.error_message, ECHO_LIMIT)))
            .unzip();
        summary.messages.push(MessageOutcome {
            message_id: message_id.map(str::to_string),
            outcome,
            error_type,
            error,
        });
    }

    fn reject(&mut self, message_id: Option<&str>, error: InvocationError) {
        let diagnostic = Diagnostic::from(error);
        tracing::error!(
            message_id = message_id.unwrap_or("(unreadable)"),
            error_type = %diagnostic.error_type,
            error = %capped(&diagnostic.error_message, ECHO_LIMIT),
            "rejected message: it fails on every delivery, so it is dropped, not returned"
        );
        self.note(message_id, Outcome::Rejected, Some(diagnostic));
    }
}

/// Walks `records` in order through `handle`, one at a time, and answers with
/// the partial batch response (the rules are in the module's documentation).
pub async fn walk<F, Fut>(records: Vec<Record>, mut handle: F) -> BatchResponse
where
    F: FnMut(QueuedMessage) -> Fut,
    Fut: Future<Output = Result<(), InvocationError>>,
{
    walk_runs(
        records,
        |_| false,
        |mut run: Vec<QueuedMessage>| {
            let handled = run.pop().map(&mut handle);
            async move {
                match handled {
                    Some(handled) => vec![handled.await],
                    None => Vec::new(),
                }
            }
        },
    )
    .await
}

/// [`walk`], with consecutive messages `joins` accepts handed to `handle`
/// together, as one run, so that their work is shared (a run of task events
/// reads each target group once); every other message is a run of one.
/// `handle` answers each message of its run, in order. A message's failure
/// counts as if it had been handled alone: a retryable one lists it, and
/// every message after it in the batch, for redelivery.
pub async fn walk_runs<J, F, Fut>(records: Vec<Record>, joins: J, mut handle: F) -> BatchResponse
where
    J: Fn(&QueuedMessage) -> bool,
    F: FnMut(Vec<QueuedMessage>) -> Fut,
    Fut: Future<Output = Vec<Result<(), InvocationError>>>,
{
    let mut answer = BatchResponse {
        response: SqsBatchResponse::default(),
        summary: BatchSummary::default(),
    };
    let mut records = records.into_iter().peekable();
    while let Some(record) = records.next() {
        let first = match record {
            Record::Readable(message) => message,
            Record::Unreadable { message_id, error } => {
                answer.reject(message_id.as_deref(), error.into());
                continue;
            }
        };
        let mut run = vec![first];
        if joins(&run[0]) {
            while let Some(Record::Readable(next)) = records.peek() {
                if !joins(next) {
                    break;
                }
                if let Some(Record::Readable(next)) = records.next() {
                    run.push(next);
                }
            }
        }
        let ids: Vec<String> = run.iter().map(|m| m.message_id.clone()).collect();
        let span = tracing::info_span!("message", message_id = %ids[0], run = ids.len());
        let mut results = handle(run).instrument(span).await.into_iter();
        let mut ids = ids.into_iter();
        while let Some(id) = ids.next() {
            let result = results.next().unwrap_or(Ok(()));
            match result {
                Ok(()) => answer.note(Some(&id), Outcome::Handled, None),
                Err(error) if error.is_retryable() => {
                    let diagnostic = Diagnostic::from(error);
                    let later_in_run: Vec<String> = ids.by_ref().collect();
                    let later: Vec<Record> = records.by_ref().collect();
                    tracing::warn!(
                        message_id = %id,
                        error_type = %diagnostic.error_type,
                        error = %capped(&diagnostic.error_message, ECHO_LIMIT),
                        later = later_in_run.len() + later.len(),
                        "message failed and may succeed later: it and the messages after it go back to the queue, in order"
                    );
                    answer.note(Some(&id), Outcome::Failed, Some(diagnostic));
                    for id in later_in_run {
                        answer.note(Some(&id), Outcome::Deferred, None);
                    }
                    for record in later {
                        match record {
                            Record::Unreadable {
                                message_id: None,
                                error,
                            } => answer.reject(None, error.into()),
                            other => answer.note(other.message_id(), Outcome::Deferred, None),
                        }
                    }
                }
                Err(error) => answer.reject(Some(&id), error),
            }
        }
    }
    let summary = &answer.summary;
    tracing::info!(
        handled = summary.handled,
        rejected = summary.rejected,
        failed = summary.failed,
        deferred = summary.deferred,
        "batch done"
    );
    answer
}

/// What an invocation answers: the handler's own record for a payload sent
/// directly (exactly as without a queue), the partial batch response for an
/// SQS batch.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer<R> {
    Direct(R),
    Batch(BatchResponse),
}

/// Hands a direct payload to `handle` with no message id, or each message of
/// an SQS batch with its id (see [`walk`]).
///
/// # Errors
/// A direct payload's error, as `handle` returns it. A batch does not fail as
/// a whole: its failures are in the response.
pub async fn dispatch<R, F, Fut>(
    payload: Value,
    mut handle: F,
) -> Result<Answer<R>, InvocationError>
where
    F: FnMut(Value, Option<String>) -> Fut,
    Fut: Future<Output = Result<R, InvocationError>>,
{
    let Some(records) = records(&payload) else {
        return handle(payload, None).await.map(Answer::Direct);
    };
    let answer = walk(records, |message| {
        let handled = handle(message.body, Some(message.message_id));
        async move { handled.await.map(drop) }
    })
    .await;
    Ok(Answer::Batch(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::ports::{FailureKind, PortError};
    use proptest::prelude::*;
    use serde_json::json;
    use std::future::ready;

    /// A record as an event source mapping delivers it from a FIFO queue.
    fn sqs(id: &str, body: &Value) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": format!("AQEB{id}"),
            "body": body.to_string(),
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1795255360000",
                "SequenceNumber": "18891046518032384001",
                "MessageGroupId": "ecs-control",
                "SenderId": "AROAEXAMPLE:events",
                "MessageDeduplicationId": id,
                "ApproximateFirstReceiveTimestamp": "1795255360010"
            },
            "messageAttributes": {},
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ecs-scaler.fifo",
            "awsRegion": "us-east-1"
        })
    }

    fn batch(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    /// A message whose handling ends as `script` says.
    fn scripted(id: &str, script: &str) -> Value {
        sqs(id, &json!({ "script": script }))
    }

    fn throttled() -> InvocationError {
        InvocationError::Aws(PortError::new(
            FailureKind::Retryable,
            "ecs:UpdateService",
            "Rate exceeded",
        ))
    }

    fn rejected() -> InvocationError {
        InvocationError::RejectedCommand("no policy resizes demo/payments".into())
    }

    fn outcome_of(body: &Value) -> Result<(), InvocationError> {
        match body["script"].as_str() {
            Some("retry") => Err(throttled()),
            Some("reject") => Err(rejected()),
            _ => Ok(()),
        }
    }

    /// Walks `payload` with the scripted handler: the answer and the ids it was handed.
    async fn run(payload: &Value) -> (BatchResponse, Vec<String>) {
        let records = records(payload).expect("an SQS batch");
        let mut seen = Vec::new();
        let answer = walk(records, |m| {
            seen.push(m.message_id.clone());
            ready(outcome_of(&m.body))
        })
        .await;
        (answer, seen)
    }

    fn counts(summary: &BatchSummary) -> [usize; 4] {
        [
            summary.handled,
            summary.rejected,
            summary.failed,
            summary.deferred,
        ]
    }

    #[tokio::test]
    async fn a_batch_handled_whole_lists_nothing() {
        let payload = batch(vec![
            scripted("a", "ok"),
            scripted("b", "ok"),
            scripted("c", "ok"),
        ]);
        let (answer, seen) = run(&payload).await;
        assert!(answer.failed_ids().is_empty());
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!(counts(&answer.summary), [3, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_retryable_failure_lists_that_message_and_every_later_one_in_order() {
        let payload = batch(vec![
            scripted("a", "ok"),
            scripted("b", "retry"),
            scripted("c", "ok"),
            scripted("d", "reject"),
        ]);
        let (answer, seen) = run(&payload).await;
        assert_eq!(answer.failed_ids(), ["b", "c", "d"]);
        assert_eq!(seen, ["a", "b"], "nothing after the failure is tried");
        assert_eq!(counts(&answer.summary), [1, 0, 1, 2]);
        let b = &answer.summary.messages[1];
        assert_eq!(b.outcome, Outcome::Failed);
        assert_eq!(b.error_type.as_deref(), Some("Retryable.AwsUnavailable"));
    }

    #[tokio::test]
    async fn a_non_retryable_failure_is_dropped_and_the_walk_goes_on() {
        let payload = batch(vec![
            scripted("a", "reject"),
            scripted("b", "ok"),
            scripted("c", "reject"),
        ]);
        let (answer, seen) = run(&payload).await;
        assert!(answer.failed_ids().is_empty());
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!(counts(&answer.summary), [1, 2, 0, 0]);
        let a = &answer.summary.messages[0];
        assert_eq!(
            (a.message_id.as_deref(), a.outcome, a.error_type.as_deref()),
            (
                Some("a"),
                Outcome::Rejected,
                Some("NonRetryable.RejectedCommand")
            )
        );
        assert!(a
            .error
            .as_deref()
            .is_some_and(|e| e.contains("demo/payments")));
    }

    #[tokio::test]
    async fn only_errors_lambda_would_retry_stop_the_walk() {
        let not_found = PortError::new(FailureKind::NotFound, "ecs:DescribeServices", "MISSING");
        let refused = PortError::new(FailureKind::Rejected, "ecs:UpdateService", "Invalid");
        let partial = |retryable| InvocationError::PartialFailure {
            failed: 1,
            total: 2,
            unit: "services",
            retryable,
            detail: "ecs:UpdateService: Rate exceeded".into(),
        };
        let cases: Vec<(InvocationError, bool)> = vec![
            (throttled(), true),
            (partial(true), true),
            (partial(false), false),
            (InvocationError::Aws(not_found), false),
            (InvocationError::Aws(refused), false),
            (rejected(), false),
            (MalformedEvent("unrecognised event".into()).into(), false),
            (
                ConfigError::new("policies[0].alarm", "no alarm").into(),
                false,
            ),
        ];
        for (error, listed) in cases {
            let name = error.to_string();
            let payload = batch(vec![scripted("a", "x"), scripted("b", "ok")]);
            let mut error = Some(error);
            let answer = walk(records(&payload).expect("batch"), |m| {
                ready(match m.message_id.as_str() {
                    "a" => error.take().map_or(Ok(()), Err),
                    _ => Ok(()),
                })
            })
            .await;
            let expected: &[&str] = if listed { &["a", "b"] } else { &[] };
            assert_eq!(answer.failed_ids(), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_record_is_rejected_and_the_rest_are_handled() {
        let mut no_id = scripted("x", "ok");
        no_id["messageId"].take();
        let mut no_body = scripted("c", "ok");
        no_body.as_object_mut().map(|r| r.remove("body"));
        let mut not_json = scripted("b", "ok");
        not_json["body"] = "{not json".into();
        let mut from_sns = scripted("d", "ok");
        from_sns["eventSource"] = "aws:sns".into();
        let payload = batch(vec![
            no_id,
            scripted("a", "ok"),
            not_json,
            no_body,
            from_sns,
            json!("not a record"),
            scripted("e", "ok"),
        ]);
        let (answer, seen) = run(&payload).await;
        assert!(answer.failed_ids().is_empty());
        assert_eq!(seen, ["a", "e"]);
        assert_eq!(counts(&answer.summary), [2, 5, 0, 0]);
        let says = |i: usize| answer.summary.messages[i].error.clone().unwrap_or_default();
        assert!(says(0).contains("Records[0]: no messageId"), "{}", says(0));
        assert!(
            says(2).contains("Records[2]: the body is not JSON"),
            "{}",
            says(2)
        );
        assert!(says(3).contains("Records[3]: no body"), "{}", says(3));
        assert!(
            says(4).contains("\"aws:sns\", not \"aws:sqs\""),
            "{}",
            says(4)
        );
        assert_eq!(
            answer.summary.messages[2].error_type.as_deref(),
            Some("NonRetryable.MalformedEvent")
        );
    }

    #[tokio::test]
    async fn after_a_retryable_failure_unreadable_records_are_listed_when_they_have_an_id() {
        let mut no_id = scripted("x", "ok");
        no_id["messageId"] = json!(7);
        let mut not_json = scripted("c", "ok");
        not_json["body"] = "[1,".into();
        let payload = batch(vec![scripted("a", "retry"), no_id, not_json]);
        let (answer, seen) = run(&payload).await;
        assert_eq!(answer.failed_ids(), ["a", "c"]);
        assert_eq!(seen, ["a"]);
        assert_eq!(counts(&answer.summary), [0, 1, 1, 1]);
    }

    #[tokio::test]
    async fn an_id_too_long_to_be_real_is_neither_listed_nor_repeated() {
        let long = "m".repeat(10_000);
        let payload = batch(vec![scripted("a", "retry"), scripted(&long, "ok")]);
        let (answer, _) = run(&payload).await;
        assert_eq!(answer.failed_ids(), ["a"]);
        let text = serde_json::to_string(&answer.summary).expect("serialises");
        assert!(text.contains("10000 characters"), "{text}");
        assert!(text.len() < 1_000, "{}", text.len());
    }

    #[tokio::test]
    async fn the_summary_stays_bounded_whatever_the_batch_holds() {
        let payload = batch((0..150).map(|i| scripted(&format!("m{i}"), "ok")).collect());
        let (answer, _) = run(&payload).await;
        assert_eq!(answer.summary.handled, 150);
        assert_eq!(answer.summary.messages.len(), MESSAGES_LISTED);
        assert_eq!(answer.summary.unlisted, 50);

        let huge = "x".repeat(1 << 20);
        let payload = batch(vec![scripted("a", "x")]);
        let answer = walk(records(&payload).expect("batch"), |_| {
            ready(Err(InvocationError::RejectedCommand(huge.clone())))
        })
        .await;
        let error = answer.summary.messages[0].error.clone().unwrap_or_default();
        assert!(error.len() < 1_000, "{}", error.len());
    }

    #[test]
    fn only_records_from_sqs_make_a_batch() {
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]});
        let eventbridge = json!({"detail-type": "Scheduled Event", "id": "1", "detail": {}});
        for payload in [
            sns,
            eventbridge,
            json!({"Records": 5}),
            json!({"Records": []}),
            json!({"Records": [{"messageId": "a", "body": "{}"}]}),
            json!([1, 2]),
            json!(null),
        ] {
            assert!(records(&payload).is_none(), "{payload}");
        }
        let payload = batch(vec![json!({}), scripted("a", "ok")]);
        let read = records(&payload).expect("one SQS record makes a batch");
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[1],
            Record::Readable(QueuedMessage {
                message_id: "a".into(),
                body: json!({"script": "ok"}),
            })
        );
    }

    #[tokio::test]
    async fn a_direct_payload_is_handled_as_before_and_answered_with_its_own_record() {
        let payload = json!({"command": "reconcile"});
        let answer = dispatch(payload.clone(), |body, message_id| {
            ready(Ok::<_, InvocationError>(
                json!({"body": body, "id": message_id}),
            ))
        })
        .await
        .expect("handled");
        let json = serde_json::to_value(&answer).expect("serialises");
        assert_eq!(json, json!({"body": payload, "id": null}));

        let refused = dispatch(payload, |_, _| ready(Err::<Value, _>(rejected()))).await;
        assert!(matches!(refused, Err(InvocationError::RejectedCommand(_))));
    }

    #[tokio::test]
    async fn a_batch_is_answered_with_batch_item_failures_at_the_top_level() {
        let payload = batch(vec![
            scripted("a", "ok"),
            scripted("b", "retry"),
            scripted("c", "ok"),
        ]);
        let mut handed = Vec::new();
        let answer = dispatch(payload, |body, message_id| {
            handed.push((message_id, body.clone()));
            ready(outcome_of(&body).map(|()| "a record"))
        })
        .await
        .expect("a batch answers");
        assert_eq!(
            handed,
            [
                (Some("a".to_string()), json!({"script": "ok"})),
                (Some("b".to_string()), json!({"script": "retry"})),
            ]
        );
        let json = serde_json::to_value(&answer).expect("serialises");
        assert_eq!(
            json["batchItemFailures"],
            json!([{"itemIdentifier": "b"}, {"itemIdentifier": "c"}])
        );
        assert_eq!(
            json["summary"]["messages"],
            json!([
                {"message_id": "a", "outcome": "handled"},
                {"message_id": "b", "outcome": "failed",
                 "error_type": "Retryable.AwsUnavailable",
                 "error": "ecs:UpdateService failed: Rate exceeded"},
                {"message_id": "c", "outcome": "deferred"},
            ])
        );
    }

    /// What a test record is made to do.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Script {
        Ok,
        Retry,
        Reject,
        Unreadable,
        NoId,
    }

    fn script() -> impl Strategy<Value = Script> {
        prop_oneof![
            4 => Just(Script::Ok),
            1 => Just(Script::Retry),
            2 => Just(Script::Reject),
            1 => Just(Script::Unreadable),
            1 => Just(Script::NoId),
        ]
    }

    proptest! {
        /// FIFO order holds whatever the batch: what goes back is everything
        /// from the first retryable failure on (each that has an id), nothing
        /// is tried after it, and without one nothing goes back.
        #[test]
        fn what_goes_back_is_everything_from_the_first_retryable_failure(
            scripts in prop::collection::vec(script(), 0..12)
        ) {
            let ids: Vec<String> = (0..scripts.len()).map(|i| format!("m{i}")).collect();
            let record = |script: &Script, id: &str| match script {
                Script::Ok => scripted(id, "ok"),
                Script::Retry => scripted(id, "retry"),
                Script::Reject => scripted(id, "reject"),
                Script::Unreadable => {
                    let mut r = scripted(id, "ok");
                    r["body"] = json!("not json");
                    r
                }
                Script::NoId => json!({"eventSource": "aws:sqs", "body": "{}"}),
            };
            // The last record always says aws:sqs, so every batch is read as one.
            let mut scripts = scripts;
            let mut ids = ids;
            scripts.push(Script::Ok);
            ids.push("last".into());
            let payload = batch(scripts.iter().zip(&ids).map(|(s, id)| record(s, id)).collect());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (answer, seen) = runtime.block_on(run(&payload));

            let first_retry = scripts.iter().position(|s| *s == Script::Retry);
            let last_tried = first_retry.unwrap_or(scripts.len() - 1);
            let tried: Vec<&str> = ids
                .iter()
                .zip(&scripts)
                .take(last_tried + 1)
                .filter(|(_, s)| matches!(s, Script::Ok | Script::Retry | Script::Reject))
                .map(|(id, _)| id.as_str())
                .collect();
            prop_assert_eq!(seen.iter().map(String::as_str).collect::<Vec<_>>(), tried);
            let back: Vec<&str> = match first_retry {
                None => Vec::new(),
                Some(at) => ids[at..]
                    .iter()
                    .zip(&scripts[at..])
                    .filter(|(_, s)| **s != Script::NoId)
                    .map(|(id, _)| id.as_str())
                    .collect(),
            };
            prop_assert_eq!(answer.failed_ids(), back);
            let s = &answer.summary;
            prop_assert_eq!(s.handled + s.rejected + s.failed + s.deferred, scripts.len());
            prop_assert_eq!(s.failed, usize::from(first_retry.is_some()));
        }
    }
}
