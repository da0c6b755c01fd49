//! `EventRecord` v1: the normalized, device-keyed record of one CWMP Inform; and
//! [`TransferRecord`] v1, of one `TransferComplete` or `AutonomousTransferComplete`.
//!
//! The extractor (`cwmp-inform`) says what a message holds; this crate says what it
//! means and how it travels: the GenieACS-compatible [`device_id`], the bounded
//! [`EventKind`] vocabulary, the [`BootCause`] of a boot, the [`cwmp_version`] rule, trustworthy CPE time
//! ([`cpe_time_ms`]), and the JSON form of [`EventRecord`] that every later stage
//! reads. Encoding uses serde_json; decoding uses simd-json, because the detectors
//! read many more records than ingest writes.
//!
//! ```
//! use cwmp_record::{EventRecord, Meta, Source};
//! let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
//!   <c:Inform xmlns:c="urn:dslforum-org:cwmp-1-0"><DeviceId><OUI>00D09E</OUI>
//!   <ProductClass>IGD</ProductClass><SerialNumber>S-1</SerialNumber></DeviceId>
//!   <Event><EventStruct><EventCode>1 BOOT</EventCode></EventStruct></Event>
//!   </c:Inform></s:Body></s:Envelope>"#;
//! let inform = cwmp_inform::extract(body, &Default::default()).unwrap();
//! let record = EventRecord::from_inform(inform, Meta { source: Source::file("x.xml", None), ..Meta::default() });
//! assert_eq!(record.device_id, "00D09E-IGD-S%2D1");
//! let mut json = record.to_json();
//! let back = EventRecord::from_json(&mut json).unwrap();
//! assert_eq!(back, record);
//! ```

mod boot_cause;
mod device_id;
mod json;
mod kind;
mod record;
mod time;
mod transfer;

pub use boot_cause::{BootCause, BootFacts};
pub use device_id::device_id;
pub use kind::EventKind;
pub use record::{
    cwmp_version, Cwmp, Device, EventRecord, Meta, RecordError, RecordEvent, RecordParam, Source,
    SCHEMA_VERSION,
};
pub use time::{cpe_time_ms, parse_rfc3339_ms, parse_xsd_datetime_ms, Y2000_MS};
pub use transfer::{
    fault_class, fault_classes, record_rpc, Attributed, Attribution, RecordAutonomous, RecordFault,
    RecordRpc, TransferRecord, TransferResult, RPC_HEADER,
};
