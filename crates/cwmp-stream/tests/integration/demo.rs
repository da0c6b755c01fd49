//! `cwmp-stream demo` end to end on its embedded broker: the planted incidents are
//! found, and nothing else.

use std::process::Command;

#[test]
fn a_short_demo_finds_what_was_planted_and_nothing_else() {
    let out = Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
        .args([
            "demo",
            "--devices",
            "3000",
            "--duration",
            "5h",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("metrics at http://127.0.0.1:"), "{stderr}");
    // Every simulated Inform became a record; none was late for the detectors.
    let simulated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("simulate"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a simulate line");
    assert!(simulated > 5_000, "{stdout}");
    // Every message became a record, the transfer results (TransferComplete after a
    // rollout's Inform, autonomous transfers) too: attributed to the device of their
    // session, nothing skipped.
    let transfers = stdout
        .lines()
        .find_map(|l| l.split_once("; ")?.1.strip_suffix(" transfer results)"))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the simulate line counts transfer results");
    assert!(transfers > 0, "autonomous transfers ride along: {stdout}");
    assert!(
        stdout.contains(&format!(
            "({simulated} records of which {transfers} transfer results, 0 DLQ, 0 skipped)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("(0 late; state: "), "{stdout}");
    // The detector state was checkpointed while the demo ran.
    let checkpoints = stdout
        .lines()
        .find_map(|l| {
            l.split_once("state: ")?
                .1
                .split_once(" checkpoints")?
                .0
                .parse::<u64>()
                .ok()
        })
        .expect("the detect line counts checkpoints");
    assert!(checkpoints > 0, "{stdout}");
    let alert = |kind: &str, scope: &str, key: &str| {
        stdout.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[0] == kind && f[1] == scope && (key.is_empty() || l.contains(key))
        })
    };
    assert!(
        alert("boot_storm", "product_class", "00E0FC HG8245H"),
        "{stdout}"
    );
    assert!(alert("reboot_loop", "device", ""), "{stdout}");
    assert!(
        alert("acs_mass_reboot", "product_class", "00147F SpeedTouch 780"),
        "{stdout}"
    );
    assert!(
        !alert("boot_storm", "product_class", "SpeedTouch"),
        "an ACS campaign is not a storm:\n{stdout}"
    );
    // The rollout is a rollout, and its failing share is a rollout_failure with the
    // fault breakdown; never a boot storm.
    assert!(
        alert("firmware_rollout", "product_class", "VMG8924"),
        "{stdout}"
    );
    assert!(alert("rollout_failure", "campaign", "VMG8924"), "{stdout}");
    assert!(!alert("boot_storm", "product_class", "VMG8924"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("VMG8924") && l.contains("failed of") && l.contains("9010: ")),
        "{stdout}"
    );
    // The regional network outage (60 min in, 150 min long, 1,024 addresses, hourly
    // devices) is seen while it lasts: one inform_silence per /24, opened within three
    // cadences of its start, resolved once the devices are back — without a boot, so
    // no boot storm.
    let silences: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("network 100.64.") && l.contains("devices overdue"))
        .collect();
    assert_eq!(silences.len(), 4, "{stdout}");
    for line in &silences {
        let cadences: f64 = line
            .split_once(" (")
            .and_then(|(_, r)| r.split_once(" cadences)"))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!((1.0..=3.0).contains(&cadences), "{line}");
        assert!(
            line.contains("came back without a boot (network)"),
            "{line}"
        );
    }
    assert!(
        alert("inform_silence", "network", "100.64.4.0/24"),
        "{stdout}"
    );
    // (With 3,000 devices the region is a third of the fleet: its other scopes go
    // silent too, all explained by the outage; with the default 20,000 only the /24s.)
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    assert!(!stdout.contains("could not be read as alerts"), "{stdout}");
    assert!(
        stdout.contains("nothing was raised where nothing was planted"),
        "{stdout}"
    );
}
