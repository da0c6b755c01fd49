//! How one partition's checkpoints are laid out in its state partition, so that a
//! checkpoint writes only the state that changed since the last one.
//!
//! The encoded state (a [`cwmp_detect::snapshot`]) is cut into content-defined
//! chunks (FastCDC, 8 KiB on average): where the bytes did not change, the cuts fall
//! at the same places, so a device table in which a few thousand devices informed
//! since the last checkpoint gives mostly the same chunks as before. Each chunk is
//! stored under its content hash (`c/{xxh3-128}`), and only chunks the partition does
//! not hold yet are written. The list of a checkpoint's chunk ids is stored the same
//! way (index chunks), and a small manifest names the
//! index, the input offset the state corresponds to and its generation.
//!
//! Manifests alternate between two slots (`"{gen % 2}/m"`): a checkpoint cut short by
//! a kill leaves the other slot whole, and chunks are never overwritten (a hash names
//! one content), so the slot restored is always readable. Chunks referred to by
//! neither slot's manifest nor the one being written are deleted (tombstones), so
//! compaction frees them; between two checkpoints the partition holds at most the
//! chunks of three.
//!
//! Checkpoints of manifest version 1 (the whole state in chunks `"{slot}/{i}"`) are
//! still read, and their records deleted once their slot is written again.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// Content-defined chunk sizes: small enough that a change rewrites little, large
/// enough that a million devices' state is a few thousand records (and far under
/// the 1 MB default message limits).
const MIN_CHUNK: u32 = 2 * 1024;
const AVG_CHUNK: u32 = 8 * 1024;
const MAX_CHUNK: u32 = 64 * 1024;

/// The manifest format this build writes.
const MANIFEST_VERSION: u32 = 2;
/// The whole-state format of earlier builds, still read.
const LEGACY_VERSION: u32 = 1;

/// A chunk's name: the 128-bit xxh3 of its content.
pub type ChunkId = u128;

fn chunk_key(id: ChunkId) -> String {
    format!("c/{id:032x}")
}

fn chunk_id(key: &[u8]) -> Option<ChunkId> {
    let hex = std::str::from_utf8(key.strip_prefix(b"c/")?).ok()?;
    (hex.len() == 32)
        .then(|| ChunkId::from_str_radix(hex, 16).ok())
        .flatten()
}

fn manifest_key(slot: usize) -> String {
    format!("{slot}/m")
}

/// What a slot's manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    gen: u64,
    /// The input offset the state corresponds to (the next one to consume).
    offset: i64,
    /// Length of the state.
    bytes: u64,
    /// Version 1: the number of `"{slot}/{i}"` chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<u32>,
    /// Version 2: the index chunks' ids, in hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    index: Vec<String>,
}

/// What a state partition holds of one partition's checkpoints, as far as the task
/// that writes them knows: every chunk stored, the chunks each slot's manifest
/// refers to, and the version-1 records of each slot still to delete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkBook {
    stored: FxHashSet<ChunkId>,
    /// Sorted.
    slots: [Vec<ChunkId>; 2],
    legacy: [Vec<String>; 2],
}

impl ChunkBook {
    /// Chunks stored.
    pub fn stored(&self) -> usize {
        self.stored.len()
    }
}

/// One checkpoint to write: its records in order (new chunks, deletions, then the
/// manifest), and what the book becomes once they are delivered.
#[derive(Debug)]
pub struct Planned {
    pub records: Vec<(String, Option<Vec<u8>>)>,
    /// Bytes of the records (keys and values): what this checkpoint costs the topic.
    pub written_bytes: usize,
    /// Length of the whole state.
    pub state_bytes: usize,
    /// Chunks of the state, and how many of them were written.
    pub chunks: usize,
    pub chunks_written: usize,
    slot: usize,
    refs: Vec<ChunkId>,
    added: Vec<ChunkId>,
    removed: Vec<ChunkId>,
}

