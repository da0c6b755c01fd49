//! Property: build a random Inform, write it in a random wire style (prefixes, white
//! space, entities, CDATA, attribute quotes, child order, comments), extract it back,
//! and get the same Inform.

use cwmp_inform::{extract, Options};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Model {
    manufacturer: String,
    oui: String,
    product_class: String,
    serial: String,
    session_id: Option<String>,
    events: Vec<(String, String)>,
    max_envelopes: u32,
    retry_count: u32,
    current_time: String,
    params: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone)]
struct Style {
    env_prefix: &'static str,
    cwmp_prefix: &'static str,
    qualify_children: bool,
    header: bool,
    newline: &'static str,
    indent: &'static str,
    quote: char,
    numeric_refs: bool,
    cdata_values: bool,
    comments: bool,
    pad_fields: &'static str,
    order: Vec<usize>,
    decl: bool,
}

/// Text of fields that are trimmed: no leading or trailing white space.
fn field(min: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_.,:;/()&<>\"'é€ü -]{{{min},16}}"))
        .expect("regex")
        .prop_map(|s| s.trim_matches([' ', '\t', '\r', '\n']).to_owned())
        .prop_filter("non-empty", move |s| s.len() >= min)
}

/// Values are never trimmed and may hold any XML character, CR included.
fn value() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ \t\r\nA-Za-z0-9&<>\"'\\]\\[=:/.é€😀-]{0,40}").expect("regex")
}

fn model() -> impl Strategy<Value = Model> {
    (
        (
            field(0),
            field(1),
            field(0),
            field(1),
            proptest::option::of(field(0)),
        ),
        proptest::collection::vec((field(1), field(0)), 0..6),
        (0u32..10, 0u32..2000, field(0)),
        proptest::collection::vec((field(1), value(), proptest::option::of(field(1))), 0..12),
    )
        .prop_map(
            |(
                (manufacturer, oui, product_class, serial, session_id),
                events,
                (me, rc, ct),
                params,
            )| Model {
                manufacturer,
                oui,
                product_class,
                serial,
                session_id,
                events,
                max_envelopes: me,
                retry_count: rc,
                current_time: ct,
                params,
            },
        )
}

fn style() -> impl Strategy<Value = Style> {
    (
        (
            prop::sample::select(vec!["SOAP-ENV", "soapenv", "soap", "soap_env", "ns2", ""]),
            prop::sample::select(vec!["cwmp", "ns4", ""]),
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec!["", "\n", "\r\n"]),
            prop::sample::select(vec!["", "  ", "\t"]),
        ),
        (
            prop::sample::select(vec!['"', '\'']),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec!["", " ", "\n  ", "\t\r\n"]),
            Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (env_prefix, cwmp_prefix, qualify_children, header, newline, indent),
                (quote, numeric_refs, cdata_values, comments, pad_fields, order, decl),
            )| Style {
                env_prefix,
                cwmp_prefix,
                qualify_children,
                header,
                newline,
                indent,
                quote,
                numeric_refs,
                cdata_values,
                comments,
                pad_fields,
                order,
                decl,
            },
        )
}

const CWMP_NS: &str = "urn:dslforum-org:cwmp-1-2";

struct Writer<'s> {
    s: &'s Style,
    out: String,
}

impl Writer<'_> {
    fn escape(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match (c, self.s.numeric_refs) {
                ('&', false) => out.push_str("&amp;"),
                ('<', false) => out.push_str("&lt;"),
                ('>', false) => out.push_str("&gt;"),
                ('"', false) => out.push_str("&quot;"),
                ('\'', false) => out.push_str("&apos;"),
                ('&' | '<' | '>' | '"' | '\'', true) => out.push_str(&format!("&#{};", c as u32)),
                // A raw CR would be normalized away; a reference keeps it.
                ('\r', false) => out.push_str("&#13;"),
                ('\r', true) => out.push_str("&#xD;"),
                (c, _) => out.push(c),
            }
        }
        out
    }

    fn value_text(&self, text: &str) -> String {
        if self.s.cdata_values && !text.contains("]]>") && !text.contains('\r') {
            format!("<![CDATA[{text}]]>")
        } else {
            self.escape(text)
        }
    }

    fn line(&mut self, depth: usize, text: &str) {
        self.out.push_str(&self.s.indent.repeat(depth));
        self.out.push_str(text);
        self.out.push_str(self.s.newline);
        if self.s.comments {
            self.out.push_str("<!-- c -->");
        }
    }

    fn env(&self, local: &str) -> String {
        if self.s.env_prefix.is_empty() {
            local.to_owned()
        } else {
            format!("{}:{local}", self.s.env_prefix)
        }
    }

    fn child(&self, local: &str) -> String {
        if self.s.qualify_children && !self.s.cwmp_prefix.is_empty() {
            format!("{}:{local}", self.s.cwmp_prefix)
        } else {
            local.to_owned()
        }
    }

    fn attr(&self, name: &str, value: &str) -> String {
        let q = self.s.quote;
        format!(" {name}={q}{}{q}", self.escape(value))
    }

    fn field(&mut self, depth: usize, local: &str, text: &str) {
        let name = self.child(local);
        let pad = self.s.pad_fields;
        let body = format!("{pad}{}{pad}", self.escape(text));
        self.line(depth, &format!("<{name}>{body}</{name}>"));
    }
}

