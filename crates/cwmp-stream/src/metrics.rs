//! Prometheus metrics of the ingest service.
//!
//! Names start `cwmp_`, use base units, counters end `_total`; every label value comes
//! from a fixed set (result, event kind, error kind, warning, RPC name), never a
//! device id. Label series are registered up front so dashboards see zeros, not gaps.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

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
    kinds
}

#[derive(Clone, Debug)]
pub struct IngestMetrics {
    pub registry: Registry,
    pub messages: IntCounterVec,
    pub events: IntCounterVec,
    pub errors: IntCounterVec,
    pub skipped: IntCounterVec,
    pub warnings: IntCounterVec,
    pub bytes_in: IntCounter,
    pub extract_seconds: Histogram,
    pub ack_latency_seconds: Histogram,
    pub assigned_partitions: IntGauge,
    pub consumer_lag: IntGauge,
    pub producer_queue: IntGauge,
    pub in_flight: IntGauge,
    pub transactions: IntCounterVec,
    pub rebalances: IntCounterVec,
}

pub(crate) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    for v in values {
        c.with_label_values(&[v]);
    }
    c
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

pub(crate) fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
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
        let bytes_in = IntCounter::new(
            "cwmp_ingest_input_bytes_total",
            "Bytes of input messages consumed.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(bytes_in.clone()))
            .expect("unique metric");
        IngestMetrics {
            messages: counter_vec(
                &registry,
                "cwmp_ingest_messages_total",
                "Input messages by result: record (an EventRecord was produced), dlq (sent to the dead-letter topic), skipped (a CWMP message that is not an Inform).",
                "result",
                &["record", "dlq", "skipped"],
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
                "Well-formed CWMP messages that are not Informs, by RPC name.",
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
            bytes_in,
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
            assigned_partitions: gauge(&registry, "cwmp_ingest_assigned_partitions", "Input partitions assigned to this instance."),
            consumer_lag: gauge(
                &registry,
                "cwmp_ingest_consumer_lag_messages",
                "Messages behind the end of the assigned input partitions (librdkafka statistics).",
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
                &["committed", "aborted"],
            ),
            rebalances: counter_vec(
                &registry,
                "cwmp_ingest_rebalances_total",
                "Consumer group rebalances by kind.",
                "kind",
                &["assign", "revoke", "error"],
            ),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
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
    }
}
