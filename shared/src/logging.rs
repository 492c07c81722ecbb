//! The functions' log set-up, as Lambda's advanced logging controls ask:
//! `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) as one level, INFO by default, and
//! JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`. One level for every
//! target, not per-target directives: their filter brings a regex engine and
//! its Unicode tables into every binary.

use tracing_subscriber::filter::LevelFilter;

/// Installs the subscriber; a second call changes nothing.
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map_or(LevelFilter::INFO, |value| level_of(&value));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let lines = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level);
    // An error means a subscriber is already set: keep it.
    let _ = if json {
        lines.json().try_init()
    } else {
        lines.try_init()
    };
}

/// `debug`, `WARN`, `off`…; anything else (empty, a per-target directive) is INFO.
fn level_of(value: &str) -> LevelFilter {
    match value.trim() {
        "" => LevelFilter::INFO,
        level => level.parse().unwrap_or(LevelFilter::INFO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_is_read_in_any_case_and_anything_else_is_info() {
        assert_eq!(level_of("debug"), LevelFilter::DEBUG);
        assert_eq!(level_of("WARN"), LevelFilter::WARN);
        assert_eq!(level_of(" off "), LevelFilter::OFF);
        assert_eq!(level_of("aws_smithy=debug"), LevelFilter::INFO);
        assert_eq!(level_of(""), LevelFilter::INFO);
    }
}
