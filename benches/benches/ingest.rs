//! `ingest`: the ingest stage through a broker (librdkafka's mock cluster, in
//! process) against a pass-through with the same clients and settings that
//! republishes each input unchanged. Both run the same at-least-once pipeline; only
//! the per-message transform differs, so the ratio is the cost of extraction and
//! record encoding on the Kafka path.
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

async fn fill(bootstrap: &str, topic: &str, n: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let inputs = cwmp_benches::inputs();
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let body = inputs[i % inputs.len()].bytes;
        let key = format!("session-{i}");
        let mut record = FutureRecord::to(topic).key(key.as_bytes()).payload(body);
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Runs the pipeline over the whole input topic; returns messages per second.
async fn run_once(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    raw: &str,
    n: usize,
    round: usize,
    transform: cwmp_stream::ingest::Transform,
    name: &str,
) -> f64 {
    let out = format!("{name}-{round}.out");
    mock.create_topic(&out, 4, 1).expect("topic");
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config.ingest.input_topic = raw.to_owned();
    config.ingest.output_topic = out.clone();
    config.ingest.dlq_topic = format!("{out}.dlq");
    config.ingest.group_id = format!("{name}-{round}");
    config.metrics.listen = String::new();
    let metrics = IngestMetrics::new();
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let (stop_tx, stop) = watch::channel(false);
    let m = metrics.clone();
    let start = Instant::now();
    let task =
        tokio::spawn(
            async move { at_least_once::run_with(&config, m, health, stop, transform).await },
        );
    let done = |m: &IngestMetrics| {
        ["record", "dlq", "skipped"]
            .iter()
            .map(|r| m.messages.with_label_values(&[r]).get())
            .sum::<u64>() as usize
    };
    while done(&metrics) < n {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{name} stalled at {} of {n}",
            done(&metrics)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("clean run");
    n as f64 / elapsed
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
        let bootstrap = mock.bootstrap_servers();
        mock.create_topic("bench.raw", 4, 1).expect("topic");
        fill(&bootstrap, "bench.raw", n).await;
        let mut ingest = Vec::new();
        let mut pass = Vec::new();
        // Alternate the two so that machine noise falls on both alike.
        for round in 0..rounds {
            pass.push(run_once(&mock, "bench.raw", n, round, passthrough, "passthrough").await);
            ingest.push(run_once(&mock, "bench.raw", n, round, cwmp_stream::ingest::process::process, "ingest").await);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (i, p) = (median(&mut ingest), median(&mut pass));
        let rss_small = peak_rss_kib();
        println!("ingest/{n}_messages: ingest {i:.0} msg/s, pass-through {p:.0} msg/s, ratio {:.2} (median of {rounds})", i / p);
        if benching {
            // Peak RSS as the input grows 4x: the pipeline holds at most max_in_flight messages.
            let big = 4 * n;
            mock.create_topic("bench.raw.big", 4, 1).expect("topic");
            fill(&bootstrap, "bench.raw.big", big).await;
            let after_fill = peak_rss_kib();
            let rate = run_once(&mock, "bench.raw.big", big, 99, cwmp_stream::ingest::process::process, "ingest-big").await;
            let after_big = peak_rss_kib();
            println!(
                "ingest/rss: peak {rss_small} KiB after {n}-message runs; {after_fill} KiB after producing {big} more (mock broker holds them in this process); {after_big} KiB after ingesting them at {rate:.0} msg/s"
            );
        }
    });
}
