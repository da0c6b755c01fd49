//! Planted incidents in a seeded fleet: each raises what it should, and only that.

use cwmp_detect::{Alert, AlertKind, AlertState, Kinds, Observation, Scope};

use crate::gen::{self, arrival, background, class_devices, fleet, inform, Rng, HOUR, MIN, T0};
use crate::{run, summary};

fn opened(alerts: &[Alert], kind: AlertKind) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.kind == kind && a.state == AlertState::Open)
        .collect()
}

#[test]
fn a_calm_day_raises_nothing() {
    let devices = fleet(1);
    let mut obs = background(&devices, T0, T0 + 24 * HOUR, 1);
    // A product line that wakes four times an hour by design.
    for d in class_devices(&devices, "001E80 SmallCell") {
        let mut t = T0 + d.phase % (15 * MIN);
        while t < T0 + 24 * HOUR {
            obs.push(inform(d, t, &[Kinds::WAKEUP], false));
            t += 15 * MIN;
        }
    }
    let alerts = run(&arrival(obs, 1));
    assert!(alerts.is_empty(), "{:#?}", summary(&alerts));
}

#[test]
fn a_power_cut_on_one_product_class_opens_one_boot_storm_and_resolves() {
    let devices = fleet(2);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, 2);
    let cut = T0 + 5 * HOUR + 2 * MIN;
    let mut rng = Rng::new(2);
    let class = "202BC1 BM632w";
    for d in class_devices(&devices, class) {
        if rng.chance(0.8) {
            let at = cut + rng.below(3 * MIN as u64) as i64;
            obs.push(inform(d, at, &[Kinds::BOOT], false));
            // Overloaded front-ends: some sessions fail and are retried twice with
            // back-off. A retry repeats the boot; it is not another one.
            if rng.chance(0.3) {
                obs.push(inform(d, at + 7_000, &[Kinds::BOOT], true));
                obs.push(inform(d, at + 21_000, &[Kinds::BOOT], true));
            }
        }
    }
    let alerts = run(&arrival(obs, 2));
    let storms = opened(&alerts, AlertKind::BootStorm);
    let ours: Vec<_> = storms
        .iter()
        .filter(|a| a.scope == Scope::ProductClass)
        .collect();
    assert_eq!(ours.len(), 1, "{:#?}", summary(&alerts));
    let open = ours[0];
    assert_eq!(open.key, class);
    assert!(open.devices >= 50 && open.devices <= 1500);
    assert!(
        open.window_end_ms - cut <= 2 * 5 * MIN,
        "opened {} min after the cut",
        (open.window_end_ms - cut) / MIN
    );
    assert_eq!(open.sample_devices.len(), 10);
    assert!(open.sample_devices.windows(2).all(|w| w[0] < w[1]));
    // Every storm is this incident, seen per scope: no other product class.
    for a in &storms {
        assert!(a.window_start_ms <= cut + 5 * MIN && a.window_end_ms >= cut);
        if a.scope == Scope::ProductClass {
            assert_eq!(a.key, class);
        }
        if a.scope == Scope::SoftwareVersion {
            assert!(a.key.starts_with("BM632w-"), "{}", a.key);
        }
    }
    assert!(alerts
        .iter()
        .any(|a| a.id == open.id && a.state == AlertState::Resolved));
    assert!(opened(&alerts, AlertKind::RebootLoop).is_empty());
    assert!(opened(&alerts, AlertKind::AcsMassReboot).is_empty());
}

#[test]
fn an_acs_reboot_campaign_is_informational_and_never_a_boot_storm() {
    let devices = fleet(3);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, 3);
    let start = T0 + 5 * HOUR;
    let mut rng = Rng::new(3);
    for d in class_devices(&devices, "00D09E HG8245H")
        .into_iter()
        .take(1000)
    {
        let at = start + rng.below(10 * MIN as u64) as i64;
        obs.push(inform(d, at, &[Kinds::BOOT, Kinds::M_REBOOT], false));
    }
    let alerts = run(&arrival(obs, 3));
    assert!(
        opened(&alerts, AlertKind::BootStorm).is_empty(),
        "{:#?}",
        summary(&alerts)
    );
    let campaign = opened(&alerts, AlertKind::AcsMassReboot);
    assert!(
        campaign
            .iter()
            .any(|a| a.scope == Scope::ProductClass && a.key == "00D09E HG8245H"),
        "{:#?}",
        summary(&alerts)
    );
}

