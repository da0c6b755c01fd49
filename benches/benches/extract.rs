//! `inform_extract`: throughput of Inform extraction against rival parsers, over
//! realistic Informs of 1.5, 4 and 16 KB in mixed vendor styles, and of a
//! `TransferComplete` (`tc_transfer_complete`, read by `extract_message`).
//!
//! Run: `cargo bench -p cwmp-benches --bench extract`. Compare ratios within one run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cwmp_benches::{inputs, quick_xml_042_events, quick_xml_events, roxmltree_extract};
use cwmp_record::{EventRecord, Meta};

fn inform_extract(c: &mut Criterion) {
    let options = cwmp_inform::Options::default();
    let mut group = c.benchmark_group("inform_extract");
    for input in inputs() {
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("cwmp_inform", input.name),
            input.bytes,
            |b, bytes| {
                b.iter(|| cwmp_inform::extract(black_box(bytes), &options).map(|i| i.params.len()))
            },
        );
        let mut out = Vec::with_capacity(64 * 1024);
        group.bench_with_input(
            BenchmarkId::new("cwmp_record", input.name),
            input.bytes,
            |b, bytes| {
                b.iter(|| {
                    out.clear();
                    if let Ok(inform) = cwmp_inform::extract(black_box(bytes), &options) {
                        let record = EventRecord::from_inform(inform, Meta::default());
                        record.write_json(&mut out);
                    }
                    out.len()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("quick_xml_events", input.name),
            input.bytes,
            |b, bytes| b.iter(|| quick_xml_events(black_box(bytes))),
        );
        group.bench_with_input(
            BenchmarkId::new("roxmltree", input.name),
            input.bytes,
            |b, bytes| b.iter(|| roxmltree_extract(black_box(bytes)).map(|e| e.params.len())),
        );
        group.bench_with_input(
            BenchmarkId::new("quick_xml_serde", input.name),
            input.bytes,
            |b, bytes| {
                b.iter(|| cwmp_benches::quick_xml_serde(black_box(bytes)).map(|e| e.params.len()))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("cwmp_crate", input.name),
            input.bytes,
            |b, bytes| b.iter(|| cwmp_benches::cwmp_crate(black_box(bytes)).is_some()),
        );
    }
    let tc = cwmp_benches::transfer_input();
    group.throughput(Throughput::Bytes(tc.bytes.len() as u64));
    group.bench_with_input(
        BenchmarkId::new("cwmp_inform", tc.name),
        tc.bytes,
        |b, bytes| {
            b.iter(
                || match cwmp_inform::extract_message(black_box(bytes), &options) {
                    Ok(cwmp_inform::Message::Transfer(t)) => t.fault.and_then(|f| f.code),
                    _ => None,
                },
            )
        },
    );
    let mut out = Vec::with_capacity(4096);
    group.bench_with_input(
        BenchmarkId::new("cwmp_record", tc.name),
        tc.bytes,
        |b, bytes| {
            b.iter(|| {
                out.clear();
                if let Ok(cwmp_inform::Message::Transfer(t)) =
                    cwmp_inform::extract_message(black_box(bytes), &options)
                {
                    let device = cwmp_record::Attributed {
                        device_id: "D".into(),
                        device: None,
                        software_version: None,
                        how: cwmp_record::Attribution::Session,
                    };
                    cwmp_record::TransferRecord::from_transfer(t, device, Meta::default())
                        .write_json(&mut out);
                }
                out.len()
            })
        },
    );
    group.bench_with_input(
        BenchmarkId::new("quick_xml_events", tc.name),
        tc.bytes,
        |b, bytes| b.iter(|| quick_xml_events(black_box(bytes))),
    );
    group.bench_with_input(
        BenchmarkId::new("roxmltree", tc.name),
        tc.bytes,
        |b, bytes| {
            b.iter(|| cwmp_benches::roxmltree_transfer(black_box(bytes)).map(|t| t.fault_code))
        },
    );
    group.finish();
}

/// quick-xml 0.41 against 0.42 on the same bare event loop: the evidence for the pin.
fn quick_xml_version(c: &mut Criterion) {
    let mut group = c.benchmark_group("quick_xml_version");
    for input in inputs() {
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("v0_41", input.name),
            input.bytes,
            |b, bytes| b.iter(|| quick_xml_events(black_box(bytes))),
        );
        group.bench_with_input(
            BenchmarkId::new("v0_42", input.name),
            input.bytes,
            |b, bytes| b.iter(|| quick_xml_042_events(black_box(bytes))),
        );
    }
    group.finish();
}

criterion_group!(benches, inform_extract, quick_xml_version);
criterion_main!(benches);
