//! `ingest`: the ingest stage through a broker (librdkafka's mock cluster, in
//! process) against a pass-through with the same clients and settings that
//! republishes each input unchanged. Both run the same at-least-once pipeline; only
//! the per-message transform differs, so the ratio is the cost of extraction and
//! record encoding on the Kafka path. Input is fed live (see `cwmp_benches::live`).
//!
//! Run: `cargo bench -p cwmp-benches --bench ingest` (`INGEST_BENCH_MESSAGES` sets the
//! input size, default 60,000; the RSS check uses 4 times as many).
//! Under `cargo test` (no `--bench`), it runs one tiny round as a smoke test.

use std::sync::Arc;

use cwmp_benches::live::{passthrough, peak_rss_kib, run_once, Clock, Inputs};
use rdkafka::mocking::MockCluster;

/// Partitions of the raw topic: a typical deployment.
const PARTITIONS: i32 = 8;
/// About 2.7 MiB per partition of the bench inputs, under the mock broker's 5 MiB.
const FEED_AHEAD: usize = 3_000;

/// The three bench Informs in turn, made as the feeder asks for them.
fn inputs(n: usize) -> Inputs {
    let bodies = cwmp_benches::inputs();
    Inputs {
        len: n,
        make: Arc::new(move |i| {
            (
                format!("session-{i}"),
                bodies[i % bodies.len()].bytes.to_vec(),
                Vec::new(),
            )
        }),
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = if benching {
        std::env::var("INGEST_BENCH_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60_000)
    } else {
        300
    };
    let rounds = if benching { 3 } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mock = MockCluster::new(3).expect("mock cluster");
        let input = inputs(n);
        let mut ingest = Vec::new();
        let mut pass = Vec::new();
        // Alternate the two so that machine noise falls on both alike.
        for round in 0..rounds {
            pass.push(
                run_once(&mock, input.clone(), &format!("passthrough-{round}"), PARTITIONS, FEED_AHEAD, Clock::FirstAck, passthrough).await,
            );
            ingest.push(
                run_once(&mock, input.clone(), &format!("ingest-{round}"), PARTITIONS, FEED_AHEAD, Clock::FirstAck, cwmp_stream::ingest::process::process).await,
            );
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (i, p) = (median(&mut ingest), median(&mut pass));
        println!(
            "ingest/{n}_messages: ingest {i:.0} msg/s, pass-through {p:.0} msg/s, ratio {:.2} (median of {rounds}; all rounds: ingest {ingest:.0?}, pass-through {pass:.0?})",
            i / p
        );
        if benching {
            // Peak RSS as the input grows 4x: the pipeline holds at most max_in_flight
            // messages and the mock broker at most 5 MiB per partition.
            let before = peak_rss_kib();
            let rate = run_once(&mock, inputs(4 * n), "ingest-big", PARTITIONS, FEED_AHEAD, Clock::FirstAck, cwmp_stream::ingest::process::process).await;
            let after = peak_rss_kib();
            println!(
                "ingest/rss: peak {before} KiB after the {n}-message runs, {after} KiB after a {}-message run ({rate:.0} msg/s)",
                4 * n
            );
        }
    });
}