#[test]
fn one_looping_device_is_the_only_reboot_loop() {
    let devices = fleet(4);
    let mut obs = background(&devices, T0, T0 + 9 * HOUR, 4);
    let looping = &devices[777];
    for i in 0..8 {
        obs.push(inform(
            looping,
            T0 + 5 * HOUR + i * 8 * MIN,
            &[Kinds::BOOT],
            false,
        ));
    }
    let alerts = run(&arrival(obs, 4));
    let loops: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::RebootLoop)
        .collect();
    assert!(
        loops.iter().all(|a| a.key == looping.id),
        "{:#?}",
        summary(&alerts)
    );
    let states: Vec<_> = loops.iter().map(|a| a.state).collect();
    assert_eq!(states.first(), Some(&AlertState::Open));
    assert_eq!(states.last(), Some(&AlertState::Resolved));
    let open = loops[0];
    assert_eq!(open.scope, Scope::Device);
    assert_eq!(
        open.event_time_ms,
        T0 + 5 * HOUR + 16 * MIN,
        "the third boot"
    );
    let resolved = loops[loops.len() - 1];
    assert_eq!(resolved.event_time_ms, T0 + 5 * HOUR + 56 * MIN + 2 * HOUR);
    assert!(opened(&alerts, AlertKind::BootStorm).is_empty());
}

#[test]
fn a_product_line_waking_ten_times_too_often_raises_wakeup_rate() {
    let devices = fleet(5);
    let mut obs = background(&devices, T0, T0 + 7 * HOUR, 5);
    let class = "001E80 SmallCell";
    for d in class_devices(&devices, class) {
        // Once an hour by design, every six minutes after 4 h.
        let mut t = T0 + d.phase;
        while t < T0 + 7 * HOUR {
            obs.push(inform(d, t, &[Kinds::WAKEUP], false));
            t += if t < T0 + 4 * HOUR { HOUR } else { 6 * MIN };
        }
    }
    let alerts = run(&arrival(obs, 5));
    let class_alerts: Vec<_> = opened(&alerts, AlertKind::WakeupRate)
        .into_iter()
        .filter(|a| a.scope == Scope::ProductClass)
        .collect();
    assert_eq!(class_alerts.len(), 1, "{:#?}", summary(&alerts));
    assert_eq!(class_alerts[0].key, class);
    assert!(class_alerts[0].window_end_ms >= T0 + 4 * HOUR);
    // Devices enter the new rhythm at their next wake-up after 4 h, over an hour;
    // the alert opens on the way up.
    assert!(
        class_alerts[0].window_end_ms <= T0 + 4 * HOUR + 40 * MIN,
        "opened at {} min",
        (class_alerts[0].window_end_ms - T0) / MIN
    );
    // Each device now wakes ten times an hour: a device-scope alert for some of them.
    assert!(opened(&alerts, AlertKind::WakeupRate)
        .iter()
        .any(|a| a.scope == Scope::Device));
    assert!(opened(&alerts, AlertKind::BootStorm).is_empty());
}

