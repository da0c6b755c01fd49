//! TransferRecord v1: the record of one `TransferComplete` or
//! `AutonomousTransferComplete` (topic `cwmp.events`, key = `device_id`, beside the
//! device's EventRecords so that both reach the same detect worker in order).
//!
//! The RPC names no device: ingest attributes it to the device of its session's
//! Inform (or to the device a front-end names), and says how in `attribution`.

use std::borrow::Cow;

use cwmp_inform::Transfer;
use serde::{Deserialize, Serialize};

use crate::record::{Cwmp, Device, Meta, RecordError, Source};
use crate::{cpe_time_ms, SCHEMA_VERSION};

/// One transfer result as a device-keyed record. Fields serialize in this order; the
/// first two (`schema`, `rpc`) tell it from an EventRecord, which has no `rpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord<'a> {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// `TransferComplete` or `AutonomousTransferComplete`.
    #[serde(borrow)]
    pub rpc: Cow<'a, str>,
    /// The device the transfer belongs to (GenieACS id), the Kafka key.
    #[serde(borrow)]
    pub device_id: Cow<'a, str>,
    /// The device's `DeviceId`, from its session's Inform; null when the device was
    /// named by the front-end and its Inform was not seen.
    #[serde(borrow)]
    pub device: Option<Device<'a>>,
    /// How the device was found.
    pub attribution: Attribution,
    /// `CommandKey`: the `Download`'s command key, the campaign (empty for an
    /// autonomous transfer).
    #[serde(borrow)]
    pub command_key: Cow<'a, str>,
    /// The outcome, from `fault.code`.
    pub result: TransferResult,
    /// `FaultStruct`; null when the RPC had none.
    #[serde(borrow)]
    pub fault: Option<RecordFault<'a>>,
    /// `StartTime` as written; `0001-01-01T00:00:00Z` is the spec's "unknown".
    #[serde(borrow)]
    pub start_time: Option<Cow<'a, str>>,
    /// `start_time` in epoch ms when it is a valid date-time after 2000-01-01.
    pub start_time_ms: Option<i64>,
    /// `CompleteTime` as written.
    #[serde(borrow)]
    pub complete_time: Option<Cow<'a, str>>,
    /// `complete_time` in epoch ms when it is a valid date-time after 2000-01-01.
    pub complete_time_ms: Option<i64>,
    /// What only `AutonomousTransferComplete` carries; null for `TransferComplete`.
    #[serde(borrow)]
    pub autonomous: Option<RecordAutonomous<'a>>,
    /// `…DeviceInfo.SoftwareVersion` of the session's Inform (the version the device
    /// ran when it reported), when the Inform was seen.
    #[serde(borrow)]
    pub software_version: Option<Cow<'a, str>>,
    /// Protocol facts from the envelope and header.
    #[serde(borrow)]
    pub cwmp: Cwmp<'a>,
    /// When the front-end received the message (epoch ms): the event time.
    pub received_at_ms: Option<i64>,
    /// The ACS front-end that received the message.
    #[serde(borrow)]
    pub acs: Option<Cow<'a, str>>,
    /// The CPE's address as the front-end saw it.
    #[serde(borrow)]
    pub remote_addr: Option<Cow<'a, str>>,
    /// Accepted quirks, from a bounded vocabulary.
    #[serde(borrow)]
    pub warnings: Vec<Cow<'a, str>>,
    /// Where the message came from.
    #[serde(borrow)]
    pub source: Source<'a>,
}

/// How a transfer was tied to its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The `cwmp-device-id` Kafka header.
    Header,
    /// The envelope's `device_id` field.
    Envelope,
    /// The device of the Inform that opened the same session (same Kafka key on the
    /// same partition, or the same envelope `session`).
    Session,
}

impl Attribution {
    pub const ALL: [Attribution; 3] = [
        Attribution::Header,
        Attribution::Envelope,
        Attribution::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Header => "header",
            Attribution::Envelope => "envelope",
            Attribution::Session => "session",
        }
    }
}

/// What a transfer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferResult {
    /// `FaultCode` 0.
    Success,
    /// Any other `FaultCode`.
    Failure,
    /// No `FaultStruct`, no `FaultCode`, or not a number.
    Unknown,
}

impl TransferResult {
    pub const ALL: [TransferResult; 3] = [
        TransferResult::Success,
        TransferResult::Failure,
        TransferResult::Unknown,
    ];

    /// From a `FaultCode`.
    pub fn of(code: Option<u32>) -> Self {
        match code {
            Some(0) => TransferResult::Success,
            Some(_) => TransferResult::Failure,
            None => TransferResult::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferResult::Success => "success",
            TransferResult::Failure => "failure",
            TransferResult::Unknown => "unknown",
        }
    }
}

