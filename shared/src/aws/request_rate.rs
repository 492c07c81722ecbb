//! A rate budget per AWS API family, kept by each function's adapters.
//!
//! AWS throttles each account's requests per Region and API family with token
//! buckets: a burst (the bucket's size) and a sustained rate (tokens added a
//! second). The functions share those buckets with each other, with the
//! console and with deploy tooling, so a function that spends a whole bucket
//! on one fleet-wide read starves the others: the probe's reads of 300 target
//! groups would throttle the registrar's reads in the same second.
//!
//! Each family here is held to half of AWS's documented burst and sustained
//! rate, so two functions at their budgets together stay inside the
//! account's bucket. A call waits for its token instead of being refused; a
//! function's deadline still bounds the wait. The figures:
//!
//! - ECS, "Request throttling for the Amazon ECS API": service reads
//!   (`DescribeServices`) 100 burst, 20 a second; cluster resource reads
//!   (`DescribeTasks`, `ListTasks`) 100, 20; service writes (`UpdateService`)
//!   50, 5; cluster reads (`DescribeClusters`) 50, 20; tag writes 20, 10; tag reads 50, 20; task definition reads 50, 20;
//!   task writes (`StopTask`) 100, 40.
//! - ELB, "Request throttling for the Elastic Load Balancing API": the
//!   non-mutating (`Describe*`) bucket holds 40 and refills 10 a second;
//!   target registration is held to the same figures.
//! - CloudWatch service quotas: `GetMetricData` 50 a second,
//!   `DescribeAlarms` 9, `PutMetricData` 500.

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The API families the functions call, as AWS meters them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    EcsServiceRead,
    EcsServiceModify,
    EcsClusterRead,
    EcsClusterResourceRead,
    EcsClusterResourceModify,
    EcsTagRead,
    EcsTagModify,
    EcsTaskDefinitionRead,
    ElbDescribe,
    ElbTargets,
    CloudWatchGetMetricData,
    CloudWatchDescribeAlarms,
    CloudWatchPutMetricData,
    CloudWatchSetAlarmState,
}

impl Family {
    const ALL: [Family; 14] = [
        Family::EcsServiceRead,
        Family::EcsServiceModify,
        Family::EcsClusterRead,
        Family::EcsClusterResourceRead,
        Family::EcsClusterResourceModify,
        Family::EcsTagRead,
        Family::EcsTagModify,
        Family::EcsTaskDefinitionRead,
        Family::ElbDescribe,
        Family::ElbTargets,
        Family::CloudWatchGetMetricData,
        Family::CloudWatchDescribeAlarms,
        Family::CloudWatchPutMetricData,
        Family::CloudWatchSetAlarmState,
    ];

    /// AWS's documented bucket: (burst, tokens added a second).
    pub const fn aws_bucket(self) -> (u32, u32) {
        match self {
            Family::EcsServiceRead | Family::EcsClusterResourceRead => (100, 20),
            Family::EcsServiceModify => (50, 5),
            Family::EcsClusterRead => (50, 20),
            Family::EcsClusterResourceModify => (100, 40),
            Family::EcsTagRead | Family::EcsTaskDefinitionRead => (50, 20),
            Family::EcsTagModify => (20, 10),
            Family::ElbDescribe | Family::ElbTargets => (40, 10),
            Family::CloudWatchGetMetricData => (50, 50),
            Family::CloudWatchDescribeAlarms => (9, 9),
            Family::CloudWatchPutMetricData => (500, 500),
            // SetAlarmState shares no published figure; held like DescribeAlarms.
            Family::CloudWatchSetAlarmState => (9, 9),
        }
    }

    /// This process's share: half of AWS's burst and rate, at least one.
    pub const fn budget(self) -> (u32, u32) {
        let (burst, rate) = self.aws_bucket();
        (max_one(burst / 2), max_one(rate / 2))
    }

    fn index(self) -> usize {
        Family::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

const fn max_one(n: u32) -> u32 {
    if n == 0 {
        1
    } else {
        n
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// One function's budget for every family: each adapter is made with one, so
/// a process (one cold start, one set of adapters) keeps to it; clones of an
/// adapter share it.
#[derive(Clone)]
pub struct RequestBudget(Arc<Vec<Limiter>>);

impl Default for RequestBudget {
    fn default() -> Self {
        Self(Arc::new(
            Family::ALL
                .iter()
                .map(|family| {
                    let (burst, rate) = family.budget();
                    let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                    RateLimiter::direct(quota)
                })
                .collect(),
        ))
    }
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestBudget(half of AWS's request rates)")
    }
}

impl RequestBudget {
    /// No budget at all: every call goes at once. For tests that replay
    /// thousands of events through one set of adapters to check what they
    /// decide, not how fast they may call.
    pub fn unmetered() -> Self {
        Self(Arc::new(Vec::new()))
    }

    /// Waits until `family`'s budget has a token for one call, and takes it.
    pub async fn take(&self, family: Family) {
        if let Some(limiter) = self.0.get(family.index()) {
            limiter.until_ready().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_budget_is_half_of_aws_and_never_zero() {
        for family in Family::ALL {
            let (aws_burst, aws_rate) = family.aws_bucket();
            let (burst, rate) = family.budget();
            assert!(burst >= 1 && rate >= 1, "{family:?}");
            assert!(burst * 2 <= aws_burst.max(2), "{family:?}");
            assert!(rate * 2 <= aws_rate.max(2), "{family:?}");
        }
    }

    #[tokio::test]
    async fn a_burst_within_the_budget_does_not_wait_and_the_next_call_does() {
        let (burst, rate) = Family::ElbTargets.budget();
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let limiter: Limiter = RateLimiter::direct(quota);
        for _ in 0..burst {
            assert!(limiter.check().is_ok());
        }
        assert!(
            limiter.check().is_err(),
            "the bucket is empty after its burst"
        );
    }
}
