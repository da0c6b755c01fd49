//! Snapshots of detector state: what `cwmp-stream detect` writes to its state
//! topics so that a restarted, rebalanced or rescaled stage carries on where the
//! stage before it stopped.
//!
//! A snapshot is a header — the magic `CWST`, the format version (`u16`, little
//! endian) and the kind of state (worker or fleet stage) — followed by the state in
//! bincode (varint integers). The configuration is not part of it: a restored stage
//! runs with the configuration it was started with.
//!
//! A reader never guesses: a snapshot of another version or kind, a truncated or
//! corrupt one, is refused with a [`SnapshotError`], and the caller starts cold and
//! says so. When the state types change in a way old snapshots cannot be read as,
//! [`VERSION`] goes up (and, where it is worth it, the old version is read and
//! converted).

use std::fmt;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{DetectConfig, Fleet, Worker};

/// The state format this build writes and reads.
pub const VERSION: u16 = 2;

const MAGIC: &[u8; 4] = b"CWST";
const HEADER: usize = 7;
/// A snapshot is never written larger than this.
const MAX_BYTES: u64 = 4 << 30;

/// Which state a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Worker = 1,
    Fleet = 2,
}

impl StateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Worker => "worker",
            StateKind::Fleet => "fleet",
        }
    }
}

/// Why a snapshot was not restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot at all (too short, or another magic).
    NotASnapshot,
    /// Written by a build with another state format.
    Version { found: u16, supported: u16 },
    /// A snapshot of the other stage.
    Kind { found: u8, expected: StateKind },
    /// The header is right but the state does not decode: truncated or corrupt.
    Corrupt(String),
    /// The configuration refuses to build a stage at all.
    Config(String),
}

impl SnapshotError {
    /// The `reason` label of the cold-start counter: a bounded set.
    pub fn reason(&self) -> &'static str {
        match self {
            SnapshotError::NotASnapshot => "not_a_snapshot",
            SnapshotError::Version { .. } => "version",
            SnapshotError::Kind { .. } => "kind",
            SnapshotError::Corrupt(_) => "corrupt",
            SnapshotError::Config(_) => "config",
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::NotASnapshot => f.write_str("not a detector state snapshot"),
            SnapshotError::Version { found, supported } => write!(
                f,
                "detector state of format version {found}; this build reads version {supported}"
            ),
            SnapshotError::Kind { found, expected } => write!(
                f,
                "detector state of kind {found}, where {} state was expected",
                expected.as_str()
            ),
            SnapshotError::Corrupt(why) => write!(f, "detector state does not decode: {why}"),
            SnapshotError::Config(why) => write!(f, "configuration refused: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_BYTES)
}

fn encode<T: Serialize>(kind: StateKind, state: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind as u8);
    // Writing into a Vec fails only on a size over the limit, which the state's
    // own bounds keep far away; an empty snapshot is then refused on restore.
    if let Err(err) = options().serialize_into(&mut out, state) {
        debug_assert!(false, "encoding detector state: {err}");
        out.truncate(HEADER);
    }
    out
}

fn decode<T: DeserializeOwned>(kind: StateKind, bytes: &[u8]) -> Result<T, SnapshotError> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let found = u16::from_le_bytes([bytes[4], bytes[5]]);
    if found != VERSION {
        return Err(SnapshotError::Version {
            found,
            supported: VERSION,
        });
    }
    if bytes[6] != kind as u8 {
        return Err(SnapshotError::Kind {
            found: bytes[6],
            expected: kind,
        });
    }
    // The state cannot need more bytes than it has: a corrupt length is refused
    // before anything of that size is allocated.
    let body = &bytes[HEADER..];
    bincode::DefaultOptions::new()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| SnapshotError::Corrupt(e.to_string()))
}

impl Worker {
    /// The worker's whole state, for [`Worker::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        encode(StateKind::Worker, self)
    }

    /// A worker in the state `bytes` was taken in, running with `config`.
    pub fn restore(config: DetectConfig, bytes: &[u8]) -> Result<Worker, SnapshotError> {
        config
            .validate()
            .map_err(|e| SnapshotError::Config(e.to_string()))?;
        let mut worker: Worker = decode(StateKind::Worker, bytes)?;
        worker.set_config(config);
        Ok(worker)
    }
}

impl Fleet {
    /// The fleet stage's whole state, for [`Fleet::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        encode(StateKind::Fleet, self)
    }

    /// A fleet stage in the state `bytes` was taken in, running with `config`.
    pub fn restore(config: DetectConfig, bytes: &[u8]) -> Result<Fleet, SnapshotError> {
        config
            .validate()
            .map_err(|e| SnapshotError::Config(e.to_string()))?;
        let mut fleet: Fleet = decode(StateKind::Fleet, bytes)?;
        fleet.set_config(config);
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_worker_and_fleet_round_trip() {
        let config = DetectConfig::default();
        let worker = Worker::new(config.clone()).expect("worker");
        let again = Worker::restore(config.clone(), &worker.snapshot()).expect("restore");
        assert_eq!(again.snapshot(), worker.snapshot());
        let fleet = Fleet::new(config.clone()).expect("fleet");
        let again = Fleet::restore(config, &fleet.snapshot()).expect("restore");
        assert_eq!(again.snapshot(), fleet.snapshot());
    }

    #[test]
    fn foreign_bytes_are_refused_with_a_reason() {
        let config = DetectConfig::default();
        let worker = Worker::new(config.clone()).expect("worker").snapshot();
        let refuse = |bytes: &[u8]| {
            Worker::restore(config.clone(), bytes)
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(refuse(b""), SnapshotError::NotASnapshot);
        assert_eq!(refuse(b"{\"json\":1}"), SnapshotError::NotASnapshot);
        let mut old = worker.clone();
        old[4] = 0;
        assert_eq!(
            refuse(&old),
            SnapshotError::Version {
                found: 0,
                supported: VERSION
            }
        );
        let fleet = Fleet::new(config.clone()).expect("fleet").snapshot();
        assert_eq!(refuse(&fleet).reason(), "kind");
        for cut in HEADER..worker.len() {
            assert_eq!(refuse(&worker[..cut]).reason(), "corrupt", "cut at {cut}");
        }
        let mut huge = worker[..HEADER].to_vec();
        huge.extend_from_slice(&[0xff; 32]);
        assert_eq!(refuse(&huge).reason(), "corrupt");
    }

    /// A length of 2 GiB written anywhere into a small snapshot (a varint u32) is
    /// refused for what the bytes hold, without allocating it.
    #[test]
    fn a_corrupt_length_allocates_nothing_of_its_size() {
        let config = DetectConfig::default();
        let mut worker = Worker::new(config.clone()).expect("worker");
        worker.set_partitions(vec![3], 8);
        let snapshot = worker.snapshot();
        for at in HEADER..snapshot.len() {
            let mut bad = snapshot[..at].to_vec();
            bad.extend_from_slice(&[252, 0, 0, 0, 0x80]);
            bad.extend_from_slice(&snapshot[at..]);
            let started = std::time::Instant::now();
            let _ = Worker::restore(config.clone(), &bad);
            assert!(
                started.elapsed() < std::time::Duration::from_millis(200),
                "at {at}: {:?}",
                started.elapsed()
            );
        }
    }
}
