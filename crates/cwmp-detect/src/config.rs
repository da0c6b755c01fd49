//! Detector settings. Every threshold is here, with the defaults the product ships.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Scope;

/// All detector settings. Durations are in milliseconds of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// How far behind the newest event time a record may arrive and still count.
    pub allowed_lateness_ms: i64,
    /// A source (raw partition) whose records in an input partition are this far
    /// behind the partition's newest stops holding the watermark: one that stopped
    /// must not hold it for ever, one that lags because ingest catches it up later
    /// than the others is waited for up to this long.
    pub source_idle_ms: i64,
    /// Fleet window length.
    pub window_ms: i64,
    /// Fleet window slide; `window_ms` must be a multiple of it.
    pub slide_ms: i64,
    /// Half-life of the fleet baselines (exponentially weighted means of past windows).
    pub baseline_half_life_ms: i64,
    /// Consecutive windows below threshold that resolve a fleet alert.
    pub resolve_after_windows: u32,
    /// A device not seen for this long is forgotten (its open alerts are kept).
    pub device_ttl_ms: i64,
    /// Scopes the fleet detectors count by.
    pub scopes: Vec<Scope>,
    pub boot_storm: StormConfig,
    pub acs_mass_reboot: StormConfig,
    /// Boots into a transferred image (`firmware_upgrade`): informational, like
    /// `acs_mass_reboot`.
    pub firmware_rollout: StormConfig,
    pub bootstrap_wave: StormConfig,
    pub reboot_loop: RebootLoopConfig,
    pub wakeup_rate: WakeupConfig,
    pub retry_storm: RetryStormConfig,
    pub rollout_failure: RolloutFailureConfig,
    pub inform_silence: InformSilenceConfig,
}

/// Devices that stopped informing (`inform_silence`), judged by each device's own
/// learned cadence.
///
/// A device is *tracked* once its periodic interval is known: from the
/// `…ManagementServer.PeriodicInformInterval` a record carries, or from two
/// consecutive `2 PERIODIC` gaps that agree. It is *overdue* when the watermark
/// passes its last inform plus max(`grace_factor` × interval, `min_grace_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InformSilenceConfig {
    pub grace_factor: f64,
    pub min_grace_ms: i64,
    /// Devices whose interval is longer are not tracked: their silence would be
    /// seen days late, and a sleepy device's gaps look like that.
    pub max_interval_ms: i64,
    /// Opens when the devices that became overdue within `window_ms` reach
    /// max(`min_devices`, `baseline_factor` × baseline, `min_share` × tracked devices
    /// of the scope) ...
    pub min_devices: u64,
    pub baseline_factor: f64,
    pub min_share: f64,
    /// A multiple of the fleet slide.
    pub window_ms: i64,
    /// ... and resolves when this share of the devices overdue since it opened have
    /// informed again (or were forgotten).
    pub resolve_share: f64,
    /// A silent device is forgotten (no longer tracked) after this long.
    pub forget_after_ms: i64,
    /// Scopes silence is counted by (`network` among them).
    pub scopes: Vec<Scope>,
    /// The `network` scope: prefix lengths of `remote_addr`.
    pub network_prefix_v4: u8,
    pub network_prefix_v6: u8,
    /// A device that goes silent within this long of a `firmware_upgrade` boot or a
    /// failed transfer counts in its campaign (`silent_after_transfer`).
    pub transfer_horizon_ms: i64,
}

impl Default for InformSilenceConfig {
    fn default() -> Self {
        InformSilenceConfig {
            grace_factor: 2.5,
            min_grace_ms: 600_000,
            max_interval_ms: 24 * 3_600_000,
            min_devices: 20,
            baseline_factor: 5.0,
            min_share: 0.1,
            window_ms: 1_800_000,
            resolve_share: 0.8,
            forget_after_ms: 3 * 24 * 3_600_000,
            scopes: vec![
                Scope::Fleet,
                Scope::ProductClass,
                Scope::Acs,
                Scope::SoftwareVersion,
                Scope::Network,
            ],
            network_prefix_v4: 24,
            network_prefix_v6: 48,
            transfer_horizon_ms: 6 * 3_600_000,
        }
    }
}

/// Longest grace a device's compact state can hold (its deadline is kept as an
/// offset of at most this from its last inform).
pub const MAX_GRACE_MS: i64 = 72 * 3_600_000;

