//! The ingest service against a real Kafka-protocol broker.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cwmp_stream::config::{Config, Delivery};
use cwmp_stream::health::Health;
use cwmp_stream::ingest;
use cwmp_stream::ingest::metrics::{MessageResult, TxnOutcome};
use cwmp_stream::ingest::IngestMetrics;
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::watch;

use crate::kafka_util::{header, produce, read_topic, wait_for, Broker, Input};

/// What each input must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Record,
    Dlq,
    Skipped,
}

/// Every documented vector as a raw body, some with transport headers, some wrapped
/// in envelopes, plus hostile bytes: `copies` rounds of them.
pub(crate) fn mixed_inputs(copies: usize) -> (Vec<Input>, Vec<Want>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cwmp-inform/tests/documents");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("documents")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    names.sort();
    let mut inputs = Vec::new();
    let mut wants = Vec::new();
    for round in 0..copies {
        for path in &names {
            let body = std::fs::read(path).expect("vector");
            let golden: serde_json::Value = serde_json::from_slice(
                &std::fs::read(path.with_extension("json")).expect("golden"),
            )
            .expect("json");
            // The TransferComplete vector opens no session of its own: named by a
            // `cwmp-device-id` header it is a record, without one `unattributed`.
            let transfer = path.ends_with("error-transfer-complete.xml");
            let want = match golden["error"]["kind"].as_str() {
                None => Want::Record,
                _ if transfer && round % 2 == 0 => Want::Record,
                _ if transfer => Want::Dlq,
                Some("not_inform" | "empty") => Want::Skipped,
                Some(_) => Want::Dlq,
            };
            let key = Some(format!("session-{round}-{}", inputs.len()).into_bytes());
            if round % 2 == 0 {
                let headers = vec![
                    (
                        "cwmp-received-at".to_owned(),
                        "2025-11-24T16:00:00Z".to_owned(),
                    ),
                    ("cwmp-acs".to_owned(), "acs-eu-1".to_owned()),
                    ("trace".to_owned(), format!("t{}", inputs.len())),
                    ("cwmp-device-id".to_owned(), "00D09E-IGD-S1".to_owned()),
                ];
                inputs.push((key, body, headers));
                wants.push(want);
            } else if let Ok(text) = String::from_utf8(body.clone()) {
                let env = serde_json::json!({"received_at": 1_764_000_000_000_i64, "remote_addr": "203.0.113.7", "body": text});
                inputs.push((key, env.to_string().into_bytes(), vec![]));
                wants.push(want);
            } else {
                inputs.push((key, body, vec![]));
                wants.push(want);
            }
        }
        inputs.push((None, vec![0xFF, 0x00, 0x13, 0x37], vec![]));
        wants.push(Want::Dlq);
        inputs.push((None, b"{\"body\": 42}".to_vec(), vec![]));
        wants.push(Want::Dlq);
    }
    (inputs, wants)
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: IngestMetrics,
    health: Arc<Health>,
}

fn start(config: Config) -> Running {
    let (stop, rx) = watch::channel(false);
    let metrics = IngestMetrics::new();
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let m = metrics.clone();
    let h = health.clone();
    let task = tokio::spawn(async move { ingest::run(&config, m, h, rx).await });
    Running {
        stop,
        task,
        metrics,
        health,
    }
}

impl Running {
    async fn stop(self) -> IngestMetrics {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within the drain bound")
            .expect("no panic")
            .expect("clean exit");
        self.metrics
    }
}

