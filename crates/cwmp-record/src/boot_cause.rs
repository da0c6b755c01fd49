//! Why a device booted, decided from the event codes of one Inform alone.
//!
//! The causes line up with TR-369's `Boot!` event causes (`RemoteReboot`,
//! `LocalReboot`, `RemoteFactoryReset`/`LocalFactoryReset`), so that a USP input could
//! share the field later.

use serde::{Deserialize, Serialize};

use crate::EventKind;

/// Why a device booted (or bootstrapped). Also a metric label: a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootCause {
    /// `1 BOOT` with `M Reboot`: the ACS asked for the reboot.
    AcsReboot,
    /// `1 BOOT` with `M Download` / `M ScheduleDownload`, or with `7 TRANSFER
    /// COMPLETE` / `10 AUTONOMOUS TRANSFER COMPLETE`: a transfer (a firmware image)
    /// applied across a reboot.
    FirmwareUpgrade,
    /// `0 BOOTSTRAP` with `1 BOOT`: a factory reset.
    FactoryReset,
    /// `0 BOOTSTRAP` without `1 BOOT`: first contact with this ACS, or a new ACS URL.
    Bootstrap,
    /// `1 BOOT` with none of the above: power loss, a crash, the button — the
    /// unsolicited boot.
    Local,
}

impl BootCause {
    /// Every cause, in precedence order.
    pub const ALL: [BootCause; 5] = [
        BootCause::AcsReboot,
        BootCause::FirmwareUpgrade,
        BootCause::FactoryReset,
        BootCause::Bootstrap,
        BootCause::Local,
    ];

    /// The snake_case name used in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BootCause::AcsReboot => "acs_reboot",
            BootCause::FirmwareUpgrade => "firmware_upgrade",
            BootCause::FactoryReset => "factory_reset",
            BootCause::Bootstrap => "bootstrap",
            BootCause::Local => "local",
        }
    }

    /// The cause of the boot an Inform with these event kinds reports; `None` when it
    /// reports neither `boot` nor `bootstrap`. When several causes apply, the first of
    /// [`BootCause::ALL`] wins.
    pub fn of(kinds: impl IntoIterator<Item = EventKind>) -> Option<BootCause> {
        let mut facts = BootFacts::default();
        for kind in kinds {
            facts.add(kind);
        }
        facts.cause()
    }
}

/// The event kinds a boot cause depends on, gathered from one Inform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootFacts {
    pub boot: bool,
    pub bootstrap: bool,
    pub m_reboot: bool,
    /// `M Download` or `M ScheduleDownload`.
    pub m_download: bool,
    /// `7 TRANSFER COMPLETE` or `10 AUTONOMOUS TRANSFER COMPLETE`.
    pub transfer_complete: bool,
}

impl BootFacts {
    pub fn add(&mut self, kind: EventKind) {
        match kind {
            EventKind::Boot => self.boot = true,
            EventKind::Bootstrap => self.bootstrap = true,
            EventKind::MReboot => self.m_reboot = true,
            EventKind::MDownload | EventKind::MScheduleDownload => self.m_download = true,
            EventKind::TransferComplete | EventKind::AutonomousTransferComplete => {
                self.transfer_complete = true
            }
            _ => {}
        }
    }

    /// The cause, by precedence: see [`BootCause`].
    pub fn cause(self) -> Option<BootCause> {
        if self.boot && self.m_reboot {
            Some(BootCause::AcsReboot)
        } else if self.boot && (self.m_download || self.transfer_complete) {
            Some(BootCause::FirmwareUpgrade)
        } else if self.boot && self.bootstrap {
            Some(BootCause::FactoryReset)
        } else if self.bootstrap {
            Some(BootCause::Bootstrap)
        } else if self.boot {
            Some(BootCause::Local)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn causes_by_precedence() {
        let cases: &[(&[EventKind], Option<BootCause>)] = &[
            (&[Periodic], None),
            (&[MReboot], None),
            (&[TransferComplete, MDownload], None),
            (&[Boot], Some(BootCause::Local)),
            (&[Boot, Periodic, ValueChange], Some(BootCause::Local)),
            (&[Boot, MReboot], Some(BootCause::AcsReboot)),
            (
                &[Boot, TransferComplete, MDownload],
                Some(BootCause::FirmwareUpgrade),
            ),
            (&[Boot, MScheduleDownload], Some(BootCause::FirmwareUpgrade)),
            (
                &[Boot, AutonomousTransferComplete],
                Some(BootCause::FirmwareUpgrade),
            ),
            (&[Bootstrap, Boot], Some(BootCause::FactoryReset)),
            (&[Bootstrap], Some(BootCause::Bootstrap)),
            (&[Bootstrap, MReboot], Some(BootCause::Bootstrap)),
            // Several apply: the first in precedence wins.
            (&[Bootstrap, Boot, MReboot], Some(BootCause::AcsReboot)),
            (&[Boot, MReboot, MDownload], Some(BootCause::AcsReboot)),
            (
                &[Bootstrap, Boot, TransferComplete],
                Some(BootCause::FirmwareUpgrade),
            ),
        ];
        for (kinds, want) in cases {
            assert_eq!(BootCause::of(kinds.iter().copied()), *want, "{kinds:?}");
        }
    }

    #[test]
    fn names_match_serde() {
        for cause in BootCause::ALL {
            let json = serde_json::to_string(&cause).expect("json");
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
        }
    }
}
