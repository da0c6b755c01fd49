//! The detect worker on Kafka: EventRecords in; device alerts and partial
//! aggregates out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::{Observation, SnapshotError, Verdict, Worker, WorkerOutput};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tokio::sync::watch;

use super::metrics::{AggregateTraffic, DetectStage, RecordResult};
use super::state::{lock, Tasks};
use super::{await_deliveries, send_alert, DetectMetrics, StageClients, StageIo};
use crate::config::Config;
use crate::kafka::{
    assigned as assigned_partitions, enqueue, partition_count, recv_batch, topic_partitions, Batch,
    StatsProducer,
};

/// Consumes, detects and publishes until `stop` turns true or an output fails.
pub(super) async fn consume(
    io: StageIo<'_>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let StageIo {
        config,
        clients: StageClients { consumer, producer },
        metrics,
        health,
    } = io;
    let d = &config.detect;
    let input_partitions = partition_count(consumer, &d.input_topic).await?;
    let aggregate_partitions = partition_count(consumer, &d.aggregates_topic).await?;
    Worker::new(d.rules.clone())?;
    // Ingest interleaves the raw partitions into each events partition: wait for each
    // of them (see Worker::expect_sources), when the raw topic can be seen.
    let expected: Option<Vec<i32>> = match topic_partitions(consumer, &config.ingest.input_topic) {
        Some(n) => {
            tracing::info!(topic = %config.ingest.input_topic, partitions = n, "the watermark follows each raw partition");
            Some((0..n).collect())
        }
        None => {
            tracing::info!(topic = %config.ingest.input_topic, "raw topic not visible: the watermark follows the raw partitions as records name them");
            None
        }
    };
    let (checkpointer, reader) = super::open_state(
        io,
        DetectStage::Worker,
        &d.input_topic,
        &d.state_topic,
        input_partitions,
    )
    .await?;
    // One worker per input partition: its state is checkpointed, restored and moved
    // with the partition.
    let tasks: Arc<Mutex<Tasks<Worker>>> = Arc::default();
    super::on_revoke(io, &checkpointer, &tasks);
    let fresh = |p: i32| -> anyhow::Result<Worker> {
        let mut w = Worker::new(d.rules.clone())?;
        w.set_partitions(vec![p], input_partitions);
        if let Some(sources) = &expected {
            w.expect_sources(sources.clone());
        }
        Ok(w)
    };
    let decode = |p: i32, bytes: &[u8]| -> Result<Worker, SnapshotError> {
        let mut w = Worker::restore(d.rules.clone(), bytes)?;
        if w.partitions() != [p] {
            return Err(SnapshotError::Corrupt(format!(
                "the state of partitions {:?} in the checkpoint of partition {p}",
                w.partitions()
            )));
        }
        w.set_partitions(vec![p], input_partitions);
        if let Some(sources) = &expected {
            w.expect_sources(sources.clone());
        }
        Ok(w)
    };
    let mut sources = SourceActivity::default();
    let mut assigned: Vec<i32> = Vec::new();
    // Partitions at their end since when; idle for the watermark after partition_idle_ms.
    let mut at_end: BTreeMap<i32, (Instant, bool)> = BTreeMap::new();
    let idle_after = Duration::from_millis(d.partition_idle_ms);
    let checkpoint_every = Duration::from_millis(d.checkpoint_interval_ms);
    let mut checkpoint_at = Instant::now();
    let mut gauges_at: Option<Instant> = None;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => None,
            batch = recv_batch(consumer, d.batch_max_messages) => Some(batch),
            // Wake up to notice partitions that have gone idle, and to checkpoint.
            _ = tokio::time::sleep(idle_after / 4 + Duration::from_millis(1)) => Some(Batch::default()),
        };
        let Some(batch) = batch else {
            // Every output so far is acknowledged: the last checkpoint.
            return checkpointer.checkpoint(&tasks, consumer).await;
        };
        if !batch.messages.is_empty() {
            health.progress();
        }
        // After an aborted transaction: back to the committed offsets; the batch in
        // hand is consumed again from there.
        if checkpointer.rewind_if_needed(&tasks, consumer)? {
            at_end.clear();
            continue;
        }
        // Restore newly assigned partitions before any of their records.
        let now = assigned_partitions(consumer, &d.input_topic);
        super::follow_assignment(
            io,
            &checkpointer,
            reader.as_ref(),
            &tasks,
            &now,
            decode,
            fresh,
        )?;
        if now != assigned {
            assigned = now;
            sources.assigned(&assigned);
            at_end.retain(|p, _| assigned.contains(p));
        }
        let Batch {
            messages: batch,
            eof,
        } = batch;
        for message in &batch {
            at_end.remove(&message.partition());
        }
        for partition in eof {
            at_end.entry(partition).or_insert((Instant::now(), false));
        }
        let mut newly_idle = Vec::new();
        for (partition, (since, marked)) in at_end.iter_mut() {
            if !*marked && since.elapsed() >= idle_after {
                *marked = true;
                newly_idle.push(*partition);
            }
        }
        let outputs = {
            let mut tasks = lock(&tasks);
            let mut outputs = observe_batch(&mut tasks, metrics, &batch, &newly_idle, &mut sources);
            sources.release_quiet(&mut tasks, idle_after, &mut outputs);
            outputs
        };
        if !outputs.is_empty() {
            checkpointer.begin()?;
        }
        let mut deliveries = Vec::new();
        for output in outputs {
            send(
                config,
                producer,
                metrics,
                output,
                aggregate_partitions,
                &mut deliveries,
            )
            .await?;
        }
        await_deliveries(deliveries).await?;
        if checkpoint_at.elapsed() >= checkpoint_every {
            checkpointer.checkpoint(&tasks, consumer).await?;
            checkpoint_at = Instant::now();
        }
        // The state gauges walk the worker's tables: once a second, not per batch.
        if gauges_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            gauges_at = Some(Instant::now());
            let tasks = lock(&tasks);
            let workers = || tasks.values().map(|t| &t.state);
            metrics
                .tracked_devices
                .set(workers().map(Worker::tracked_devices).sum::<usize>() as i64);
            metrics
                .state_bytes
                .set(workers().map(Worker::state_bytes).sum::<usize>() as i64);
            let (cadences, overdue) = workers()
                .map(Worker::cadences)
                .fold((0, 0), |(c, o), (wc, wo)| (c + wc, o + wo));
            metrics.cadence_devices.set(cadences as i64);
            metrics.overdue_devices.set(overdue as i64);
            metrics.state.set_since_checkpoint(
                DetectStage::Worker,
                tasks.values().map(|t| t.since_checkpoint).sum(),
            );
            if let Some(w) = workers().filter_map(Worker::watermark).min() {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                metrics.watermark_lag_seconds.set((now_ms - w) / 1000);
            }
            let mut active = BTreeMap::new();
            for w in workers() {
                for (kind, n) in w.active() {
                    *active.entry(kind).or_insert(0) += n;
                }
            }
            metrics.set_active(DetectStage::Worker, &active);
        }
    }
}

