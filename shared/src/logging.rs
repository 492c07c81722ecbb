//! The functions' log set-up, as Lambda's advanced logging controls ask:
//! `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) as one level, INFO by default, and
//! JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`. One level for every
//! target, not per-target directives: their filter brings a regex engine and
//! its Unicode tables into every binary.
//!
//! Every JSON line a function writes (tracing lines, decision lines, metric
//! lines, journal lines) carries the invocation's context under the names
//! Powertools for AWS Lambda uses (`function_request_id`, `cold_start`,
//! `xray_trace_id`, `function_name`, `function_version`), so Logs Insights
//! joins a line to its request and queries written for Powertools work here.

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the subscriber; a second call changes nothing.
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map_or(LevelFilter::INFO, |value| level_of(&value));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // An error means a subscriber is already set: keep it.
    let _ = if json {
        tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_max_level(level)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_max_level(level)
            .try_init()
    };
}

/// The invocation being handled. The functions serve one invocation at a
/// time per process (a current-thread runtime), so one slot is enough; a
/// global rather than a thread-local, since a line may come from a blocking
/// thread the SDK started.
static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
/// Whether the process has begun an invocation: the first one is the cold start.
static INVOKED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone)]
struct Current {
    request_id: String,
    xray_trace_id: Option<String>,
    cold_start: bool,
}

/// The invocation a function is handling, for its log lines; made by the
/// `main.rs` closure from the event's context before anything else, and
/// forgotten when dropped, so lines between invocations name none.
#[derive(Debug)]
#[must_use = "the invocation is forgotten when this is dropped"]
pub struct InvocationLog(());

impl InvocationLog {
    /// Notes `context`'s request and trace id; the process's first
    /// invocation is its cold start.
    pub fn begin(context: &lambda_runtime::Context) -> Self {
        let current = Current {
            request_id: context.request_id.clone(),
            xray_trace_id: context
                .xray_trace_id
                .clone()
                .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok())
                .filter(|id| !id.is_empty()),
            cold_start: !INVOKED.swap(true, Ordering::SeqCst),
        };
        *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(current);
        Self(())
    }
}

impl Drop for InvocationLog {
    fn drop(&mut self) {
        *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The function's name and version, as Lambda sets them for the process.
fn function() -> &'static (Option<String>, Option<String>) {
    static FUNCTION: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
    FUNCTION.get_or_init(|| {
        (
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            std::env::var("AWS_LAMBDA_FUNCTION_VERSION").ok(),
        )
    })
}

/// What is known of the function and its invocation, in Powertools' names.
/// Outside an invocation there is no request or trace id; before the first
/// one, `cold_start` is true (the line belongs to the cold start).
pub fn context_fields() -> Map<String, Value> {
    let mut fields = Map::new();
    let (name, version) = function();
    if let Some(name) = name {
        fields.insert("function_name".into(), name.as_str().into());
    }
    if let Some(version) = version {
        fields.insert("function_version".into(), version.as_str().into());
    }
    let current = CURRENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match current {
        Some(current) => {
            fields.insert("function_request_id".into(), current.request_id.into());
            fields.insert("cold_start".into(), current.cold_start.into());
            if let Some(trace) = current.xray_trace_id {
                fields.insert("xray_trace_id".into(), trace.into());
            }
        }
        None => {
            fields.insert(
                "cold_start".into(),
                (!INVOKED.load(Ordering::SeqCst)).into(),
            );
        }
    }
    fields
}

/// `line` with the context's fields added after its own (a field the line
/// already has is kept).
pub fn with_context(mut line: Value) -> Value {
    if let Some(object) = line.as_object_mut() {
        for (key, value) in context_fields() {
            object.entry(key).or_insert(value);
        }
    }
    line
}

/// Writes `line`, with the context's fields, as one line on stdout.
pub fn write_line(line: Value) {
    println!("{}", with_context(line));
}

/// Above this, a tracing line's texts are cut (CloudWatch Logs keeps events
/// up to 256 KB; a line past it would be split or dropped).
const TRACING_LINE_LIMIT: usize = 128 * 1024;
/// How many characters of each text an over-long tracing line keeps.
const TEXT_KEPT: usize = 4096;

/// Tracing events as one JSON object a line: `level`, the text at the
/// top-level `message` (Logs Insights and Powertools' queries read it there),
/// the invocation's context, then the fields of the enclosing spans and of the
/// event, all at the top level.
#[derive(Debug, Clone, Copy)]
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Map::new();
        // The runtime's own span repeats the request and trace ids under other names.
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            if span.metadata().target().starts_with("lambda_runtime") {
                continue;
            }
            if let Some(formatted) = span.extensions().get::<FormattedFields<N>>() {
                if let Ok(Value::Object(span_fields)) = serde_json::from_str(formatted) {
                    fields.extend(span_fields);
                }
            }
        }
        let mut visitor = FieldsVisitor(Map::new());
        event.record(&mut visitor);
        fields.extend(visitor.0);
        let line = tracing_line(event.metadata().level().as_str(), fields);
        writeln!(writer, "{line}")
    }
}

