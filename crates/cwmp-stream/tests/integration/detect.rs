//! The detect service on a broker: one or four workers give exactly the alerts of
//! `detect --replay` over the same records; the replay command itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cwmp_stream::config::{Config, Stage};
use cwmp_stream::detect::{self, DetectMetrics};
use cwmp_stream::health::Health;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio::sync::watch;

use crate::kafka_util::{read_topic, Broker};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_795_478_400_000;
pub(crate) const PARTITIONS: i32 = 8;

/// One EventRecord v1 line.
pub(crate) fn record(
    device: usize,
    class: &str,
    time_ms: i64,
    codes: &[(&str, &str)],
    offset: usize,
) -> (String, String) {
    let (oui, product_class) = class.split_once(' ').unwrap_or((class, ""));
    let serial = format!("SN{device:05}");
    let device_id = format!("{oui}-{product_class}-{serial}");
    let events: Vec<_> = codes
        .iter()
        .map(|(code, kind)| json!({"code": code, "kind": kind, "command_key": ""}))
        .collect();
    let line = json!({
        "schema": 1,
        "device_id": device_id,
        "device": {"manufacturer": "Acme", "oui": oui, "product_class": product_class, "serial_number": serial},
        "events": events,
        "cwmp": {"namespace": "urn:dslforum-org:cwmp-1-0", "version": "1.0", "session_id": null, "session_timeout": null, "supported_versions": null},
        "max_envelopes": 1, "retry_count": 0,
        "current_time": null, "cpe_time_ms": null,
        "received_at_ms": time_ms, "acs": format!("acs-{}", device % 2), "remote_addr": null,
        "root": "InternetGatewayDevice",
        "params": [{"name": "InternetGatewayDevice.DeviceInfo.SoftwareVersion", "value": format!("V{}", device % 3), "type": "xsd:string"}],
        "warnings": [],
        "source": {"topic": "cwmp.informs.raw", "partition": 0, "offset": offset},
    });
    (device_id, line.to_string())
}

/// One TransferRecord v1 line: the result of campaign `key` (fault `code`, 0 = success).
fn transfer(
    device: usize,
    class: &str,
    time_ms: i64,
    key: &str,
    code: u32,
    offset: usize,
) -> (String, String) {
    let (oui, product_class) = class.split_once(' ').unwrap_or((class, ""));
    let serial = format!("SN{device:05}");
    let device_id = format!("{oui}-{product_class}-{serial}");
    let line = json!({
        "schema": 1, "rpc": "TransferComplete", "device_id": device_id,
        "device": {"manufacturer": "Acme", "oui": oui, "product_class": product_class, "serial_number": serial},
        "attribution": "session", "command_key": key,
        "result": if code == 0 { "success" } else { "failure" },
        "fault": {"code": code, "class": cwmp_record::fault_class(Some(code)), "string": ""},
        "start_time": null, "start_time_ms": null, "complete_time": null, "complete_time_ms": null,
        "autonomous": null, "software_version": format!("V{}", device % 3),
        "cwmp": {"namespace": "urn:dslforum-org:cwmp-1-0", "version": "1.0", "session_id": null, "session_timeout": null, "supported_versions": null},
        "received_at_ms": time_ms, "acs": format!("acs-{}", device % 2), "remote_addr": null,
        "warnings": [],
        "source": {"topic": "cwmp.informs.raw", "partition": 0, "offset": offset},
    });
    (device_id, line.to_string())
}

/// Three hours of a 1,200-device fleet: periodic informs, a power cut on one product
/// class at 2 h, one device in a reboot loop, and a firmware campaign on another
/// class at 2 h 30 whose downloads fail on a third of it (upgrade boots and
/// TransferComplete results) — in arrival order.
pub(crate) fn scenario() -> Vec<(String, String)> {
    let classes = ["202BC1 BM632w", "00D09E HG8245H", "A0F3C1 ArcherC7"];
    // (time, device, class, event codes and kinds)
    type Planned<'a> = (i64, usize, &'a str, Vec<(&'a str, &'a str)>);
    let mut events: Vec<Planned> = Vec::new();
    for device in 0..1200 {
        let class = classes[device % 3];
        let phase = (device as i64 * 7919) % HOUR;
        let mut t = T0 + phase;
        while t < T0 + 3 * HOUR + 30 * MIN {
            events.push((t, device, class, vec![("2 PERIODIC", "periodic")]));
            t += HOUR;
        }
        if class == classes[0] && device % 5 != 0 {
            let at = T0 + 2 * HOUR + (device as i64 * 104_729) % (3 * MIN);
            events.push((at, device, class, vec![("1 BOOT", "boot")]));
        }
    }
    for i in 0..5 {
        events.push((
            T0 + HOUR + i * 6 * MIN,
            4,
            classes[1],
            vec![("1 BOOT", "boot")],
        ));
    }
    // The campaign: an upgrade boot and a successful result, or a 9010 failure.
    let mut transfers: Vec<(i64, usize, &str, u32)> = Vec::new();
    for device in (2..1200).step_by(3) {
        let at = T0 + 2 * HOUR + 30 * MIN + (device as i64 * 7_717) % (10 * MIN);
        if device % 9 == 2 {
            transfers.push((at, device, classes[2], 9010));
        } else {
            events.push((
                at,
                device,
                classes[2],
                vec![
                    ("1 BOOT", "boot"),
                    ("7 TRANSFER COMPLETE", "transfer_complete"),
                    ("M Download", "m_download"),
                ],
            ));
            transfers.push((at + 1_000, device, classes[2], 0));
        }
    }
    type Line<'a> = (i64, usize, Option<u32>, &'a str, Vec<(&'a str, &'a str)>);
    let mut all: Vec<Line> = events
        .into_iter()
        .map(|(t, d, class, codes)| (t, d, None, class, codes))
        .chain(
            transfers
                .into_iter()
                .map(|(t, d, class, code)| (t, d, Some(code), class, Vec::new())),
        )
        .collect();
    all.sort_by_key(|(t, d, code, _, _)| (*t, *d, code.is_some()));
    all.into_iter()
        .enumerate()
        .map(|(offset, (t, d, code, class, codes))| match code {
            Some(code) => transfer(d, class, t, "fw-9", code, offset),
            None => {
                let (id, line) = record(d, class, t, &codes, offset);
                // The upgrade boot names its campaign in `M Download`.
                let mut value: serde_json::Value = serde_json::from_str(&line).expect("json");
                if let Some(events) = value["events"].as_array_mut() {
                    for e in events.iter_mut().filter(|e| e["code"] == "M Download") {
                        e["command_key"] = json!("fw-9");
                    }
                }
                (id, value.to_string())
            }
        })
        .collect()
}

