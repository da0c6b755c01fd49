//! The detect worker on Kafka: EventRecords in; device alerts and partial
//! aggregates out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::{Observation, Verdict, Worker, WorkerOutput};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tokio::sync::watch;

use super::metrics::{AggregateTraffic, DetectStage, RecordResult};
use super::{await_deliveries, send_alert, DetectMetrics, StageClients, StageIo};
use crate::config::Config;
use crate::kafka::{
    assigned as assigned_partitions, enqueue, partition_count, recv_batch, store_offsets, Batch,
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
    let mut worker = Worker::new(d.rules.clone())?;
    // Ingest interleaves the raw partitions into each events partition: wait for each
    // of them (see Worker::expect_sources), when the raw topic can be seen.
    match source_partitions(consumer, &config.ingest.input_topic) {
        Some(n) => {
            tracing::info!(topic = %config.ingest.input_topic, partitions = n, "the watermark follows each raw partition");
            worker.expect_sources((0..n).collect());
        }
        None => {
            tracing::info!(topic = %config.ingest.input_topic, "raw topic not visible: the watermark follows the raw partitions as records name them")
        }
    }
    let mut sources = SourceActivity::default();
    let mut assigned: Vec<i32> = Vec::new();
    // Partitions at their end since when; idle for the watermark after partition_idle_ms.
    let mut at_end: BTreeMap<i32, (Instant, bool)> = BTreeMap::new();
    let idle_after = Duration::from_millis(d.partition_idle_ms);
    let mut gauges_at: Option<Instant> = None;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            batch = recv_batch(consumer, d.batch_max_messages) => batch,
            // Wake up to notice partitions that have gone idle.
            _ = tokio::time::sleep(idle_after / 4 + Duration::from_millis(1)) => Batch::default(),
        };
        if !batch.messages.is_empty() {
            health.progress();
        }
        // Closes name the partitions this worker owns: follow the assignment.
        let now = assigned_partitions(consumer, &d.input_topic);
        if now != assigned {
            assigned = now;
            worker.set_partitions(assigned.clone(), input_partitions);
            sources.assigned(&assigned);
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
        let mut outputs = observe_batch(&mut worker, metrics, &batch, &newly_idle, &mut sources);
        sources.release_quiet(&mut worker, idle_after, &mut outputs);
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
        store_offsets(consumer, &batch);
        // The state gauges walk the worker's tables: once a second, not per batch.
        if gauges_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            gauges_at = Some(Instant::now());
            metrics.tracked_devices.set(worker.tracked_devices() as i64);
            metrics.state_bytes.set(worker.state_bytes() as i64);
            if let Some(w) = worker.watermark() {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                metrics.watermark_lag_seconds.set((now_ms - w) / 1000);
            }
            metrics.set_active(DetectStage::Worker, &worker.active());
        }
    }
}

/// Folds a batch of EventRecords (and the partitions gone idle) into the worker;
/// returns what it produced. Records the detectors cannot use are counted and skipped.
fn observe_batch(
    worker: &mut Worker,
    metrics: &DetectMetrics,
    batch: &[rdkafka::message::OwnedMessage],
    newly_idle: &[i32],
    sources: &mut SourceActivity,
) -> Vec<WorkerOutput> {
    let mut outputs = Vec::new();
    let now = Instant::now();
    for message in batch {
        let Some(payload) = message.payload() else {
            metrics.record(RecordResult::Invalid);
            continue;
        };
        let mut buf = payload.to_vec();
        match Observation::from_json(&mut buf) {
            Ok(obs) => {
                sources.seen(message.partition(), cwmp_detect::source_of(&obs), now);
                let verdict = worker.observe(message.partition(), &obs, &mut outputs);
                metrics.record(RecordResult::Judged(verdict));
                if let (Some(t), Verdict::Accepted) = (&obs.transfer, verdict) {
                    metrics.transfer(t.code);
                }
            }
            Err(err) => {
                metrics.record(RecordResult::Invalid);
                tracing::warn!(%err, partition = message.partition(), offset = message.offset(), "skipping a record the detectors cannot use");
            }
        }
    }
    for &partition in newly_idle {
        worker.partition_idle(partition, &mut outputs);
    }
    outputs
}

/// The partition count of the raw topic, when this consumer can see it. All topics'
/// metadata, not the one topic's: asking for a missing topic may create it.
fn source_partitions(consumer: &crate::kafka::GroupConsumer, topic: &str) -> Option<i32> {
    use rdkafka::consumer::Consumer;
    let metadata = match consumer.fetch_metadata(None, Duration::from_secs(5)) {
        Ok(metadata) => metadata,
        Err(err) => {
            tracing::warn!(%err, topic, "could not read the topics' metadata to find the raw partitions");
            return None;
        }
    };
    let n = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())?
        .partitions()
        .len() as i32;
    (n > 0).then_some(n)
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
