//! A Kafka-protocol broker for the tests: librdkafka's in-process mock cluster, or
//! the broker named by `KAFKA_BOOTSTRAP_SERVERS` when that is set. Every test uses
//! its own topics and groups, so tests share a broker safely.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

use cwmp_stream::config::Config;

pub struct Broker {
    pub bootstrap: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

pub struct Topics {
    pub raw: String,
    pub events: String,
    pub dlq: String,
    pub group: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Broker {
    pub fn start() -> Broker {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(bootstrap) if !bootstrap.is_empty() => Broker {
                bootstrap,
                mock: None,
            },
            _ => {
                let mock = MockCluster::new(3).expect("mock cluster");
                Broker {
                    bootstrap: mock.bootstrap_servers(),
                    mock: Some(mock),
                }
            }
        }
    }

    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self.mock.as_ref()
    }

    /// Fresh topics (raw with `partitions` partitions) and a fresh group name.
    pub async fn topics(&self, test: &str, partitions: i32) -> Topics {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let stamp = format!("{test}-{}-{n}", std::process::id());
        let t = Topics {
            raw: format!("{stamp}.raw"),
            events: format!("{stamp}.events"),
            dlq: format!("{stamp}.dlq"),
            group: format!("{stamp}.group"),
        };
        self.create_topic(&t.raw, partitions).await;
        self.create_topic(&t.events, partitions).await;
        self.create_topic(&t.dlq, 1).await;
        t
    }

    /// A compacted topic, as detect's state topics are (on the mock cluster, which
    /// cannot create topics through the admin API, a plain one).
    pub async fn create_state_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[("cleanup.policy", "compact")])
            .await
    }

    /// A topic that deletes old records (the default policy, written out).
    pub async fn create_deleting_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[("cleanup.policy", "delete")])
            .await
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]).await
    }

    async fn create_topic_with(&self, name: &str, partitions: i32, settings: &[(&str, &str)]) {
        match &self.mock {
            Some(mock) => mock
                .create_topic(name, partitions, 1)
                .expect("create topic"),
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()
                    .expect("admin client");
                let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
                for (k, v) in settings {
                    topic = topic.set(k, v);
                }
                let result = admin
                    .create_topics(
                        [&topic],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .expect("create topics");
                for r in result {
                    r.expect("topic created");
                }
            }
        }
    }

    /// A service configuration pointing at this broker and these topics.
    pub fn config(&self, t: &Topics) -> Config {
        let mut c = Config::default();
        c.kafka.brokers = self.bootstrap.clone();
        c.ingest.input_topic = t.raw.clone();
        c.ingest.output_topic = t.events.clone();
        c.ingest.dlq_topic = t.dlq.clone();
        c.ingest.group_id = t.group.clone();
        c.ingest.transactional_id = format!("{}-txn", t.group);
        c.ingest.drain_timeout_ms = 10_000;
        c.metrics.listen = String::new();
        // Short intervals so that tests see statistics and commits quickly.
        c.kafka
            .client
            .insert("statistics.interval.ms".into(), "500".into());
        c.kafka
            .consumer
            .insert("auto.commit.interval.ms".into(), "200".into());
        c.kafka
            .consumer
            .insert("session.timeout.ms".into(), "6000".into());
        c.kafka
            .consumer
            .insert("heartbeat.interval.ms".into(), "500".into());
        c
    }
}

/// An input message: key, payload, headers.
pub type Input = (Option<Vec<u8>>, Vec<u8>, Vec<(String, String)>);

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces inputs round-robin over the partitions; returns (partition, offset) of each.
pub async fn produce(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    inputs: &[Input],
) -> Vec<(i32, i64)> {
    produce_to(&broker.bootstrap, topic, partitions, inputs).await
}

/// [`produce`] by bootstrap address (usable from spawned tasks).
pub async fn produce_to(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    inputs: &[Input],
) -> Vec<(i32, i64)> {
    let producer = producer(bootstrap);
    let mut futures = Vec::new();
    for (i, (key, payload, headers)) in inputs.iter().enumerate() {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = FutureRecord::to(topic)
            .payload(payload.as_slice())
            .partition(i as i32 % partitions)
            .headers(h);
        if let Some(k) = key {
            record = record.key(k.as_slice());
        }
        futures.push(producer.send(record, Duration::from_secs(30)));
    }
    let mut positions = Vec::new();
    for f in futures {
        let delivery = f.await.expect("input delivered");
        positions.push((delivery.partition, delivery.offset));
    }
    positions
}

/// Reads a topic from the start until `expected` messages arrived and nothing more
/// came for 1.5 s, or `deadline` passed.
pub fn read_topic(
    broker: &Broker,
    topic: &str,
    expected: usize,
    committed_only: bool,
    deadline: Duration,
) -> Vec<OwnedMessage> {
    read(
        broker,
        topic,
        expected,
        committed_only,
        deadline,
        Duration::from_millis(1500),
    )
}

/// Waits until at least `n` messages are in the topic (or `deadline` passed).
pub fn wait_for(
    broker: &Broker,
    topic: &str,
    n: usize,
    committed_only: bool,
    deadline: Duration,
) -> usize {
    read(broker, topic, n, committed_only, deadline, Duration::ZERO).len()
}

fn read(
    broker: &Broker,
    topic: &str,
    expected: usize,
    committed_only: bool,
    deadline: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set(
            "group.id",
            format!("reader-{topic}-{}", COUNTER.fetch_add(1, Ordering::SeqCst)),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if committed_only {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut last_new = Instant::now();
    while start.elapsed() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got.push(m.detach());
                last_new = Instant::now();
                if settle.is_zero() && got.len() >= expected {
                    break;
                }
            }
            Some(Err(_)) | None => {
                if got.len() >= expected && last_new.elapsed() >= settle {
                    break;
                }
            }
        }
    }
    got
}

pub fn header<'m>(m: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
