//! Rounding a quotient to a count. Floating point lands a hair off a whole
//! number (3 × 0.8 / 0.6 is 4.000000000000001), and a plain `ceil` or `floor`
//! then gives a task more or less than the same ratio in whole numbers: both
//! the budget and target tracking round through here.

/// How far off a whole number a quotient may land and still count as it:
/// a billionth of its size (at least of 1), far above f64's error in a few
/// operations and far below any real fraction of a task.
const TOLERANCE: f64 = 1e-9;

fn slack(x: f64) -> f64 {
    TOLERANCE * x.abs().max(1.0)
}

/// `ceil(x)`, with `x` a hair above a whole number taken as that number.
pub fn ceil_count(x: f64) -> f64 {
    (x - slack(x)).ceil()
}

/// `floor(x)`, with `x` a hair below a whole number taken as that number.
pub fn floor_count(x: f64) -> f64 {
    (x + slack(x)).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_rounds_the_same_as_a_fraction_and_in_percent() {
        // 3 tasks at 0.8 against 0.6 is 3 × 80 / 60 = 4 exactly.
        assert_eq!(ceil_count(3.0 * 0.8 / 0.6), 4.0);
        assert_eq!(ceil_count(3.0 * 80.0 / 60.0), 4.0);
        // 0.3 / 0.1 is 2.9999999999999996 in f64, and means 3.
        assert_eq!(floor_count(0.3 / 0.1), 3.0);
        // Real fractions still round.
        assert_eq!(ceil_count(4.01), 5.0);
        assert_eq!(floor_count(3.99), 3.0);
        assert_eq!(ceil_count(1_000_000.5), 1_000_001.0);
        assert_eq!(ceil_count(0.0), 0.0);
    }
}
