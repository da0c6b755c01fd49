//! `EventRecord` v1: the JSON record of one Inform (topic `cwmp.events`, key = `device_id`).

use std::borrow::Cow;

use cwmp_inform::Inform;
use serde::{Deserialize, Serialize};

use crate::{cpe_time_ms, device_id, BootCause, EventKind};

/// The record schema version this crate writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Decodes one record of either type with simd-json (in place: the buffer is
/// modified, strings without escapes borrow from it) and refuses another schema.
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(
    buf: &'a mut [u8],
    schema: impl Fn(&T) -> u32,
) -> Result<T, RecordError> {
    let record: T = simd_json::serde::from_slice(buf).map_err(RecordError::Decode)?;
    match schema(&record) {
        SCHEMA_VERSION => Ok(record),
        other => Err(RecordError::Schema(other)),
    }
}

/// One Inform as a normalized, device-keyed record. Fields serialize in this order.
///
/// Strings borrow from the extracted Inform (and so from the raw message) where they
/// can; decoding with [`EventRecord::from_json`] borrows from the JSON buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord<'a> {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// GenieACS-compatible device id, the Kafka key.
    #[serde(borrow)]
    pub device_id: Cow<'a, str>,
    /// The `DeviceId` fields.
    #[serde(borrow)]
    pub device: Device<'a>,
    /// Event codes in document order.
    #[serde(borrow)]
    pub events: Vec<RecordEvent<'a>>,
    /// Why the device booted, from `events` alone; null without `boot` or
    /// `bootstrap`. Added within schema 1: records written before it have no such
    /// field, and readers derive it from `events` (see [`BootCause::of`]).
    #[serde(default)]
    pub boot_cause: Option<BootCause>,
    /// Protocol facts from the envelope and header.
    #[serde(borrow)]
    pub cwmp: Cwmp<'a>,
    /// `MaxEnvelopes`, null when absent or not a number.
    pub max_envelopes: Option<u32>,
    /// `RetryCount`, null when absent or not a number.
    pub retry_count: Option<u32>,
    /// `CurrentTime` as the CPE wrote it (trimmed).
    #[serde(borrow)]
    pub current_time: Option<Cow<'a, str>>,
    /// `current_time` in epoch ms when it is a valid date-time after 2000-01-01.
    pub cpe_time_ms: Option<i64>,
    /// When the front-end received the message (epoch ms): the event time.
    pub received_at_ms: Option<i64>,
    /// The ACS front-end that received the message.
    #[serde(borrow)]
    pub acs: Option<Cow<'a, str>>,
    /// The CPE's address as the front-end saw it.
    #[serde(borrow)]
    pub remote_addr: Option<Cow<'a, str>>,
    /// Data model root, `InternetGatewayDevice` or `Device`, from the parameter names.
    #[serde(borrow)]
    pub root: Option<Cow<'a, str>>,
    /// `ParameterList` in document order.
    #[serde(borrow)]
    pub params: Vec<RecordParam<'a>>,
    /// Accepted quirks, from a bounded vocabulary.
    #[serde(borrow)]
    pub warnings: Vec<Cow<'a, str>>,
    /// Where the message came from.
    #[serde(borrow)]
    pub source: Source<'a>,
}

/// `DeviceId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device<'a> {
    /// `Manufacturer`.
    #[serde(borrow)]
    pub manufacturer: Cow<'a, str>,
    /// `OUI`.
    #[serde(borrow)]
    pub oui: Cow<'a, str>,
    /// `ProductClass`.
    #[serde(borrow)]
    pub product_class: Cow<'a, str>,
    /// `SerialNumber`.
    #[serde(borrow)]
    pub serial_number: Cow<'a, str>,
}

/// One event code, its kind, and its command key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent<'a> {
    /// The code as sent, e.g. `1 BOOT`.
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    /// What the code means.
    pub kind: EventKind,
    /// The `CommandKey`, empty when none.
    #[serde(borrow)]
    pub command_key: Cow<'a, str>,
}

