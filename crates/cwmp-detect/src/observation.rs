//! What the detectors need of one EventRecord, decoded straight from its JSON.

use std::borrow::Cow;
use std::fmt;

use cwmp_record::{record_rpc, BootCause, BootFacts, EventKind, RecordRpc, Source};
use serde::Deserialize;

/// One record, reduced to what the detectors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub device_id: String,
    /// Event time: `received_at_ms`.
    pub time_ms: i64,
    /// `"<OUI> <ProductClass>"`.
    pub product_class: String,
    pub acs: Option<String>,
    pub software_version: Option<String>,
    pub retry: bool,
    pub kinds: Kinds,
    /// The record's origin (raw topic position), for dropping redeliveries.
    pub source: Option<SourcePos>,
    /// The command key of the record's `M Download` / `M ScheduleDownload` event,
    /// when it has one: the campaign a `firmware_upgrade` boot belongs to.
    pub command_key: Option<String>,
    /// For a TransferRecord: the transfer's result. Such a record is no Inform: it
    /// counts toward its campaign only.
    pub transfer: Option<TransferObs>,
    /// Where the session came from (`remote_addr`): the `network` scope.
    pub remote_addr: Option<String>,
    /// `…ManagementServer.PeriodicInformInterval` (seconds), when the Inform
    /// carries it: the device's cadence, without learning it.
    pub inform_interval_s: Option<u32>,
}

/// What the campaign detector reads of a TransferRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferObs {
    /// `CommandKey` (empty for an autonomous transfer).
    pub command_key: String,
    /// `FaultCode`; `None` when unknown.
    pub code: Option<u32>,
    pub autonomous: bool,
}

/// Position of the raw input a record was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourcePos {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The event kinds the detectors look at, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds(u8);

impl Kinds {
    pub const BOOT: u8 = 1;
    pub const M_REBOOT: u8 = 2;
    pub const BOOTSTRAP: u8 = 4;
    pub const WAKEUP: u8 = 8;
    /// `M Download` or `M ScheduleDownload`.
    pub const M_DOWNLOAD: u8 = 16;
    /// `7 TRANSFER COMPLETE` or `10 AUTONOMOUS TRANSFER COMPLETE`.
    pub const TRANSFER_COMPLETE: u8 = 32;
    /// `2 PERIODIC`.
    pub const PERIODIC: u8 = 64;

    pub fn from_kinds(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        let mut bits = 0;
        for kind in kinds {
            bits |= match kind {
                EventKind::Boot => Self::BOOT,
                EventKind::MReboot => Self::M_REBOOT,
                EventKind::Bootstrap => Self::BOOTSTRAP,
                EventKind::Wakeup => Self::WAKEUP,
                EventKind::MDownload | EventKind::MScheduleDownload => Self::M_DOWNLOAD,
                EventKind::TransferComplete | EventKind::AutonomousTransferComplete => {
                    Self::TRANSFER_COMPLETE
                }
                EventKind::Periodic => Self::PERIODIC,
                _ => 0,
            };
        }
        Kinds(bits)
    }

    pub fn from_bits(bits: u8) -> Self {
        Kinds(bits)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Why the device booted, by the record contract's rule ([`BootCause`]); derived
    /// from the events, so records written before `boot_cause` existed judge the same.
    pub fn boot_cause(self) -> Option<BootCause> {
        BootFacts {
            boot: self.has(Self::BOOT),
            bootstrap: self.has(Self::BOOTSTRAP),
            m_reboot: self.has(Self::M_REBOOT),
            m_download: self.has(Self::M_DOWNLOAD),
            transfer_complete: self.has(Self::TRANSFER_COMPLETE),
        }
        .cause()
    }

    /// An unsolicited boot: power loss, a crash, the button (`local`).
    pub fn local_boot(self) -> bool {
        self.boot_cause() == Some(BootCause::Local)
    }

    /// A boot the ACS asked for (`acs_reboot`).
    pub fn acs_reboot(self) -> bool {
        self.boot_cause() == Some(BootCause::AcsReboot)
    }
}

/// Why a line of EventRecord JSON could not be used.
#[derive(Debug)]
pub enum ObservationError {
    /// Not JSON, or not shaped like an EventRecord v1.
    Decode(simd_json::Error),
    /// A record of another schema version.
    Schema(u32),
    /// A record type (`rpc`) this build does not read.
    RecordType,
    /// `received_at_ms` is null: there is no event time to window by.
    NoEventTime,
}

impl fmt::Display for ObservationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObservationError::Decode(e) => write!(f, "not an EventRecord: {e}"),
            ObservationError::Schema(v) => write!(f, "EventRecord schema {v} is not supported"),
            ObservationError::RecordType => f.write_str("a record type this build does not read"),
            ObservationError::NoEventTime => f.write_str("the record has no received_at_ms"),
        }
    }
}

