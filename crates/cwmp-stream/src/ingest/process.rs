//! What one input message becomes: a record for `cwmp.events`, a dead-letter entry,
//! a transfer result waiting for its device, or a skip (a well-formed CWMP message of
//! another RPC). No Kafka I/O here: this runs on the extraction threads; transfers
//! are attributed afterwards, in input order ([`super::sessions`]).

use std::borrow::Cow;
use std::time::Instant;

use cwmp_inform::Options;
use cwmp_record::Source;
use rdkafka::message::{Headers, Message, OwnedHeaders, OwnedMessage};

use super::metrics::KNOWN_RPCS;
use super::sessions::SessionDevice;
use crate::input::{
    parse_received_at, to_message, Extracted, InputError, Parsed, TransferInput, Transport, H_ACS,
    H_CONTENT_TYPE, H_DEVICE_ID, H_RECEIVED_AT, H_REMOTE_ADDR,
};

/// Header names added to dead-letter entries.
pub const H_ERROR_KIND: &str = "cwmp-error-kind";
pub const H_ERROR: &str = "cwmp-error";
pub const H_SOURCE_TOPIC: &str = "cwmp-source-topic";
pub const H_SOURCE_PARTITION: &str = "cwmp-source-partition";
pub const H_SOURCE_OFFSET: &str = "cwmp-source-offset";

#[derive(Debug)]
pub enum Outcome {
    /// An EventRecord (or, once attributed, a TransferRecord), keyed by device id.
    Record {
        key: String,
        payload: Vec<u8>,
        /// Event time (receive time), used as the output's Kafka timestamp.
        event_time_ms: Option<i64>,
        kinds: Vec<cwmp_record::EventKind>,
        boot_cause: Option<cwmp_record::BootCause>,
        warnings: cwmp_inform::Warnings,
        /// The record type, for the `cwmp-rpc` header: `Inform`, `TransferComplete`
        /// or `AutonomousTransferComplete`.
        rpc: &'static str,
        /// For an Inform with a session key: the device, for the session table.
        session: Option<Box<SessionDevice>>,
        /// For a transfer: its outcome, for metrics.
        transfer: Option<cwmp_record::TransferResult>,
    },
    /// A transfer result, not yet tied to its device.
    Transfer(Box<TransferInput<'static>>),
    /// A rejected message: its original bytes go to the dead-letter topic.
    Dlq { kind: &'static str, message: String },
    /// A CWMP message that is not an Inform, counted by RPC name.
    Skipped { rpc: &'static str },
}

/// One processed input: where it came from and what it became.
#[derive(Debug)]
pub struct Processed {
    pub message: OwnedMessage,
    pub outcome: Outcome,
    pub received: Instant,
    pub extract_seconds: f64,
}

fn header<'m>(message: &'m OwnedMessage, name: &str) -> Option<&'m [u8]> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key.eq_ignore_ascii_case(name))
        .find_map(|h| h.value)
}

fn header_str<'m>(message: &'m OwnedMessage, name: &str) -> Result<Option<&'m str>, InputError> {
    match header(message, name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| InputError::Envelope {
                offset: 0,
                reason: format!("header {name} is not UTF-8"),
            }),
    }
}

fn rpc_label(rpc: &str) -> &'static str {
    if rpc.is_empty() {
        return "empty";
    }
    KNOWN_RPCS
        .iter()
        .find(|known| **known == rpc)
        .copied()
        .unwrap_or("other")
}

/// Turns one input message into its outcome.
pub fn process(message: &OwnedMessage, options: &Options) -> Outcome {
    match try_process(message, options) {
        Ok(outcome) => outcome,
        Err(InputError::Inform(cwmp_inform::Error::NotInform { rpc, .. })) => Outcome::Skipped {
            rpc: rpc_label(&rpc),
        },
        // An empty POST ends a CWMP session: traffic, not an error.
        Err(InputError::Inform(cwmp_inform::Error::Empty)) => Outcome::Skipped { rpc: "empty" },
        Err(err) => Outcome::Dlq {
            kind: err.kind(),
            message: err.to_string(),
        },
    }
}

fn try_process(message: &OwnedMessage, options: &Options) -> Result<Outcome, InputError> {
    let payload = message.payload().unwrap_or_default();
    let received_at_ms = match header_str(message, H_RECEIVED_AT)? {
        Some(text) => Some(parse_received_at(text).ok_or_else(|| InputError::Envelope {
            offset: 0,
            reason: format!("header {H_RECEIVED_AT} {text:?} is neither epoch ms nor RFC 3339"),
        })?),
        None => message.timestamp().to_millis(),
    };
    let transport = Transport {
        received_at_ms,
        remote_addr: header_str(message, H_REMOTE_ADDR)?.map(Cow::Borrowed),
        acs: header_str(message, H_ACS)?.map(Cow::Borrowed),
        content_type: header_str(message, H_CONTENT_TYPE)?.map(Cow::Borrowed),
        device_id: header_str(message, H_DEVICE_ID)?.map(Cow::Borrowed),
    };
    let source = Source::kafka(message.topic(), message.partition(), message.offset());
    let Extracted {
        mut record,
        warnings,
        ..
    } = match to_message(payload, transport, source, options)? {
        Parsed::Inform(extracted) => extracted,
        Parsed::Transfer(mut transfer) => {
            if transfer.meta.received_at_ms.is_none() {
                transfer.meta.received_at_ms = message.timestamp().to_millis();
            }
            return Ok(Outcome::Transfer(Box::new(transfer.into_owned())));
        }
    };
    // An envelope without its own receive time falls back to the Kafka timestamp.
    if record.received_at_ms.is_none() {
        record.received_at_ms = message.timestamp().to_millis();
    }
    let mut json = Vec::with_capacity(payload.len() + 256);
    record.write_json(&mut json);
    // A CPE announces a transfer result in its session's Inform (`7 TRANSFER
    // COMPLETE`, `10 AUTONOMOUS TRANSFER COMPLETE`): only such a session, with a
    // session key, is remembered, so the table holds transfer sessions alone.
    let session = (message.key().is_some() && SessionDevice::announces_transfer(&record))
        .then(|| Box::new(SessionDevice::of(&record)));
    Ok(Outcome::Record {
        key: record.device_id.into_owned(),
        payload: json,
        event_time_ms: record.received_at_ms,
        kinds: record.events.iter().map(|e| e.kind).collect(),
        boot_cause: record.boot_cause,
        warnings,
        rpc: "Inform",
        session,
        transfer: None,
    })
}

