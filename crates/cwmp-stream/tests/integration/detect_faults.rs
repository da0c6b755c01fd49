//! `cwmp-stream detect` as processes, killed with SIGKILL, restarted, scaled and
//! stopped with SIGTERM while it works through its input: the distinct alert
//! transitions it publishes are those of `detect --replay` over the same records.
//! Every chunk of the input is published as a backlog before the processes that
//! catch it up start or go on.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::detect::{publish, replay_lines, scenario, PARTITIONS};
use crate::kafka_util::Broker;

const AGGREGATE_PARTITIONS: i32 = 4;

struct Stack {
    bootstrap: String,
    stamp: String,
}

impl Stack {
    /// The topics of one test on `broker`, named after `test`.
    /// The workers' state topic gets `state_partitions` (`PARTITIONS` is right).
    async fn create(broker: &Broker, test: &str, state_partitions: i32) -> Stack {
        let stack = Stack {
            bootstrap: broker.bootstrap.clone(),
            stamp: format!("{test}-{}", std::process::id()),
        };
        broker
            .create_topic(&stack.topic("events"), PARTITIONS)
            .await;
        broker
            .create_topic(&stack.topic("aggregates"), AGGREGATE_PARTITIONS)
            .await;
        broker.create_topic(&stack.topic("alerts"), 1).await;
        broker
            .create_state_topic(&stack.topic("state"), state_partitions)
            .await;
        broker
            .create_state_topic(&stack.topic("fleet-state"), AGGREGATE_PARTITIONS)
            .await;
        stack
    }

    fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.stamp)
    }

    fn spawn(&self, stage: &str) -> Child {
        self.spawn_with(stage, &[])
    }

    fn spawn_with(&self, stage: &str, env: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
            .arg("detect")
            .args(["--brokers", &self.bootstrap, "--stage", stage])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("CWMP__INGEST__INPUT_TOPIC", self.topic("raw"))
            .env("CWMP__DETECT__INPUT_TOPIC", self.topic("events"))
            .env("CWMP__DETECT__AGGREGATES_TOPIC", self.topic("aggregates"))
            .env("CWMP__DETECT__ALERTS_TOPIC", self.topic("alerts"))
            .env("CWMP__DETECT__GROUP_ID", self.topic("workers"))
            .env("CWMP__DETECT__FLEET_GROUP_ID", self.topic("fleet"))
            .env("CWMP__DETECT__STATE_TOPIC", self.topic("state"))
            .env("CWMP__DETECT__FLEET_STATE_TOPIC", self.topic("fleet-state"))
            // Checkpoints often, so that kills land between and during them.
            .env("CWMP__DETECT__CHECKPOINT_INTERVAL_MS", "300")
            .env("CWMP__KAFKA__CONSUMER__SESSION_TIMEOUT_MS", "6000")
            .env("CWMP__KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS", "500")
            .env("CWMP__LOG__LEVEL", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cwmp-stream detect")
    }

    /// The sum of a group's committed offsets on `topic` (what it has checkpointed).
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", self.topic(group))
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&self.topic(topic), p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(got) => got
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum(),
            Err(_) => 0,
        }
    }

    /// The sum of the input offsets of the newest whole checkpoint of each partition
    /// of the workers' state topic, as a `read_committed` reader sees them (what
    /// exactly-once workers have committed, on any broker).
    fn checkpointed_in_state(&self) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", self.topic("state-reader"))
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&self.topic("state"), p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut latest: Vec<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> =
            vec![Default::default(); PARTITIONS as usize];
        let mut at_end = BTreeSet::new();
        let start = Instant::now();
        while at_end.len() < PARTITIONS as usize && start.elapsed() < Duration::from_secs(30) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = m.key().unwrap_or_default().to_vec();
                    let state = &mut latest[m.partition() as usize];
                    match m.payload() {
                        Some(v) => state.insert(key, v.to_vec()),
                        None => state.remove(&key),
                    };
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                _ => {}
            }
        }
        latest
            .iter()
            .filter_map(cwmp_stream::detect::checkpoint::newest_offset)
            .sum()
    }

    /// Waits until the workers have checkpointed at least `records` input records.
    fn wait_checkpointed(&self, records: usize, children: &mut [&mut Child]) {
        self.wait_until_checkpointed(records, children, || {
            self.committed("workers", "events", PARTITIONS)
        })
    }

    /// [`Stack::wait_checkpointed`] for exactly-once workers: their offsets read
    /// from their checkpoints (librdkafka's mock cluster keeps no transactional
    /// offset commits).
    fn wait_checkpointed_in_state(&self, records: usize, children: &mut [&mut Child]) {
        self.wait_until_checkpointed(records, children, || self.checkpointed_in_state())
    }

    fn wait_until_checkpointed(
        &self,
        records: usize,
        children: &mut [&mut Child],
        checkpointed: impl Fn() -> i64,
    ) {
        let start = Instant::now();
        while checkpointed() < records as i64 {
            for child in children.iter_mut() {
                if let Some(status) = child.try_wait().expect("wait") {
                    panic!("a detect process exited: {status}");
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the workers did not checkpoint {records} records within 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn terminate(child: &mut Child) {
    assert_eq!(
        crate::process_faults::terminate(child).code(),
        Some(0),
        "SIGTERM exits 0"
    );
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// The distinct alert transitions on the alerts topic, read until every one of
/// `expected` is there and nothing new came for a few seconds (or the deadline).
fn distinct_alerts(stack: &Stack, expected: &BTreeSet<String>) -> (BTreeSet<String>, usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("group.id", stack.topic("alert-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // What exactly-once detect committed (the same as all, otherwise).
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    consumer
        .subscribe(&[&stack.topic("alerts")])
        .expect("subscribe");
    let (start, mut last_new) = (Instant::now(), Instant::now());
    let mut got = BTreeSet::new();
    let mut messages = 0;
    while start.elapsed() < Duration::from_secs(240) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            messages += 1;
            let line = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if got.insert(line) {
                last_new = Instant::now();
            }
        } else if got.is_superset(expected) && last_new.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    (got, messages)
}

fn report(got: &BTreeSet<String>, expected: &BTreeSet<String>) -> String {
    let missing: Vec<_> = expected.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    format!(
        "{} distinct alerts, {} expected; {} missing, e.g. {missing:#?}; {} extra, e.g. {extra:#?}",
        got.len(),
        expected.len(),
        expected.difference(got).count(),
        got.difference(expected).count()
    )
}

/// Kill -9 of the only worker after its first checkpoints, three workers catching
/// up the next backlog from the checkpoints, kill -9 of the fleet stage while the
/// power cut's windows are in progress, a restarted fleet stage, then a worker
/// stopped with SIGTERM (three to two) before the last backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_restarts_and_scaling_give_the_alerts_of_the_replay() {
    let broker = Broker::start();
    let stack = Stack::create(&broker, "detect-faults", PARTITIONS).await;
    kills_restarts_and_scaling(
        &broker,
        &stack,
        |stage, _| stack.spawn(stage),
        |records, children| stack.wait_checkpointed(records, children),
    )
    .await;
}

/// The faults of the test above, with `spawn(stage, instance)` starting the
/// processes (instance 0 of the workers is killed and started again) and
/// `wait_checkpointed` waiting for the workers' checkpoints: the distinct alert
/// transitions are the replay's, and duplicates stay within one resend per fault.
async fn kills_restarts_and_scaling(
    broker: &Broker,
    stack: &Stack,
    spawn: impl Fn(&str, usize) -> Child,
    wait_checkpointed: impl Fn(usize, &mut [&mut Child]),
) {
    let lines = scenario();
    let expected: BTreeSet<String> = replay_lines(&lines).into_iter().collect();
    // Four backlogs in event-time order (the scenario is in arrival order).
    let quarter = lines.len().div_ceil(4);
    let chunks: Vec<_> = lines.chunks(quarter).collect();
    let events = stack.topic("events");
    let mut published = 0;

    publish(broker, &events, chunks[0]).await;
    published += chunks[0].len();
    let mut fleet = spawn("fleet", 0);
    let mut w0 = spawn("worker", 0);
    wait_checkpointed(published / 2, &mut [&mut fleet, &mut w0]);
    kill(&mut w0);

    publish(broker, &events, chunks[1]).await;
    published += chunks[1].len();
    let mut workers: Vec<Child> = (0..3).map(|i| spawn("worker", i)).collect();
    {
        let mut all: Vec<&mut Child> = workers.iter_mut().collect();
        all.push(&mut fleet);
        wait_checkpointed(published, &mut all);
    }

    publish(broker, &events, chunks[2]).await;
    published += chunks[2].len();
    // The fleet stage dies while the power cut's partials come in: once it has
    // consumed some of them (at-least-once: its committed offsets moved), or after
    // 1.5 s (exactly-once on the mock cluster, which keeps no transactional offsets).
    let fleet_committed = stack.committed("fleet", "aggregates", AGGREGATE_PARTITIONS);
    let start = Instant::now();
    while stack.committed("fleet", "aggregates", AGGREGATE_PARTITIONS) == fleet_committed
        && start.elapsed() < Duration::from_millis(1500)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(&mut fleet);
    let mut fleet = spawn("fleet", 0);
    {
        let mut all: Vec<&mut Child> = workers.iter_mut().collect();
        all.push(&mut fleet);
        wait_checkpointed(published, &mut all);
    }

    let mut third = workers.pop().expect("three workers");
    terminate(&mut third);
    publish(broker, &events, chunks[3]).await;

    let (got, messages) = tokio::task::block_in_place(|| distinct_alerts(stack, &expected));
    for mut child in workers.into_iter().chain([fleet]) {
        terminate(&mut child);
    }
    assert_eq!(got, expected, "{}", report(&got, &expected));
    // Duplicates within the at-least-once window only: at most one resend of each
    // transition per fault.
    assert!(
        messages <= 4 * expected.len(),
        "{messages} alert messages for {} distinct transitions",
        expected.len()
    );
}

fn exactly_once(stack: &Stack, stage: &str, id: &str) -> Child {
    stack.spawn_with(
        stage,
        &[
            ("CWMP__DETECT__DELIVERY", "exactly-once"),
            ("CWMP__DETECT__TRANSACTIONAL_ID", id),
        ],
    )
}

/// `detect.delivery = "exactly-once"`, the whole input as a backlog, two workers
/// and the fleet stage: a `read_committed` reader sees each alert transition of the
/// replay exactly once, and the checkpoints committed in the transactions name the
/// whole input. Mock cluster only (tansu refuses transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sends_each_alert_of_the_replay_once() {
    let broker = Broker::start();
    if broker.mock().is_none() {
        eprintln!("skipped: this broker does not implement transactions (run on the mock cluster)");
        return;
    }
    let stack = Stack::create(&broker, "detect-eos", PARTITIONS).await;
    let lines = scenario();
    let expected: BTreeSet<String> = replay_lines(&lines).into_iter().collect();
    publish(&broker, &stack.topic("events"), &lines).await;
    let mut fleet = exactly_once(&stack, "fleet", "fleet-0");
    let mut w0 = exactly_once(&stack, "worker", "worker-0");
    let mut w1 = exactly_once(&stack, "worker", "worker-1");
    stack.wait_checkpointed_in_state(lines.len(), &mut [&mut fleet, &mut w0, &mut w1]);
    let (got, messages) = tokio::task::block_in_place(|| distinct_alerts(&stack, &expected));
    for child in [&mut w0, &mut w1, &mut fleet] {
        terminate(child);
    }
    assert_eq!(got, expected, "{}", report(&got, &expected));
    assert_eq!(
        messages,
        expected.len(),
        "each committed alert transition exactly once"
    );
}

/// Exactly-once through the faults of `kills_restarts_and_scaling_…` (the killed
/// worker and fleet stage restarted under their transactional ids, as StatefulSet
/// pods are): the distinct alert transitions are the replay's. The mock cluster
/// implements the transaction protocol but not its effect on readers (no abort
/// markers, no last stable offset), so what an aborted transaction sent stays
/// visible there and exactly one message per transition is not asserted; on Kafka a
/// `read_committed` reader does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_restores_from_committed_checkpoints_through_kills_and_scaling() {
    let broker = Broker::start();
    if broker.mock().is_none() {
        eprintln!("skipped: this broker does not implement transactions (run on the mock cluster)");
        return;
    }
    let stack = Stack::create(&broker, "detect-eos-faults", PARTITIONS).await;
    kills_restarts_and_scaling(
        &broker,
        &stack,
        |stage, i| exactly_once(&stack, stage, &format!("{stage}-{i}")),
        |records, children| stack.wait_checkpointed_in_state(records, children),
    )
    .await;
}

/// A state topic with another partition count than the input is refused at start,
/// with an error naming the topic and the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_topic_with_the_wrong_partitions_is_refused() {
    let broker = Broker::start();
    // Three partitions for the workers' state of eight input partitions.
    let stack = Stack::create(&broker, "detect-wrong-state", 3).await;
    let err = refusal_of(&stack, &stack.topic("state")).await;
    assert!(
        err.contains(&stack.topic("state")) && err.contains("3 partitions"),
        "{err}"
    );
}

/// A state topic that is not compacted (retention would delete checkpoints) is
/// refused, naming the topic and the setting. Needs a broker that describes topic
/// configurations (the mock cluster does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_topic_that_is_not_compacted_is_refused() {
    let broker = Broker::start();
    if broker.mock().is_some() {
        eprintln!("skipped: the mock cluster does not describe topic configurations");
        return;
    }
    let stack = Stack::create(&broker, "detect-deleting-state", PARTITIONS).await;
    // A workers' state topic created with cleanup.policy=delete.
    let deleting = format!("{}.deleting-state", stack.stamp);
    broker.create_deleting_topic(&deleting, PARTITIONS).await;
    let err = refusal_of(&stack, &deleting).await;
    assert!(
        err.contains(&deleting) && err.contains("cleanup.policy=delete"),
        "{err}"
    );
}

/// How a `detect` worker refuses to run with `stack`'s topics and the workers'
/// state topic `state_topic`: its error, within a minute.
async fn refusal_of(stack: &Stack, state_topic: &str) -> String {
    use cwmp_stream::config::{Config, Stage};
    use cwmp_stream::detect::{self, DetectMetrics};
    use cwmp_stream::health::Health;
    use std::sync::Arc;

    let mut config = Config::default();
    config.kafka.brokers = stack.bootstrap.clone();
    config.metrics.listen = String::new();
    config.detect.checkpoint_interval_ms = 300;
    config.ingest.input_topic = stack.topic("raw");
    config.detect.stage = Stage::Worker;
    config.detect.input_topic = stack.topic("events");
    config.detect.aggregates_topic = stack.topic("aggregates");
    config.detect.alerts_topic = stack.topic("alerts");
    config.detect.group_id = stack.topic("workers");
    config.detect.fleet_group_id = stack.topic("fleet");
    config.detect.state_topic = state_topic.to_owned();
    config.detect.fleet_state_topic = stack.topic("fleet-state");
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let ran = tokio::time::timeout(
        Duration::from_secs(60),
        detect::run(&config, DetectMetrics::new(), health, stop),
    )
    .await
    .expect("refused within a minute");
    format!("{:#}", ran.expect_err("a wrong state topic is refused"))
}

/// Three hours of 900 devices of one product class that wake up now and then (a
/// class baseline of some 15 wake-ups a window), then a wake-up storm at 2 h 30 on
/// 400 of them: `wakeup_rate` on the class opens only if the baseline learned
/// since the start (one hour of warm-up) is still there.
fn wakeup_scenario() -> Vec<(String, String)> {
    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_478_400_000;
    let class = "00D09E HG8245H";
    let mut events: Vec<(i64, usize, &str)> = Vec::new();
    for device in 0..900usize {
        let phase = (device as i64 * 7919) % (60 * MIN);
        let mut t = T0 + phase;
        while t < T0 + 180 * MIN {
            events.push((t, device, "periodic"));
            // One wake-up every other hour per device, half an hour after its inform.
            if (t - T0) / (60 * MIN) % 2 == device as i64 % 2 {
                events.push((t + 30 * MIN, device, "wakeup"));
            }
            t += 60 * MIN;
        }
        if device < 400 {
            events.push((
                T0 + 150 * MIN + (device as i64 * 613) % (3 * MIN),
                device,
                "wakeup",
            ));
        }
    }
    events.retain(|(t, _, _)| *t < T0 + 180 * MIN);
    events.sort();
    events
        .into_iter()
        .enumerate()
        .map(|(offset, (t, device, kind))| {
            let code = if kind == "wakeup" {
                ("13 WAKEUP", "wakeup")
            } else {
                ("2 PERIODIC", "periodic")
            };
            crate::detect::record(device, class, t, &[code], offset)
        })
        .collect()
}

/// Both stages killed with SIGKILL while the class baseline is warm (after 1 h 40 of
/// event time), restarted, then the rest of the input, storm included, as a backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_baseline_survives_killing_both_stages() {
    let broker = Broker::start();
    let stack = Stack::create(&broker, "detect-warm", PARTITIONS).await;
    let lines = wakeup_scenario();
    let expected: BTreeSet<String> = replay_lines(&lines).into_iter().collect();
    assert!(
        expected
            .iter()
            .any(|a| a.contains(r#""kind":"wakeup_rate","state":"open","scope":"product_class""#)),
        "the storm opens wakeup_rate on the class in the replay: {expected:#?}"
    );
    let cut = lines.len() * 100 / 180;
    kill_both_between(&broker, &stack, &lines, cut, &expected, || {
        // The fleet stage has merged partials (its baseline is learning) before the kill.
        let start = Instant::now();
        while stack.committed("fleet", "aggregates", AGGREGATE_PARTITIONS) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the fleet stage never checkpointed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;
}

/// Publishes `lines[..cut]`, runs both stages until the workers have checkpointed it
/// and `before_kill` returns, kills both with SIGKILL, publishes the rest as a
/// backlog, restarts both: the distinct alerts must be `expected`.
async fn kill_both_between(
    broker: &Broker,
    stack: &Stack,
    lines: &[(String, String)],
    cut: usize,
    expected: &BTreeSet<String>,
    before_kill: impl FnOnce(),
) {
    let events = stack.topic("events");
    publish(broker, &events, &lines[..cut]).await;
    let mut fleet = stack.spawn("fleet");
    let mut worker = stack.spawn("worker");
    stack.wait_checkpointed(cut, &mut [&mut fleet, &mut worker]);
    tokio::task::block_in_place(before_kill);
    kill(&mut worker);
    kill(&mut fleet);
    publish(broker, &events, &lines[cut..]).await;
    let mut fleet = stack.spawn("fleet");
    let mut worker = stack.spawn("worker");
    let (got, _) = tokio::task::block_in_place(|| distinct_alerts(stack, expected));
    terminate(&mut worker);
    terminate(&mut fleet);
    assert_eq!(&got, expected, "{}", report(&got, expected));
}

/// Five hours of 1,000 hourly devices that carry their `PeriodicInformInterval`,
/// 256 to a /24; the first /24 is dark from 1 h to 4 h and comes back without a
/// boot (each device at its next periodic time).
fn silence_scenario() -> Vec<(String, String)> {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const T0: i64 = 1_795_478_400_000;
    let class = "202BC1 BM632w";
    let mut events: Vec<(i64, usize)> = Vec::new();
    for device in 0..1000usize {
        let phase = (device as i64 * 7919) % HOUR;
        let mut t = T0 + phase;
        while t < T0 + 5 * HOUR {
            let dark = device < 256 && (T0 + HOUR..T0 + 4 * HOUR).contains(&t);
            if !dark {
                events.push((t, device));
            }
            t += HOUR;
        }
    }
    events.sort();
    events
        .into_iter()
        .enumerate()
        .map(|(offset, (t, device))| {
            let (id, line) =
                crate::detect::record(device, class, t, &[("2 PERIODIC", "periodic")], offset);
            let mut v: serde_json::Value = serde_json::from_str(&line).expect("json");
            v["remote_addr"] = format!("10.0.{}.{}", device / 256, device % 256).into();
            if let Some(params) = v["params"].as_array_mut() {
                params.push(serde_json::json!({
                    "name": "InternetGatewayDevice.ManagementServer.PeriodicInformInterval",
                    "value": "3600", "type": "xsd:unsignedInt"
                }));
            }
            (id, v.to_string())
        })
        .collect()
}

/// Devices silent before a restart are still known silent after it: both stages
/// killed with SIGKILL while a network outage's inform_silence is open, restarted,
/// then the devices' return as a backlog: the alert resolves under its id, as in the
/// replay (with `detect.state = memory` the restarted worker would not know who was
/// silent, and the alert would stay open for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_open_before_a_kill_resolves_after_it() {
    let broker = Broker::start();
    let stack = Stack::create(&broker, "detect-silence", PARTITIONS).await;
    let lines = silence_scenario();
    let expected: BTreeSet<String> = replay_lines(&lines).into_iter().collect();
    let silence = |state: &str| {
        format!(
            r#""kind":"inform_silence","state":"{state}","scope":"network","key":"10.0.0.0/24""#
        )
    };
    for state in ["open", "resolved"] {
        assert!(
            expected.iter().any(|a| a.contains(&silence(state))),
            "the replay {state}s the silence: {expected:#?}"
        );
    }
    // Up to 3 h 40: every dark device is overdue, none is back.
    let cut = lines.partition_point(|(_, l)| {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        v["received_at_ms"].as_i64().unwrap_or(0) < 1_795_478_400_000 + 220 * 60_000
    });
    let opened: BTreeSet<String> = expected
        .iter()
        .filter(|a| a.contains(&silence("open")))
        .cloned()
        .collect();
    assert_eq!(opened.len(), 1);
    kill_both_between(&broker, &stack, &lines, cut, &expected, || {
        // The fleet stage has decided the opening window, and checkpointed after it.
        let (seen, _) = distinct_alerts(&stack, &opened);
        assert!(seen.is_superset(&opened), "{seen:#?}");
        std::thread::sleep(Duration::from_secs(2));
    })
    .await;
}

/// What the chart's detect StatefulSets rely on: a worker restarted after SIGKILL
/// with the same `group.instance.id` (the pod name) gets its partitions back, and
/// their state, without waiting out the dead member's session (20 s here), and the
/// alerts are still the replay's. On a broker that honours static membership only
/// (tansu does; librdkafka's mock cluster ignores `group.instance.id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_worker_gets_its_partitions_back_at_once() {
    let broker = Broker::start();
    if broker.mock().is_some() {
        eprintln!("skipped: the mock cluster does not implement static membership");
        return;
    }
    let stack = Stack::create(&broker, "detect-static", PARTITIONS).await;
    let lines = scenario();
    let expected: BTreeSet<String> = replay_lines(&lines).into_iter().collect();
    let (first, second) = (lines.len() / 3, 2 * lines.len() / 3);
    let events = stack.topic("events");
    let env = [
        ("CWMP__KAFKA__GROUP_INSTANCE_ID", "detect-worker-0"),
        ("CWMP__KAFKA__CONSUMER__SESSION_TIMEOUT_MS", "20000"),
    ];
    publish(&broker, &events, &lines[..first]).await;
    let mut fleet = stack.spawn("fleet");
    let mut worker = stack.spawn_with("worker", &env);
    stack.wait_checkpointed(first, &mut [&mut fleet, &mut worker]);
    kill(&mut worker);
    publish(&broker, &events, &lines[first..second]).await;
    let mut worker = stack.spawn_with("worker", &env);
    let started = Instant::now();
    stack.wait_checkpointed(second, &mut [&mut fleet, &mut worker]);
    let gap = started.elapsed();
    eprintln!("restart to the backlog checkpointed, static worker: {gap:?}");
    assert!(
        gap < Duration::from_secs(15),
        "the static worker took its partitions back without waiting out the 20 s session: {gap:?}"
    );
    publish(&broker, &events, &lines[second..]).await;
    let (got, _) = tokio::task::block_in_place(|| distinct_alerts(&stack, &expected));
    terminate(&mut worker);
    terminate(&mut fleet);
    assert_eq!(got, expected, "{}", report(&got, &expected));
}
