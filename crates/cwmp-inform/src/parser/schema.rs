//! What the CWMP schema makes of each element: where it sits in the envelope
//! ([`Ctx`]), which elements' text is kept ([`Field`]), and what opening and closing
//! one does — limits, arrays and their declared counts, event and parameter structs,
//! the checks when the Inform closes. A new header field or a new RPC goes here.

use std::borrow::Cow;

use super::Parser;
use crate::attrs::{local_name, prefix};
use crate::error::{bounded_name, Error};
use crate::inform::{Event, Param, Warning};
use crate::text::trim;
use crate::transfer::{Autonomous, Fault};
use crate::Rpcs;

/// SOAP 1.1 (what CWMP uses) and SOAP 1.2 envelope namespaces.
const SOAP_ENVELOPE_NAMESPACES: &[&str] = &[
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
];

/// Where an open element sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    Envelope,
    Header,
    Body,
    Inform,
    DeviceId,
    EventList,
    EventStruct,
    ParamList,
    ParamStruct,
    /// `TransferComplete` or `AutonomousTransferComplete`.
    Transfer,
    FaultStruct,
    /// An element whose text is kept.
    Field(Field),
    /// Anything else: its content is read for well-formedness and otherwise ignored.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Id,
    HoldRequests,
    NoMoreRequests,
    SessionTimeout,
    SupportedVersions,
    Manufacturer,
    Oui,
    ProductClass,
    SerialNumber,
    EventCode,
    CommandKey,
    MaxEnvelopes,
    CurrentTime,
    RetryCount,
    Name,
    Value,
    /// `CommandKey` of a transfer (the Inform's sits in an `EventStruct`).
    TransferCommandKey,
    FaultCode,
    FaultString,
    StartTime,
    CompleteTime,
    AnnounceUrl,
    TransferUrl,
    IsDownload,
    FileType,
    FileSize,
    TargetFileName,
}

/// The RPC a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rpc {
    Inform,
    TransferComplete,
    AutonomousTransferComplete,
}

/// Schema order of a transfer's children. `AutonomousTransferComplete` puts its own
/// fields first: `AnnounceURL`, `TransferURL`, `IsDownload`, `FileType`, `FileSize`,
/// `TargetFileName`, then `FaultStruct`, `StartTime`, `CompleteTime` (it has no
/// `CommandKey`); `TransferComplete` is `CommandKey`, `FaultStruct`, `StartTime`,
/// `CompleteTime`.
pub(super) fn transfer_child_rank(ctx: Ctx) -> Option<u8> {
    match ctx {
        Ctx::Field(Field::AnnounceUrl) => Some(0),
        Ctx::Field(Field::TransferUrl) => Some(1),
        Ctx::Field(Field::IsDownload) => Some(2),
        Ctx::Field(Field::FileType) => Some(3),
        Ctx::Field(Field::FileSize) => Some(4),
        Ctx::Field(Field::TargetFileName) => Some(5),
        Ctx::Field(Field::TransferCommandKey) => Some(6),
        Ctx::FaultStruct => Some(7),
        Ctx::Field(Field::StartTime) => Some(8),
        Ctx::Field(Field::CompleteTime) => Some(9),
        _ => None,
    }
}

/// Schema order of Inform's children, to notice CPEs that send them shuffled.
pub(super) fn inform_child_rank(ctx: Ctx) -> Option<u8> {
    match ctx {
        Ctx::DeviceId => Some(0),
        Ctx::EventList => Some(1),
        Ctx::Field(Field::MaxEnvelopes) => Some(2),
        Ctx::Field(Field::CurrentTime) => Some(3),
        Ctx::Field(Field::RetryCount) => Some(4),
        Ctx::ParamList => Some(5),
        _ => None,
    }
}

/// What `arrayType` said, checked against what was present when the array closes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ArrayCount {
    pub(super) declared: Option<u64>,
    pub(super) present: u64,
}

/// Half-built parameter.
#[derive(Debug, Default)]
pub(super) struct ParamDraft<'a> {
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) value: Option<Cow<'a, str>>,
    pub(super) type_: Option<Cow<'a, str>>,
}

