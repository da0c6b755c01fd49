//! The input contract: one Kafka message (or one file, or one line of an envelope
//! file) is one CPE→ACS SOAP message, either the raw POST body or a JSON envelope
//! around it, told apart by the first non-white-space byte.
//!
//! An Inform names its device. A `TransferComplete` or `AutonomousTransferComplete`
//! does not: a front-end that knows the session's device names it (header
//! [`H_DEVICE_ID`], envelope `device_id`); otherwise ingest attributes it to the
//! device of the Inform that opened its session (see `ingest::sessions`).

use std::borrow::Cow;
use std::fmt;

use cwmp_inform::{charset_from_content_type, Message, Options, Transfer, Warnings};
use cwmp_record::{parse_rfc3339_ms, Attribution, EventRecord, Meta};
use serde::Deserialize;

/// Header names of the input contract, for raw bodies: the receive time (epoch ms
/// or RFC 3339), the CPE's address, the ACS front-end, and the HTTP content type.
pub const H_RECEIVED_AT: &str = "cwmp-received-at";
pub const H_REMOTE_ADDR: &str = "cwmp-remote-addr";
pub const H_ACS: &str = "cwmp-acs";
pub const H_CONTENT_TYPE: &str = "content-type";
/// The device a message belongs to (GenieACS id), for RPCs that do not name it.
/// Optional; a front-end that knows the session's device should set it.
pub const H_DEVICE_ID: &str = "cwmp-device-id";

/// The JSON envelope form. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// Receive time: epoch milliseconds or an RFC 3339 string.
    #[serde(default)]
    pub received_at: Option<ReceivedAt<'a>>,
    #[serde(default, borrow)]
    pub remote_addr: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub acs: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub content_type: Option<Cow<'a, str>>,
    /// The device the message belongs to (as header `cwmp-device-id`).
    #[serde(default, borrow)]
    pub device_id: Option<Cow<'a, str>>,
    /// The front-end's session key (what it keys Kafka messages by): in an envelope
    /// file, it ties a transfer to the Inform of its session.
    #[serde(default, borrow)]
    pub session: Option<Cow<'a, str>>,
    /// The POST body.
    #[serde(borrow)]
    pub body: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ReceivedAt<'a> {
    Millis(i64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

/// Why a message could not become a record.
#[derive(Debug)]
pub enum InputError {
    /// The extractor refused the body.
    Inform(cwmp_inform::Error),
    /// The message starts with `{` but is not a valid envelope.
    Envelope { offset: usize, reason: String },
}

impl InputError {
    /// Bounded error kind for metrics and error lines.
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::Inform(e) => e.kind(),
            InputError::Envelope { .. } => "invalid_envelope",
        }
    }

    /// Byte offset of the problem in the message (for envelopes: in the envelope).
    pub fn offset(&self) -> usize {
        match self {
            InputError::Inform(e) => e.offset(),
            InputError::Envelope { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Inform(e) => e.fmt(f),
            InputError::Envelope { reason, .. } => write!(f, "invalid envelope: {reason}"),
        }
    }
}

impl From<cwmp_inform::Error> for InputError {
    fn from(e: cwmp_inform::Error) -> Self {
        InputError::Inform(e)
    }
}

/// Transport facts that may come with a raw body (Kafka headers, say).
#[derive(Debug, Default, Clone)]
pub struct Transport<'a> {
    pub received_at_ms: Option<i64>,
    pub remote_addr: Option<Cow<'a, str>>,
    pub acs: Option<Cow<'a, str>>,
    pub content_type: Option<Cow<'a, str>>,
    /// Header `cwmp-device-id`.
    pub device_id: Option<Cow<'a, str>>,
}

/// Whether a message is a JSON envelope (first non-white-space byte is `{`).
pub fn is_envelope(message: &[u8]) -> bool {
    message
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Parses a receive time given as epoch milliseconds or RFC 3339 text.
pub fn parse_received_at(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    parse_rfc3339_ms(text)
}

/// An EventRecord and the extractor's warnings about its message, typed (the record
/// carries them as text).
#[derive(Debug)]
pub struct Extracted<'a> {
    pub record: EventRecord<'a>,
    pub warnings: Warnings,
    /// The envelope's `session` key, if any.
    pub session: Option<Cow<'a, str>>,
}

impl<'a> Extracted<'a> {
    fn new(inform: cwmp_inform::Inform<'a>, meta: Meta<'a>, session: Option<Cow<'a, str>>) -> Self {
        let warnings = inform.warnings;
        Extracted {
            record: EventRecord::from_inform(inform, meta),
            warnings,
            session,
        }
    }
}

