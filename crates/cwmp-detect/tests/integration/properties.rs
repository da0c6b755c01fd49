//! Arrival order within the lateness bound does not change the alerts.

use cwmp_detect::{Alert, Kinds, Observation};
use proptest::prelude::*;

use crate::gen::{arrival, background, class_devices, fleet, inform, Rng, HOUR, MIN, T0};
use crate::run;

/// A busy few hours: a power cut, a looping device, a wake-up surge, retries.
fn incidents() -> Vec<Observation> {
    let devices = fleet(11);
    let mut obs = background(&devices, T0, T0 + 5 * HOUR, 11);
    let mut rng = Rng::new(11);
    for d in class_devices(&devices, "00D09E HG8245H") {
        if rng.chance(0.5) {
            obs.push(inform(
                d,
                T0 + 3 * HOUR + rng.below(4 * MIN as u64) as i64,
                &[Kinds::BOOT],
                false,
            ));
        }
    }
    for i in 0..5 {
        obs.push(inform(
            &devices[5],
            T0 + 2 * HOUR + i * 7 * MIN,
            &[Kinds::BOOT],
            false,
        ));
    }
    for i in 0..9 {
        obs.push(inform(
            &devices[9],
            T0 + 2 * HOUR + i * 5 * MIN,
            &[Kinds::WAKEUP],
            i % 3 == 0,
        ));
    }
    obs
}

/// Alerts as sorted JSON lines: device alerts of different devices may be decided
/// in either order when records arrive in another order; their content may not change.
fn canonical(alerts: &[Alert]) -> Vec<String> {
    let mut lines: Vec<String> = alerts.iter().map(Alert::to_json).collect();
    lines.sort();
    lines
}

/// Reorders records by event time plus a jitter below the lateness bound.
fn shuffle(obs: &[Observation], seed: u64, max_jitter_ms: u64) -> Vec<Observation> {
    let mut rng = Rng::new(seed);
    let mut keyed: Vec<(i64, u64, Observation)> = obs
        .iter()
        .map(|o| {
            (
                o.time_ms + rng.below(max_jitter_ms) as i64,
                rng.next(),
                o.clone(),
            )
        })
        .collect();
    keyed.sort_by_key(|(t, tie, _)| (*t, *tie));
    keyed.into_iter().map(|(_, _, o)| o).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_within_the_lateness_bound_keeps_the_alerts(seed in any::<u64>()) {
        let base = arrival(incidents(), 0);
        let expected = canonical(&run(&base));
        prop_assert!(!expected.is_empty());
        // Lateness is 30 s: jitter of up to 29.999 s never makes a record late.
        let shuffled = shuffle(&base, seed, 29_999);
        prop_assert_eq!(canonical(&run(&shuffled)), expected);
    }
}

#[test]
fn same_input_same_alerts_byte_for_byte() {
    let obs = arrival(incidents(), 3);
    let a: Vec<String> = run(&obs).iter().map(Alert::to_json).collect();
    let b: Vec<String> = run(&obs).iter().map(Alert::to_json).collect();
    assert!(!a.is_empty());
    assert_eq!(a, b);
}
