//! Helpers the functions' tests share (feature `testing`, for dev-dependencies
//! only): hostile inputs and what their refusal must look like.

use crate::invocation::InvocationError;
use lambda_runtime::Diagnostic;

/// `event` with `change` made to it.
pub fn changed(
    mut event: serde_json::Value,
    change: &dyn Fn(&mut serde_json::Value),
) -> serde_json::Value {
    change(&mut event);
    event
}

/// A refusal says `says`, is of `error_type`, and does not echo a hostile
/// input whole (under 1,000 characters, whatever it was given).
///
/// # Panics
/// When any of that does not hold: this is a test assertion.
#[allow(clippy::panic)] // an assertion
pub fn assert_clear_refusal(err: InvocationError, says: &str, error_type: &str) {
    let message = err.to_string();
    assert!(
        message.contains(says),
        "{says}: {}",
        &message[..message.len().min(300)]
    );
    assert!(message.len() < 1_000, "echoed {} bytes", message.len());
    assert_eq!(Diagnostic::from(err).error_type, error_type, "{says}");
}
