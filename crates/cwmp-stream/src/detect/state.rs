//! Durable detector state: per-partition checkpoints in compacted Kafka topics.
//!
//! Each stage keeps one detector state per partition it consumes (a `Worker` per
//! input partition, a `Fleet` per aggregates partition). Every
//! `detect.checkpoint_interval_ms`, at a revoke and at shutdown, the state of each
//! partition that consumed something since its last checkpoint is written to the
//! same partition of the stage's state topic, and only then, once the broker has
//! acknowledged it, the input offset it corresponds to is committed. When a
//! partition is assigned, its state is read back before any of its records is
//! processed, and consuming resumes at the committed offset: restore + replay from
//! that offset is what an uninterrupted run computes (the outputs sent again are
//! duplicates with the same ids, which readers and the fleet stage drop).
//!
//! A checkpoint is written into one of two slots (`gen % 2`): chunks `"{slot}/{i}"`
//! of at most [`CHUNK_BYTES`], each carrying its generation, then the manifest
//! `"{slot}/m"` naming the generation, the offset and the chunk count. The topic is
//! compacted, so each key keeps its last value. A checkpoint cut short by a kill
//! leaves the other slot whole; the slot restored is the one whose manifest names
//! the committed offset and whose chunks all carry its generation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use cwmp_detect::SnapshotError;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::metrics::{DetectStage, StateMetrics};
use crate::config::{KafkaConfig, StateBackend};
use crate::kafka::context::ReaderContext;
use crate::kafka::StatsProducer;

/// The largest chunk of a checkpoint (under the 1 MB default message limits).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The manifest's own format version (the state inside has its own, see
/// [`cwmp_detect::snapshot`]).
const MANIFEST_VERSION: u32 = 1;

/// How long reading the state of newly assigned partitions may take before the
/// stage gives up.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a slot's manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    gen: u64,
    /// The input offset the state corresponds to (the next one to consume).
    offset: i64,
    chunks: u32,
    bytes: u64,
}

/// The records of one checkpoint, in the order they must be written (chunks, then
/// the manifest).
pub fn checkpoint_records(gen: u64, offset: i64, state: &[u8]) -> Vec<(String, Vec<u8>)> {
    let slot = gen % 2;
    let mut records: Vec<(String, Vec<u8>)> = state
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, chunk)| {
            let mut value = Vec::with_capacity(8 + chunk.len());
            value.extend_from_slice(&gen.to_le_bytes());
            value.extend_from_slice(chunk);
            (format!("{slot}/{i}"), value)
        })
        .collect();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        gen,
        offset,
        chunks: records.len() as u32,
        bytes: state.len() as u64,
    };
    let json = serde_json::to_vec(&manifest).unwrap_or_default();
    records.push((format!("{slot}/m"), json));
    records
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
    /// The checkpoint's state could not be decoded (see [`SnapshotError::reason`]).
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

