//! Checks of the configuration against AWS that run with the first event, not
//! before the function asks for it: the function is ready as soon as its
//! document parses (on Lambda, a cold start is usually for an event already
//! waiting, so the reads cost that event what they would have cost the cold
//! start). No event is acted on before the check passes; while it fails, each
//! invocation fails with its error (`NonRetryable.Configuration`, naming the
//! field), and the next one checks again, as a failed cold start would have.

use crate::config::ConfigError;
use crate::invocation::InvocationError;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::Mutex;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), ConfigError>> + Send>>;

/// A configuration check run with the first event, and again with each event
/// until it passes.
pub struct StartupCheck {
    passed: Mutex<bool>,
    check: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl StartupCheck {
    /// Keeps `check` for the first event; nothing runs yet.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConfigError>> + Send + 'static,
    {
        Self {
            passed: Mutex::new(false),
            check: Box::new(move || Box::pin(check())),
        }
    }

    /// Runs the check unless it has passed before.
    ///
    /// # Errors
    /// [`InvocationError::Configuration`] while the configuration disagrees with AWS.
    pub async fn passed(&self) -> Result<(), InvocationError> {
        let mut passed = self.passed.lock().await;
        if *passed {
            return Ok(());
        }
        match (self.check)().await {
            Ok(()) => {
                *passed = true;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the configuration disagrees with AWS");
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A check that fails its first `failures` runs, counting every run.
    fn counting(failures: usize) -> (StartupCheck, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let check = StartupCheck::new(move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < failures {
                    Err(ConfigError::new(
                        "policies[0].alarm",
                        "no alarm is named web-cpu",
                    ))
                } else {
                    Ok(())
                }
            }
        });
        (check, runs)
    }

    #[tokio::test]
    async fn a_passed_check_runs_once() {
        let (check, runs) = counting(0);
        for _ in 0..3 {
            check.passed().await.expect("passed");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_check_fails_the_invocation_naming_the_field_and_runs_again_on_the_next() {
        let (check, runs) = counting(2);
        for _ in 0..2 {
            let err = check.passed().await.expect_err("disagrees");
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("policies[0].alarm"), "{err}");
            assert_eq!(
                lambda_runtime::Diagnostic::from(err).error_type,
                "NonRetryable.Configuration"
            );
        }
        check.passed().await.expect("fixed");
        check.passed().await.expect("still passed");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
