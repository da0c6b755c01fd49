//! Feeds arbitrary lines to the detector input decoder (`Observation::from_json`)
//! and every line that decodes to a worker and fleet stage: any remote address,
//! `PeriodicInformInterval`, event time or event mix must give a typed error or a
//! verdict, never a panic or a hang. The first line is also read as a simulator
//! scenario (`kind@offset:key=value,...`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(first) = data.split(|&b| b == b'\n').next() {
        let _ = String::from_utf8_lossy(first).parse::<cwmp_sim::Scenario>();
    }
    let Ok(mut pipeline) = cwmp_detect::Pipeline::new(cwmp_detect::DetectConfig::default()) else {
        return;
    };
    let mut alerts = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let mut buf = line.to_vec();
        if let Ok(obs) = cwmp_detect::Observation::from_json(&mut buf) {
            pipeline.observe(&obs, &mut alerts);
        }
    }
});