/// `FaultStruct` with its code's bounded class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFault<'a> {
    /// `FaultCode` as a number; null when absent or not a number.
    pub code: Option<u32>,
    /// [`fault_class`] of the code.
    #[serde(borrow)]
    pub class: Cow<'a, str>,
    /// `FaultString`, empty on success.
    #[serde(borrow)]
    pub string: Cow<'a, str>,
}

/// `AutonomousTransferComplete`'s own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAutonomous<'a> {
    #[serde(borrow)]
    pub announce_url: Cow<'a, str>,
    #[serde(borrow)]
    pub transfer_url: Cow<'a, str>,
    pub is_download: Option<bool>,
    /// e.g. `1 Firmware Upgrade Image`.
    #[serde(borrow)]
    pub file_type: Cow<'a, str>,
    pub file_size: Option<u64>,
    #[serde(borrow)]
    pub target_file_name: Cow<'a, str>,
}

/// The codes TR-069 defines for transfer faults, each its own class.
const DEFINED: [&str; 32] = [
    "9001", "9002", "9003", "9004", "9005", "9006", "9007", "9008", "9009", "9010", "9011", "9012",
    "9013", "9014", "9015", "9016", "9017", "9018", "9019", "9020", "9021", "9022", "9023", "9024",
    "9025", "9026", "9027", "9028", "9029", "9030", "9031", "9032",
];

/// A fault code's class, from a bounded set (safe as a metric label): `none` for 0
/// (success), the code itself for 9001–9032, `vendor` for 9800–9899, `other` for
/// anything else, `unknown` when there is no code.
pub fn fault_class(code: Option<u32>) -> &'static str {
    match code {
        None => "unknown",
        Some(0) => "none",
        Some(c @ 9001..=9032) => DEFINED[(c - 9001) as usize],
        Some(9800..=9899) => "vendor",
        Some(_) => "other",
    }
}

/// Every value [`fault_class`] can return.
pub fn fault_classes() -> impl Iterator<Item = &'static str> {
    ["none", "unknown", "vendor", "other"]
        .into_iter()
        .chain(DEFINED)
}

/// The device a transfer was attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributed<'a> {
    pub device_id: Cow<'a, str>,
    /// The device's `DeviceId`, when its Inform was seen.
    pub device: Option<Device<'a>>,
    /// The software version of the session's Inform, when seen.
    pub software_version: Option<Cow<'a, str>>,
    pub how: Attribution,
}

impl<'a> TransferRecord<'a> {
    /// Builds the record of an extracted transfer and the device it belongs to.
    pub fn from_transfer(transfer: Transfer<'a>, device: Attributed<'a>, meta: Meta<'a>) -> Self {
        let rpc = transfer.rpc();
        let Transfer {
            namespace,
            header,
            command_key,
            fault,
            start_time,
            complete_time,
            autonomous,
            warnings,
        } = transfer;
        let code = fault.as_ref().and_then(|f| f.code);
        TransferRecord {
            schema: SCHEMA_VERSION,
            rpc: Cow::Borrowed(rpc),
            device_id: device.device_id,
            device: device.device,
            attribution: device.how,
            command_key,
            result: TransferResult::of(code),
            fault: fault.map(|f| RecordFault {
                code: f.code,
                class: Cow::Borrowed(fault_class(f.code)),
                string: f.string,
            }),
            start_time_ms: start_time.as_deref().and_then(cpe_time_ms),
            start_time,
            complete_time_ms: complete_time.as_deref().and_then(cpe_time_ms),
            complete_time,
            autonomous: autonomous.map(|a| RecordAutonomous {
                announce_url: a.announce_url,
                transfer_url: a.transfer_url,
                is_download: a.is_download,
                file_type: a.file_type,
                file_size: a.file_size,
                target_file_name: a.target_file_name,
            }),
            software_version: device.software_version,
            cwmp: Cwmp::of(namespace, header),
            received_at_ms: meta.received_at_ms,
            acs: meta.acs,
            remote_addr: meta.remote_addr,
            warnings: warnings.iter().map(|w| Cow::Borrowed(w.as_str())).collect(),
            source: meta.source,
        }
    }

    /// Appends the record as one line of JSON (no trailing newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing plain data with string keys into memory cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    /// The record as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(768);
        self.write_json(&mut out);
        out
    }

    /// Decodes a record (simd-json parses in place, so the buffer is modified).
    pub fn from_json(buf: &'a mut [u8]) -> Result<Self, RecordError> {
        crate::record::decode(buf, |r: &TransferRecord| r.schema)
    }
}

/// The Kafka header naming the record type of a `cwmp.events` message: `Inform`,
/// `TransferComplete` or `AutonomousTransferComplete`, so that readers filter
/// without parsing.
pub const RPC_HEADER: &str = "cwmp-rpc";

