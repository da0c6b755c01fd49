//! The parser reads plain markup — start and end tags, and text-only elements
//! (`<Name>x</Name>`) whole — straight from the input instead of as quick-xml events.
//! These tests check that this shortcut changes nothing: on every input — the
//! documented vectors, the real corpus, their truncations and mutations, and tags cut
//! in every odd way — `extract` gives exactly what `extract_event_by_event` gives, to
//! the last warning, offset and message.

use std::path::{Path, PathBuf};

use cwmp_inform::{
    extract, extract_event_by_event, extract_message, extract_message_event_by_event, Options,
};

use crate::hostile::{mutate, XorShift};

fn same(input: &[u8]) {
    let options = Options::default();
    let fast = extract(input, &options);
    let slow = extract_event_by_event(input, &options);
    assert_eq!(
        fast,
        slow,
        "the shortcut changed the result for:\n{}",
        String::from_utf8_lossy(input)
    );
    // The same for every RPC the parser reads (TransferComplete and its autonomous
    // sibling share the shortcut with the Inform).
    assert_eq!(
        extract_message(input, &options),
        extract_message_event_by_event(input, &options),
        "the shortcut changed the message for:\n{}",
        String::from_utf8_lossy(input)
    );
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    paths
}

fn documents() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = Vec::new();
    for dir in [
        root.join("tests/documents"),
        root.join("tests/documents/transfers"),
        root.join("../../../shared/corpus/informs"),
    ] {
        for path in files(&dir, "xml") {
            docs.push(std::fs::read(&path).expect("read document"));
        }
    }
    assert!(docs.len() >= 80, "documented vectors missing");
    docs
}

#[test]
fn documents_and_corpus() {
    for doc in documents() {
        same(&doc);
    }
}

#[test]
fn truncations() {
    // Every byte offset of a few documents, every 7th of the rest.
    for (i, doc) in documents().iter().enumerate() {
        let step = if i % 10 == 0 { 1 } else { 7 };
        for len in (0..doc.len()).step_by(step) {
            same(&doc[..len]);
        }
    }
}

#[test]
fn mutations() {
    let mut rng = XorShift(0x0005_EED0_F540_7C07);
    for doc in documents() {
        for _ in 0..150 {
            let input = mutate(&mut rng, &doc, 3);
            same(&input);
        }
    }
}

/// An Inform up to the inside of its one `ParameterValueStruct`, and the rest.
const HEAD: &str = concat!(
    r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" "#,
    r#"xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Header><cwmp:ID soap:mustUnderstand="1">7</cwmp:ID></soap:Header>"#,
    "<soap:Body><cwmp:Inform><DeviceId><Manufacturer>M</Manufacturer><OUI>00D09E</OUI>",
    "<ProductClass/><SerialNumber>S&amp;1</SerialNumber></DeviceId>",
    "<Event soap:arrayType=\"cwmp:EventStruct[1]\"><EventStruct><EventCode>1 BOOT</EventCode>",
    "<CommandKey></CommandKey></EventStruct></Event><MaxEnvelopes>1</MaxEnvelopes>",
    "<CurrentTime>2024-01-01T00:00:00Z</CurrentTime><RetryCount>0</RetryCount>",
    "<ParameterList soap:arrayType=\"cwmp:ParameterValueStruct[1]\"><ParameterValueStruct>",
);
const TAIL: &str =
    "</ParameterValueStruct></ParameterList></cwmp:Inform></soap:Body></soap:Envelope>";

