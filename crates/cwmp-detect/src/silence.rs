//! The pieces of the silent-device detector (`inform_silence`) that live with the
//! device table: each device's learned cadence and deadline ([`Cadence`], 12 bytes
//! inside the device's entry), the scope keys a tracked device counts under
//! ([`Profiles`], shared by every device with the same keys), and the deadlines
//! ([`Wheel`]: one entry per tracked device, in buckets of one slide, so that no
//! window looks at every device).
//!
//! How a device is judged:
//!
//! - **Cadence.** From the `…PeriodicInformInterval` a record carries, at once; else
//!   from the gaps between its `2 PERIODIC` informs: two consecutive gaps that agree
//!   (within a tenth, or 30 s) set the interval. Once set, one gap of another length
//!   (a missed inform, an extra one, a schedule reset by a boot) changes nothing; two
//!   consecutive agreeing gaps of another length replace it (a changed
//!   `PeriodicInformInterval`).
//! - **Never a false silence from what is not known.** A device with no interval
//!   yet, or whose gaps never agree (sleepy or irregular devices), or whose interval
//!   is longer than `max_interval_ms`, is not *tracked*: it has no deadline and is
//!   not counted anywhere.
//! - **Deadline.** A tracked device's deadline is its last record plus
//!   max(`grace_factor` × interval, `min_grace_ms`), and never moves earlier. The
//!   device is overdue *at its deadline* once the watermark passes it; a record that
//!   arrives later than the deadline but before the watermark got there makes the
//!   same two events (overdue at the deadline, back at the record), so the result
//!   does not depend on how fast partitions were fetched.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::config::InformSilenceConfig;
use crate::time::floor;

/// Offsets are kept in units of this many seconds.
const OFFSET_UNIT: u32 = 4;
/// An offset that says "none".
const NO_OFFSET: u16 = u16::MAX;

const OVERDUE: u16 = 1 << 15;
const SCHEDULED: u16 = 1 << 14;
const VALUE: u16 = (1 << 14) - 1;
/// Interval codes below this are seconds; above, steps of [`COARSE_STEP`] seconds.
const FINE: u32 = 8192;
const COARSE_STEP: u32 = 32;

/// A duration in seconds as 14 bits: exact to 2 h 16 min, then 32 s steps to 75 h.
/// 0 means none; longer durations are clamped (and so never tracked).
fn encode_secs(s: u32) -> u16 {
    if s < FINE {
        s as u16
    } else {
        (FINE + ((s - FINE) / COARSE_STEP).min(VALUE as u32 - FINE)) as u16
    }
}

fn decode_secs(code: u16) -> u32 {
    let v = (code & VALUE) as u32;
    if v < FINE {
        v
    } else {
        FINE + (v - FINE) * COARSE_STEP
    }
}

/// Whether two gaps (seconds) agree: within a tenth of `b`, or 30 s.
fn agree(a: u32, b: u32) -> bool {
    a.abs_diff(b) <= (b / 10).max(30)
}

/// One device's cadence and deadline, in 12 bytes. Times are the device table's
/// seconds; offsets count back (last periodic) or ahead (deadline) from the
/// device's last record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Cadence {
    /// The device's scope keys while it is tracked (an id in [`Profiles`]); 0 = none.
    pub profile: u32,
    periodic_back: u16,
    deadline_ahead: u16,
    /// Interval code, with the `OVERDUE` and `SCHEDULED` flags.
    interval: u16,
    /// The gap waiting for a second one to agree with it (interval code).
    candidate: u16,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence {
            profile: 0,
            periodic_back: NO_OFFSET,
            deadline_ahead: NO_OFFSET,
            interval: 0,
            candidate: 0,
        }
    }
}

/// What one record changed in a device's tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Learned {
    pub was_tracked: bool,
    pub tracked: bool,
}

impl Cadence {
    /// The learned interval in seconds (0 = none).
    pub fn interval_secs(&self) -> u32 {
        decode_secs(self.interval)
    }

    pub fn overdue(&self) -> bool {
        self.interval & OVERDUE != 0
    }

