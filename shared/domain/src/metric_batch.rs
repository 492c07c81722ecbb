//! Many metric reads in as few `GetMetricData` calls as CloudWatch allows.
//!
//! One call takes up to 500 queries and one time range. Reads are combined by
//! giving each read's query ids a prefix of its own (and rewriting the ids its
//! expressions name), asking for the widest range of the batch, and cutting
//! each read's points back to its own range afterwards.

use crate::alarm::{MetricPoint, MetricQuery};
use chrono::{DateTime, Utc};

/// `GetMetricData` takes at most this many queries a call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// One read a decision needs: queries over a time range, `end` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRead {
    pub queries: Vec<MetricQuery>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One `GetMetricData` call, and which of its returned ids answers which read.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBatch {
    pub queries: Vec<MetricQuery>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// (index of the read, the id its returned query has in this call).
    pub answers: Vec<(usize, String)>,
}

/// The calls that answer `reads`: one, unless the queries exceed a call's
/// limit or a read uses `METRICS()`, whose meaning depends on every other
/// query of the call, so that read keeps a call of its own.
pub fn plan_batches(reads: &[MetricRead]) -> Vec<MetricBatch> {
    let mut batches: Vec<MetricBatch> = Vec::new();
    let mut shared: Option<MetricBatch> = None;
    for (index, read) in reads.iter().enumerate() {
        let Some(returned) = read.queries.iter().find(|q| q.return_data) else {
            continue;
        };
        if uses_metrics_function(read) {
            batches.push(MetricBatch {
                queries: read.queries.clone(),
                start: read.start,
                end: read.end,
                answers: vec![(index, returned.id.clone())],
            });
            continue;
        }
        let prefix = format!("r{index}_");
        let ids: Vec<&str> = read.queries.iter().map(|q| q.id.as_str()).collect();
        let renamed: Vec<MetricQuery> = read
            .queries
            .iter()
            .map(|q| MetricQuery {
                id: format!("{prefix}{}", q.id),
                expression: q
                    .expression
                    .as_deref()
                    .map(|e| prefix_ids(e, &ids, &prefix)),
                return_data: q.return_data,
                ..q.clone()
            })
            .collect();
        let answer = (index, format!("{prefix}{}", returned.id));
        match shared.as_mut() {
            Some(batch) if batch.queries.len() + renamed.len() <= MAX_QUERIES_PER_CALL => {
                batch.queries.extend(renamed);
                batch.start = batch.start.min(read.start);
                batch.end = batch.end.max(read.end);
                batch.answers.push(answer);
            }
            _ => {
                batches.extend(shared.take());
                shared = Some(MetricBatch {
                    queries: renamed,
                    start: read.start,
                    end: read.end,
                    answers: vec![answer],
                });
            }
        }
    }
    batches.extend(shared);
    batches
}

/// The points of a read's own range, from a call that may have asked for more.
pub fn within(points: &[MetricPoint], read: &MetricRead) -> Vec<MetricPoint> {
    points
        .iter()
        .filter(|p| p.at >= read.start && p.at < read.end)
        .cloned()
        .collect()
}

fn uses_metrics_function(read: &MetricRead) -> bool {
    read.queries
        .iter()
        .filter_map(|q| q.expression.as_deref())
        .any(|e| outside_quotes(e).to_ascii_uppercase().contains("METRICS("))
}

/// The expression with quoted text blanked, so names inside search strings
/// are never taken for query ids.
fn outside_quotes(expression: &str) -> String {
    let mut quote = None;
    expression
        .chars()
        .map(|c| match quote {
            Some(q) if c == q => {
                quote = None;
                ' '
            }
            Some(_) => ' ',
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                ' '
            }
            None => c,
        })
        .collect()
}

