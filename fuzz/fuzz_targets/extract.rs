//! Feeds arbitrary bytes to the extractor and, when it accepts them, builds and
//! round-trips the record (an EventRecord for an Inform, a TransferRecord for a
//! `TransferComplete` or `AutonomousTransferComplete`). Any panic, hang or runaway
//! allocation is a bug, and so is any difference between the parser's shortcut for
//! plain markup and plain quick-xml events (`*_event_by_event`), or between
//! `extract` and `extract_message` on an Inform.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = cwmp_inform::Options::default();
    let extracted = cwmp_inform::extract(data, &options);
    assert_eq!(
        extracted,
        cwmp_inform::extract_event_by_event(data, &options)
    );
    let message = cwmp_inform::extract_message(data, &options);
    assert_eq!(
        message,
        cwmp_inform::extract_message_event_by_event(data, &options)
    );
    match (&message, &extracted) {
        (Ok(cwmp_inform::Message::Inform(a)), Ok(b)) => assert_eq!(a, b),
        (Ok(cwmp_inform::Message::Transfer(t)), Err(cwmp_inform::Error::NotInform { rpc, .. })) => {
            assert_eq!(rpc, t.rpc())
        }
        // `extract` stops at a transfer's RPC element (`NotInform`); reading on, the
        // message may fail later. Any other error both meet at the same place.
        (Err(_), Err(cwmp_inform::Error::NotInform { .. })) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (m, e) => panic!("extract and extract_message disagree: {m:?} / {e:?}"),
    }
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
    if let Ok(cwmp_inform::Message::Transfer(transfer)) = message {
        let device = cwmp_record::Attributed {
            device_id: "fuzz".into(),
            device: None,
            software_version: None,
            how: cwmp_record::Attribution::Header,
        };
        let record = cwmp_record::TransferRecord::from_transfer(transfer, device, Default::default());
        let mut json = record.to_json();
        assert!(cwmp_record::record_rpc(&json).is_transfer());
        let back = cwmp_record::TransferRecord::from_json(&mut json).expect("own JSON decodes");
        assert_eq!(back, record);
    }
});
