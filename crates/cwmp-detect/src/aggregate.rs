//! Partial window aggregates (topic `cwmp.aggregates`): what detect workers send
//! the fleet stage.
//!
//! A device's records all arrive on one input partition, so a worker's distinct
//! device counts are exact for its partitions and the fleet stage sums them. A
//! worker sends a [`Partial`] per scope, key and window it has data for, then a
//! [`Close`] saying which input partitions have closed every window ending at or
//! before `closed_until_ms`. The fleet stage decides a window once every input
//! partition has closed it.

use std::collections::BTreeSet;

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
        if !other.samples.is_empty() {
            let mut all: BTreeSet<&str> = self.samples.iter().map(String::as_str).collect();
            all.extend(other.samples.iter().map(String::as_str));
            self.samples = all
                .into_iter()
                .take(MAX_SAMPLES)
                .map(str::to_owned)
                .collect();
        }
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

    pub fn merge(&mut self, other: &Partial) {
        self.informs += other.informs;
        for kind in MeasureKind::ALL {
            self.measure_mut(kind).merge(other.measure(kind));
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
