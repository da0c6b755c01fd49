//! Event-time arithmetic shared by the stages.

/// Rounds down to a multiple of `step` (also for negative times): the start of the
/// bucket or window that holds `t`.
pub(crate) fn floor(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::floor;

    #[test]
    fn floors_towards_minus_infinity() {
        assert_eq!(floor(119_999, 60_000), 60_000);
        assert_eq!(floor(120_000, 60_000), 120_000);
        assert_eq!(floor(-1, 60_000), -60_000);
    }
}