/// The record type of one line of `cwmp.events` JSON. Cheap for what this crate
/// writes: a TransferRecord starts `{"schema":1,"rpc":"…"`, an EventRecord
/// `{"schema":1,"device_id":` (no `rpc`), and those are told from their first bytes.
/// JSON from other writers (other key order, white space) is scanned for an `"rpc"`
/// key: inside a JSON string a quote is always escaped, so the bytes `"rpc"`
/// followed by `:` occur only as a key. The scan does not track depth: it relies on
/// no nested object of either schema having an `rpc` key (only the TransferRecord
/// has one, at the top).
pub fn record_rpc(json: &[u8]) -> RecordRpc {
    const TRANSFER: &[u8] = b"{\"schema\":1,\"rpc\":\"";
    const EVENT: &[u8] = b"{\"schema\":1,\"device_id\":";
    if let Some(rest) = json.strip_prefix(TRANSFER) {
        return rpc_named(rest);
    }
    if json.starts_with(EVENT) {
        return RecordRpc::Inform;
    }
    let mut from = 0;
    while let Some(at) = json[from..].windows(5).position(|w| w == b"\"rpc\"") {
        let after = &json[from + at + 5..];
        let after = skip_ws(after);
        if let Some(value) = after.strip_prefix(b":") {
            if let Some(rest) = skip_ws(value).strip_prefix(b"\"") {
                return rpc_named(rest);
            }
            return RecordRpc::Other;
        }
        from += at + 5;
    }
    RecordRpc::Inform
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(bytes.len());
    &bytes[n..]
}

/// The record type named at the start of `rest` (just after the opening quote).
fn rpc_named(rest: &[u8]) -> RecordRpc {
    if rest.starts_with(b"TransferComplete\"") {
        RecordRpc::TransferComplete
    } else if rest.starts_with(b"AutonomousTransferComplete\"") {
        RecordRpc::AutonomousTransferComplete
    } else if rest.starts_with(b"Inform\"") {
        RecordRpc::Inform
    } else {
        RecordRpc::Other
    }
}

/// What [`record_rpc`] found; also the value of the `cwmp-rpc` Kafka header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordRpc {
    /// An EventRecord.
    Inform,
    TransferComplete,
    AutonomousTransferComplete,
    /// A record type this build does not know (a newer writer).
    Other,
}

impl RecordRpc {
    /// From a `cwmp-rpc` header value.
    pub fn from_header(value: &[u8]) -> Self {
        match value {
            b"Inform" => RecordRpc::Inform,
            b"TransferComplete" => RecordRpc::TransferComplete,
            b"AutonomousTransferComplete" => RecordRpc::AutonomousTransferComplete,
            _ => RecordRpc::Other,
        }
    }

    pub fn is_transfer(self) -> bool {
        matches!(
            self,
            RecordRpc::TransferComplete | RecordRpc::AutonomousTransferComplete
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_classes_are_bounded() {
        assert_eq!(fault_class(Some(0)), "none");
        assert_eq!(fault_class(Some(9001)), "9001");
        assert_eq!(fault_class(Some(9010)), "9010");
        assert_eq!(fault_class(Some(9032)), "9032");
        assert_eq!(fault_class(Some(9033)), "other");
        assert_eq!(fault_class(Some(9850)), "vendor");
        assert_eq!(fault_class(Some(1)), "other");
        assert_eq!(fault_class(None), "unknown");
        assert_eq!(fault_classes().count(), 36);
    }

    #[test]
    fn the_type_is_read_from_the_head() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><c:TransferComplete xmlns:c="urn:dslforum-org:cwmp-1-0"><CommandKey>k</CommandKey><FaultStruct><FaultCode>0</FaultCode><FaultString/></FaultStruct><StartTime>2024-06-01T02:00:00Z</StartTime><CompleteTime>0001-01-01T00:00:00Z</CompleteTime></c:TransferComplete></s:Body></s:Envelope>"#;
        let cwmp_inform::Message::Transfer(t) =
            cwmp_inform::extract_message(body, &Default::default()).expect("transfer")
        else {
            panic!("not a transfer")
        };
        let record = TransferRecord::from_transfer(
            t,
            Attributed {
                device_id: "D-1".into(),
                device: None,
                software_version: None,
                how: Attribution::Header,
            },
            Meta::default(),
        );
        assert_eq!(record.result, TransferResult::Success);
        assert_eq!(record.start_time_ms, Some(1_717_207_200_000));
        assert_eq!(record.complete_time_ms, None);
        let mut json = record.to_json();
        assert_eq!(record_rpc(&json), RecordRpc::TransferComplete);
        assert_eq!(
            TransferRecord::from_json(&mut json).expect("decodes"),
            record
        );
        assert_eq!(
            record_rpc(br#"{"schema":1,"device_id":"x"}"#),
            RecordRpc::Inform
        );
    }
}