#[test]
fn a_factory_reset_wave_raises_bootstrap_wave() {
    let devices = fleet(6);
    let mut obs = background(&devices, T0, T0 + 7 * HOUR, 6);
    let mut rng = Rng::new(6);
    for d in class_devices(&devices, "A0F3C1 Archer-C7")
        .into_iter()
        .take(300)
    {
        let at = T0 + 5 * HOUR + rng.below(5 * MIN as u64) as i64;
        obs.push(inform(d, at, &[Kinds::BOOTSTRAP, Kinds::BOOT], false));
    }
    let alerts = run(&arrival(obs, 6));
    let waves = opened(&alerts, AlertKind::BootstrapWave);
    assert!(
        waves
            .iter()
            .any(|a| a.scope == Scope::ProductClass && a.key == "A0F3C1 Archer-C7"),
        "{:#?}",
        summary(&alerts)
    );
    // Updates follow the wave to its peak: all 300 devices in one window.
    let peak = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::BootstrapWave && a.scope == Scope::ProductClass)
        .map(|a| a.devices)
        .max();
    assert_eq!(peak, Some(300));
    assert!(waves
        .iter()
        .all(|a| a.window_start_ms >= T0 + 5 * HOUR - 5 * MIN));
}

#[test]
fn sessions_failing_fleet_wide_raise_retry_storm() {
    let devices = fleet(7);
    let mut obs = background(&devices, T0, T0 + 6 * HOUR, 7);
    // From 4 h, a third of the informs are retries.
    let mut rng = Rng::new(7);
    for o in obs.iter_mut() {
        if o.time_ms >= T0 + 4 * HOUR && o.time_ms < T0 + 5 * HOUR && rng.chance(0.33) {
            o.retry = true;
        }
    }
    let alerts = run(&arrival(obs, 7));
    let storms = opened(&alerts, AlertKind::RetryStorm);
    assert!(
        storms.iter().any(|a| a.scope == Scope::Fleet),
        "{:#?}",
        summary(&alerts)
    );
    assert!(alerts
        .iter()
        .any(|a| a.kind == AlertKind::RetryStorm && a.state == AlertState::Resolved));
}

#[test]
fn late_records_are_counted_not_folded_in() {
    let devices = fleet(8);
    let mut obs = arrival(background(&devices, T0, T0 + 2 * HOUR, 8), 8);
    // Fifty boots of one class arriving ten minutes after their event time.
    let late_at = obs.len() / 2;
    let now = obs[late_at].time_ms;
    let late: Vec<_> = class_devices(&devices, "202BC1 BM632w")
        .into_iter()
        .take(60)
        .map(|d| inform(d, now - 10 * MIN, &[gen::BOOT], false))
        .collect();
    obs.splice(late_at..late_at, late);
    let mut pipeline =
        cwmp_detect::Pipeline::new(cwmp_detect::DetectConfig::default()).expect("valid defaults");
    let mut alerts = Vec::new();
    for o in &obs {
        pipeline.observe(o, &mut alerts);
    }
    assert_eq!(pipeline.worker.stats().late, 60);
    assert!(alerts.is_empty(), "{:#?}", summary(&alerts));
}

#[test]
fn redelivered_records_are_dropped() {
    let devices = fleet(9);
    let obs = arrival(background(&devices, T0, T0 + 2 * HOUR, 9), 9);
    // Every record of the second hour twice: ingest replayed after a crash.
    let mut twice = Vec::new();
    for o in &obs {
        twice.push(o.clone());
        if o.time_ms >= T0 + HOUR {
            twice.push(o.clone());
        }
    }
    let mut a =
        cwmp_detect::Pipeline::new(cwmp_detect::DetectConfig::default()).expect("valid defaults");
    let mut b =
        cwmp_detect::Pipeline::new(cwmp_detect::DetectConfig::default()).expect("valid defaults");
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for o in &obs {
        a.observe(o, &mut out_a);
    }
    for o in &twice {
        b.observe(o, &mut out_b);
    }
    assert_eq!(b.worker.stats().duplicate as usize, twice.len() - obs.len());
    assert_eq!(a.worker.stats().accepted, b.worker.stats().accepted);
    assert_eq!(out_a, out_b);
}