impl Planned {
    /// The records were delivered: the partition holds what they wrote.
    pub fn delivered(self, book: &mut ChunkBook) {
        book.stored.extend(self.added);
        for id in &self.removed {
            book.stored.remove(id);
        }
        book.slots[self.slot] = self.refs;
        book.legacy[self.slot].clear();
    }
}

/// Cuts `bytes` into content-defined chunks, hands each to `put` with its id and
/// returns the ids in order.
fn store(bytes: &[u8], mut put: impl FnMut(ChunkId, &[u8])) -> Vec<ChunkId> {
    if bytes.is_empty() {
        return Vec::new();
    }
    fastcdc::v2020::FastCDC::new(bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| {
            let chunk = &bytes[c.offset..c.offset + c.length];
            let id = xxh3_128(chunk);
            put(id, chunk);
            id
        })
        .collect()
}

/// The records of the checkpoint of generation `gen` of `state`, at input `offset`,
/// given what the partition holds already.
pub fn plan(book: &ChunkBook, gen: u64, offset: i64, state: &[u8]) -> Planned {
    let slot = (gen % 2) as usize;
    let mut records: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut added: Vec<ChunkId> = Vec::new();
    let mut fresh = FxHashSet::default();
    let mut put = |records: &mut Vec<_>, id: ChunkId, bytes: &[u8]| {
        if !book.stored.contains(&id) && fresh.insert(id) {
            added.push(id);
            records.push((chunk_key(id), Some(bytes.to_vec())));
        }
    };
    let ids = store(state, |id, bytes| put(&mut records, id, bytes));
    let chunks_written = records.len();
    // The list of chunk ids is stored the same way: where the state changed at
    // its two ends, so does the list.
    let list: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let index = store(&list, |id, bytes| put(&mut records, id, bytes));
    let mut refs: Vec<ChunkId> = ids.iter().chain(&index).copied().collect();
    refs.sort_unstable();
    refs.dedup();
    let live = |id: &ChunkId| {
        refs.binary_search(id).is_ok() || book.slots.iter().any(|s| s.binary_search(id).is_ok())
    };
    let mut removed: Vec<ChunkId> = book.stored.iter().copied().filter(|id| !live(id)).collect();
    removed.sort_unstable();
    for &id in &removed {
        records.push((chunk_key(id), None));
    }
    for key in &book.legacy[slot] {
        records.push((key.clone(), None));
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        gen,
        offset,
        bytes: state.len() as u64,
        chunks: None,
        index: index.iter().map(|id| format!("{id:032x}")).collect(),
    };
    let json = serde_json::to_vec(&manifest).unwrap_or_default();
    records.push((manifest_key(slot), Some(json)));
    let written_bytes = records
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    Planned {
        records,
        written_bytes,
        state_bytes: state.len(),
        chunks: ids.len(),
        chunks_written,
        slot,
        refs,
        added,
        removed,
    }
}

/// Why a partition starts without restored state: the `reason` label of
/// `cwmp_detect_state_cold_starts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdStart {
    /// The state partition holds nothing (a new deployment).
    Empty,
    /// State exists but the group has no committed offset for the input partition.
    NoCommit,
    /// No whole checkpoint corresponds to the committed offset.
    OffsetMismatch,
    /// A manifest that cannot be read.
    Manifest,
    /// The checkpoint's state could not be decoded (see
    /// [`cwmp_detect::SnapshotError::reason`]).
    Snapshot(&'static str),
    /// `detect.state = "memory"`.
    Memory,
}

impl ColdStart {
    pub const ALL: [ColdStart; 10] = [
        ColdStart::Empty,
        ColdStart::NoCommit,
        ColdStart::OffsetMismatch,
        ColdStart::Manifest,
        ColdStart::Snapshot("not_a_snapshot"),
        ColdStart::Snapshot("version"),
        ColdStart::Snapshot("kind"),
        ColdStart::Snapshot("corrupt"),
        ColdStart::Snapshot("config"),
        ColdStart::Memory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ColdStart::Empty => "empty",
            ColdStart::NoCommit => "no_commit",
            ColdStart::OffsetMismatch => "offset_mismatch",
            ColdStart::Manifest => "manifest",
            ColdStart::Snapshot(reason) => reason,
            ColdStart::Memory => "memory",
        }
    }
}

