//! `cwmp-stream detect`: the detectors of `cwmp-detect` on Kafka.
//!
//! Workers consume EventRecords (`detect.input_topic`) in a consumer group, run the
//! per-device detectors where each device's partition lands and publish partial
//! window aggregates to `detect.aggregates_topic`; the fleet stage consumes those,
//! merges them and decides the fleet alerts. Both publish alerts to
//! `detect.alerts_topic`, keyed by alert id. Delivery is at-least-once: input
//! offsets are stored only after every output a batch caused is acknowledged.
//! Detector state lives in memory: after a restart or a rebalance, a worker
//! rebuilds it from the records it consumes from then on.
//!
//! [`replay`] runs the same engine over an NDJSON file, in process.

pub mod fleet;
pub mod metrics;
pub mod replay;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::producer::DeliveryFuture;
use rdkafka::Message;
use tokio::sync::watch;

use crate::config::{Config, Stage};
use crate::health::Health;
use crate::kafka::ConsumerMetrics;
pub use metrics::DetectMetrics;

pub(crate) type DetectConsumer = crate::kafka::GroupConsumer;
pub(crate) type DetectProducer = crate::kafka::StatsProducer;

/// Runs the configured stage(s) until `stop` turns true, or a fatal error.
pub async fn run(
    config: &Config,
    metrics: DetectMetrics,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    tracing::info!(
        stage = %d.stage,
        input = %d.input_topic,
        aggregates = %d.aggregates_topic,
        alerts = %d.alerts_topic,
        "detect starting"
    );
    match d.stage {
        Stage::Worker => worker::run(config, metrics, health, stop).await,
        Stage::Fleet => fleet::run(config, metrics, health, stop).await,
        Stage::All => {
            // /readyz follows the worker; the fleet stage may own no partition at all
            // when there are more replicas than aggregate partitions.
            let fleet_health = Arc::new(Health::new(Duration::from_millis(d.stall_timeout_ms)));
            let (w, f) = tokio::join!(
                worker::run(config, metrics.clone(), health, stop.clone()),
                fleet::run(config, metrics, fleet_health, stop),
            );
            w.and(f)
        }
    }
}

/// A detect consumer: offsets stored after outputs are acknowledged; with
/// `partition_eof`, end-of-partition events (the worker's watermark waits only for
/// partitions with a backlog).
pub(crate) fn create_consumer(
    config: &Config,
    group_id: &str,
    topic: &str,
    partition_eof: bool,
    metrics: ConsumerMetrics,
    health: &Arc<Health>,
) -> anyhow::Result<DetectConsumer> {
    let mut ours = crate::kafka::STORE_AFTER_ACK.to_vec();
    ours.push((
        "enable.partition.eof",
        if partition_eof { "true" } else { "false" },
    ));
    crate::kafka::group_consumer(&config.kafka, group_id, topic, &ours, metrics, health)
}

pub(crate) fn create_producer(
    config: &Config,
    metrics: &DetectMetrics,
) -> anyhow::Result<DetectProducer> {
    crate::kafka::stats_producer(
        &config.kafka,
        crate::ingest::PRODUCER_DEFAULTS,
        metrics.producer_queue.clone(),
    )
}

/// Partitions of `topic`, waiting up to a minute for it to exist.
pub(crate) async fn partition_count(consumer: &DetectConsumer, topic: &str) -> anyhow::Result<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len() as i32)
            })
            .filter(|&n| n > 0);
        if let Some(n) = found {
            return Ok(n);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("topic {topic} does not exist (or has no partitions) after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Awaits the deliveries of one batch; the first failure is fatal (storing offsets
/// past a lost output would lose it).
pub(crate) async fn await_deliveries(deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((err, message))) => {
                anyhow::bail!("an output to {} was not delivered: {err}", message.topic())
            }
            Err(_) => anyhow::bail!("the producer dropped a delivery"),
        }
    }
    Ok(())
}

/// Enqueues one alert on the alerts topic (key = alert id) and counts it.
pub(crate) async fn send_alert(
    config: &Config,
    producer: &DetectProducer,
    metrics: &DetectMetrics,
    alert: &cwmp_detect::Alert,
) -> anyhow::Result<DeliveryFuture> {
    metrics
        .alerts
        .with_label_values(&[alert.kind.as_str(), alert.state.as_str()])
        .inc();
    let json = alert.to_json();
    let record = rdkafka::producer::FutureRecord::to(&config.detect.alerts_topic)
        .key(alert.id.as_bytes())
        .payload(json.as_bytes())
        .timestamp(alert.event_time_ms);
    crate::ingest::enqueue(producer, record)
        .await
        .context("producing an alert")
}

/// Stores the offsets of a processed batch (after its outputs were acknowledged).
pub(crate) fn store_offsets(consumer: &DetectConsumer, batch: &[rdkafka::message::OwnedMessage]) {
    for m in batch {
        if let Err(err) = consumer.store_offset(m.topic(), m.partition(), m.offset()) {
            tracing::debug!(%err, partition = m.partition(), "offset not stored (revoked)");
        }
    }
}

/// Flushes and commits at shutdown, within the drain bound.
pub(crate) fn finish(consumer: &DetectConsumer, producer: &DetectProducer, drain: Duration) {
    if let Err(err) = rdkafka::producer::Producer::flush(producer, drain) {
        tracing::warn!(%err, "producer flush at shutdown");
    }
    crate::kafka::commit_stored(consumer);
}