    pub fn set_overdue(&mut self, on: bool) {
        self.set_flag(OVERDUE, on);
    }

    /// The device has an entry in the [`Wheel`].
    pub fn scheduled(&self) -> bool {
        self.interval & SCHEDULED != 0
    }

    pub fn set_scheduled(&mut self, on: bool) {
        self.set_flag(SCHEDULED, on);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        if on {
            self.interval |= flag;
        } else {
            self.interval &= !flag;
        }
    }

    /// Learning: a periodic inform or a gap waits for the next.
    pub fn learning(&self) -> bool {
        self.periodic_back != NO_OFFSET || self.candidate != 0
    }

    /// A device is tracked when its interval is known and not too long.
    pub fn tracked(&self, config: &InformSilenceConfig) -> bool {
        let i = self.interval_secs();
        i > 0 && i as i64 * 1000 <= config.max_interval_ms
    }

    /// Grace after the last record, in seconds.
    pub fn grace_secs(&self, config: &InformSilenceConfig) -> u32 {
        let i = self.interval_secs() as f64 * 1000.0;
        let grace = (config.grace_factor * i).max(config.min_grace_ms as f64);
        (grace.min(crate::config::MAX_GRACE_MS as f64) / 1000.0).ceil() as u32
    }

    /// The deadline (seconds), given the device's last record.
    pub fn deadline(&self, last_seen: u32) -> Option<u32> {
        (self.deadline_ahead != NO_OFFSET)
            .then(|| last_seen.saturating_add(self.deadline_ahead as u32 * OFFSET_UNIT))
    }

    fn last_periodic(&self, last_seen: u32) -> Option<u32> {
        (self.periodic_back != NO_OFFSET)
            .then(|| last_seen.saturating_sub(self.periodic_back as u32 * OFFSET_UNIT))
    }

    fn set_last_periodic(&mut self, at: Option<u32>, last_seen: u32) {
        self.periodic_back = match at {
            Some(t) if t <= last_seen => {
                let back = (last_seen - t) / OFFSET_UNIT;
                if back >= NO_OFFSET as u32 {
                    NO_OFFSET
                } else {
                    back as u16
                }
            }
            Some(_) => 0,
            None => NO_OFFSET,
        };
    }

    /// Sets the deadline (rounded up to the offset unit; never before `last_seen`).
    pub fn set_deadline(&mut self, at: Option<u32>, last_seen: u32) {
        self.deadline_ahead = match at {
            Some(t) => {
                let ahead = t.saturating_sub(last_seen).div_ceil(OFFSET_UNIT);
                ahead.min(NO_OFFSET as u32 - 1) as u16
            }
            None => NO_OFFSET,
        };
    }

    /// Folds one record at `now` into the cadence: an interval the record carries,
    /// or the gap since the last `2 PERIODIC` when this one is periodic.
    /// `last_seen` is the device's last record before this one.
    pub fn learn(
        &mut self,
        config: &InformSilenceConfig,
        last_seen: u32,
        now: u32,
        periodic: bool,
        carried: Option<u32>,
    ) -> Learned {
        let was_tracked = self.tracked(config);
        let flags = self.interval & (OVERDUE | SCHEDULED);
        let mut interval = self.interval_secs();
        if let Some(i) = carried {
            interval = i;
            self.candidate = 0;
        }
        let last_periodic = self.last_periodic(last_seen);
        if periodic {
            if let Some(gap) = last_periodic.filter(|&p| now > p).map(|p| now - p) {
                if carried.is_none() {
                    let candidate = decode_secs(self.candidate);
                    if interval > 0 && agree(gap, interval) {
                        self.candidate = 0;
                    } else if candidate > 0 && agree(gap, candidate) {
                        interval = (gap + candidate) / 2;
                        self.candidate = 0;
                    } else {
                        // A missed or an extra inform, or a new cadence: remembered,
                        // and taken if the next gap agrees with it.
                        self.candidate = encode_secs(gap);
                    }
                }
            }
        }
        self.interval = encode_secs(interval) | flags;
        // The newest periodic time, re-based on the newest record.
        let newest = last_seen.max(now);
        let periodic_at = if periodic {
            Some(last_periodic.map_or(now, |p| p.max(now)))
        } else {
            last_periodic
        };
        let deadline = self.deadline(last_seen);
        self.set_last_periodic(periodic_at, newest);
        self.set_deadline(deadline, newest);
        Learned {
            was_tracked,
            tracked: self.tracked(config),
        }
    }
}

