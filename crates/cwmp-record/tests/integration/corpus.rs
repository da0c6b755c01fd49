//! The public corpus of real Informs in `../shared/corpus/informs/`: every
//! well-formed envelope must give a record whose device, events and parameter count
//! match what `SOURCES.md` (machine-readable in `analysis.json`) says; fragments and
//! the trace dump are rejected with a clear kind; invalid UTF-8 is repaired with a
//! warning.

use std::fs;

use crate::{outcome, workspace};

#[test]
fn real_informs_match_their_provenance() {
    let dir = workspace().join("../shared/corpus/informs");
    let Ok(analysis) = fs::read(dir.join("analysis.json")) else {
        eprintln!("corpus not present at {}: skipped", dir.display());
        return;
    };
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&analysis).expect("analysis.json");
    assert_eq!(entries.len(), 35, "corpus size changed: update this test");
    let mut records = 0;
    for entry in &entries {
        let file = entry["file"].as_str().expect("file");
        let bytes = fs::read(dir.join(file)).expect("corpus file");
        let got = outcome(&bytes, file);
        let expected_error = match &file[..2] {
            "08" | "29" | "30" | "23" => Some("not_soap"),
            "33" => Some("missing_device_id"),
            _ => None,
        };
        if let Some(kind) = expected_error {
            assert_eq!(got["error"]["kind"], kind, "{file}: {got}");
            continue;
        }
        let record = &got["record"];
        assert!(record.is_object(), "{file}: expected a record, got {got}");
        records += 1;
        let device = &record["device"];
        assert_eq!(device["oui"], entry["OUI"], "{file}");
        assert_eq!(device["serial_number"], entry["SerialNumber"], "{file}");
        assert_eq!(device["product_class"], entry["ProductClass"], "{file}");
        assert_eq!(device["manufacturer"], entry["Manufacturer"], "{file}");
        let codes: Vec<&str> = record["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["code"].as_str().expect("code"))
            .collect();
        let want: Vec<&str> = entry["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e.as_str().expect("code"))
            .collect();
        assert_eq!(codes, want, "{file}");
        assert_eq!(
            record["params"].as_array().expect("params").len() as u64,
            entry["n_params"].as_u64().expect("n_params"),
            "{file}"
        );
        let ns = entry["cwmp_ns"].as_object().expect("cwmp_ns");
        assert!(
            ns.contains_key(record["cwmp"]["namespace"].as_str().expect("ns")),
            "{file}"
        );
        let warnings = record["warnings"].to_string();
        if file.starts_with("28") {
            assert!(warnings.contains("invalid_utf8"), "{file}: {warnings}");
        } else {
            assert!(!warnings.contains("invalid_utf8"), "{file}: {warnings}");
        }
    }
    assert_eq!(
        records, 30,
        "29 complete well-formed envelopes plus 28 (repaired)"
    );
}

#[test]
fn golden_device_ids_from_the_corpus() {
    let dir = workspace().join("../shared/corpus/informs");
    let Ok(bytes) = fs::read(dir.join("27-magma-cavium-oc-lte-enb.xml")) else {
        return;
    };
    let got = outcome(&bytes, "27");
    assert_eq!(
        got["record"]["device_id"],
        "000FB7-Cavium%20eNB-10%2E18%2E104%2E79"
    );
    let bytes = fs::read(dir.join("01-genieacs-initial-huawei-bm632w.xml")).expect("01");
    let got = outcome(&bytes, "01");
    assert_eq!(got["record"]["device_id"], "202BC1-BM632w-8KA8WA1151100043");
}
