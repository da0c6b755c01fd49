//! Prometheus metrics of the ingest service (`cwmp_ingest_*`).
//!
//! Label values come from fixed sets (result, event kind, error kind, warning, RPC
//! name, transaction outcome), never a device id; each is written once, in the
//! typed methods below, and registered up front.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use super::process::{Outcome, Processed};
use crate::kafka::ConsumerMetrics;
use crate::metrics::{counter, counter_vec, gauge, histogram};

/// CWMP RPC names a CPE may send instead of an Inform; anything else counts as `other`.
pub const KNOWN_RPCS: &[&str] = &[
    "TransferComplete",
    "AutonomousTransferComplete",
    "DUStateChangeComplete",
    "AutonomousDUStateChangeComplete",
    "GetRPCMethods",
    "RequestDownload",
    "Kicked",
    "Fault",
    "empty",
    "other",
];

/// Input-side error kinds: the extractor's, plus envelope and header problems.
pub fn error_kinds() -> Vec<&'static str> {
    let mut kinds = cwmp_inform::Error::KINDS.to_vec();
    kinds.push("invalid_envelope");
    kinds.push("produce_failed");
    kinds.push("unattributed");
    kinds
}

/// What became of one input message: the `result` label of `cwmp_ingest_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageResult {
    /// An EventRecord was produced.
    Record,
    /// The input went to the dead-letter topic.
    Dlq,
    /// A CWMP message that is not an Inform.
    Skipped,
}

impl MessageResult {
    pub const ALL: [MessageResult; 3] = [
        MessageResult::Record,
        MessageResult::Dlq,
        MessageResult::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageResult::Record => "record",
            MessageResult::Dlq => "dlq",
            MessageResult::Skipped => "skipped",
        }
    }
}

pub use crate::kafka::transaction::TxnOutcome;

#[derive(Clone, Debug)]
pub struct IngestMetrics {
    pub registry: Registry,
    messages: IntCounterVec,
    events: IntCounterVec,
    errors: IntCounterVec,
    skipped: IntCounterVec,
    warnings: IntCounterVec,
    boots: IntCounterVec,
    bytes_in: IntCounter,
    extract_seconds: Histogram,
    ack_latency_seconds: Histogram,
    pub producer_queue: IntGauge,
    pub in_flight: IntGauge,
    transactions: IntCounterVec,
    transfers: IntCounterVec,
    session_lookups: IntCounterVec,
    session_entries: IntGauge,
    session_evictions: IntCounter,
    /// Rebalances, lag and assigned partitions of the input consumer.
    pub consumer: ConsumerMetrics,
}

