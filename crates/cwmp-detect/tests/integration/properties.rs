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

/// Per-device alerts of the records, as a worker owning two input partitions decides
/// them when `feed` gives it `(partition, record)` in that order.
fn device_alerts_of_two_partitions(feed: &[(i32, Observation)]) -> Vec<String> {
    let mut worker =
        cwmp_detect::Worker::new(cwmp_detect::DetectConfig::default()).expect("defaults");
    worker.set_partitions(vec![0, 1], 2);
    let mut out = Vec::new();
    for (partition, obs) in feed {
        worker.observe(*partition, obs, &mut out);
    }
    for partition in [0, 1] {
        worker.partition_idle(partition, &mut out);
    }
    device_alerts(out)
}

/// The device alerts among a worker's outputs, canonical.
fn device_alerts(out: Vec<cwmp_detect::WorkerOutput>) -> Vec<String> {
    let alerts: Vec<Alert> = out
        .into_iter()
        .filter_map(|o| match o {
            cwmp_detect::WorkerOutput::Alert(a) => Some(a),
            cwmp_detect::WorkerOutput::Aggregate(_) => None,
        })
        .collect();
    canonical(&alerts)
}

/// Catching up a backlog, a consumer drains one partition far ahead of another: the
/// watermark (the slower partition's time) then trails the devices of the faster one
/// by hours. A device's alerts must not depend on that: a wake-up storm and a reboot
/// loop on the faster partition open and resolve exactly as when the partitions are
/// read side by side.
#[test]
fn a_partition_far_ahead_of_another_gives_the_same_device_alerts() {
    let devices = fleet(12);
    let mut obs = background(&devices, T0, T0 + 6 * HOUR, 12);
    // Devices 3 and 4 land on partition 1 (odd index), the far-ahead one below.
    for i in 0..36 {
        obs.push(inform(
            &devices[3],
            T0 + HOUR + i * 5 * MIN,
            &[Kinds::WAKEUP],
            false,
        ));
    }
    for i in 0..20 {
        obs.push(inform(
            &devices[5],
            T0 + HOUR + i * 9 * MIN,
            &[Kinds::BOOT],
            false,
        ));
    }
    let records = arrival(obs, 12);
    let partition = |o: &Observation| -> i32 {
        let index = devices
            .iter()
            .position(|d| d.id == o.device_id)
            .unwrap_or(0);
        (index % 2) as i32
    };
    // Side by side: in arrival order.
    let side_by_side: Vec<(i32, Observation)> =
        records.iter().map(|o| (partition(o), o.clone())).collect();
    let expected = device_alerts_of_two_partitions(&side_by_side);
    assert!(
        expected
            .iter()
            .any(|a| a.contains("\"wakeup_rate\"") && a.contains("\"resolved\""))
            && expected.iter().any(|a| a.contains("\"reboot_loop\"")),
        "{expected:#?}"
    );
    // Backlog: partition 1 in chunks of four hours, partition 0 in chunks of ten minutes.
    let (fast, slow): (Vec<_>, Vec<_>) = side_by_side.into_iter().partition(|(p, _)| *p == 1);
    let mut feed = Vec::new();
    let (mut f, mut s) = (fast.into_iter().peekable(), slow.into_iter().peekable());
    let mut fast_until = T0;
    let mut slow_until = T0;
    while f.peek().is_some() || s.peek().is_some() {
        fast_until += 4 * HOUR;
        while let Some(r) = f.next_if(|(_, o)| o.time_ms < fast_until) {
            feed.push(r);
        }
        while slow_until < fast_until {
            slow_until += 10 * MIN;
            while let Some(r) = s.next_if(|(_, o)| o.time_ms < slow_until) {
                feed.push(r);
            }
        }
    }
    assert_eq!(device_alerts_of_two_partitions(&feed), expected);
}