/// Maps every output back to its input position.
fn outputs_by_input(
    records: &[OwnedMessage],
    dlq: &[OwnedMessage],
) -> HashMap<(i32, i64), Vec<Want>> {
    let mut by_input: HashMap<(i32, i64), Vec<Want>> = HashMap::new();
    for r in records {
        let json: serde_json::Value =
            serde_json::from_slice(r.payload().expect("payload")).expect("record JSON");
        let key = std::str::from_utf8(r.key().expect("key")).expect("utf8 key");
        assert_eq!(json["device_id"], key, "key = device_id");
        // The record type is in a header, and near the start of the JSON.
        let rpc = header(r, "cwmp-rpc").expect("cwmp-rpc header");
        assert_eq!(
            json.get("rpc").and_then(|v| v.as_str()).unwrap_or("Inform"),
            rpc
        );
        let pos = (
            json["source"]["partition"].as_i64().expect("partition") as i32,
            json["source"]["offset"].as_i64().expect("offset"),
        );
        by_input.entry(pos).or_default().push(Want::Record);
    }
    for d in dlq {
        let pos = (
            header(d, "cwmp-source-partition")
                .expect("partition header")
                .parse()
                .expect("int"),
            header(d, "cwmp-source-offset")
                .expect("offset header")
                .parse()
                .expect("int"),
        );
        assert!(header(d, "cwmp-error-kind").is_some() && header(d, "cwmp-error").is_some());
        by_input.entry(pos).or_default().push(Want::Dlq);
    }
    by_input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_is_accounted_for() {
    let broker = Broker::start();
    let topics = broker.topics("account", 4).await;
    let (inputs, wants) = mixed_inputs(4);
    let positions = produce(&broker, &topics.raw, 4, &inputs).await;
    let running = start(broker.config(&topics));
    let n_records = wants.iter().filter(|w| **w == Want::Record).count();
    let n_dlq = wants.iter().filter(|w| **w == Want::Dlq).count();
    let records = read_topic(
        &broker,
        &topics.events,
        n_records,
        false,
        Duration::from_secs(60),
    );
    let dlq = read_topic(&broker, &topics.dlq, n_dlq, false, Duration::from_secs(30));
    let metrics = running.stop().await;

    let by_input = outputs_by_input(&records, &dlq);
    for (i, (pos, want)) in positions.iter().zip(&wants).enumerate() {
        let got = by_input.get(pos).cloned().unwrap_or_default();
        match want {
            Want::Skipped => assert!(
                got.is_empty(),
                "input {i} at {pos:?} should be skipped, got {got:?}"
            ),
            w => assert_eq!(got, vec![*w], "input {i} at {pos:?}"),
        }
    }
    let skipped = metrics.messages(MessageResult::Skipped) as usize;
    assert_eq!(
        records.len() + dlq.len() + skipped,
        inputs.len(),
        "records + DLQ + skipped = inputs"
    );
    assert_eq!(
        metrics.messages(MessageResult::Record) as usize,
        records.len()
    );
    assert_eq!(metrics.messages(MessageResult::Dlq) as usize, dlq.len());

    // Dead letters keep the original bytes, key and headers.
    let by_pos: HashMap<(i32, i64), &Input> =
        positions.iter().copied().zip(inputs.iter()).collect();
    for d in &dlq {
        let pos: (i32, i64) = (
            header(d, "cwmp-source-partition")
                .expect("p")
                .parse()
                .expect("int"),
            header(d, "cwmp-source-offset")
                .expect("o")
                .parse()
                .expect("int"),
        );
        let (key, payload, headers) = by_pos[&pos];
        assert_eq!(d.payload().unwrap_or_default(), payload.as_slice());
        assert_eq!(d.key().map(<[u8]>::to_vec), key.clone());
        for (k, v) in headers {
            assert_eq!(header(d, k), Some(v.as_str()), "original header {k} kept");
        }
        assert_eq!(header(d, "cwmp-source-topic"), Some(topics.raw.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_gives_each_record_once_to_committed_readers() {
    let broker = Broker::start();
    if broker.mock().is_none() {
        eprintln!("exactly-once runs on the mock cluster only (the external broker may not support transactions)");
        return;
    }
    let topics = broker.topics("eos", 2).await;
    let (inputs, wants) = mixed_inputs(2);
    let positions = produce(&broker, &topics.raw, 2, &inputs).await;
    let mut config = broker.config(&topics);
    config.ingest.delivery = Delivery::ExactlyOnce;
    config.ingest.batch_max_messages = 16;
    let running = start(config);
    let n_records = wants.iter().filter(|w| **w == Want::Record).count();
    let n_dlq = wants.iter().filter(|w| **w == Want::Dlq).count();
    let records = read_topic(
        &broker,
        &topics.events,
        n_records,
        true,
        Duration::from_secs(60),
    );
    let dlq = read_topic(&broker, &topics.dlq, n_dlq, true, Duration::from_secs(30));
    let metrics = running.stop().await;
    let by_input = outputs_by_input(&records, &dlq);
    for (pos, want) in positions.iter().zip(&wants) {
        let got = by_input.get(pos).cloned().unwrap_or_default();
        match want {
            Want::Skipped => assert!(got.is_empty()),
            w => assert_eq!(got, vec![*w], "input at {pos:?} exactly once"),
        }
    }
    assert!(metrics.transactions(TxnOutcome::Committed) > 0);
}

/// The error headers of the dead letters of one input, for failure messages.
fn dead_letter_reasons(dlq: &[OwnedMessage], pos: (i32, i64)) -> Vec<String> {
    dlq.iter()
        .filter(|d| {
            header(d, "cwmp-source-partition") == Some(pos.0.to_string().as_str())
                && header(d, "cwmp-source-offset") == Some(pos.1.to_string().as_str())
        })
        .map(|d| {
            format!(
                "{}: {}",
                header(d, "cwmp-error-kind").unwrap_or("?"),
                header(d, "cwmp-error").unwrap_or("?")
            )
        })
        .collect()
}

/// Checks that every input has at least one output of the right kind (at-least-once
/// allows duplicates) or, with `exactly`, exactly one.
pub(crate) fn assert_accounted(
    positions: &[(i32, i64)],
    wants: &[Want],
    records: &[OwnedMessage],
    dlq: &[OwnedMessage],
    exactly: bool,
) {
    let by_input = outputs_by_input(records, dlq);
    for (pos, want) in positions.iter().zip(wants) {
        let got = by_input.get(pos).cloned().unwrap_or_default();
        match want {
            Want::Skipped => assert!(got.is_empty(), "{pos:?} should be skipped, got {got:?}"),
            w if exactly => assert_eq!(
                got,
                vec![*w],
                "input at {pos:?} exactly once; dead letters: {:?}",
                dead_letter_reasons(dlq, *pos)
            ),
            w => assert!(
                !got.is_empty() && got.iter().all(|g| g == w),
                "input at {pos:?}: want {w:?}, got {got:?}"
            ),
        }
    }
}

pub(crate) fn count_wants(wants: &[Want]) -> (usize, usize) {
    (
        wants.iter().filter(|w| **w == Want::Record).count(),
        wants.iter().filter(|w| **w == Want::Dlq).count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_an_aborted_transaction() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let broker = Broker::start();
    let Some(mock) = broker.mock() else {
        return;
    };
    let topics = broker.topics("eos-abort", 2).await;
    let (inputs, wants) = mixed_inputs(6);
    let positions = produce(&broker, &topics.raw, 2, &inputs).await;
    let mut config = broker.config(&topics);
    config.ingest.delivery = Delivery::ExactlyOnce;
    let batch_max = 4;
    config.ingest.batch_max_messages = batch_max;
    let running = start(config);
    // Let some transactions commit, then make the next produce requests fail in a
    // way that forces an abort while most of the input is still to come.
    let (n_records, n_dlq) = count_wants(&wants);
    let early = wait_for(&broker, &topics.events, 8, true, Duration::from_secs(30));
    assert!(early >= 8, "some transactions committed before the fault");
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 3],
    );
    let records = read_topic(
        &broker,
        &topics.events,
        n_records,
        true,
        Duration::from_secs(90),
    );
    let dlq = read_topic(&broker, &topics.dlq, n_dlq, true, Duration::from_secs(30));
    let metrics = running.stop().await;
    let aborted = metrics.transactions(TxnOutcome::Aborted) as usize;
    assert!(aborted > 0, "the injected fault aborted a transaction");
    // librdkafka's mock cluster hands aborted transactional records to
    // read_committed readers (`the_mock_cluster_shows_aborted_records` pins that), so
    // a record of an aborted batch that reached a broker is seen besides its
    // committed retry. What holds here: every input has its output, of the right
    // kind, and the extra ones are no more than the aborted batches held. (The
    // strict exactly-once reading is `exactly_once_gives_each_record_once_to_
    // committed_readers`, with no abort; tansu has no transactions.)
    assert_accounted(&positions, &wants, &records, &dlq, false);
    let extra = records.len() + dlq.len() - (n_records + n_dlq);
    assert!(
        extra <= aborted * batch_max,
        "{extra} extra outputs from {aborted} aborted batches of at most {batch_max}"
    );
}

/// Pins the mock cluster behaviour the test above works around: when it starts
/// filtering aborted records for read_committed readers, this fails, and the test
/// above should check exactly once again.
#[test]
fn the_mock_cluster_shows_aborted_records() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("aborted", 1, 1).expect("topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("transactional.id", "pin")
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(10);
    producer.init_transactions(timeout).expect("init");
    for (payload, commit) in [("aborted", false), ("committed", true)] {
        producer.begin_transaction().expect("begin");
        producer
            .send(BaseRecord::<str, str>::to("aborted").payload(payload))
            .map_err(|(e, _)| e)
            .expect("send");
        producer.flush(timeout).expect("flush");
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.abort_transaction(timeout).expect("abort");
        }
    }
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "pin-reader")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    reader.subscribe(&["aborted"]).expect("subscribe");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(
        seen,
        ["aborted", "committed"],
        "the mock cluster now filters aborted records: make the abort test strict again"
    );
}

type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// Half the input, then `outage` on the mock cluster while ingest runs (mid-stream),
/// then the rest: every input accounted for. Mock cluster only.
async fn around_an_outage(test: &str, partitions: i32, outage: impl AsyncFnOnce(&Running, &Mock)) {
    let broker = Broker::start();
    let Some(mock) = broker.mock() else {
        return;
    };
    let topics = broker.topics(test, partitions).await;
    let (inputs, wants) = mixed_inputs(partitions as usize);
    let half = inputs.len() / 2;
    let mut positions = produce(&broker, &topics.raw, partitions, &inputs[..half]).await;
    let running = start(broker.config(&topics));
    let (first_records, _) = count_wants(&wants[..half]);
    wait_for(
        &broker,
        &topics.events,
        first_records / 2,
        false,
        Duration::from_secs(30),
    );
    outage(&running, mock).await;
    positions.extend(produce(&broker, &topics.raw, partitions, &inputs[half..]).await);
    let (n_records, n_dlq) = count_wants(&wants);
    let records = read_topic(
        &broker,
        &topics.events,
        n_records,
        false,
        Duration::from_secs(90),
    );
    let dlq = read_topic(&broker, &topics.dlq, n_dlq, false, Duration::from_secs(30));
    running.stop().await;
    assert_accounted(&positions, &wants, &records, &dlq, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_and_back_loses_nothing() {
    around_an_outage("broker-down", 4, async |_, mock| {
        // Its partitions (input and output) are unavailable for a while.
        mock.broker_down(2).expect("broker down");
        tokio::time::sleep(Duration::from_secs(3)).await;
        mock.broker_up(2).expect("broker up");
    })
    .await;
}

/// Waits (at most a minute) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every broker down for a while: `/readyz` says Kafka is unreachable and the
/// consumer counts the outage; the repeated errors are suppressed (counted in
/// `cwmp_log_suppressed_total`, at most a line per kind per 10 s); when the brokers
/// are back, readiness returns and nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_down_is_visible_but_quiet_and_loses_nothing() {
    use cwmp_stream::kafka::ClientErrorKind;
    around_an_outage("all-down", 2, async |running, mock| {
        let unreachable = || {
            running
                .health
                .readiness()
                .err()
                .is_some_and(|why| why.contains("Kafka unreachable"))
        };
        let suppressed_before = cwmp_stream::kafka::quiet::limiter().suppressed();
        for id in 1..=3 {
            mock.broker_down(id).expect("broker down");
        }
        eventually("the outage shows in /readyz and the metric", || {
            unreachable()
                && running
                    .metrics
                    .consumer
                    .client_errors(ClientErrorKind::AllBrokersDown)
                    > 0
        })
        .await;
        // Let librdkafka repeat itself for a while.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            cwmp_stream::kafka::quiet::limiter().suppressed() > suppressed_before,
            "repeats were suppressed"
        );
        for id in 1..=3 {
            mock.broker_up(id).expect("broker up");
        }
        eventually("readiness returns when a broker is up", || !unreachable()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_partitions_through_a_rebalance() {
    let broker = Broker::start();
    let topics = broker.topics("two", 6).await;
    let (inputs, wants) = mixed_inputs(8);
    let third = inputs.len() / 3;
    let mut positions = produce(&broker, &topics.raw, 6, &inputs[..third]).await;
    let config = broker.config(&topics);
    let first = start(config.clone());
    let (some, _) = count_wants(&wants[..third]);
    wait_for(
        &broker,
        &topics.events,
        some / 2,
        false,
        Duration::from_secs(30),
    );
    // A second instance joins the group: partitions move while messages flow.
    // Cooperative rebalancing moves them in two rounds: wait for the second
    // instance's share before the last third.
    let second = start(config);
    positions.extend(produce(&broker, &topics.raw, 6, &inputs[third..2 * third]).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.metrics.consumer.assigned_partitions.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "the second instance got partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        first.metrics.consumer.assigned_partitions.get() > 0,
        "cooperative: the first instance kept some of its partitions"
    );
    positions.extend(produce(&broker, &topics.raw, 6, &inputs[2 * third..]).await);
    let (n_records, n_dlq) = count_wants(&wants);
    let records = read_topic(
        &broker,
        &topics.events,
        n_records,
        false,
        Duration::from_secs(90),
    );
    let dlq = read_topic(&broker, &topics.dlq, n_dlq, false, Duration::from_secs(30));
    let m2 = second.stop().await;
    let m1 = first.stop().await;
    assert_accounted(&positions, &wants, &records, &dlq, false);
    let done = |m: &IngestMetrics| m.handled();
    assert!(
        done(&m2) > 0,
        "the second instance took over partitions and worked"
    );
    assert!(done(&m1) > 0);
}

/// A TransferComplete names no device: it goes to the device of its session's Inform
/// (same key, same partition), or the one a `cwmp-device-id` header names, and is a
/// dead letter (`unattributed`) otherwise. Published as a backlog first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_are_attributed_to_their_session() {
    let broker = Broker::start();
    let topics = broker.topics("sessions", 1).await;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cwmp-inform/tests/documents");
    // A real Inform announcing a transfer (`7 TRANSFER COMPLETE`), and one that
    // announces none: a transfer in the latter's session is not attributed.
    let inform = std::fs::read(
        docs.join("../../../../../shared/corpus/informs/11-oran-airvana-transfercomplete.xml"),
    )
    .expect("inform");
    let plain = std::fs::read(docs.join("baseline-soap-env-prefixes.xml")).expect("inform");
    let tc = std::fs::read(docs.join("transfers/tc-fault-9010.xml")).expect("transfer");
    let at = ("cwmp-received-at".to_owned(), "1764000000000".to_owned());
    let inputs: Vec<Input> = vec![
        (Some(b"s1".to_vec()), inform.clone(), vec![at.clone()]),
        (Some(b"s1".to_vec()), tc.clone(), vec![at.clone()]),
        (Some(b"s2".to_vec()), tc.clone(), vec![at.clone()]),
        (
            Some(b"s3".to_vec()),
            tc.clone(),
            vec![
                at.clone(),
                ("cwmp-device-id".to_owned(), "named-1".to_owned()),
            ],
        ),
        (Some(b"s4".to_vec()), plain, vec![at.clone()]),
        (Some(b"s4".to_vec()), tc.clone(), vec![at.clone()]),
    ];
    produce(&broker, &topics.raw, 1, &inputs).await;
    let running = start(broker.config(&topics));
    let records = read_topic(&broker, &topics.events, 4, false, Duration::from_secs(60));
    let dlq = read_topic(&broker, &topics.dlq, 2, false, Duration::from_secs(30));
    let metrics = running.stop().await;
    assert_eq!(records.len(), 4);
    let json: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_slice(r.payload().expect("payload")).expect("json"))
        .collect();
    let device = json[0]["device_id"]
        .as_str()
        .expect("inform device")
        .to_owned();
    assert_eq!(header(&records[0], "cwmp-rpc"), Some("Inform"));
    assert_eq!(header(&records[1], "cwmp-rpc"), Some("TransferComplete"));
    assert_eq!(json[1]["rpc"], "TransferComplete");
    assert_eq!(json[1]["device_id"], device.as_str());
    assert_eq!(records[1].key(), Some(device.as_bytes()));
    assert_eq!(json[1]["attribution"], "session");
    assert_eq!(json[1]["fault"]["code"], 9010);
    assert_eq!(json[1]["device"]["oui"], json[0]["device"]["oui"]);
    assert_eq!(json[2]["device_id"], "named-1");
    assert_eq!(json[2]["attribution"], "header");
    assert_eq!(json[2]["device"], serde_json::Value::Null);
    assert_eq!(dlq.len(), 2);
    for d in &dlq {
        assert_eq!(header(d, "cwmp-error-kind"), Some("unattributed"));
        assert_eq!(d.payload(), Some(tc.as_slice()));
    }
    assert_eq!(header(&records[3], "cwmp-rpc"), Some("Inform"));
    assert_eq!(metrics.transfers(cwmp_record::TransferResult::Failure), 2);
    let text = metrics.render();
    assert!(
        text.contains("cwmp_ingest_session_lookups_total{result=\"hit\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("cwmp_ingest_session_lookups_total{result=\"miss\"} 2"),
        "{text}"
    );
}