/// The event struct being read: its codes are pushed to the output as they come,
/// from `first` on, and get the command key, which may come after them, when it closes.
#[derive(Debug, Default)]
pub(super) struct EventDraft<'a> {
    pub(super) first: usize,
    pub(super) command_key: Option<Cow<'a, str>>,
}

impl<'a> Parser<'a, '_> {
    /// Decides what a new element is, reads the attributes it needs, checks limits.
    pub(super) fn open(&mut self, qname: &'a [u8], attrs: &'a [u8], at: u64) -> Result<Ctx, Error> {
        let depth = self.stack.len() + 1;
        if depth > self.opts.limits.max_depth {
            return Err(Error::TooDeep {
                offset: self.offset(at),
                limit: self.opts.limits.max_depth,
            });
        }
        let local = local_name(qname);
        let Some(parent) = self.stack.last().map(|open| open.ctx) else {
            if self.root_seen {
                return Err(self.malformed(at, "more than one root element"));
            }
            self.root_seen = true;
            if local != b"Envelope" {
                return Err(Error::NotSoap {
                    offset: self.offset(at),
                    reason: format!("root element is {:?}, not Envelope", bounded_name(local)),
                });
            }
            self.scan_namespaces(attrs, depth)?;
            let prefix = prefix(qname);
            match self.lookup_namespace(prefix, at)? {
                Some(uri) if SOAP_ENVELOPE_NAMESPACES.contains(&uri.as_ref()) => {}
                Some(uri) => {
                    return Err(Error::NotSoap {
                        offset: self.offset(at),
                        reason: format!(
                            "Envelope is in namespace {:?}, not a SOAP envelope namespace",
                            bounded_name(uri.as_bytes())
                        ),
                    })
                }
                None => {
                    return Err(Error::NotSoap {
                        offset: self.offset(at),
                        reason: format!(
                            "Envelope prefix {:?} is not bound to a namespace",
                            bounded_name(prefix)
                        ),
                    })
                }
            }
            return Ok(Ctx::Envelope);
        };
        let ctx = match parent {
            Ctx::Envelope => match local {
                b"Header" => {
                    self.scan_namespaces(attrs, depth)?;
                    Ctx::Header
                }
                b"Body" => {
                    self.scan_namespaces(attrs, depth)?;
                    self.body_seen = true;
                    Ctx::Body
                }
                _ => Ctx::Skip,
            },
            Ctx::Header => match local {
                b"ID" => Ctx::Field(Field::Id),
                b"HoldRequests" | b"HoldRequest" => Ctx::Field(Field::HoldRequests),
                b"NoMoreRequests" => Ctx::Field(Field::NoMoreRequests),
                b"SessionTimeout" => Ctx::Field(Field::SessionTimeout),
                b"SupportedCWMPVersions" => Ctx::Field(Field::SupportedVersions),
                _ => Ctx::Skip,
            },
            Ctx::Body => {
                let rpc = match local {
                    b"Inform" => Some(Rpc::Inform),
                    b"TransferComplete" if self.rpcs == Rpcs::All => Some(Rpc::TransferComplete),
                    b"AutonomousTransferComplete" if self.rpcs == Rpcs::All => {
                        Some(Rpc::AutonomousTransferComplete)
                    }
                    _ => None,
                };
                if self.rpc.is_some() {
                    // Whatever follows the RPC in the same body is not ours.
                    self.warn(Warning::UnknownElement);
                    Ctx::Skip
                } else if let Some(rpc) = rpc {
                    self.scan_namespaces(attrs, depth)?;
                    self.out.namespace = self.lookup_namespace(prefix(qname), at)?;
                    self.rpc = Some(rpc);
                    match rpc {
                        Rpc::Inform => Ctx::Inform,
                        Rpc::TransferComplete => Ctx::Transfer,
                        Rpc::AutonomousTransferComplete => {
                            self.transfer.autonomous = Some(Autonomous::default());
                            Ctx::Transfer
                        }
                    }
                } else {
                    return Err(Error::NotInform {
                        offset: self.offset(at),
                        rpc: bounded_name(local),
                    });
                }
            }
            Ctx::Inform => {
                let ctx = match local {
                    b"DeviceId" => self.once(Ctx::DeviceId),
                    b"Event" => self.once(Ctx::EventList),
                    b"MaxEnvelopes" => Ctx::Field(Field::MaxEnvelopes),
                    b"CurrentTime" => Ctx::Field(Field::CurrentTime),
                    b"RetryCount" => Ctx::Field(Field::RetryCount),
                    b"ParameterList" => self.once(Ctx::ParamList),
                    _ => {
                        self.warn(Warning::UnknownElement);
                        Ctx::Skip
                    }
                };
                if let Some(rank) = inform_child_rank(ctx) {
                    if rank < self.last_rank {
                        self.warn(Warning::UnknownChildrenOrder);
                    }
                    self.last_rank = rank;
                }
                ctx
            }
            Ctx::DeviceId => match local {
                b"Manufacturer" => Ctx::Field(Field::Manufacturer),
                b"OUI" => Ctx::Field(Field::Oui),
                b"ProductClass" => Ctx::Field(Field::ProductClass),
                b"SerialNumber" => Ctx::Field(Field::SerialNumber),
                _ => self.unknown(),
            },
            Ctx::EventList => match local {
                b"EventStruct" => Ctx::EventStruct,
                _ => self.unknown(),
            },
            Ctx::EventStruct => match local {
                b"EventCode" => Ctx::Field(Field::EventCode),
                b"CommandKey" => Ctx::Field(Field::CommandKey),
                _ => self.unknown(),
            },
            Ctx::ParamList => match local {
                b"ParameterValueStruct" => Ctx::ParamStruct,
                _ => self.unknown(),
            },
            Ctx::ParamStruct => match local {
                b"Name" => Ctx::Field(Field::Name),
                b"Value" => Ctx::Field(Field::Value),
                _ => self.unknown(),
            },
            Ctx::Transfer => {
                let autonomous = self.rpc == Some(Rpc::AutonomousTransferComplete);
                let ctx = match local {
                    b"CommandKey" => Ctx::Field(Field::TransferCommandKey),
                    b"FaultStruct" => {
                        if std::mem::replace(&mut self.seen_fault, true) {
                            self.warn(Warning::DuplicateElement);
                        }
                        Ctx::FaultStruct
                    }
                    b"StartTime" => Ctx::Field(Field::StartTime),
                    b"CompleteTime" => Ctx::Field(Field::CompleteTime),
                    b"AnnounceURL" if autonomous => Ctx::Field(Field::AnnounceUrl),
                    b"TransferURL" if autonomous => Ctx::Field(Field::TransferUrl),
                    b"IsDownload" if autonomous => Ctx::Field(Field::IsDownload),
                    b"FileType" if autonomous => Ctx::Field(Field::FileType),
                    b"FileSize" if autonomous => Ctx::Field(Field::FileSize),
                    b"TargetFileName" if autonomous => Ctx::Field(Field::TargetFileName),
                    _ => self.unknown(),
                };
                if let Some(rank) = transfer_child_rank(ctx) {
                    if rank < self.last_rank {
                        self.warn(Warning::UnknownChildrenOrder);
                    }
                    self.last_rank = rank;
                }
                ctx
            }
            Ctx::FaultStruct => match local {
                b"FaultCode" => Ctx::Field(Field::FaultCode),
                b"FaultString" => Ctx::Field(Field::FaultString),
                _ => self.unknown(),
            },
            Ctx::Field(_) => self.unknown(),
            Ctx::Skip => Ctx::Skip,
        };
        match ctx {
            Ctx::Field(Field::Value) => {
                self.text.clear();
                self.param.type_ = self.attribute(attrs, b"type", at)?;
            }
            Ctx::Field(_) => self.text.clear(),
            Ctx::EventList => {
                self.events_count = ArrayCount {
                    declared: self.array_count(attrs, at)?,
                    present: 0,
                };
            }
            Ctx::ParamList => {
                self.params_count = ArrayCount {
                    declared: self.array_count(attrs, at)?,
                    present: 0,
                };
                let hint = self.params_count.declared.unwrap_or(0);
                let room = self
                    .opts
                    .limits
                    .max_params
                    .saturating_sub(self.out.params.len());
                self.out
                    .params
                    .reserve(usize::try_from(hint).unwrap_or(0).min(room).min(256));
            }
            Ctx::EventStruct => {
                self.event = EventDraft {
                    first: self.out.events.len(),
                    command_key: None,
                };
            }
            Ctx::ParamStruct => self.param = ParamDraft::default(),
            Ctx::FaultStruct => {
                // A repeated FaultStruct replaces the first (the last one wins).
                self.transfer.fault = Some(Fault::default());
                self.fault_code_seen = false;
            }
            _ => {}
        }
        Ok(ctx)
    }

    fn unknown(&mut self) -> Ctx {
        self.warn(Warning::UnknownElement);
        Ctx::Skip
    }

    /// Marks a once-only child of Inform as seen, warning when it repeats.
    fn once(&mut self, ctx: Ctx) -> Ctx {
        let seen = match ctx {
            Ctx::DeviceId => &mut self.seen_device_id,
            Ctx::EventList => &mut self.seen_event_list,
            Ctx::ParamList => &mut self.seen_param_list,
            _ => return ctx,
        };
        let repeated = std::mem::replace(seen, true);
        if repeated {
            self.warn(Warning::DuplicateElement);
        }
        ctx
    }

    /// Finishes an element: stores its text, or completes the struct it closes.
    pub(super) fn close(&mut self, ctx: Ctx, at: u64) -> Result<(), Error> {
        match ctx {
            Ctx::Field(field) => self.store_field(field, at),
            Ctx::EventStruct => self.close_event_struct(),
            Ctx::ParamStruct => self.close_param_struct(at),
            Ctx::EventList => {
                self.check_array(self.events_count);
                Ok(())
            }
            Ctx::ParamList => {
                self.check_array(self.params_count);
                Ok(())
            }
            Ctx::Inform => self.close_inform(at),
            Ctx::Transfer => {
                self.close_transfer();
                Ok(())
            }
            Ctx::Body if self.rpc.is_none() => Err(Error::NotInform {
                offset: self.offset(at),
                rpc: String::new(),
            }),
            Ctx::Envelope if !self.body_seen => Err(Error::NotSoap {
                offset: self.offset(at),
                reason: "Envelope without Body".to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn store_field(&mut self, field: Field, at: u64) -> Result<(), Error> {
        let raw = self.text.take();
        self.store_text(field, raw, at)
    }

    /// Stores the text of a field whose end tag starts at `at`.
    pub(super) fn store_text(
        &mut self,
        field: Field,
        raw: Cow<'a, str>,
        at: u64,
    ) -> Result<(), Error> {
        if field == Field::Value {
            if self.param.value.is_some() {
                self.warn(Warning::DuplicateElement);
            }
            self.param.value = Some(raw);
            return Ok(());
        }
        let text = trim(raw);
        let out = &mut self.out;
        let mut duplicate = false;
        let mut set = |slot: &mut Option<Cow<'a, str>>, text: Cow<'a, str>| {
            duplicate |= slot.replace(text).is_some();
        };
        match field {
            Field::Id => set(&mut out.header.id, text),
            Field::SupportedVersions => set(&mut out.header.supported_cwmp_versions, text),
            Field::CurrentTime => set(&mut out.current_time, text),
            Field::HoldRequests => out.header.hold_requests = parse_bool(&text, &mut out.warnings),
            Field::NoMoreRequests => {
                out.header.no_more_requests = parse_bool(&text, &mut out.warnings)
            }
            Field::SessionTimeout => {
                out.header.session_timeout = Some(parse_u32(&text, &mut out.warnings))
            }
            Field::MaxEnvelopes => out.max_envelopes = parse_u32(&text, &mut out.warnings),
            Field::RetryCount => out.retry_count = parse_u32(&text, &mut out.warnings),
            Field::Manufacturer => out.device_id.manufacturer = text,
            Field::Oui => out.device_id.oui = text,
            Field::ProductClass => out.device_id.product_class = text,
            Field::SerialNumber => out.device_id.serial_number = text,
            Field::EventCode => {
                if text.is_empty() {
                    self.out.warnings.insert(Warning::MissingEventCode);
                } else {
                    if self.out.events.len() >= self.opts.limits.max_events {
                        return Err(Error::TooManyEvents {
                            offset: self.offset(at),
                            limit: self.opts.limits.max_events,
                        });
                    }
                    // Its command key is filled in when the struct closes.
                    self.out.events.push(Event {
                        code: text,
                        command_key: Cow::Borrowed(""),
                    });
                }
            }
            Field::CommandKey => set(&mut self.event.command_key, text),
            Field::Name => set(&mut self.param.name, text),
            Field::Value => {}
            Field::TransferCommandKey => {
                duplicate = std::mem::replace(&mut self.transfer_key_seen, true);
                self.transfer.command_key = text;
            }
            Field::StartTime => set(&mut self.transfer.start_time, text),
            Field::CompleteTime => set(&mut self.transfer.complete_time, text),
            Field::FaultCode | Field::FaultString => {
                let fault = self.transfer.fault.get_or_insert_with(Fault::default);
                if field == Field::FaultCode {
                    duplicate = std::mem::replace(&mut self.fault_code_seen, true);
                    fault.code = parse_u32(&text, &mut self.out.warnings);
                } else {
                    duplicate = !fault.string.is_empty();
                    fault.string = text;
                }
            }
            Field::AnnounceUrl
            | Field::TransferUrl
            | Field::IsDownload
            | Field::FileType
            | Field::FileSize
            | Field::TargetFileName => {
                let warnings = &mut self.out.warnings;
                let a = self
                    .transfer
                    .autonomous
                    .get_or_insert_with(Autonomous::default);
                match field {
                    Field::AnnounceUrl => a.announce_url = text,
                    Field::TransferUrl => a.transfer_url = text,
                    Field::IsDownload => a.is_download = parse_bool(&text, warnings),
                    Field::FileType => a.file_type = text,
                    Field::FileSize => a.file_size = parse_u64(&text, warnings),
                    _ => a.target_file_name = text,
                }
            }
        }
        if duplicate {
            self.warn(Warning::DuplicateElement);
        }
        Ok(())
    }

    fn close_event_struct(&mut self) -> Result<(), Error> {
        self.events_count.present += 1;
        let codes = self
            .out
            .events
            .get_mut(self.event.first..)
            .unwrap_or_default();
        let multiple = codes.len() > 1;
        let missing = codes.is_empty();
        if let Some(command_key) = self.event.command_key.take() {
            for event in codes {
                event.command_key = command_key.clone();
            }
        }
        if missing {
            self.warn(Warning::MissingEventCode);
        } else if multiple {
            self.warn(Warning::MultipleEventCodes);
        }
        Ok(())
    }

    fn close_param_struct(&mut self, at: u64) -> Result<(), Error> {
        self.params_count.present += 1;
        let draft = std::mem::take(&mut self.param);
        let name = match draft.name {
            Some(name) if !name.is_empty() => name,
            _ => {
                self.warn(Warning::MissingParamName);
                return Ok(());
            }
        };
        if self.out.params.len() >= self.opts.limits.max_params {
            return Err(Error::TooManyParams {
                offset: self.offset(at),
                limit: self.opts.limits.max_params,
            });
        }
        let value = match draft.value {
            Some(v) => v,
            None => {
                self.warn(Warning::MissingValue);
                Cow::Borrowed("")
            }
        };
        self.out.params.push(Param {
            name,
            value,
            type_: draft.type_,
        });
        Ok(())
    }

    fn check_array(&mut self, count: ArrayCount) {
        if let Some(declared) = count.declared {
            if declared != count.present {
                self.warn(Warning::ArrayTypeMismatch);
            }
        }
    }

    fn close_inform(&mut self, at: u64) -> Result<(), Error> {
        let offset = self.offset(at);
        if !self.seen_device_id {
            return Err(Error::MissingDeviceId {
                offset,
                field: "DeviceId",
            });
        }
        if self.out.device_id.oui.is_empty() {
            return Err(Error::MissingDeviceId {
                offset,
                field: "OUI",
            });
        }
        if self.out.device_id.serial_number.is_empty() {
            return Err(Error::MissingDeviceId {
                offset,
                field: "SerialNumber",
            });
        }
        if !self.seen_event_list {
            self.warn(Warning::MissingEventList);
        }
        if !self.seen_param_list {
            self.warn(Warning::MissingParameterList);
        }
        if has_duplicate_names(&self.out.params) {
            self.warn(Warning::DuplicateParam);
        }
        self.rpc_done = true;
        Ok(())
    }

    fn close_transfer(&mut self) {
        if !self.fault_code_seen {
            self.warn(Warning::MissingFault);
        }
        self.rpc_done = true;
    }

    /// Reads the count of an `arrayType="cwmp:EventStruct[N]"` attribute.
    pub(super) fn array_count(&mut self, attrs: &'a [u8], at: u64) -> Result<Option<u64>, Error> {
        let Some(value) = self.attribute(attrs, b"arrayType", at)? else {
            self.warn(Warning::MissingArrayType);
            return Ok(None);
        };
        match declared_count(&value) {
            Some(n) => Ok(Some(n)),
            None => {
                self.warn(Warning::InvalidArrayType);
                Ok(None)
            }
        }
    }
}

/// The count an `arrayType` value (`cwmp:EventStruct[2]`) declares: the digits
/// between its last `[` and a final `]`, white space allowed around them; `u64::MAX`
/// when they overflow. `None` when there are no such digits.
fn declared_count(value: &str) -> Option<u64> {
    let inner = value.trim().strip_suffix(']')?;
    let open = inner.bytes().rposition(|b| b == b'[')?;
    let digits = inner.get(open + 1..)?.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count = digits.bytes().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    });
    Some(count.unwrap_or(u64::MAX))
}

fn parse_u32(text: &str, warnings: &mut crate::Warnings) -> Option<u32> {
    match text.parse::<u32>() {
        Ok(n) if !text.starts_with('+') => Some(n),
        _ => {
            warnings.insert(Warning::InvalidNumber);
            None
        }
    }
}

fn parse_u64(text: &str, warnings: &mut crate::Warnings) -> Option<u64> {
    match text.parse::<u64>() {
        Ok(n) if !text.starts_with('+') => Some(n),
        _ => {
            warnings.insert(Warning::InvalidNumber);
            None
        }
    }
}

fn parse_bool(text: &str, warnings: &mut crate::Warnings) -> Option<bool> {
    match text {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => {
            warnings.insert(Warning::InvalidNumber);
            None
        }
    }
}

fn has_duplicate_names(params: &[Param<'_>]) -> bool {
    if params.len() <= 16 {
        return params
            .iter()
            .enumerate()
            .any(|(i, p)| params[..i].iter().any(|q| q.name == p.name));
    }
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(
        params.len(),
        foldhash::fast::FixedState::default(),
    );
    !params.iter().all(|p| seen.insert(p.name.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_counts() {
        for (value, count) in [
            ("cwmp:EventStruct[2]", Some(2)),
            ("cwmp:ParameterValueStruct[0016]", Some(16)),
            (" cwmp:EventStruct[ 3 ] ", Some(3)),
            ("EventStruct[0]", Some(0)),
            ("x[1][2]", Some(2)),
            ("x[99999999999999999999999]", Some(u64::MAX)),
            ("x[18446744073709551615]", Some(u64::MAX)),
            ("x[18446744073709551614]", Some(u64::MAX - 1)),
            ("cwmp:EventStruct[]", None),
            ("cwmp:EventStruct[-1]", None),
            ("cwmp:EventStruct[1 2]", None),
            ("cwmp:EventStruct", None),
            ("cwmp:EventStruct2]", None),
            ("cwmp:EventStruct[\u{664}]", None),
            ("", None),
        ] {
            assert_eq!(declared_count(value), count, "{value:?}");
        }
    }
}