pub(crate) fn replay_lines(lines: &[(String, String)]) -> Vec<String> {
    let input: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut out = Vec::new();
    detect::replay::replay(
        &cwmp_detect::DetectConfig::default(),
        input.as_bytes(),
        &mut out,
        std::io::sink(),
    )
    .expect("replay");
    let mut alerts: Vec<String> = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    alerts.sort();
    alerts
}

/// A stable partition per device, as a keyed producer would choose.
fn partition_of(device_id: &str) -> i32 {
    let h = device_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % PARTITIONS as u64) as i32
}

async fn run_kafka(workers: usize, lines: &[(String, String)], backlog_first: bool) -> Vec<String> {
    let expected = replay_lines(lines).len();
    run_kafka_with(workers, lines, backlog_first, None, expected)
        .await
        .0
}

/// As [`run_kafka`], reading until `expected` alerts arrived; with
/// `raw_partitions`, a raw topic of that many partitions exists (the workers then
/// wait for each as a source). Also returns the records the workers judged late.
async fn run_kafka_with(
    workers: usize,
    lines: &[(String, String)],
    backlog_first: bool,
    raw_partitions: Option<i32>,
    expected: usize,
) -> (Vec<String>, u64) {
    let broker = Broker::start();
    let stamp = format!(
        "detect-{workers}-{}-{}",
        if backlog_first { "backlog" } else { "live" },
        std::process::id()
    );
    let (events, aggregates, alerts) = (
        format!("{stamp}.events"),
        format!("{stamp}.aggregates"),
        format!("{stamp}.alerts"),
    );
    broker.create_topic(&events, PARTITIONS).await;
    broker.create_topic(&aggregates, 4).await;
    broker.create_topic(&alerts, 1).await;
    let mut config = Config::default();
    config.ingest.input_topic = format!("{stamp}.raw");
    if let Some(n) = raw_partitions {
        broker.create_topic(&config.ingest.input_topic, n).await;
    }
    config.kafka.brokers = broker.bootstrap.clone();
    config.metrics.listen = String::new();
    config.detect.input_topic = events.clone();
    config.detect.aggregates_topic = aggregates;
    config.detect.alerts_topic = alerts.clone();
    config.detect.group_id = format!("{stamp}.workers");
    config.detect.fleet_group_id = format!("{stamp}.fleet");
    config.detect.state_topic = format!("{stamp}.state");
    config.detect.fleet_state_topic = format!("{stamp}.fleet-state");
    broker
        .create_state_topic(&config.detect.state_topic, PARTITIONS)
        .await;
    broker
        .create_state_topic(&config.detect.fleet_state_topic, 4)
        .await;
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("auto.commit.interval.ms", "200"),
    ] {
        config.kafka.consumer.insert(k.into(), v.into());
    }
    if backlog_first {
        // Every record is in the topic before a consumer starts: a backlog to catch up.
        publish(&broker, &events, lines).await;
    }
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut worker_metrics = Vec::new();
    let mut fleet_config = config.clone();
    fleet_config.detect.stage = Stage::Fleet;
    {
        let stop = stop.clone();
        let metrics = DetectMetrics::new();
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        tasks.push(tokio::spawn(async move {
            detect::run(&fleet_config, metrics, health, stop).await
        }));
    }
    for _ in 0..workers {
        let mut c = config.clone();
        c.detect.stage = Stage::Worker;
        let stop = stop.clone();
        let metrics = DetectMetrics::new();
        worker_metrics.push(metrics.clone());
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        tasks.push(tokio::spawn(async move {
            detect::run(&c, metrics, health, stop).await
        }));
    }
    // Wait for the group to settle, so that no rebalance moves partitions mid-input.
    let start = Instant::now();
    let mut steady_since: Option<Instant> = None;
    loop {
        let assigned: i64 = worker_metrics
            .iter()
            .map(|m| m.worker_consumer.assigned_partitions.get())
            .sum();
        let all_have = worker_metrics
            .iter()
            .all(|m| m.worker_consumer.assigned_partitions.get() > 0);
        if assigned == PARTITIONS as i64 && all_have {
            let since = *steady_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                break;
            }
        } else {
            steady_since = None;
        }
        if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
            let ended = tasks.swap_remove(i).await.expect("join");
            panic!("a detect stage ended before the group settled: {ended:?}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker group did not settle"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !backlog_first {
        publish(&broker, &events, lines).await;
    }
    let got = tokio::task::block_in_place(|| {
        read_topic(&broker, &alerts, expected, false, Duration::from_secs(120))
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            .collect::<Vec<_>>()
    });
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("join").expect("clean stop");
    }
    let late = worker_metrics
        .iter()
        .map(|m| {
            m.records(detect::metrics::RecordResult::Judged(
                cwmp_detect::Verdict::Late,
            ))
        })
        .sum();
    let mut got = got;
    got.sort();
    (got, late)
}

