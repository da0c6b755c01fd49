//! A live-fed run of the ingest pipeline on librdkafka's mock cluster, shared by the
//! `ingest` and `pipeline` benches.
//!
//! Input is produced by a feeder in the same process, at most `ahead` messages in
//! front of what the pipeline has acknowledged: the mock broker keeps only 5 MiB per
//! partition and silently drops older messages, so a pre-filled topic could not hold
//! a long run. The feeder costs every run alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cwmp_stream::config::Config;
use cwmp_stream::health::Health;
use cwmp_stream::ingest::at_least_once;
use cwmp_stream::ingest::process::Outcome;
use cwmp_stream::ingest::IngestMetrics;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use tokio::sync::watch;

/// One input message: key, body, headers.
pub type Input = (String, Vec<u8>, Vec<(&'static str, String)>);

/// The inputs of a run, made on demand so that a long run does not hold them all:
/// how many, and the i-th.
#[derive(Clone)]
pub struct Inputs {
    pub len: usize,
    pub make: Arc<dyn Fn(usize) -> Input + Send + Sync>,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs").field("len", &self.len).finish()
    }
}

/// Republishes the input bytes under the input key: the Kafka path with no extraction.
pub fn passthrough(message: &OwnedMessage, _: &cwmp_inform::Options) -> Outcome {
    Outcome::Record {
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        payload: message.payload().unwrap_or_default().to_vec(),
        event_time_ms: message.timestamp().to_millis(),
        kinds: Vec::new(),
        boot_cause: None,
        warnings: Default::default(),
        rpc: "Inform",
        session: None,
        transfer: None,
    }
}

/// A `/proc/self/status` figure in KiB (`VmHWM`: peak resident set; `VmRSS`: now).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Peak resident set of this process, KiB.
pub fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM")
}

/// Input messages the pipeline has acknowledged.
pub fn acknowledged(m: &IngestMetrics) -> usize {
    m.handled() as usize
}

async fn feed(
    bootstrap: String,
    topic: String,
    inputs: Inputs,
    ahead: usize,
    metrics: IngestMetrics,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut pending = std::collections::VecDeque::new();
    for i in 0..inputs.len {
        let (key, body, headers) = (inputs.make)(i);
        while i >= acknowledged(&metrics) + ahead {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let record = FutureRecord::to(&topic)
            .key(key.as_bytes())
            .payload(body.as_slice())
            .headers(h);
        let delivery = cwmp_stream::kafka::enqueue(&producer, record)
            .await
            .expect("enqueued");
        pending.push_back(delivery);
        while pending.len() > 10_000 {
            if let Some(f) = pending.pop_front() {
                f.await.expect("delivery").expect("delivered");
            }
        }
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
}

/// When a run's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// At the first acknowledged message (the group join is not counted).
    FirstAck,
    /// When feeding starts.
    FeedStart,
}

/// Feeds `inputs` through one at-least-once pipeline run with `transform`; returns
/// messages per second.
#[allow(clippy::too_many_arguments)]
pub async fn run_once(
    mock: &MockCluster<'static, DefaultProducerContext>,
    inputs: Inputs,
    name: &str,
    partitions: i32,
    ahead: usize,
    clock: Clock,
    transform: cwmp_stream::ingest::Transform,
) -> f64 {
    let n = inputs.len;
    let raw = format!("{name}.raw");
    let out = format!("{name}.out");
    mock.create_topic(&raw, partitions, 1).expect("topic");
    mock.create_topic(&out, 8, 1).expect("topic");
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
    let feeder = tokio::spawn(feed(
        mock.bootstrap_servers(),
        raw,
        inputs,
        ahead,
        metrics.clone(),
    ));
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
    let (first, counted_from) = match clock {
        Clock::FeedStart => (start, 0),
        Clock::FirstAck => {
            wait_until(1).await;
            (Instant::now(), acknowledged(&metrics))
        }
    };
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
    (n - counted_from) as f64 / elapsed
}
