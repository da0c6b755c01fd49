//! Per-device state and the per-device detectors (`reboot_loop`, `wakeup_rate` per
//! device).
//!
//! Every tracked device costs one small entry: a 64-bit hash of its id, when it was
//! last seen, and fingerprints of its last two record sources (to drop
//! redeliveries). Boot and wake-up times live in side tables only for devices that
//! booted or woke recently; the device id string is kept only while a device alert
//! is open. Times are seconds since 2020-01-01 in a `u32`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::config::{DetectConfig, MAX_TRACKED};
use crate::silence::{Cadence, Network, ProfileFields, ProfileKeys, Profiles, SilenceEvent, Wheel};
use crate::time::floor;
use crate::{Alert, AlertKind, AlertState, Observation, Scope};

/// How far back a retried session's boot is taken for the boot it retries: CWMP
/// back-off reaches about an hour only after eight failed attempts.
const RETRY_HORIZON_MS: i64 = HOUR_MS;

/// 2020-01-01T00:00:00Z: the origin of the compact second counters.
const EPOCH_MS: i64 = 1_577_836_800_000;
const HOUR_MS: i64 = 3_600_000;

fn secs(ms: i64) -> u32 {
    ((ms - EPOCH_MS).max(1000) / 1000).min(u32::MAX as i64) as u32
}

fn ms(secs: u32) -> i64 {
    EPOCH_MS + secs as i64 * 1000
}

/// A stable 64-bit hash (SipHash with fixed keys: the same in every worker of one build).
pub(crate) fn hash64(value: impl Hash) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x6377_6d70, 0x7374_7265_616d);
    value.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct DeviceState {
    last_seen: u32,
    /// Fingerprints of the last two record sources (0 = none).
    sources: [u32; 2],
    /// Inform cadence and deadline (`inform_silence`).
    cadence: Cadence,
}

/// When a device's entry may go.
enum Expiry {
    /// A tracked device waiting for its deadline: the wheel decides.
    Never,
    /// After this second; `forget` when it is a silent tracked device (its scopes
    /// count it out).
    After { at: u32, forget: bool },
}

fn expiry(d: &DeviceState, config: &DetectConfig) -> Expiry {
    let silence = &config.inform_silence;
    let c = &d.cadence;
    let secs_of = |ms: i64| (ms / 1000).clamp(0, u32::MAX as i64) as u32;
    if c.tracked(silence) {
        return match (c.overdue(), c.deadline(d.last_seen)) {
            (true, Some(since)) => Expiry::After {
                at: since.saturating_add(secs_of(silence.forget_after_ms)),
                forget: true,
            },
            _ => Expiry::Never,
        };
    }
    // A device learning its cadence is kept for one longest interval.
    let keep = if c.learning() {
        config.device_ttl_ms.max(silence.max_interval_ms)
    } else {
        config.device_ttl_ms
    };
    Expiry::After {
        at: d.last_seen.saturating_add(secs_of(keep)),
        forget: false,
    }
}

/// A device that went silent soon after a transfer event of a campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AfterTransfer {
    at: u32,
    product_class: String,
    command_key: String,
}

/// Most event times one device keeps. Reached only by a device sending thousands of
/// boots or wake-ups while the watermark trails it (a backlog of hours): the oldest
/// then fall out, and only that device's alerts may differ from a replay.
const MAX_TIMES: usize = 1024;

/// A device's boot (or wake-up) times, in time order (records may arrive out of
/// order within the lateness bound, so times are inserted in place).
///
/// Times are kept until the watermark no longer needs them ([`Ring::prune`]), not
/// until a count is reached: when a consumer drains one partition hours ahead of
/// another, the watermark trails that partition's devices, and the events it has not
/// judged yet must still see every earlier event of their window. (A fixed ring of
/// the last 16 times lost them, and device alerts opened late, under other ids.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ring {
    times: Vec<u32>,
}

impl Ring {
    fn insert(&mut self, t: u32) {
        let at = self.times.partition_point(|&x| x <= t);
        self.times.insert(at, t);
        if self.times.len() > MAX_TIMES {
            self.times.remove(0);
        }
    }

    fn slice(&self) -> &[u32] {
        &self.times
    }

