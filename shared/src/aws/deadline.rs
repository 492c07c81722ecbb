//! Time-outs on every AWS call, from the invocation's deadline. Without them
//! a stalled answer holds a call until Lambda ends the invocation, which
//! then reports a time-out instead of the error, and nothing is recorded.
//!
//! Each call's operation time-out (all its attempts and their back-off) is
//! what remains of the invocation less [`ANSWER_RESERVE`], at most
//! [`MAX_OPERATION`]; each attempt gets at most [`MAX_ATTEMPT`] and half the
//! operation's time, so a hung first attempt leaves room for a retry. A call
//! that runs out fails as a time-out, which the adapters report as
//! retryable. Outside an invocation (tests, tools) the caps apply alone.
//!
//! The SDK settles each operation's time-outs after its interceptors have
//! read the request, and before the first attempt; [`DeadlineTimeouts`] is
//! an interceptor, added to every client an adapter is given, that sets them
//! from the deadline at that moment.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept back from the deadline: time to record a failure and answer.
pub const ANSWER_RESERVE: Duration = Duration::from_secs(1);
/// The longest one call may take, retries included.
pub const MAX_OPERATION: Duration = Duration::from_secs(30);
/// The longest one attempt may take.
pub const MAX_ATTEMPT: Duration = Duration::from_secs(10);
/// The least a call is given, however close the deadline: it then fails
/// fast rather than not at all.
const LEAST: Duration = Duration::from_millis(100);

/// The current invocation's deadline; Lambda runs one invocation at a time
/// in a sandbox.
static DEADLINE: Mutex<Option<Instant>> = Mutex::new(None);

/// The operation and attempt time-outs for a call made with `remaining`
/// time left in the invocation (`None` outside one).
pub fn timeouts_for(remaining: Option<Duration>) -> (Duration, Duration) {
    let operation = remaining.map_or(MAX_OPERATION, |left| {
        left.saturating_sub(ANSWER_RESERVE)
            .clamp(LEAST, MAX_OPERATION)
    });
    let attempt = (operation / 2).clamp(LEAST.min(operation), MAX_ATTEMPT);
    (operation, attempt)
}

/// Holds an invocation's deadline for the calls made while it lives.
#[derive(Debug)]
#[must_use = "the deadline is cleared when this is dropped"]
pub struct InvocationDeadline(());

impl InvocationDeadline {
    /// Sets the deadline from Lambda's (milliseconds since the epoch, as the
    /// runtime's context gives it).
    pub fn set(deadline_epoch_ms: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let left = Duration::from_millis(deadline_epoch_ms).saturating_sub(now);
        Self::within(left)
    }

    /// Sets the deadline `left` from now.
    pub fn within(left: Duration) -> Self {
        *DEADLINE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + left);
        Self(())
    }
}

impl Drop for InvocationDeadline {
    fn drop(&mut self) {
        *DEADLINE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

fn remaining() -> Option<Duration> {
    DEADLINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// `client` (an SDK client, whichever service) rebuilt with
/// [`DeadlineTimeouts`]: each SDK's `Client` and config are types of its own.
macro_rules! with_deadline {
    ($client:expr) => {{
        let client = $client;
        Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor($crate::aws::deadline::DeadlineTimeouts)
                .build(),
        )
    }};
}
pub(crate) use with_deadline;

/// The interceptor that gives each call its time-outs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineTimeouts;

impl DeadlineTimeouts {
    /// The time-outs for a call starting now.
    pub fn now() -> TimeoutConfig {
        let (operation, attempt) = timeouts_for(remaining());
        TimeoutConfig::builder()
            .operation_timeout(operation)
            .operation_attempt_timeout(attempt)
            .build()
    }
}

impl Intercept for DeadlineTimeouts {
    fn name(&self) -> &'static str {
        "DeadlineTimeouts"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The top layer: the SDK merges it over the client's own settings
        // (connect and read time-outs stay as they are).
        cfg.interceptor_state().store_put(Self::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_gets_what_remains_less_the_reserve_within_the_caps() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        for (remaining, operation, attempt) in [
            // Outside an invocation: the caps.
            (None, s(30), s(10)),
            // A 15-minute invocation's first call: the caps.
            (Some(s(900)), s(30), s(10)),
            // Eight seconds left: seven for the call, half for an attempt.
            (Some(s(8)), s(7), ms(3500)),
            // At the deadline: a tenth of a second, and it fails fast.
            (Some(ms(500)), ms(100), ms(100)),
            (Some(s(0)), ms(100), ms(100)),
        ] {
            assert_eq!(
                timeouts_for(remaining),
                (operation, attempt),
                "{remaining:?}"
            );
        }
    }

    #[test]
    fn the_deadline_lives_as_long_as_its_guard() {
        assert_eq!(remaining(), None);
        let guard = InvocationDeadline::within(Duration::from_secs(60));
        let left = remaining().expect("set");
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
        assert_eq!(
            DeadlineTimeouts::now().operation_timeout(),
            Some(MAX_OPERATION)
        );
        drop(guard);
        assert_eq!(remaining(), None);
    }
}
