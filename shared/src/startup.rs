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
use tokio::sync::Mutex;

/// Whether the configuration check has passed in this process.
#[derive(Debug, Default)]
pub struct StartupCheck {
    passed: Mutex<bool>,
}

impl StartupCheck {
    /// Runs `check` unless a check has passed before.
    ///
    /// # Errors
    /// [`InvocationError::Configuration`] while the configuration disagrees with AWS.
    pub async fn passed<F, Fut>(&self, check: F) -> Result<(), InvocationError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), ConfigError>>,
    {
        let mut passed = self.passed.lock().await;
        if *passed {
            return Ok(());
        }
        match check().await {
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

    /// A check that fails while `runs` is below `failures`, counting its runs.
    async fn counted(runs: &AtomicUsize, failures: usize) -> Result<(), ConfigError> {
        if runs.fetch_add(1, Ordering::SeqCst) < failures {
            Err(ConfigError::new(
                "policies[0].alarm",
                "no alarm is named web-cpu",
            ))
        } else {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_passed_check_runs_once() {
        let (check, runs) = (StartupCheck::default(), AtomicUsize::new(0));
        for _ in 0..3 {
            check.passed(|| counted(&runs, 0)).await.expect("passed");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_check_fails_the_invocation_naming_the_field_and_runs_again_on_the_next() {
        let (check, runs) = (StartupCheck::default(), AtomicUsize::new(0));
        for _ in 0..2 {
            let err = check
                .passed(|| counted(&runs, 2))
                .await
                .expect_err("disagrees");
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("policies[0].alarm"), "{err}");
            assert_eq!(
                lambda_runtime::Diagnostic::from(err).error_type,
                "NonRetryable.Configuration"
            );
        }
        check.passed(|| counted(&runs, 2)).await.expect("fixed");
        check
            .passed(|| counted(&runs, 2))
            .await
            .expect("still passed");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
