//! The detect worker: runs where a partition of `cwmp.events` lands.
//!
//! It drops late and redelivered records, runs the per-device detectors, and counts
//! the fleet measures in one-minute buckets (one bucket per slide). When the
//! watermark passes the end of a window it unions the window's buckets into one
//! [`Partial`] per scope and key, and then sends a [`Close`].

use std::collections::{BTreeMap, BTreeSet};

use cwmp_record::BootCause;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::aggregate::{
    merge_samples, AggregateMessage, Close, Measure, MeasureKind, Partial, SilenceCounts,
    Transfers, MAX_SAMPLES,
};
use crate::config::DetectConfig;
use crate::device::{hash64, DeviceTable, DeviceVerdict};
use crate::silence::{Network, SilenceEvent, PROFILE_SCOPES};
use crate::time::floor;
use crate::{Alert, Kinds, Observation, Scope};

/// What the worker produces.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerOutput {
    /// A per-device alert, for `cwmp.alerts`.
    Alert(Alert),
    /// For `cwmp.aggregates`.
    Aggregate(AggregateMessage),
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Older than the watermark: counted, not folded in.
    Late,
    /// A redelivery of a record already seen.
    Duplicate,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Late => "late",
            Verdict::Duplicate => "duplicate",
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub accepted: u64,
    pub late: u64,
    pub duplicate: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SetMeasure {
    devices: FxHashSet<u64>,
    count: u64,
    samples: BTreeSet<String>,
}

impl SetMeasure {
    fn add(&mut self, device_key: u64, device_id: &str) {
        self.count += 1;
        if self.devices.insert(device_key) {
            add_sample(&mut self.samples, device_id);
        }
    }
}

fn add_sample(samples: &mut BTreeSet<String>, device_id: &str) {
    if samples.len() < MAX_SAMPLES {
        samples.insert(device_id.to_owned());
    } else if samples.last().is_some_and(|l| device_id < l.as_str()) {
        samples.insert(device_id.to_owned());
        samples.pop_last();
    }
}

/// One scope and key in one bucket: informs, and each measure by [`MeasureKind::index`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cell {
    informs: u64,
    measures: [SetMeasure; MeasureKind::ALL.len()],
}

/// The distinct devices of a window's measures, while its buckets are unioned.
type DeviceSets = [FxHashSet<u64>; MeasureKind::ALL.len()];

/// Whether one record adds to each measure, by [`MeasureKind::index`].
fn measures_of(obs: &Observation, cause: Option<BootCause>) -> [bool; MeasureKind::ALL.len()] {
    MeasureKind::ALL.map(|m| match m {
        MeasureKind::Boot => cause == Some(BootCause::Local),
        MeasureKind::AcsReboot => cause == Some(BootCause::AcsReboot),
        MeasureKind::Bootstrap => {
            matches!(cause, Some(BootCause::FactoryReset | BootCause::Bootstrap))
        }
        MeasureKind::Wakeup => obs.kinds.has(Kinds::WAKEUP),
        MeasureKind::Retry => obs.retry,
        MeasureKind::FirmwareUpgrade => cause == Some(BootCause::FirmwareUpgrade),
    })
}

/// One slide of event time: per scope, key → cell.
type Bucket = [FxHashMap<String, Cell>; 5];

fn scope_index(scope: Scope) -> usize {
    match scope {
        Scope::Fleet => 0,
        Scope::ProductClass => 1,
        Scope::Acs => 2,
        Scope::SoftwareVersion | Scope::Device | Scope::Campaign => 3,
        Scope::Network => 4,
    }
}

/// The campaign key of a product class and command key.
pub fn campaign_key(product_class: &str, command_key: &str) -> String {
    format!("{product_class}/{command_key}")
}