/// A transfer result waiting for its device: [`to_message`] extracts it, ingest (or
/// `extract`) attributes it and builds its [`cwmp_record::TransferRecord`].
#[derive(Debug)]
pub struct TransferInput<'a> {
    pub transfer: Transfer<'a>,
    pub meta: Meta<'a>,
    /// The device named by the transport (header) or the envelope, and which.
    pub named: Option<(Cow<'a, str>, Attribution)>,
    /// The envelope's `session` key, if any.
    pub session: Option<Cow<'a, str>>,
}

impl TransferInput<'_> {
    /// Copies every borrowed string.
    pub fn into_owned(self) -> TransferInput<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        TransferInput {
            transfer: self.transfer.into_owned(),
            meta: Meta {
                received_at_ms: self.meta.received_at_ms,
                acs: self.meta.acs.map(own),
                remote_addr: self.meta.remote_addr.map(own),
                source: cwmp_record::Source {
                    topic: self.meta.source.topic.map(own),
                    partition: self.meta.source.partition,
                    offset: self.meta.source.offset,
                    file: self.meta.source.file.map(own),
                    line: self.meta.source.line,
                },
            },
            named: self.named.map(|(id, how)| (own(id), how)),
            session: self.session.map(own),
        }
    }
}

/// What one message holds.
#[derive(Debug)]
pub enum Parsed<'a> {
    Inform(Extracted<'a>),
    Transfer(TransferInput<'a>),
}

/// Turns one message in either form into an EventRecord; any RPC but the Inform is
/// [`cwmp_inform::Error::NotInform`]. See [`to_message`].
pub fn to_record<'a>(
    message: &'a [u8],
    transport: Transport<'a>,
    source: cwmp_record::Source<'a>,
    options: &Options,
) -> Result<Extracted<'a>, InputError> {
    match to_message(message, transport, source, options)? {
        Parsed::Inform(extracted) => Ok(extracted),
        Parsed::Transfer(t) => Err(InputError::Inform(cwmp_inform::Error::NotInform {
            offset: 0,
            rpc: t.transfer.rpc().to_owned(),
        })),
    }
}

/// Turns one message in either form into an EventRecord, or a transfer to attribute.
///
/// `transport` supplies what a raw body's carrier knows; an envelope's own fields are
/// used for envelopes. `source` is stamped on the record.
pub fn to_message<'a>(
    message: &'a [u8],
    transport: Transport<'a>,
    source: cwmp_record::Source<'a>,
    options: &Options,
) -> Result<Parsed<'a>, InputError> {
    if is_envelope(message) {
        let envelope: Envelope<'a> =
            serde_json::from_slice(message).map_err(|e| InputError::Envelope {
                offset: json_error_offset(message, &e),
                reason: e.to_string(),
            })?;
        let received_at_ms = match &envelope.received_at {
            None => transport.received_at_ms,
            Some(ReceivedAt::Millis(ms)) => Some(*ms),
            Some(ReceivedAt::Text(t)) => {
                Some(parse_received_at(t).ok_or_else(|| InputError::Envelope {
                    offset: 0,
                    reason: format!(
                        "received_at {:?} is neither epoch ms nor RFC 3339",
                        bounded(t)
                    ),
                })?)
            }
        };
        let options = with_charset(options, envelope.content_type.as_deref())?;
        let meta = Meta {
            received_at_ms,
            acs: envelope.acs,
            remote_addr: envelope.remote_addr,
            source,
        };
        let named = match (envelope.device_id, transport.device_id) {
            (Some(id), _) if !id.trim().is_empty() => Some((id, Attribution::Envelope)),
            (_, Some(id)) if !id.trim().is_empty() => Some((id, Attribution::Header)),
            _ => None,
        };
        let session = envelope.session;
        // The body is a JSON string: when it had escapes it is owned, so the record
        // must own its text too.
        return match envelope.body {
            Cow::Borrowed(body) => {
                let message = cwmp_inform::extract_message(body.as_bytes(), &options)?;
                Ok(parsed(message, meta, named, session))
            }
            Cow::Owned(body) => {
                let message = cwmp_inform::extract_message(body.as_bytes(), &options)?.into_owned();
                Ok(parsed(message, meta, named, session))
            }
        };
    }
    let options = with_charset(options, transport.content_type.as_deref())?;
    let message = cwmp_inform::extract_message(message, &options)?;
    let named = transport
        .device_id
        .filter(|id| !id.trim().is_empty())
        .map(|id| (id, Attribution::Header));
    Ok(parsed(
        message,
        Meta {
            received_at_ms: transport.received_at_ms,
            acs: transport.acs,
            remote_addr: transport.remote_addr,
            source,
        },
        named,
        None,
    ))
}