/// Failing transfers of one campaign (command key, within a product class).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutFailureConfig {
    /// Opens when failed transfers ≥ max(`min_failures`, `share` × results) over
    /// the campaign so far ...
    pub min_failures: u64,
    pub share: f64,
    /// ... and resolves when the share falls back below that, or when the campaign
    /// has reported nothing for this long.
    pub quiet_ms: i64,
    /// A campaign without an open alert is forgotten after this long without results.
    pub expire_after_ms: i64,
    /// Most campaigns followed at once; results of more are counted as overflow.
    pub max_campaigns: usize,
}

impl Default for RolloutFailureConfig {
    fn default() -> Self {
        RolloutFailureConfig {
            min_failures: 20,
            share: 0.1,
            quiet_ms: 3_600_000,
            expire_after_ms: 7 * 24 * 3_600_000,
            max_campaigns: 10_000,
        }
    }
}

/// A distinct-device count against a learned baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StormConfig {
    /// Opens when devices ≥ max(`min_devices`, `baseline_factor` × baseline).
    pub min_devices: u64,
    pub baseline_factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebootLoopConfig {
    /// Opens at this many unsolicited boots of one device ...
    pub boots: u32,
    /// ... within this span.
    pub within_ms: i64,
    /// Resolves after this long without a boot.
    pub quiet_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WakeupConfig {
    /// Per device: opens at more than this many wake-ups within one hour.
    pub device_max_per_hour: u32,
    /// Per product class: opens when wake-ups in a window ≥ `class_factor` × baseline ...
    pub class_factor: f64,
    /// ... from at least this many devices ...
    pub class_min_devices: u64,
    /// ... once the class has been seen this long (some lines wake often by design).
    pub class_warmup_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryStormConfig {
    /// Opens when at least this share of a window's informs have `retry_count > 0` ...
    pub min_share: f64,
    /// ... from at least this many informs.
    pub min_informs: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        let storm = StormConfig::default();
        DetectConfig {
            allowed_lateness_ms: 30_000,
            source_idle_ms: 6 * 3_600_000,
            window_ms: 300_000,
            slide_ms: 60_000,
            baseline_half_life_ms: 3_600_000,
            resolve_after_windows: 3,
            device_ttl_ms: 3 * 3_600_000,
            scopes: Scope::ALL.to_vec(),
            boot_storm: storm,
            acs_mass_reboot: storm,
            firmware_rollout: storm,
            bootstrap_wave: storm,
            reboot_loop: RebootLoopConfig::default(),
            wakeup_rate: WakeupConfig::default(),
            retry_storm: RetryStormConfig::default(),
            rollout_failure: RolloutFailureConfig::default(),
            inform_silence: InformSilenceConfig::default(),
        }
    }
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            min_devices: 50,
            baseline_factor: 10.0,
        }
    }
}

impl Default for RebootLoopConfig {
    fn default() -> Self {
        RebootLoopConfig {
            boots: 3,
            within_ms: 30 * 60_000,
            quiet_ms: 2 * 3_600_000,
        }
    }
}

impl Default for WakeupConfig {
    fn default() -> Self {
        WakeupConfig {
            device_max_per_hour: 6,
            class_factor: 5.0,
            class_min_devices: 50,
            class_warmup_ms: 3_600_000,
        }
    }
}

impl Default for RetryStormConfig {
    fn default() -> Self {
        RetryStormConfig {
            min_share: 0.2,
            min_informs: 200,
        }
    }
}

/// Most boots or wake-ups per device the compact device state can hold.
pub const MAX_TRACKED: u32 = 16;