/// Protocol facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cwmp<'a> {
    /// The CWMP namespace URI of the Inform element.
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
    /// The protocol version, see [`cwmp_version`].
    #[serde(borrow)]
    pub version: Option<Cow<'a, str>>,
    /// `cwmp:ID`.
    #[serde(borrow)]
    pub session_id: Option<Cow<'a, str>>,
    /// `SessionTimeout` header in seconds.
    pub session_timeout: Option<u32>,
    /// `SupportedCWMPVersions` header as written.
    #[serde(borrow)]
    pub supported_versions: Option<Cow<'a, str>>,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordParam<'a> {
    /// Full parameter name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Value exactly as sent (never trimmed).
    #[serde(borrow)]
    pub value: Cow<'a, str>,
    /// `xsi:type` as written, or null.
    #[serde(borrow, rename = "type")]
    pub type_: Option<Cow<'a, str>>,
}

/// Where a message came from: a Kafka position, or a file (and line, for envelope files).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Source<'a> {
    /// Kafka topic.
    #[serde(borrow, skip_serializing_if = "Option::is_none", default)]
    pub topic: Option<Cow<'a, str>>,
    /// Kafka partition.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub partition: Option<i32>,
    /// Kafka offset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<i64>,
    /// File path.
    #[serde(borrow, skip_serializing_if = "Option::is_none", default)]
    pub file: Option<Cow<'a, str>>,
    /// 1-based line number in an envelope file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
}

impl<'a> Source<'a> {
    /// A Kafka position.
    pub fn kafka(topic: impl Into<Cow<'a, str>>, partition: i32, offset: i64) -> Self {
        Source {
            topic: Some(topic.into()),
            partition: Some(partition),
            offset: Some(offset),
            ..Source::default()
        }
    }

    /// A file, and a line when the file holds one envelope per line.
    pub fn file(path: impl Into<Cow<'a, str>>, line: Option<u64>) -> Self {
        Source {
            file: Some(path.into()),
            line,
            ..Source::default()
        }
    }
}

/// What the transport knows about a message, beyond its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta<'a> {
    /// Receive time in epoch ms (the event time).
    pub received_at_ms: Option<i64>,
    /// ACS front-end id.
    pub acs: Option<Cow<'a, str>>,
    /// CPE address.
    pub remote_addr: Option<Cow<'a, str>>,
    /// Origin of the message.
    pub source: Source<'a>,
}

/// The CWMP version of an Inform.
///
/// `cwmp-1-0` → 1.0, `cwmp-1-1` → 1.1, `cwmp-1-2` → 1.2, raised to 1.3 when a
/// `SessionTimeout` header is present and to 1.4 when `SupportedCWMPVersions` is (both
/// were added to the 1-2 namespace); the unofficial `cwmp-1-3` / `cwmp-1-4` namespaces
/// map to 1.3 / 1.4. Anything else is `None`.
pub fn cwmp_version(
    namespace: Option<&str>,
    has_session_timeout: bool,
    has_supported_versions: bool,
) -> Option<&'static str> {
    let suffix = namespace?.strip_prefix("urn:dslforum-org:cwmp-")?;
    Some(match suffix {
        "1-0" => "1.0",
        "1-1" => "1.1",
        "1-2" if has_supported_versions => "1.4",
        "1-2" if has_session_timeout => "1.3",
        "1-2" => "1.2",
        "1-3" => "1.3",
        "1-4" => "1.4",
        _ => return None,
    })
}