/// The headers of a dead-letter entry: the original ones, then the error and the source.
pub fn dlq_headers(message: &OwnedMessage, kind: &str, error: &str) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            headers = headers.insert(rdkafka::message::Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    for (key, value) in [
        (H_ERROR_KIND, kind),
        (H_ERROR, error),
        (H_SOURCE_TOPIC, message.topic()),
        (H_SOURCE_PARTITION, partition.as_str()),
        (H_SOURCE_OFFSET, offset.as_str()),
    ] {
        headers = headers.insert(rdkafka::message::Header {
            key,
            value: Some(value),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;

    const INFORM: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><c:Inform xmlns:c="urn:dslforum-org:cwmp-1-0"><DeviceId><OUI>00D09E</OUI><ProductClass>IGD</ProductClass><SerialNumber>S1</SerialNumber></DeviceId><Event><EventStruct><EventCode>1 BOOT</EventCode></EventStruct></Event><ParameterList/></c:Inform></s:Body></s:Envelope>"#;

    fn msg(payload: &str, headers: &[(&str, &str)]) -> OwnedMessage {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(*v),
            });
        }
        OwnedMessage::new(
            Some(payload.as_bytes().to_vec()),
            Some(b"session-1".to_vec()),
            "cwmp.informs.raw".to_owned(),
            Timestamp::CreateTime(1_700_000_000_000),
            3,
            991,
            Some(h),
        )
    }

    #[test]
    fn raw_inform_with_headers() {
        let m = msg(
            INFORM,
            &[
                (H_RECEIVED_AT, "2025-11-24T16:00:00Z"),
                (H_ACS, "acs-eu-1"),
                (H_REMOTE_ADDR, "203.0.113.7"),
            ],
        );
        let Outcome::Record {
            key,
            payload,
            event_time_ms,
            kinds,
            ..
        } = process(&m, &Options::default())
        else {
            panic!("expected a record");
        };
        assert_eq!(key, "00D09E-IGD-S1");
        assert_eq!(event_time_ms, Some(1_764_000_000_000));
        assert_eq!(kinds, vec![cwmp_record::EventKind::Boot]);
        let json: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(
            json["source"],
            serde_json::json!({"topic": "cwmp.informs.raw", "partition": 3, "offset": 991})
        );
        assert_eq!(json["acs"], "acs-eu-1");
        assert_eq!(json["remote_addr"], "203.0.113.7");
    }

    #[test]
    fn kafka_timestamp_when_no_receive_time() {
        let m = msg(INFORM, &[]);
        let Outcome::Record { event_time_ms, .. } = process(&m, &Options::default()) else {
            panic!("expected a record");
        };
        assert_eq!(event_time_ms, Some(1_700_000_000_000));
        let env = serde_json::json!({ "body": INFORM }).to_string();
        let Outcome::Record { event_time_ms, .. } = process(&msg(&env, &[]), &Options::default())
        else {
            panic!("expected a record");
        };
        assert_eq!(event_time_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn rejected_and_skipped() {
        let bad = process(&msg("<html/>", &[]), &Options::default());
        assert!(
            matches!(
                bad,
                Outcome::Dlq {
                    kind: "not_soap",
                    ..
                }
            ),
            "{bad:?}"
        );
        let header = process(
            &msg(INFORM, &[(H_RECEIVED_AT, "yesterday")]),
            &Options::default(),
        );
        assert!(
            matches!(
                header,
                Outcome::Dlq {
                    kind: "invalid_envelope",
                    ..
                }
            ),
            "{header:?}"
        );
        let tc = INFORM.replace("Inform", "TransferComplete");
        assert!(matches!(
            process(&msg(&tc, &[]), &Options::default()),
            Outcome::Transfer(_)
        ));
        let rpc = INFORM.replace("Inform", "GetRPCMethods");
        assert!(matches!(
            process(&msg(&rpc, &[]), &Options::default()),
            Outcome::Skipped {
                rpc: "GetRPCMethods"
            }
        ));
        let odd = INFORM.replace("Inform", "X_Vendor_Thing");
        assert!(matches!(
            process(&msg(&odd, &[]), &Options::default()),
            Outcome::Skipped { rpc: "other" }
        ));
        assert!(matches!(
            process(&msg("", &[]), &Options::default()),
            Outcome::Skipped { rpc: "empty" }
        ));
    }

    #[test]
    fn dlq_keeps_original_headers_and_adds_the_error() {
        let m = msg("<x", &[("trace-id", "abc")]);
        let h = dlq_headers(&m, "malformed_xml", "broken");
        let got: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("trace-id".into(), "abc".into()),
                (H_ERROR_KIND.into(), "malformed_xml".into()),
                (H_ERROR.into(), "broken".into()),
                (H_SOURCE_TOPIC.into(), "cwmp.informs.raw".into()),
                (H_SOURCE_PARTITION.into(), "3".into()),
                (H_SOURCE_OFFSET.into(), "991".into()),
            ]
        );
    }
}
