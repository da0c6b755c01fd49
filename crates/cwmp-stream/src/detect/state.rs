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
//! Only what changed is written: the state is cut into content-defined chunks
//! named by their hash, and a checkpoint writes the chunks its partition does not
//! hold yet and a manifest naming them all (see [`super::checkpoint`]). The topic is
//! compacted, so each key keeps its last value; a checkpoint cut short by a kill
//! leaves the previous one whole.

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

use super::checkpoint::{Choice, Planned};
pub use super::checkpoint::{ChunkBook, ColdStart};
use super::metrics::{DetectStage, StateMetrics};
use crate::config::{KafkaConfig, StateBackend};
use crate::kafka::context::ReaderContext;
use crate::kafka::StatsProducer;

/// The segment roll of a state topic the service creates: compaction never cleans
/// the open segment, so without a roll every chunk written since the topic was
/// created would be read at each restore until the broker's default (7 days) rolls it.
const STATE_SEGMENT_MS: &str = "3600000";

/// How long reading the state of newly assigned partitions may take before the
/// stage gives up.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// What the state partition holds of this partition's checkpoints.
    book: ChunkBook,
    /// Length of the state at the last checkpoint.
    pub state_bytes: u64,
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
    /// Exactly-once: the transaction outputs, checkpoints and offsets commit in.
    pub txn: Option<std::sync::Arc<super::exactly_once::Txn>>,
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

/// One partition's checkpoint, taken from its task (`planned` is `None` with the
/// memory backend: only the offset is committed).
pub(super) struct Pending {
    partition: i32,
    gen: u64,
    offset: i64,
    planned: Option<Planned>,
    inputs: u64,
}

impl Pending {
    pub(super) fn records(&self) -> impl Iterator<Item = &(String, Option<Vec<u8>>)> {
        self.planned.iter().flat_map(|p| &p.records)
    }
}

impl Checkpointer {
    /// Takes the checkpoints of the partitions (of `partitions`, or all) that
    /// processed something since their last one.
    pub(super) fn take<S: Checkpointed>(
        &self,
        tasks: &Tasks<S>,
        partitions: Option<&[i32]>,
    ) -> Vec<Pending> {
        tasks
            .iter()
            .filter(|(p, t)| {
                t.since_checkpoint > 0 && partitions.is_none_or(|only| only.contains(p))
            })
            .filter_map(|(&partition, task)| {
                let offset = task.next_offset?;
                let planned = match self.backend {
                    StateBackend::Kafka => Some(super::checkpoint::plan(
                        &task.book,
                        task.next_gen,
                        offset,
                        &task.state.snapshot(),
                    )),
                    StateBackend::Memory => None,
                };
                Some(Pending {
                    partition,
                    gen: task.next_gen,
                    offset,
                    planned,
                    inputs: task.since_checkpoint,
                })
            })
            .collect()
    }