fn write(m: &Model, s: &Style) -> String {
    let mut w = Writer {
        s,
        out: String::new(),
    };
    if s.decl {
        w.out.push_str(&format!(
            "<?xml version={q}1.0{q} encoding={q}UTF-8{q}?>{nl}",
            q = s.quote,
            nl = s.newline
        ));
    }
    let env_ns = if s.env_prefix.is_empty() {
        "xmlns".to_owned()
    } else {
        format!("xmlns:{}", s.env_prefix)
    };
    let mut open = format!("<{}", w.env("Envelope"));
    open.push_str(&w.attr(&env_ns, "http://schemas.xmlsoap.org/soap/envelope/"));
    open.push_str(&w.attr("xmlns:enc", "http://schemas.xmlsoap.org/soap/encoding/"));
    open.push_str(&w.attr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"));
    if !s.cwmp_prefix.is_empty() {
        open.push_str(&w.attr(&format!("xmlns:{}", s.cwmp_prefix), CWMP_NS));
    }
    open.push('>');
    w.line(0, &open);
    let cwmp = |local: &str| {
        if s.cwmp_prefix.is_empty() {
            local.to_owned()
        } else {
            format!("{}:{local}", s.cwmp_prefix)
        }
    };
    if s.header {
        w.line(1, &format!("<{}>", w.env("Header")));
        if let Some(id) = &m.session_id {
            let ns = if s.cwmp_prefix.is_empty() {
                w.attr("xmlns", CWMP_NS)
            } else {
                String::new()
            };
            let body = w.escape(id);
            w.line(
                2,
                &format!("<{id_tag}{ns}>{body}</{id_tag}>", id_tag = cwmp("ID")),
            );
        }
        w.line(1, &format!("</{}>", w.env("Header")));
    }
    w.line(1, &format!("<{}>", w.env("Body")));
    let inform_ns = if s.cwmp_prefix.is_empty() {
        w.attr("xmlns", CWMP_NS)
    } else {
        String::new()
    };
    w.line(2, &format!("<{}{inform_ns}>", cwmp("Inform")));
    for &part in &s.order {
        match part {
            0 => {
                let tag = w.child("DeviceId");
                w.line(3, &format!("<{tag}>"));
                w.field(4, "Manufacturer", &m.manufacturer);
                w.field(4, "OUI", &m.oui);
                w.field(4, "ProductClass", &m.product_class);
                w.field(4, "SerialNumber", &m.serial);
                w.line(3, &format!("</{tag}>"));
            }
            1 => {
                let tag = w.child("Event");
                let at = w.attr(
                    "enc:arrayType",
                    &format!("cwmp:EventStruct[{}]", m.events.len()),
                );
                w.line(3, &format!("<{tag}{at}>"));
                for (code, key) in &m.events {
                    w.line(4, "<EventStruct>");
                    w.field(5, "EventCode", code);
                    w.field(5, "CommandKey", key);
                    w.line(4, "</EventStruct>");
                }
                w.line(3, &format!("</{tag}>"));
            }
            2 => w.field(3, "MaxEnvelopes", &m.max_envelopes.to_string()),
            3 => w.field(3, "CurrentTime", &m.current_time),
            4 => w.field(3, "RetryCount", &m.retry_count.to_string()),
            _ => {
                let tag = w.child("ParameterList");
                let at = w.attr(
                    "enc:arrayType",
                    &format!("cwmp:ParameterValueStruct[{}]", m.params.len()),
                );
                w.line(3, &format!("<{tag}{at}>"));
                for (name, value, type_) in &m.params {
                    w.line(4, "<ParameterValueStruct>");
                    w.field(5, "Name", name);
                    let ty = type_
                        .as_ref()
                        .map(|t| w.attr("xsi:type", t))
                        .unwrap_or_default();
                    let body = w.value_text(value);
                    w.line(5, &format!("<Value{ty}>{body}</Value>"));
                    w.line(4, "</ParameterValueStruct>");
                }
                w.line(3, &format!("</{tag}>"));
            }
        }
    }
    w.line(2, &format!("</{}>", cwmp("Inform")));
    w.line(1, &format!("</{}>", w.env("Body")));
    w.line(0, &format!("</{}>", w.env("Envelope")));
    w.out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_wire_style_gives_back_the_inform(m in model(), s in style()) {
        let wire = write(&m, &s);
        let got = extract(wire.as_bytes(), &Options::default());
        prop_assert_eq!(&got, &cwmp_inform::extract_event_by_event(wire.as_bytes(), &Options::default()));
        let inform = match got {
            Ok(i) => i,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{wire}"))),
        };
        prop_assert_eq!(inform.namespace.as_deref(), Some(CWMP_NS));
        prop_assert_eq!(&inform.device_id.manufacturer, &m.manufacturer);
        prop_assert_eq!(&inform.device_id.oui, &m.oui);
        prop_assert_eq!(&inform.device_id.product_class, &m.product_class);
        prop_assert_eq!(&inform.device_id.serial_number, &m.serial);
        let id = if s.header { m.session_id.as_deref() } else { None };
        prop_assert_eq!(inform.header.id.as_deref(), id);
        let events: Vec<(String, String)> = inform.events.iter().map(|e| (e.code.to_string(), e.command_key.to_string())).collect();
        prop_assert_eq!(events, m.events.clone());
        prop_assert_eq!(inform.max_envelopes, Some(m.max_envelopes));
        prop_assert_eq!(inform.retry_count, Some(m.retry_count));
        prop_assert_eq!(inform.current_time.as_deref(), Some(m.current_time.as_str()));
        let params: Vec<(String, String, Option<String>)> = inform
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.value.to_string(), p.type_.as_ref().map(|t| t.to_string())))
            .collect();
        prop_assert_eq!(params, m.params.clone());
        let sorted = s.order.windows(2).all(|w| w[0] < w[1]);
        prop_assert_eq!(inform.warnings.contains(cwmp_inform::Warning::UnknownChildrenOrder), !sorted);
        prop_assert!(!inform.warnings.contains(cwmp_inform::Warning::ArrayTypeMismatch));
    }
}
