//! Restoring a snapshot and processing the records after it gives what an
//! uninterrupted run gives: the Kafka path's promise across kills, restarts and
//! rebalances, checked here without Kafka.
//!
//! The harness runs the Kafka path's model: one worker per input partition (each
//! owning only its partition, as `cwmp-stream detect` runs them) and a fleet stage
//! fed from one aggregates partition. A "crash" restores a worker (or the fleet
//! stage) from a snapshot taken earlier and feeds it again everything after that
//! snapshot, while what the crashed one had already sent stays sent: the alerts,
//! duplicates removed, must be exactly those of the uninterrupted run.

use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::{Alert, DetectConfig, Fleet, Observation, Worker, WorkerOutput};
use proptest::prelude::*;

use crate::gen::{arrival, background, class_devices, fleet, inform, Rng, HOUR, MIN, T0};

const PARTITIONS: i32 = 2;

/// A busy few hours: a power cut on one product class, a looping device, a device
/// waking up too often, retries, and a network dark for two and a half hours (its
/// devices go silent before the snapshots and come back after them).
fn incidents() -> Vec<Observation> {
    let devices = fleet(21);
    let obs = background(&devices, T0, T0 + 6 * HOUR, 21);
    let mut obs = crate::gen::outage(
        obs,
        &devices,
        "10.0.1.",
        (T0 + 2 * HOUR + 30 * MIN, T0 + 5 * HOUR),
        false,
        21,
    );
    let mut rng = Rng::new(21);
    for d in class_devices(&devices, "00D09E HG8245H") {
        if rng.chance(0.6) {
            let t = T0 + 3 * HOUR + rng.below(4 * MIN as u64) as i64;
            obs.push(inform(d, t, &[cwmp_detect::Kinds::BOOT], false));
        }
    }
    for i in 0..5 {
        let t = T0 + 2 * HOUR + i * 7 * MIN;
        obs.push(inform(&devices[5], t, &[cwmp_detect::Kinds::BOOT], false));
    }
    for i in 0..9 {
        let t = T0 + HOUR + i * 5 * MIN;
        obs.push(inform(
            &devices[9],
            t,
            &[cwmp_detect::Kinds::WAKEUP],
            i % 3 == 0,
        ));
    }
    arrival(obs, 21)
}

fn partition_of(obs: &Observation) -> i32 {
    (obs.device_id.bytes().map(u32::from).sum::<u32>() % PARTITIONS as u32) as i32
}

fn worker(p: i32) -> Worker {
    let mut w = Worker::new(DetectConfig::default()).expect("defaults");
    w.set_partitions(vec![p], PARTITIONS);
    w
}

/// Alerts as sorted, distinct JSON lines (readers drop duplicates by id and state).
fn distinct(alerts: &[Alert]) -> Vec<String> {
    let mut lines: Vec<String> = alerts.iter().map(Alert::to_json).collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Splits a worker's outputs: alerts out, aggregates to the fleet stage's input.
fn route(
    out: &mut Vec<WorkerOutput>,
    alerts: &mut Vec<Alert>,
    fleet_in: &mut Vec<AggregateMessage>,
) {
    for o in out.drain(..) {
        match o {
            WorkerOutput::Alert(a) => alerts.push(a),
            WorkerOutput::Aggregate(m) => fleet_in.push(m),
        }
    }
}

/// Every record through its partition's worker; returns the device alerts and the
/// fleet stage's input, in order. With `crash = Some((p, snap_at, crash_at))`, the
/// worker of partition `p` is snapshotted after its `snap_at`-th record, crashes after
/// its `crash_at`-th (what it sent until then stays sent) and a worker restored from
/// the snapshot processes its records from `snap_at` on.
fn workers(
    obs: &[Observation],
    crash: Option<(i32, usize, usize)>,
) -> (Vec<Alert>, Vec<AggregateMessage>) {
    let mut ws: Vec<Worker> = (0..PARTITIONS).map(worker).collect();
    let (mut alerts, mut fleet_in, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let by_partition: Vec<Vec<&Observation>> = (0..PARTITIONS)
        .map(|p| obs.iter().filter(|o| partition_of(o) == p).collect())
        .collect();
    let mut next = vec![0usize; PARTITIONS as usize];
    let mut snapshot: Option<Vec<u8>> = None;
    for o in obs {
        let p = partition_of(o);
        let i = next[p as usize];
        if let Some((cp, snap_at, crash_at)) = crash {
            if cp == p && i == snap_at {
                snapshot = Some(ws[p as usize].snapshot());
            }
            if cp == p && i == crash_at {
                let bytes = snapshot.take().expect("snapshot before the crash");
                let mut restored =
                    Worker::restore(DetectConfig::default(), &bytes).expect("restore");
                // The new owner processes again what came after the snapshot.
                for again in &by_partition[p as usize][snap_at..crash_at] {
                    restored.observe(p, again, &mut out);
                }
                route(&mut out, &mut alerts, &mut fleet_in);
                ws[p as usize] = restored;
            }
        }
        ws[p as usize].observe(p, o, &mut out);
        route(&mut out, &mut alerts, &mut fleet_in);
        next[p as usize] += 1;
    }
    (alerts, fleet_in)
}

/// The fleet stage over its input; with `crash = Some((snap_at, crash_at))` it is
/// snapshotted after `snap_at` messages, crashes after `crash_at` and a restored one
/// takes the messages from `snap_at` on.
fn fleet_stage(input: &[AggregateMessage], crash: Option<(usize, usize)>) -> Vec<Alert> {
    let mut f = Fleet::new(DetectConfig::default()).expect("defaults");
    let mut alerts = Vec::new();
    let mut snapshot = None;
    for (i, m) in input.iter().enumerate() {
        if let Some((snap_at, crash_at)) = crash {
            if i == snap_at {
                snapshot = Some(f.snapshot());
            }
            if i == crash_at {
                let bytes = snapshot.take().expect("snapshot");
                f = Fleet::restore(DetectConfig::default(), &bytes).expect("restore");
                for again in &input[snap_at..crash_at] {
                    f.apply(0, again.clone(), &mut alerts);
                }
            }
        }
        f.apply(0, m.clone(), &mut alerts);
    }
    alerts
}

fn all_alerts(obs: &[Observation], crash: Option<(i32, usize, usize)>) -> Vec<String> {
    let (mut alerts, fleet_in) = workers(obs, crash);
    alerts.extend(fleet_stage(&fleet_in, None));
    distinct(&alerts)
}

#[test]
fn one_worker_per_partition_gives_the_alerts_of_the_replay() {
    let obs = incidents();
    let expected = distinct(&crate::run(&obs));
    assert!(
        expected.iter().any(|a| a.contains("\"boot_storm\"")),
        "{expected:#?}"
    );
    assert!(expected.iter().any(|a| a.contains("\"reboot_loop\"")));
    assert!(
        expected
            .iter()
            .any(|a| a.contains("\"inform_silence\"") && a.contains("\"resolved\"")),
        "{expected:#?}"
    );
    assert!(expected.iter().any(|a| a.contains("\"wakeup_rate\"")));
    assert_eq!(all_alerts(&obs, None), expected);
}

/// Partition 1's records arrive `by` later than partition 0's (a consumer drains
/// partitions at different paces; each worker has its own watermark, so none is late).
fn lagging(obs: &[Observation], by: i64) -> Vec<Observation> {
    let mut keyed: Vec<(i64, usize, Observation)> = obs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.time_ms + by * i64::from(partition_of(o)), i, o.clone()))
        .collect();
    keyed.sort_by_key(|(t, i, _)| (*t, *i));
    keyed.into_iter().map(|(_, _, o)| o).collect()
}