/// The records of one input partition come from several raw partitions (ingest
/// interleaves them), each in event-time order, but ingest catching up a backlog
/// drains them at different paces: within the partition, one source runs hours ahead
/// of another. Nothing may turn late for that, and the alerts are those of the
/// time-ordered input.
#[test]
fn sources_of_one_partition_caught_up_at_different_paces_lose_nothing() {
    let devices = fleet(13);
    let source_of = |o: &Observation| -> i32 {
        let index = devices
            .iter()
            .position(|d| d.id == o.device_id)
            .unwrap_or(0);
        (index % 4) as i32
    };
    let mut obs: Vec<Observation> = arrival(incidents(), 13);
    obs.sort_by_key(|o| o.time_ms);
    for (offset, o) in obs.iter_mut().enumerate() {
        o.source = Some(cwmp_detect::SourcePos {
            topic: "cwmp.informs.raw".into(),
            partition: source_of(o),
            offset: offset as i64,
        });
    }
    let expected = canonical(&run(&obs));
    assert!(
        expected.iter().any(|a| a.contains("\"boot_storm\"")),
        "{expected:#?}"
    );
    // Source s is drained s × 15 minutes of event time ahead of source 0, so that
    // within the partition source 3 runs 45 minutes ahead (below source_idle_ms).
    let mut feed = obs.clone();
    feed.sort_by_key(|o| (o.time_ms - source_of(o) as i64 * 15 * MIN, source_of(o)));
    let mut pipeline =
        cwmp_detect::Pipeline::new(cwmp_detect::DetectConfig::default()).expect("defaults");
    pipeline.worker.expect_sources(vec![0, 1, 2, 3]);
    let mut alerts = Vec::new();
    let mut late = 0;
    for o in &feed {
        if pipeline.observe(o, &mut alerts) == cwmp_detect::Verdict::Late {
            late += 1;
        }
    }
    assert_eq!(late, 0, "records judged late");
    assert_eq!(canonical(&alerts), expected);
}

/// A source that stops holds the watermark no longer than `source_idle_ms` of event
/// time, or until the Kafka loop releases it (`source_idle`); when it delivers again
/// it holds it again.
#[test]
fn a_source_that_stops_is_released() {
    let devices = fleet(14);
    let obs_at = |d: usize, t: i64, source: i32| {
        let mut o = inform(&devices[d], t, &[], false);
        o.source = Some(cwmp_detect::SourcePos {
            topic: "raw".into(),
            partition: source,
            offset: t,
        });
        o
    };
    let mut worker =
        cwmp_detect::Worker::new(cwmp_detect::DetectConfig::default()).expect("defaults");
    worker.expect_sources(vec![0, 1]);
    let mut out = Vec::new();
    worker.observe(0, &obs_at(0, T0, 0), &mut out);
    assert_eq!(
        worker.watermark(),
        None,
        "source 1 has delivered nothing yet"
    );
    worker.source_idle(0, 1, &mut out);
    assert_eq!(worker.watermark(), Some(T0 - 30_000));
    worker.observe(0, &obs_at(1, T0 + MIN, 1), &mut out);
    worker.observe(0, &obs_at(0, T0 + 10 * MIN, 0), &mut out);
    assert_eq!(
        worker.watermark(),
        Some(T0 + MIN - 30_000),
        "source 1 delivers again: it holds the watermark again"
    );
    // source_idle_ms of event time later, source 1 still silent: released.
    let idle = cwmp_detect::DetectConfig::default().source_idle_ms;
    worker.observe(0, &obs_at(0, T0 + MIN + idle + 1, 0), &mut out);
    assert_eq!(worker.watermark(), Some(T0 + MIN + idle + 1 - 30_000));
}

/// A device's retried sessions travel on other raw partitions than the attempt they
/// retry, so a retry (`retry_count > 0`, the same boot again) can arrive before the
/// attempt. Its boot is still the attempt's: no reboot loop from one boot and its
/// two retries, whatever the arrival order.
#[test]
fn a_retry_arriving_before_the_attempt_it_repeats_is_the_same_boot() {
    let devices = fleet(15);
    let d = &devices[0];
    let at = |t: i64, retry: bool, source: i32| {
        let mut o = inform(d, t, &[Kinds::BOOT], retry);
        o.source = Some(cwmp_detect::SourcePos {
            topic: "raw".into(),
            partition: source,
            offset: t,
        });
        o
    };
    let boot = at(T0, false, 2);
    let retry1 = at(T0 + 5 * MIN, true, 1);
    let retry2 = at(T0 + 12 * MIN, true, 0);
    let flush: Vec<Observation> = (0..3)
        .map(|s| {
            let mut o = inform(&devices[1], T0 + 3 * HOUR, &[], false);
            o.source = Some(cwmp_detect::SourcePos {
                topic: "raw".into(),
                partition: s,
                offset: 1_000 + s as i64,
            });
            o
        })
        .collect();
    let alerts = |order: &[&Observation]| {
        let mut worker =
            cwmp_detect::Worker::new(cwmp_detect::DetectConfig::default()).expect("defaults");
        worker.expect_sources(vec![0, 1, 2]);
        let mut out = Vec::new();
        for o in order.iter().copied().chain(flush.iter()) {
            assert_eq!(
                worker.observe(0, o, &mut out),
                cwmp_detect::Verdict::Accepted
            );
        }
        device_alerts(out)
    };
    let in_order = alerts(&[&boot, &retry1, &retry2]);
    assert!(in_order.is_empty(), "{in_order:#?}");
    for order in [
        [&retry2, &retry1, &boot],
        [&retry1, &boot, &retry2],
        [&retry2, &boot, &retry1],
    ] {
        assert_eq!(alerts(&order), in_order);
    }
}
