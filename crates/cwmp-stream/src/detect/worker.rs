//! The detect worker on Kafka: EventRecords in; device alerts and partial
//! aggregates out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::{Observation, Worker, WorkerOutput};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tokio::sync::watch;

use super::{
    await_deliveries, create_consumer, create_producer, finish, partition_count, store_offsets,
    DetectMetrics,
};
use crate::config::Config;
use crate::health::Health;
use crate::ingest::enqueue;

pub async fn run(
    config: &Config,
    metrics: DetectMetrics,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    let consumer = create_consumer(
        config,
        &d.group_id,
        &d.input_topic,
        true,
        metrics.worker_consumer.clone(),
        &health,
    )?;
    let producer = create_producer(config, &metrics)?;
    let input_partitions = partition_count(&consumer, &d.input_topic).await?;
    let aggregate_partitions = partition_count(&consumer, &d.aggregates_topic).await?;
    let mut worker = Worker::new(d.rules.clone());
    let mut assigned: Vec<i32> = Vec::new();
    let mut outputs = Vec::new();
    let mut failure = None;
    // Partitions at their end since when; idle for the watermark after partition_idle_ms.
    let mut at_end: BTreeMap<i32, (Instant, bool)> = BTreeMap::new();
    let idle_after = Duration::from_millis(d.partition_idle_ms);
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            batch = crate::kafka::recv_batch(&consumer, d.batch_max_messages) => batch,
            // Wake up to notice partitions that have gone idle.
            _ = tokio::time::sleep(idle_after / 4 + Duration::from_millis(1)) => crate::kafka::Batch::default(),
        };
        if !batch.messages.is_empty() {
            health.progress();
        }
        // Closes name the partitions this worker owns: follow the assignment.
        let now: Vec<i32> = consumer
            .assignment()
            .map(|tpl| {
                tpl.elements_for_topic(&d.input_topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        if now != assigned {
            assigned = now;
            worker.set_partitions(assigned.clone(), input_partitions);
        }
        let mut deliveries = Vec::new();
        let crate::kafka::Batch {
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
        for message in &batch {
            let Some(payload) = message.payload() else {
                metrics.records.with_label_values(&["invalid"]).inc();
                continue;
            };
            let mut buf = payload.to_vec();
            let obs = match Observation::from_json(&mut buf) {
                Ok(obs) => obs,
                Err(err) => {
                    metrics.records.with_label_values(&["invalid"]).inc();
                    tracing::warn!(%err, partition = message.partition(), offset = message.offset(), "skipping a record the detectors cannot use");
                    continue;
                }
            };
            let verdict = worker.observe(message.partition(), &obs, &mut outputs);
            metrics.records.with_label_values(&[verdict.as_str()]).inc();
            for output in outputs.drain(..) {
                match send(
                    config,
                    &producer,
                    &metrics,
                    output,
                    aggregate_partitions,
                    &mut deliveries,
                )
                .await
                {
                    Ok(()) => {}
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_none() {
            for partition in newly_idle {
                worker.partition_idle(partition, &mut outputs);
            }
            for output in outputs.drain(..) {
                if let Err(err) = send(
                    config,
                    &producer,
                    &metrics,
                    output,
                    aggregate_partitions,
                    &mut deliveries,
                )
                .await
                {
                    failure = Some(err);
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(err) = await_deliveries(deliveries).await {
                failure = Some(err);
            }
        }
        if failure.is_some() {
            break;
        }
        store_offsets(&consumer, &batch);
        metrics.tracked_devices.set(worker.tracked_devices() as i64);
        metrics.state_bytes.set(worker.state_bytes() as i64);
        if let Some(w) = worker.watermark() {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            metrics.watermark_lag_seconds.set((now_ms - w) / 1000);
        }
        let active = worker.active();
        for kind in cwmp_detect::AlertKind::ALL {
            metrics
                .active_alerts
                .with_label_values(&[kind.as_str(), "worker"])
                .set(active.get(&kind).copied().unwrap_or(0) as i64);
        }
    }
    health.set_draining();
    finish(
        &consumer,
        &producer,
        Duration::from_millis(d.drain_timeout_ms),
    );
    tracing::info!("detect worker stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Enqueues one worker output: an alert, a partial (keyed by scope and key), or a
/// close (to every aggregates partition, so that every fleet instance sees it).
async fn send(
    config: &Config,
    producer: &super::DetectProducer,
    metrics: &DetectMetrics,
    output: WorkerOutput,
    aggregate_partitions: i32,
    deliveries: &mut Vec<rdkafka::producer::DeliveryFuture>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    match output {
        WorkerOutput::Alert(alert) => {
            metrics
                .alerts
                .with_label_values(&[alert.kind.as_str(), alert.state.as_str()])
                .inc();
            let json = alert.to_json();
            let record = FutureRecord::to(&d.alerts_topic)
                .key(alert.id.as_bytes())
                .payload(json.as_bytes())
                .timestamp(alert.event_time_ms);
            deliveries.push(
                enqueue(producer, record)
                    .await
                    .context("producing an alert")?,
            );
        }
        WorkerOutput::Aggregate(message) => {
            let json = serde_json::to_vec(&message).context("encoding an aggregate")?;
            match message.kafka_key() {
                Some(key) => {
                    metrics
                        .aggregates
                        .with_label_values(&["partial_sent"])
                        .inc();
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
                    metrics.aggregates.with_label_values(&["close_sent"]).inc();
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