    fn contains(&self, t: u32) -> bool {
        self.times.binary_search(&t).is_ok()
    }

    /// Removes one occurrence of `t`.
    fn remove(&mut self, t: u32) {
        if let Ok(at) = self.times.binary_search(&t) {
            self.times.remove(at);
        }
    }

    /// Times in `[now - span, now]`, oldest first.
    fn window(&self, now: u32, span: u32) -> &[u32] {
        let s = self.slice();
        let hi = s.partition_point(|&t| t <= now);
        let lo = s[..hi].partition_point(|&t| t < now.saturating_sub(span));
        &s[lo..hi]
    }

    fn last(&self) -> Option<u32> {
        self.times.last().copied()
    }

    /// Drops what no judgment at or after `watermark` can need: times older than
    /// `span` before it, except the last `MAX_TRACKED` at or before it (which decide
    /// when an open alert resolves).
    fn prune(&mut self, watermark: u32, span: u32) {
        let upto = self.times.partition_point(|&t| t <= watermark);
        let recent = self.times[..upto].partition_point(|&t| t < watermark.saturating_sub(span));
        let keep_from = recent.min(upto.saturating_sub(MAX_TRACKED as usize));
        if keep_from > 0 {
            self.times.drain(..keep_from);
            if self.times.capacity() > 4 * self.times.len().max(4) {
                self.times.shrink_to_fit();
            }
        }
    }
}

/// A boot or wake-up waiting for the watermark, so that device alerts are decided in
/// event-time order whatever the arrival order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct PendingEvent {
    time_ms: i64,
    device_id: String,
    kind: AlertKind,
}

/// An open per-device alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenDevice {
    id: String,
    device_id: String,
    opened_ms: i64,
    reported: u64,
}

/// What happened to a record at the device table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceVerdict {
    Accepted,
    /// Same source as one of the device's last two records: a redelivery.
    Duplicate,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeviceTable {
    #[serde(serialize_with = "by_last_seen")]
    devices: FxHashMap<u64, DeviceState>,
    boots: FxHashMap<u64, Ring>,
    /// Boots of retried sessions counted because no boot came before them within
    /// the retry horizon (yet): a boot arriving later but earlier in event time makes
    /// them repeats of it. Only devices with such boots have an entry.
    retried: FxHashMap<u64, Vec<u32>>,
    wakes: FxHashMap<u64, Ring>,
    open: FxHashMap<(u64, AlertKind), OpenDevice>,
    pending: BinaryHeap<Reverse<PendingEvent>>,
    /// Scope keys of tracked devices.
    profiles: Profiles,
    /// Deadlines of tracked devices.
    wheel: Wheel,
    /// When overdue devices are forgotten (`forget_after_ms` after their deadline).
    /// An entry whose device came back (or went silent again since) is dropped when
    /// it comes up: its time no longer matches.
    forgets: Wheel,
    /// Devices with a `firmware_upgrade` boot or a failed transfer lately.
    after_transfer: FxHashMap<u64, AfterTransfer>,
    /// Devices overdue now.
    overdue: u64,
    /// What silence the last calls found, for the worker to count.
    #[serde(skip)]
    pub(crate) silence_out: Vec<SilenceEvent>,
    #[serde(skip)]
    scratch: String,
}

/// Writes the device entries oldest-seen first (then by key), as the map they are
/// read back into. `cwmp-stream detect` checkpoints only the chunks of a snapshot
/// that changed since its last one: in this order the devices that informed since the last
/// one leave the front (for a periodic fleet, where those seen one interval ago
/// stand) and join the end, instead of changing entries all over the table.
fn by_last_seen<S: serde::Serializer>(
    devices: &FxHashMap<u64, DeviceState>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    // By value: sorting references would chase each into the table at every
    // comparison.
    let mut order: Vec<(u32, u64, DeviceState)> =
        devices.iter().map(|(k, d)| (d.last_seen, *k, *d)).collect();
    order.sort_unstable_by_key(|&(seen, key, _)| (seen, key));
    let mut map = serializer.serialize_map(Some(order.len()))?;
    for (_, key, d) in &order {
        map.serialize_entry(key, d)?;
    }
    map.end()
}

