//! `schemas/`: the published JSON Schemas validate, with a real validator, every
//! record and alert the suite makes, and name exactly the code's vocabularies.

use std::path::{Path, PathBuf};

use cwmp_detect::{AlertKind, AlertState, Scope};
use cwmp_inform::Options;
use cwmp_record::{BootCause, EventKind, Source};
use cwmp_stream::input::{to_message, to_record, Parsed, Transport};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema(name: &str) -> Value {
    let path = root().join("schemas").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a schema is JSON")
}

fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(v: &jsonschema::Validator, what: &str, instance: &Value, failures: &mut Vec<String>) {
    for error in v.iter_errors(instance) {
        failures.push(format!("{what}: {error} at {}", error.instance_path()));
    }
}

/// Every `.xml` file of a folder, in name order.
fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    files.sort();
    files
}

/// The EventRecords of the documented vectors and the real corpus, with a file
/// source and a Kafka source each.
fn document_records() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let dirs = [
        root().join("crates/cwmp-inform/tests/documents"),
        root().join("../shared/corpus/informs"),
    ];
    for dir in &dirs {
        for path in xml_files(dir) {
            let bytes = std::fs::read(&path).expect("read");
            let name = path.display().to_string();
            for (i, source) in [Source::file(name.clone(), None), Source::kafka("raw", 2, 7)]
                .into_iter()
                .enumerate()
            {
                let transport = Transport {
                    received_at_ms: Some(1_795_478_400_000),
                    acs: Some("acs-1".into()),
                    ..Transport::default()
                };
                if let Ok(x) = to_record(&bytes, transport, source, &Options::default()) {
                    let json = x.record.to_json();
                    out.push((
                        format!("{name} #{i}"),
                        serde_json::from_slice(&json).expect("record JSON"),
                    ));
                }
            }
        }
    }
    out
}

/// Records of a simulated fleet with planted incidents, through the extractor.
fn simulated_records() -> Vec<Vec<u8>> {
    let sim = cwmp_sim::Simulator::new(cwmp_sim::SimConfig {
        devices: 3_000,
        duration_ms: 3 * 3_600_000,
        scenarios: [
            "power_cut@60m:model=HG8245H",
            "firmware_rollout@100m:model=VMG8924,share=0.8,fail=0.2",
            "reboot_loop@30m",
            "factory_reset_wave@140m:model=SpeedTouch,share=0.5",
        ]
        .iter()
        .map(|s| s.parse().expect("scenario"))
        .collect(),
        ..cwmp_sim::SimConfig::default()
    });
    let mut out = Vec::new();
    let mut sessions: std::collections::HashMap<
        String,
        cwmp_stream::ingest::sessions::SessionDevice,
    > = std::collections::HashMap::new();
    for (offset, m) in sim.enumerate() {
        if m.rpc != cwmp_sim::SimRpc::Inform {
            // A transfer result goes to the device of its session's Inform (the
            // simulator keys by session, as a front-end does).
            let Some(device) = sessions.get(&m.key) else {
                panic!("a transfer before its session's Inform")
            };
            let transport = Transport {
                received_at_ms: Some(m.received_at_ms),
                ..Transport::default()
            };
            let source = Source::kafka("cwmp.informs.raw", 0, offset as i64);
            let Ok(Parsed::Transfer(t)) =
                to_message(&m.body, transport, source, &Options::default())
            else {
                panic!("the simulator writes valid transfers")
            };
            let record = cwmp_record::TransferRecord::from_transfer(
                t.transfer,
                cwmp_record::Attributed {
                    device_id: device.device_id.clone().into(),
                    device: Some(device.device.clone()),
                    software_version: device.software_version.clone().map(Into::into),
                    how: cwmp_record::Attribution::Session,
                },
                t.meta,
            );
            out.push(record.to_json());
            continue;
        }
        let transport = Transport {
            received_at_ms: Some(m.received_at_ms),
            acs: Some(m.acs.as_str().into()),
            remote_addr: Some(m.remote_addr.as_str().into()),
            content_type: Some(m.content_type.into()),
            device_id: None,
        };
        let source = Source::kafka("cwmp.informs.raw", 0, offset as i64);
        let x = to_record(&m.body, transport, source, &Options::default())
            .expect("the simulator writes valid Informs");
        sessions.insert(
            m.key.clone(),
            cwmp_stream::ingest::sessions::SessionDevice::of(&x.record),
        );
        out.push(x.record.to_json());
    }
    out
}

/// The TransferRecords of the transfer vectors, named by header.
fn transfer_vector_records() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in xml_files(&root().join("crates/cwmp-inform/tests/documents/transfers")) {
        let bytes = std::fs::read(&path).expect("read");
        let transport = Transport {
            received_at_ms: Some(1_795_478_400_000),
            device_id: Some("00D09E-IGD-S1".into()),
            ..Transport::default()
        };
        if let Ok(Parsed::Transfer(t)) = to_message(
            &bytes,
            transport,
            Source::kafka("raw", 1, 3),
            &Options::default(),
        ) {
            let (id, how) = t.named.expect("named by header");
            let record = cwmp_record::TransferRecord::from_transfer(
                t.transfer,
                cwmp_record::Attributed {
                    device_id: id,
                    device: None,
                    software_version: None,
                    how,
                },
                t.meta,
            );
            out.push((
                path.display().to_string(),
                serde_json::from_slice(&record.to_json()).expect("JSON"),
            ));
        }
    }
    out
}

