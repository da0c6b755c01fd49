//! Kafka client set-up shared by the services: layered properties (ours, then the
//! passthrough maps), and contexts that turn librdkafka's logs and statistics into
//! `tracing` events and metrics.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use anyhow::Context;
use prometheus::{IntCounterVec, IntGauge};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

use crate::config::KafkaConfig;
use crate::health::Health;
use crate::metrics::IngestMetrics;

/// Consumer properties: ours first, the passthrough maps last.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group_id)
        .set("statistics.interval.ms", "5000");
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in kafka.client.iter().chain(&kafka.consumer) {
        c.set(k, v);
    }
    c.set_log_level(log_level(&c));
    c
}

/// Producer properties: ours first, the passthrough maps last.
pub fn producer_config(kafka: &KafkaConfig, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("statistics.interval.ms", "5000");
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in kafka.client.iter().chain(&kafka.producer) {
        c.set(k, v);
    }
    c.set_log_level(log_level(&c));
    c
}

/// Info, or Debug when librdkafka's `debug` contexts are asked for in a passthrough
/// map (otherwise the debug lines they turn on would be filtered out).
fn log_level(c: &ClientConfig) -> RDKafkaLogLevel {
    if c.get("debug").is_some_and(|d| !d.is_empty()) {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Info
    }
}

fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// The gauges and counters a group consumer keeps up to date.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    pub rebalances: IntCounterVec,
    pub consumer_lag: IntGauge,
    pub assigned_partitions: IntGauge,
}

impl From<&IngestMetrics> for ConsumerMetrics {
    fn from(m: &IngestMetrics) -> Self {
        ConsumerMetrics {
            rebalances: m.rebalances.clone(),
            consumer_lag: m.consumer_lag.clone(),
            assigned_partitions: m.assigned_partitions.clone(),
        }
    }
}

/// A group consumer's context (ingest, detect worker, fleet stage): rebalance
/// bookkeeping, commit on revoke, lag.
#[derive(Debug)]
pub struct GroupConsumerContext {
    pub metrics: ConsumerMetrics,
    pub health: Arc<Health>,
    /// Set on every rebalance; the exactly-once loop drops an uncommitted batch then.
    pub rebalanced: std::sync::atomic::AtomicBool,
}

impl ClientContext for GroupConsumerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.metrics.consumer_lag.set(lag);
        self.health.set_lag(lag);
    }
}

impl ConsumerContext for GroupConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.metrics.rebalances.with_label_values(&["revoke"]).inc();
                self.rebalanced
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                // Commit what is stored before the partitions go to another instance.
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) => tracing::info!(
                        partitions = tpl.count(),
                        "revoked; stored offsets committed"
                    ),
                    Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                    Err(err) => tracing::warn!(%err, "commit on revoke failed"),
                }
            }
            Rebalance::Assign(tpl) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                self.rebalanced
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Error(err) => {
                self.metrics.rebalances.with_label_values(&["error"]).inc();
                tracing::warn!(%err, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let count = consumer.assignment().map(|a| a.count() as i64).unwrap_or(0);
        self.metrics.assigned_partitions.set(count);
        self.health.set_assigned(count);
    }
}

/// A producer context that reports the queue depth.
#[derive(Debug)]
pub struct ProducerStatsContext {
    pub queue: IntGauge,
}

impl ClientContext for ProducerStatsContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }

    fn stats(&self, statistics: Statistics) {
        self.queue.set(statistics.msg_cnt as i64);
    }
}

/// How long a wait for the next message may sleep before the queue is polled again.
const RECV_RECHECK: Duration = Duration::from_millis(50);

/// Waits for the next message or consumer error.
///
/// rdkafka's `StreamConsumer` is woken by an edge-triggered "queue non-empty"
/// callback that can be missed when librdkafka serves a statistics or log event in
/// the same poll (rust-rdkafka issue #665); its own fallback wakes it only every
/// `max.poll.interval.ms / 2` (150 s by default), and we ask for statistics every
/// 5 s. So the wait is bounded and the queue polled again, which costs at most
/// [`RECV_RECHECK`] per missed wake-up.
pub async fn recv<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> KafkaResult<BorrowedMessage<'_>> {
    loop {
        if let Ok(result) = tokio::time::timeout(RECV_RECHECK, consumer.recv()).await {
            return result;
        }
    }
}

/// What one [`recv_batch`] returned.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<OwnedMessage>,
    /// Partitions whose end was reached (only with `enable.partition.eof`).
    pub eof: Vec<i32>,
}

/// Waits for a first message (or end-of-partition event), then takes whatever else
/// is already fetched, up to `max` messages, copied out of the consumer's buffers so
/// that they can cross threads. Other consumer errors are logged and skipped
/// (librdkafka retries them).
pub async fn recv_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max: usize,
) -> Batch {
    let mut batch = Batch::default();
    let mut next = Some(recv(consumer).await);
    while let Some(result) = next {
        match result {
            Ok(message) => batch.messages.push(message.detach()),
            Err(KafkaError::PartitionEOF(partition)) => batch.eof.push(partition),
            Err(err) => tracing::warn!(%err, "consumer error"),
        }
        if batch.messages.len() >= max {
            break;
        }
        next = consumer.recv().now_or_never();
    }
    batch
}

/// A group consumer of the services (ingest, detect worker, fleet stage).
pub type GroupConsumer = StreamConsumer<GroupConsumerContext>;
/// A producer that reports its queue depth.
pub type StatsProducer = FutureProducer<ProducerStatsContext>;

/// At-least-once consumption: the service stores an offset only after every output
/// of that input is acknowledged; librdkafka auto-commits what is stored.
pub const STORE_AFTER_ACK: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("enable.auto.offset.store", "false"),
    ("auto.commit.interval.ms", "1000"),
    ("auto.offset.reset", "earliest"),
];

/// Creates a group consumer subscribed to `topic`, with our properties (then the
/// passthrough maps), rebalance bookkeeping and lag metrics.
pub fn group_consumer(
    kafka: &KafkaConfig,
    group_id: &str,
    topic: &str,
    ours: &[(&str, &str)],
    metrics: ConsumerMetrics,
    health: &Arc<Health>,
) -> anyhow::Result<GroupConsumer> {
    let context = GroupConsumerContext {
        metrics,
        health: health.clone(),
        rebalanced: std::sync::atomic::AtomicBool::new(false),
    };
    let consumer: GroupConsumer = consumer_config(kafka, group_id, ours)
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    Ok(consumer)
}

/// Creates a producer with our properties (then the passthrough maps) that reports
/// its queue depth to `queue`.
pub fn stats_producer(
    kafka: &KafkaConfig,
    ours: &[(&str, &str)],
    queue: IntGauge,
) -> anyhow::Result<StatsProducer> {
    producer_config(kafka, ours)
        .create_with_context(ProducerStatsContext { queue })
        .context("creating the Kafka producer")
}

/// Commits the stored offsets at shutdown; a failure only means the last stored
/// inputs will be consumed again.
pub fn commit_stored<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => {
            tracing::warn!(%err, "final commit failed; the last stored offsets will be consumed again")
        }
    }
}
