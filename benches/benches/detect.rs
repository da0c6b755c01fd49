//! `detect`: decode + detect of EventRecords on one core, against decode alone;
//! and the state the worker holds per tracked device.
//!
//! Records are real EventRecord JSON (the 1.5 KB Huawei Inform of the extraction
//! bench, re-keyed per device): 20,000 devices informing every 10 minutes for two
//! hours, with a power cut on a quarter of them, in arrival order.
//!
//! Run: `cargo bench -p cwmp-benches --bench detect`. The state figure is printed
//! first: 1,000,000 devices, each seen once (`DETECT_BENCH_DEVICES` to change), with
//! the checkpoint of that worker (bytes, time to write and to restore), and what
//! the checkpoints after 10 s and 60 s more of informs write (only what changed).
//! Then `decode_and_detect` with persistence off and on, interleaved.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cwmp_detect::{DetectConfig, Observation, Pipeline};
use cwmp_record::{EventRecord, Meta, Source};
use cwmp_stream::detect::checkpoint::ChunkBook;
use serde_json::{json, Value};

const T0: i64 = 1_795_478_400_000;
const MIN: i64 = 60_000;

fn base_record() -> Value {
    let input = &cwmp_benches::inputs()[0];
    let inform =
        cwmp_inform::extract(input.bytes, &cwmp_inform::Options::default()).expect("bench input");
    let meta = Meta {
        received_at_ms: Some(T0),
        acs: Some("acs-eu-1".into()),
        source: Source::kafka("cwmp.informs.raw", 0, 0),
        ..Meta::default()
    };
    let json = EventRecord::from_inform(inform, meta).to_json();
    serde_json::from_slice(&json).expect("value")
}

fn record(base: &Value, device: u64, time_ms: i64, boot: bool, offset: u64) -> Vec<u8> {
    let mut v = base.clone();
    let serial = format!("SN{device:08}");
    v["device"]["serial_number"] = json!(serial);
    v["device_id"] = json!(format!("202BC1-BM632w-{serial}"));
    v["received_at_ms"] = json!(time_ms);
    v["source"]["offset"] = json!(offset);
    v["remote_addr"] = json!(format!("100.64.{}.{}", (device >> 8) & 255, device & 255));
    v["events"] = if boot {
        json!([{"code": "1 BOOT", "kind": "boot", "command_key": ""}])
    } else {
        json!([{"code": "2 PERIODIC", "kind": "periodic", "command_key": ""}])
    };
    serde_json::to_vec(&v).expect("json")
}

fn records() -> Vec<Vec<u8>> {
    let base = base_record();
    let devices = 20_000u64;
    let mut timed: Vec<(i64, u64, bool)> = Vec::new();
    for d in 0..devices {
        let phase = (d as i64 * 7919) % (10 * MIN);
        let mut t = T0 + phase;
        while t < T0 + 120 * MIN {
            timed.push((t, d, false));
            t += 10 * MIN;
        }
        if d % 4 == 0 {
            timed.push((T0 + 60 * MIN + (d as i64 * 31) % (3 * MIN), d, true));
        }
    }
    timed.sort();
    timed
        .into_iter()
        .enumerate()
        .map(|(i, (t, d, boot))| record(&base, d, t, boot, i as u64))
        .collect()
}

fn rss_kib() -> u64 {
    cwmp_benches::live::proc_status_kib("VmRSS")
}

/// Tracks `n` devices, one periodic inform each, and reports the state per device:
/// the worker's own accounting and the growth of the resident set.
fn state_per_device() {
    let n: u64 = std::env::var("DETECT_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = Observation {
        device_id: String::new(),
        time_ms: T0,
        product_class: "202BC1 BM632w".into(),
        acs: Some("acs-eu-1".into()),
        software_version: Some("V100R001".into()),
        retry: false,
        kinds: cwmp_detect::Kinds::from_bits(cwmp_detect::Kinds::PERIODIC),
        source: None,
        command_key: None,
        transfer: None,
        remote_addr: None,
        // The interval is carried: every device is tracked at once, with its
        // cadence, profile and deadline (the silence detector's whole cost).
        inform_interval_s: Some(3600),
    };
    let before = rss_kib();
    let mut pipeline = Pipeline::new(DetectConfig::default()).expect("valid defaults");
    let mut alerts = Vec::new();
    let mut obs = base.clone();
    for d in 0..n {
        obs.device_id = format!("202BC1-BM632w-SN{d:08}");
        // 256 devices per /24, as a residential access network hands them out.
        obs.remote_addr = Some(format!(
            "10.{}.{}.{}",
            (d >> 16) & 255,
            (d >> 8) & 255,
            d & 255
        ));
        // One hour of informs: every device once, in time order.
        obs.time_ms = T0 + (d as i64 * 3_600_000) / n as i64;
        obs.source = Some(cwmp_detect::SourcePos {
            topic: "cwmp.informs.raw".into(),
            partition: 0,
            offset: d as i64,
        });
        pipeline.observe(&obs, &mut alerts);
    }
    let after = rss_kib();
    let tracked = pipeline.worker.tracked_devices() as u64;
    let (with_cadence, _) = pipeline.worker.cadences();
    assert_eq!(
        with_cadence as u64, tracked,
        "every device has its deadline"
    );
    let bytes = pipeline.worker.state_bytes() as u64;
    println!(
        "detect/state: {tracked} devices tracked; state {bytes} bytes = {:.1} bytes/device (worker accounting); resident set grew {} KiB = {:.1} bytes/device",
        bytes as f64 / tracked as f64,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / tracked as f64
    );
    assert!(alerts.is_empty());
    let mut book = checkpoint_of(&pipeline.worker, tracked);
    // The next hour begins: every device informs again, in the same order. What a
    // checkpoint writes after 10 s and after 60 s of it (the default interval, and
    // six of them), per record processed in between.
    let mut d = 0u64;
    for (gen, span_s) in (2..).zip([10u64, 60]) {
        let upto = d + n * span_s / 3600;
        let inputs = upto - d;
        while d < upto {
            obs.device_id = format!("202BC1-BM632w-SN{d:08}");
            obs.time_ms = T0 + 3_600_000 + (d as i64 * 3_600_000) / n as i64;
            pipeline.observe(&obs, &mut alerts);
            d += 1;
        }
        let started = Instant::now();
        let snapshot = pipeline.worker.snapshot();
        let planned = cwmp_stream::detect::checkpoint::plan(&book, gen, d as i64, &snapshot);
        let took = started.elapsed();
        println!(
            "detect/checkpoint: after {span_s} s of informs ({inputs} records): {} of {} bytes written ({:.2} %) in {} of {} chunks = {:.0} bytes per input record; taken in {:.2} s",
            planned.written_bytes,
            planned.state_bytes,
            planned.written_bytes as f64 * 100.0 / planned.state_bytes as f64,
            planned.chunks_written,
            planned.chunks,
            planned.written_bytes as f64 / inputs as f64,
            took.as_secs_f64()
        );
        planned.delivered(&mut book);
    }
}