/// Picks the whole checkpoint that corresponds to `committed` from the last value
/// of each key of a state partition.
pub fn choose(latest: &BTreeMap<Vec<u8>, Vec<u8>>, committed: Option<i64>) -> Choice {
    let mut whole = Vec::new();
    let mut unreadable = false;
    let mut newest_gen: Option<u64> = None;
    for slot in 0..2u64 {
        let Some(raw) = latest.get(format!("{slot}/m").as_bytes()) else {
            continue;
        };
        let manifest = match serde_json::from_slice::<Manifest>(raw) {
            Ok(m) if m.version == MANIFEST_VERSION && m.gen % 2 == slot => m,
            _ => {
                unreadable = true;
                continue;
            }
        };
        newest_gen = newest_gen.max(Some(manifest.gen));
        let mut state = Vec::with_capacity(manifest.bytes as usize);
        let mut complete = true;
        for i in 0..manifest.chunks {
            match latest.get(format!("{slot}/{i}").as_bytes()) {
                Some(v) if v.len() >= 8 && v[..8] == manifest.gen.to_le_bytes() => {
                    state.extend_from_slice(&v[8..])
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if complete && state.len() as u64 == manifest.bytes {
            whole.push((manifest, state));
        }
    }
    let next_gen = newest_gen.map_or(0, |g| g + 1);
    let Some(committed) = committed else {
        let reason = if latest.is_empty() {
            ColdStart::Empty
        } else {
            ColdStart::NoCommit
        };
        return Choice::Cold { reason, next_gen };
    };
    match whole
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
    }
}

/// One partition's detector state and where its input stands.
#[derive(Debug)]
pub struct Task<S> {
    pub state: S,
    /// The next input offset to process (`None` until the first record of a cold
    /// start without a committed offset).
    pub next_offset: Option<i64>,
    /// Inputs processed since the last checkpoint.
    pub since_checkpoint: u64,
    /// Generation of the next checkpoint (its slot is `next_gen % 2`; it advances
    /// only once a checkpoint's offset is committed).
    next_gen: u64,
}

impl<S> Task<S> {
    /// Whether a record at `offset` is new to this state (not one it already holds,
    /// fetched before a revoke and a reassignment).
    pub fn takes(&self, offset: i64) -> bool {
        self.next_offset.is_none_or(|n| offset >= n)
    }

    /// Counts a processed record.
    pub fn processed(&mut self, offset: i64) {
        self.next_offset = Some(offset + 1);
        self.since_checkpoint += 1;
    }
}

/// The partitions' tasks of one stage.
pub type Tasks<S> = BTreeMap<i32, Task<S>>;

/// A state that can be checkpointed.
pub trait Checkpointed: Sized {
    fn snapshot(&self) -> Vec<u8>;
}

impl Checkpointed for cwmp_detect::Worker {
    fn snapshot(&self) -> Vec<u8> {
        cwmp_detect::Worker::snapshot(self)
    }
}

impl Checkpointed for cwmp_detect::Fleet {
    fn snapshot(&self) -> Vec<u8> {
        cwmp_detect::Fleet::snapshot(self)
    }
}

/// Where a stage's checkpoints go and its offsets are committed: shared by the
/// consuming loop and the revoke callback.
#[derive(Clone)]
pub struct Checkpointer {
    pub backend: StateBackend,
    pub stage: DetectStage,
    /// The topic whose offsets are committed (the stage's input).
    pub input_topic: String,
    pub state_topic: String,
    pub producer: StatsProducer,
    pub metrics: StateMetrics,
    /// The state topic's cleanup-policy check, taken before the first checkpoint.
    pub policy: std::sync::Arc<tokio::sync::Mutex<PolicyCheck>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("backend", &self.backend)
            .field("stage", &self.stage)
            .field("input_topic", &self.input_topic)
            .field("state_topic", &self.state_topic)
            .finish_non_exhaustive()
    }
}

/// One partition's checkpoint, taken from its task.
struct Pending {
    partition: i32,
    gen: u64,
    offset: i64,
    records: Vec<(String, Vec<u8>)>,
    bytes: usize,
    inputs: u64,
}

impl Checkpointer {
    /// Takes the checkpoints of the partitions (of `partitions`, or all) that
    /// processed something since their last one.
    fn take<S: Checkpointed>(&self, tasks: &Tasks<S>, partitions: Option<&[i32]>) -> Vec<Pending> {
        tasks
            .iter()
            .filter(|(p, t)| {
                t.since_checkpoint > 0 && partitions.is_none_or(|only| only.contains(p))
            })
            .filter_map(|(&partition, task)| {
                let offset = task.next_offset?;
                let (records, bytes) = match self.backend {
                    StateBackend::Kafka => {
                        let state = task.state.snapshot();
                        (
                            checkpoint_records(task.next_gen, offset, &state),
                            state.len(),
                        )
                    }
                    StateBackend::Memory => (Vec::new(), 0),
                };
                Some(Pending {
                    partition,
                    gen: task.next_gen,
                    offset,
                    records,
                    bytes,
                    inputs: task.since_checkpoint,
                })
            })
            .collect()
    }

    fn record<'a>(
        &'a self,
        p: &'a Pending,
        key: &'a str,
        value: &'a [u8],
    ) -> FutureRecord<'a, [u8], [u8]> {
        FutureRecord::to(&self.state_topic)
            .partition(p.partition)
            .key(key.as_bytes())
            .payload(value)
    }

    /// Commits the input offsets of the checkpoints written.
    fn commit<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        pending: &[Pending],
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for p in pending {
            tpl.add_partition_offset(&self.input_topic, p.partition, Offset::Offset(p.offset))?;
        }
        consumer.commit(&tpl, CommitMode::Sync)
    }

    /// After the commit: the tasks count from their new checkpoint.
    fn committed<S>(&self, tasks: &mut Tasks<S>, pending: &[Pending]) {
        for p in pending {
            self.metrics
                .written(self.stage, p.bytes, !p.records.is_empty());
            if let Some(task) = tasks.get_mut(&p.partition) {
                task.next_gen = p.gen + 1;
                task.since_checkpoint = task.since_checkpoint.saturating_sub(p.inputs);
            }
        }
        self.metrics
            .set_since_checkpoint(self.stage, tasks.values().map(|t| t.since_checkpoint).sum());
    }

    /// Checkpoints every partition that changed, then commits their offsets (the
    /// consuming loop, between batches). A checkpoint that is not delivered is
    /// fatal: committing past it would lose state.
    pub async fn checkpoint<S: Checkpointed, C: ConsumerContext + 'static>(
        &self,
        tasks: &std::sync::Mutex<Tasks<S>>,
        consumer: &rdkafka::consumer::StreamConsumer<C>,
    ) -> anyhow::Result<()> {
        self.policy.lock().await.outcome().await?;
        let pending = self.take(&lock(tasks), None);
        if pending.is_empty() {
            return Ok(());
        }
        let mut deliveries = Vec::new();
        for p in &pending {
            for (key, value) in &p.records {
                deliveries.push(
                    crate::kafka::enqueue(&self.producer, self.record(p, key, value))
                        .await
                        .with_context(|| format!("writing a checkpoint to {}", self.state_topic))?,
                );
            }
        }
        for d in deliveries {
            crate::kafka::delivered(d)
                .await
                .with_context(|| format!("writing a checkpoint to {}", self.state_topic))?;
        }
        match self.commit(consumer, &pending) {
            Ok(()) => self.committed(&mut lock(tasks), &pending),
            // The checkpoint stays written; the next one takes the same slot again.
            Err(err) => {
                tracing::warn!(%err, stage = self.stage.as_str(), "committing after a checkpoint failed; retried at the next one")
            }
        }
        Ok(())
    }

    /// At a revoke (in librdkafka's rebalance callback): checkpoints the revoked
    /// partitions that changed, commits their offsets and drops their state. Best
    /// effort within `drain`: what is not written here, the next owner replays from
    /// the previous checkpoint.
    pub fn flush_revoked<S: Checkpointed, C: ConsumerContext>(
        &self,
        tasks: &std::sync::Mutex<Tasks<S>>,
        consumer: &BaseConsumer<C>,
        revoked: &[i32],
        drain: Duration,
    ) {
        let mut tasks = lock(tasks);
        let pending = self.take(&tasks, Some(revoked));
        let started = Instant::now();
        let mut deliveries: Vec<DeliveryFuture> = Vec::new();
        let mut failed = false;
        'send: for p in &pending {
            for (key, value) in &p.records {
                let mut record = self.record(p, key, value);
                loop {
                    match self.producer.send_result(record) {
                        Ok(d) => {
                            deliveries.push(d);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                            if started.elapsed() < drain =>
                        {
                            record = back;
                            self.producer.poll(Duration::from_millis(10));
                        }
                        Err((err, _)) => {
                            tracing::warn!(%err, "checkpoint at revoke not written");
                            failed = true;
                            break 'send;
                        }
                    }
                }
            }
        }
        if !failed && !deliveries.is_empty() {
            let _ = self.producer.flush(drain.saturating_sub(started.elapsed()));
            failed = !deliveries
                .into_iter()
                .all(|d| matches!(d.now_or_never(), Some(Ok(Ok(_)))));
        }
        if failed {
            tracing::warn!(
                stage = self.stage.as_str(),
                "checkpoint at revoke not delivered: the next owner replays from the previous checkpoint"
            );
        } else if !pending.is_empty() {
            match self.commit(consumer, &pending) {
                Ok(()) => self.committed(&mut tasks, &pending),
                Err(err) => tracing::warn!(%err, "commit at revoke failed"),
            }
        }
        for p in revoked {
            tasks.remove(p);
        }
        tracing::info!(
            stage = self.stage.as_str(),
            partitions = ?revoked,
            checkpoints = pending.len(),
            "revoked: state checkpointed and dropped"
        );
    }
}

