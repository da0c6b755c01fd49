//! The bounded vocabulary of event kinds and how event codes map onto it.

use serde::{Deserialize, Serialize};

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What an event code means, from a fixed set (safe as a metric label).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
            /// Anything not recognised (also what a decoder makes of a kind it does not know).
            #[serde(other)]
            Unknown,
        }

        impl EventKind {
            /// Every kind, `Unknown` last.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)* EventKind::Unknown];

            /// The snake_case name used in records and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                    EventKind::Unknown => "unknown",
                }
            }
        }
    };
}

kinds! {
    /// `0 BOOTSTRAP`: first contact, factory reset, or a new ACS URL.
    Bootstrap = "bootstrap",
    /// `1 BOOT`: the device (re)started.
    Boot = "boot",
    /// `2 PERIODIC`.
    Periodic = "periodic",
    /// `3 SCHEDULED` (after a ScheduleInform).
    Scheduled = "scheduled",
    /// `4 VALUE CHANGE`.
    ValueChange = "value_change",
    /// `5 KICKED`.
    Kicked = "kicked",
    /// `6 CONNECTION REQUEST`.
    ConnectionRequest = "connection_request",
    /// `7 TRANSFER COMPLETE`.
    TransferComplete = "transfer_complete",
    /// `8 DIAGNOSTICS COMPLETE`.
    DiagnosticsComplete = "diagnostics_complete",
    /// `9 REQUEST DOWNLOAD`.
    RequestDownload = "request_download",
    /// `10 AUTONOMOUS TRANSFER COMPLETE`.
    AutonomousTransferComplete = "autonomous_transfer_complete",
    /// `11 DU STATE CHANGE COMPLETE`.
    DuStateChangeComplete = "du_state_change_complete",
    /// `12 AUTONOMOUS DU STATE CHANGE COMPLETE`.
    AutonomousDuStateChangeComplete = "autonomous_du_state_change_complete",
    /// `13 WAKEUP`.
    Wakeup = "wakeup",
    /// `14 HEARTBEAT`.
    Heartbeat = "heartbeat",
    /// `M Reboot`: the reboot was asked for by the ACS.
    MReboot = "m_reboot",
    /// `M ScheduleInform`.
    MScheduleInform = "m_schedule_inform",
    /// `M Download`.
    MDownload = "m_download",
    /// `M ScheduleDownload`.
    MScheduleDownload = "m_schedule_download",
    /// `M Upload`.
    MUpload = "m_upload",
    /// `M ChangeDUState`.
    MChangeDuState = "m_change_du_state",
    /// `M X_<vendor>…`: completion of a vendor RPC method.
    VendorMethod = "vendor_method",
    /// `X <OUI> …`: a vendor-specific event.
    Vendor = "vendor",
}

impl EventKind {
    /// Classifies an event code (already trimmed).
    ///
    /// Numbered codes are recognised by their number alone, so `10 …` is never `1 …`
    /// and `1 boot` is a boot; method names after `M ` are compared without case.
    pub fn classify(code: &str) -> EventKind {
        let bytes = code.as_bytes();
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let rest = &bytes[digits..];
            if !(rest.is_empty() || rest[0] == b' ') {
                return EventKind::Unknown;
            }
            return match code[..digits].trim_start_matches('0') {
                "" => EventKind::Bootstrap,
                "1" => EventKind::Boot,
                "2" => EventKind::Periodic,
                "3" => EventKind::Scheduled,
                "4" => EventKind::ValueChange,
                "5" => EventKind::Kicked,
                "6" => EventKind::ConnectionRequest,
                "7" => EventKind::TransferComplete,
                "8" => EventKind::DiagnosticsComplete,
                "9" => EventKind::RequestDownload,
                "10" => EventKind::AutonomousTransferComplete,
                "11" => EventKind::DuStateChangeComplete,
                "12" => EventKind::AutonomousDuStateChangeComplete,
                "13" => EventKind::Wakeup,
                "14" => EventKind::Heartbeat,
                _ => EventKind::Unknown,
            };
        }
        if let Some(method) = code.strip_prefix("M ") {
            let method = method.trim();
            let is = |name: &str| method.eq_ignore_ascii_case(name);
            return if is("Reboot") {
                EventKind::MReboot
            } else if is("ScheduleInform") {
                EventKind::MScheduleInform
            } else if is("Download") {
                EventKind::MDownload
            } else if is("ScheduleDownload") {
                EventKind::MScheduleDownload
            } else if is("Upload") {
                EventKind::MUpload
            } else if is("ChangeDUState") {
                EventKind::MChangeDuState
            } else if method.starts_with("X_") && method.len() > 2 {
                EventKind::VendorMethod
            } else {
                EventKind::Unknown
            };
        }
        if let Some(rest) = code.strip_prefix("X ") {
            if !rest.trim().is_empty() {
                return EventKind::Vendor;
            }
        }
        EventKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind::{self, *};

    #[test]
    fn numbered_codes_by_number() {
        let cases = [
            ("0 BOOTSTRAP", Bootstrap),
            ("1 BOOT", Boot),
            ("1 boot", Boot),
            ("2 PERIODIC", Periodic),
            ("3 SCHEDULED", Scheduled),
            ("4 VALUE CHANGE", ValueChange),
            ("5 KICKED", Kicked),
            ("6 CONNECTION REQUEST", ConnectionRequest),
            ("7 TRANSFER COMPLETE", TransferComplete),
            ("8 DIAGNOSTICS COMPLETE", DiagnosticsComplete),
            ("9 REQUEST DOWNLOAD", RequestDownload),
            (
                "10 AUTONOMOUS TRANSFER COMPLETE",
                AutonomousTransferComplete,
            ),
            ("11 DU STATE CHANGE COMPLETE", DuStateChangeComplete),
            (
                "12 AUTONOMOUS DU STATE CHANGE COMPLETE",
                AutonomousDuStateChangeComplete,
            ),
            ("13 WAKEUP", Wakeup),
            ("14 HEARTBEAT", Heartbeat),
            ("15 FUTURE", Unknown),
            ("1BOOT", Unknown),
            ("01 BOOT", Boot),
        ];
        for (code, kind) in cases {
            assert_eq!(EventKind::classify(code), kind, "{code}");
        }
    }

    #[test]
    fn methods_and_vendor_codes() {
        let cases = [
            ("M Reboot", MReboot),
            ("M REBOOT", MReboot),
            ("M ScheduleInform", MScheduleInform),
            ("M Download", MDownload),
            ("M ScheduleDownload", MScheduleDownload),
            ("M Upload", MUpload),
            ("M ChangeDUState", MChangeDuState),
            ("M X_00D09E_Reset", VendorMethod),
            ("M X_", Unknown),
            ("M Dance", Unknown),
            ("X 00D09E Reconnect", Vendor),
            ("X ", Unknown),
            ("", Unknown),
            ("BOOT", Unknown),
        ];
        for (code, kind) in cases {
            assert_eq!(EventKind::classify(code), kind, "{code}");
        }
    }

    #[test]
    fn names_round_trip_through_serde() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: EventKind = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, *kind);
        }
        let unknown: EventKind = serde_json::from_str("\"from_the_future\"").expect("other");
        assert_eq!(unknown, Unknown);
    }
}
