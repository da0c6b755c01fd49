//! `cwmp-stream check-config`: validates and prints the effective configuration.

use std::process::Command;

fn run(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cwmp-stream"));
    cmd.arg("check-config").arg(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run")
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cwmp-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_example_config_is_valid_and_secrets_are_redacted() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/cwmp-stream.example.toml");
    let out = run(
        &example,
        &[("CWMP__KAFKA__CLIENT__SASL_PASSWORD", "s3cret-from-env")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("<redacted>"), "{stdout}");
    assert!(
        !stdout.contains("s3cret-from-env") && !stdout.contains("change-me"),
        "{stdout}"
    );
    assert!(stdout.contains("delivery = \"at-least-once\""), "{stdout}");
    let parsed: toml::Table = toml::from_str(&stdout).expect("the output is TOML");
    assert!(parsed.contains_key("kafka"));
}

#[test]
fn invalid_configs_exit_two_with_the_reason() {
    let bad = write("bad.toml", "[ingest]\ndelivery = \"sometimes\"\n");
    let out = run(&bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sometimes") || stderr.contains("delivery"),
        "{stderr}"
    );

    let out = run(std::path::Path::new("/nonexistent/cwmp.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));

    let managed = write(
        "managed.toml",
        "[kafka.consumer]\n\"enable.auto.offset.store\" = \"true\"\n",
    );
    let out = run(&managed, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overrides a property the service manages")
    );
}

/// librdkafka judges every raw property before anything starts: an unknown key, a
/// value of the wrong type, and (when a client is made) what only holds across
/// properties, each named; a log level nobody means is refused with the levels.
#[test]
fn what_librdkafka_or_the_log_filter_would_refuse_is_refused_by_name() {
    let bad = write(
        "refused.toml",
        r#"
        [kafka.client]
        "bogus.property" = "1"
        [kafka.producer]
        "linger.ms" = "soon"
        [log]
        level = "warning"
        "#,
    );
    let out = run(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for says in [
        "kafka.client.\"bogus.property\"",
        "No such configuration property",
        "kafka.producer.\"linger.ms\"",
        "log.level \"warning\"",
        "trace, debug, info, warn, error, off",
    ] {
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
    // A float the way a YAML-to-TOML rendering writes it reads as 5 bytes.
    let cross = write(
        "cross.toml",
        "[kafka.consumer]\n\"fetch.max.bytes\" = \"5.24288e+07\"\n",
    );
    let out = run(&cross, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("fetch.max.bytes"), "{stderr}");
}

/// A person's typos, all at once, each with what was meant and where it was written.
#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let bad = write(
        "typos.toml",
        "[ingest]\ninput_topc = \"raw\"\n\n[detect.rules.boot_storm]\nmin_device = 10\n\n[log]\nlevel = \"verbose\"\n",
    );
    let out = run(&bad, &[("CWMP__INGEST__DELIVERY", "twice")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "4 configuration problems:",
        "ingest.input_topc is unknown; did you mean input_topic? (in ",
        "typos.toml line 2)",
        "detect.rules.boot_storm.min_device is unknown; did you mean min_devices? (in ",
        "typos.toml line 5)",
        "ingest.delivery: unknown variant: found `twice`",
        "(in environment variable CWMP__INGEST__DELIVERY)",
        "log.level \"verbose\": \"verbose\" is not a level",
        "typos.toml line 8)",
    ] {
        assert!(stderr.contains(line), "{line:?} not in\n{stderr}");
    }
}
