//! Kafka client set-up shared by the services: layered properties (ours, then the
//! passthrough maps), and contexts that turn librdkafka's logs and statistics into
//! `tracing` events and metrics.

use std::sync::Arc;

use prometheus::IntGauge;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
    c.set_log_level(RDKafkaLogLevel::Info);
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
    c.set_log_level(RDKafkaLogLevel::Info);
    c
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

/// The ingest consumer's context: rebalance bookkeeping, commit on revoke, lag.
#[derive(Debug)]
pub struct IngestConsumerContext {
    pub metrics: IngestMetrics,
    pub health: Arc<Health>,
    /// Set on every rebalance; the exactly-once loop drops an uncommitted batch then.
    pub rebalanced: std::sync::atomic::AtomicBool,
}

impl ClientContext for IngestConsumerContext {
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

impl ConsumerContext for IngestConsumerContext {
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
