//! The simulator: deterministic, realistic, and its scenarios land where asked.

use cwmp_inform::{extract, Options};
use cwmp_sim::{format_utc, Scenario, ScenarioKind, SimConfig, SimRpc, Simulator};

fn config(devices: usize, hours: i64, scenarios: &[&str]) -> SimConfig {
    SimConfig {
        devices,
        duration_ms: hours * 3_600_000,
        scenarios: scenarios
            .iter()
            .map(|s| s.parse().expect("scenario"))
            .collect(),
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_same_messages() {
    let a: Vec<_> = Simulator::new(config(300, 2, &["power_cut@1h"])).collect();
    let b: Vec<_> = Simulator::new(config(300, 2, &["power_cut@1h"])).collect();
    assert_eq!(a, b);
    let mut other = config(300, 2, &["power_cut@1h"]);
    other.seed = 2;
    let c: Vec<_> = Simulator::new(other).collect();
    assert_ne!(a, c);
}

#[test]
fn every_message_extracts_to_its_device_in_time_order() {
    let sim = Simulator::new(config(
        500,
        3,
        &["acs_reboot@1h", "factory_reset_wave@2h", "wakeup_storm@30m"],
    ));
    let devices = sim.devices().to_vec();
    let mut last = i64::MIN;
    let mut styles = std::collections::BTreeSet::new();
    let mut n = 0;
    for m in sim {
        n += 1;
        assert!(m.received_at_ms >= last.saturating_sub(1000), "time order");
        last = last.max(m.received_at_ms);
        if m.rpc != SimRpc::Inform {
            // A transfer result: checked in its own test.
            continue;
        }
        let inform = extract(&m.body, &Options::default()).expect("a valid Inform");
        let d = &devices[m.device];
        let id = cwmp_record::device_id(
            &inform.device_id.oui,
            &inform.device_id.product_class,
            &inform.device_id.serial_number,
        );
        assert_eq!(id, d.device_id);
        assert!(!inform.events.is_empty());
        styles.insert((
            m.body.starts_with(b"<?xml"),
            m.body.windows(2).any(|w| w == b"\r\n"),
            inform.header.id.is_some(),
        ));
    }
    assert!(n > 1000, "{n}");
    assert!(styles.len() >= 3, "wire styles vary: {styles:?}");
}

#[test]
fn a_power_cut_boots_its_model_within_the_spread_with_retries() {
    let sim = Simulator::new(config(2000, 3, &["power_cut@1h:model=HG8245H,share=0.9"]));
    let planted = sim.planted()[0].clone();
    assert_eq!(planted.scenario.kind, ScenarioKind::PowerCut);
    assert_eq!(planted.product_classes, vec!["00E0FC HG8245H".to_owned()]);
    assert!(planted.devices.len() > 400, "{}", planted.devices.len());
    let start = SimConfig::default().start_ms + 3_600_000;
    let mut boots = 0;
    let mut retried = 0;
    for m in sim.filter(|m| m.rpc == SimRpc::Inform) {
        let inform = extract(&m.body, &Options::default()).expect("inform");
        if inform.events.iter().any(|e| e.code.trim() == "1 BOOT")
            && m.received_at_ms >= start
            && m.received_at_ms < start + 5 * 60_000
        {
            boots += 1;
            if inform.retry_count.is_some_and(|r| r > 0) {
                retried += 1;
            }
        }
    }
    assert!(boots >= planted.devices.len());
    assert!(retried > 0 && retried < boots / 2, "{retried} of {boots}");
}

#[test]
fn scenarios_parse_with_clear_errors() {
    let s: Scenario = "reboot_loop@90m:count=2,every=5m,for=1h"
        .parse()
        .expect("parse");
    assert_eq!(
        (s.at_ms, s.count, s.every_ms, s.for_ms),
        (5_400_000, 2, 300_000, 3_600_000)
    );
    for (bad, says) in [
        ("power_cut", "kind@offset"),
        ("meteor@1h", "unknown scenario"),
        ("power_cut@soon", "not a duration"),
        ("power_cut@1h:share=2", "more than 1"),
        ("power_cut@1h:colour=red", "unknown option"),
        ("firmware_rollout@1h:fault=x", "not a fault code"),
        ("firmware_rollout@1h:fail=1.5", "more than 1"),
    ] {
        let err = bad.parse::<Scenario>().expect_err(bad).to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn utc_formatting() {
    assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_utc(1_795_478_400_000), "2026-11-24T00:00:00Z");
    assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
}

#[test]
fn huge_scenario_spans_stop_at_the_end_of_the_simulation() {
    let sim = Simulator::new(config(
        50,
        1,
        &["reboot_loop@10m:count=2,every=1s,for=100000d"],
    ));
    let n = sim.count();
    // Two devices booting every second for the 50 remaining minutes, plus the fleet.
    assert!(n > 2 * 50 * 60 && n < 2 * 50 * 60 + 1_000, "{n}");
}

#[test]
fn a_firmware_rollout_boots_into_the_new_version_and_reports_each_transfer() {
    let sim = Simulator::new(config(
        2000,
        3,
        &["firmware_rollout@1h:model=HG8245H,share=0.5,fail=0.2,fault=9018,to=V9"],
    ));
    let planted = sim.planted()[0].clone();
    assert_eq!(planted.scenario.kind, ScenarioKind::FirmwareRollout);
    let key = planted.scenario.campaign_key();
    let start = SimConfig::default().start_ms + 3_600_000;
    let text = |m: &cwmp_sim::SimMessage| String::from_utf8_lossy(&m.body).into_owned();
    let mut session_of_rollout = std::collections::HashMap::new();
    let (mut booted, mut failed, mut ok, mut autonomous, mut upgraded_periodic) = (0, 0, 0, 0, 0);
    for m in sim {
        match m.rpc {
            SimRpc::Inform => {
                let inform = extract(&m.body, &Options::default()).expect("inform");
                let codes: Vec<&str> = inform.events.iter().map(|e| e.code.as_ref()).collect();
                let version = inform
                    .params
                    .iter()
                    .find(|p| p.name.ends_with("SoftwareVersion"))
                    .map(|p| p.value.to_string());
                if inform.events.iter().any(|e| e.command_key == key) {
                    assert!(codes.contains(&"7 TRANSFER COMPLETE"), "{codes:?}");
                    assert!(m.received_at_ms >= start && m.received_at_ms < start + 11 * 60_000);
                    if codes.contains(&"1 BOOT") {
                        booted += 1;
                        assert_eq!(version.as_deref(), Some("V9"), "boots into the new image");
                    }
                    session_of_rollout.insert(m.key.clone(), codes.contains(&"1 BOOT"));
                } else if codes == ["2 PERIODIC"] && version.as_deref() == Some("V9") {
                    upgraded_periodic += 1;
                }
            }
            SimRpc::TransferComplete => {
                let body = text(&m);
                let booted = session_of_rollout
                    .get(&m.key)
                    .copied()
                    .expect("a TransferComplete follows its session's Inform, under its key");
                assert!(
                    body.contains(&format!("<CommandKey>{key}</CommandKey>")),
                    "{body}"
                );
                if booted {
                    assert!(body.contains("<FaultCode>0</FaultCode>"), "{body}");
                    ok += 1;
                } else {
                    assert!(body.contains("<FaultCode>9018</FaultCode>"), "{body}");
                    failed += 1;
                }
            }
            SimRpc::AutonomousTransferComplete => {
                assert!(text(&m).contains("AutonomousTransferComplete"));
                autonomous += 1;
            }
        }
    }
    assert_eq!(booted + failed, planted.devices.len());
    assert_eq!(ok, booted);
    assert!(failed > planted.devices.len() / 10 && failed < planted.devices.len() * 3 / 10);
    assert!(upgraded_periodic > 0, "later informs carry the new version");
    assert!(autonomous > 0, "autonomous transfers ride along as noise");
}

#[test]
fn an_outage_silences_its_network_and_brings_it_back_as_asked() {
    for (ret, boot) in [("noboot", false), ("boot", true)] {
        let scenario = format!("outage@1h:network=100.64.1.0/24,for=2h,return={ret}");
        // No stray boots: the first inform after the outage is the outage's.
        let sim = Simulator::new(SimConfig {
            stray_boots_per_day: 0.0,
            ..config(1000, 6, &[&scenario])
        });
        let planted = sim.planted()[0].clone();
        assert_eq!(planted.scenario.kind, ScenarioKind::Outage);
        assert_eq!(planted.devices.len(), 256, "the whole /24");
        assert_eq!(planted.period_ms, 3_600_000, "{planted:?}");
        let devices = sim.devices().to_vec();
        let start = SimConfig::default().start_ms + 3_600_000;
        let end = start + 2 * 3_600_000;
        let mut inside = 0;
        let mut back = std::collections::BTreeSet::new();
        let mut others_during = 0;
        for m in sim.filter(|m| m.rpc == SimRpc::Inform) {
            let dark = devices[m.device].remote_addr.starts_with("100.64.1.");
            // (Received up to half a second after it was sent.)
            let during = m.received_at_ms >= start + 500 && m.received_at_ms < end;
            if dark && during {
                inside += 1;
            }
            if !dark && during {
                others_during += 1;
            }
            if dark && m.received_at_ms >= end && back.insert(m.device) {
                // The first inform after the outage says how it ended.
                let inform = extract(&m.body, &Options::default()).expect("inform");
                let booted = inform.events.iter().any(|e| e.code.trim() == "1 BOOT");
                assert_eq!(booted, boot, "{ret}");
                let by = if boot {
                    5 * 60_000
                } else {
                    devices[m.device].period_ms
                };
                assert!(
                    m.received_at_ms < end + by + 1_000,
                    "{ret}: back in time: {} ms after the end, period {}",
                    m.received_at_ms - end,
                    devices[m.device].period_ms
                );
            }
        }
        assert_eq!(inside, 0, "nothing gets through while it lasts");
        assert!(others_during > 1000, "the rest of the fleet goes on");
        assert_eq!(back.len(), 256, "every device comes back");
    }
}

#[test]
fn models_that_carry_their_interval_say_it_in_every_inform() {
    let sim = Simulator::new(config(200, 1, &[]));
    let models = sim.models().to_vec();
    let devices = sim.devices().to_vec();
    for m in sim.filter(|m| m.rpc == SimRpc::Inform) {
        let model = &models[devices[m.device].model];
        let inform = extract(&m.body, &Options::default()).expect("inform");
        let carried = inform
            .params
            .iter()
            .find(|p| p.name.ends_with("ManagementServer.PeriodicInformInterval"))
            .map(|p| p.value.to_string());
        assert_eq!(
            carried,
            model.carries_interval.then(|| model.periodic_s.to_string()),
            "{}",
            model.product_class
        );
    }
}
