//! Checks of the configuration against AWS that run beside the wait for the
//! first event, not before it: the function is ready for its first event as
//! soon as its document parses, and the check's reads overlap the runtime
//! handing that event over. Every invocation waits for the check to have
//! passed before acting; while it fails, each invocation fails with its error
//! (`NonRetryable.Configuration`, naming the field), and the next one checks
//! again, as a failed cold start would have.

use crate::config::ConfigError;
use crate::invocation::InvocationError;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), ConfigError>> + Send>>;

enum State {
    Running(JoinHandle<Result<(), ConfigError>>),
    Passed,
    Failed,
}

/// A configuration check started at cold start.
pub struct StartupCheck {
    state: Mutex<State>,
    check: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl StartupCheck {
    /// Starts `check` on the runtime now; it runs whenever the function waits.
    pub fn start<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConfigError>> + Send + 'static,
    {
        let first = tokio::spawn(check());
        Self {
            state: Mutex::new(State::Running(first)),
            check: Box::new(move || Box::pin(check())),
        }
    }

    /// Waits for the check; once passed, it is not run again.
    ///
    /// # Errors
    /// [`InvocationError::Configuration`] while the configuration disagrees with AWS.
    pub async fn passed(&self) -> Result<(), InvocationError> {
        let mut state = self.state.lock().await;
        let outcome = match std::mem::replace(&mut *state, State::Failed) {
            State::Passed => Ok(()),
            // A check that panicked proved nothing either way: check again.
            State::Running(first) => match first.await {
                Ok(outcome) => outcome,
                Err(_) => (self.check)().await,
            },
            State::Failed => (self.check)().await,
        };
        match outcome {
            Ok(()) => {
                *state = State::Passed;
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
        let check = StartupCheck::start(move || {
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