/// The data model root named by the first parameter that names one.
fn data_model_root(params: &[cwmp_inform::Param<'_>]) -> Option<&'static str> {
    params.iter().find_map(|p| {
        let first = p.name.split('.').next()?;
        match first {
            "InternetGatewayDevice" => Some("InternetGatewayDevice"),
            "Device" => Some("Device"),
            _ => None,
        }
    })
}

impl<'a> Cwmp<'a> {
    /// The protocol facts of an RPC: its namespace and SOAP header.
    pub fn of(namespace: Option<Cow<'a, str>>, header: cwmp_inform::Header<'a>) -> Self {
        let version = cwmp_version(
            namespace.as_deref(),
            header.session_timeout.is_some(),
            header.supported_cwmp_versions.is_some(),
        );
        Cwmp {
            namespace,
            version: version.map(Cow::Borrowed),
            session_id: header.id,
            session_timeout: header.session_timeout.flatten(),
            supported_versions: header.supported_cwmp_versions,
        }
    }
}

impl<'a> EventRecord<'a> {
    /// Builds the record of an extracted Inform, moving its text (no copy).
    pub fn from_inform(inform: Inform<'a>, meta: Meta<'a>) -> Self {
        let Inform {
            namespace,
            header,
            device_id: dev,
            events,
            max_envelopes,
            retry_count,
            current_time,
            params,
            warnings,
        } = inform;
        let root = data_model_root(&params);
        let events: Vec<RecordEvent<'a>> = events
            .into_iter()
            .map(|e| RecordEvent {
                kind: EventKind::classify(&e.code),
                code: e.code,
                command_key: e.command_key,
            })
            .collect();
        EventRecord {
            schema: SCHEMA_VERSION,
            device_id: Cow::Owned(device_id(&dev.oui, &dev.product_class, &dev.serial_number)),
            device: Device {
                manufacturer: dev.manufacturer,
                oui: dev.oui,
                product_class: dev.product_class,
                serial_number: dev.serial_number,
            },
            boot_cause: BootCause::of(events.iter().map(|e| e.kind)),
            events,
            cwmp: Cwmp::of(namespace, header),
            max_envelopes,
            retry_count,
            cpe_time_ms: current_time.as_deref().and_then(cpe_time_ms),
            current_time,
            received_at_ms: meta.received_at_ms,
            acs: meta.acs,
            remote_addr: meta.remote_addr,
            root: root.map(Cow::Borrowed),
            params: params
                .into_iter()
                .map(|p| RecordParam {
                    name: p.name,
                    value: p.value,
                    type_: p.type_,
                })
                .collect(),
            warnings: warnings.iter().map(|w| Cow::Borrowed(w.as_str())).collect(),
            source: meta.source,
        }
    }

    /// Whether any event has this kind.
    pub fn has_kind(&self, kind: EventKind) -> bool {
        self.events.iter().any(|e| e.kind == kind)
    }

    /// Appends the record as one line of JSON (no trailing newline): exactly what
    /// `serde_json` makes of the `Serialize` derive, written without serde's generic
    /// path. Writing into memory cannot fail.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        crate::json::write(self, out);
    }

    /// The record as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        out
    }

    /// Decodes a record with simd-json. simd-json parses in place, so the buffer is
    /// modified; strings without escapes borrow from it.
    pub fn from_json(buf: &'a mut [u8]) -> Result<Self, RecordError> {
        decode(buf, |r: &EventRecord| r.schema)
    }

    /// Copies every borrowed string, so that the record outlives its buffer.
    pub fn into_owned(self) -> EventRecord<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        EventRecord {
            schema: self.schema,
            device_id: own(self.device_id),
            device: Device {
                manufacturer: own(self.device.manufacturer),
                oui: own(self.device.oui),
                product_class: own(self.device.product_class),
                serial_number: own(self.device.serial_number),
            },
            events: self
                .events
                .into_iter()
                .map(|e| RecordEvent {
                    code: own(e.code),
                    kind: e.kind,
                    command_key: own(e.command_key),
                })
                .collect(),
            boot_cause: self.boot_cause,
            cwmp: Cwmp {
                namespace: self.cwmp.namespace.map(own),
                version: self.cwmp.version.map(own),
                session_id: self.cwmp.session_id.map(own),
                session_timeout: self.cwmp.session_timeout,
                supported_versions: self.cwmp.supported_versions.map(own),
            },
            max_envelopes: self.max_envelopes,
            retry_count: self.retry_count,
            current_time: self.current_time.map(own),
            cpe_time_ms: self.cpe_time_ms,
            received_at_ms: self.received_at_ms,
            acs: self.acs.map(own),
            remote_addr: self.remote_addr.map(own),
            root: self.root.map(own),
            params: self
                .params
                .into_iter()
                .map(|p| RecordParam {
                    name: own(p.name),
                    value: own(p.value),
                    type_: p.type_.map(own),
                })
                .collect(),
            warnings: self.warnings.into_iter().map(own).collect(),
            source: Source {
                topic: self.source.topic.map(own),
                partition: self.source.partition,
                offset: self.source.offset,
                file: self.source.file.map(own),
                line: self.source.line,
            },
        }
    }
}