/// A worker snapshotted as a power cut begins and killed in its middle: the one
/// restored sends the storm's windows again, and the fleet stage, which has not
/// decided them yet (the other partition, 20 minutes behind, has not closed them),
/// must not count them twice.
#[test]
fn a_restored_worker_sends_again_only_what_the_fleet_stage_drops() {
    let obs = lagging(&incidents(), 20 * MIN);
    let expected = all_alerts(&obs, None);
    let storm = T0 + 3 * HOUR;
    let snap_at = obs
        .iter()
        .filter(|o| partition_of(o) == 0)
        .position(|o| o.time_ms >= storm)
        .expect("records in the storm");
    let crash = Some((0, snap_at, snap_at + 300));
    let (_, fleet_in) = workers(&obs, crash);
    let mut fleet = Fleet::new(DetectConfig::default()).expect("defaults");
    for m in fleet_in {
        fleet.apply(0, m, &mut Vec::new());
    }
    assert!(fleet.stats().duplicate_partials > 0, "{:?}", fleet.stats());
    assert_eq!(
        fleet.stats().late_partials,
        0,
        "the duplicates arrive undecided"
    );
    assert_eq!(all_alerts(&obs, crash), expected);
    assert_eq!(
        expected,
        all_alerts(&incidents(), None),
        "the lag changes nothing"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any worker, snapshotted anywhere, crashing any time after.
    #[test]
    fn a_worker_restored_from_any_snapshot_gives_the_same_alerts(
        p in 0..PARTITIONS,
        snap in 0usize..6000,
        lost in 0usize..3000,
    ) {
        let obs = lagging(&incidents(), 20 * MIN);
        let n = obs.iter().filter(|o| partition_of(o) == p).count();
        let snap_at = snap % n;
        let crash_at = (snap_at + lost).min(n - 1);
        prop_assert_eq!(all_alerts(&obs, Some((p, snap_at, crash_at))), all_alerts(&obs, None));
    }

    /// The fleet stage, snapshotted anywhere, crashing any time after.
    #[test]
    fn a_fleet_stage_restored_from_any_snapshot_gives_the_same_alerts(
        snap in 0usize..100_000,
        lost in 0usize..2000,
    ) {
        let obs = incidents();
        let (_, fleet_in) = workers(&obs, None);
        let snap_at = snap % fleet_in.len();
        let crash_at = (snap_at + lost).min(fleet_in.len() - 1);
        let expected = distinct(&fleet_stage(&fleet_in, None));
        prop_assert!(!expected.is_empty());
        prop_assert_eq!(distinct(&fleet_stage(&fleet_in, Some((snap_at, crash_at)))), expected);
    }
}
