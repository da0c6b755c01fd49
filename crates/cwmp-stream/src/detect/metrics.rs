//! Prometheus metrics of the detect service (worker and fleet stage, `cwmp_detect_*`).
//!
//! Same conventions as ingest: label values from fixed sets (result, alert kind,
//! state, message type, stage) — never a device — each written once, in the typed
//! methods below.

use std::collections::BTreeMap;

use cwmp_detect::aggregate::{Measure, MeasureKind, Partial};
use cwmp_detect::{Alert, AlertKind, AlertState, Scope, Verdict};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::kafka::ConsumerMetrics;
use crate::metrics::{counter, counter_vec, gauge};

/// What became of one EventRecord: the `result` label of `cwmp_detect_records_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// What the worker decided.
    Judged(Verdict),
    /// Not a usable EventRecord.
    Invalid,
}

impl RecordResult {
    pub const ALL: [RecordResult; 4] = [
        RecordResult::Judged(Verdict::Accepted),
        RecordResult::Judged(Verdict::Late),
        RecordResult::Judged(Verdict::Duplicate),
        RecordResult::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Judged(verdict) => verdict.as_str(),
            RecordResult::Invalid => "invalid",
        }
    }
}

/// Aggregate traffic: the `type` label of `cwmp_detect_aggregates_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateTraffic {
    PartialSent,
    CloseSent,
    PartialReceived,
    CloseReceived,
    InvalidReceived,
}

impl AggregateTraffic {
    pub const ALL: [AggregateTraffic; 5] = [
        AggregateTraffic::PartialSent,
        AggregateTraffic::CloseSent,
        AggregateTraffic::PartialReceived,
        AggregateTraffic::CloseReceived,
        AggregateTraffic::InvalidReceived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AggregateTraffic::PartialSent => "partial_sent",
            AggregateTraffic::CloseSent => "close_sent",
            AggregateTraffic::PartialReceived => "partial_received",
            AggregateTraffic::CloseReceived => "close_received",
            AggregateTraffic::InvalidReceived => "invalid_received",
        }
    }
}

/// The two stages of detect: the `stage` label of `cwmp_detect_active_alerts` (the
/// stage that decides an alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectStage {
    /// Per-device alerts.
    Worker,
    /// Fleet alerts.
    Fleet,
}

impl DetectStage {
    pub const ALL: [DetectStage; 2] = [DetectStage::Worker, DetectStage::Fleet];

    pub fn as_str(self) -> &'static str {
        match self {
            DetectStage::Worker => "worker",
            DetectStage::Fleet => "fleet",
        }
    }
}

/// The `measure` label of `cwmp_detect_window_value`, per measure of a partial.
fn measure_label(kind: MeasureKind) -> &'static str {
    match kind {
        MeasureKind::Boot => "unsolicited_boot_devices",
        MeasureKind::AcsReboot => "acs_reboot_devices",
        MeasureKind::Bootstrap => "bootstrap_devices",
        MeasureKind::Wakeup => "wakeup_devices",
        MeasureKind::Retry => "retried_informs",
        MeasureKind::FirmwareUpgrade => "firmware_upgrade_devices",
    }
}

/// The value shown for a measure: distinct devices, except counts for retries.
fn measure_value(kind: MeasureKind, m: &Measure) -> u64 {
    match kind {
        MeasureKind::Retry => m.count,
        _ => m.devices,
    }
}

/// The scope kinds silence can be counted by: the bounded `scope` label values.
const SILENCE_SCOPES: [Scope; 5] = [
    Scope::Fleet,
    Scope::ProductClass,
    Scope::Acs,
    Scope::SoftwareVersion,
    Scope::Network,
];

#[derive(Clone, Debug)]
pub struct DetectMetrics {
    pub registry: Registry,
    records: IntCounterVec,
    alerts: IntCounterVec,
    active_alerts: IntGaugeVec,
    pub tracked_devices: IntGauge,
    pub cadence_devices: IntGauge,
    pub overdue_devices: IntGauge,
    silent_devices: IntGaugeVec,
    pub state_bytes: IntGauge,
    pub watermark_lag_seconds: IntGauge,
    aggregates: IntCounterVec,
    pub late_partials: IntCounter,
    pub duplicate_partials: IntCounter,
    transfers: IntCounterVec,
    pub campaigns: IntGauge,
    pub campaigns_overflow: IntCounter,
    pub producer_queue: IntGauge,
    window: IntGaugeVec,
    window_start_seconds: IntGauge,
    /// `detect.rules.window_ms`, so that dashboards turn window counts into rates.
    pub window_length_seconds: IntGauge,
    pub worker_consumer: ConsumerMetrics,
    pub fleet_consumer: ConsumerMetrics,
    pub state: StateMetrics,
}