/// The report that started boot causes: 600 devices upgraded within five minutes
/// opened `boot_storm` on every scope and paged the NOC on a planned rollout.
#[test]
fn a_firmware_rollout_is_a_firmware_rollout_and_never_a_boot_storm() {
    let devices = fleet(5);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, 5);
    let start = T0 + 5 * HOUR;
    let mut rng = Rng::new(5);
    let class = "202BC1 BM632w";
    let upgrade = [Kinds::BOOT, Kinds::TRANSFER_COMPLETE, Kinds::M_DOWNLOAD];
    for d in class_devices(&devices, class).into_iter().take(600) {
        let at = start + rng.below(5 * MIN as u64) as i64;
        obs.push(inform(d, at, &upgrade, false));
    }
    // A few dozen devices of another line apply an autonomous transfer across a
    // reboot (`10 …` counts like `7 …`): too few to open anything.
    for d in class_devices(&devices, "A0F3C1 Archer-C7")
        .into_iter()
        .take(30)
    {
        let at = start + rng.below(5 * MIN as u64) as i64;
        obs.push(inform(
            d,
            at,
            &[Kinds::BOOT, Kinds::TRANSFER_COMPLETE],
            false,
        ));
    }
    let alerts = run(&arrival(obs, 5));
    assert!(
        opened(&alerts, AlertKind::BootStorm).is_empty(),
        "{:#?}",
        summary(&alerts)
    );
    assert!(opened(&alerts, AlertKind::RebootLoop).is_empty());
    let rollout = opened(&alerts, AlertKind::FirmwareRollout);
    let scopes: std::collections::BTreeSet<Scope> = rollout.iter().map(|a| a.scope).collect();
    assert!(
        scopes.contains(&Scope::Fleet) && scopes.contains(&Scope::ProductClass),
        "{:#?}",
        summary(&alerts)
    );
    for a in &rollout {
        if a.scope == Scope::ProductClass {
            assert_eq!(a.key, class);
        }
        assert!(a.window_end_ms >= start && a.window_start_ms <= start + 5 * MIN);
    }
    assert!(rollout.iter().all(|open| alerts
        .iter()
        .any(|a| a.id == open.id && a.state == AlertState::Resolved)));
}

#[test]
fn factory_resets_are_a_bootstrap_wave_and_never_a_boot_storm() {
    let devices = fleet(6);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, 6);
    let start = T0 + 5 * HOUR;
    let mut rng = Rng::new(6);
    for d in class_devices(&devices, "00D09E HG8245H")
        .into_iter()
        .take(400)
    {
        let at = start + rng.below(5 * MIN as u64) as i64;
        obs.push(inform(d, at, &[Kinds::BOOTSTRAP, Kinds::BOOT], false));
    }
    let alerts = run(&arrival(obs, 6));
    assert!(
        opened(&alerts, AlertKind::BootStorm).is_empty(),
        "{:#?}",
        summary(&alerts)
    );
    assert!(opened(&alerts, AlertKind::BootstrapWave)
        .iter()
        .any(|a| a.scope == Scope::ProductClass && a.key == "00D09E HG8245H"));
}

/// A campaign on 600 devices where 15 % of the downloads fail with 9010: one
/// `rollout_failure` on the campaign with its fault breakdown, no `boot_storm`, and it
/// resolves once the campaign has been quiet; a campaign failing 1 % raises nothing.
fn rollout(seed: u64, fail: f64) -> (Vec<Observation>, i64) {
    let devices = fleet(seed);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, seed);
    let start = T0 + 4 * HOUR;
    let mut rng = Rng::new(seed);
    for d in class_devices(&devices, "202BC1 BM632w")
        .into_iter()
        .take(600)
    {
        let at = start + rng.below(20 * MIN as u64) as i64;
        if rng.chance(fail) {
            obs.push(gen::transfer(
                d,
                at,
                "fw-2024-06",
                if rng.chance(0.8) { 9010 } else { 9018 },
            ));
        } else {
            obs.push(gen::upgrade_boot(d, at, "fw-2024-06", "BM632w-2.0"));
            obs.push(gen::transfer(d, at + 2_000, "fw-2024-06", 0));
        }
    }
    (obs, start)
}