/// The network of a `remote_addr` (`"100.64.3.7"`, `"[2001:db8::1]:443"`,
/// `"203.0.113.7:51234"`), masked to the configured prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Network {
    V4(u32, u8),
    V6(u128, u8),
    Unknown,
}

impl Network {
    pub fn of(remote_addr: Option<&str>, config: &InformSilenceConfig) -> Network {
        let Some(text) = remote_addr.map(str::trim) else {
            return Network::Unknown;
        };
        let ip = text.parse::<IpAddr>().ok().or_else(|| {
            text.parse::<std::net::SocketAddr>()
                .ok()
                .map(|s| s.ip())
                .or_else(|| {
                    text.strip_prefix('[')
                        .and_then(|t| t.split_once(']'))
                        .and_then(|(ip, _)| ip.parse().ok())
                })
        });
        let v4 = |v4: std::net::Ipv4Addr| {
            let len = config.network_prefix_v4.min(32);
            let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            Network::V4(u32::from(v4) & mask, len)
        };
        match ip {
            Some(IpAddr::V4(a)) => v4(a),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(a) => v4(a),
                None => {
                    let len = config.network_prefix_v6.min(128);
                    let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                    Network::V6(u128::from(v6) & mask, len)
                }
            },
            None => Network::Unknown,
        }
    }

    /// `"100.64.3.0/24"`, `"2001:db8:1::/48"` or `"unknown"`.
    pub fn write(&self, out: &mut String) {
        out.clear();
        let _ = match self {
            Network::V4(a, len) => write!(out, "{}/{len}", std::net::Ipv4Addr::from(*a)),
            Network::V6(a, len) => write!(out, "{}/{len}", std::net::Ipv6Addr::from(*a)),
            Network::Unknown => write!(out, "unknown"),
        };
    }
}

/// Scope keys a tracked device counts under, besides `fleet`: product class, ACS,
/// software version, network (ids into [`Profiles`]' string tables).
pub(crate) type ProfileKeys = [u32; 4];

/// The silence scopes a profile names, in [`ProfileKeys`] order.
pub(crate) const PROFILE_SCOPES: [crate::Scope; 4] = [
    crate::Scope::ProductClass,
    crate::Scope::Acs,
    crate::Scope::SoftwareVersion,
    crate::Scope::Network,
];

#[derive(Debug, Default, Serialize, Deserialize)]
struct Strings {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Profile {
    keys: ProfileKeys,
    /// Of the record fields that made it: a record with the same hash has the same keys.
    hash: u64,
    refs: u32,
}

/// The distinct scope-key combinations of tracked devices, shared and counted.
/// (Key strings are kept once each; combinations are freed when no device has them.)
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Profiles {
    strings: [Strings; 4],
    /// Index 0 is "none".
    table: Vec<Profile>,
    index: FxHashMap<ProfileKeys, u32>,
    free: Vec<u32>,
}

/// The record fields a profile is made of.
pub(crate) struct ProfileFields<'a> {
    pub product_class: &'a str,
    pub acs: &'a str,
    pub software_version: &'a str,
    pub network: Network,
}

impl ProfileFields<'_> {
    pub fn hash(&self) -> u64 {
        let mut h = FxHasher::default();
        self.product_class.hash(&mut h);
        self.acs.hash(&mut h);
        self.software_version.hash(&mut h);
        self.network.hash(&mut h);
        h.finish()
    }
}

impl Profiles {
    /// Whether profile `id` was made from fields with this hash.
    pub fn same(&self, id: u32, hash: u64) -> bool {
        id != 0 && self.table.get(id as usize).is_some_and(|p| p.hash == hash)
    }

