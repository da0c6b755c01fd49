//! Partial window aggregates (topic `cwmp.aggregates`): what detect workers send
//! the fleet stage.
//!
//! A device's records all arrive on one input partition, so a worker's distinct
//! device counts are exact for its partitions and the fleet stage sums them. A
//! worker sends a [`Partial`] per scope, key and window it has data for, then a
//! [`Close`] saying which input partitions have closed every window ending at or
//! before `closed_until_ms`. The fleet stage decides a window once every input
//! partition has closed it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::Scope;

/// Most sample device ids carried per measure.
pub const MAX_SAMPLES: usize = 10;

/// One message on `cwmp.aggregates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Partials are most of the traffic; boxing them would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum AggregateMessage {
    Partial(Partial),
    Close(Close),
}

impl AggregateMessage {
    /// The Kafka key: scope and key for a partial (so that one fleet partition holds
    /// everything about it); closes are sent to every partition and carry no key.
    pub fn kafka_key(&self) -> Option<String> {
        match self {
            AggregateMessage::Partial(p) => Some(format!("{}:{}", p.scope.as_str(), p.key)),
            AggregateMessage::Close(_) => None,
        }
    }
}

/// The measures a partial carries besides its informs, in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MeasureKind {
    /// Boots with cause `local` (unsolicited).
    Boot,
    /// Boots with cause `acs_reboot`.
    AcsReboot,
    /// Boots with cause `factory_reset` or `bootstrap`.
    Bootstrap,
    Wakeup,
    /// Informs with `retry_count > 0`.
    Retry,
    /// Boots with cause `firmware_upgrade`.
    FirmwareUpgrade,
}

impl MeasureKind {
    pub const ALL: [MeasureKind; 6] = [
        MeasureKind::Boot,
        MeasureKind::AcsReboot,
        MeasureKind::Bootstrap,
        MeasureKind::Wakeup,
        MeasureKind::Retry,
        MeasureKind::FirmwareUpgrade,
    ];

    /// The position of this measure in [`MeasureKind::ALL`] (and in arrays indexed by it).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One worker's counts for one scope, key and window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Partial {
    pub window_start_ms: i64,
    pub scope: Scope,
    pub key: String,
    /// Informs in the window.
    pub informs: u64,
    /// Boots with cause `local` (unsolicited: power, crash, button).
    pub boot: Measure,
    /// Boots with cause `acs_reboot`.
    pub acs_reboot: Measure,
    /// Boots with cause `factory_reset` or `bootstrap`.
    pub bootstrap: Measure,
    pub wakeup: Measure,
    /// Informs with `retry_count > 0`.
    pub retry: Measure,
    /// Boots with cause `firmware_upgrade` (absent from older workers' partials).
    #[serde(default)]
    pub firmware_upgrade: Measure,
    /// Scope `campaign` only: the campaign's transfer results and upgrade boots in
    /// the window's newest slide (each slide is sent in exactly one window, so the
    /// fleet stage can add them up over the campaign's life).
    /// (Written as `null` when absent: detector snapshots use a format that does
    /// not name fields, so no field may be skipped.)
    #[serde(default)]
    pub transfers: Option<Box<Transfers>>,
    /// The input partition of the worker that sent it, when that worker owns exactly
    /// one: a worker sends its partials of each partition in increasing (window,
    /// scope, key) order, so the fleet stage drops a partial not after the last one
    /// it took from that partition (a worker restored from a snapshot sends again
    /// what it had sent after the snapshot).
    #[serde(default)]
    pub partition: Option<i32>,
    /// Silence in the window's newest slide (each slide is sent in exactly one
    /// window), for the scopes silence is counted by.
    #[serde(default)]
    pub silence: Option<Box<SilenceCounts>>,
}

/// What one slide saw of silence, per scope and key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SilenceCounts {
    /// Tracked devices whose deadline passed in the slide without an inform.
    pub overdue: u64,
    /// Overdue devices that informed again, with a `local` boot (power) ...
    pub returned_boot: u64,
    /// ... or without one (the network came back).
    pub returned_no_boot: u64,
    /// Silent devices no longer tracked (silent for `forget_after_ms`).
    pub forgotten: u64,
    /// Change in the devices with a known cadence (the share's denominator).
    pub tracked_delta: i64,
    /// The smallest ids of devices that came back.
    pub returned_samples: Vec<String>,
}

impl SilenceCounts {
    pub fn merge(&mut self, other: &SilenceCounts) {
        self.overdue += other.overdue;
        self.returned_boot += other.returned_boot;
        self.returned_no_boot += other.returned_no_boot;
        self.forgotten += other.forgotten;
        self.tracked_delta += other.tracked_delta;
        merge_samples(&mut self.returned_samples, &other.returned_samples);
    }
}