#[test]
fn a_failing_rollout_raises_rollout_failure_with_its_faults() {
    let (obs, start) = rollout(21, 0.15);
    let alerts = run(&arrival(obs, 21));
    assert!(
        opened(&alerts, AlertKind::BootStorm).is_empty(),
        "{:#?}",
        summary(&alerts)
    );
    let failing = opened(&alerts, AlertKind::RolloutFailure);
    assert_eq!(failing.len(), 1, "{:#?}", summary(&alerts));
    let open = failing[0];
    assert_eq!(open.scope, Scope::Campaign);
    assert_eq!(open.key, "202BC1 BM632w/fw-2024-06");
    assert!(open.window_end_ms >= start && open.window_end_ms <= start + 30 * MIN);
    assert!(open.count >= 20);
    assert_eq!(open.detail["command_key"], "fw-2024-06");
    assert!(open.detail["results"]["9010"].as_u64().unwrap_or(0) > 0);
    assert!(open.detail["results"]["success"].as_u64().unwrap_or(0) > 0);
    assert!(
        open.detail["versions_after"]["BM632w-2.0"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(open.sample_devices.len(), 10);
    let last = alerts
        .iter()
        .rev()
        .find(|a| a.id == open.id)
        .expect("transitions");
    assert_eq!(last.state, AlertState::Resolved, "{:#?}", summary(&alerts));
    // Whatever opened, it counted every result of the campaign by the end.
    let total: u64 = last.detail["results"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(total, 600);
    assert!(opened(&alerts, AlertKind::FirmwareRollout)
        .iter()
        .any(|a| a.scope == Scope::ProductClass));
}

#[test]
fn a_healthy_rollout_raises_no_rollout_failure() {
    let (obs, _) = rollout(22, 0.01);
    let alerts = run(&arrival(obs, 22));
    assert!(
        opened(&alerts, AlertKind::RolloutFailure).is_empty(),
        "{:#?}",
        summary(&alerts)
    );
    assert!(opened(&alerts, AlertKind::BootStorm).is_empty());
}

/// Workers owning disjoint partitions and one fleet stage decide the campaign exactly
/// as one pipeline does: each slide of results is counted once.
#[test]
fn rollout_failure_does_not_depend_on_the_partitioning() {
    use cwmp_detect::{AggregateMessage, DetectConfig, Fleet, Pipeline, Worker, WorkerOutput};
    let (obs, _) = rollout(23, 0.2);
    let obs = arrival(obs, 23);
    let mut single = Vec::new();
    let mut pipeline = Pipeline::new(DetectConfig::default()).expect("defaults");
    for o in &obs {
        pipeline.observe(o, &mut single);
    }
    let parts = 3;
    let mut workers: Vec<Worker> = (0..parts)
        .map(|p| {
            let mut w = Worker::new(DetectConfig::default()).expect("defaults");
            w.set_partitions(vec![p], parts);
            w
        })
        .collect();
    let mut fleet = Fleet::new(DetectConfig::default()).expect("defaults");
    let mut multi = Vec::new();
    let mut outputs = Vec::new();
    for o in &obs {
        let p = (o.device_id.bytes().map(u32::from).sum::<u32>() % parts as u32) as i32;
        workers[p as usize].observe(p, o, &mut outputs);
        for output in outputs.drain(..) {
            if let WorkerOutput::Aggregate(m) = output {
                fleet.apply(0, m as AggregateMessage, &mut multi);
            }
        }
    }
    let campaign = |alerts: &[Alert]| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a.kind == AlertKind::RolloutFailure)
            .map(Alert::to_json)
            .collect()
    };
    let (a, b) = (campaign(&single), campaign(&multi));
    // Both decided the campaign: it opened, and grew, on both sides.
    assert!(a.len() >= 2 && b.len() >= 2, "{a:#?}\n{b:#?}");
    // The single pipeline may have decided a little further at the very end.
    assert!(
        a.starts_with(&b) && b.len() + 1 >= a.len(),
        "{a:#?}\n{b:#?}"
    );
}
