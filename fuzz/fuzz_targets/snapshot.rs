//! Feeds arbitrary bytes to the detector state decoders (`Worker::restore`,
//! `Fleet::restore`), as a state topic holding damaged or foreign records would.
//! Any panic, hang or runaway allocation is a bug: bad state is a typed
//! `SnapshotError` and a cold start. State that decodes must encode again to bytes
//! that decode, to the same content: the same bytes, but for the order of hash-map
//! entries, which a snapshot does not fix.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = cwmp_detect::DetectConfig::default();
    if let Ok(worker) = cwmp_detect::Worker::restore(config.clone(), data) {
        let again = worker.snapshot();
        let back = cwmp_detect::Worker::restore(config.clone(), &again).expect("own snapshot");
        assert_eq!(sorted(back.snapshot()), sorted(again));
    }
    if let Ok(fleet) = cwmp_detect::Fleet::restore(config.clone(), data) {
        let again = fleet.snapshot();
        let back = cwmp_detect::Fleet::restore(config, &again).expect("own snapshot");
        assert_eq!(sorted(back.snapshot()), sorted(again));
    }
});

fn sorted(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.sort_unstable();
    bytes
}