    /// A record of a checkpoint (`None`: a tombstone, deleting a chunk no
    /// checkpoint needs).
    pub(super) fn record<'a>(
        &'a self,
        p: &'a Pending,
        key: &'a str,
        value: Option<&'a [u8]>,
    ) -> FutureRecord<'a, [u8], [u8]> {
        let record = FutureRecord::to(&self.state_topic)
            .partition(p.partition)
            .key(key.as_bytes());
        match value {
            Some(value) => record.payload(value),
            None => record,
        }
    }

    /// The checkpoints' records were delivered: their books say what the state
    /// partitions hold now, whether or not the commit that follows succeeds.
    pub(super) fn delivered<S>(&self, tasks: &mut Tasks<S>, pending: &mut [Pending]) {
        for p in pending {
            if let (Some(task), Some(planned)) = (tasks.get_mut(&p.partition), p.planned.take()) {
                task.state_bytes = planned.state_bytes as u64;
                self.metrics
                    .written(self.stage, planned.written_bytes, planned.chunks_written);
                planned.delivered(&mut task.book);
            }
        }
        self.metrics
            .set_state_bytes(self.stage, tasks.values().map(|t| t.state_bytes).sum());
    }

    /// The input offsets the checkpoints correspond to.
    pub(super) fn offsets(&self, pending: &[Pending]) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for p in pending {
            tpl.add_partition_offset(&self.input_topic, p.partition, Offset::Offset(p.offset))?;
        }
        Ok(tpl)
    }

    /// Commits the input offsets of the checkpoints written.
    fn commit<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        pending: &[Pending],
    ) -> Result<(), KafkaError> {
        consumer.commit(&self.offsets(pending)?, CommitMode::Sync)
    }

    /// Sends the checkpoints' records from a callback (no runtime): waits for room
    /// in the producer queue within `drain`. `Err` when a record cannot be sent.
    pub(super) fn send_now(
        &self,
        pending: &[Pending],
        started: Instant,
        drain: Duration,
    ) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut deliveries: Vec<DeliveryFuture> = Vec::new();
        for p in pending {
            for (key, value) in p.records() {
                let mut record = self.record(p, key, value.as_deref());
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
                        Err((err, _)) => return Err(err),
                    }
                }
            }
        }
        Ok(deliveries)
    }

    /// After the commit: the tasks count from their new checkpoint.
    pub(super) fn committed<S>(&self, tasks: &mut Tasks<S>, pending: &[Pending]) {
        for p in pending {
            if self.backend == StateBackend::Kafka {
                self.metrics.checkpointed(self.stage);
            }
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
        if let Some(txn) = &self.txn {
            return self.checkpoint_in_transaction(txn, tasks, consumer).await;
        }
        let mut pending = self.take(&lock(tasks), None);
        if pending.is_empty() {
            return Ok(());
        }
        let mut deliveries = Vec::new();
        for p in &pending {
            for (key, value) in p.records() {
                deliveries.push(
                    crate::kafka::enqueue(&self.producer, self.record(p, key, value.as_deref()))
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
        self.delivered(&mut lock(tasks), &mut pending);
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
        if let Some(txn) = &self.txn {
            return self.flush_revoked_in_transaction(txn, tasks, consumer, revoked, drain);
        }
        let mut tasks = lock(tasks);
        let pending = self.take(&tasks, Some(revoked));
        let started = Instant::now();
        let (mut failed, deliveries) = match self.send_now(&pending, started, drain) {
            Ok(deliveries) => (false, deliveries),
            Err(err) => {
                tracing::warn!(%err, "checkpoint at revoke not written");
                (true, Vec::new())
            }
        };
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
            // The state is dropped below: its books with it.
            for p in &pending {
                if let Some(planned) = &p.planned {
                    self.metrics
                        .written(self.stage, planned.written_bytes, planned.chunks_written);
                }
            }
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
                // A checkpoint of an aborted transaction (exactly-once) is not one.
                ("isolation.level", "read_committed"),
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
    let (choice, book, bytes) = match read {
        Some(read) => {
            let (choice, book) = super::checkpoint::choose(&read.latest, committed);
            (choice, book, read.bytes)
        }
        None => (
            Choice::Cold {
                reason: ColdStart::Memory,
                next_gen: 0,
            },
            ChunkBook::default(),
            0,
        ),
    };
    let cold = |reason: ColdStart, gen: u64, book: ChunkBook| -> anyhow::Result<Task<S>> {
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
            book,
            state_bytes: 0,
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
                    book,
                    state_bytes: state.len() as u64,
                }
            }
            Err(err) => {
                tracing::warn!(stage, partition, %err, "the checkpoint cannot be used");
                cold(ColdStart::Snapshot(err.reason()), gen + 1, book)?
            }
        },
        Choice::Cold { reason, next_gen } => cold(reason, next_gen, book)?,
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
                .set("cleanup.policy", "compact")
                .set("segment.ms", STATE_SEGMENT_MS);
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
                        "state topic created (cleanup.policy=compact, segment.ms={STATE_SEGMENT_MS})"
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
