//! Feeds arbitrary bytes to the extractor and, when it accepts them, builds and
//! round-trips the EventRecord. Any panic, hang or runaway allocation is a bug, and
//! so is any difference between the parser's shortcut for plain markup and plain
//! quick-xml events (`extract_event_by_event`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = cwmp_inform::Options::default();
    let extracted = cwmp_inform::extract(data, &options);
    assert_eq!(
        extracted,
        cwmp_inform::extract_event_by_event(data, &options)
    );
    match extracted {
        Ok(inform) => {
            assert!(!inform.device_id.oui.is_empty());
            assert!(!inform.device_id.serial_number.is_empty());
            let record = cwmp_record::EventRecord::from_inform(inform, Default::default());
            let mut json = record.to_json();
            let back = cwmp_record::EventRecord::from_json(&mut json).expect("own JSON decodes");
            assert_eq!(back, record);
        }
        Err(err) => {
            assert!(cwmp_inform::Error::KINDS.contains(&err.kind()));
            if !matches!(err, cwmp_inform::Error::TooLarge { .. }) {
                assert!(err.offset() <= data.len());
            }
        }
    }
});
