//! `ingest`: the ingest stage through a broker (librdkafka's mock cluster, in
//! process) against a pass-through with the same clients and settings that
//! republishes each input unchanged. Both run the same at-least-once pipeline; only
//! the per-message transform differs, so the ratio is the cost of extraction and
//! record encoding on the Kafka path.
//!
//! Input is fed live by a producer in the same process, at most `FEED_AHEAD`
//! messages ahead of what the pipeline has acknowledged: the mock broker keeps only
//! 5 MiB per partition and silently drops older messages, so a pre-filled topic
//! could not hold a long run. The feeder costs both runs alike.
//!
//! Run: `cargo bench -p cwmp-benches --bench ingest` (`INGEST_BENCH_MESSAGES` sets the
//! input size, default 60,000; the RSS check uses 4 times as many).
//! Under `cargo test` (no `--bench`), it runs one tiny round as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cwmp_stream::config::Config;
use cwmp_stream::health::Health;
use cwmp_stream::ingest::at_least_once;
use cwmp_stream::ingest::process::Outcome;
use cwmp_stream::metrics::IngestMetrics;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

/// Partitions of the bench topics: a typical raw topic.
const PARTITIONS: i32 = 8;
/// How far the feeder may run ahead of acknowledged output: about 2.7 MiB per
/// partition of the bench inputs, under the mock broker's 5 MiB retention.
const FEED_AHEAD: usize = 3_000;

/// Republishes the input bytes under the input key: the Kafka path with no extraction.
fn passthrough(message: &OwnedMessage, _: &cwmp_inform::Options) -> Outcome {
    Outcome::Record {
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        payload: message.payload().unwrap_or_default().to_vec(),
        event_time_ms: message.timestamp().to_millis(),
        kinds: Vec::new(),
        warnings: Vec::new(),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn acknowledged(m: &IngestMetrics) -> usize {
    ["record", "dlq", "skipped"]
        .iter()
        .map(|r| m.messages.with_label_values(&[r]).get())
        .sum::<u64>() as usize
}

/// Produces `n` bench inputs to `topic`, never more than [`FEED_AHEAD`] ahead of
/// what the pipeline has acknowledged.
async fn feed(bootstrap: String, topic: String, n: usize, metrics: IngestMetrics) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let inputs = cwmp_benches::inputs();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        while i >= acknowledged(&metrics) + FEED_AHEAD {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let body = inputs[i % inputs.len()].bytes;
        let key = format!("session-{i}");
        let mut record = FutureRecord::to(&topic).key(key.as_bytes()).payload(body);
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        while pending.len() > 10_000 {
            if let Some(f) = pending.pop_front() {
                f.await.expect("delivery").expect("delivered");
            }
        }
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Feeds `n` messages through one pipeline run; returns messages per second,
/// timed from the first acknowledgement (so the group join is not counted).
async fn run_once(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    n: usize,
    name: &str,
    transform: cwmp_stream::ingest::Transform,
) -> f64 {
    let raw = format!("{name}.raw");
    let out = format!("{name}.out");
    for topic in [&raw, &out] {
        mock.create_topic(topic, PARTITIONS, 1).expect("topic");
    }
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config.ingest.input_topic = raw.clone();
    config.ingest.output_topic = out.clone();
    config.ingest.dlq_topic = format!("{out}.dlq");
    config.ingest.group_id = name.to_owned();
    config.metrics.listen = String::new();
    // The mock broker holds an empty fetch for the whole fetch.wait.max.ms (500 ms by
    // default); a live-fed run keeps catching up with the feeder, so wait less.
    config
        .kafka
        .consumer
        .insert("fetch.wait.max.ms".into(), "10".into());
    let metrics = IngestMetrics::new();
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let (stop_tx, stop) = watch::channel(false);
    let m = metrics.clone();
    let start = Instant::now();
    let task =
        tokio::spawn(
            async move { at_least_once::run_with(&config, m, health, stop, transform).await },
        );
    let feeder = tokio::spawn(feed(mock.bootstrap_servers(), raw, n, metrics.clone()));
    let wait_until = |target: usize| {
        let metrics = metrics.clone();
        let task = &task;
        async move {
            while acknowledged(&metrics) < target {
                assert!(
                    !task.is_finished(),
                    "{name} stopped early at {} of {n}",
                    acknowledged(&metrics)
                );
                assert!(
                    start.elapsed() < Duration::from_secs(600),
                    "{name} stalled at {} of {n}",
                    acknowledged(&metrics)
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    wait_until(1).await;
    let first = Instant::now();
    let first_done = acknowledged(&metrics);
    wait_until(n).await;
    let elapsed = first.elapsed().as_secs_f64();
    assert_eq!(
        acknowledged(&metrics),
        n,
        "{name}: every input acknowledged once"
    );
    feeder.await.expect("feeder");
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("clean run");
    (n - first_done) as f64 / elapsed
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
        let mut ingest = Vec::new();
        let mut pass = Vec::new();
        // Alternate the two so that machine noise falls on both alike.
        for round in 0..rounds {
            pass.push(run_once(&mock, n, &format!("passthrough-{round}"), passthrough).await);
            ingest.push(
                run_once(&mock, n, &format!("ingest-{round}"), cwmp_stream::ingest::process::process).await,
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
            let rate = run_once(&mock, 4 * n, "ingest-big", cwmp_stream::ingest::process::process).await;
            let after = peak_rss_kib();
            println!(
                "ingest/rss: peak {before} KiB after the {n}-message runs, {after} KiB after a {}-message run ({rate:.0} msg/s)",
                4 * n
            );
        }
    });
}