    /// The profile of these fields, with one more reference.
    pub fn acquire(&mut self, fields: &ProfileFields<'_>, hash: u64, scratch: &mut String) -> u32 {
        fields.network.write(scratch);
        let keys = [
            self.strings[0].id(fields.product_class),
            self.strings[1].id(fields.acs),
            self.strings[2].id(fields.software_version),
            self.strings[3].id(scratch),
        ];
        if self.table.is_empty() {
            self.table.push(Profile {
                keys: [0; 4],
                hash: 0,
                refs: 0,
            });
        }
        let id = match self.index.get(&keys) {
            Some(&id) => id,
            None => {
                let profile = Profile {
                    keys,
                    hash,
                    refs: 0,
                };
                // (A free id out of range — restored from damaged state — is dropped.)
                let id = match self.free.pop().filter(|&id| id != 0) {
                    Some(id) if (id as usize) < self.table.len() => {
                        self.table[id as usize] = profile;
                        id
                    }
                    _ => {
                        self.table.push(profile);
                        (self.table.len() - 1) as u32
                    }
                };
                self.index.insert(keys, id);
                id
            }
        };
        match self.table.get_mut(id as usize) {
            Some(p) => p.refs += 1,
            None => {
                // An index entry pointing nowhere (damaged state): make it anew.
                self.index.remove(&keys);
                return self.acquire(fields, hash, scratch);
            }
        }
        id
    }

    /// Drops one reference; the profile is freed with its last.
    pub fn release(&mut self, id: u32) {
        let Some(p) = self.table.get_mut(id as usize).filter(|_| id != 0) else {
            return;
        };
        p.refs = p.refs.saturating_sub(1);
        if p.refs == 0 {
            let keys = p.keys;
            self.index.remove(&keys);
            self.free.push(id);
        }
    }

    pub fn keys(&self, id: u32) -> Option<ProfileKeys> {
        self.table
            .get(id as usize)
            .filter(|_| id != 0)
            .map(|p| p.keys)
    }

    /// The key string of scope `i` (in [`PROFILE_SCOPES`] order).
    pub fn name(&self, i: usize, id: u32) -> &str {
        self.strings[i]
            .names
            .get(id as usize)
            .map_or("unknown", String::as_str)
    }

    pub fn state_bytes(&self) -> usize {
        let strings: usize = self
            .strings
            .iter()
            .map(|s| s.names.iter().map(|n| 2 * n.capacity() + 40).sum::<usize>())
            .sum();
        strings
            + self.table.capacity() * std::mem::size_of::<Profile>()
            + self.index.capacity() * (std::mem::size_of::<(ProfileKeys, u32)>() + 1)
    }
}

/// Deadlines of tracked devices, one entry each, by the slide they fall in. An entry
/// may sit earlier than its device's deadline (deadlines only move later): when its
/// bucket comes up it moves on to the deadline's bucket.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Wheel {
    buckets: BTreeMap<i64, Vec<u64>>,
    len: usize,
}

impl Wheel {
    pub fn insert(&mut self, deadline_ms: i64, slide_ms: i64, key: u64) {
        self.buckets
            .entry(floor(deadline_ms, slide_ms))
            .or_default()
            .push(key);
        self.len += 1;
    }

