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
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use tokio::sync::watch;

use crate::config::{Config, Stage};
use crate::health::Health;
use crate::kafka::properties::{producer_defaults, PARTITION_EOF, STORE_AFTER_ACK};
use crate::kafka::{delivered, GroupConsumer, StatsProducer};
pub use metrics::DetectMetrics;
use metrics::DetectStage;

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
        Stage::Worker => run_stage(config, &metrics, &health, stop, DetectStage::Worker).await,
        Stage::Fleet => run_stage(config, &metrics, &health, stop, DetectStage::Fleet).await,
        Stage::All => {
            // /readyz follows the worker; the fleet stage may own no partition at all
            // when there are more replicas than aggregate partitions.
            let fleet_health = Arc::new(Health::new(Duration::from_millis(d.stall_timeout_ms)));
            let (w, f) = tokio::join!(
                run_stage(config, &metrics, &health, stop.clone(), DetectStage::Worker),
                run_stage(config, &metrics, &fleet_health, stop, DetectStage::Fleet),
            );
            w.and(f)
        }
    }
}

/// What a stage's consuming loop works with.
#[derive(Clone, Copy)]
struct StageIo<'a> {
    config: &'a Config,
    clients: &'a StageClients,
    metrics: &'a DetectMetrics,
    health: &'a Health,
}

/// One stage: its clients, its loop until `stop` or a failure, then the drain.
async fn run_stage(
    config: &Config,
    metrics: &DetectMetrics,
    health: &Arc<Health>,
    mut stop: watch::Receiver<bool>,
    stage: DetectStage,
) -> anyhow::Result<()> {
    let clients = StageClients::open(config, metrics, health, stage)?;
    let io = StageIo {
        config,
        clients: &clients,
        metrics,
        health,
    };
    let consumed = match stage {
        DetectStage::Worker => worker::consume(io, &mut stop).await,
        DetectStage::Fleet => fleet::consume(io, &mut stop).await,
    };
    clients.close(config, health, stage);
    consumed
}

/// A stage's Kafka clients: its group consumer and the producer of its outputs.
struct StageClients {
    consumer: GroupConsumer,
    producer: StatsProducer,
}

impl StageClients {
    /// The worker consumes EventRecords, with end-of-partition events (its watermark
    /// waits only for partitions with a backlog); the fleet stage consumes
    /// aggregates. Both store offsets only after their outputs are acknowledged.
    fn open(
        config: &Config,
        metrics: &DetectMetrics,
        health: &Arc<Health>,
        stage: DetectStage,
    ) -> anyhow::Result<Self> {
        let d = &config.detect;
        let (group_id, topic, partition_eof, consumer_metrics) = match stage {
            DetectStage::Worker => (
                &d.group_id,
                &d.input_topic,
                "true",
                &metrics.worker_consumer,
            ),
            DetectStage::Fleet => (
                &d.fleet_group_id,
                &d.aggregates_topic,
                "false",
                &metrics.fleet_consumer,
            ),
        };
        let mut ours = STORE_AFTER_ACK.to_vec();
        ours.push((PARTITION_EOF, partition_eof));
        let consumer = crate::kafka::group_consumer(
            &config.kafka,
            group_id,
            topic,
            &ours,
            consumer_metrics.clone(),
            health,
        )?;
        let producer = crate::kafka::stats_producer(
            &config.kafka,
            &producer_defaults(),
            metrics.producer_queue.clone(),
        )?;
        Ok(StageClients { consumer, producer })
    }

    /// At shutdown: unready, then flush and commit within the drain bound.
    fn close(self, config: &Config, health: &Health, stage: DetectStage) {
        health.set_draining();
        let drain = Duration::from_millis(config.detect.drain_timeout_ms);
        if let Err(err) = rdkafka::producer::Producer::flush(&self.producer, drain) {
            tracing::warn!(%err, "producer flush at shutdown");
        }
        crate::kafka::commit_stored(&self.consumer);
        tracing::info!(stage = stage.as_str(), "detect stage stopped");
    }
}

/// Awaits the deliveries of one batch; the first failure is fatal (storing offsets
/// past a lost output would lose it).
async fn await_deliveries(deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in deliveries {
        delivered(delivery).await?;
    }
    Ok(())
}

/// Enqueues one alert on the alerts topic (key = alert id) and counts it.
async fn send_alert(
    config: &Config,
    producer: &StatsProducer,
    metrics: &DetectMetrics,
    alert: &cwmp_detect::Alert,
) -> anyhow::Result<DeliveryFuture> {
    metrics.alert(alert);
    let json = alert.to_json();
    let record = FutureRecord::to(&config.detect.alerts_topic)
        .key(alert.id.as_bytes())
        .payload(json.as_bytes())
        .timestamp(alert.event_time_ms);
    crate::kafka::enqueue(producer, record)
        .await
        .context("producing an alert")
}
