//! Observations decoded from EventRecord JSON agree with those built from records.

use cwmp_detect::{Kinds, Observation, ObservationError};
use cwmp_record::{EventRecord, Meta, Source};

fn record_json() -> Vec<u8> {
    let body = br#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Body><cwmp:Inform>
<DeviceId><Manufacturer>Acme</Manufacturer><OUI>202BC1</OUI><ProductClass>BM632w</ProductClass><SerialNumber>SN1</SerialNumber></DeviceId>
<Event><EventStruct><EventCode>1 BOOT</EventCode><CommandKey></CommandKey></EventStruct><EventStruct><EventCode>M Reboot</EventCode><CommandKey>rb</CommandKey></EventStruct></Event>
<MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2026-11-24T10:00:00Z</CurrentTime><RetryCount>2</RetryCount>
<ParameterList><ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.SoftwareVersion</Name><Value> V100 </Value></ParameterValueStruct></ParameterList>
</cwmp:Inform></soap:Body></soap:Envelope>"#;
    let inform = cwmp_inform::extract(body, &cwmp_inform::Options::default()).expect("inform");
    let meta = Meta {
        received_at_ms: Some(1_795_514_400_000),
        acs: Some("acs-1".into()),
        source: Source::kafka("cwmp.informs.raw", 3, 991),
        ..Meta::default()
    };
    EventRecord::from_inform(inform, meta).to_json()
}

#[test]
fn decodes_what_the_detectors_need() {
    let mut json = record_json();
    let mut copy = json.clone();
    let record = EventRecord::from_json(&mut copy).expect("record");
    let expected = Observation::from_record(&record).expect("event time");
    let obs = Observation::from_json(&mut json).expect("observation");
    assert_eq!(obs, expected);
    assert_eq!(obs.device_id, "202BC1-BM632w-SN1");
    assert_eq!(obs.product_class, "202BC1 BM632w");
    assert_eq!(obs.software_version.as_deref(), Some("V100"));
    assert!(obs.retry);
    assert!(obs.kinds.acs_reboot() && !obs.kinds.local_boot());
    assert!(obs.kinds.has(Kinds::M_REBOOT));
    assert_eq!(obs.source.as_ref().map(|s| s.offset), Some(991));
}

/// Records written before `boot_cause` existed have no such field: the detectors
/// derive the cause from the events, so they judge them the same way.
#[test]
fn records_without_boot_cause_are_judged_the_same() {
    let json = String::from_utf8(record_json()).expect("utf8");
    assert!(json.contains(r#""boot_cause":"acs_reboot","#), "{json}");
    let older = json.replace(r#""boot_cause":"acs_reboot","#, "");
    let mut now = json.into_bytes();
    let mut then = older.into_bytes();
    let a = Observation::from_json(&mut now).expect("current record");
    let b = Observation::from_json(&mut then).expect("older record");
    assert_eq!(a, b);
    assert_eq!(
        a.kinds.boot_cause(),
        Some(cwmp_record::BootCause::AcsReboot)
    );
}

#[test]
fn typed_errors_for_bad_lines() {
    let mut not_json = b"<xml/>".to_vec();
    assert_eq!(
        Observation::from_json(&mut not_json).unwrap_err().kind(),
        "decode"
    );
    let mut other = String::from_utf8(record_json())
        .expect("utf8")
        .replacen("\"schema\":1", "\"schema\":2", 1)
        .into_bytes();
    assert!(matches!(
        Observation::from_json(&mut other),
        Err(ObservationError::Schema(2))
    ));
    let mut timeless = String::from_utf8(record_json())
        .expect("utf8")
        .replace(
            "\"received_at_ms\":1795514400000",
            "\"received_at_ms\":null",
        )
        .into_bytes();
    assert_eq!(
        Observation::from_json(&mut timeless).unwrap_err().kind(),
        "no_event_time"
    );
}