/// Inserts `id` into sorted `samples`, keeping the smallest [`MAX_SAMPLES`].
fn add_sorted_sample(samples: &mut Vec<String>, id: &str) {
    if let Err(at) = samples.binary_search_by(|s| s.as_str().cmp(id)) {
        if at < MAX_SAMPLES {
            samples.insert(at, id.to_owned());
            samples.truncate(MAX_SAMPLES);
        }
    }
}

/// The detect worker's state machine. Pure: no clock, no I/O.
///
/// Everything but the configuration is its state, which [`Worker::snapshot`]
/// writes and [`Worker::restore`] reads back (see [`crate::snapshot`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct Worker {
    #[serde(skip)]
    config: DetectConfig,
    devices: DeviceTable,
    buckets: BTreeMap<i64, Bucket>,
    /// Per bucket: campaign key → its transfers and upgrade boots in that slide.
    campaigns: BTreeMap<i64, FxHashMap<String, Transfers>>,
    /// Per bucket: per scope (by [`scope_index`]), key → the silence of that slide.
    silence: BTreeMap<i64, [FxHashMap<String, SilenceCounts>; 5]>,
    clocks: BTreeMap<i32, PartitionClock>,
    /// Sources every partition's clock waits for before any has delivered (the
    /// partitions of the raw topic, when the Kafka path knows them).
    expected_sources: Vec<i32>,
    /// The smallest event time holding the watermark at its last computation: a
    /// record that moves a source clock above it cannot move the watermark.
    floor: Option<i64>,
    watermark: Option<i64>,
    /// Start of the next window to close.
    next_window: Option<i64>,
    /// The watermark of the last expiry sweep.
    swept_at: Option<i64>,
    partitions: Vec<i32>,
    partition_count: i32,
    stats: WorkerStats,
}