/// Produces `lines` to the events topic, each on its device's partition.
pub(crate) async fn publish(broker: &Broker, events: &str, lines: &[(String, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for (device_id, line) in lines {
        let record = FutureRecord::to(events)
            .key(device_id.as_bytes())
            .payload(line.as_bytes())
            .partition(partition_of(device_id));
        deliveries.push(producer.send(record, Duration::from_secs(30)));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
}

/// What `simulate` at full speed through ingest gives: each events partition holds
/// the records of every raw partition (ingest interleaves them), and ingest drained
/// some raw partitions far ahead of others, so within an events partition one
/// source runs 45 minutes of event time ahead of another. Published as a backlog
/// before the worker starts (one: a rebalance while a backlog is caught up still
/// loses in-memory detector state), with the raw topic visible: nothing turns late, and the
/// alerts are those of the time-ordered replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_partitions_drained_at_different_paces_lose_nothing() {
    const SOURCES: i64 = 4;
    let mut lines: Vec<(i64, i64, String, String)> = scenario()
        .into_iter()
        .map(|(id, line)| {
            let mut v: serde_json::Value = serde_json::from_str(&line).expect("json");
            // A device's sessions land on one raw partition.
            let source = id.bytes().map(i64::from).sum::<i64>() % SOURCES;
            v["source"]["partition"] = json!(source);
            let t = v["received_at_ms"].as_i64().expect("time");
            (t, source, id, v.to_string())
        })
        .collect();
    let in_time_order: Vec<(String, String)> = lines
        .iter()
        .map(|(_, _, id, l)| (id.clone(), l.clone()))
        .collect();
    let expected = replay_lines(&in_time_order);
    lines.sort_by_key(|(t, source, _, _)| (*t - source * 15 * MIN, *source));
    let skewed: Vec<(String, String)> = lines.into_iter().map(|(_, _, id, l)| (id, l)).collect();
    let (got, late) = run_kafka_with(2, &skewed, true, Some(SOURCES as i32), expected.len()).await;
    assert_eq!(late, 0, "records judged late");
    assert_eq!(got, expected, "skewed sources, backlog first");
}

/// The records are all published before the worker starts, so it catches up a backlog
/// over its partitions, drained at whatever pace the fetches give.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_caught_up_gives_the_alerts_of_the_replay() {
    let lines = scenario();
    let expected = replay_lines(&lines);
    assert!(!expected.is_empty());
    let got = run_kafka(1, &lines, true).await;
    assert_eq!(got, expected, "backlog first, one worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_and_four_workers_give_the_alerts_of_the_replay() {
    let lines = scenario();
    let expected = replay_lines(&lines);
    let kinds: Vec<String> = expected
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["kind"].to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "\"boot_storm\""), "{expected:#?}");
    assert!(
        kinds.iter().any(|k| k == "\"reboot_loop\""),
        "{expected:#?}"
    );
    assert!(
        kinds.iter().any(|k| k == "\"rollout_failure\""),
        "{expected:#?}"
    );
    for workers in [1, 4] {
        let got = run_kafka(workers, &lines, false).await;
        assert_eq!(got, expected, "{workers} worker(s)");
    }
}

#[test]
fn replay_prints_alerts_and_a_summary() {
    let dir = std::env::temp_dir().join(format!("cwmp-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("records.ndjson");
    let lines = scenario();
    let mut text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    text.push_str("not json\n");
    std::fs::write(&file, text).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
        .args(["detect", "--replay"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let mut printed: Vec<String> = stdout.lines().map(str::to_owned).collect();
    printed.sort();
    assert_eq!(printed, replay_lines(&lines));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("line {}: decode", lines.len() + 1)),
        "{stderr}"
    );
    assert!(stderr.contains("1 invalid"), "{stderr}");
}
