//! Alerts (topic `cwmp.alerts`, key = `id`): one JSON object per transition.

use serde::{Deserialize, Serialize};

/// What an alert is about. Also the metric label `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Many devices booting without the ACS asking (boot cause `local`).
    BootStorm,
    /// Many devices booting because the ACS asked (`M Reboot`): informational.
    AcsMassReboot,
    /// One device booting again and again.
    RebootLoop,
    /// A device, or a product class, waking up too often.
    WakeupRate,
    /// Many devices bootstrapping: factory resets, new installs, an ACS URL change.
    BootstrapWave,
    /// Many sessions retried: sessions failing fleet-wide.
    RetryStorm,
    /// Many devices booting into a transferred image (boot cause `firmware_upgrade`):
    /// a rollout in progress, informational; never a `boot_storm`.
    FirmwareRollout,
    /// Many transfers of one campaign (command key, within a product class) failing.
    RolloutFailure,
    /// Many devices of one scope stopped informing: their periodic informs did not
    /// arrive (an outage while it lasts, with or without a reboot at its end).
    InformSilence,
}

impl AlertKind {
    pub const ALL: [AlertKind; 9] = [
        AlertKind::BootStorm,
        AlertKind::AcsMassReboot,
        AlertKind::RebootLoop,
        AlertKind::WakeupRate,
        AlertKind::BootstrapWave,
        AlertKind::RetryStorm,
        AlertKind::FirmwareRollout,
        AlertKind::RolloutFailure,
        AlertKind::InformSilence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BootStorm => "boot_storm",
            AlertKind::AcsMassReboot => "acs_mass_reboot",
            AlertKind::RebootLoop => "reboot_loop",
            AlertKind::WakeupRate => "wakeup_rate",
            AlertKind::BootstrapWave => "bootstrap_wave",
            AlertKind::RetryStorm => "retry_storm",
            AlertKind::FirmwareRollout => "firmware_rollout",
            AlertKind::RolloutFailure => "rollout_failure",
            AlertKind::InformSilence => "inform_silence",
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    /// Still open, and bigger than last reported.
    Update,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 3] = [AlertState::Open, AlertState::Update, AlertState::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Update => "update",
            AlertState::Resolved => "resolved",
        }
    }
}

/// What the fleet detectors count by. `Device` is the scope of per-device alerts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The whole fleet; key `"all"`.
    #[default]
    Fleet,
    /// Key `"<OUI> <ProductClass>"`.
    ProductClass,
    /// The ACS front-end; key `"unknown"` when the record has none.
    Acs,
    /// `…DeviceInfo.SoftwareVersion`; key `"unknown"` when the record has none.
    SoftwareVersion,
    /// One device; key = device id.
    Device,
    /// A firmware campaign: key `"<OUI> <ProductClass>/<CommandKey>"`.
    Campaign,
    /// Where the devices connect from: the network of `remote_addr` (an IPv4 /24 or
    /// an IPv6 /48 by default, e.g. `"100.64.3.0/24"`); key `"unknown"` without one.
    Network,
}

impl Scope {
    /// The fleet scopes, in the order alerts are decided.
    pub const ALL: [Scope; 4] = [
        Scope::Fleet,
        Scope::ProductClass,
        Scope::Acs,
        Scope::SoftwareVersion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Fleet => "fleet",
            Scope::ProductClass => "product_class",
            Scope::Acs => "acs",
            Scope::SoftwareVersion => "software_version",
            Scope::Device => "device",
            Scope::Campaign => "campaign",
            Scope::Network => "network",
        }
    }
}

/// One alert transition. Fields serialize in this order (schema 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: u32,
    /// Stable for one incident: kind, scope, key and the window (or time) it opened in.
    pub id: String,
    pub kind: AlertKind,
    pub state: AlertState,
    pub scope: Scope,
    pub key: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// The event time at which this transition was decided.
    pub event_time_ms: i64,
    /// Distinct devices in the window (1 for a device alert).
    pub devices: u64,
    /// What was counted: events, boots, retried informs.
    pub count: u64,
    /// The learned baseline, null where the detector has none.
    pub baseline: Option<f64>,
    /// The value `count` (or `devices`) had to reach.
    pub threshold: f64,
    /// Up to 10 device ids, the smallest in byte order (deterministic however the
    /// fleet is partitioned).
    pub sample_devices: Vec<String>,
    pub detail: serde_json::Value,
}

impl Alert {
    /// The id of an incident.
    pub fn incident_id(kind: AlertKind, scope: Scope, key: &str, opened_ms: i64) -> String {
        format!("{}:{}:{}:{}", kind.as_str(), scope.as_str(), key, opened_ms)
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
