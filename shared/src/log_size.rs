//! Keeps a decision line under CloudWatch Logs' 256 KB event limit whatever
//! the fleet's size, by one rule an operator can read off the line: while the
//! decision is over [`DECISION_LIMIT`] serialized, its largest array longer
//! than 200 elements keeps its first 200; then the same with 20, then 2; if it
//! is still over, the decision is left out. Each cut is listed on the line
//! (`truncation.cut`: the field's path, how many kept, how many removed).

use serde::Serialize;
use serde_json::Value;

/// The most a decision may take serialized: half the event limit, leaving
/// room for the line's other fields and Lambda's own.
pub const DECISION_LIMIT: usize = 128 * 1024;

/// How many elements an array keeps, tried in this order.
const KEEP: [usize; 3] = [200, 20, 2];

/// One array cut down, named by its path in the line (`decision.services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cut {
    pub path: String,
    pub kept: usize,
    pub removed: usize,
}

/// What was done to a decision over the limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    pub limit_bytes: usize,
    /// The decision's serialized size before any cut.
    pub original_bytes: usize,
    pub cut: Vec<Cut>,
    /// The decision was still over the limit with every array cut: it is left out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub omitted: bool,
}

/// Cuts `decision` (found at `path` in its line) to at most `limit` bytes
/// serialized; `None` when it already fits.
pub fn fit(decision: &mut Value, path: &str, limit: usize) -> Option<Truncation> {
    let original_bytes = serialized_size(decision, &mut |_, _, _| {});
    if original_bytes <= limit {
        return None;
    }
    let mut cut: Vec<Cut> = Vec::new();
    for keep in KEEP {
        loop {
            let mut largest: Option<(usize, String, usize)> = None;
            let size =
                serialized_size_at(decision, &mut String::new(), &mut |pointer, size, len| {
                    if len > keep && largest.as_ref().is_none_or(|(s, _, _)| size > *s) {
                        largest = Some((size, pointer.to_string(), len));
                    }
                });
            if size <= limit {
                return Some(Truncation {
                    limit_bytes: limit,
                    original_bytes,
                    cut,
                    omitted: false,
                });
            }
            let Some((_, pointer, len)) = largest else {
                break;
            };
            if let Some(Value::Array(items)) = decision.pointer_mut(&pointer) {
                items.truncate(keep);
            }
            let path = format!("{path}{}", dotted(&pointer));
            match cut.iter_mut().find(|c| c.path == path) {
                Some(earlier) => {
                    earlier.removed += len - keep;
                    earlier.kept = keep;
                }
                None => cut.push(Cut {
                    path,
                    kept: keep,
                    removed: len - keep,
                }),
            }
        }
    }
    *decision = Value::Null;
    Some(Truncation {
        limit_bytes: limit,
        original_bytes,
        cut,
        omitted: true,
    })
}

/// A JSON pointer (`/services/3/tasks`) as Logs Insights names the field
/// (`.services.3.tasks`).
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|part| format!(".{}", part.replace("~1", "/").replace("~0", "~")))
        .collect()
}

fn serialized_size(value: &Value, arrays: &mut impl FnMut(&str, usize, usize)) -> usize {
    serialized_size_at(value, &mut String::new(), arrays)
}

/// `value`'s size serialized compactly, computed in one walk; `arrays` is
/// told each array's JSON pointer, size and length.
fn serialized_size_at(
    value: &Value,
    pointer: &mut String,
    arrays: &mut impl FnMut(&str, usize, usize),
) -> usize {
    match value {
        Value::Array(items) => {
            let mut size = 2 + items.len().saturating_sub(1);
            for (i, item) in items.iter().enumerate() {
                let at = pointer.len();
                pointer.push_str(&format!("/{i}"));
                size += serialized_size_at(item, pointer, arrays);
                pointer.truncate(at);
            }
            arrays(pointer, size, items.len());
            size
        }
        Value::Object(object) => {
            let mut size = 2 + object.len().saturating_sub(1);
            for (key, item) in object {
                let at = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                size += scalar_size(&Value::from(key.as_str())) + 1;
                size += serialized_size_at(item, pointer, arrays);
                pointer.truncate(at);
            }
            size
        }
        scalar => scalar_size(scalar),
    }
}

