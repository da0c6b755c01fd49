//! Hostile and broken input: every case must give a typed error, quickly, without
//! panicking, and with an offset inside the input.

use std::time::{Duration, Instant};

use cwmp_inform::{extract, Error, Limits, Options};

const ENV_OPEN: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Body><cwmp:Inform>"#;
const ENV_CLOSE: &str = "</cwmp:Inform></soap:Body></soap:Envelope>";
const DEVICE: &str = "<DeviceId><Manufacturer>M</Manufacturer><OUI>00D09E</OUI><ProductClass>P</ProductClass><SerialNumber>S</SerialNumber></DeviceId>";

/// Runs the extractor, checks the error is typed and well-placed, and that it was fast.
fn refused(input: &[u8], options: &Options) -> Error {
    let start = Instant::now();
    let result = extract(input, options);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let err = result.expect_err("must be refused");
    assert!(
        Error::KINDS.contains(&err.kind()),
        "unlisted kind {}",
        err.kind()
    );
    if !matches!(err, Error::TooLarge { .. }) {
        assert!(
            err.offset() <= input.len(),
            "offset {} past end {}",
            err.offset(),
            input.len()
        );
    }
    assert!(err.to_string().len() < 400, "message too long: {err}");
    err
}

fn document() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/documents/baseline-soap-env-prefixes.xml"
    );
    std::fs::read(path).expect("baseline vector")
}

#[test]
fn truncation_at_every_byte_offset() {
    let full = document();
    let options = Options::default();
    let whole = extract(&full, &options).expect("full document parses");
    let trimmed_len = full
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    for len in 0..full.len() {
        let cut = &full[..len];
        match extract(cut, &options) {
            Ok(inform) => {
                assert!(len >= trimmed_len, "prefix of {len} bytes accepted");
                assert_eq!(inform, whole);
            }
            Err(err) => {
                assert!(
                    len < trimmed_len,
                    "full document minus white space refused: {err}"
                );
                assert!(
                    err.offset() <= len,
                    "{len}: offset {} past end",
                    err.offset()
                );
            }
        }
    }
}

#[test]
fn truncation_of_real_captures() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/informs"
    );
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let full = std::fs::read(&path).expect("read");
        for len in 0..full.len() {
            // Any outcome but a panic is fine; most prefixes are refused.
            let _ = extract(&full[..len], &Options::default());
        }
    }
}

#[test]
fn billion_laughs_never_expands() {
    let mut dtd =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 \"lol\">\n");
    for i in 1..10 {
        let prev = format!("&lol{};", i - 1).repeat(10);
        dtd.push_str(&format!("<!ENTITY lol{i} \"{prev}\">\n"));
    }
    dtd.push_str("]>\n");
    let input = format!("{dtd}{ENV_OPEN}{DEVICE}<Event/><ParameterList><ParameterValueStruct><Name>x</Name><Value>&lol9;</Value></ParameterValueStruct></ParameterList>{ENV_CLOSE}");
    let err = refused(input.as_bytes(), &Options::default());
    assert!(
        matches!(err, Error::DoctypeForbidden { offset: 22 }),
        "{err:?}"
    );
}

#[test]
fn external_entities_are_never_read() {
    for entity in [
        r#"<!ENTITY xxe SYSTEM "file:///etc/passwd">"#,
        r#"<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;"#,
    ] {
        let input =
            format!("<!DOCTYPE x [{entity}]>{ENV_OPEN}{DEVICE}<Event/><ParameterList/>{ENV_CLOSE}");
        assert_eq!(
            refused(input.as_bytes(), &Options::default()).kind(),
            "doctype_forbidden"
        );
    }
    // Without a DTD, a reference to an undeclared entity is plain malformed XML.
    let input = format!("{ENV_OPEN}<DeviceId><OUI>&xxe;</OUI></DeviceId>{ENV_CLOSE}");
    assert_eq!(
        refused(input.as_bytes(), &Options::default()).kind(),
        "malformed_xml"
    );
}