/// Why a record could not be decoded.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a valid EventRecord JSON document.
    Decode(simd_json::Error),
    /// A record of a schema version this crate does not read.
    Schema(u32),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Decode(e) => write!(f, "cannot decode record: {e}"),
            RecordError::Schema(v) => write!(f, "unsupported record schema {v}"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Decode(e) => Some(e),
            RecordError::Schema(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_serialize_in_contract_order() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><c:Inform xmlns:c="urn:dslforum-org:cwmp-1-0"><DeviceId><OUI>1</OUI><SerialNumber>2</SerialNumber></DeviceId></c:Inform></s:Body></s:Envelope>"#;
        let inform = cwmp_inform::extract(body, &Default::default()).expect("inform");
        let meta = Meta {
            source: Source::kafka("t", 3, 991),
            ..Meta::default()
        };
        let json =
            String::from_utf8(EventRecord::from_inform(inform, meta).to_json()).expect("utf8");
        let order = [
            "\"schema\"",
            "\"device_id\"",
            "\"device\"",
            "\"manufacturer\"",
            "\"oui\"",
            "\"product_class\"",
            "\"serial_number\"",
            "\"events\"",
            "\"boot_cause\"",
            "\"cwmp\"",
            "\"namespace\"",
            "\"version\"",
            "\"session_id\"",
            "\"session_timeout\"",
            "\"supported_versions\"",
            "\"max_envelopes\"",
            "\"retry_count\"",
            "\"current_time\"",
            "\"cpe_time_ms\"",
            "\"received_at_ms\"",
            "\"acs\"",
            "\"remote_addr\"",
            "\"root\"",
            "\"params\"",
            "\"warnings\"",
            "\"source\"",
            "\"topic\"",
            "\"partition\"",
            "\"offset\"",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| {
                json.find(k)
                    .unwrap_or_else(|| panic!("{k} missing in {json}"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(
            json.ends_with(r#""source":{"topic":"t","partition":3,"offset":991}}"#),
            "{json}"
        );
    }

    #[test]
    fn version_rule() {
        let ns = |v: &str| format!("urn:dslforum-org:cwmp-{v}");
        assert_eq!(cwmp_version(Some(&ns("1-0")), true, true), Some("1.0"));
        assert_eq!(cwmp_version(Some(&ns("1-1")), false, false), Some("1.1"));
        assert_eq!(cwmp_version(Some(&ns("1-2")), false, false), Some("1.2"));
        assert_eq!(cwmp_version(Some(&ns("1-2")), true, false), Some("1.3"));
        assert_eq!(cwmp_version(Some(&ns("1-2")), false, true), Some("1.4"));
        assert_eq!(cwmp_version(Some(&ns("1-2")), true, true), Some("1.4"));
        assert_eq!(cwmp_version(Some(&ns("1-3")), false, false), Some("1.3"));
        assert_eq!(cwmp_version(Some(&ns("1-4")), false, false), Some("1.4"));
        assert_eq!(cwmp_version(Some("urn:other"), false, false), None);
        assert_eq!(cwmp_version(None, false, false), None);
    }
}
