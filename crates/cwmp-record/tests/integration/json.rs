//! The hand-written JSON encoder against serde's derive on random records: the
//! bytes must be identical, and simd-json must decode them back to the record.

use std::borrow::Cow;

use cwmp_record::{
    BootCause, Cwmp, Device, EventKind, EventRecord, RecordEvent, RecordParam, Source,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        "[ -~]{0,12}",
        any::<String>(),
        "[\"\\\\\u{0}-\u{1f}\u{7f}é€😀a]{0,8}",
    ]
    .prop_map(Cow::Owned)
}

fn opt_text() -> impl Strategy<Value = Option<Cow<'static, str>>> {
    proptest::option::of(text())
}

fn record() -> impl Strategy<Value = EventRecord<'static>> {
    let device = (text(), text(), text(), text()).prop_map(|(m, o, p, s)| Device {
        manufacturer: m,
        oui: o,
        product_class: p,
        serial_number: s,
    });
    let event = (text(), 0..EventKind::ALL.len(), text()).prop_map(|(code, k, key)| RecordEvent {
        code,
        kind: EventKind::ALL[k],
        command_key: key,
    });
    let cwmp = (
        opt_text(),
        opt_text(),
        opt_text(),
        any::<Option<u32>>(),
        opt_text(),
    )
        .prop_map(
            |(namespace, version, session_id, session_timeout, supported_versions)| Cwmp {
                namespace,
                version,
                session_id,
                session_timeout,
                supported_versions,
            },
        );
    let param = (text(), text(), opt_text()).prop_map(|(name, value, type_)| RecordParam {
        name,
        value,
        type_,
    });
    let source = (
        opt_text(),
        any::<Option<i32>>(),
        any::<Option<i64>>(),
        opt_text(),
        any::<Option<u64>>(),
    )
        .prop_map(|(topic, partition, offset, file, line)| Source {
            topic,
            partition,
            offset,
            file,
            line,
        });
    (
        (text(), device, prop::collection::vec(event, 0..4), cwmp),
        (
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            opt_text(),
            prop::option::of(prop::sample::select(BootCause::ALL.to_vec())),
        ),
        (
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            prop::collection::vec(param, 0..6),
            prop::collection::vec(text(), 0..3),
            source,
        ),
    )
        .prop_map(
            |(
                (device_id, device, events, cwmp),
                (max_envelopes, retry_count, current_time, boot_cause),
                (cpe_time_ms, received_at_ms, acs, remote_addr, root),
                (params, warnings, source),
            )| EventRecord {
                schema: cwmp_record::SCHEMA_VERSION,
                device_id,
                device,
                events,
                boot_cause,
                cwmp,
                max_envelopes,
                retry_count,
                current_time,
                cpe_time_ms,
                received_at_ms,
                acs,
                remote_addr,
                root,
                params,
                warnings,
                source,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encoder_writes_what_serde_writes(record in record()) {
        let ours = record.to_json();
        let serde = serde_json::to_vec(&record).expect("serde encode");
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        let mut buf = ours.clone();
        let back = EventRecord::from_json(&mut buf).expect("decode");
        prop_assert_eq!(back, record);
    }
}
