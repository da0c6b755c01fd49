//! The ways an input can be refused.
//!
//! Every variant names the input that causes it, carries the byte offset into the
//! original input where the problem was found, and maps to a short, bounded
//! [`Error::kind`] string that is safe to use as a metric label.

use std::fmt;

/// Why a message was not turned into an [`Inform`](crate::Inform).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input is empty or holds only white space (and perhaps a byte order mark).
    ///
    /// Input: `b""`, `b"  \r\n"`. CPEs send an empty POST to end a session; that is
    /// not an Inform.
    Empty,

    /// The first significant byte is not `<`: the input is not XML at all.
    ///
    /// Input: `{"body": ...}` (JSON), `GET / HTTP/1.1`, random bytes.
    NotXml {
        /// Offset of the first non-white-space byte.
        offset: usize,
    },

    /// The input looks like XML but is not well-formed.
    ///
    /// Input: a truncated message (`<Envelope><Body>`), mismatched end tags
    /// (`<a></b>`), an unknown entity (`&nbsp;`), text or a second element after the
    /// root element, an unterminated comment or CDATA section, an attribute without
    /// quotes on an element whose attributes are read.
    MalformedXml {
        /// Where the parser stopped.
        offset: usize,
        /// What the XML parser reported.
        reason: String,
    },

    /// The body declares an encoding this extractor does not read.
    ///
    /// Input: a UTF-16 byte order mark, `<?xml version="1.0" encoding="UTF-16"?>`,
    /// `encoding="EBCDIC"`, or a `charset=` hint naming an unknown encoding.
    /// UTF-8, US-ASCII, ISO-8859-1 and windows-1252 are read.
    UnsupportedEncoding {
        /// Offset of the declaration (0 for a byte order mark or an external hint).
        offset: usize,
        /// The encoding label as given, at most 64 bytes.
        encoding: String,
    },

    /// The input carries a document type declaration.
    ///
    /// Input: `<!DOCTYPE x [<!ENTITY a "...">]>`. SOAP forbids DTDs, and refusing them
    /// outright makes entity expansion attacks (billion laughs, external entities)
    /// impossible by construction.
    DoctypeForbidden {
        /// Offset of `<!DOCTYPE`.
        offset: usize,
    },

    /// The input is larger than [`Limits::max_message_bytes`](crate::Limits).
    ///
    /// Input: a 24 MiB parameter value with the default 1 MiB limit. Checked before
    /// any parsing.
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// Elements are nested deeper than [`Limits::max_depth`](crate::Limits).
    ///
    /// Input: 100,000 nested `<a>` elements. Refused at the first element past the limit.
    TooDeep {
        /// Offset of the element that went past the limit.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The Inform carries more event codes than [`Limits::max_events`](crate::Limits).
    ///
    /// Input: an `Event` array with 20,000 `EventStruct`s.
    TooManyEvents {
        /// Offset of the event code that went past the limit.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The Inform carries more parameters than [`Limits::max_params`](crate::Limits).
    ///
    /// Input: a `ParameterList` with 20,000 `ParameterValueStruct`s with the default
    /// limit of 16,384.
    TooManyParams {
        /// Offset of the parameter that went past the limit.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },

    /// Well-formed XML that is not a SOAP message: the root element is not an
    /// `Envelope`, the `Envelope` is not in a SOAP envelope namespace (its prefix is
    /// unbound, or bound to another URI), or it has no `Body`.
    ///
    /// Input: an HTML page, `<cwmp:Inform>` without an envelope (a fragment),
    /// `<soapenv:Envelope>` with no `xmlns:soapenv`, `<Envelope><Header/></Envelope>`.
    NotSoap {
        /// Offset of the root element (or of the end of the envelope when `Body` is missing).
        offset: usize,
        /// What is wrong, naming at most 64 bytes of the input.
        reason: String,
    },

    /// A SOAP message whose body is not an Inform.
    ///
    /// Input: `TransferComplete`, `GetRPCMethods`, `AutonomousTransferComplete`, a
    /// SOAP `Fault`, or an empty `Body` (then `rpc` is empty). A well-formed CWMP
    /// message of another kind is not bad input; callers usually count it by `rpc`.
    NotInform {
        /// Offset of the body's first element (or of the end of an empty body).
        offset: usize,
        /// Local name of the body's first element, at most 64 bytes; empty for an empty body.
        rpc: String,
    },

    /// The Inform has no `DeviceId`, or its `OUI` or `SerialNumber` is empty or missing.
    ///
    /// Input: an Inform without `DeviceId`; the easycwmp template with `<OUI/>`.
    /// A device id cannot be built without both.
    MissingDeviceId {
        /// Offset of the end of the Inform element.
        offset: usize,
        /// `DeviceId`, `OUI` or `SerialNumber`: what was missing.
        field: &'static str,
    },
}

impl Error {
    /// A short, stable name for the kind of error, from a fixed set: use it as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Empty => "empty",
            Error::NotXml { .. } => "not_xml",
            Error::MalformedXml { .. } => "malformed_xml",
            Error::UnsupportedEncoding { .. } => "unsupported_encoding",
            Error::DoctypeForbidden { .. } => "doctype_forbidden",
            Error::TooLarge { .. } => "too_large",
            Error::TooDeep { .. } => "too_deep",
            Error::TooManyEvents { .. } => "too_many_events",
            Error::TooManyParams { .. } => "too_many_params",
            Error::NotSoap { .. } => "not_soap",
            Error::NotInform { .. } => "not_inform",
            Error::MissingDeviceId { .. } => "missing_device_id",
        }
    }

    /// Every value [`Error::kind`] can return, for pre-registering metric series.
    pub const KINDS: &'static [&'static str] = &[
        "empty",
        "not_xml",
        "malformed_xml",
        "unsupported_encoding",
        "doctype_forbidden",
        "too_large",
        "too_deep",
        "too_many_events",
        "too_many_params",
        "not_soap",
        "not_inform",
        "missing_device_id",
    ];

    /// Byte offset into the original input where the problem was found.
    pub fn offset(&self) -> usize {
        match self {
            Error::Empty => 0,
            Error::TooLarge { limit, .. } => *limit,
            Error::NotXml { offset }
            | Error::MalformedXml { offset, .. }
            | Error::UnsupportedEncoding { offset, .. }
            | Error::DoctypeForbidden { offset }
            | Error::TooDeep { offset, .. }
            | Error::TooManyEvents { offset, .. }
            | Error::TooManyParams { offset, .. }
            | Error::NotSoap { offset, .. }
            | Error::NotInform { offset, .. }
            | Error::MissingDeviceId { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("empty message"),
            Error::NotXml { offset } => {
                write!(f, "not XML: expected '<' at byte {offset}")
            }
            Error::MalformedXml { offset, reason } => {
                write!(f, "malformed XML at byte {offset}: {reason}")
            }
            Error::UnsupportedEncoding { offset, encoding } => {
                write!(f, "unsupported encoding {encoding:?} at byte {offset}")
            }
            Error::DoctypeForbidden { offset } => {
                write!(
                    f,
                    "document type declaration at byte {offset} is not allowed"
                )
            }
            Error::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
            Error::TooDeep { offset, limit } => {
                write!(f, "element nesting deeper than {limit} at byte {offset}")
            }
            Error::TooManyEvents { offset, limit } => {
                write!(f, "more than {limit} event codes (at byte {offset})")
            }
            Error::TooManyParams { offset, limit } => {
                write!(f, "more than {limit} parameters (at byte {offset})")
            }
            Error::NotSoap { offset, reason } => {
                write!(f, "not a SOAP envelope at byte {offset}: {reason}")
            }
            Error::NotInform { offset, rpc } => {
                if rpc.is_empty() {
                    write!(f, "empty SOAP Body at byte {offset}")
                } else {
                    write!(f, "not an Inform: {rpc} at byte {offset}")
                }
            }
            Error::MissingDeviceId { offset, field } => {
                write!(f, "Inform without {field} (at byte {offset})")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Cuts a name taken from the input to at most 64 bytes on a character boundary,
/// so that an error never carries an unbounded amount of attacker-chosen text.
pub(crate) fn bounded_name(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