impl std::error::Error for ObservationError {}

impl ObservationError {
    /// A bounded name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ObservationError::Decode(_) => "decode",
            ObservationError::Schema(_) => "schema",
            ObservationError::RecordType => "record_type",
            ObservationError::NoEventTime => "no_event_time",
        }
    }
}

// The subset of EventRecord v1 the detectors read; other fields are skipped.
#[derive(Deserialize)]
struct View<'a> {
    schema: u32,
    #[serde(borrow)]
    device_id: Cow<'a, str>,
    #[serde(borrow)]
    device: DeviceView<'a>,
    #[serde(borrow)]
    events: Vec<EventView<'a>>,
    retry_count: Option<u32>,
    received_at_ms: Option<i64>,
    #[serde(borrow)]
    acs: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    remote_addr: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Vec<ParamView<'a>>,
    #[serde(borrow)]
    source: Source<'a>,
}

#[derive(Deserialize)]
struct DeviceView<'a> {
    #[serde(borrow)]
    oui: Cow<'a, str>,
    #[serde(borrow)]
    product_class: Cow<'a, str>,
}

#[derive(Deserialize)]
struct EventView<'a> {
    /// The record's own vocabulary; kinds this build does not know are `Unknown`.
    kind: EventKind,
    #[serde(borrow, default)]
    command_key: Cow<'a, str>,
}

// The subset of TransferRecord v1 the detectors read.
#[derive(Deserialize)]
struct TransferView<'a> {
    schema: u32,
    #[serde(borrow)]
    rpc: Cow<'a, str>,
    #[serde(borrow)]
    device_id: Cow<'a, str>,
    #[serde(borrow)]
    device: Option<DeviceView<'a>>,
    #[serde(borrow)]
    command_key: Cow<'a, str>,
    fault: Option<FaultView>,
    #[serde(borrow)]
    software_version: Option<Cow<'a, str>>,
    received_at_ms: Option<i64>,
    #[serde(borrow)]
    acs: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Source<'a>,
}

#[derive(Deserialize)]
struct FaultView {
    code: Option<u32>,
}

/// The command key of an `M Download` / `M ScheduleDownload` event, if non-empty.
fn download_key<'k>(mut events: impl Iterator<Item = (EventKind, &'k str)>) -> Option<String> {
    events
        .find(|(kind, key)| {
            matches!(kind, EventKind::MDownload | EventKind::MScheduleDownload) && !key.is_empty()
        })
        .map(|(_, key)| key.to_owned())
}

#[derive(Deserialize)]
struct ParamView<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

impl Observation {
    /// Decodes one EventRecord JSON document (simd-json parses in place, so the
    /// buffer is modified).
    pub fn from_json(buf: &mut [u8]) -> Result<Self, ObservationError> {
        match record_rpc(buf) {
            RecordRpc::Inform => {}
            RecordRpc::TransferComplete | RecordRpc::AutonomousTransferComplete => {
                return Self::from_transfer_json(buf)
            }
            RecordRpc::Other => return Err(ObservationError::RecordType),
        }
        let view: View<'_> = simd_json::serde::from_slice(buf).map_err(ObservationError::Decode)?;
        if view.schema != cwmp_record::SCHEMA_VERSION {
            return Err(ObservationError::Schema(view.schema));
        }
        let time_ms = view.received_at_ms.ok_or(ObservationError::NoEventTime)?;
        let kinds = Kinds::from_kinds(view.events.iter().map(|e| e.kind));
        let command_key = if kinds.has(Kinds::M_DOWNLOAD) {
            download_key(view.events.iter().map(|e| (e.kind, e.command_key.as_ref())))
        } else {
            None
        };
        let params = || {
            view.params
                .iter()
                .map(|p| (p.name.as_ref(), p.value.as_ref()))
        };
        let software_version = software_version(params());
        let inform_interval_s = inform_interval(params());
        let source = source_pos(&view.source);
        Ok(Observation {
            device_id: view.device_id.into_owned(),
            time_ms,
            product_class: format!("{} {}", view.device.oui, view.device.product_class),
            acs: view.acs.map(Cow::into_owned),
            software_version,
            retry: view.retry_count.unwrap_or(0) > 0,
            kinds,
            source,
            command_key,
            transfer: None,
            remote_addr: view.remote_addr.map(Cow::into_owned),
            inform_interval_s,
        })
    }