/// Pushes one silence event for the device's profile (nothing without one).
fn emit(
    out: &mut Vec<SilenceEvent>,
    profiles: &Profiles,
    profile: u32,
    make: impl FnOnce(ProfileKeys) -> SilenceEvent,
) {
    if let Some(keys) = profiles.keys(profile) {
        out.push(make(keys));
    }
}

impl DeviceTable {
    /// Open device alerts by kind.
    pub fn open_counts(&self) -> std::collections::BTreeMap<AlertKind, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (_, kind) in self.open.keys() {
            *counts.entry(*kind).or_insert(0) += 1;
        }
        counts
    }

    pub fn tracked(&self) -> usize {
        self.devices.len()
    }

    /// Tracked devices waiting for their next inform (a deadline in the wheel; the
    /// overdue ones are not among them).
    pub fn with_cadence(&self) -> usize {
        self.wheel.len()
    }

    /// Tracked devices overdue now.
    pub fn overdue(&self) -> u64 {
        self.overdue
    }

    /// The key string of profile scope `i` for interned id `id`.
    pub(crate) fn profile_name(&self, i: usize, id: u32) -> &str {
        self.profiles.name(i, id)
    }

    /// Bytes held by the tables (capacity, not length: what the allocator gave).
    pub fn state_bytes(&self) -> usize {
        fn table<K, V>(m: &FxHashMap<K, V>) -> usize {
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        let times = |m: &FxHashMap<u64, Ring>| {
            m.values()
                .map(|r| r.times.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
        };
        table(&self.devices)
            + table(&self.boots)
            + times(&self.boots)
            + table(&self.retried)
            + self
                .retried
                .values()
                .map(|v| v.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
            + table(&self.wakes)
            + times(&self.wakes)
            + table(&self.open)
            + self
                .open
                .values()
                .map(|o| o.id.capacity() + o.device_id.capacity())
                .sum::<usize>()
            + self.profiles.state_bytes()
            + self.wheel.state_bytes()
            + self.forgets.state_bytes()
            + table(&self.after_transfer)
    }

    /// Folds one (non-late) record into its device. Its boots and wake-ups are
    /// judged by [`DeviceTable::advance`] once the watermark passes them.
    /// `key` is [`hash64`] of the device id (the caller needs it too).
    pub fn observe(&mut self, config: &DetectConfig, obs: &Observation, key: u64) -> DeviceVerdict {
        let now = secs(obs.time_ms);
        let state = self.devices.entry(key).or_default();
        if state.last_seen != 0 {
            // What the expiry scan would have dropped by now is dropped here, so
            // that the state does not depend on when the scan ran.
            if let Expiry::After { at, forget } = expiry(state, config) {
                if now > at {
                    if forget {
                        forget_device(state, &mut self.profiles, &mut self.silence_out, at);
                        self.overdue = self.overdue.saturating_sub(1);
                    }
                    let scheduled = state.cadence.scheduled();
                    *state = DeviceState::default();
                    state.cadence.set_scheduled(scheduled);
                }
            }
        }
        if let Some(source) = &obs.source {
            let fp = (hash64(source) as u32).max(1);
            if state.sources.contains(&fp) {
                return DeviceVerdict::Duplicate;
            }
            state.sources = [state.sources[1], fp];
        }
        let before = state.last_seen;
        state.last_seen = state.last_seen.max(now);
        self.observe_cadence(config, obs, key, before, now);

        // A retried session (RetryCount > 0) repeats the events of the attempt
        // that failed: its boot is the same boot, unless none came within the
        // horizon before it. Sessions of one device travel on different raw
        // partitions, so the retry may arrive before the attempt it repeats: then
        // the attempt, arriving, takes its place — the boots are those of an
        // arrival in event-time order.
        let horizon = (RETRY_HORIZON_MS / 1000) as u32;
        let repeated_boot = obs.retry
            && self
                .boots
                .get(&key)
                .is_some_and(|r| !r.window(now, horizon).is_empty());
        if obs.kinds.local_boot() && !repeated_boot {
            let ring = self.boots.entry(key).or_default();
            if let Some(marked) = self.retried.get_mut(&key) {
                marked.retain(|&r| {
                    let repeats_this = r >= now && r - now <= horizon;
                    if repeats_this {
                        ring.remove(r);
                    }
                    !repeats_this
                });
                if marked.is_empty() {
                    self.retried.remove(&key);
                }
            }
            ring.insert(now);
            if obs.retry {
                self.retried.entry(key).or_default().push(now);
            }
            self.pending.push(Reverse(PendingEvent {
                time_ms: obs.time_ms,
                device_id: obs.device_id.clone(),
                kind: AlertKind::RebootLoop,
            }));
        }
        if obs.kinds.has(crate::Kinds::WAKEUP) {
            self.wakes.entry(key).or_default().insert(now);
            self.pending.push(Reverse(PendingEvent {
                time_ms: obs.time_ms,
                device_id: obs.device_id.clone(),
                kind: AlertKind::WakeupRate,
            }));
        }
        DeviceVerdict::Accepted
    }

    /// The silence side of one record: a device that was overdue (or whose deadline
    /// passed before this record) is back; the record teaches the cadence; a tracked
    /// device gets its profile and a deadline.
    fn observe_cadence(
        &mut self,
        config: &DetectConfig,
        obs: &Observation,
        key: u64,
        before: u32,
        now: u32,
    ) {
        let silence = &config.inform_silence;
        let Some(state) = self.devices.get_mut(&key) else {
            return;
        };
        let newest = state.last_seen;
        let c = &mut state.cadence;
        let out = &mut self.silence_out;
        let profiles = &mut self.profiles;
        if c.tracked(silence) {
            let boot = obs.kinds.local_boot();
            let back = |out: &mut Vec<SilenceEvent>, profiles: &Profiles, profile: u32| {
                emit(out, profiles, profile, |profile| SilenceEvent::Returned {
                    profile,
                    at_ms: obs.time_ms,
                    boot,
                    device_id: obs.device_id.clone(),
                });
            };
            if c.overdue() {
                back(out, profiles, c.profile);
                c.set_overdue(false);
                c.set_deadline(None, before);
                self.overdue = self.overdue.saturating_sub(1);
            } else if let Some(deadline) = c.deadline(before).filter(|&d| now > d) {
                // The deadline passed before the watermark got there: the same two
                // events the wheel and this record would have made.
                emit(out, profiles, c.profile, |profile| SilenceEvent::Overdue {
                    profile,
                    at_ms: ms(deadline),
                });
                went_silent(&mut self.after_transfer, out, config, key, before, deadline);
                back(out, profiles, c.profile);
                c.set_deadline(None, before);
            }
        }
        let learned = c.learn(
            silence,
            before,
            now,
            obs.kinds.has(crate::Kinds::PERIODIC),
            obs.inform_interval_s,
        );
        // A transfer result is proof of life, but names no network (and maybe no
        // product class): the device keeps the scopes of its informs.
        let is_inform = obs.transfer.is_none();
        if learned.tracked {
            // (A transfer result never starts tracking: it teaches no cadence.)
            if is_inform {
                let network = Network::of(obs.remote_addr.as_deref(), silence);
                let fields = ProfileFields {
                    product_class: &obs.product_class,
                    acs: obs.acs.as_deref().unwrap_or("unknown"),
                    software_version: obs.software_version.as_deref().unwrap_or("unknown"),
                    network,
                };
                let hash = fields.hash();
                if !learned.was_tracked || !profiles.same(c.profile, hash) {
                    let new = profiles.acquire(&fields, hash, &mut self.scratch);
                    if learned.was_tracked {
                        emit(out, profiles, c.profile, |profile| SilenceEvent::Tracked {
                            profile,
                            at_ms: obs.time_ms,
                            delta: -1,
                        });
                        profiles.release(c.profile);
                    }
                    c.profile = new;
                    emit(out, profiles, new, |profile| SilenceEvent::Tracked {
                        profile,
                        at_ms: obs.time_ms,
                        delta: 1,
                    });
                }
            }
            let deadline = c
                .deadline(newest)
                .unwrap_or(0)
                .max(now.saturating_add(c.grace_secs(silence)));
            c.set_deadline(Some(deadline), newest);
            if !c.scheduled() {
                if let Some(d) = c.deadline(newest) {
                    self.wheel.insert(ms(d), config.slide_ms, key);
                    c.set_scheduled(true);
                }
            }
        } else if learned.was_tracked {
            emit(out, profiles, c.profile, |profile| SilenceEvent::Tracked {
                profile,
                at_ms: obs.time_ms,
                delta: -1,
            });
            profiles.release(c.profile);
            c.profile = 0;
            c.set_deadline(None, newest);
        }
        let upgrade_key = match (&obs.transfer, &obs.command_key) {
            (Some(t), _) if t.code.is_some_and(|c| c != 0) => Some(t.command_key.as_str()),
            (None, Some(k))
                if obs.kinds.boot_cause() == Some(cwmp_record::BootCause::FirmwareUpgrade) =>
            {
                Some(k.as_str())
            }
            _ => None,
        };
        if let Some(command_key) = upgrade_key.filter(|k| !k.is_empty()) {
            self.after_transfer.insert(
                key,
                AfterTransfer {
                    at: now,
                    product_class: obs.product_class.clone(),
                    command_key: command_key.to_owned(),
                },
            );
        }
    }

    /// Devices whose deadline the watermark has passed without a record are overdue
    /// (at their deadline); entries whose device informed since move on.
    pub fn advance_silence(&mut self, config: &DetectConfig, watermark: i64) {
        let slide = config.slide_ms;
        let silence = &config.inform_silence;
        while let Some((bucket, keys)) = self.wheel.pop_due(watermark, slide) {
            for key in keys {
                let Some(state) = self.devices.get_mut(&key) else {
                    continue;
                };
                let c = &mut state.cadence;
                let deadline = c.deadline(state.last_seen);
                let (true, false, Some(deadline)) = (c.tracked(silence), c.overdue(), deadline)
                else {
                    c.set_scheduled(false);
                    continue;
                };
                let at = ms(deadline);
                if floor(at, slide) > bucket {
                    self.wheel.insert(at, slide, key);
                    continue;
                }
                c.set_scheduled(false);
                c.set_overdue(true);
                self.overdue += 1;
                emit(
                    &mut self.silence_out,
                    &self.profiles,
                    c.profile,
                    |profile| SilenceEvent::Overdue { profile, at_ms: at },
                );
                went_silent(
                    &mut self.after_transfer,
                    &mut self.silence_out,
                    config,
                    key,
                    state.last_seen,
                    deadline,
                );
                self.forgets
                    .insert(ms(forget_at(deadline, config)), slide, key);
            }
        }
        while let Some((bucket, keys)) = self.forgets.pop_due(watermark, slide) {
            for key in keys {
                let Some(state) = self.devices.get_mut(&key) else {
                    continue;
                };
                let c = &state.cadence;
                let due = match (c.tracked(silence), c.overdue(), c.deadline(state.last_seen)) {
                    (true, true, Some(since)) => forget_at(since, config),
                    _ => continue,
                };
                if floor(ms(due), slide) != bucket {
                    continue;
                }
                forget_device(state, &mut self.profiles, &mut self.silence_out, due);
                self.overdue = self.overdue.saturating_sub(1);
                self.devices.remove(&key);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        kind: AlertKind,
        key: u64,
        obs: &PendingEvent,
        window_start_ms: i64,
        count: u64,
        threshold: f64,
        detail: serde_json::Value,
        out: &mut Vec<Alert>,
    ) {
        let state = match self.open.get_mut(&(key, kind)) {
            Some(open) if count <= open.reported => return,
            Some(open) => {
                open.reported = count;
                AlertState::Update
            }
            None => {
                let id = Alert::incident_id(kind, Scope::Device, &obs.device_id, window_start_ms);
                self.open.insert(
                    (key, kind),
                    OpenDevice {
                        id,
                        device_id: obs.device_id.clone(),
                        opened_ms: window_start_ms,
                        reported: count,
                    },
                );
                AlertState::Open
            }
        };
        let Some(open) = self.open.get(&(key, kind)) else {
            return;
        };
        out.push(Alert {
            schema: 1,
            id: open.id.clone(),
            kind,
            state,
            scope: Scope::Device,
            key: obs.device_id.clone(),
            window_start_ms,
            window_end_ms: obs.time_ms,
            event_time_ms: obs.time_ms,
            devices: 1,
            count,
            baseline: None,
            threshold,
            sample_devices: vec![obs.device_id.clone()],
            detail,
        });
    }

    /// When an open alert of `kind` resolves, judging by the device's events at or
    /// before `upto` (seconds): a reboot loop after `quiet_ms` without a boot; a
    /// wake-up alert once the trailing hour holds no more than the allowed wake-ups
    /// (an hour after the oldest of the last `max + 1`).
    fn resolve_time(
        &self,
        config: &DetectConfig,
        kind: AlertKind,
        key: u64,
        upto: u32,
    ) -> Option<i64> {
        match kind {
            AlertKind::RebootLoop => {
                let ring = self.boots.get(&key)?;
                let last = *ring.window(upto, u32::MAX).last()?;
                Some(ms(last) + config.reboot_loop.quiet_ms)
            }
            _ => {
                let ring = self.wakes.get(&key)?;
                let seen = ring.window(upto, u32::MAX);
                let need = config.wakeup_rate.device_max_per_hour as usize + 1;
                let oldest = *seen.get(seen.len().checked_sub(need)?)?;
                Some(ms(oldest) + HOUR_MS)
            }
        }
    }

    /// Judges one boot or wake-up at its event time, all earlier ones judged already.
    fn judge(&mut self, config: &DetectConfig, event: &PendingEvent, out: &mut Vec<Alert>) {
        let key = hash64(event.device_id.as_str());
        let now = secs(event.time_ms);
        // An open alert that resolved between the previous event and this one.
        if self.open.contains_key(&(key, event.kind)) {
            if let Some(at) = self
                .resolve_time(config, event.kind, key, now.saturating_sub(1))
                .filter(|&at| at <= event.time_ms)
            {
                self.resolve(config, (key, event.kind), at, out);
            }
        }
        if event.kind == AlertKind::RebootLoop
            && !self.boots.get(&key).is_some_and(|r| r.contains(now))
        {
            // A retried boot found to repeat an earlier one: no boot of its own.
            return;
        }
        let (ring, span, need, threshold, detail) = match event.kind {
            AlertKind::RebootLoop => {
                let c = &config.reboot_loop;
                (
                    self.boots.get(&key),
                    (c.within_ms / 1000) as u32,
                    c.boots as usize,
                    c.boots as f64,
                    serde_json::json!({"within_ms": c.within_ms}),
                )
            }
            _ => {
                let max = config.wakeup_rate.device_max_per_hour;
                (
                    self.wakes.get(&key),
                    (HOUR_MS / 1000) as u32 - 1,
                    max as usize + 1,
                    (max + 1) as f64,
                    serde_json::json!({"max_per_hour": max}),
                )
            }
        };
        let Some(window) = ring.map(|r| r.window(now, span)) else {
            return;
        };
        if window.len() >= need {
            let first = ms(window[0]);
            let n = window.len() as u64;
            self.raise(event.kind, key, event, first, n, threshold, detail, out);
        }
    }

    fn resolve(
        &mut self,
        config: &DetectConfig,
        k: (u64, AlertKind),
        at: i64,
        out: &mut Vec<Alert>,
    ) {
        let Some(open) = self.open.remove(&k) else {
            return;
        };
        out.push(Alert {
            schema: 1,
            id: open.id,
            kind: k.1,
            state: AlertState::Resolved,
            scope: Scope::Device,
            key: open.device_id.clone(),
            window_start_ms: open.opened_ms,
            window_end_ms: at,
            event_time_ms: at,
            devices: 1,
            count: open.reported,
            baseline: None,
            threshold: match k.1 {
                AlertKind::RebootLoop => config.reboot_loop.boots as f64,
                _ => (config.wakeup_rate.device_max_per_hour + 1) as f64,
            },
            sample_devices: vec![open.device_id],
            detail: serde_json::json!({}),
        });
    }

    /// Judges the boots and wake-ups the watermark has passed, in event-time order,
    /// then resolves the device alerts whose quiet time has passed.
    pub fn advance(&mut self, config: &DetectConfig, watermark: i64, out: &mut Vec<Alert>) {
        while self
            .pending
            .peek()
            .is_some_and(|Reverse(e)| e.time_ms <= watermark)
        {
            let Some(Reverse(event)) = self.pending.pop() else {
                break;
            };
            self.judge(config, &event, out);
        }
        let upto = secs(watermark);
        let mut resolved: Vec<(i64, AlertKind, String, u64)> = Vec::new();
        for (&(key, kind), open) in self.open.iter() {
            if let Some(at) = self
                .resolve_time(config, kind, key, upto)
                .filter(|&at| at <= watermark)
            {
                resolved.push((at, kind, open.device_id.clone(), key));
            }
        }
        resolved.sort();
        for (at, kind, _, key) in resolved {
            self.resolve(config, (key, kind), at, out);
        }
    }

    /// Forgets devices not seen for the TTL, and event times no detector still needs.
    pub fn expire(&mut self, config: &DetectConfig, watermark: i64) {
        let now = secs(watermark);
        let loop_span = (config
            .reboot_loop
            .within_ms
            .max(config.reboot_loop.quiet_ms)
            / 1000) as u32;
        let open = &self.open;
        // (Silent tracked devices are forgotten by their own queue, at their time.)
        self.devices.retain(|_, d| match expiry(d, config) {
            Expiry::After { at, forget: false } if now > at => {
                // An entry still in the wheel keeps its device until it comes up.
                if d.cadence.scheduled() {
                    *d = DeviceState::default();
                    d.cadence.set_scheduled(true);
                    true
                } else {
                    false
                }
            }
            _ => true,
        });
        let horizon = ((config.inform_silence.transfer_horizon_ms
            + crate::config::MAX_GRACE_MS
            + config.window_ms)
            / 1000) as u32;
        self.after_transfer
            .retain(|_, t| now.saturating_sub(t.at) <= horizon);
        let wake_span = (HOUR_MS / 1000) as u32;
        // A boot arriving from now on is not older than the watermark, so it cannot
        // make an earlier retried boot a repeat.
        self.retried.retain(|_, marked| {
            marked.retain(|&r| r >= now);
            !marked.is_empty()
        });
        self.boots.retain(|k, r| {
            r.prune(now, loop_span);
            open.contains_key(&(*k, AlertKind::RebootLoop))
                || r.last().is_some_and(|t| now.saturating_sub(t) <= loop_span)
        });
        self.wakes.retain(|k, r| {
            r.prune(now, wake_span);
            open.contains_key(&(*k, AlertKind::WakeupRate))
                || r.last().is_some_and(|t| now.saturating_sub(t) <= wake_span)
        });
    }
}

/// When a device silent since `since` (seconds) is forgotten.
fn forget_at(since: u32, config: &DetectConfig) -> u32 {
    since.saturating_add(
        (config.inform_silence.forget_after_ms / 1000).clamp(0, u32::MAX as i64) as u32,
    )
}

/// A silent device forgotten at `at` (seconds): its scopes count it out.
fn forget_device(
    d: &mut DeviceState,
    profiles: &mut Profiles,
    out: &mut Vec<SilenceEvent>,
    at: u32,
) {
    let at_ms = ms(at);
    emit(out, profiles, d.cadence.profile, |profile| {
        SilenceEvent::Forgotten { profile, at_ms }
    });
    emit(out, profiles, d.cadence.profile, |profile| {
        SilenceEvent::Tracked {
            profile,
            at_ms,
            delta: -1,
        }
    });
    profiles.release(d.cadence.profile);
    d.cadence.profile = 0;
}

/// A device went silent at `deadline` (its last record at `last_seen`): if that was
/// soon after a transfer event, it counts in that campaign.
fn went_silent(
    after_transfer: &mut FxHashMap<u64, AfterTransfer>,
    out: &mut Vec<SilenceEvent>,
    config: &DetectConfig,
    key: u64,
    last_seen: u32,
    deadline: u32,
) {
    let Some(t) = after_transfer.remove(&key) else {
        return;
    };
    let horizon = (config.inform_silence.transfer_horizon_ms / 1000) as u32;
    if last_seen.saturating_sub(t.at) <= horizon {
        out.push(SilenceEvent::AfterTransfer {
            at_ms: ms(deadline),
            product_class: t.product_class,
            command_key: t.command_key,
        });
    }
}
