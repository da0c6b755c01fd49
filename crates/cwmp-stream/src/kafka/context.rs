//! Client contexts: librdkafka's logs become `tracing` events, its statistics
//! become lag and queue-depth metrics (and `/readyz` input), and rebalances are
//! counted, logged and followed by a commit of what is stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::{IntCounterVec, IntGauge, Registry};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use crate::health::Health;
use crate::metrics::{counter_vec, gauge};

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

/// What a rebalance callback saw: the `kind` label of `…_rebalances_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceKind {
    Assign,
    Revoke,
    Error,
}

impl RebalanceKind {
    pub const ALL: [RebalanceKind; 3] = [
        RebalanceKind::Assign,
        RebalanceKind::Revoke,
        RebalanceKind::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceKind::Assign => "assign",
            RebalanceKind::Revoke => "revoke",
            RebalanceKind::Error => "error",
        }
    }
}

/// The gauges and counters a group consumer keeps up to date, named
/// `<prefix>_rebalances_total`, `<prefix>_consumer_lag_messages` and
/// `<prefix>_assigned_partitions`.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    rebalances: IntCounterVec,
    pub consumer_lag: IntGauge,
    pub assigned_partitions: IntGauge,
}

impl ConsumerMetrics {
    /// Registers the three metrics under `prefix` (`cwmp_ingest`, `cwmp_detect_worker` …).
    pub fn register(registry: &Registry, prefix: &str, partitions_help: &str) -> Self {
        let kinds: Vec<&str> = RebalanceKind::ALL.iter().map(|k| k.as_str()).collect();
        ConsumerMetrics {
            rebalances: counter_vec(
                registry,
                &format!("{prefix}_rebalances_total"),
                "Consumer group rebalances by kind.",
                "kind",
                &kinds,
            ),
            consumer_lag: gauge(
                registry,
                &format!("{prefix}_consumer_lag_messages"),
                "Messages behind the end of the assigned partitions (librdkafka statistics).",
            ),
            assigned_partitions: gauge(
                registry,
                &format!("{prefix}_assigned_partitions"),
                partitions_help,
            ),
        }
    }

    /// Counts one rebalance callback.
    pub fn rebalanced(&self, kind: RebalanceKind) {
        self.rebalances.with_label_values(&[kind.as_str()]).inc();
    }

    /// How many rebalances of `kind` were counted.
    pub fn rebalances(&self, kind: RebalanceKind) -> u64 {
        self.rebalances.with_label_values(&[kind.as_str()]).get()
    }
}

/// A group consumer's context (ingest, detect worker, fleet stage): rebalance
/// bookkeeping, commit on revoke, lag.
#[derive(Debug)]
pub struct GroupConsumerContext {
    pub metrics: ConsumerMetrics,
    pub health: Arc<Health>,
    /// Set on every rebalance; the exactly-once loop drops an uncommitted batch then.
    pub rebalanced: AtomicBool,
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
                self.metrics.rebalanced(RebalanceKind::Revoke);
                self.rebalanced.store(true, Ordering::SeqCst);
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
                self.metrics.rebalanced(RebalanceKind::Assign);
                self.rebalanced.store(true, Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Error(err) => {
                self.metrics.rebalanced(RebalanceKind::Error);
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