/// Folds a batch of EventRecords (and the partitions gone idle) into the workers of
/// their partitions; returns what they produced. Records the detectors cannot use
/// are counted and skipped; records of a partition no longer owned, or already
/// held by its restored state, are left to the state that holds them.
fn observe_batch(
    tasks: &mut Tasks<Worker>,
    metrics: &DetectMetrics,
    batch: &[rdkafka::message::OwnedMessage],
    newly_idle: &[i32],
    sources: &mut SourceActivity,
) -> Vec<WorkerOutput> {
    let mut outputs = Vec::new();
    let now = Instant::now();
    for message in batch {
        let partition = message.partition();
        let Some(task) = tasks.get_mut(&partition) else {
            continue;
        };
        if !task.takes(message.offset()) {
            continue;
        }
        task.processed(message.offset());
        let Some(payload) = message.payload() else {
            metrics.record(RecordResult::Invalid);
            continue;
        };
        let mut buf = payload.to_vec();
        match Observation::from_json(&mut buf) {
            Ok(obs) => {
                sources.seen(partition, cwmp_detect::source_of(&obs), now);
                let verdict = task.state.observe(partition, &obs, &mut outputs);
                metrics.record(RecordResult::Judged(verdict));
                if let (Some(t), Verdict::Accepted) = (&obs.transfer, verdict) {
                    metrics.transfer(t.code);
                }
            }
            Err(err) => {
                metrics.record(RecordResult::Invalid);
                tracing::warn!(%err, partition, offset = message.offset(), "skipping a record the detectors cannot use");
            }
        }
    }
    for &partition in newly_idle {
        if let Some(task) = tasks.get_mut(&partition) {
            task.state.partition_idle(partition, &mut outputs);
        }
    }
    outputs
}