/// What `detect.state = "kafka"` does with that worker: its first checkpoint
/// (snapshot and chunking into state-topic records) and its restore, timed, with the
/// bytes. Returns what the state partition then holds.
fn checkpoint_of(worker: &cwmp_detect::Worker, tracked: u64) -> ChunkBook {
    let started = Instant::now();
    let snapshot = worker.snapshot();
    let encoded = started.elapsed();
    let mut book = ChunkBook::default();
    let planned = cwmp_stream::detect::checkpoint::plan(&book, 1, 0, &snapshot);
    let written = started.elapsed();
    let bytes = planned.written_bytes;
    let records = planned.records.len();
    let started = Instant::now();
    let restored =
        cwmp_detect::Worker::restore(DetectConfig::default(), &snapshot).expect("restores");
    let took = started.elapsed();
    assert_eq!(restored.tracked_devices() as u64, tracked);
    println!(
        "detect/checkpoint: {tracked} devices: {bytes} bytes in {records} records = {:.1} bytes/device; taken in {:.2} s (encoding {:.2} s, chunking {:.2} s); restored in {:.2} s",
        bytes as f64 / tracked as f64,
        written.as_secs_f64(),
        encoded.as_secs_f64(),
        (written - encoded).as_secs_f64(),
        took.as_secs_f64()
    );
    planned.delivered(&mut book);
    book
}

/// `decode_and_detect` with persistence off and on (a checkpoint of the worker and
/// the fleet stage at the end of every pass: some 25 times the default interval),
/// passes interleaved so that the machine's noise falls on both alike.
fn persistence_cost(records: &[Vec<u8>]) {
    let pass = |checkpoint: bool| -> f64 {
        let started = Instant::now();
        let mut pipeline = Pipeline::new(DetectConfig::default()).expect("valid defaults");
        let mut alerts = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        for r in records {
            buf.clear();
            buf.extend_from_slice(r);
            if let Ok(obs) = Observation::from_json(&mut buf) {
                pipeline.observe(&obs, &mut alerts);
            }
        }
        if checkpoint {
            let worker = pipeline.worker.snapshot();
            let fleet = pipeline.fleet.snapshot();
            // A first checkpoint (everything written): the most one can cost.
            let none = ChunkBook::default();
            black_box(cwmp_stream::detect::checkpoint::plan(&none, 1, 0, &worker));
            black_box(cwmp_stream::detect::checkpoint::plan(&none, 1, 0, &fleet));
        }
        black_box(alerts.len());
        started.elapsed().as_secs_f64()
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        off.push(pass(false));
        on.push(pass(true));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut off), median(&mut on));
    let rate = |secs: f64| records.len() as f64 / secs / 1000.0;
    println!(
        "detect/persistence: decode_and_detect {:.1} K records/s off, {:.1} K records/s with a checkpoint per pass ({:.3}x), medians of 7 interleaved passes",
        rate(off),
        rate(on),
        off / on
    );
}

fn detect(c: &mut Criterion) {
    state_per_device();
    let records = records();
    // Measured when benchmarking, not when `cargo test` runs each bench once.
    if std::env::args().any(|a| a == "--bench") {
        persistence_cost(&records);
    }
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(10);
    let mut buf = Vec::with_capacity(4096);
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &records {
                buf.clear();
                buf.extend_from_slice(r);
                n += Observation::from_json(&mut buf).map_or(0, |o| o.device_id.len());
            }
            black_box(n)
        })
    });
    group.bench_function("decode_and_detect", |b| {
        b.iter(|| {
            let mut pipeline = Pipeline::new(DetectConfig::default()).expect("valid defaults");
            let mut alerts = Vec::new();
            for r in &records {
                buf.clear();
                buf.extend_from_slice(r);
                if let Ok(obs) = Observation::from_json(&mut buf) {
                    pipeline.observe(&obs, &mut alerts);
                }
            }
            assert!(!alerts.is_empty(), "the power cut raises alerts");
            black_box(alerts.len())
        })
    });
    group.finish();
}

criterion_group!(benches, detect);
criterion_main!(benches);