    /// The first bucket that ends at or before `watermark`, taken out.
    pub fn pop_due(&mut self, watermark: i64, slide_ms: i64) -> Option<(i64, Vec<u64>)> {
        let (&start, _) = self.buckets.first_key_value()?;
        if start + slide_ms > watermark {
            return None;
        }
        let (start, keys) = self.buckets.pop_first()?;
        self.len -= keys.len();
        Some((start, keys))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn state_bytes(&self) -> usize {
        self.buckets
            .values()
            .map(|v| v.capacity() * 8 + 48)
            .sum::<usize>()
    }
}

/// What the device table tells the worker about silence, with the event time each
/// belongs to. `profile` holds the scope keys (without `fleet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SilenceEvent {
    /// Tracked devices under these keys changed by `delta`.
    Tracked {
        profile: ProfileKeys,
        at_ms: i64,
        delta: i64,
    },
    /// A tracked device's deadline passed without a record.
    Overdue { profile: ProfileKeys, at_ms: i64 },
    /// An overdue device informed again; `boot` when with a `local` boot (power).
    Returned {
        profile: ProfileKeys,
        at_ms: i64,
        boot: bool,
        device_id: String,
    },
    /// A device silent for `forget_after_ms` is no longer tracked.
    Forgotten { profile: ProfileKeys, at_ms: i64 },
    /// A device went silent soon after a `firmware_upgrade` boot or a failed
    /// transfer of this campaign.
    AfterTransfer {
        at_ms: i64,
        product_class: String,
        command_key: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> InformSilenceConfig {
        InformSilenceConfig::default()
    }

    #[test]
    fn intervals_encode_exactly_to_two_hours_then_in_half_minutes() {
        for s in [1, 60, 300, 3600, 8191] {
            assert_eq!(decode_secs(encode_secs(s)), s);
        }
        for s in [8192, 86_400, 200_000] {
            let back = decode_secs(encode_secs(s));
            assert!(back <= s && s - back < COARSE_STEP, "{s} -> {back}");
        }
        assert_eq!(encode_secs(u32::MAX) & !VALUE, 0, "no flag bits");
    }

    /// Periodic informs at these times (seconds); returns the learned interval.
    fn learn(times: &[u32]) -> u32 {
        let mut c = Cadence::default();
        let mut last = 0;
        for &t in times {
            c.learn(&config(), last, t, true, None);
            last = last.max(t);
        }
        c.interval_secs()
    }

    #[test]
    fn two_agreeing_gaps_set_the_interval() {
        assert_eq!(learn(&[1000, 4600]), 0, "one gap is not enough");
        assert_eq!(learn(&[1000, 4600, 8205]), 3602);
    }

    #[test]
    fn a_missed_or_an_extra_inform_keeps_the_interval() {
        // Learned 3600, then one missed (gap 7200), then an extra at +600.
        assert_eq!(learn(&[0, 3600, 7200, 14_400, 15_000, 18_000]), 3600);
    }

    #[test]
    fn a_changed_interval_is_learned_from_two_gaps() {
        assert_eq!(learn(&[0, 3600, 7200, 8100, 9000, 9900]), 900);
        assert_eq!(learn(&[0, 900, 1800, 5400, 9000]), 3600, "even a multiple");
    }

    #[test]
    fn irregular_gaps_never_set_an_interval() {
        assert_eq!(learn(&[0, 500, 4000, 4300, 20_000, 21_000, 40_000]), 0);
    }

    #[test]
    fn a_carried_interval_is_taken_at_once_and_very_long_ones_are_not_tracked() {
        let mut c = Cadence::default();
        let l = c.learn(&config(), 0, 100, true, Some(3600));
        assert_eq!((l.was_tracked, l.tracked), (false, true));
        let l = c.learn(&config(), 100, 200, false, Some(7 * 86_400));
        assert_eq!((l.was_tracked, l.tracked), (true, false));
    }

    #[test]
    fn offsets_survive_rebasing_and_deadlines_round_up() {
        let mut c = Cadence::default();
        c.learn(&config(), 0, 1000, true, Some(3600));
        c.set_deadline(Some(1000 + 9001), 1000);
        assert_eq!(c.deadline(1000), Some(10_004));
        c.learn(&config(), 1000, 2000, false, None);
        assert_eq!(c.deadline(2000), Some(10_004));
        assert_eq!(c.last_periodic(2000), Some(1000));
    }

    #[test]
    fn networks_are_masked_and_named() {
        let cfg = config();
        let mut s = String::new();
        for (addr, name) in [
            ("100.64.3.7", "100.64.3.0/24"),
            ("203.0.113.7:51234", "203.0.113.0/24"),
            ("[2001:db8:1:2::7]:443", "2001:db8:1::/48"),
            ("::ffff:192.0.2.9", "192.0.2.0/24"),
            ("not an address", "unknown"),
        ] {
            Network::of(Some(addr), &cfg).write(&mut s);
            assert_eq!(s, name, "{addr}");
        }
        assert_eq!(Network::of(None, &cfg), Network::Unknown);
    }
}