/// One tracing line from its level and fields (`message` among them).
fn tracing_line(level: &str, mut fields: Map<String, Value>) -> Value {
    let mut line = Map::new();
    line.insert("level".into(), level.into());
    line.insert(
        "message".into(),
        fields.remove("message").unwrap_or_else(|| "".into()),
    );
    line.extend(context_fields());
    for (key, value) in fields {
        // A field named like one of the line's own is kept under another name.
        let key = if line.contains_key(&key) {
            format!("field_{key}")
        } else {
            key
        };
        line.insert(key, value);
    }
    let mut line = Value::Object(line);
    if line.to_string().len() > TRACING_LINE_LIMIT {
        cut_texts(&mut line);
    }
    line
}

/// Cuts every text in `value` to [`TEXT_KEPT`] characters.
fn cut_texts(value: &mut Value) {
    match value {
        Value::String(text) => *text = crate::echo::capped(text, TEXT_KEPT),
        Value::Array(items) => items.iter_mut().for_each(cut_texts),
        Value::Object(object) => object.values_mut().for_each(cut_texts),
        _ => {}
    }
}

/// An event's fields as JSON values: numbers and booleans as themselves,
/// anything else as its text.
struct FieldsVisitor(Map<String, Value>);

impl Visit for FieldsVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// `debug`, `WARN`, `off`…; anything else (empty, a per-target directive) is INFO.
fn level_of(value: &str) -> LevelFilter {
    match value.trim() {
        "" => LevelFilter::INFO,
        level => level.parse().unwrap_or(LevelFilter::INFO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_is_read_in_any_case_and_anything_else_is_info() {
        assert_eq!(level_of("debug"), LevelFilter::DEBUG);
        assert_eq!(level_of("WARN"), LevelFilter::WARN);
        assert_eq!(level_of(" off "), LevelFilter::OFF);
        assert_eq!(level_of("aws_smithy=debug"), LevelFilter::INFO);
        assert_eq!(level_of(""), LevelFilter::INFO);
    }

    /// Everything written through a JSON-lines subscriber while `f` runs.
    fn json_lines(f: impl FnOnce()) -> Vec<Value> {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    // The only test that begins invocations: the context is the process's.
    #[test]
    fn lines_carry_the_message_on_top_and_the_invocation_they_belong_to() {
        let mut direct = Value::Null;
        let lines = json_lines(|| {
            tracing::error!("invalid configuration: policies[0].steps");
            let mut context = lambda_runtime::Context::default();
            context.request_id = "request-1".into();
            context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
            {
                let _invocation = InvocationLog::begin(&context);
                let span = tracing::info_span!("message", message_id = "m-1");
                let _entered = span.enter();
                tracing::info!(cluster = "demo", from = 2, to = 5, level = "mine", "scaled");
            }
            tracing::warn!("between invocations");
            context.request_id = "request-2".into();
            context.xray_trace_id = None;
            let _invocation = InvocationLog::begin(&context);
            tracing::info!(error = %"x".repeat(300_000), "a huge error");
            direct = with_context(serde_json::json!({"message": "journal", "cold_start": "own"}));
        });
        assert_eq!(lines.len(), 4, "{lines:#?}");
        // At cold start: the text on top, no request yet.
        assert_eq!(
            lines[0]["message"],
            "invalid configuration: policies[0].steps"
        );
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0]["cold_start"], true);
        assert!(
            lines[0].get("function_request_id").is_none(),
            "{}",
            lines[0]
        );
        // In the first invocation: its ids, the span's and the event's fields on top.
        let first = &lines[1];
        assert_eq!(first["message"], "scaled");
        assert_eq!(first["function_request_id"], "request-1");
        assert_eq!(first["cold_start"], true);
        assert_eq!(
            first["xray_trace_id"],
            "Root=1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(
            (first["from"].as_i64(), first["to"].as_i64()),
            (Some(2), Some(5))
        );
        assert_eq!(
            (&first["cluster"], &first["message_id"]),
            (&"demo".into(), &"m-1".into())
        );
        assert_eq!(
            (&first["level"], &first["field_level"]),
            (&"INFO".into(), &"mine".into())
        );
        assert!(first.get("fields").is_none(), "{first}");
        // Between invocations, none; the second is warm and has no trace.
        assert!(
            lines[2].get("function_request_id").is_none(),
            "{}",
            lines[2]
        );
        assert_eq!(lines[2]["cold_start"], false);
        assert_eq!(lines[3]["function_request_id"], "request-2");
        assert_eq!(lines[3]["cold_start"], false);
        assert!(lines[3].get("xray_trace_id").is_none(), "{}", lines[3]);
        // An over-long line keeps the start of its texts.
        assert!(
            lines[3].to_string().len() < 10_000,
            "{}",
            lines[3].to_string().len()
        );
        assert_eq!(lines[3]["message"], "a huge error");
        // A line written directly gets the same context, its own fields kept.
        assert_eq!(
            (&direct["function_request_id"], &direct["cold_start"]),
            (&"request-2".into(), &"own".into())
        );
    }
}