impl IngestMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let kinds: Vec<&str> = cwmp_record::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        let warnings: Vec<&str> = cwmp_inform::Warning::ALL
            .iter()
            .map(|w| w.as_str())
            .collect();
        let results: Vec<&str> = MessageResult::ALL.iter().map(|r| r.as_str()).collect();
        let causes: Vec<&str> = cwmp_record::BootCause::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        let outcomes: Vec<&str> = TxnOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let transfer_results: Vec<&str> = cwmp_record::TransferResult::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        let lookups: Vec<&str> = super::sessions::Lookup::ALL
            .iter()
            .map(|l| l.as_str())
            .collect();
        IngestMetrics {
            messages: counter_vec(
                &registry,
                "cwmp_ingest_messages_total",
                "Input messages by result: record (an EventRecord or TransferRecord was produced), dlq (sent to the dead-letter topic), skipped (a CWMP message of an RPC ingest does not read).",
                "result",
                &results,
            ),
            events: counter_vec(&registry, "cwmp_ingest_events_total", "Inform event codes by kind.", "kind", &kinds),
            errors: counter_vec(
                &registry,
                "cwmp_ingest_errors_total",
                "Messages sent to the dead-letter topic, by error kind.",
                "kind",
                &error_kinds(),
            ),
            skipped: counter_vec(
                &registry,
                "cwmp_ingest_skipped_total",
                "Well-formed CWMP messages of RPCs ingest does not read (neither Inform nor a transfer result), by RPC name.",
                "rpc",
                KNOWN_RPCS,
            ),
            warnings: counter_vec(
                &registry,
                "cwmp_ingest_warnings_total",
                "Accepted quirks in Informs, by warning.",
                "warning",
                &warnings,
            ),
            boots: counter_vec(
                &registry,
                "cwmp_ingest_boots_total",
                "Informs reporting a boot or bootstrap, by boot cause: local (power, crash, button), acs_reboot, firmware_upgrade, factory_reset, bootstrap.",
                "cause",
                &causes,
            ),
            bytes_in: counter(&registry, "cwmp_ingest_input_bytes_total", "Bytes of input messages consumed."),
            extract_seconds: histogram(
                &registry,
                "cwmp_ingest_extract_seconds",
                "Time to extract one message and encode its record.",
                vec![1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2],
            ),
            ack_latency_seconds: histogram(
                &registry,
                "cwmp_ingest_ack_latency_seconds",
                "From consuming a message to the broker acknowledging its output.",
                prometheus::exponential_buckets(0.001, 2.0, 15).expect("buckets"),
            ),
            producer_queue: gauge(
                &registry,
                "cwmp_ingest_producer_queue_messages",
                "Messages waiting in the producer queue (librdkafka statistics).",
            ),
            in_flight: gauge(&registry, "cwmp_ingest_in_flight_messages", "Input messages consumed but not yet acknowledged."),
            transactions: counter_vec(
                &registry,
                "cwmp_ingest_transactions_total",
                "Exactly-once transactions by outcome.",
                "outcome",
                &outcomes,
            ),
            transfers: counter_vec(
                &registry,
                "cwmp_ingest_transfers_total",
                "TransferComplete and AutonomousTransferComplete results written to the output, by outcome: success (FaultCode 0), failure, unknown (no FaultCode). Unattributed ones count as dead letters (kind unattributed).",
                "result",
                &transfer_results,
            ),
            session_lookups: counter_vec(
                &registry,
                "cwmp_ingest_session_lookups_total",
                "Transfers looked up in the session table by their session key: hit, miss (no Inform of the session seen), expired (older than ingest.sessions.max_age_ms).",
                "result",
                &lookups,
            ),
            session_entries: gauge(
                &registry,
                "cwmp_ingest_sessions",
                "Sessions in the table that attributes transfers to devices.",
            ),
            session_evictions: counter(
                &registry,
                "cwmp_ingest_session_evictions_total",
                "Sessions evicted from the table because it was full (ingest.sessions.max_entries).",
            ),
            consumer: ConsumerMetrics::register(
                &registry,
                "cwmp_ingest",
                "Input partitions assigned to this instance.",
            ),
            registry,
        }
    }

    /// Counts one input whose output was acknowledged (or committed).
    pub(crate) fn count(&self, processed: &Processed) {
        self.bytes_in
            .inc_by(rdkafka::Message::payload(&processed.message).map_or(0, |p| p.len()) as u64);
        self.extract_seconds.observe(processed.extract_seconds);
        self.ack_latency_seconds
            .observe(processed.received.elapsed().as_secs_f64());
        let result = match &processed.outcome {
            Outcome::Record {
                kinds,
                boot_cause,
                warnings,
                transfer,
                ..
            } => {
                if let Some(result) = transfer {
                    self.transfers.with_label_values(&[result.as_str()]).inc();
                }
                if let Some(cause) = boot_cause {
                    self.boots.with_label_values(&[cause.as_str()]).inc();
                }
                for kind in kinds {
                    self.events.with_label_values(&[kind.as_str()]).inc();
                }
                for warning in warnings.iter() {
                    self.warnings.with_label_values(&[warning.as_str()]).inc();
                }
                MessageResult::Record
            }
            Outcome::Dlq { kind, .. } => {
                self.errors.with_label_values(&[kind]).inc();
                MessageResult::Dlq
            }
            Outcome::Skipped { rpc } => {
                self.skipped.with_label_values(&[rpc]).inc();
                MessageResult::Skipped
            }
            // Not reached: produce_outcome dead-letters a transfer that missed
            // attribution before anything is counted; counted as that dead letter.
            Outcome::Transfer(_) => {
                self.errors.with_label_values(&["unattributed"]).inc();
                MessageResult::Dlq
            }
        };
        self.messages.with_label_values(&[result.as_str()]).inc();
    }

    /// Counts one transaction.
    pub(crate) fn session_lookup(&self, lookup: super::sessions::Lookup) {
        self.session_lookups
            .with_label_values(&[lookup.as_str()])
            .inc();
    }

    pub(crate) fn sessions(&self, entries: usize, evictions: u64) {
        self.session_entries.set(entries as i64);
        let counted = self.session_evictions.get();
        if evictions > counted {
            self.session_evictions.inc_by(evictions - counted);
        }
    }

    /// Transfer results written, by outcome.
    pub fn transfers(&self, result: cwmp_record::TransferResult) -> u64 {
        self.transfers.with_label_values(&[result.as_str()]).get()
    }

    pub(crate) fn transaction(&self, outcome: TxnOutcome) {
        self.transactions
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Input messages counted with `result` so far.
    pub fn messages(&self, result: MessageResult) -> u64 {
        self.messages.with_label_values(&[result.as_str()]).get()
    }

    /// Input messages handled so far, whatever became of them.
    pub fn handled(&self) -> u64 {
        MessageResult::ALL.iter().map(|&r| self.messages(r)).sum()
    }

    /// Transactions that ended with `outcome` so far.
    pub fn transactions(&self, outcome: TxnOutcome) -> u64 {
        self.transactions
            .with_label_values(&[outcome.as_str()])
            .get()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        crate::metrics::render(&self.registry)
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = IngestMetrics::new();
        m.bytes_in.inc();
        let text = m.render();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let mut parts = line.split_whitespace().skip(2);
            let name = parts.next().expect("name");
            let kind = parts.next().expect("type");
            assert!(name.starts_with("cwmp_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        assert!(text.contains("cwmp_ingest_messages_total{result=\"dlq\"} 0"));
        assert!(text.contains("cwmp_ingest_events_total{kind=\"boot\"} 0"));
        assert!(text.contains("cwmp_ingest_rebalances_total{kind=\"revoke\"} 0"));
        assert!(text.contains("cwmp_ingest_boots_total{cause=\"firmware_upgrade\"} 0"));
    }
}