/// When each (input partition, source) pair last delivered, in wall time: a source
/// that has delivered nothing to a partition for `partition_idle_ms` while the
/// partition went on delivering is released (Worker::source_idle), the way a
/// caught-up partition is. A producer faster than real time never trips it: its
/// sources deliver continuously.
#[derive(Debug, Default)]
struct SourceActivity {
    /// (partition, source) → last record, or the assignment for one not seen yet.
    last: BTreeMap<(i32, i32), Instant>,
    /// Partition → its last record.
    delivered: BTreeMap<i32, Instant>,
    assigned_at: BTreeMap<i32, Instant>,
}

impl SourceActivity {
    fn assigned(&mut self, partitions: &[i32]) {
        let now = Instant::now();
        self.assigned_at.retain(|p, _| partitions.contains(p));
        for p in partitions {
            self.assigned_at.entry(*p).or_insert(now);
        }
        self.last.retain(|(p, _), _| partitions.contains(p));
        self.delivered.retain(|p, _| partitions.contains(p));
    }

    fn seen(&mut self, partition: i32, source: i32, now: Instant) {
        self.last.insert((partition, source), now);
        self.delivered.insert(partition, now);
    }

    fn release_quiet(
        &mut self,
        tasks: &mut Tasks<Worker>,
        idle_after: Duration,
        out: &mut Vec<WorkerOutput>,
    ) {
        for task in tasks.values_mut() {
            self.release_quiet_of(&mut task.state, idle_after, out);
        }
    }

    fn release_quiet_of(
        &mut self,
        worker: &mut Worker,
        idle_after: Duration,
        out: &mut Vec<WorkerOutput>,
    ) {
        let now = Instant::now();
        for (partition, source, idle) in worker.sources() {
            if idle {
                continue;
            }
            let Some(&delivered) = self.delivered.get(&partition) else {
                continue;
            };
            let last = self
                .last
                .get(&(partition, source))
                .or_else(|| self.assigned_at.get(&partition))
                .copied()
                .unwrap_or(now);
            if delivered > last && now.duration_since(last) >= idle_after {
                worker.source_idle(partition, source, out);
            }
        }
    }
}

/// Enqueues one worker output: an alert, a partial (keyed by scope and key), or a
/// close (to every aggregates partition, so that every fleet instance sees it).
async fn send(
    config: &Config,
    producer: &StatsProducer,
    metrics: &DetectMetrics,
    output: WorkerOutput,
    aggregate_partitions: i32,
    deliveries: &mut Vec<rdkafka::producer::DeliveryFuture>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    match output {
        WorkerOutput::Alert(alert) => {
            deliveries.push(send_alert(config, producer, metrics, &alert).await?);
        }
        WorkerOutput::Aggregate(message) => {
            let json = serde_json::to_vec(&message).context("encoding an aggregate")?;
            match message.kafka_key() {
                Some(key) => {
                    metrics.aggregate(AggregateTraffic::PartialSent);
                    let record = FutureRecord::to(&d.aggregates_topic)
                        .key(key.as_bytes())
                        .payload(json.as_slice());
                    deliveries.push(
                        enqueue(producer, record)
                            .await
                            .context("producing a partial aggregate")?,
                    );
                }
                None => {
                    debug_assert!(matches!(message, AggregateMessage::Close(_)));
                    metrics.aggregate(AggregateTraffic::CloseSent);
                    for partition in 0..aggregate_partitions {
                        let record = FutureRecord::<[u8], [u8]>::to(&d.aggregates_topic)
                            .partition(partition)
                            .payload(json.as_slice());
                        deliveries.push(
                            enqueue(producer, record)
                                .await
                                .context("producing a close")?,
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
