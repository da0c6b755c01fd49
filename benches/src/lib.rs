//! Rival Inform extractors and the shared input set for the `extract` bench.
//!
//! Each rival does the same job as `cwmp_inform::extract` as far as its model allows:
//! device id fields, event codes with command keys, and every parameter's name, value
//! and type. The tests below check that they agree with ours on every bench input, so
//! the bench compares like with like.

pub mod live;

use std::borrow::Cow;

use serde::Deserialize;

/// A bench input: a realistic Inform of a given size and vendor style.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

/// 1.5 KB Huawei style, 4 KB Thomson style with CRLF, 16 KB TR-181 small cell (JAXB prefixes).
pub fn inputs() -> Vec<Input> {
    vec![
        Input {
            name: "1k5_huawei",
            bytes: include_bytes!("../data/inform-1k5-huawei.xml"),
        },
        Input {
            name: "4k_thomson_crlf",
            bytes: include_bytes!("../data/inform-4k-thomson-crlf.xml"),
        },
        Input {
            name: "16k_tr181_jaxb",
            bytes: include_bytes!("../data/inform-16k-tr181-jaxb.xml"),
        },
    ]
}

/// One parameter: name, value, `xsi:type`.
pub type ParamTriple<'a> = (Cow<'a, str>, Cow<'a, str>, Option<Cow<'a, str>>);

/// What every rival extracts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extracted<'a> {
    pub oui: Cow<'a, str>,
    pub product_class: Cow<'a, str>,
    pub serial_number: Cow<'a, str>,
    pub events: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub params: Vec<ParamTriple<'a>>,
}

impl<'a> From<cwmp_inform::Inform<'a>> for Extracted<'a> {
    fn from(i: cwmp_inform::Inform<'a>) -> Self {
        Extracted {
            oui: i.device_id.oui,
            product_class: i.device_id.product_class,
            serial_number: i.device_id.serial_number,
            events: i
                .events
                .into_iter()
                .map(|e| (e.code, e.command_key))
                .collect(),
            params: i
                .params
                .into_iter()
                .map(|p| (p.name, p.value, p.type_))
                .collect(),
        }
    }
}

/// The floor: every quick-xml 0.41 event of the document, borrowed, and nothing else.
pub fn quick_xml_events(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) | Err(_) => return n,
            Ok(ev) => n += std::hint::black_box(&ev).len(),
        }
    }
}

/// The same floor on quick-xml 0.42, which validates UTF-8 on every event.
pub fn quick_xml_042_events(bytes: &[u8]) -> usize {
    let mut reader = quick_xml_042::Reader::from_reader(bytes);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml_042::events::Event::Eof) | Err(_) => return n,
            Ok(ev) => n += std::hint::black_box(&ev).len(),
        }
    }
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.tag_name().name() == name)
}

fn text_of(node: Option<roxmltree::Node<'_, '_>>) -> String {
    node.and_then(|n| n.text()).unwrap_or("").to_owned()
}