fn scalar_size(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |text| text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(i: usize) -> Value {
        json!({
            "cluster": "prod", "service": format!("service-{i:05}"), "action": "held",
            "reason": "within the target's tolerance", "tasks": (0..40).map(|t| format!("10.0.{}.{t}", i % 256)).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn a_decision_that_fits_is_left_as_it_is() {
        let mut decision = json!({"services": (0..10).map(service).collect::<Vec<_>>()});
        let before = decision.clone();
        assert_eq!(fit(&mut decision, "decision", DECISION_LIMIT), None);
        assert_eq!(decision, before);
    }

    #[test]
    fn the_size_walk_agrees_with_serde() {
        let value =
            json!({"a/b": [1, "x~y", {"c": null, "d": [true, 2.5]}], "e": "\u{e9}\"", "f": []});
        let mut seen = Vec::new();
        let size = serialized_size(&value, &mut |p, s, l| seen.push((p.to_string(), s, l)));
        assert_eq!(size, value.to_string().len());
        assert!(seen.contains(&("/a~1b/2/d".to_string(), 10, 2)), "{seen:?}");
        assert_eq!(dotted("/a~1b/2/d"), ".a/b.2.d");
    }

    #[test]
    fn a_fleet_of_ten_thousand_services_keeps_its_first_ones_and_says_what_was_cut() {
        let services: Vec<Value> = (0..10_000).map(service).collect();
        let mut decision = json!({"tick": "2026-12-04T19:00:00Z", "services": services.clone(), "skipped": ["a", "b"]});
        let truncation = fit(&mut decision, "decision", DECISION_LIMIT).expect("over the limit");
        assert!(decision.to_string().len() <= DECISION_LIMIT);
        assert!(
            truncation.original_bytes > 10 * DECISION_LIMIT,
            "{truncation:?}"
        );
        assert!(!truncation.omitted);
        // The first services, whole and in order; the small fields untouched.
        let kept = decision["services"].as_array().expect("services").len();
        assert!(kept > 0);
        assert_eq!(
            decision["services"].as_array().map(|s| s[..kept].to_vec()),
            Some(services[..kept].to_vec())
        );
        assert_eq!(decision["skipped"], json!(["a", "b"]));
        assert_eq!(
            truncation.cut,
            vec![Cut {
                path: "decision.services".into(),
                kept,
                removed: 10_000 - kept
            }]
        );
    }

    #[test]
    fn nested_arrays_are_cut_too_when_the_outer_one_is_not_enough() {
        // Two services, each with a huge list of targets.
        let huge = |i: usize| json!({"service": i, "targets": (0..20_000).map(|t| format!("10.{i}.{}.{}", t / 256, t % 256)).collect::<Vec<_>>()});
        let mut decision = json!({"services": [huge(0), huge(1)]});
        let truncation = fit(&mut decision, "decision", DECISION_LIMIT).expect("over the limit");
        assert!(decision.to_string().len() <= DECISION_LIMIT);
        assert_eq!(decision["services"].as_array().map(Vec::len), Some(2));
        let paths: Vec<&str> = truncation.cut.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["decision.services.0.targets", "decision.services.1.targets"]
        );
        assert!(truncation.cut.iter().all(|c| c.kept + c.removed == 20_000));
    }

    #[test]
    fn a_decision_no_cut_can_fit_is_left_out() {
        let mut decision = json!({"note": "x".repeat(200_000)});
        let truncation = fit(&mut decision, "decision", DECISION_LIMIT).expect("over the limit");
        assert!(truncation.omitted);
        assert_eq!(decision, Value::Null);
    }
}