/// Durable state: checkpoints written, restores, cold starts, per stage.
#[derive(Clone, Debug)]
pub struct StateMetrics {
    restore_seconds: HistogramVec,
    restored_bytes: IntCounterVec,
    checkpoints: IntCounterVec,
    checkpoint_bytes: IntCounterVec,
    chunks_written: IntCounterVec,
    state_size: IntGaugeVec,
    transactions: IntCounterVec,
    cold_starts: IntCounterVec,
    restoring: IntGaugeVec,
    since_checkpoint: IntGaugeVec,
}

impl StateMetrics {
    fn register(registry: &Registry) -> Self {
        let stages: Vec<&str> = DetectStage::ALL.iter().map(|s| s.as_str()).collect();
        let by_stage = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["stage"]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            for s in &stages {
                c.with_label_values(&[s]);
            }
            c
        };
        let gauges = |name: &str, help: &str| {
            let g = gauge_vec(registry, name, help, &["stage"]);
            for s in &stages {
                g.with_label_values(&[s]);
            }
            g
        };
        let restore_seconds = HistogramVec::new(
            HistogramOpts::new(
                "cwmp_detect_state_restore_seconds",
                "Time to restore one partition's detector state on assignment (committed offset, state read, decode).",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(restore_seconds.clone()))
            .expect("unique metric");
        let cold_starts = IntCounterVec::new(
            Opts::new(
                "cwmp_detect_state_cold_starts_total",
                "Partitions assigned without restored state, by reason: empty (nothing stored yet), memory (detect.state = memory), no_commit, offset_mismatch (no whole checkpoint at the committed offset), manifest, not_a_snapshot, version (state of another encoding version), kind, corrupt, config.",
            ),
            &["stage", "reason"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(cold_starts.clone()))
            .expect("unique metric");
        let transactions = IntCounterVec::new(
            Opts::new(
                "cwmp_detect_transactions_total",
                "Exactly-once detect: transactions (outputs, checkpoint and input offsets) by outcome: committed, aborted (the partitions went back to their last committed checkpoint).",
            ),
            &["stage", "outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(transactions.clone()))
            .expect("unique metric");
        for s in &stages {
            for o in crate::kafka::transaction::TxnOutcome::ALL {
                transactions.with_label_values(&[s, o.as_str()]);
            }
        }
        for s in &stages {
            restore_seconds.with_label_values(&[s]);
            for r in super::state::ColdStart::ALL {
                cold_starts.with_label_values(&[s, r.as_str()]);
            }
        }
        StateMetrics {
            restore_seconds,
            restored_bytes: by_stage(
                "cwmp_detect_state_restored_bytes_total",
                "Bytes read from the state topics to restore partitions.",
            ),
            checkpoints: by_stage(
                "cwmp_detect_state_checkpoints_total",
                "Partition checkpoints written to the state topics and committed.",
            ),
            checkpoint_bytes: by_stage(
                "cwmp_detect_state_checkpoint_bytes_total",
                "Bytes written to the state topics (keys and values): only the chunks of state that changed since the last checkpoint, the deletions of those no checkpoint needs, and manifests.",
            ),
            chunks_written: by_stage(
                "cwmp_detect_state_chunks_written_total",
                "Content-defined chunks of detector state written to the state topics (a chunk the partition holds already is not written again).",
            ),
            state_size: gauges(
                "cwmp_detect_state_size_bytes",
                "Encoded detector state of this instance's partitions at their last checkpoint (what a restore reads, before compaction leftovers).",
            ),
            cold_starts,
            transactions,
            restoring: gauges(
                "cwmp_detect_state_restoring_partitions",
                "Assigned partitions whose state is being restored (none of their records is processed until it is).",
            ),
            since_checkpoint: gauges(
                "cwmp_detect_state_uncheckpointed_records",
                "Inputs processed since their partition's last checkpoint: what a kill now would make the next owner replay (the changelog lag).",
            ),
        }
    }

    pub fn restored(&self, stage: DetectStage, bytes: u64, took: std::time::Duration) {
        let s = stage.as_str();
        self.restore_seconds
            .with_label_values(&[s])
            .observe(took.as_secs_f64());
        self.restored_bytes.with_label_values(&[s]).inc_by(bytes);
    }

    /// A checkpoint's records were delivered.
    pub fn written(&self, stage: DetectStage, bytes: usize, chunks: usize) {
        let s = stage.as_str();
        self.checkpoint_bytes
            .with_label_values(&[s])
            .inc_by(bytes as u64);
        self.chunks_written
            .with_label_values(&[s])
            .inc_by(chunks as u64);
    }

    pub fn transaction(&self, stage: DetectStage, outcome: crate::kafka::transaction::TxnOutcome) {
        self.transactions
            .with_label_values(&[stage.as_str(), outcome.as_str()])
            .inc();
    }

    /// Transactions of `stage` that ended with `outcome`.
    pub fn transactions(
        &self,
        stage: DetectStage,
        outcome: crate::kafka::transaction::TxnOutcome,
    ) -> u64 {
        self.transactions
            .with_label_values(&[stage.as_str(), outcome.as_str()])
            .get()
    }

    /// A checkpoint's offset was committed.
    pub fn checkpointed(&self, stage: DetectStage) {
        self.checkpoints.with_label_values(&[stage.as_str()]).inc();
    }

    pub fn set_state_bytes(&self, stage: DetectStage, bytes: u64) {
        self.state_size
            .with_label_values(&[stage.as_str()])
            .set(bytes as i64);
    }

    pub fn cold_start(&self, stage: DetectStage, reason: super::state::ColdStart) {
        self.cold_starts
            .with_label_values(&[stage.as_str(), reason.as_str()])
            .inc();
    }

    /// Cold starts of `stage` so far, with `reason`.
    pub fn cold_starts(&self, stage: DetectStage, reason: super::state::ColdStart) -> u64 {
        self.cold_starts
            .with_label_values(&[stage.as_str(), reason.as_str()])
            .get()
    }

    /// Checkpoints of `stage` written so far.
    pub fn checkpoints(&self, stage: DetectStage) -> u64 {
        self.checkpoints.with_label_values(&[stage.as_str()]).get()
    }

    /// Bytes of the checkpoints of `stage` written so far.
    pub fn checkpoint_bytes(&self, stage: DetectStage) -> u64 {
        self.checkpoint_bytes
            .with_label_values(&[stage.as_str()])
            .get()
    }

    pub fn set_restoring(&self, stage: DetectStage, partitions: usize) {
        self.restoring
            .with_label_values(&[stage.as_str()])
            .set(partitions as i64);
    }

    pub fn set_since_checkpoint(&self, stage: DetectStage, inputs: u64) {
        self.since_checkpoint
            .with_label_values(&[stage.as_str()])
            .set(inputs as i64);
    }
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl DetectMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let alerts = IntCounterVec::new(
            Opts::new(
                "cwmp_detect_alerts_total",
                "Alert transitions by kind and state.",
            ),
            &["kind", "state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(alerts.clone()))
            .expect("unique metric");
        for k in AlertKind::ALL {
            for s in AlertState::ALL {
                alerts.with_label_values(&[k.as_str(), s.as_str()]);
            }
        }
        let active_alerts = gauge_vec(
            &registry,
            "cwmp_detect_active_alerts",
            "Open alerts by kind and the stage that decides them (worker: per-device alerts; fleet: fleet alerts).",
            &["kind", "stage"],
        );
        for k in AlertKind::ALL {
            for stage in DetectStage::ALL {
                active_alerts.with_label_values(&[k.as_str(), stage.as_str()]);
            }
        }
        let measures = [
            "informs",
            measure_label(MeasureKind::Boot),
            measure_label(MeasureKind::AcsReboot),
            measure_label(MeasureKind::Bootstrap),
            "wakeup_events",
            measure_label(MeasureKind::Wakeup),
            measure_label(MeasureKind::Retry),
            measure_label(MeasureKind::FirmwareUpgrade),
        ];
        let results: Vec<&str> = RecordResult::ALL.iter().map(|r| r.as_str()).collect();
        let transfers = IntCounterVec::new(
            Opts::new(
                "cwmp_detect_transfers_total",
                "Transfer results (TransferComplete, AutonomousTransferComplete) accepted by the workers, by result (success, failure, unknown) and fault class (none, 9001-9032, vendor for 9800-9899, other, unknown). Never by command key.",
            ),
            &["result", "fault"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(transfers.clone()))
            .expect("unique metric");
        for class in cwmp_record::fault_classes() {
            transfers.with_label_values(&[transfer_result(class), class]);
        }
        let traffic: Vec<&str> = AggregateTraffic::ALL.iter().map(|t| t.as_str()).collect();
        DetectMetrics {
            window: gauge_vec(
                &registry,
                "cwmp_detect_window_value",
                &format!("The fleet stage's last decided window, per measure: {}. Scopes fleet (key all) and product_class (the {TOP_PRODUCT_CLASSES} largest by informs, the rest summed as key other).", measures.join(", ")),
                &["measure", "scope", "key"],
            ),
            window_start_seconds: gauge(
                &registry,
                "cwmp_detect_window_start_seconds",
                "Event-time start of the window cwmp_detect_window_value describes (Unix seconds).",
            ),
            window_length_seconds: gauge(
                &registry,
                "cwmp_detect_window_length_seconds",
                "Length of the fleet windows (detect.rules.window_ms), set by the fleet stage.",
            ),
            records: counter_vec(
                &registry,
                "cwmp_detect_records_total",
                "EventRecords by result: accepted, late (older than the watermark; counted, not folded in), duplicate (a redelivery), invalid (not a usable EventRecord).",
                "result",
                &results,
            ),
            alerts,
            active_alerts,
            tracked_devices: gauge(&registry, "cwmp_detect_tracked_devices", "Devices with detector state on this worker."),
            cadence_devices: gauge(
                &registry,
                "cwmp_detect_cadence_devices",
                "Devices on this worker with a known inform cadence waiting for their next inform (inform_silence watches them; the overdue ones are in cwmp_detect_overdue_devices).",
            ),
            overdue_devices: gauge(
                &registry,
                "cwmp_detect_overdue_devices",
                "Devices on this worker whose informs are overdue now (their deadline passed in event time without one).",
            ),
            silent_devices: {
                let g = gauge_vec(
                    &registry,
                    "cwmp_detect_silent_devices",
                    "Devices still silent in the open inform_silence alerts, by scope kind (fleet stage).",
                    &["scope"],
                );
                for scope in SILENCE_SCOPES {
                    g.with_label_values(&[scope.as_str()]);
                }
                g
            },
            state_bytes: gauge(&registry, "cwmp_detect_state_bytes", "Bytes of detector state on this worker (device tables and open windows)."),
            watermark_lag_seconds: gauge(
                &registry,
                "cwmp_detect_watermark_lag_seconds",
                "Wall-clock time minus the worker's event-time watermark.",
            ),
            aggregates: counter_vec(
                &registry,
                "cwmp_detect_aggregates_total",
                "Partial-aggregate messages by type and direction.",
                "type",
                &traffic,
            ),
            late_partials: counter(
                &registry,
                "cwmp_detect_late_partials_total",
                "Partial aggregates for windows the fleet stage had already decided.",
            ),
            duplicate_partials: counter(
                &registry,
                "cwmp_detect_duplicate_partials_total",
                "Partial aggregates a restored worker sent again (already merged; dropped).",
            ),
            transfers,
            campaigns: gauge(
                &registry,
                "cwmp_detect_campaigns",
                "Firmware campaigns (command key within a product class) the fleet stage follows.",
            ),
            campaigns_overflow: counter(
                &registry,
                "cwmp_detect_campaigns_overflow_total",
                "Campaign results dropped because detect.rules.rollout_failure.max_campaigns campaigns were followed already.",
            ),
            producer_queue: gauge(
                &registry,
                "cwmp_detect_producer_queue_messages",
                "Messages waiting in the producer queue (librdkafka statistics).",
            ),
            worker_consumer: ConsumerMetrics::register(
                &registry,
                "cwmp_detect_worker",
                "Partitions assigned to this instance.",
            ),
            fleet_consumer: ConsumerMetrics::register(
                &registry,
                "cwmp_detect_fleet",
                "Partitions assigned to this instance.",
            ),
            state: StateMetrics::register(&registry),
            registry,
        }
    }

    pub fn render(&self) -> String {
        crate::metrics::render(&self.registry)
    }

    /// Counts one accepted transfer result.
    pub fn transfer(&self, code: Option<u32>) {
        let class = cwmp_record::fault_class(code);
        self.transfers
            .with_label_values(&[transfer_result(class), class])
            .inc();
    }

    /// Transfer results counted with `result` so far.
    pub fn transfers(&self, result: cwmp_record::TransferResult) -> u64 {
        cwmp_record::fault_classes()
            .filter(|c| transfer_result(c) == result.as_str())
            .map(|c| {
                self.transfers
                    .with_label_values(&[result.as_str(), c])
                    .get()
            })
            .sum()
    }

    /// Counts one EventRecord.
    pub fn record(&self, result: RecordResult) {
        self.records.with_label_values(&[result.as_str()]).inc();
    }

    /// EventRecords counted with `result` so far.
    pub fn records(&self, result: RecordResult) -> u64 {
        self.records.with_label_values(&[result.as_str()]).get()
    }

    /// EventRecords counted so far, whatever their result.
    pub fn records_seen(&self) -> u64 {
        RecordResult::ALL.iter().map(|&r| self.records(r)).sum()
    }

    /// Counts one published alert transition.
    pub fn alert(&self, alert: &Alert) {
        self.alerts
            .with_label_values(&[alert.kind.as_str(), alert.state.as_str()])
            .inc();
    }

    /// Counts aggregate traffic.
    pub fn aggregate(&self, traffic: AggregateTraffic) {
        self.aggregates.with_label_values(&[traffic.as_str()]).inc();
    }
}

impl Default for DetectMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Product classes shown by name in `cwmp_detect_window_value`; the rest are `other`.
pub const TOP_PRODUCT_CLASSES: usize = 20;

impl DetectMetrics {
    /// Sets `cwmp_detect_silent_devices` (every scope kind, 0 where nothing is silent).
    pub fn set_silent(&self, silent: &BTreeMap<Scope, u64>) {
        for scope in SILENCE_SCOPES {
            self.silent_devices
                .with_label_values(&[scope.as_str()])
                .set(silent.get(&scope).copied().unwrap_or(0) as i64);
        }
    }

    /// Sets `cwmp_detect_active_alerts` for one stage.
    pub fn set_active(&self, stage: DetectStage, active: &BTreeMap<AlertKind, u64>) {
        for kind in AlertKind::ALL {
            self.active_alerts
                .with_label_values(&[kind.as_str(), stage.as_str()])
                .set(active.get(&kind).copied().unwrap_or(0) as i64);
        }
    }

    /// Publishes the fleet stage's last decided window (bounded label values).
    pub fn set_window(&self, start_ms: i64, partials: &BTreeMap<(Scope, String), Partial>) {
        self.window.reset();
        self.window_start_seconds.set(start_ms / 1000);
        let mut classes: Vec<&Partial> = Vec::new();
        for ((scope, _), p) in partials {
            match scope {
                Scope::Fleet => self.set_measures(p, "fleet", "all"),
                Scope::ProductClass => classes.push(p),
                _ => {}
            }
        }
        classes.sort_by(|a, b| b.informs.cmp(&a.informs).then_with(|| a.key.cmp(&b.key)));
        let mut other = Partial::default();
        for (i, p) in classes.iter().enumerate() {
            if i < TOP_PRODUCT_CLASSES {
                self.set_measures(p, "product_class", &p.key);
            } else {
                other.merge(p);
            }
        }
        if classes.len() > TOP_PRODUCT_CLASSES {
            self.set_measures(&other, "product_class", "other");
        }
    }

    fn set_measures(&self, p: &Partial, scope: &str, key: &str) {
        let set = |measure: &str, value: u64| {
            self.window
                .with_label_values(&[measure, scope, key])
                .set(value as i64);
        };
        set("informs", p.informs);
        for kind in MeasureKind::ALL {
            set(measure_label(kind), measure_value(kind, p.measure(kind)));
        }
        set("wakeup_events", p.measure(MeasureKind::Wakeup).count);
    }
}

/// The result a fault class stands for.
fn transfer_result(class: &str) -> &'static str {
    match class {
        "none" => "success",
        "unknown" => "unknown",
        _ => "failure",
    }
}
