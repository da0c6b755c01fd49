//! The EventRecord's JSON encoding, written field by field.
//!
//! The output is byte for byte what `serde_json::to_writer` makes of the record's
//! `Serialize` derive (the tests compare both on every documented vector and on random
//! records); writing it directly skips serde's generic path and escapes a string in
//! one pass when, as nearly always, nothing in it needs escaping. It is the hottest
//! part of ingest after the extraction itself.

use std::borrow::Cow;

use crate::record::{Cwmp, Device, EventRecord, RecordEvent, RecordParam, Source};

/// Appends `record` as one line of JSON.
pub(crate) fn write(record: &EventRecord<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"schema\":");
    int(out, record.schema);
    out.extend_from_slice(b",\"device_id\":");
    string(out, &record.device_id);
    out.extend_from_slice(b",\"device\":");
    device(out, &record.device);
    out.extend_from_slice(b",\"events\":[");
    for (i, event) in record.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        self::event(out, event);
    }
    out.extend_from_slice(b"],\"boot_cause\":");
    match record.boot_cause {
        Some(cause) => {
            out.push(b'"');
            out.extend_from_slice(cause.as_str().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"cwmp\":");
    cwmp(out, &record.cwmp);
    out.extend_from_slice(b",\"max_envelopes\":");
    opt_int(out, record.max_envelopes);
    out.extend_from_slice(b",\"retry_count\":");
    opt_int(out, record.retry_count);
    out.extend_from_slice(b",\"current_time\":");
    opt_string(out, &record.current_time);
    out.extend_from_slice(b",\"cpe_time_ms\":");
    opt_int(out, record.cpe_time_ms);
    out.extend_from_slice(b",\"received_at_ms\":");
    opt_int(out, record.received_at_ms);
    out.extend_from_slice(b",\"acs\":");
    opt_string(out, &record.acs);
    out.extend_from_slice(b",\"remote_addr\":");
    opt_string(out, &record.remote_addr);
    out.extend_from_slice(b",\"root\":");
    opt_string(out, &record.root);
    out.extend_from_slice(b",\"params\":[");
    for (i, p) in record.params.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        param(out, p);
    }
    out.extend_from_slice(b"],\"warnings\":[");
    for (i, w) in record.warnings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, w);
    }
    out.extend_from_slice(b"],\"source\":");
    source(out, &record.source);
    out.push(b'}');
}

fn device(out: &mut Vec<u8>, d: &Device<'_>) {
    out.extend_from_slice(b"{\"manufacturer\":");
    string(out, &d.manufacturer);
    out.extend_from_slice(b",\"oui\":");
    string(out, &d.oui);
    out.extend_from_slice(b",\"product_class\":");
    string(out, &d.product_class);
    out.extend_from_slice(b",\"serial_number\":");
    string(out, &d.serial_number);
    out.push(b'}');
}

fn event(out: &mut Vec<u8>, e: &RecordEvent<'_>) {
    out.extend_from_slice(b"{\"code\":");
    string(out, &e.code);
    out.extend_from_slice(b",\"kind\":");
    string(out, e.kind.as_str());
    out.extend_from_slice(b",\"command_key\":");
    string(out, &e.command_key);
    out.push(b'}');
}

fn cwmp(out: &mut Vec<u8>, c: &Cwmp<'_>) {
    out.extend_from_slice(b"{\"namespace\":");
    opt_string(out, &c.namespace);
    out.extend_from_slice(b",\"version\":");
    opt_string(out, &c.version);
    out.extend_from_slice(b",\"session_id\":");
    opt_string(out, &c.session_id);
    out.extend_from_slice(b",\"session_timeout\":");
    opt_int(out, c.session_timeout);
    out.extend_from_slice(b",\"supported_versions\":");
    opt_string(out, &c.supported_versions);
    out.push(b'}');
}

fn param(out: &mut Vec<u8>, p: &RecordParam<'_>) {
    out.extend_from_slice(b"{\"name\":");
    string(out, &p.name);
    out.extend_from_slice(b",\"value\":");
    string(out, &p.value);
    out.extend_from_slice(b",\"type\":");
    opt_string(out, &p.type_);
    out.push(b'}');
}

/// Only the fields that are set, as the `skip_serializing_if` attributes say.
fn source(out: &mut Vec<u8>, s: &Source<'_>) {
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
    };
    if let Some(topic) = &s.topic {
        key(out, b"topic");
        string(out, topic);
    }
    if let Some(partition) = s.partition {
        key(out, b"partition");
        int(out, partition);
    }
    if let Some(offset) = s.offset {
        key(out, b"offset");
        int(out, offset);
    }
    if let Some(file) = &s.file {
        key(out, b"file");
        string(out, file);
    }
    if let Some(line) = s.line {
        key(out, b"line");
        int(out, line);
    }
    out.push(b'}');
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_int(out: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_string(out: &mut Vec<u8>, s: &Option<Cow<'_, str>>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string with serde_json's escapes: `\"`, `\\`, `\b \f \n \r \t`, and
/// `\u00xx` (lower-case hex) for the other control characters; nothing else escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // No early exit, so that the check compiles to a vector loop.
    let plain = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x0C => b'f',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x00..=0x1F => 0,
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if short == 0 {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            } else {
                out.push(b'\\');
                out.push(short);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_serde_json_does() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        for s in [
            "",
            "plain",
            "a\"b\\c",
            "\u{0}\u{1f}\u{7f}\u{8}\u{c}\n\r\t",
            "é€😀",
            all.as_str(),
        ] {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).expect("encode"), "{s:?}");
        }
    }
}
