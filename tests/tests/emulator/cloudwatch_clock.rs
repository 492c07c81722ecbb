//! CloudWatch against the clock: alarm evaluation, TreatMissingData, composites, alarm events, PutMetricData limits.

#[allow(unused_imports)]
use super::*;