/// Text-only elements written every way the shortcut must either read exactly as
/// quick-xml does or leave to it.
#[test]
fn odd_leaves() {
    let leaves = [
        "<Name>A.B.</Name><Value>1</Value>",
        "<Name >A.B.</Name ><Value\txsi:type='xsd:int' >1</Value\r\n>",
        "<Name>A.B.</Name><Value/>",
        "<Name>A.B.</Name><Value />",
        "<Name>A.B.</Name><Value xsi:type=\"a>b\"/>",
        "<Name>A.B.</Name><Value xsi:type=\"a'b\">x</Value>",
        "<Name>A.B.</Name><Value xsi:type='a\"b>'>x</Value>",
        "<Name>A.B.</Name><Value xsi:type=\"unclosed>x</Value>",
        "<Name>A.B.</Name><Value xsi:type=>x</Value>",
        "<Name>A.B.</Name><Value/ >x</Value>",
        "<Name>A.B.</Name><Value>a&amp;b&#x41;&#66;&lt;&gt;&quot;&apos;</Value>",
        "<Name>A.B.</Name><Value>&amp;</Value>",
        "<Name>A.B.</Name><Value>a&b</Value>",
        "<Name>A.B.</Name><Value>a&;b</Value>",
        "<Name>A.B.</Name><Value>a&nbsp;b</Value>",
        "<Name>A.B.</Name><Value>a&#0;b</Value>",
        "<Name>A.B.</Name><Value>a&#xD800;b</Value>",
        "<Name>A.B.</Name><Value>a&amp b&amp;</Value>",
        "<Name>A.B.</Name><Value>a&amp;</Value >",
        "<Name>A.B.</Name><Value>a<![CDATA[<b>]]>c</Value>",
        "<Name>A.B.</Name><Value>a<!-- c -->d</Value>",
        "<Name>A.B.</Name><Value>a<?pi x?>d</Value>",
        "<Name>A.B.</Name><Value>a<b>c</b>d</Value>",
        "<Name>A.B.</Name><Value>a</Valu>",
        "<Name>A.B.</Name><Value>a</Value x>",
        "<Name>A.B.</Name><Value>a</ Value>",
        "<Name>A.B.</Name><Value>a</Values>",
        "<Name>A.B.</Name><Value>a</Value",
        "<Name>A.B.</Name><Value>a\r\nb\rc</Value>",
        "<Name>  A.B.  </Name><Value>  spaced  </Value>",
        "<Name>A.B.</Name><Value>\u{e9}\u{1F600}</Value>",
        "<Name>A.B.</Name><Value>]]></Value>",
        "<Name>A.B.</Name><Value>\u{FEFF}<![CDATA[x]]></Value>",
        "<Name>A.B.</Name><Value>\u{FEFF}x</Value>\u{FEFF}",
        "<Name>A.B.</Name>\n  <Value>x</Value>\n  <Value>y</Value>",
        "<Name>A.B.</Name><Unknown>x</Unknown><Value>v</Value>",
        "<Name>A.B.</Name><Unknown><Deeper>x</Deeper></Unknown><Value>v</Value>",
        "<Name>A.B.</Name><_x>y</_x><Value>v</Value>",
        "<Name>A.B.</Name><:x>y</:x><Value>v</Value>",
        "<Name>A.B.</Name><Value xmlns='urn:x'>v</Value>",
        "<Name>A.B.</Name><cwmp:Value>v</cwmp:Value>",
        "<Name>A.B.</Name><cwmp:Value>v</Value>",
        "text<Name>A.B.</Name><Value>v</Value>",
        "<Name>A.B.</Name><Value>\r\n <x>1</x> \n</Value>",
        "<Name>A.B.</Name><Value><x/><y>2</y></Value>",
        "<Name>A.B.</Name><Value> <x>1</x><y>2</y><z>3</z><w>4</w><v>5</v> </Value>",
        "<Name>A.B.</Name><Value><x>1</x>t<y>2</y></Value>",
        "<Name>A.B.</Name><Value><x>1</y></Value>",
        "<Name>A.B.</Name><Value><x>1</x></Value><Value>2</Value><Name>C</Name>",
        "<Name>A.B.</Name></ParameterValueStruct><ParameterValueStruct><Name>C</Name><Value>v</Value>",
        "<Name>A.B.</Name></ParameterValueStruct>\n<ParameterValueStruct>\n<Name>C</Name>\n<Value>v</Value>",
        "<Name>A.B.</Name></ParameterValueStruct>\n<ParameterValueStruct/><ParameterValueStruct>",
        "<Name>A.B.</Name></ParameterValueStruct><ParameterValueStruct></ParameterValueStruct><ParameterValueStruct>",
        "<Name>A.B.</Name></ParameterValueStruct><Other>x</Other><ParameterValueStruct>",
        "",
    ];
    for leaf in leaves {
        let doc = format!("{HEAD}{leaf}{TAIL}\n");
        same(doc.as_bytes());
        // And the same with the leaves somewhere else: in the header and the device id.
        same(doc.replace("<OUI>00D09E</OUI>", leaf).as_bytes());
        same(
            doc.replace("<cwmp:ID soap:mustUnderstand=\"1\">7</cwmp:ID>", leaf)
                .as_bytes(),
        );
        same(doc.replace("<CommandKey></CommandKey>", leaf).as_bytes());
        same(
            doc.replace(
                "<ProductClass/>",
                &format!("<ProductClass>{leaf}</ProductClass>"),
            )
            .as_bytes(),
        );
    }
    // The common case must really take the shortcut's path and still parse.
    let doc = format!("{HEAD}{}{TAIL}", leaves[0]);
    let inform = extract(doc.as_bytes(), &Options::default()).expect("parses");
    assert_eq!(inform.params.len(), 1);
    assert_eq!(inform.device_id.serial_number, "S&1");
}