/// roxmltree: build the DOM, then walk it by local name.
pub fn roxmltree_extract(bytes: &[u8]) -> Option<Extracted<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let inform = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Inform")?;
    let dev = child(inform, "DeviceId")?;
    let mut out = Extracted {
        oui: text_of(child(dev, "OUI")).trim().to_owned().into(),
        product_class: text_of(child(dev, "ProductClass")).trim().to_owned().into(),
        serial_number: text_of(child(dev, "SerialNumber")).trim().to_owned().into(),
        ..Extracted::default()
    };
    if let Some(events) = child(inform, "Event") {
        for es in events
            .children()
            .filter(|c| c.tag_name().name() == "EventStruct")
        {
            let key = text_of(child(es, "CommandKey")).trim().to_owned();
            let code = text_of(child(es, "EventCode")).trim().to_owned();
            out.events.push((code.into(), key.into()));
        }
    }
    if let Some(list) = child(inform, "ParameterList") {
        for pv in list
            .children()
            .filter(|c| c.tag_name().name() == "ParameterValueStruct")
        {
            let name = text_of(child(pv, "Name")).trim().to_owned();
            let value_node = child(pv, "Value");
            let value = text_of(value_node);
            let ty = value_node.and_then(|v| {
                v.attributes()
                    .find(|a| a.name() == "type")
                    .map(|a| Cow::Owned(a.value().to_owned()))
            });
            out.params.push((name.into(), value.into(), ty));
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct SEnvelope {
    #[serde(rename = "Body")]
    body: SBody,
}

#[derive(Deserialize)]
struct SBody {
    #[serde(rename = "Inform")]
    inform: SInform,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SInform {
    device_id: SDeviceId,
    #[serde(default)]
    event: SEvents,
    #[serde(default)]
    parameter_list: SParams,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SDeviceId {
    #[serde(rename = "OUI")]
    oui: String,
    #[serde(default)]
    product_class: String,
    serial_number: String,
}

#[derive(Deserialize, Default)]
struct SEvents {
    #[serde(rename = "EventStruct", default)]
    items: Vec<SEventStruct>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SEventStruct {
    event_code: String,
    #[serde(default)]
    command_key: String,
}

#[derive(Deserialize, Default)]
struct SParams {
    #[serde(rename = "ParameterValueStruct", default)]
    items: Vec<SParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SParam {
    name: String,
    value: SValue,
}

#[derive(Deserialize)]
struct SValue {
    #[serde(rename = "@type", default)]
    ty: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

/// quick-xml's serde deserializer into derived structs (owned strings).
pub fn quick_xml_serde(bytes: &[u8]) -> Option<Extracted<'static>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let env: SEnvelope = quick_xml::de::from_str(text).ok()?;
    let i = env.body.inform;
    Some(Extracted {
        oui: i.device_id.oui.trim().to_owned().into(),
        product_class: i.device_id.product_class.trim().to_owned().into(),
        serial_number: i.device_id.serial_number.trim().to_owned().into(),
        events: i
            .event
            .items
            .into_iter()
            .map(|e| {
                (
                    e.event_code.trim().to_owned().into(),
                    e.command_key.trim().to_owned().into(),
                )
            })
            .collect(),
        params: i
            .parameter_list
            .items
            .into_iter()
            .map(|p| {
                (
                    p.name.trim().to_owned().into(),
                    p.value.text.into(),
                    p.value.ty.map(Cow::Owned),
                )
            })
            .collect(),
    })
}

/// The crates.io `cwmp` crate (xml-rs based): a full parse into its envelope model.
pub fn cwmp_crate(bytes: &[u8]) -> Option<cwmp::protocol::Envelope> {
    cwmp::parse_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(bytes: &[u8]) -> Extracted<'_> {
        cwmp_inform::extract(bytes, &cwmp_inform::Options::default())
            .expect("ours")
            .into()
    }

    #[test]
    fn rivals_extract_what_we_extract() {
        for input in inputs() {
            let want = ours(input.bytes);
            assert!(!want.params.is_empty(), "{}", input.name);
            let dom = roxmltree_extract(input.bytes).expect("roxmltree");
            assert_eq!(dom, want, "roxmltree on {}", input.name);
            let serde = quick_xml_serde(input.bytes).expect("serde");
            assert_eq!(serde.events, want.events, "serde events on {}", input.name);
            assert_eq!(
                serde.params.len(),
                want.params.len(),
                "serde params on {}",
                input.name
            );
            assert_eq!(
                serde.serial_number, want.serial_number,
                "serde serial on {}",
                input.name
            );
            assert!(quick_xml_events(input.bytes) > 0);
            assert!(quick_xml_042_events(input.bytes) > 0);
        }
    }

    #[test]
    fn cwmp_crate_parses_the_inputs() {
        for input in inputs() {
            let env = cwmp_crate(input.bytes);
            let text = format!("{env:?}");
            let want = ours(input.bytes);
            assert!(
                text.contains(want.serial_number.as_ref()),
                "cwmp crate on {}: {text:.300}",
                input.name
            );
        }
    }
}

/// What every rival extracts of a TransferComplete: command key, fault code and
/// string, both times.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TransferFields<'a> {
    pub command_key: Cow<'a, str>,
    pub fault_code: Option<u32>,
    pub fault_string: Cow<'a, str>,
    pub start_time: Cow<'a, str>,
    pub complete_time: Cow<'a, str>,
}

/// A `TransferComplete` body for the benches (the `tc-baseline` test vector).
pub fn transfer_input() -> Input {
    Input {
        name: "tc_transfer_complete",
        bytes: include_bytes!("../data/transfer-complete-baseline.xml"),
    }
}

/// The TransferComplete through a roxmltree DOM, matched by local name.
pub fn roxmltree_transfer(bytes: &[u8]) -> Option<TransferFields<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let tc = doc
        .descendants()
        .find(|n| n.tag_name().name() == "TransferComplete")?;
    let fault = child(tc, "FaultStruct");
    Some(TransferFields {
        command_key: text_of(child(tc, "CommandKey")).trim().to_owned().into(),
        fault_code: fault.and_then(|f| text_of(child(f, "FaultCode")).trim().parse().ok()),
        fault_string: fault
            .map(|f| text_of(child(f, "FaultString")).trim().to_owned())
            .unwrap_or_default()
            .into(),
        start_time: text_of(child(tc, "StartTime")).trim().to_owned().into(),
        complete_time: text_of(child(tc, "CompleteTime")).trim().to_owned().into(),
    })
}