/// What a state partition's records give for a committed offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// The checkpoint to restore.
    Restore {
        gen: u64,
        offset: i64,
        state: Vec<u8>,
    },
    /// Nothing to restore; the next checkpoint takes generation `next_gen`.
    Cold { reason: ColdStart, next_gen: u64 },
}

/// A stored chunk, checked against its name.
fn stored_chunk(latest: &BTreeMap<Vec<u8>, Vec<u8>>, id: ChunkId) -> Option<&[u8]> {
    let bytes = latest.get(chunk_key(id).as_bytes())?;
    (xxh3_128(bytes) == id).then_some(bytes.as_slice())
}

/// One slot's checkpoint: its state when every chunk is there and whole, and the
/// chunks its manifest refers to (as far as they can be read).
fn read_slot(
    latest: &BTreeMap<Vec<u8>, Vec<u8>>,
    slot: usize,
    m: &Manifest,
    refs: &mut Vec<ChunkId>,
) -> Option<Vec<u8>> {
    let mut state = Vec::with_capacity(m.bytes.min(1 << 30) as usize);
    let mut whole = true;
    if m.version == LEGACY_VERSION {
        for i in 0..m.chunks.unwrap_or(0) {
            match latest.get(format!("{slot}/{i}").as_bytes()) {
                Some(v) if v.len() >= 8 && v[..8] == m.gen.to_le_bytes() => {
                    state.extend_from_slice(&v[8..])
                }
                _ => return None,
            }
        }
    } else {
        let mut list = Vec::new();
        for hex in &m.index {
            let Ok(index_id) = ChunkId::from_str_radix(hex, 16) else {
                return None;
            };
            refs.push(index_id);
            match stored_chunk(latest, index_id) {
                Some(bytes) => list.extend_from_slice(bytes),
                None => return None,
            }
        }
        if list.len() % 16 != 0 {
            return None;
        }
        for raw in list.chunks_exact(16) {
            let mut id = [0u8; 16];
            id.copy_from_slice(raw);
            let id = ChunkId::from_le_bytes(id);
            refs.push(id);
            match stored_chunk(latest, id) {
                Some(bytes) if whole => state.extend_from_slice(bytes),
                _ => whole = false,
            }
        }
    }
    (whole && state.len() as u64 == m.bytes).then_some(state)
}