fn parsed<'a>(
    message: Message<'a>,
    meta: Meta<'a>,
    named: Option<(Cow<'a, str>, Attribution)>,
    session: Option<Cow<'a, str>>,
) -> Parsed<'a> {
    match message {
        Message::Inform(inform) => Parsed::Inform(Extracted::new(inform, meta, session)),
        Message::Transfer(transfer) => Parsed::Transfer(TransferInput {
            transfer,
            meta,
            named: named.map(|(id, how)| (trim_cow(id), how)),
            session,
        }),
    }
}

fn trim_cow(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(t.trim()),
        Cow::Owned(t) if t.trim().len() == t.len() => Cow::Owned(t),
        Cow::Owned(t) => Cow::Owned(t.trim().to_owned()),
    }
}

fn with_charset(options: &Options, content_type: Option<&str>) -> Result<Options, InputError> {
    let mut options = *options;
    if let Some(ct) = content_type {
        if let Some(cs) = charset_from_content_type(ct)? {
            options.charset = Some(cs);
        }
    }
    Ok(options)
}

/// serde_json reports line and column; turn them into a byte offset.
fn json_error_offset(message: &[u8], e: &serde_json::Error) -> usize {
    let mut line = 1;
    let mut line_start = 0;
    for (i, &b) in message.iter().enumerate() {
        if line == e.line() {
            break;
        }
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    (line_start + e.column().saturating_sub(1)).min(message.len())
}

fn bounded(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><c:Inform xmlns:c="urn:dslforum-org:cwmp-1-0"><DeviceId><OUI>00D09E</OUI><SerialNumber>S1</SerialNumber></DeviceId><Event/><ParameterList/></c:Inform></s:Body></s:Envelope>"#;

    #[test]
    fn envelope_fields_reach_the_record() {
        let msg = serde_json::json!({
            "received_at": "2025-11-24T16:00:00Z", "remote_addr": "203.0.113.7",
            "acs": "acs-eu-1", "content_type": "text/xml; charset=utf-8", "body": BODY, "extra": 1
        })
        .to_string();
        let rec = to_record(
            msg.as_bytes(),
            Transport::default(),
            Default::default(),
            &Options::default(),
        )
        .expect("record")
        .record;
        assert_eq!(rec.received_at_ms, Some(1_764_000_000_000));
        assert_eq!(rec.acs.as_deref(), Some("acs-eu-1"));
        assert_eq!(rec.remote_addr.as_deref(), Some("203.0.113.7"));
        assert_eq!(rec.device_id, "00D09E-S1");
    }

    #[test]
    fn raw_body_uses_transport() {
        let t = Transport {
            received_at_ms: Some(5),
            acs: Some("a".into()),
            ..Transport::default()
        };
        let rec = to_record(BODY.as_bytes(), t, Default::default(), &Options::default())
            .expect("record")
            .record;
        assert_eq!(
            (rec.received_at_ms, rec.acs.as_deref()),
            (Some(5), Some("a"))
        );
    }

    #[test]
    fn bad_envelopes_are_typed() {
        for msg in [
            r#"{"body": 1}"#,
            r#"{"received_at": "yesterday", "body": "<x/>"}"#,
            "{",
            r#"{"acs":"x"}"#,
        ] {
            let err = to_record(
                msg.as_bytes(),
                Transport::default(),
                Default::default(),
                &Options::default(),
            )
            .expect_err(msg);
            assert_eq!(err.kind(), "invalid_envelope", "{msg}");
        }
        let msg = r#"{"content_type": "text/xml; charset=utf-16", "body": "<x/>"}"#;
        let err = to_record(
            msg.as_bytes(),
            Transport::default(),
            Default::default(),
            &Options::default(),
        )
        .expect_err("charset");
        assert_eq!(err.kind(), "unsupported_encoding");
    }

    #[test]
    fn received_at_forms() {
        assert_eq!(parse_received_at("1764000000000"), Some(1_764_000_000_000));
        assert_eq!(
            parse_received_at("2025-11-24T16:00:00Z"),
            Some(1_764_000_000_000)
        );
        assert_eq!(parse_received_at("soon"), None);
    }
}
