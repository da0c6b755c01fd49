//! Integration tests of extraction plus record building: the documented test
//! vectors with golden records, the public corpus of real Informs, and the JSON
//! encoder against serde on random records.

mod corpus;
mod documents;
mod json;

use std::path::{Path, PathBuf};

use cwmp_record::{Attributed, Attribution, EventRecord, Meta, Source, TransferRecord};

/// What one message becomes, as the JSON the goldens hold: `{"record": …}` or
/// `{"error": {"kind", "message", "offset"}}`.
pub fn outcome(bytes: &[u8], name: &str) -> serde_json::Value {
    match cwmp_inform::extract(bytes, &cwmp_inform::Options::default()) {
        Ok(inform) => {
            let meta = Meta {
                source: Source::file(name, None),
                ..Meta::default()
            };
            let record = EventRecord::from_inform(inform, meta);
            let json = record.to_json();
            // The hand-written encoder writes exactly what serde's derive would.
            let serde = serde_json::to_vec(&record).expect("serde encode");
            assert_eq!(
                String::from_utf8_lossy(&json),
                String::from_utf8_lossy(&serde),
                "{name}: encoder and serde differ"
            );
            let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
            // Decoding with simd-json must give back the same record.
            let mut buf = json.clone();
            let back = EventRecord::from_json(&mut buf).expect("decode");
            assert_eq!(back, record, "{name}: simd-json round trip");
            serde_json::json!({ "record": value })
        }
        Err(e) => serde_json::json!({
            "error": { "kind": e.kind(), "message": e.to_string(), "offset": e.offset() }
        }),
    }
}

/// What one transfer vector becomes: `{"transfer": …}` (attributed by header to the
/// device `vector`), `{"record": …}` for an Inform, or `{"error": …}`.
pub fn transfer_outcome(bytes: &[u8], name: &str) -> serde_json::Value {
    let options = cwmp_inform::Options::default();
    let fast = cwmp_inform::extract_message(bytes, &options);
    // The parser's shortcut must change nothing here either.
    assert_eq!(
        fast,
        cwmp_inform::extract_message_event_by_event(bytes, &options),
        "{name}: shortcut differs"
    );
    match fast {
        Ok(cwmp_inform::Message::Transfer(t)) => {
            let meta = Meta {
                source: Source::file(name, None),
                ..Meta::default()
            };
            let device = Attributed {
                device_id: "vector".into(),
                device: None,
                software_version: None,
                how: Attribution::Header,
            };
            let record = TransferRecord::from_transfer(t, device, meta);
            let mut json = record.to_json();
            let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
            let back = TransferRecord::from_json(&mut json).expect("decode");
            assert_eq!(back, record, "{name}: simd-json round trip");
            serde_json::json!({ "transfer": value })
        }
        Ok(cwmp_inform::Message::Inform(_)) => outcome(bytes, name),
        Err(e) => serde_json::json!({
            "error": { "kind": e.kind(), "message": e.to_string(), "offset": e.offset() }
        }),
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