#[test]
fn deep_nesting() {
    let depth = 100_000;
    let inside = format!(
        "{ENV_OPEN}{}{}{ENV_CLOSE}",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let err = refused(inside.as_bytes(), &Options::default());
    assert!(matches!(err, Error::TooDeep { limit: 64, .. }), "{err:?}");
    let bare = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert_eq!(
        refused(bare.as_bytes(), &Options::default()).kind(),
        "not_soap"
    );
    let unclosed = format!("{ENV_OPEN}{}", "<a>".repeat(depth));
    assert_eq!(
        refused(unclosed.as_bytes(), &Options::default()).kind(),
        "too_deep"
    );
}

#[test]
fn too_many_events() {
    let events = "<EventStruct><EventCode>4 VALUE CHANGE</EventCode><CommandKey/></EventStruct>"
        .repeat(20_000);
    let input = format!("{ENV_OPEN}{DEVICE}<Event>{events}</Event>{ENV_CLOSE}");
    let options = Options {
        limits: Limits {
            max_message_bytes: 4 << 20,
            ..Limits::default()
        },
        ..Options::default()
    };
    let err = refused(input.as_bytes(), &options);
    assert!(
        matches!(err, Error::TooManyEvents { limit: 256, .. }),
        "{err:?}"
    );
}

#[test]
fn too_many_params() {
    let params = "<ParameterValueStruct><Name>a</Name><Value>b</Value></ParameterValueStruct>"
        .repeat(20_000);
    let input =
        format!("{ENV_OPEN}{DEVICE}<Event/><ParameterList>{params}</ParameterList>{ENV_CLOSE}");
    let err = refused(input.as_bytes(), &Options::default());
    assert!(
        matches!(err, Error::TooLarge { .. }),
        "1.5 MB is over the 1 MiB default: {err:?}"
    );
    let options = Options {
        limits: Limits {
            max_message_bytes: 4 << 20,
            ..Limits::default()
        },
        ..Options::default()
    };
    let err = refused(input.as_bytes(), &options);
    assert!(
        matches!(err, Error::TooManyParams { limit: 16_384, .. }),
        "{err:?}"
    );
}

#[test]
fn huge_value() {
    let value = "A".repeat(24 << 20);
    let input = format!("{ENV_OPEN}{DEVICE}<Event/><ParameterList><ParameterValueStruct><Name>x</Name><Value>{value}</Value></ParameterValueStruct></ParameterList>{ENV_CLOSE}");
    let err = refused(input.as_bytes(), &Options::default());
    assert_eq!(
        err,
        Error::TooLarge {
            size: input.len(),
            limit: 1 << 20
        }
    );
}

#[test]
fn not_xml_at_all() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "empty"),
        (b"\xef\xbb\xbf  \n", "empty"),
        (br#"{"body": "<soap:Envelope/>"}"#, "not_xml"),
        (b"GET / HTTP/1.1\r\nHost: acs\r\n\r\n", "not_xml"),
        (b"<html><body>502 Bad Gateway</body></html>", "not_soap"),
        (b"<!DOCTYPE html><html></html>", "doctype_forbidden"),
        (b"<", "malformed_xml"),
    ];
    for (input, kind) in cases {
        assert_eq!(
            refused(input, &Options::default()).kind(),
            kind,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// A small deterministic generator, so failures reproduce without a seed file.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..2_000 {
        let len = (rng.next() % 4096) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && !input.is_empty() {
            input[0] = b'<';
        }
        let _ = refused(&input, &Options::default());
    }
}

/// `doc` with one to `most` bytes replaced, inserted or removed, drawn from the
/// characters that matter to XML.
pub(crate) fn mutate(rng: &mut XorShift, doc: &[u8], most: u64) -> Vec<u8> {
    let alphabet = b"<>/&;:=\"' \n\r\t!?[]-xX#0123456789\xff\xc3";
    let mut input = doc.to_vec();
    for _ in 0..1 + rng.next() % most {
        if input.is_empty() {
            break;
        }
        let at = (rng.next() as usize) % input.len();
        let byte = alphabet[(rng.next() as usize) % alphabet.len()];
        match rng.next() % 3 {
            0 => input[at] = byte,
            1 => input.insert(at, byte),
            _ => {
                input.remove(at);
            }
        }
    }
    input
}

#[test]
fn random_mutations_of_a_real_inform() {
    let base = document();
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..3_000 {
        let input = mutate(&mut rng, &base, 4);
        // Accepted or refused, but never a panic, and errors stay inside the input.
        if let Err(err) = extract(&input, &Options::default()) {
            assert!(err.offset() <= input.len());
        }
    }
}

fn transfer_document() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/documents/transfers/atc-firmware-vendor-fault.xml"
    );
    std::fs::read(path).expect("transfer vector")
}

#[test]
fn transfer_truncation_at_every_byte_offset() {
    let full = transfer_document();
    let options = Options::default();
    let whole = cwmp_inform::extract_message(&full, &options).expect("full document parses");
    let trimmed_len = full
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    for len in 0..full.len() {
        match cwmp_inform::extract_message(&full[..len], &options) {
            Ok(message) => {
                assert!(len >= trimmed_len, "prefix of {len} bytes accepted");
                assert_eq!(message, whole);
            }
            Err(err) => {
                assert!(len < trimmed_len, "whole document refused: {err}");
                assert!(Error::KINDS.contains(&err.kind()));
                assert!(
                    err.offset() <= len,
                    "{len}: offset {} past end",
                    err.offset()
                );
            }
        }
    }
    // The Inform-only entry point names the RPC it refuses.
    match extract(&full, &options) {
        Err(Error::NotInform { rpc, .. }) => assert_eq!(rpc, "AutonomousTransferComplete"),
        other => panic!("expected not_inform, got {other:?}"),
    }
}

#[test]
fn random_mutations_of_a_transfer() {
    let base = transfer_document();
    let mut rng = XorShift(0x0BAD_F00D_1234_5678);
    for _ in 0..3_000 {
        let input = mutate(&mut rng, &base, 4);
        if let Err(err) = cwmp_inform::extract_message(&input, &Options::default()) {
            assert!(Error::KINDS.contains(&err.kind()));
            assert!(err.offset() <= input.len());
        }
    }
}