/// Start and end tags of the envelope's structure written every way the shortcut
/// must either read exactly as quick-xml does or leave to it, and byte order marks
/// where quick-xml would drop one if it read its first event there.
#[test]
fn odd_structure() {
    let doc = format!("{HEAD}<Name>A.B.</Name><Value>1</Value>{TAIL}");
    same(doc.as_bytes());
    // Each written for every element named after it (`{}` stands for its name).
    let end_tags = [
        "</{} >",
        "</{}\r\n\t>",
        "</{} x=\"1\">",
        "</{} x=\">\">",
        "</{}\">",
        "</{}'>'>",
        "</{}x>",
        "</Info>",
        "</Inform>",
        "</>",
        "</ {}>",
        "",
        "</{}></{}>",
        "</{}><!-- c -->",
        "</{}>\u{FEFF}",
        "</{}",
    ];
    let start_tags = [
        "<{} >",
        "<{}/>",
        "<{} x='>'>",
        "<{}\n\txmlns:c='urn:x'>",
        "<{} a=1>",
        "<{} a=\"1\"b=\"2\">",
        "<{} a=\"1\" a=\"2\">",
        "<{}/ >",
        "<{}\">",
        "<{}",
        "<{}><!-- c -->",
        "<{}>\u{FEFF}",
        "<{}><?pi?>",
        "<{}><![CDATA[x]]>",
        "<{}>&amp;",
        "<{}>&bogus;",
    ];
    for (plain, variants, names) in [
        (
            "</{}>",
            &end_tags,
            ["cwmp:Inform", "DeviceId", "soap:Envelope"],
        ),
        (
            "<{}>",
            &start_tags,
            ["soap:Body", "DeviceId", "ParameterValueStruct"],
        ),
    ] {
        for variant in variants {
            for name in names {
                let tag = plain.replace("{}", name);
                same(doc.replace(&tag, &variant.replace("{}", name)).as_bytes());
            }
        }
    }
    for before in [
        "<?xml version=\"1.0\"?>",
        "<?xml version=\"1.0\"?>\u{FEFF}",
        "<?xml version=\"1.0\"?>\n\u{FEFF}\n",
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        "<!-- c -->",
        "</x>",
        "<x/>",
        "<!DOCTYPE x>",
        "\u{FEFF}",
    ] {
        same(format!("{before}{doc}").as_bytes());
    }
    for after in [
        "</x>",
        "<x/>",
        "\u{FEFF}",
        "<?xml version=\"1.0\"?>",
        "text",
        "<!-- c -->",
    ] {
        same(format!("{doc}{after}").as_bytes());
        same(format!("{doc}\n{after}\n").as_bytes());
    }
}
