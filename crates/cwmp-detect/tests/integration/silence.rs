//! `inform_silence`: devices whose informs stopped coming, judged by their own cadence.

use cwmp_detect::{Alert, AlertKind, AlertState, DetectConfig, Kinds, Scope};

use crate::gen::{arrival, background, fleet, inform, outage, HOUR, MIN, T0};
use crate::{run, run_with, summary};

fn silences(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.kind == AlertKind::InformSilence)
        .collect()
}

/// The /24 of 256 hourly BM632w devices, dark from 3 h for 2.5 h.
const NET: &str = "10.0.1.";
const FROM: i64 = T0 + 3 * HOUR;
const TO: i64 = T0 + 5 * HOUR + 30 * MIN;

#[test]
fn a_network_outage_opens_within_three_cadences_and_resolves_without_a_boot() {
    let devices = fleet(31);
    let obs = background(&devices, T0, T0 + 8 * HOUR, 31);
    let obs = arrival(outage(obs, &devices, NET, (FROM, TO), false, 31), 31);
    let alerts = run(&obs);
    let ours: Vec<&Alert> = silences(&alerts)
        .into_iter()
        .filter(|a| a.scope == Scope::Network && a.key == "10.0.1.0/24")
        .collect();
    let open = ours
        .iter()
        .find(|a| a.state == AlertState::Open)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    assert!(
        open.event_time_ms <= FROM + 3 * HOUR,
        "opened {} min after the start",
        (open.event_time_ms - FROM) / MIN
    );
    assert!(open.event_time_ms > FROM + HOUR, "not before the grace");
    let resolved = ours
        .iter()
        .find(|a| a.state == AlertState::Resolved)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    assert_eq!(resolved.id, open.id);
    assert!(resolved.event_time_ms >= TO && resolved.event_time_ms <= TO + 20 * MIN);
    assert_eq!(
        resolved.detail["came_back"], "no_boot",
        "{:#?}",
        resolved.detail
    );
    assert!(resolved.devices > 150, "{}", resolved.devices);
    assert!(resolved.sample_devices.iter().all(|d| d.contains("BM632w")));
    // Every silence raised is about the dark devices' scopes, and none stays open.
    for a in silences(&alerts) {
        assert!(
            ["10.0.1.0/24", "202BC1 BM632w", "BM632w-V1", "BM632w-V2"].contains(&a.key.as_str()),
            "{:#?}",
            summary(&alerts)
        );
    }
    let opens = silences(&alerts)
        .iter()
        .filter(|a| a.state == AlertState::Open)
        .count();
    let closes = silences(&alerts)
        .iter()
        .filter(|a| a.state == AlertState::Resolved)
        .count();
    assert_eq!(opens, closes, "{:#?}", summary(&alerts));
    assert!(
        opened(&alerts, AlertKind::BootStorm).is_empty(),
        "no boot: {:#?}",
        summary(&alerts)
    );
}

fn opened(alerts: &[Alert], kind: AlertKind) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.kind == kind && a.state == AlertState::Open)
        .collect()
}

#[test]
fn a_power_outage_resolves_with_a_boot_and_the_boot_storm_names_it() {
    let devices = fleet(32);
    let obs = background(&devices, T0, T0 + 8 * HOUR, 32);
    let obs = arrival(outage(obs, &devices, NET, (FROM, TO), true, 32), 32);
    let mut config = DetectConfig::default();
    config.scopes.push(Scope::Network);
    let alerts = run_with(config, &obs);
    let resolved = silences(&alerts)
        .into_iter()
        .find(|a| a.scope == Scope::Network && a.state == AlertState::Resolved)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    assert_eq!(resolved.detail["came_back"], "boot");
    let storm = opened(&alerts, AlertKind::BootStorm)
        .into_iter()
        .find(|a| a.scope == Scope::Network)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    assert_eq!(
        storm.detail["follows"],
        resolved.id.as_str(),
        "{:#?}",
        storm.detail
    );
}

/// Silence is judged against the watermark: input that stops (ingest down, a
/// consumer lagging) makes no device overdue however long it stays away, and when
/// it comes back with the records of the meantime nothing was silent.
#[test]
fn when_the_whole_input_stops_nothing_goes_silent() {
    let devices = fleet(33);
    let obs = arrival(background(&devices, T0, T0 + 10 * HOUR, 33), 33);
    let stop = obs.partition_point(|o| o.time_ms < T0 + 3 * HOUR);
    let mut pipeline = cwmp_detect::Pipeline::new(DetectConfig::default()).expect("defaults");
    let mut alerts = Vec::new();
    for o in &obs[..stop] {
        pipeline.observe(o, &mut alerts);
    }
    assert!(
        pipeline.worker.cadences().0 > 3000,
        "{:?}",
        pipeline.worker.cadences()
    );
    assert_eq!(
        pipeline.worker.cadences().1,
        0,
        "nobody overdue while nothing comes"
    );
    for o in &obs[stop..] {
        pipeline.observe(o, &mut alerts);
    }
    assert!(silences(&alerts).is_empty(), "{:#?}", summary(&alerts));
    assert_eq!(pipeline.worker.cadences().1, 0);
}