    fn from_transfer_json(buf: &mut [u8]) -> Result<Self, ObservationError> {
        let view: TransferView<'_> =
            simd_json::serde::from_slice(buf).map_err(ObservationError::Decode)?;
        if view.schema != cwmp_record::SCHEMA_VERSION {
            return Err(ObservationError::Schema(view.schema));
        }
        let time_ms = view.received_at_ms.ok_or(ObservationError::NoEventTime)?;
        Ok(Observation {
            device_id: view.device_id.into_owned(),
            time_ms,
            product_class: view.device.map_or_else(
                || "unknown".to_owned(),
                |d| format!("{} {}", d.oui, d.product_class),
            ),
            acs: view.acs.map(Cow::into_owned),
            software_version: view.software_version.map(|v| v.trim().to_owned()),
            retry: false,
            kinds: Kinds::default(),
            source: source_pos(&view.source),
            command_key: None,
            transfer: Some(TransferObs {
                command_key: view.command_key.into_owned(),
                code: view.fault.and_then(|f| f.code),
                autonomous: view.rpc == "AutonomousTransferComplete",
            }),
            remote_addr: None,
            inform_interval_s: None,
        })
    }

    /// From a decoded TransferRecord (tests, the simulator). `None` without an event time.
    pub fn from_transfer(record: &cwmp_record::TransferRecord<'_>) -> Option<Self> {
        Some(Observation {
            device_id: record.device_id.to_string(),
            time_ms: record.received_at_ms?,
            product_class: record.device.as_ref().map_or_else(
                || "unknown".to_owned(),
                |d| format!("{} {}", d.oui, d.product_class),
            ),
            acs: record.acs.as_ref().map(|a| a.to_string()),
            software_version: record
                .software_version
                .as_ref()
                .map(|v| v.trim().to_owned()),
            retry: false,
            kinds: Kinds::default(),
            source: source_pos(&record.source),
            command_key: None,
            transfer: Some(TransferObs {
                command_key: record.command_key.to_string(),
                code: record.fault.as_ref().and_then(|f| f.code),
                autonomous: record.autonomous.is_some(),
            }),
            remote_addr: None,
            inform_interval_s: None,
        })
    }

    /// From a decoded record (tests, the simulator). `None` without an event time.
    pub fn from_record(record: &cwmp_record::EventRecord<'_>) -> Option<Self> {
        Some(Observation {
            device_id: record.device_id.to_string(),
            time_ms: record.received_at_ms?,
            product_class: format!("{} {}", record.device.oui, record.device.product_class),
            acs: record.acs.as_ref().map(|a| a.to_string()),
            software_version: software_version(
                record
                    .params
                    .iter()
                    .map(|p| (p.name.as_ref(), p.value.as_ref())),
            ),
            retry: record.retry_count.unwrap_or(0) > 0,
            kinds: Kinds::from_kinds(record.events.iter().map(|e| e.kind)),
            source: source_pos(&record.source),
            command_key: download_key(
                record
                    .events
                    .iter()
                    .map(|e| (e.kind, e.command_key.as_ref())),
            ),
            transfer: None,
            remote_addr: record.remote_addr.as_ref().map(|a| a.to_string()),
            inform_interval_s: inform_interval(
                record
                    .params
                    .iter()
                    .map(|p| (p.name.as_ref(), p.value.as_ref())),
            ),
        })
    }
}

/// The raw-topic position, when the record came from Kafka.
fn source_pos(source: &Source<'_>) -> Option<SourcePos> {
    match source {
        Source {
            topic: Some(topic),
            partition: Some(partition),
            offset: Some(offset),
            ..
        } => Some(SourcePos {
            topic: topic.to_string(),
            partition: *partition,
            offset: *offset,
        }),
        _ => None,
    }
}

/// The value of `…DeviceInfo.SoftwareVersion` among (name, value) pairs, trimmed.
fn software_version<'p>(mut params: impl Iterator<Item = (&'p str, &'p str)>) -> Option<String> {
    params
        .find(|(name, _)| is_software_version(name))
        .map(|(_, value)| value.trim().to_owned())
}

/// The value of `…ManagementServer.PeriodicInformInterval`, when it is a positive
/// number of seconds.
fn inform_interval<'p>(mut params: impl Iterator<Item = (&'p str, &'p str)>) -> Option<u32> {
    params
        .find(|(name, _)| {
            name.trim()
                .ends_with(".ManagementServer.PeriodicInformInterval")
        })
        .and_then(|(_, value)| value.trim().parse::<u32>().ok())
        .filter(|&s| s > 0)
}

/// `InternetGatewayDevice.DeviceInfo.SoftwareVersion` or `Device.DeviceInfo.SoftwareVersion`.
fn is_software_version(name: &str) -> bool {
    name.trim().ends_with(".DeviceInfo.SoftwareVersion")
}
