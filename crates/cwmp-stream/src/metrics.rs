//! Prometheus conventions and registration helpers shared by the services.
//!
//! Names start `cwmp_`, use base units, counters end `_total`; every label value comes
//! from a fixed set, never a device id. Label series are registered up front so
//! dashboards see zeros, not gaps. Each service keeps its metrics beside its code
//! ([`crate::ingest::IngestMetrics`], [`crate::detect::DetectMetrics`]).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// A counter with one label, its series registered for every value in `values`.
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

pub(crate) fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
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

/// Metrics of the process rather than of a service, rendered once per `/metrics`
/// whatever runs in the process (the demo runs ingest and detect together):
/// `cwmp_build_info`, `cwmp_log_suppressed_total` and, on Linux, the standard `process_*` collector (CPU, resident
/// memory, open files, start time — restarts show as a changed start time).
pub fn process_registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::new();
        let info = prometheus::IntGaugeVec::new(
            Opts::new(
                "cwmp_build_info",
                "Always 1; the labels say which build runs (version of the cwmp-stream package).",
            ),
            &["version"],
        )
        .expect("valid metric");
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(info)).expect("unique metric");
        registry
            .register(Box::new(crate::kafka::quiet::limiter().counter().clone()))
            .expect("unique metric");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        registry
    })
}

/// The text exposition of [`process_registry`].
pub(crate) fn process_metrics() -> String {
    render(process_registry())
}

/// The text exposition of every metric in `registry`.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail for well-formed families.
    let _ = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out);
    out
}
