//! Attribution of transfer results to devices.
//!
//! `TransferComplete` and `AutonomousTransferComplete` name no device: they belong
//! to the device of the Inform that opened their CWMP session. ACS front-ends key
//! raw messages by session, so a session's messages arrive in order on one input
//! partition; ingest keeps, per partition, session key → the device of that
//! session's Inform, and attributes each transfer to it after extraction, in input
//! order. A front-end that knows the device names it instead (header
//! `cwmp-device-id`, envelope `device_id`), which always wins.
//!
//! Only sessions whose Inform announces a transfer (`7 TRANSFER COMPLETE`, `10
//! AUTONOMOUS TRANSFER COMPLETE`, which TR-069 requires in the Inform of the session
//! that carries the result) are remembered, so the table holds transfer sessions
//! alone, not the fleet's traffic. The table is bounded in entries (the oldest go first) and in age (event time: a
//! session older than `max_age_ms` at the transfer is not trusted). A transfer
//! without a device goes to the dead-letter topic as `unattributed`: nothing is lost,
//! nothing is guessed. The table lives in memory: after a restart (or when a
//! partition moves to another instance) it starts empty, and a transfer whose Inform
//! was consumed before the committed offset is `unattributed` — rare, because a
//! session's messages are milliseconds apart, and recoverable by replaying the
//! dead letter with a `cwmp-device-id` header.

use std::borrow::Cow;
use std::collections::VecDeque;

use cwmp_record::{Attributed, Attribution, Device, EventRecord, TransferRecord};
use rdkafka::message::Message;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::metrics::IngestMetrics;
use super::process::{Outcome, Processed};
use crate::input::TransferInput;

/// Bounds of the session table (`[ingest.sessions]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Most sessions remembered, over all partitions; the oldest are evicted first.
    pub max_entries: usize,
    /// Longest time (event time) from a session's Inform to a transfer attributed
    /// to it. CWMP sessions last seconds; a download applied across a reboot reports
    /// in the *next* session, whose Inform comes first.
    pub max_age_ms: i64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_entries: 100_000,
            max_age_ms: 600_000,
        }
    }
}

/// What the table keeps of a session's Inform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDevice {
    pub device_id: String,
    pub device: Device<'static>,
    pub software_version: Option<String>,
    pub event_time_ms: Option<i64>,
}

impl SessionDevice {
    /// Whether the Inform opens a session that reports a transfer result: it carries
    /// `7 TRANSFER COMPLETE` or `10 AUTONOMOUS TRANSFER COMPLETE`. Only such sessions
    /// are remembered.
    pub fn announces_transfer(record: &EventRecord<'_>) -> bool {
        record.events.iter().any(|e| {
            matches!(
                e.kind,
                cwmp_record::EventKind::TransferComplete
                    | cwmp_record::EventKind::AutonomousTransferComplete
            )
        })
    }

    pub fn of(record: &EventRecord<'_>) -> Self {
        let own = |c: &Cow<'_, str>| Cow::Owned(c.to_string());
        SessionDevice {
            device_id: record.device_id.to_string(),
            device: Device {
                manufacturer: own(&record.device.manufacturer),
                oui: own(&record.device.oui),
                product_class: own(&record.device.product_class),
                serial_number: own(&record.device.serial_number),
            },
            software_version: record
                .params
                .iter()
                .find(|p| p.name.trim().ends_with(".DeviceInfo.SoftwareVersion"))
                .map(|p| p.value.trim().to_owned()),
            event_time_ms: record.received_at_ms,
        }
    }
}

/// How a lookup went: the label of `cwmp_ingest_session_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    /// No Inform seen for the session.
    Miss,
    /// The session's Inform is older than `max_age_ms`.
    Expired,
}

impl Lookup {
    pub const ALL: [Lookup; 3] = [Lookup::Hit, Lookup::Miss, Lookup::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Expired => "expired",
        }
    }
}

type SessionKey = (i32, Box<[u8]>);

/// Per input partition: session key → the device of the session's Inform.
#[derive(Debug, Default)]
pub struct SessionTable {
    config: SessionsConfig,
    entries: FxHashMap<SessionKey, (u64, Box<SessionDevice>)>,
    /// Insertion order, with the generation each insertion had (an entry inserted
    /// again is evicted by its newest generation only).
    order: VecDeque<(SessionKey, u64)>,
    generation: u64,
    pub evictions: u64,
}