/// Prefixes every identifier of the expression that is one of the read's ids;
/// quoted text and function names are left as they are.
fn prefix_ids(expression: &str, ids: &[&str], prefix: &str) -> String {
    let mut out = String::with_capacity(expression.len() + prefix.len() * 2);
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if ids.contains(&word.as_str()) {
            out.push_str(prefix);
        }
        out.push_str(word);
        word.clear();
    };
    for c in expression.chars() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::MetricStat;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, minute, 0)
            .single()
            .unwrap_or_default()
    }

    fn stat(id: &str, returned: bool) -> MetricQuery {
        MetricQuery {
            id: id.into(),
            metric: Some(MetricStat {
                namespace: "AWS/ECS".into(),
                metric_name: "CPUUtilization".into(),
                dimensions: vec![],
                period_seconds: 60,
                stat: "Average".into(),
            }),
            expression: None,
            period_seconds: None,
            return_data: returned,
        }
    }

    fn math(id: &str, expression: &str) -> MetricQuery {
        MetricQuery {
            id: id.into(),
            metric: None,
            expression: Some(expression.into()),
            period_seconds: None,
            return_data: true,
        }
    }

    fn read(queries: Vec<MetricQuery>, start: u32, end: u32) -> MetricRead {
        MetricRead {
            queries,
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn reads_share_one_call_over_the_widest_range() {
        let reads = vec![
            read(vec![stat("m1", true)], 10, 15),
            read(vec![stat("m1", true)], 0, 20),
        ];
        let batches = plan_batches(&reads);
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].start, batches[0].end), (at(0), at(20)));
        assert_eq!(
            batches[0].answers,
            vec![(0, "r0_m1".to_string()), (1, "r1_m1".to_string())]
        );
    }

    #[test]
    fn expressions_name_the_renamed_ids_and_quoted_text_stays() {
        let reads = vec![read(
            vec![
                stat("m1", false),
                stat("m2", false),
                math("e1", "m1 / (m2 + 1) * 100 + FILL(m1, 0)"),
                math("e2", "SEARCH('{AWS/ECS,m1} m1', 'Average', 60)"),
            ],
            0,
            5,
        )];
        let batch = &plan_batches(&reads)[0];
        let expressions: Vec<&str> = batch
            .queries
            .iter()
            .filter_map(|q| q.expression.as_deref())
            .collect();
        assert_eq!(
            expressions,
            vec![
                "r0_m1 / (r0_m2 + 1) * 100 + FILL(r0_m1, 0)",
                "SEARCH('{AWS/ECS,m1} m1', 'Average', 60)"
            ]
        );
        assert_eq!(batch.answers, vec![(0, "r0_e1".to_string())]);
    }

    #[test]
    fn a_read_using_metrics_keeps_its_own_call() {
        let reads = vec![
            read(vec![stat("m1", true)], 0, 5),
            read(vec![stat("m1", false), math("e1", "AVG(METRICS())")], 0, 5),
            read(vec![stat("m1", true)], 0, 5),
        ];
        let batches = plan_batches(&reads);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].answers, vec![(1, "e1".to_string())]);
        assert_eq!(batches[1].answers.len(), 2);
    }

    #[test]
    fn a_call_never_carries_more_than_five_hundred_queries() {
        let reads: Vec<MetricRead> = (0..300)
            .map(|_| read(vec![stat("m1", false), math("e1", "m1 * 2")], 0, 5))
            .collect();
        let batches = plan_batches(&reads);
        assert_eq!(batches.len(), 2);
        assert!(batches
            .iter()
            .all(|b| b.queries.len() <= MAX_QUERIES_PER_CALL));
        let answered: usize = batches.iter().map(|b| b.answers.len()).sum();
        assert_eq!(answered, 300);
    }

    #[test]
    fn points_are_cut_back_to_the_read_range() {
        let points: Vec<MetricPoint> = (0..20)
            .map(|m| MetricPoint {
                at: at(m),
                value: f64::from(m),
            })
            .collect();
        let kept = within(&points, &read(vec![stat("m1", true)], 10, 15));
        let minutes: Vec<f64> = kept.iter().map(|p| p.value).collect();
        assert_eq!(minutes, vec![10.0, 11.0, 12.0, 13.0, 14.0]);
    }
}