/// One ACS front-end goes dark while the others go on: an `acs` silence.
#[test]
fn a_dark_acs_front_end_is_an_acs_silence() {
    let devices = fleet(37);
    let obs = background(&devices, T0, T0 + 8 * HOUR, 37);
    let obs = crate::gen::outage_of(obs, &devices, |d| d.acs == "acs-1", (FROM, TO), false, 37);
    let alerts = run(&arrival(obs, 37));
    let acs: Vec<&Alert> = silences(&alerts)
        .into_iter()
        .filter(|a| a.scope == Scope::Acs)
        .collect();
    assert!(
        acs.iter().all(|a| a.key == "acs-1") && acs.iter().any(|a| a.state == AlertState::Open),
        "{:#?}",
        summary(&alerts)
    );
    assert!(acs.iter().any(|a| a.state == AlertState::Resolved));
}

#[test]
fn devices_without_a_cadence_or_with_an_irregular_one_never_go_silent() {
    let devices = fleet(35);
    let mut obs = Vec::new();
    let mut rng = crate::gen::Rng::new(35);
    // Sleepy devices: periodic informs at random gaps of 10 min to 6 h, for a day;
    // then half of them stop for good.
    for (i, d) in devices.iter().enumerate() {
        let mut t = T0 + rng.below(HOUR as u64) as i64;
        let stop = if i % 2 == 0 {
            T0 + 12 * HOUR
        } else {
            T0 + 24 * HOUR
        };
        while t < stop {
            obs.push(inform(d, t, &[Kinds::PERIODIC], false));
            t += 10 * MIN + rng.below(6 * HOUR as u64) as i64;
        }
    }
    let alerts = run(&arrival(obs, 35));
    assert!(silences(&alerts).is_empty(), "{:#?}", summary(&alerts));
}

#[test]
fn a_carried_interval_is_used_at_once() {
    let devices = fleet(36);
    let mut obs = background(&devices, T0, T0 + 6 * HOUR, 36);
    for o in obs.iter_mut() {
        o.inform_interval_s = Some(3600);
    }
    // Dark from 40 min: too early to have learned two gaps, not to know the interval.
    let obs = arrival(
        outage(
            obs,
            &devices,
            NET,
            (T0 + 40 * MIN, T0 + 4 * HOUR),
            false,
            36,
        ),
        36,
    );
    let alerts = run(&obs);
    assert!(
        silences(&alerts)
            .iter()
            .any(|a| a.scope == Scope::Network && a.state == AlertState::Open),
        "{:#?}",
        summary(&alerts)
    );
}

/// A firmware image that bricks some devices: they boot into it, report success,
/// and are never heard of again. The silence counts in the campaign
/// (`silent_after_transfer`), as failures.
#[test]
fn devices_silent_after_their_upgrade_count_in_the_campaign() {
    let devices = fleet(38);
    let mut obs = background(&devices, T0, T0 + 8 * HOUR, 38);
    let class = "00D09E HG8245H";
    let key = "fw-bricks";
    let mut rng = crate::gen::Rng::new(38);
    let mut bricked = std::collections::HashSet::new();
    for d in crate::gen::class_devices(&devices, class) {
        let at = T0 + 3 * HOUR + rng.below(10 * MIN as u64) as i64;
        obs.push(crate::gen::upgrade_boot(d, at, key, "V9"));
        obs.push(crate::gen::transfer(d, at + 1_000, key, 0));
        if bricked.len() < 250 {
            bricked.insert(d.id.clone());
        }
    }
    // The bricked ones send nothing after their transfer result.
    obs.retain(|o| !(bricked.contains(&o.device_id) && o.time_ms > T0 + 3 * HOUR + 11 * MIN));
    let alerts = run(&arrival(obs, 38));
    let failure = alerts
        .iter()
        .rfind(|a| a.kind == AlertKind::RolloutFailure)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    let silent = failure.detail["silent_after_transfer"]
        .as_u64()
        .unwrap_or(0);
    assert!(silent >= 200, "{silent}: {:#?}", failure.detail);
    assert_eq!(failure.detail["results"]["success"], 1200);
    assert!(silences(&alerts)
        .iter()
        .any(|a| a.scope == Scope::ProductClass && a.key == class));
}

/// Devices that never come back are forgotten after `forget_after_ms`: the alert
/// resolves then, saying so, and they no longer count as tracked.
#[test]
fn devices_that_never_come_back_are_forgotten_and_resolve_the_alert() {
    let devices = fleet(39);
    let mut obs = background(&devices, T0, T0 + 12 * HOUR, 39);
    obs.retain(|o| {
        !(o.remote_addr.as_deref().is_some_and(|a| a.starts_with(NET)) && o.time_ms >= FROM)
    });
    let mut config = DetectConfig::default();
    config.inform_silence.forget_after_ms = 2 * HOUR;
    let mut pipeline = cwmp_detect::Pipeline::new(config).expect("valid");
    let mut alerts = Vec::new();
    let before_forget = T0 + 6 * HOUR;
    let mut overdue_then = 0;
    for o in &arrival(obs, 39) {
        if o.time_ms >= before_forget && overdue_then == 0 {
            overdue_then = pipeline.worker.cadences().1;
        }
        pipeline.observe(o, &mut alerts);
    }
    assert!(overdue_then > 200, "{overdue_then}");
    assert_eq!(pipeline.worker.cadences().1, 0, "all forgotten by the end");
    let resolved = silences(&alerts)
        .into_iter()
        .find(|a| a.scope == Scope::Network && a.state == AlertState::Resolved)
        .unwrap_or_else(|| panic!("{:#?}", summary(&alerts)));
    assert_eq!(
        resolved.detail["came_back"], "forgotten",
        "{:#?}",
        resolved.detail
    );
    assert!(resolved.detail["forgotten"].as_u64().unwrap_or(0) > 200);
    assert!(resolved.event_time_ms >= FROM + 2 * HOUR + 90 * MIN);
}
