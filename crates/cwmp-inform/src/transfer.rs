//! What a `TransferComplete` or `AutonomousTransferComplete` holds once extracted,
//! and [`Message`], the RPCs [`extract_message`](crate::extract_message) reads.

use std::borrow::Cow;

use crate::inform::{Header, Inform, Warnings};

/// A CPE→ACS message of one of the RPCs this crate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// The `Inform` that opens every session.
    Inform(Inform<'a>),
    /// A `TransferComplete` (the result of a `Download`, `Upload` or
    /// `ScheduleDownload` the ACS asked for) or an `AutonomousTransferComplete` (one
    /// the CPE started itself): `autonomous` tells them apart.
    Transfer(Transfer<'a>),
}

impl Message<'_> {
    /// The RPC's name as CWMP spells it: `Inform`, `TransferComplete` or
    /// `AutonomousTransferComplete` (a fixed set, safe as a metric label).
    pub fn rpc(&self) -> &'static str {
        match self {
            Message::Inform(_) => "Inform",
            Message::Transfer(t) => t.rpc(),
        }
    }

    /// The quirks that were accepted.
    pub fn warnings(&self) -> Warnings {
        match self {
            Message::Inform(i) => i.warnings,
            Message::Transfer(t) => t.warnings,
        }
    }

    /// Copies every borrowed string so that the message outlives its input.
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Inform(i) => Message::Inform(i.into_owned()),
            Message::Transfer(t) => Message::Transfer(t.into_owned()),
        }
    }
}

/// One extracted `TransferComplete` or `AutonomousTransferComplete`.
///
/// Neither RPC names its device: it belongs to the device of its session's Inform.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transfer<'a> {
    /// The namespace URI bound to the RPC element's prefix; `None` when unbound.
    pub namespace: Option<Cow<'a, str>>,
    /// The SOAP header fields CWMP defines.
    pub header: Header<'a>,
    /// `CommandKey` of the transfer (the ACS's `Download` command key: the campaign),
    /// trimmed; empty when absent or empty.
    pub command_key: Cow<'a, str>,
    /// `FaultStruct`; `None` when the RPC has none ([`Warning::MissingFault`](crate::Warning::MissingFault)).
    pub fault: Option<Fault<'a>>,
    /// `StartTime` as written (trimmed); `0001-01-01T00:00:00Z` is the spec's "unknown".
    pub start_time: Option<Cow<'a, str>>,
    /// `CompleteTime` as written (trimmed).
    pub complete_time: Option<Cow<'a, str>>,
    /// The fields only `AutonomousTransferComplete` has; `None` for `TransferComplete`.
    pub autonomous: Option<Autonomous<'a>>,
    /// Quirks that were accepted.
    pub warnings: Warnings,
}

/// `FaultStruct`: the transfer's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault<'a> {
    /// `FaultCode`: 0 for success, 9001–9032 and 9800–9899 for failures. `None` when
    /// absent ([`Warning::MissingFault`](crate::Warning::MissingFault)) or not a
    /// number ([`Warning::InvalidNumber`](crate::Warning::InvalidNumber)).
    pub code: Option<u32>,
    /// `FaultString`, trimmed; empty when absent or empty (as on success).
    pub string: Cow<'a, str>,
}

/// What an `AutonomousTransferComplete` adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Autonomous<'a> {
    /// `AnnounceURL`, trimmed; empty when absent.
    pub announce_url: Cow<'a, str>,
    /// `TransferURL`, trimmed; empty when absent.
    pub transfer_url: Cow<'a, str>,
    /// `IsDownload` (`1`/`true` or `0`/`false`); `None` when absent or unreadable.
    pub is_download: Option<bool>,
    /// `FileType`, e.g. `1 Firmware Upgrade Image`, trimmed; empty when absent.
    pub file_type: Cow<'a, str>,
    /// `FileSize` in bytes; `None` when absent or not a number.
    pub file_size: Option<u64>,
    /// `TargetFileName`, trimmed; empty when absent.
    pub target_file_name: Cow<'a, str>,
}

impl Transfer<'_> {
    /// `TransferComplete` or `AutonomousTransferComplete`.
    pub fn rpc(&self) -> &'static str {
        if self.autonomous.is_some() {
            "AutonomousTransferComplete"
        } else {
            "TransferComplete"
        }
    }

    /// Copies every borrowed string so that the transfer outlives its input.
    pub fn into_owned(self) -> Transfer<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Transfer {
            namespace: self.namespace.map(own),
            header: self.header.into_owned(),
            command_key: own(self.command_key),
            fault: self.fault.map(|f| Fault {
                code: f.code,
                string: own(f.string),
            }),
            start_time: self.start_time.map(own),
            complete_time: self.complete_time.map(own),
            autonomous: self.autonomous.map(|a| Autonomous {
                announce_url: own(a.announce_url),
                transfer_url: own(a.transfer_url),
                is_download: a.is_download,
                file_type: own(a.file_type),
                file_size: a.file_size,
                target_file_name: own(a.target_file_name),
            }),
            warnings: self.warnings,
        }
    }
}
