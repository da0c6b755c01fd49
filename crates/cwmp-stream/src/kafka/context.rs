//! Client contexts: librdkafka's logs become `tracing` events (repeats at a
//! bounded rate, see [`super::quiet`]), its statistics become lag and queue-depth
//! metrics (and `/readyz` input), client errors are counted and an outage of every
//! broker is followed to its end, and rebalances are counted, logged and followed by
//! a commit of what is stored.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus::{IntCounterVec, IntGauge, Registry};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::quiet::{limited, Outage};
use crate::health::Health;
use crate::metrics::{counter_vec, gauge};

fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, message: &str) {
    if matches!(level, RDKafkaLogLevel::Debug) {
        tracing::debug!(target: "librdkafka", fac, "{message}");
        return;
    }
    limited(&format!("log:{fac}"), |suppressed| match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", fac, suppressed, "{message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", fac, suppressed, "{message}")
        }
        _ => tracing::info!(target: "librdkafka", fac, suppressed, "{message}"),
    });
}

/// A client error, logged at a bounded rate per error code.
fn log_error(error: &KafkaError, reason: &str) {
    // The end of a partition is an event the consuming loops use, not a fault.
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
        return;
    }
    let code = error
        .rdkafka_error_code()
        .map_or_else(|| "none".to_owned(), |c| format!("{c:?}"));
    limited(
        &format!("error:{code}"),
        |suppressed| tracing::warn!(target: "librdkafka", %error, suppressed, "{reason}"),
    );
}

/// The `kind` label of `…_client_errors_total`: a bounded set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorKind {
    AllBrokersDown,
    Transport,
    Authentication,
    TimedOut,
    Other,
}

impl ClientErrorKind {
    pub const ALL: [ClientErrorKind; 5] = [
        ClientErrorKind::AllBrokersDown,
        ClientErrorKind::Transport,
        ClientErrorKind::Authentication,
        ClientErrorKind::TimedOut,
        ClientErrorKind::Other,
    ];

    pub fn of(error: &KafkaError) -> ClientErrorKind {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => ClientErrorKind::AllBrokersDown,
            Some(RDKafkaErrorCode::BrokerTransportFailure) => ClientErrorKind::Transport,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                ClientErrorKind::Authentication
            }
            Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                ClientErrorKind::TimedOut
            }
            _ => ClientErrorKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorKind::AllBrokersDown => "all_brokers_down",
            ClientErrorKind::Transport => "transport",
            ClientErrorKind::Authentication => "authentication",
            ClientErrorKind::TimedOut => "timed_out",
            ClientErrorKind::Other => "other",
        }
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
    client_errors: IntCounterVec,
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
            client_errors: counter_vec(
                registry,
                &format!("{prefix}_client_errors_total"),
                "Errors librdkafka reported to the consumer, by kind (all_brokers_down while Kafka is unreachable).",
                "kind",
                &ClientErrorKind::ALL.map(ClientErrorKind::as_str),
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

    /// Counts one client error.
    pub fn client_error(&self, kind: ClientErrorKind) {
        self.client_errors.with_label_values(&[kind.as_str()]).inc();
    }

    /// How many client errors of `kind` were counted.
    pub fn client_errors(&self, kind: ClientErrorKind) -> u64 {
        self.client_errors.with_label_values(&[kind.as_str()]).get()
    }

    /// How many rebalances of `kind` were counted.
    pub fn rebalances(&self, kind: RebalanceKind) -> u64 {
        self.rebalances.with_label_values(&[kind.as_str()]).get()
    }
}

/// What a service does with partitions about to be revoked, inside the rebalance
/// callback (detect: checkpoint their state, commit, drop it).
pub type RevokeHook =
    Box<dyn Fn(&BaseConsumer<GroupConsumerContext>, &TopicPartitionList) + Send + Sync>;

/// The revoke hook a service installs once its state exists.
#[derive(Default)]
pub struct OnRevoke(OnceLock<RevokeHook>);

impl OnRevoke {
    /// Installs the hook; a second one is refused (returns false).
    pub fn install(&self, hook: RevokeHook) -> bool {
        self.0.set(hook).is_ok()
    }
}

impl fmt::Debug for OnRevoke {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "OnRevoke(installed)"
        } else {
            "OnRevoke(none)"
        })
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
    /// Whether every broker is unreachable, and since when.
    pub outage: Outage,
    /// Called first on a revoke, with the partitions revoked.
    pub on_revoke: OnRevoke,
}

impl ClientContext for GroupConsumerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        let kind = ClientErrorKind::of(&error);
        self.metrics.client_error(kind);
        if kind == ClientErrorKind::AllBrokersDown && self.outage.down() {
            self.health.set_kafka_down(true);
            tracing::error!(%error, "Kafka unreachable: every broker is down; retrying (repeats are logged at most once per 10 s)");
        }
        log_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        if statistics.brokers.values().any(|b| b.state == "UP") {
            if let Some(lasted) = self.outage.up() {
                self.health.set_kafka_down(false);
                tracing::info!(seconds = lasted.as_secs(), "Kafka reachable again");
            }
        }
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
                if let Some(hook) = self.on_revoke.0.get() {
                    hook(consumer, tpl);
                }
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

/// The context of a consumer outside any group (detect's state reader): logs only.
#[derive(Debug)]
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }
}

impl ConsumerContext for ReaderContext {}

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
        log_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.queue.set(statistics.msg_cnt as i64);
    }
}