impl SessionTable {
    pub fn new(config: SessionsConfig) -> Self {
        SessionTable {
            config,
            ..SessionTable::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers the device of a session's Inform.
    pub fn insert(&mut self, partition: i32, key: &[u8], device: Box<SessionDevice>) {
        if self.config.max_entries == 0 {
            return;
        }
        self.generation += 1;
        let key: SessionKey = (partition, key.into());
        self.entries.insert(key.clone(), (self.generation, device));
        self.order.push_back((key, self.generation));
        while self.entries.len() > self.config.max_entries
            || self.order.len() > 2 * self.config.max_entries.max(16)
        {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&old)
                .is_some_and(|(g, _)| *g == generation)
            {
                self.entries.remove(&old);
                self.evictions += 1;
            }
        }
    }

    /// The device of the session `key` on `partition`, for a transfer at `time_ms`.
    pub fn lookup(
        &self,
        partition: i32,
        key: &[u8],
        time_ms: Option<i64>,
    ) -> (Lookup, Option<&SessionDevice>) {
        let Some((_, device)) = self.entries.get(&(partition, Box::from(key))) else {
            return (Lookup::Miss, None);
        };
        let stale = match (device.event_time_ms, time_ms) {
            (Some(seen), Some(now)) => now - seen > self.config.max_age_ms,
            _ => false,
        };
        if stale {
            (Lookup::Expired, None)
        } else {
            (Lookup::Hit, Some(device))
        }
    }

    /// Registers the sessions opened in a processed batch and attributes its
    /// transfers, in input order: each becomes a TransferRecord or an `unattributed`
    /// dead letter.
    pub fn attribute(&mut self, batch: &mut [Processed], metrics: &IngestMetrics) {
        for processed in batch.iter_mut() {
            let partition = processed.message.partition();
            let key = processed.message.key();
            match &mut processed.outcome {
                Outcome::Record {
                    session: session @ Some(_),
                    ..
                } => {
                    if let (Some(key), Some(device)) = (key, session.take()) {
                        self.insert(partition, key, device);
                    }
                }
                Outcome::Transfer(_) => {
                    let Outcome::Transfer(input) =
                        std::mem::replace(&mut processed.outcome, Outcome::Skipped { rpc: "" })
                    else {
                        continue;
                    };
                    let (outcome, lookup) =
                        self.resolve(*input, partition, key.map(<[u8]>::as_ref));
                    if let Some(lookup) = lookup {
                        metrics.session_lookup(lookup);
                    }
                    processed.outcome = outcome;
                }
                _ => {}
            }
        }
        metrics.sessions(self.len(), self.evictions);
    }

    /// Attributes one transfer: the named device, else the session's.
    fn resolve(
        &self,
        input: TransferInput<'static>,
        partition: i32,
        key: Option<&[u8]>,
    ) -> (Outcome, Option<Lookup>) {
        let time_ms = input.meta.received_at_ms;
        let (lookup, session) = match key {
            Some(key) => {
                let (lookup, device) = self.lookup(partition, key, time_ms);
                (Some(lookup), device)
            }
            None => (None, None),
        };
        let attributed = match attribute(input.named.clone(), session) {
            Some(attributed) => attributed,
            None => {
                let why = match lookup {
                    None => "the message has no session key and names no device",
                    Some(Lookup::Expired) => "its session's Inform is older than ingest.sessions.max_age_ms",
                    _ => "no Inform of its session was seen on this partition (and no cwmp-device-id header)",
                };
                return (
                    Outcome::Dlq {
                        kind: "unattributed",
                        message: format!(
                            "{} not attributed to a device: {why}",
                            input.transfer.rpc()
                        ),
                    },
                    lookup,
                );
            }
        };
        // Lookups are counted where attribution depended on them.
        let counted = if attributed.how == Attribution::Session {
            lookup
        } else {
            None
        };
        (transfer_record(input, attributed), counted)
    }
}

/// The device of a transfer: the one named (header or envelope), else the one of
/// its session's Inform; `None` when there is neither. A named device takes its
/// `DeviceId` and version from the session when the session's Inform is its own.
pub fn attribute<'a>(
    named: Option<(Cow<'a, str>, Attribution)>,
    session: Option<&SessionDevice>,
) -> Option<Attributed<'a>> {
    match (named, session) {
        (Some((id, how)), session) => {
            let same = session.filter(|s| s.device_id == id.as_ref());
            Some(Attributed {
                device_id: id,
                device: same.map(|s| s.device.clone()),
                software_version: same.and_then(|s| s.software_version.clone().map(Cow::Owned)),
                how,
            })
        }
        (None, Some(s)) => Some(Attributed {
            device_id: Cow::Owned(s.device_id.clone()),
            device: Some(s.device.clone()),
            software_version: s.software_version.clone().map(Cow::Owned),
            how: Attribution::Session,
        }),
        (None, None) => None,
    }
}

/// The output of an attributed transfer.
pub fn transfer_record(input: TransferInput<'static>, device: Attributed<'static>) -> Outcome {
    let warnings = input.transfer.warnings;
    let rpc = input.transfer.rpc();
    let record = TransferRecord::from_transfer(input.transfer, device, input.meta);
    Outcome::Record {
        key: record.device_id.to_string(),
        payload: record.to_json(),
        event_time_ms: record.received_at_ms,
        kinds: Vec::new(),
        boot_cause: None,
        warnings,
        rpc,
        session: None,
        transfer: Some(record.result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, at: i64) -> Box<SessionDevice> {
        Box::new(SessionDevice {
            device_id: id.to_owned(),
            device: Device {
                manufacturer: "".into(),
                oui: "00D09E".into(),
                product_class: "IGD".into(),
                serial_number: id.to_owned().into(),
            },
            software_version: Some("1.0".into()),
            event_time_ms: Some(at),
        })
    }

    #[test]
    fn bounded_in_entries_and_age() {
        let mut t = SessionTable::new(SessionsConfig {
            max_entries: 2,
            max_age_ms: 1_000,
        });
        t.insert(0, b"s1", device("a", 0));
        t.insert(0, b"s2", device("b", 0));
        t.insert(1, b"s1", device("c", 0));
        assert_eq!(t.len(), 2);
        assert_eq!(t.evictions, 1);
        assert_eq!(t.lookup(0, b"s1", Some(10)).0, Lookup::Miss);
        assert_eq!(
            t.lookup(0, b"s2", Some(10)).1.map(|d| d.device_id.as_str()),
            Some("b")
        );
        // Same key, other partition: another session.
        assert_eq!(
            t.lookup(1, b"s1", Some(10)).1.map(|d| d.device_id.as_str()),
            Some("c")
        );
        assert_eq!(t.lookup(1, b"s1", Some(5_000)).0, Lookup::Expired);
        // A session seen again is kept by its newest insertion.
        t.insert(0, b"s2", device("b", 100));
        t.insert(2, b"s3", device("d", 100));
        assert_eq!(t.lookup(0, b"s2", Some(200)).0, Lookup::Hit);
    }
}
