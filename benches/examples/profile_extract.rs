//! Loops the extractor over one bench input, for profilers:
//! `cargo build --profile bench -p cwmp-benches --example profile_extract &&
//!  valgrind --tool=callgrind target/release/examples/profile_extract 1k5_huawei 20000`.
//! A third argument `floor` loops quick-xml's bare event loop instead, to compare
//! instruction counts with the bench's `quick_xml_events`.
fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "1k5_huawei".to_owned());
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let input = cwmp_benches::inputs()
        .into_iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no input {name}"));
    let options = cwmp_inform::Options::default();
    let mut total = 0;
    if args.next().as_deref() == Some("floor") {
        for _ in 0..rounds {
            total += cwmp_benches::quick_xml_events(std::hint::black_box(input.bytes));
        }
        println!("{total}");
        return;
    }
    for _ in 0..rounds {
        let inform = cwmp_inform::extract(std::hint::black_box(input.bytes), &options);
        total += inform.map(|i| i.params.len()).unwrap_or(0);
    }
    println!("{total}");
}