/// The smallest [`MAX_SAMPLES`] of both.
pub(crate) fn merge_samples(mine: &mut Vec<String>, theirs: &[String]) {
    if theirs.is_empty() {
        return;
    }
    let mut all: BTreeSet<&str> = mine.iter().map(String::as_str).collect();
    all.extend(theirs.iter().map(String::as_str));
    *mine = all
        .into_iter()
        .take(MAX_SAMPLES)
        .map(str::to_owned)
        .collect();
}

/// One campaign's results over some span.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transfers {
    /// `"<OUI> <ProductClass>"`.
    pub product_class: String,
    pub command_key: String,
    /// Transfer results by outcome: `success`, or the fault class (`9001`–`9032`,
    /// `vendor`, `other`, `unknown`): a bounded set.
    pub results: BTreeMap<String, u64>,
    /// Boots with cause `firmware_upgrade` naming the campaign.
    pub upgrade_boots: u64,
    /// Software versions the upgraded devices came back with.
    pub versions_after: BTreeMap<String, u64>,
    /// Software versions the failing devices still run (a failed transfer keeps the
    /// old image).
    pub versions_before: BTreeMap<String, u64>,
    /// The smallest ids of devices whose transfer failed.
    pub failed_samples: Vec<String>,
    /// Devices that went silent soon after a `firmware_upgrade` boot or a failed
    /// transfer of the campaign (a bricked image): counted as failures.
    #[serde(default)]
    pub silent_after_transfer: u64,
}

impl Transfers {
    /// Adds another span's (or partition's) counts.
    pub fn merge(&mut self, other: &Transfers) {
        for (k, n) in &other.results {
            *self.results.entry(k.clone()).or_insert(0) += n;
        }
        self.upgrade_boots += other.upgrade_boots;
        for (k, n) in &other.versions_after {
            *self.versions_after.entry(k.clone()).or_insert(0) += n;
        }
        for (k, n) in &other.versions_before {
            *self.versions_before.entry(k.clone()).or_insert(0) += n;
        }
        merge_samples(&mut self.failed_samples, &other.failed_samples);
        self.silent_after_transfer += other.silent_after_transfer;
    }

    pub fn successes(&self) -> u64 {
        self.results.get("success").copied().unwrap_or(0)
    }

    /// Results with a fault code other than 0, and devices silent after a transfer.
    pub fn failures(&self) -> u64 {
        self.results
            .iter()
            .filter(|(k, _)| k.as_str() != "success" && k.as_str() != "unknown")
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.silent_after_transfer
    }

    /// Results with a known outcome.
    pub fn decided(&self) -> u64 {
        self.successes() + self.failures()
    }
}

/// Distinct devices, records, and the smallest device ids seen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Measure {
    pub devices: u64,
    pub count: u64,
    pub samples: Vec<String>,
}

impl Measure {
    /// Adds another partition's measure (its devices are disjoint from ours).
    pub fn merge(&mut self, other: &Measure) {
        self.devices += other.devices;
        self.count += other.count;
        merge_samples(&mut self.samples, &other.samples);
    }
}

impl Partial {
    pub fn measure(&self, kind: MeasureKind) -> &Measure {
        match kind {
            MeasureKind::Boot => &self.boot,
            MeasureKind::AcsReboot => &self.acs_reboot,
            MeasureKind::Bootstrap => &self.bootstrap,
            MeasureKind::Wakeup => &self.wakeup,
            MeasureKind::Retry => &self.retry,
            MeasureKind::FirmwareUpgrade => &self.firmware_upgrade,
        }
    }

    pub fn measure_mut(&mut self, kind: MeasureKind) -> &mut Measure {
        match kind {
            MeasureKind::Boot => &mut self.boot,
            MeasureKind::AcsReboot => &mut self.acs_reboot,
            MeasureKind::Bootstrap => &mut self.bootstrap,
            MeasureKind::Wakeup => &mut self.wakeup,
            MeasureKind::Retry => &mut self.retry,
            MeasureKind::FirmwareUpgrade => &mut self.firmware_upgrade,
        }
    }

    /// Whether it carries silence and nothing else (no inform, no campaign).
    pub fn silence_only(&self) -> bool {
        self.silence.is_some() && self.informs == 0 && self.transfers.is_none()
    }

    pub fn merge(&mut self, other: &Partial) {
        self.informs += other.informs;
        for kind in MeasureKind::ALL {
            self.measure_mut(kind).merge(other.measure(kind));
        }
        match (&mut self.transfers, &other.transfers) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.transfers = Some(theirs.clone()),
            _ => {}
        }
        match (&mut self.silence, &other.silence) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.silence = Some(theirs.clone()),
            _ => {}
        }
    }
}

/// The input partitions a worker owns have closed every window ending at or before
/// `closed_until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    pub partitions: Vec<i32>,
    /// Partitions of the input topic, so that the fleet stage knows how many to wait for.
    pub partition_count: i32,
    pub closed_until_ms: i64,
    /// The worker has reached the end of all these partitions without a single
    /// record: they hold nothing back until they report a real close.
    #[serde(default)]
    pub idle: bool,
}