/// The input offset of the newest whole checkpoint (by generation).
pub fn newest_offset(latest: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<i64> {
    (0..2usize)
        .filter_map(|slot| {
            let raw = latest.get(manifest_key(slot).as_bytes())?;
            let m = serde_json::from_slice::<Manifest>(raw).ok()?;
            let whole =
                m.gen % 2 == slot as u64 && read_slot(latest, slot, &m, &mut Vec::new()).is_some();
            whole.then_some((m.gen, m.offset))
        })
        .max()
        .map(|(_, offset)| offset)
}

/// Picks the whole checkpoint that corresponds to `committed` from the last value
/// of each key of a state partition, and says what the partition holds (for the
/// checkpoints that follow).
pub fn choose(latest: &BTreeMap<Vec<u8>, Vec<u8>>, committed: Option<i64>) -> (Choice, ChunkBook) {
    // A chunk whose content does not match its name is not counted as stored: a
    // checkpoint that needs that content writes it again.
    let mut book = ChunkBook {
        stored: latest
            .iter()
            .filter_map(|(k, v)| chunk_id(k).filter(|&id| xxh3_128(v) == id))
            .collect(),
        ..ChunkBook::default()
    };
    for key in latest.keys() {
        if let Some((slot, rest)) = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.split_once('/'))
        {
            if let (Ok(slot @ 0..=1), true) = (slot.parse::<usize>(), rest.parse::<u32>().is_ok()) {
                book.legacy[slot].push(format!("{slot}/{rest}"));
            }
        }
    }
    let mut whole = Vec::new();
    let mut unreadable = false;
    let mut newest_gen: Option<u64> = None;
    for slot in 0..2usize {
        let Some(raw) = latest.get(manifest_key(slot).as_bytes()) else {
            continue;
        };
        let manifest = match serde_json::from_slice::<Manifest>(raw) {
            Ok(m)
                if (m.version == MANIFEST_VERSION || m.version == LEGACY_VERSION)
                    && m.gen % 2 == slot as u64 =>
            {
                m
            }
            _ => {
                unreadable = true;
                continue;
            }
        };
        newest_gen = newest_gen.max(Some(manifest.gen));
        let mut refs = Vec::new();
        if let Some(state) = read_slot(latest, slot, &manifest, &mut refs) {
            whole.push((manifest, state));
        }
        refs.sort_unstable();
        refs.dedup();
        book.slots[slot] = refs;
    }
    let next_gen = newest_gen.map_or(0, |g| g + 1);
    let Some(committed) = committed else {
        let reason = if latest.is_empty() {
            ColdStart::Empty
        } else {
            ColdStart::NoCommit
        };
        return (Choice::Cold { reason, next_gen }, book);
    };
    let choice = match whole
        .into_iter()
        .filter(|(m, _)| m.offset == committed)
        .max_by_key(|(m, _)| m.gen)
    {
        Some((m, state)) => Choice::Restore {
            gen: m.gen,
            offset: m.offset,
            state,
        },
        None => {
            let reason = if latest.is_empty() {
                ColdStart::Empty
            } else if unreadable {
                ColdStart::Manifest
            } else {
                ColdStart::OffsetMismatch
            };
            Choice::Cold { reason, next_gen }
        }
    };
    (choice, book)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunk size of version 1.
    const CHUNK_BYTES: usize = 512 * 1024;

    /// A state partition after compaction: each key's last value.
    #[derive(Default)]
    struct Partition(BTreeMap<Vec<u8>, Vec<u8>>);

    impl Partition {
        fn write(&mut self, records: &[(String, Option<Vec<u8>>)]) {
            for (k, v) in records {
                match v {
                    Some(v) => self.0.insert(k.as_bytes().to_vec(), v.clone()),
                    None => self.0.remove(k.as_bytes()),
                };
            }
        }

        /// Writes a checkpoint whole, as the task does, and returns its cost.
        fn checkpoint(
            &mut self,
            book: &mut ChunkBook,
            gen: u64,
            offset: i64,
            state: &[u8],
        ) -> usize {
            let planned = plan(book, gen, offset, state);
            self.write(&planned.records);
            let cost = planned.written_bytes;
            planned.delivered(book);
            cost
        }

        fn restore(&self, committed: i64) -> Choice {
            choose(&self.0, Some(committed)).0
        }
    }

    /// A state that looks like a device table: varied, mostly unchanged between
    /// checkpoints.
    fn state(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn restored(gen: u64, offset: i64, state: &[u8]) -> Choice {
        Choice::Restore {
            gen,
            offset,
            state: state.to_vec(),
        }
    }

    #[test]
    fn the_checkpoint_at_the_committed_offset_is_restored() {
        let mut p = Partition::default();
        let mut book = ChunkBook::default();
        let first = b"first".to_vec();
        let second = state(CHUNK_BYTES * 2 + 10, 1);
        p.checkpoint(&mut book, 0, 100, &first);
        p.checkpoint(&mut book, 1, 200, &second);
        assert_eq!(p.restore(200), restored(1, 200, &second));
        assert_eq!(
            p.restore(100),
            restored(0, 100, &first),
            "written but not committed: the other slot"
        );
        assert_eq!(
            p.restore(150),
            Choice::Cold {
                reason: ColdStart::OffsetMismatch,
                next_gen: 2
            }
        );
        assert_eq!(
            choose(&p.0, None).0,
            Choice::Cold {
                reason: ColdStart::NoCommit,
                next_gen: 2
            }
        );
        assert_eq!(
            choose(&BTreeMap::new(), Some(5)).0,
            Choice::Cold {
                reason: ColdStart::Empty,
                next_gen: 0
            }
        );
        assert_eq!(
            choose(&p.0, Some(200)).1,
            book,
            "the book read back is the one kept"
        );
    }

    #[test]
    fn only_the_chunks_that_changed_are_written() {
        let mut p = Partition::default();
        let mut book = ChunkBook::default();
        let mut s = state(4 << 20, 7);
        let full = p.checkpoint(&mut book, 0, 1, &s);
        assert!(
            full > s.len(),
            "the first checkpoint writes everything: {full}"
        );
        // Scattered small changes (one per 100 KiB), as devices informing between
        // two checkpoints make.
        let len = s.len();
        for i in 0..40 {
            s[(i * 104_729) % len] ^= 0x5a;
        }
        let delta = p.checkpoint(&mut book, 1, 2, &s);
        assert!(delta < full / 4, "{delta} of {full}");
        assert_eq!(p.restore(2), restored(1, 2, &s));
        // Unchanged: only the manifest.
        let none = p.checkpoint(&mut book, 2, 3, &s);
        assert!(none < 1024, "{none}");
        assert_eq!(p.restore(3), restored(2, 3, &s));
        // Bytes inserted near the start shift everything after them; the cuts
        // find their places again.
        s.splice(1000..1000, [1u8, 2, 3]);
        let shifted = p.checkpoint(&mut book, 3, 4, &s);
        assert!(shifted < full / 20, "{shifted} of {full}");
        assert_eq!(p.restore(4), restored(3, 4, &s));
    }

    #[test]
    fn the_newest_whole_checkpoint_names_its_offset() {
        let mut p = Partition::default();
        let mut book = ChunkBook::default();
        assert_eq!(newest_offset(&p.0), None);
        p.checkpoint(&mut book, 0, 10, &state(100_000, 1));
        p.checkpoint(&mut book, 1, 20, &state(100_000, 2));
        assert_eq!(newest_offset(&p.0), Some(20));
        // The next one cut short: the newest whole one is still generation 1.
        let cut = plan(&book, 2, 30, &state(100_000, 3));
        p.write(&cut.records[..cut.records.len() - 1]);
        assert_eq!(newest_offset(&p.0), Some(20));
        p.write(&cut.records[cut.records.len() - 1..]);
        assert_eq!(newest_offset(&p.0), Some(30));
    }

    #[test]
    fn chunks_no_slot_needs_are_deleted() {
        let mut p = Partition::default();
        let mut book = ChunkBook::default();
        for gen in 0..12u64 {
            let s = state(1 << 20, gen + 100);
            p.checkpoint(&mut book, gen, gen as i64, &s);
            assert_eq!(p.restore(gen as i64), restored(gen, gen as i64, &s));
            if gen > 0 {
                let before = state(1 << 20, gen + 99);
                assert_eq!(
                    p.restore(gen as i64 - 1),
                    restored(gen - 1, gen as i64 - 1, &before)
                );
            }
        }
        let chunks = p.0.keys().filter(|k| k.starts_with(b"c/")).count();
        // Two whole 1 MiB states of ~8 KiB chunks, and at most one more.
        assert!(chunks < 3 * (1 << 20) / 2048, "{chunks} chunks kept");
        assert_eq!(chunks, book.stored());
    }

    #[test]
    fn a_checkpoint_cut_short_leaves_the_other_slot_whole() {
        let mut p = Partition::default();
        let mut book = ChunkBook::default();
        let four = state(CHUNK_BYTES * 3, 4);
        let five = state(CHUNK_BYTES, 5);
        p.checkpoint(&mut book, 4, 400, &four);
        p.checkpoint(&mut book, 5, 500, &five);
        // Generation 6 (slot 0 again) killed after its first records, then after
        // all but the manifest.
        let six = plan(&book, 6, 600, &state(CHUNK_BYTES * 2, 6));
        for cut in [1, six.records.len() - 1] {
            let mut q = Partition(p.0.clone());
            q.write(&six.records[..cut]);
            assert_eq!(q.restore(500), restored(5, 500, &five), "cut at {cut}");
            assert_eq!(q.restore(400), restored(4, 400, &four), "cut at {cut}");
        }
        // A chunk that lost its content is no checkpoint, and is written again by
        // the next checkpoint that needs it.
        let mut q = Partition(p.0.clone());
        let key =
            q.0.keys()
                .find(|k| k.starts_with(b"c/"))
                .cloned()
                .expect("a chunk");
        q.0.insert(key, b"other bytes".to_vec());
        assert!(
            matches!(q.restore(500), Choice::Cold { .. })
                || matches!(q.restore(400), Choice::Cold { .. })
        );
        let (_, mut damaged) = choose(&q.0, Some(500));
        q.checkpoint(&mut damaged, 6, 600, &four);
        assert_eq!(q.restore(600), restored(6, 600, &four));
    }

    #[test]
    fn a_version_1_checkpoint_is_restored_and_its_records_deleted_in_turn() {
        // As the builds before content-defined chunks wrote it.
        let mut p = Partition::default();
        let legacy = |gen: u64, offset: i64, state: &[u8]| -> Vec<(String, Option<Vec<u8>>)> {
            let slot = gen % 2;
            let mut records: Vec<(String, Option<Vec<u8>>)> = state
                .chunks(CHUNK_BYTES)
                .enumerate()
                .map(|(i, c)| {
                    let mut v = gen.to_le_bytes().to_vec();
                    v.extend_from_slice(c);
                    (format!("{slot}/{i}"), Some(v))
                })
                .collect();
            let m = serde_json::json!({"version": 1, "gen": gen, "offset": offset, "chunks": records.len(), "bytes": state.len()});
            records.push((format!("{slot}/m"), Some(m.to_string().into_bytes())));
            records
        };
        let old = state(CHUNK_BYTES * 2 + 3, 9);
        p.write(&legacy(2, 20, b"older"));
        p.write(&legacy(3, 30, &old));
        let (choice, mut book) = choose(&p.0, Some(30));
        assert_eq!(choice, restored(3, 30, &old));
        // The next checkpoint takes slot 0: the version-1 records of slot 0 go,
        // slot 1's stay until it is written again.
        let new = state(1 << 20, 10);
        p.checkpoint(&mut book, 4, 40, &new);
        assert_eq!(p.restore(40), restored(4, 40, &new));
        assert_eq!(p.restore(30), restored(3, 30, &old));
        assert!(!p.0.contains_key(b"0/0".as_slice()));
        p.checkpoint(&mut book, 5, 50, &new);
        let legacy_left =
            p.0.keys()
                .filter(|k| !k.starts_with(b"c/") && !k.ends_with(b"/m"))
                .count();
        assert_eq!(legacy_left, 0);
        assert_eq!(p.restore(50), restored(5, 50, &new));
    }

    #[test]
    fn a_manifest_that_cannot_be_read_is_a_cold_start_with_its_reason() {
        let mut latest = BTreeMap::new();
        latest.insert(b"0/m".to_vec(), b"{not json".to_vec());
        assert!(matches!(
            choose(&latest, Some(1)).0,
            Choice::Cold {
                reason: ColdStart::Manifest,
                ..
            }
        ));
        let labels: Vec<&str> = ColdStart::ALL.iter().map(|c| c.as_str()).collect();
        for reason in ["not_a_snapshot", "version", "kind", "corrupt", "config"] {
            assert!(labels.contains(&reason), "{reason}");
        }
    }
}