impl Worker {
    /// A worker that owns every partition of a one-partition input (replay). Refuses
    /// settings that do not hold together (a zero slide would divide by zero).
    pub fn new(config: DetectConfig) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        Ok(Worker {
            config,
            devices: DeviceTable::default(),
            buckets: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            silence: BTreeMap::new(),
            clocks: BTreeMap::from([(0, PartitionClock::default())]),
            expected_sources: Vec::new(),
            floor: None,
            watermark: None,
            next_window: None,
            swept_at: None,
            partitions: vec![0],
            partition_count: 1,
            stats: WorkerStats::default(),
        })
    }

    /// The input partitions this worker owns, of how many (after a rebalance).
    pub fn set_partitions(&mut self, mut partitions: Vec<i32>, partition_count: i32) {
        partitions.sort_unstable();
        let mut old = std::mem::take(&mut self.clocks);
        self.clocks = partitions
            .iter()
            .map(|p| {
                let clock = old
                    .remove(p)
                    .unwrap_or_else(|| PartitionClock::expecting(&self.expected_sources));
                (*p, clock)
            })
            .collect();
        self.partitions = partitions;
        self.partition_count = partition_count;
        self.floor = None;
    }

    /// The sources (raw partitions) each input partition's clock waits for from the
    /// start, so that a source whose records arrive later than the others' — ingest
    /// catching up raw partitions at different paces — is waited for instead of
    /// being judged late. A source that never delivers is released by
    /// [`Worker::source_idle`].
    pub fn expect_sources(&mut self, sources: Vec<i32>) {
        for clock in self.clocks.values_mut() {
            for s in &sources {
                clock.sources.entry(*s).or_default();
            }
        }
        self.expected_sources = sources;
        self.floor = None;
    }

    /// No record of `source` reached `partition` for a while although the partition
    /// went on delivering: it stops holding the watermark until it delivers again.
    pub fn source_idle(&mut self, partition: i32, source: i32, out: &mut Vec<WorkerOutput>) {
        let Some(clock) = self.clocks.get_mut(&partition) else {
            return;
        };
        match clock.sources.get_mut(&source) {
            Some(s) if !s.idle => s.idle = true,
            _ => return,
        }
        self.floor = None;
        self.advance(out);
    }

    /// Sources each partition's clock follows, and whether each is idle (for the
    /// Kafka loop's idle rule and for tests).
    pub fn sources(&self) -> Vec<(i32, i32, bool)> {
        self.clocks
            .iter()
            .flat_map(|(p, c)| c.sources.iter().map(move |(s, sc)| (*p, *s, sc.idle)))
            .collect()
    }

    /// The consumer reached the end of `partition`: it holds no backlog, so it no
    /// longer holds the watermark back.
    pub fn partition_idle(&mut self, partition: i32, out: &mut Vec<WorkerOutput>) {
        let Some(clock) = self.clocks.get_mut(&partition) else {
            return;
        };
        if clock.idle {
            return;
        }
        clock.idle = true;
        self.floor = None;
        if self.watermark.is_none()
            && self
                .clocks
                .values()
                .all(|c| c.idle && c.max_time().is_none())
        {
            // Nothing at all to wait for here: say so, or the fleet stage would wait.
            out.push(WorkerOutput::Aggregate(AggregateMessage::Close(Close {
                partitions: self.partitions.clone(),
                partition_count: self.partition_count,
                closed_until_ms: i64::MIN,
                idle: true,
            })));
            return;
        }
        self.advance(out);
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// After a restore: the configuration the state runs with.
    pub(crate) fn set_config(&mut self, config: DetectConfig) {
        self.config = config;
        self.floor = None;
    }

    /// The input partitions this worker owns.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    /// Event time minus the allowed lateness, where every source of every partition
    /// that still has a backlog has arrived: the smallest of their latest event times
    /// (or the latest of all when every partition is caught up). Never goes back.
    ///
    /// Clocks are per (partition, source): ingest writes the records of several raw
    /// partitions into one events partition, and consumes those raw partitions at
    /// different paces when it catches up, so event time is ordered per source, not
    /// per partition. A source more than `source_idle_ms` of event time behind the
    /// newest of its partition stops holding the watermark (a source that stopped).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The event time holding the watermark (before the allowed lateness).
    fn compute_floor(&self) -> Option<i64> {
        let idle_after = self.config.source_idle_ms;
        let mut floor: Option<i64> = None;
        let mut newest_of_all: Option<i64> = None;
        let mut any_busy = false;
        for clock in self.clocks.values() {
            let newest = clock.max_time();
            newest_of_all = newest_of_all.max(newest);
            if clock.idle {
                continue;
            }
            if clock.sources.is_empty() {
                // An assigned partition has delivered nothing yet.
                return None;
            }
            for source in clock.sources.values().filter(|s| !s.idle) {
                match (source.max_time, newest) {
                    // A source that has delivered nothing yet.
                    (None, _) => return None,
                    (Some(t), Some(n)) if n - t > idle_after => continue,
                    (Some(t), _) => {
                        any_busy = true;
                        floor = Some(floor.map_or(t, |f: i64| f.min(t)));
                    }
                }
            }
        }
        if any_busy {
            floor
        } else {
            newest_of_all
        }
    }

    /// Moves the watermark forward if it can; judges and closes what it passes.
    fn advance(&mut self, out: &mut Vec<WorkerOutput>) {
        self.floor = self.compute_floor();
        let Some(new) = self.floor.map(|f| f - self.config.allowed_lateness_ms) else {
            return;
        };
        if self.watermark.is_some_and(|w| new <= w) {
            return;
        }
        self.watermark = Some(new);
        let mut alerts = Vec::new();
        self.devices.advance(&self.config, new, &mut alerts);
        out.extend(alerts.into_iter().map(WorkerOutput::Alert));
        self.devices.advance_silence(&self.config, new);
        self.count_silence();
        self.close_windows(out);
    }

    /// Tracked devices waiting for their next inform, and tracked devices overdue now.
    pub fn cadences(&self) -> (usize, u64) {
        (self.devices.with_cadence(), self.devices.overdue())
    }

    /// Counts what the device table found of silence into its slides.
    fn count_silence(&mut self) {
        if self.devices.silence_out.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.devices.silence_out);
        let slide = self.config.slide_ms;
        for event in &events {
            let (profile, at_ms) = match event {
                SilenceEvent::Tracked { profile, at_ms, .. }
                | SilenceEvent::Overdue { profile, at_ms }
                | SilenceEvent::Returned { profile, at_ms, .. }
                | SilenceEvent::Forgotten { profile, at_ms } => (Some(profile), *at_ms),
                SilenceEvent::AfterTransfer { at_ms, .. } => (None, *at_ms),
            };
            let bucket = floor(at_ms, slide);
            // A slide leaves with the window it is the newest of. Events are made
            // before that window closes (the wheel is advanced before the windows are
            // closed, at the same watermark), so this cannot happen.
            let window = self.config.window_ms;
            if self
                .next_window
                .is_some_and(|n| bucket < n + window - slide)
            {
                debug_assert!(false, "silence event for a slide already sent");
                continue;
            }
            // The slide must be closed (and sent) even if it holds no record.
            self.buckets.entry(bucket).or_default();
            if let SilenceEvent::AfterTransfer {
                product_class,
                command_key,
                ..
            } = event
            {
                let key = campaign_key(product_class, command_key);
                self.campaigns
                    .entry(bucket)
                    .or_default()
                    .entry(key)
                    .or_insert_with(|| Transfers {
                        product_class: product_class.clone(),
                        command_key: command_key.clone(),
                        ..Transfers::default()
                    })
                    .silent_after_transfer += 1;
                continue;
            }
            let Some(profile) = profile else { continue };
            let cells = self.silence.entry(bucket).or_default();
            for &scope in &self.config.inform_silence.scopes {
                let key = match PROFILE_SCOPES.iter().position(|&s| s == scope) {
                    Some(i) => self.devices.profile_name(i, profile[i]),
                    None => "all",
                };
                let cells = &mut cells[scope_index(scope)];
                let cell = match cells.get_mut(key) {
                    Some(cell) => cell,
                    None => cells.entry(key.to_owned()).or_default(),
                };
                match event {
                    SilenceEvent::Tracked { delta, .. } => cell.tracked_delta += delta,
                    SilenceEvent::Overdue { .. } => cell.overdue += 1,
                    SilenceEvent::Returned {
                        boot, device_id, ..
                    } => {
                        if *boot {
                            cell.returned_boot += 1;
                        } else {
                            cell.returned_no_boot += 1;
                        }
                        merge_samples(&mut cell.returned_samples, std::slice::from_ref(device_id));
                    }
                    SilenceEvent::Forgotten { .. } => cell.forgotten += 1,
                    SilenceEvent::AfterTransfer { .. } => {}
                }
            }
        }
        let mut events = events;
        events.clear();
        self.devices.silence_out = events;
    }

    /// Open per-device alerts, by kind.
    pub fn active(&self) -> BTreeMap<crate::AlertKind, u64> {
        self.devices.open_counts()
    }

    pub fn tracked_devices(&self) -> usize {
        self.devices.tracked()
    }

    /// Approximate bytes of detector state: device tables and open window buckets.
    pub fn state_bytes(&self) -> usize {
        let cells: usize = self
            .buckets
            .values()
            .flat_map(|b| b.iter())
            .map(|m| {
                m.capacity() * (std::mem::size_of::<(String, Cell)>() + 1)
                    + m.iter()
                        .map(|(k, c)| {
                            k.capacity()
                                + c.measures
                                    .iter()
                                    .map(|s| s.devices.capacity() * 9 + s.samples.len() * 48)
                                    .sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum();
        self.devices.state_bytes() + cells
    }

    /// Folds one record from input `partition` in; appends what it causes to `out`.
    pub fn observe(
        &mut self,
        partition: i32,
        obs: &Observation,
        out: &mut Vec<WorkerOutput>,
    ) -> Verdict {
        let expected = &self.expected_sources;
        let clock = self
            .clocks
            .entry(partition)
            .or_insert_with(|| PartitionClock::expecting(expected));
        let partition_was_idle = std::mem::replace(&mut clock.idle, false);
        let newest_before = clock.newest;
        clock.newest = clock.newest.max(Some(obs.time_ms));
        let source = clock.sources.entry(source_of(obs)).or_default();
        let before = source.max_time;
        let source_was_idle = std::mem::replace(&mut source.idle, false);
        source.max_time = before.max(Some(obs.time_ms));
        // Only a clock at the floor (or one that was waited for, or a newest time
        // that releases a lagging source) can move the watermark: skip the rest.
        let moves = match (self.floor, before) {
            (None, _) | (_, None) => true,
            (Some(f), Some(b)) => {
                b <= f
                    || partition_was_idle
                    || source_was_idle
                    || clock
                        .newest
                        .is_some_and(|n| n - f > self.config.source_idle_ms)
                        && newest_before != clock.newest
            }
        };
        if self.watermark().is_some_and(|w| obs.time_ms < w) {
            self.stats.late += 1;
            return Verdict::Late;
        }
        let device_key = hash64(obs.device_id.as_str());
        if self.devices.observe(&self.config, obs, device_key) == DeviceVerdict::Duplicate {
            self.stats.duplicate += 1;
            return Verdict::Duplicate;
        }
        self.stats.accepted += 1;
        self.count_silence();
        self.count(obs, device_key);
        if moves {
            self.advance(out);
        }
        Verdict::Accepted
    }

    /// Adds a transfer result, or a `firmware_upgrade` boot naming its campaign, to
    /// the campaign's cell of the record's slide.
    fn count_campaign(&mut self, obs: &Observation, cause: Option<BootCause>, bucket_start: i64) {
        let (command_key, upgrade) = match (&obs.transfer, &obs.command_key) {
            (Some(t), _) => (t.command_key.as_str(), false),
            (None, Some(key)) if cause == Some(BootCause::FirmwareUpgrade) => (key.as_str(), true),
            _ => return,
        };
        if command_key.is_empty() {
            // An autonomous transfer belongs to no campaign.
            return;
        }
        let key = campaign_key(&obs.product_class, command_key);
        let cells = self.campaigns.entry(bucket_start).or_default();
        let cell = cells.entry(key).or_insert_with(|| Transfers {
            product_class: obs.product_class.clone(),
            command_key: command_key.to_owned(),
            ..Transfers::default()
        });
        let version = obs.software_version.as_deref().unwrap_or("unknown");
        if upgrade {
            cell.upgrade_boots += 1;
            *cell.versions_after.entry(version.to_owned()).or_insert(0) += 1;
            return;
        }
        let code = obs.transfer.as_ref().and_then(|t| t.code);
        let outcome = match code {
            Some(0) => "success",
            other => cwmp_record::fault_class(other),
        };
        *cell.results.entry(outcome.to_owned()).or_insert(0) += 1;
        if code.is_some_and(|c| c != 0) {
            *cell.versions_before.entry(version.to_owned()).or_insert(0) += 1;
            add_sorted_sample(&mut cell.failed_samples, &obs.device_id);
        }
    }

    fn count(&mut self, obs: &Observation, device_key: u64) {
        let bucket_start = floor(obs.time_ms, self.config.slide_ms);
        // The cause is decided once per record, not once per measure.
        let cause = obs.kinds.boot_cause();
        if obs.transfer.is_some() || obs.command_key.is_some() {
            self.count_campaign(obs, cause, bucket_start);
        }
        if obs.transfer.is_some() {
            // A transfer result is no Inform: it only keeps its slide open, so that
            // the window whose newest slide holds it is closed (and sent).
            self.buckets.entry(bucket_start).or_default();
            return;
        }
        let hits = measures_of(obs, cause);
        let bucket = self.buckets.entry(bucket_start).or_default();
        let mut network = String::new();
        for &scope in &self.config.scopes {
            let key = match scope {
                Scope::Fleet => "all",
                Scope::ProductClass => obs.product_class.as_str(),
                Scope::Acs => obs.acs.as_deref().unwrap_or("unknown"),
                Scope::SoftwareVersion => obs.software_version.as_deref().unwrap_or("unknown"),
                Scope::Network => {
                    Network::of(obs.remote_addr.as_deref(), &self.config.inform_silence)
                        .write(&mut network);
                    network.as_str()
                }
                Scope::Device | Scope::Campaign => continue,
            };
            let cells = &mut bucket[scope_index(scope)];
            let cell = match cells.get_mut(key) {
                Some(cell) => cell,
                None => cells.entry(key.to_owned()).or_default(),
            };
            cell.informs += 1;
            for (measure, &hit) in cell.measures.iter_mut().zip(&hits) {
                if hit {
                    measure.add(device_key, &obs.device_id);
                }
            }
        }
    }

    /// Closes every window the watermark has passed.
    fn close_windows(&mut self, out: &mut Vec<WorkerOutput>) {
        let Some(watermark) = self.watermark() else {
            return;
        };
        let (window, slide) = (self.config.window_ms, self.config.slide_ms);
        // The first window is the first to hold the earliest record: by the time the
        // watermark closes it every record before the watermark has arrived, so it
        // does not depend on arrival order.
        let Some(mut next) = self
            .next_window
            .or_else(|| self.buckets.keys().next().map(|&b| b - window + slide))
        else {
            return;
        };
        if next + window > watermark {
            return;
        }
        // Forgetting idle devices and old event times changes no result (a record
        // finds expired state expired whether the sweep ran or not), so the sweep over
        // the device table runs once per hour of event time, not once per window.
        if self
            .swept_at
            .is_none_or(|at| watermark - at >= SWEEP_EVERY_MS)
        {
            self.devices.expire(&self.config, watermark);
            self.swept_at = Some(watermark);
        }
        while next + window <= watermark {
            // Skip stretches with no data at once.
            match self.buckets.range(next..).next() {
                Some((&first, _)) if first >= next + window => {
                    next = (first - window + slide).max(next);
                    continue;
                }
                None => {
                    next = floor(watermark - window, slide) + slide;
                    break;
                }
                Some(_) => {}
            }
            let mut partials = self.union(next);
            // A campaign's and a silence slide go out once, with the window it is
            // the newest of.
            let newest = next + window - slide;
            for (key, transfers) in self.campaigns.remove(&newest).unwrap_or_default() {
                partials.insert(
                    (Scope::Campaign, key.clone()),
                    Partial {
                        window_start_ms: next,
                        scope: Scope::Campaign,
                        key,
                        transfers: Some(Box::new(transfers)),
                        ..Partial::default()
                    },
                );
            }
            let mut silence = self.silence.remove(&newest).unwrap_or_default();
            for &scope in &self.config.inform_silence.scopes {
                for (key, counts) in std::mem::take(&mut silence[scope_index(scope)]) {
                    partials
                        .entry((scope, key.clone()))
                        .or_insert_with(|| Partial {
                            window_start_ms: next,
                            scope,
                            key,
                            ..Partial::default()
                        })
                        .silence = Some(Box::new(counts));
                }
            }
            // In (scope, key) order: the fleet stage takes a partition's partials in
            // increasing order only.
            for mut partial in partials.into_values() {
                partial.partition = self.own_partition();
                out.push(WorkerOutput::Aggregate(AggregateMessage::Partial(partial)));
            }
            next += slide;
            self.drop_buckets_before(next);
        }
        // Everything before `next` has been closed.
        self.next_window = Some(next);
        self.drop_buckets_before(next);
        out.push(WorkerOutput::Aggregate(AggregateMessage::Close(Close {
            partitions: self.partitions.clone(),
            partition_count: self.partition_count,
            closed_until_ms: next - slide + window,
            idle: false,
        })));
    }

    /// The one input partition this worker owns, if it owns exactly one: its
    /// partials then say so, and the fleet stage drops the ones it has seen (a
    /// worker restored from a snapshot sends again what it sent after it).
    fn own_partition(&self) -> Option<i32> {
        match self.partitions.as_slice() {
            [p] => Some(*p),
            _ => None,
        }
    }

    /// Buckets before the next window to close are done with.
    fn drop_buckets_before(&mut self, next: i64) {
        while let Some((&first, _)) = self.silence.first_key_value() {
            if first >= next {
                break;
            }
            self.silence.pop_first();
        }
        while let Some((&first, _)) = self.campaigns.first_key_value() {
            if first >= next {
                break;
            }
            self.campaigns.pop_first();
        }
        while let Some((&first, _)) = self.buckets.first_key_value() {
            if first >= next {
                break;
            }
            self.buckets.pop_first();
        }
    }

    /// The window starting at `start`, per scope and key.
    fn union(&self, start: i64) -> BTreeMap<(Scope, String), Partial> {
        let end = start + self.config.window_ms;
        let mut merged: BTreeMap<(Scope, &str), (Partial, DeviceSets)> = BTreeMap::new();
        for (_, bucket) in self.buckets.range(start..end) {
            for &scope in &self.config.scopes {
                if matches!(scope, Scope::Device | Scope::Campaign) {
                    continue;
                }
                for (key, cell) in &bucket[scope_index(scope)] {
                    let (p, sets) = merged.entry((scope, key.as_str())).or_insert_with(|| {
                        (
                            Partial {
                                window_start_ms: start,
                                scope,
                                key: key.clone(),
                                ..Partial::default()
                            },
                            Default::default(),
                        )
                    });
                    p.informs += cell.informs;
                    for kind in MeasureKind::ALL {
                        let (m, s) = (p.measure_mut(kind), &cell.measures[kind.index()]);
                        m.count += s.count;
                        sets[kind.index()].extend(s.devices.iter().copied());
                        if !s.samples.is_empty() {
                            m.merge(&Measure {
                                devices: 0,
                                count: 0,
                                samples: s.samples.iter().cloned().collect(),
                            });
                        }
                    }
                }
            }
        }
        merged
            .into_iter()
            .map(|((scope, key), (mut p, sets))| {
                for kind in MeasureKind::ALL {
                    p.measure_mut(kind).devices = sets[kind.index()].len() as u64;
                }
                ((scope, key.to_owned()), p)
            })
            .collect()
    }
}

/// How often, in event time, the device table is swept for expired entries.
const SWEEP_EVERY_MS: i64 = 3_600_000;

/// The source of records that name none (a file replayed without `source`).
const NO_SOURCE: i32 = -1;

/// The source clock a record moves: its raw partition, or [`NO_SOURCE`].
pub fn source_of(obs: &Observation) -> i32 {
    obs.source.as_ref().map_or(NO_SOURCE, |s| s.partition)
}

/// How far one input partition has got in event time, per source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PartitionClock {
    sources: BTreeMap<i32, SourceClock>,
    /// The newest event time of any source.
    newest: Option<i64>,
    /// Caught up with the end of the partition.
    idle: bool,
}

impl PartitionClock {
    fn expecting(sources: &[i32]) -> PartitionClock {
        PartitionClock {
            sources: sources
                .iter()
                .map(|s| (*s, SourceClock::default()))
                .collect(),
            ..PartitionClock::default()
        }
    }

    fn max_time(&self) -> Option<i64> {
        self.newest
    }
}

/// How far the records of one source (raw partition) in one input partition have got.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct SourceClock {
    max_time: Option<i64>,
    /// Released by [`Worker::source_idle`] until it delivers again.
    idle: bool,
}
