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
        let outputs = observe_batch(&mut worker, metrics, &batch, &newly_idle);
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
) -> Vec<WorkerOutput> {
    let mut outputs = Vec::new();
    for message in batch {
        let Some(payload) = message.payload() else {
            metrics.record(RecordResult::Invalid);
            continue;
        };
        let mut buf = payload.to_vec();
        match Observation::from_json(&mut buf) {
            Ok(obs) => {
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