#[test]
fn every_record_and_alert_the_suite_makes_validates() {
    let records = validator("event-record.v1.json");
    let transfers = validator("transfer-record.v1.json");
    let alerts = validator("alert.v1.json");
    let mut failures = Vec::new();
    let vectors = transfer_vector_records();
    assert!(vectors.len() >= 17, "{} transfer vectors", vectors.len());
    for (what, record) in &vectors {
        check(&transfers, what, record, &mut failures);
        // Neither schema accepts the other's records.
        assert!(!records.is_valid(record), "{what} passes as an EventRecord");
    }
    let documents = document_records();
    assert!(documents.len() > 100, "{} documents", documents.len());
    for (what, record) in &documents {
        check(&records, what, record, &mut failures);
    }
    let simulated = simulated_records();
    let mut causes = std::collections::BTreeSet::new();
    let mut simulated_transfers = 0;
    for (i, json) in simulated.iter().enumerate() {
        let value: Value = serde_json::from_slice(json).expect("record JSON");
        if let Some(cause) = value["boot_cause"].as_str() {
            causes.insert(cause.to_owned());
        }
        let v = if value.get("rpc").is_some() {
            simulated_transfers += 1;
            &transfers
        } else {
            &records
        };
        check(v, &format!("simulated record {i}"), &value, &mut failures);
    }
    assert!(simulated_transfers > 100, "{simulated_transfers} transfers");
    assert!(
        causes.len() >= 3,
        "the simulation boots for several causes: {causes:?}"
    );
    let ndjson = simulated.join(&b'\n');
    let mut out = Vec::new();
    let summary = cwmp_stream::detect::replay::replay(
        &cwmp_detect::DetectConfig::default(),
        ndjson.as_slice(),
        &mut out,
        std::io::sink(),
    )
    .expect("replay");
    assert!(summary.alerts > 0, "the planted incidents raise alerts");
    let mut kinds = std::collections::BTreeSet::new();
    for (i, line) in String::from_utf8(out).expect("utf8").lines().enumerate() {
        let alert: Value = serde_json::from_str(line).expect("alert JSON");
        kinds.insert(alert["kind"].as_str().unwrap_or_default().to_owned());
        check(&alerts, &format!("alert {i}"), &alert, &mut failures);
    }
    assert!(
        kinds.contains("firmware_rollout")
            && kinds.contains("boot_storm")
            && kinds.contains("rollout_failure"),
        "{kinds:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the validator is not lenient: a wrong type and an unknown cause fail.
    let (_, mut bad) = documents[0].clone();
    bad["boot_cause"] = Value::from("meteor");
    bad["received_at_ms"] = Value::from("yesterday");
    assert_eq!(records.iter_errors(&bad).count(), 2);
}

fn enum_of(schema: &Value, pointer: &str) -> Vec<Option<String>> {
    schema
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no enum at {pointer}"))
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn names(all: impl IntoIterator<Item = &'static str>) -> Vec<Option<String>> {
    all.into_iter().map(|s| Some(s.to_owned())).collect()
}

#[test]
fn the_schemas_name_exactly_the_codes_vocabularies() {
    let record = schema("event-record.v1.json");
    assert_eq!(
        enum_of(&record, "/properties/events/items/properties/kind/enum"),
        names(EventKind::ALL.iter().map(|k| k.as_str()))
    );
    let mut causes = names(BootCause::ALL.iter().map(|c| c.as_str()));
    causes.push(None);
    assert_eq!(enum_of(&record, "/properties/boot_cause/enum"), causes);
    assert_eq!(
        enum_of(&record, "/properties/warnings/items/enum"),
        names(cwmp_inform::Warning::ALL.iter().map(|w| w.as_str()))
    );
    let alert = schema("alert.v1.json");
    assert_eq!(
        enum_of(&alert, "/properties/kind/enum"),
        names(AlertKind::ALL.iter().map(|k| k.as_str()))
    );
    assert_eq!(
        enum_of(&alert, "/properties/state/enum"),
        names(AlertState::ALL.iter().map(|s| s.as_str()))
    );
    let mut scopes = names(Scope::ALL.iter().map(|s| s.as_str()));
    scopes.push(Some(Scope::Device.as_str().to_owned()));
    scopes.push(Some(Scope::Campaign.as_str().to_owned()));
    scopes.push(Some(Scope::Network.as_str().to_owned()));
    assert_eq!(enum_of(&alert, "/properties/scope/enum"), scopes);
    let transfer = schema("transfer-record.v1.json");
    let mut classes: Vec<Option<String>> = names(cwmp_record::fault_classes());
    classes.sort();
    let mut listed = enum_of(&transfer, "/properties/fault/oneOf/1/properties/class/enum");
    listed.sort();
    assert_eq!(listed, classes);
    assert_eq!(
        enum_of(&transfer, "/properties/result/enum"),
        names(cwmp_record::TransferResult::ALL.iter().map(|r| r.as_str()))
    );
    assert_eq!(
        enum_of(&transfer, "/properties/attribution/enum"),
        names(cwmp_record::Attribution::ALL.iter().map(|a| a.as_str()))
    );
}
