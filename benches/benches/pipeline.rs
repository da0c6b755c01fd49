//! `pipeline`: informs/s end to end — simulate → ingest → detect (worker and fleet
//! stage) through the embedded broker, exactly what `cwmp-stream demo` runs —
//! against ingest alone and a pass-through over the same simulated Informs, in one
//! run; and the peak resident set.
//!
//! All three use the demo's topic shapes (one raw partition, eight event
//! partitions), a one-broker mock cluster, and a feeder at most 1,500 messages ahead
//! of the pipeline; each rate is informs over the time from the first Inform
//! produced to the last one through its last stage.
//!
//! Run: `cargo bench -p cwmp-benches --bench pipeline` (`PIPELINE_BENCH_DEVICES`,
//! default 20,000 devices over 4 simulated hours: about 88,000 Informs).
//! Under `cargo test` (no `--bench`), one small round as a smoke test.

use std::sync::Arc;

use cwmp_benches::live::{passthrough, peak_rss_kib, run_once, Clock, Input, Inputs};
use cwmp_sim::{SimConfig, Simulator};
use cwmp_stream::demo::{default_scenarios, DemoOptions};
use cwmp_stream::input::{H_ACS, H_CONTENT_TYPE, H_RECEIVED_AT, H_REMOTE_ADDR};
use rdkafka::mocking::MockCluster;

const HOUR: i64 = 3_600_000;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let devices: usize = if benching {
        std::env::var("PIPELINE_BENCH_DEVICES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
    } else {
        500
    };
    let duration_ms = if benching { 4 * HOUR } else { 2 * HOUR };
    let rounds = if benching { 3 } else { 1 };
    let sim = Simulator::new(SimConfig {
        devices,
        duration_ms,
        scenarios: default_scenarios(),
        ..SimConfig::default()
    });
    let inputs: Arc<Vec<Input>> = Arc::new(
        sim.map(|m| {
            let headers = vec![
                (H_RECEIVED_AT, m.received_at_ms.to_string()),
                (H_ACS, m.acs.clone()),
                (H_REMOTE_ADDR, m.remote_addr.clone()),
                (H_CONTENT_TYPE, m.content_type.to_owned()),
            ];
            (m.key, m.body, headers)
        })
        .collect(),
    );
    let n = inputs.len();
    let inputs = {
        let all = inputs.clone();
        Inputs {
            len: n,
            make: Arc::new(move |i| all[i].clone()),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut pass, mut ingest, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        let mock = MockCluster::new(1).expect("mock cluster");
        for round in 0..rounds {
            pass.push(
                run_once(
                    &mock,
                    inputs.clone(),
                    &format!("pass-{round}"),
                    1,
                    1_500,
                    Clock::FeedStart,
                    passthrough,
                )
                .await,
            );
            ingest.push(
                run_once(
                    &mock,
                    inputs.clone(),
                    &format!("ingest-{round}"),
                    1,
                    1_500,
                    Clock::FeedStart,
                    cwmp_stream::ingest::process::process,
                )
                .await,
            );
            let report = cwmp_stream::demo::run(DemoOptions {
                devices,
                duration_ms,
                metrics_listen: "127.0.0.1:0".into(),
                ..DemoOptions::default()
            })
            .await
            .expect("demo");
            assert_eq!(
                report.simulated as usize, n,
                "the demo simulates the same Informs"
            );
            assert!(report.unexpected().is_empty());
            assert_eq!(report.unreadable_alerts, 0);
            e2e.push(report.detected as f64 / report.detect_seconds);
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (p, i, e) = (median(&mut pass), median(&mut ingest), median(&mut e2e));
    println!(
        "pipeline/{n}_informs: end to end {e:.0}/s, ingest only {i:.0}/s, pass-through {p:.0}/s; end to end = {:.2}x ingest, {:.2}x pass-through (median of {rounds}; rounds e2e {e2e:.0?}, ingest {ingest:.0?}, pass {pass:.0?})",
        e / i,
        e / p
    );
    println!(
        "pipeline/rss: peak {} KiB for the whole run (embedded broker included)",
        peak_rss_kib()
    );
}
