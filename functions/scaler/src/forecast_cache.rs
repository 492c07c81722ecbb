//! The predictive policies' forecasts one process keeps between invocations.

use chrono::{DateTime, TimeDelta, Utc};
use ecs_control::domain::predictive::{Forecast, PredictivePolicy, REFRESH_MINUTES};
use ecs_control::domain::service::ServiceRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A policy's forecast, or why it has none, as this process last made it.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Made(Arc<Forecast>),
    /// No forecast: too little history or a model that failed (tried again
    /// after `REFRESH_MINUTES`), or a read that failed or a fit the budget
    /// put off (tried again by the next invocation).
    Missing {
        at: DateTime<Utc>,
        why: String,
        retry_now: bool,
    },
}

impl Cached {
    pub(crate) fn missing(at: DateTime<Utc>, why: String, retry_now: bool) -> Self {
        Cached::Missing { at, why, retry_now }
    }

    pub(crate) fn is_due(&self, now: DateTime<Utc>) -> bool {
        match self {
            Cached::Made(forecast) => forecast.is_stale(now),
            // One invocation decides at one `now`: it tries a policy once.
            Cached::Missing { at, retry_now, .. } => {
                *at != now
                    && (*retry_now || now - *at >= TimeDelta::minutes(REFRESH_MINUTES) || now < *at)
            }
        }
    }
}

/// The forecasts of one process, by service and policy name: a cold start
/// makes them again.
#[derive(Debug, Default)]
pub(crate) struct ForecastCache(Mutex<HashMap<(ServiceRef, String), Cached>>);

impl ForecastCache {
    pub(crate) fn of(&self, policy: &PredictivePolicy) -> Option<Cached> {
        self.0
            .lock()
            .ok()?
            .get(&(policy.target.clone(), policy.name.clone()))
            .cloned()
    }

    pub(crate) fn keep(&self, policy: &PredictivePolicy, cached: Cached) {
        if let Ok(mut entries) = self.0.lock() {
            entries.insert((policy.target.clone(), policy.name.clone()), cached);
        }
    }
}