/// Locks a stage's tasks; a panic elsewhere while holding them leaves them usable
/// (each task is whole between records).
pub fn lock<S>(tasks: &std::sync::Mutex<Tasks<S>>) -> std::sync::MutexGuard<'_, Tasks<S>> {
    tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads state partitions back (a consumer outside any group, assigned one
/// partition at a time from its beginning to its end).
pub struct StateReader {
    consumer: BaseConsumer<ReaderContext>,
    topic: String,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl StateReader {
    pub fn new(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Self> {
        let consumer = crate::kafka::consumer_config(
            kafka,
            "cwmp-detect-state-reader",
            &[
                // Never joins the group nor commits: it only reads.
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                ("auto.offset.reset", "earliest"),
                // The end of an empty partition is seen at the first empty fetch.
                ("fetch.wait.max.ms", "10"),
            ],
        )
        .create_with_context(ReaderContext)
        .context("creating the state reader")?;
        Ok(StateReader {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// The last value of every key of each of `partitions` of the state topic, and
    /// the bytes read for each (blocking; all partitions are read together).
    pub fn read(&self, partitions: &[i32]) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)?;
        }
        self.consumer
            .assign(&tpl)
            .with_context(|| format!("reading state partitions {}/{partitions:?}", self.topic))?;
        let started = Instant::now();
        let mut read: BTreeMap<i32, PartitionState> = partitions
            .iter()
            .map(|&p| (p, PartitionState::default()))
            .collect();
        let mut pending: Vec<i32> = partitions.to_vec();
        while !pending.is_empty() {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if let Some(state) = read.get_mut(&m.partition()) {
                        let key = m.key().unwrap_or_default().to_vec();
                        match m.payload() {
                            Some(value) => {
                                state.bytes += value.len() as u64;
                                state.latest.insert(key, value.to_vec());
                            }
                            None => {
                                state.latest.remove(&key);
                            }
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => pending.retain(|&q| q != p),
                Some(Err(err)) => crate::kafka::consumer_error(&err),
                None => {}
            }
            if started.elapsed() > RESTORE_TIMEOUT {
                self.consumer.unassign().ok();
                anyhow::bail!(
                    "reading state partitions {}/{pending:?}: their end was not reached within {}s",
                    self.topic,
                    RESTORE_TIMEOUT.as_secs()
                );
            }
        }
        self.consumer.unassign().ok();
        Ok(read)
    }
}

/// What one state partition holds: each key's last value.
#[derive(Debug, Default)]
pub struct PartitionState {
    pub latest: BTreeMap<Vec<u8>, Vec<u8>>,
    pub bytes: u64,
}

/// The committed input offsets of `partitions` (absent: nothing committed).
pub fn committed<C: ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .with_context(|| format!("reading the committed offsets of {topic}/{partitions:?}"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Restores one partition's task from what its state partition holds (`None`: the
/// memory backend): the checkpoint at the committed offset, or a cold start
/// (counted and logged with its reason).
pub fn restore<S>(
    checkpointer: &Checkpointer,
    partition: i32,
    committed: Option<i64>,
    read: Option<&PartitionState>,
    decode: impl Fn(&[u8]) -> Result<S, SnapshotError>,
    fresh: impl Fn() -> anyhow::Result<S>,
) -> anyhow::Result<Task<S>> {
    let started = Instant::now();
    let stage = checkpointer.stage.as_str();
    let (choice, bytes) = match read {
        Some(read) => (choose(&read.latest, committed), read.bytes),
        None => (
            Choice::Cold {
                reason: ColdStart::Memory,
                next_gen: 0,
            },
            0,
        ),
    };
    let cold = |reason: ColdStart, gen: u64| -> anyhow::Result<Task<S>> {
        checkpointer.metrics.cold_start(checkpointer.stage, reason);
        match reason {
            ColdStart::Empty | ColdStart::Memory => tracing::info!(stage, partition, ?committed, reason = reason.as_str(), "no detector state to restore: starting this partition cold"),
            _ => tracing::warn!(stage, partition, ?committed, reason = reason.as_str(), "detector state not restored: starting this partition cold (alerts of what came before are not known)"),
        }
        Ok(Task {
            state: fresh()?,
            next_offset: committed,
            since_checkpoint: 0,
            next_gen: gen,
        })
    };
    let task = match choice {
        Choice::Restore { gen, offset, state } => match decode(&state) {
            Ok(s) => {
                tracing::info!(
                    stage,
                    partition,
                    offset,
                    bytes = state.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "detector state restored"
                );
                Task {
                    state: s,
                    next_offset: Some(offset),
                    since_checkpoint: 0,
                    next_gen: gen + 1,
                }
            }
            Err(err) => {
                tracing::warn!(stage, partition, %err, "the checkpoint cannot be used");
                cold(ColdStart::Snapshot(err.reason()), gen + 1)?
            }
        },
        Choice::Cold { reason, next_gen } => cold(reason, next_gen)?,
    };
    checkpointer
        .metrics
        .restored(checkpointer.stage, bytes, started.elapsed());
    Ok(task)
}

/// Creates a state topic (compacted, `partitions` partitions) or checks an existing
/// one: refuses one with another partition count at once, and returns the check of
/// its cleanup policy (compaction required), which runs meanwhile. A broker that
/// cannot describe topic configurations is warned about.
pub async fn ensure_topic(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    input: &str,
    metadata: impl Fn() -> Option<i32>,
) -> anyhow::Result<PolicyCheck> {
    let admin: AdminClient<DefaultClientContext> = crate::kafka::producer_config(kafka, &[])
        .create()
        .context("creating the Kafka admin client")?;
    // Bounded: a broker that does not answer an admin request must not hold the
    // stage's start for the client's whole socket timeout.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(5)));
    // An existing topic (every start but the first) is only checked.
    let existing = match metadata() {
        Some(n) => Some(n),
        None => {
            let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
                .set("cleanup.policy", "compact");
            let outcome = match admin.create_topics([&new], &options).await {
                Ok(results) => match results.into_iter().next() {
                    Some(Ok(_)) => Ok(true),
                    Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
                    Some(Err((_, code))) => Err(code.to_string()),
                    None => Ok(false),
                },
                Err(err) => Err(err.to_string()),
            };
            match outcome {
                Ok(true) => {
                    tracing::info!(
                        topic,
                        partitions,
                        "state topic created (cleanup.policy=compact)"
                    );
                    return Ok(PolicyCheck::default());
                }
                Ok(false) => metadata(),
                Err(err) => {
                    tracing::warn!(topic, %err, "could not create the state topic; checking whether it exists");
                    metadata()
                }
            }
        }
    };
    match existing {
        None => anyhow::bail!(
            "state topic {topic} does not exist and could not be created: create it with cleanup.policy=compact and {partitions} partitions (as many as {input}), or set detect.state = \"memory\""
        ),
        Some(n) if n != partitions => anyhow::bail!(
            "state topic {topic} has {n} partitions; it needs as many as {input} ({partitions}): each partition's state lives in the partition of the same number"
        ),
        Some(_) => {}
    }
    Ok(PolicyCheck(Some(tokio::spawn(check_policy(
        admin,
        options,
        topic.to_owned(),
    )))))
}

/// The cleanup policy of an existing state topic, checked while the stage starts
/// (a broker that does not describe configurations must not hold the start for the
/// request's timeout); its outcome is taken before the first checkpoint is written.
#[derive(Debug, Default)]
pub struct PolicyCheck(Option<tokio::task::JoinHandle<anyhow::Result<()>>>);

impl PolicyCheck {
    /// Awaits the check once; a refusal is the stage's error.
    pub async fn outcome(&mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some(handle) => handle.await.context("checking the state topic")?,
            None => Ok(()),
        }
    }
}

async fn check_policy(
    admin: AdminClient<DefaultClientContext>,
    options: AdminOptions,
    topic: String,
) -> anyhow::Result<()> {
    let topic = topic.as_str();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await;
    let policy = match described {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(resource)) => resource.get("cleanup.policy").and_then(|e| e.value.clone()),
            _ => None,
        },
        Err(_) => None,
    };
    match policy {
        Some(policy) if !policy.split(',').any(|p| p.trim() == "compact") => anyhow::bail!(
            "state topic {topic} has cleanup.policy={policy}: it must include compact, or old checkpoints are deleted by retention (kafka-configs --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact)"
        ),
        Some(_) => {}
        None => tracing::warn!(topic, "could not read the state topic's cleanup.policy (the broker does not describe topic configurations); it must be compact"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(records: &[(String, Vec<u8>)], into: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
        for (k, v) in records {
            into.insert(k.as_bytes().to_vec(), v.clone());
        }
    }

    #[test]
    fn the_checkpoint_at_the_committed_offset_is_restored() {
        let state: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10)).map(|i| i as u8).collect();
        let mut latest = BTreeMap::new();
        written(&checkpoint_records(0, 100, b"first"), &mut latest);
        written(&checkpoint_records(1, 200, &state), &mut latest);
        assert_eq!(
            choose(&latest, Some(200)),
            Choice::Restore {
                gen: 1,
                offset: 200,
                state: state.clone()
            }
        );
        assert_eq!(
            choose(&latest, Some(100)),
            Choice::Restore {
                gen: 0,
                offset: 100,
                state: b"first".to_vec()
            },
            "written but not committed: the other slot"
        );
        assert_eq!(
            choose(&latest, Some(150)),
            Choice::Cold {
                reason: ColdStart::OffsetMismatch,
                next_gen: 2
            }
        );
        assert_eq!(
            choose(&latest, None),
            Choice::Cold {
                reason: ColdStart::NoCommit,
                next_gen: 2
            }
        );
        assert_eq!(
            choose(&BTreeMap::new(), Some(5)),
            Choice::Cold {
                reason: ColdStart::Empty,
                next_gen: 0
            }
        );
    }

    #[test]
    fn a_checkpoint_cut_short_leaves_the_other_slot_whole() {
        let big: Vec<u8> = vec![7; CHUNK_BYTES * 3];
        let mut latest = BTreeMap::new();
        written(&checkpoint_records(4, 400, &big), &mut latest);
        written(&checkpoint_records(5, 500, b"five"), &mut latest);
        // Generation 6 (slot 0 again) killed after its first chunk.
        let six = checkpoint_records(6, 600, &vec![9; CHUNK_BYTES * 2]);
        written(&six[..1], &mut latest);
        assert!(matches!(
            choose(&latest, Some(400)),
            Choice::Cold {
                reason: ColdStart::OffsetMismatch,
                ..
            }
        ));
        assert_eq!(
            choose(&latest, Some(500)),
            Choice::Restore {
                gen: 5,
                offset: 500,
                state: b"five".to_vec()
            }
        );
        // Killed after every chunk but before the manifest: the old manifest names
        // generation 4 while its chunks now carry 6.
        written(&six[..2], &mut latest);
        assert!(matches!(choose(&latest, Some(400)), Choice::Cold { .. }));
    }

    #[test]
    fn a_manifest_that_cannot_be_read_is_a_cold_start_with_its_reason() {
        let mut latest = BTreeMap::new();
        latest.insert(b"0/m".to_vec(), b"{not json".to_vec());
        assert!(matches!(
            choose(&latest, Some(1)),
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
