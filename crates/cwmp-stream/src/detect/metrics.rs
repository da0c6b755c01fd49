//! Prometheus metrics of the detect service (worker and fleet stage).
//!
//! Same conventions as ingest: `cwmp_` names, base units, `_total` counters, label
//! values from fixed sets (result, alert kind, state, message type) — never a device.

use cwmp_detect::{AlertKind, AlertState};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::kafka::ConsumerMetrics;
use crate::metrics::{counter_vec, gauge};

#[derive(Clone, Debug)]
pub struct DetectMetrics {
    pub registry: Registry,
    pub records: IntCounterVec,
    pub alerts: IntCounterVec,
    pub active_alerts: IntGaugeVec,
    pub tracked_devices: IntGauge,
    pub state_bytes: IntGauge,
    pub watermark_lag_seconds: IntGauge,
    pub aggregates: IntCounterVec,
    pub late_partials: prometheus::IntCounter,
    pub producer_queue: IntGauge,
    pub window: IntGaugeVec,
    pub window_start_seconds: IntGauge,
    pub worker_consumer: ConsumerMetrics,
    pub fleet_consumer: ConsumerMetrics,
}

fn consumer_metrics(registry: &Registry, stage: &str) -> ConsumerMetrics {
    ConsumerMetrics {
        rebalances: counter_vec(
            registry,
            &format!("cwmp_detect_{stage}_rebalances_total"),
            "Consumer group rebalances by kind.",
            "kind",
            &["assign", "revoke", "error"],
        ),
        consumer_lag: gauge(
            registry,
            &format!("cwmp_detect_{stage}_consumer_lag_messages"),
            "Messages behind the end of the assigned partitions (librdkafka statistics).",
        ),
        assigned_partitions: gauge(
            registry,
            &format!("cwmp_detect_{stage}_assigned_partitions"),
            "Partitions assigned to this instance.",
        ),
    }
}

impl DetectMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
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
        for k in &kinds {
            for s in AlertState::ALL {
                alerts.with_label_values(&[k, s.as_str()]);
            }
        }
        let active_alerts = IntGaugeVec::new(
            Opts::new(
                "cwmp_detect_active_alerts",
                "Open alerts by kind and the stage that decides them (worker: per-device alerts; fleet: fleet alerts).",
            ),
            &["kind", "stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(active_alerts.clone()))
            .expect("unique metric");
        for k in &kinds {
            for stage in ["worker", "fleet"] {
                active_alerts.with_label_values(&[k, stage]);
            }
        }
        let late_partials = prometheus::IntCounter::new(
            "cwmp_detect_late_partials_total",
            "Partial aggregates for windows the fleet stage had already decided.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(late_partials.clone()))
            .expect("unique metric");
        let window = IntGaugeVec::new(
            Opts::new(
                "cwmp_detect_window_value",
                "The fleet stage's last decided window, per measure: informs, unsolicited_boot_devices, acs_reboot_devices, bootstrap_devices, wakeup_events, wakeup_devices, retried_informs. Scopes fleet (key all) and product_class (the 20 largest by informs, the rest summed as key other).",
            ),
            &["measure", "scope", "key"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(window.clone()))
            .expect("unique metric");
        DetectMetrics {
            window,
            window_start_seconds: gauge(
                &registry,
                "cwmp_detect_window_start_seconds",
                "Event-time start of the window cwmp_detect_window_value describes (Unix seconds).",
            ),
            records: counter_vec(
                &registry,
                "cwmp_detect_records_total",
                "EventRecords by result: accepted, late (older than the watermark; counted, not folded in), duplicate (a redelivery), invalid (not a usable EventRecord).",
                "result",
                &["accepted", "late", "duplicate", "invalid"],
            ),
            alerts,
            active_alerts,
            tracked_devices: gauge(&registry, "cwmp_detect_tracked_devices", "Devices with detector state on this worker."),
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
                &["partial_sent", "close_sent", "partial_received", "close_received", "invalid_received"],
            ),
            late_partials,
            producer_queue: gauge(
                &registry,
                "cwmp_detect_producer_queue_messages",
                "Messages waiting in the producer queue (librdkafka statistics).",
            ),
            worker_consumer: consumer_metrics(&registry, "worker"),
            fleet_consumer: consumer_metrics(&registry, "fleet"),
            registry,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
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
    /// Sets `cwmp_detect_active_alerts` for one stage.
    pub fn set_active(&self, stage: &str, active: &std::collections::BTreeMap<AlertKind, u64>) {
        for kind in AlertKind::ALL {
            self.active_alerts
                .with_label_values(&[kind.as_str(), stage])
                .set(active.get(&kind).copied().unwrap_or(0) as i64);
        }
    }

    /// Publishes the fleet stage's last decided window (bounded label values).
    pub fn set_window(
        &self,
        start_ms: i64,
        partials: &std::collections::BTreeMap<
            (cwmp_detect::Scope, String),
            cwmp_detect::aggregate::Partial,
        >,
    ) {
        use cwmp_detect::aggregate::Partial;
        use cwmp_detect::Scope;
        fn measures(p: &Partial) -> [(&'static str, u64); 7] {
            [
                ("informs", p.informs),
                ("unsolicited_boot_devices", p.boot.devices),
                ("acs_reboot_devices", p.acs_reboot.devices),
                ("bootstrap_devices", p.bootstrap.devices),
                ("wakeup_events", p.wakeup.count),
                ("wakeup_devices", p.wakeup.devices),
                ("retried_informs", p.retry.count),
            ]
        }
        self.window.reset();
        self.window_start_seconds.set(start_ms / 1000);
        let mut classes: Vec<&Partial> = Vec::new();
        for ((scope, _), p) in partials {
            match scope {
                Scope::Fleet => {
                    for (m, v) in measures(p) {
                        self.window
                            .with_label_values(&[m, "fleet", "all"])
                            .set(v as i64);
                    }
                }
                Scope::ProductClass => classes.push(p),
                _ => {}
            }
        }
        classes.sort_by(|a, b| b.informs.cmp(&a.informs).then_with(|| a.key.cmp(&b.key)));
        let mut other = Partial::default();
        for (i, p) in classes.iter().enumerate() {
            if i < TOP_PRODUCT_CLASSES {
                for (m, v) in measures(p) {
                    self.window
                        .with_label_values(&[m, "product_class", &p.key])
                        .set(v as i64);
                }
            } else {
                other.merge(p);
            }
        }
        if classes.len() > TOP_PRODUCT_CLASSES {
            for (m, v) in measures(&other) {
                self.window
                    .with_label_values(&[m, "product_class", "other"])
                    .set(v as i64);
            }
        }
    }
}