/// A setting out of range: the message names it and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid detect setting: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl DetectConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_owned()));
        if self.slide_ms <= 0 || self.window_ms <= 0 {
            return err("window_ms and slide_ms must be positive");
        }
        if self.window_ms % self.slide_ms != 0 {
            return err("window_ms must be a multiple of slide_ms");
        }
        if self.allowed_lateness_ms < 0 {
            return err("allowed_lateness_ms must not be negative");
        }
        if self.source_idle_ms < 0 {
            return err("source_idle_ms must not be negative");
        }
        if self.baseline_half_life_ms <= 0 {
            return err("baseline_half_life_ms must be positive");
        }
        if self.resolve_after_windows == 0 {
            return err("resolve_after_windows must be at least 1");
        }
        if self.scopes.is_empty() {
            return err("scopes must name at least one scope");
        }
        let loop_ = &self.reboot_loop;
        if loop_.boots < 2 || loop_.boots > MAX_TRACKED {
            return err("reboot_loop.boots must be between 2 and 16");
        }
        if self.wakeup_rate.device_max_per_hour + 1 > MAX_TRACKED {
            return err("wakeup_rate.device_max_per_hour must be at most 15");
        }
        if loop_.within_ms <= 0 || loop_.quiet_ms <= 0 {
            return err("reboot_loop.within_ms and quiet_ms must be positive");
        }
        if self.device_ttl_ms < loop_.within_ms.max(3_600_000) {
            return err("device_ttl_ms must cover reboot_loop.within_ms and one hour of wake-ups");
        }
        for (name, s) in [
            ("boot_storm", self.boot_storm),
            ("acs_mass_reboot", self.acs_mass_reboot),
            ("firmware_rollout", self.firmware_rollout),
            ("bootstrap_wave", self.bootstrap_wave),
        ] {
            if !(s.baseline_factor.is_finite() && s.baseline_factor >= 0.0) {
                return Err(ConfigError(format!(
                    "{name}.baseline_factor must be a non-negative number"
                )));
            }
        }
        let share = self.retry_storm.min_share;
        if !(share > 0.0 && share <= 1.0) {
            return err("retry_storm.min_share must be in (0, 1]");
        }
        let r = &self.rollout_failure;
        if !(r.share > 0.0 && r.share <= 1.0) {
            return err("rollout_failure.share must be in (0, 1]");
        }
        if r.min_failures == 0 {
            return err("rollout_failure.min_failures must be at least 1");
        }
        if r.quiet_ms <= 0 || r.expire_after_ms < r.quiet_ms {
            return err(
                "rollout_failure.quiet_ms must be positive and expire_after_ms at least as long",
            );
        }
        if r.max_campaigns == 0 {
            return err("rollout_failure.max_campaigns must be at least 1");
        }
        if self.scopes.contains(&Scope::Campaign) || self.scopes.contains(&Scope::Device) {
            return err("scopes may name fleet, product_class, acs, software_version and network (campaign and device are not window scopes)");
        }
        self.inform_silence.validate(self.slide_ms)?;
        if !(self.wakeup_rate.class_factor.is_finite() && self.wakeup_rate.class_factor >= 0.0) {
            return err("wakeup_rate.class_factor must be a non-negative number");
        }
        Ok(())
    }

    /// The weight of the newest window in an exponentially weighted baseline.
    pub(crate) fn baseline_alpha(&self) -> f64 {
        1.0 - 0.5f64.powf(self.slide_ms as f64 / self.baseline_half_life_ms as f64)
    }
}

impl InformSilenceConfig {
    fn validate(&self, slide_ms: i64) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(format!("inform_silence.{m}")));
        if !(self.grace_factor.is_finite() && self.grace_factor >= 1.0) {
            return err("grace_factor must be a number of at least 1");
        }
        if self.min_grace_ms <= 0 || self.max_interval_ms <= 0 {
            return err("min_grace_ms and max_interval_ms must be positive");
        }
        if self.min_grace_ms > MAX_GRACE_MS
            || self.grace_factor * self.max_interval_ms as f64 > MAX_GRACE_MS as f64
        {
            return err("grace_factor × max_interval_ms and min_grace_ms must be at most 72 hours");
        }
        if !(self.baseline_factor.is_finite() && self.baseline_factor >= 0.0) {
            return err("baseline_factor must be a non-negative number");
        }
        if !(self.min_share >= 0.0 && self.min_share <= 1.0) {
            return err("min_share must be in [0, 1]");
        }
        if !(self.resolve_share > 0.0 && self.resolve_share <= 1.0) {
            return err("resolve_share must be in (0, 1]");
        }
        if self.min_devices == 0 {
            return err("min_devices must be at least 1");
        }
        if self.window_ms <= 0 || self.window_ms % slide_ms != 0 {
            return err("window_ms must be a positive multiple of slide_ms");
        }
        if self.forget_after_ms < self.window_ms {
            return err("forget_after_ms must be at least window_ms");
        }
        if self.transfer_horizon_ms < 0 {
            return err("transfer_horizon_ms must not be negative");
        }
        if self.network_prefix_v4 == 0 || self.network_prefix_v4 > 32 {
            return err("network_prefix_v4 must be between 1 and 32");
        }
        if self.network_prefix_v6 == 0 || self.network_prefix_v6 > 128 {
            return err("network_prefix_v6 must be between 1 and 128");
        }
        if self
            .scopes
            .iter()
            .any(|s| matches!(s, Scope::Device | Scope::Campaign))
        {
            return err("scopes may name fleet, product_class, acs, software_version and network");
        }
        Ok(())
    }
}
