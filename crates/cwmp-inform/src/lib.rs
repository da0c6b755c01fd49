//! Zero-copy extraction of TR-069 (CWMP) `Inform` messages, and of the
//! `TransferComplete` and `AutonomousTransferComplete` that report a transfer's outcome.
//!
//! A CPE opens every CWMP session with an `Inform`: who it is (`DeviceId`), why it
//! called (`Event` codes such as `1 BOOT` or `M Reboot`), and a few forced
//! parameters. This crate turns the raw HTTP POST body of such a message into an
//! [`Inform`] that borrows its text from the input, and refuses everything else with
//! a typed [`Error`].
//!
//! Real CPEs are loose with SOAP, so the extractor matches elements by local name and
//! never by prefix, takes Inform's children in any order, never trusts `arrayType`
//! counts, accepts a missing header, CDATA, comments, CRLF, a byte order mark,
//! ISO-8859-1 and windows-1252 bodies (text is transcoded) and invalid UTF-8 (bytes
//! are replaced with U+FFFD). Every such quirk is recorded as a [`Warning`], never
//! accepted silently.
//!
//! What is refused: empty input, input that is not XML or not well-formed, a document
//! type declaration (so no entity can ever expand), input larger, deeper or with more
//! events or parameters than the [`Limits`], a document that is not a SOAP envelope,
//! a SOAP body that is not an Inform ([`Error::NotInform`] carries the RPC name), and
//! an Inform without `OUI` or `SerialNumber`. No input makes it panic, loop, or use
//! memory out of proportion to its size.
//!
//! [`extract_message`] reads a [`Message`]: an Inform, or a [`Transfer`]
//! (`TransferComplete` / `AutonomousTransferComplete`: command key, `FaultStruct`,
//! times as written), with the same rigor and the same quirks.
//!
//! ```
//! let body = br#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
//!     xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Body><cwmp:Inform>
//!   <DeviceId><Manufacturer>ACME</Manufacturer><OUI>00D09E</OUI>
//!     <ProductClass>IGD</ProductClass><SerialNumber>S1</SerialNumber></DeviceId>
//!   <Event><EventStruct><EventCode>1 BOOT</EventCode><CommandKey/></EventStruct></Event>
//!   <MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2024-01-01T00:00:00Z</CurrentTime>
//!   <RetryCount>0</RetryCount><ParameterList/>
//! </cwmp:Inform></soap:Body></soap:Envelope>"#;
//! let inform = cwmp_inform::extract(body, &cwmp_inform::Options::default()).unwrap();
//! assert_eq!(inform.device_id.serial_number, "S1");
//! assert_eq!(inform.events[0].code, "1 BOOT");
//! assert_eq!(inform.namespace.as_deref(), Some("urn:dslforum-org:cwmp-1-0"));
//! ```

mod attrs;
mod error;
mod find;
mod inform;
mod parser;
mod scan;
mod text;
mod transfer;

pub use error::Error;
pub use inform::{DeviceId, Event, Header, Inform, Param, Warning, Warnings};
pub use text::Charset;
pub use transfer::{Autonomous, Fault, Message, Transfer};

/// Bounds on what one message may hold. Anything beyond them is refused with a typed error.
///
/// With the `serde` feature it reads from a configuration (every field optional,
/// unknown ones refused); with `clap`, from `--max-…` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Limits {
    /// Largest accepted message in bytes.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Limits::default().max_message_bytes))]
    pub max_message_bytes: usize,
    /// Deepest accepted element nesting.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Limits::default().max_depth))]
    pub max_depth: usize,
    /// Most event codes in one Inform.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Limits::default().max_events))]
    pub max_events: usize,
    /// Most parameters in one Inform.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Limits::default().max_params))]
    pub max_params: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            max_depth: 64,
            max_events: 256,
            max_params: 16_384,
        }
    }
}

/// How to read one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Bounds on the message.
    pub limits: Limits,
    /// The charset the transport declared (HTTP `Content-Type`), if any. It wins over
    /// the XML declaration, as it does for `text/xml`; a UTF-8 byte order mark wins
    /// over both. See [`charset_from_content_type`].
    pub charset: Option<Charset>,
}

/// Reads the `charset` parameter of a `Content-Type` value.
///
/// `Ok(None)` when there is no charset parameter; [`Error::UnsupportedEncoding`] when
/// it names an encoding this crate does not read.
///
/// ```
/// use cwmp_inform::{charset_from_content_type, Charset};
/// assert_eq!(charset_from_content_type("text/xml; charset=ISO-8859-1").unwrap(), Some(Charset::Latin1));
/// assert_eq!(charset_from_content_type("text/xml").unwrap(), None);
/// assert!(charset_from_content_type("text/xml; charset=utf-16").is_err());
/// ```
pub fn charset_from_content_type(content_type: &str) -> Result<Option<Charset>, Error> {
    for param in content_type.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("charset") {
            return match Charset::from_label(value.as_bytes()) {
                Some(cs) => Ok(Some(cs)),
                None => Err(Error::UnsupportedEncoding {
                    offset: 0,
                    encoding: error::bounded_name(value.trim().as_bytes()),
                }),
            };
        }
    }
    Ok(None)
}

/// Extracts the Inform from one CPE→ACS message (the HTTP POST body as received).
///
/// The result borrows from `input`; call [`Inform::into_owned`] to keep it longer.
/// Any other RPC is [`Error::NotInform`]; [`extract_message`] reads transfers too.
pub fn extract<'a>(input: &'a [u8], options: &Options) -> Result<Inform<'a>, Error> {
    inform_only(extract_with(input, options, Rpcs::Inform, true))
}

/// Extracts an Inform, a `TransferComplete` or an `AutonomousTransferComplete` from
/// one CPE→ACS message, with the same rules, quirks, limits and errors as [`extract`]
/// (a body of any other RPC is [`Error::NotInform`], naming it).
///
/// ```
/// let body = br#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
///     xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Body><cwmp:TransferComplete>
///   <CommandKey>fw-2024-06</CommandKey>
///   <FaultStruct><FaultCode>9010</FaultCode><FaultString>Download failed</FaultString></FaultStruct>
///   <StartTime>2024-06-01T02:00:00Z</StartTime><CompleteTime>2024-06-01T02:03:10Z</CompleteTime>
/// </cwmp:TransferComplete></soap:Body></soap:Envelope>"#;
/// let message = cwmp_inform::extract_message(body, &cwmp_inform::Options::default()).unwrap();
/// let cwmp_inform::Message::Transfer(transfer) = message else { panic!("a transfer") };
/// assert_eq!(transfer.command_key, "fw-2024-06");
/// assert_eq!(transfer.fault.unwrap().code, Some(9010));
/// ```
pub fn extract_message<'a>(input: &'a [u8], options: &Options) -> Result<Message<'a>, Error> {
    extract_with(input, options, Rpcs::All, true)
}

/// [`extract`] with the whole document read as quick-xml events, none of it by the
/// parser's shortcut for plain markup. For tests and fuzzing, which check that both
/// give the same result on every input; not part of the API.
#[doc(hidden)]
pub fn extract_event_by_event<'a>(input: &'a [u8], options: &Options) -> Result<Inform<'a>, Error> {
    inform_only(extract_with(input, options, Rpcs::Inform, false))
}

/// [`extract_message`] read event by event, as [`extract_event_by_event`].
#[doc(hidden)]
pub fn extract_message_event_by_event<'a>(
    input: &'a [u8],
    options: &Options,
) -> Result<Message<'a>, Error> {
    extract_with(input, options, Rpcs::All, false)
}

/// Which RPCs a body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpcs {
    Inform,
    All,
}

fn inform_only(message: Result<Message<'_>, Error>) -> Result<Inform<'_>, Error> {
    match message? {
        Message::Inform(inform) => Ok(inform),
        // The parser reads no other RPC when asked for an Inform; kept total anyway.
        other => Err(Error::NotInform {
            offset: 0,
            rpc: other.rpc().to_owned(),
        }),
    }
}

fn extract_with<'a>(
    input: &'a [u8],
    options: &Options,
    rpcs: Rpcs,
    shortcuts: bool,
) -> Result<Message<'a>, Error> {
    let limit = options.limits.max_message_bytes;
    if input.len() > limit {
        return Err(Error::TooLarge {
            size: input.len(),
            limit,
        });
    }
    let mut start = 0;
    let mut charset = options.charset;
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        start = 3;
        charset = Some(Charset::Utf8);
    } else if input.starts_with(&[0xFE, 0xFF]) || input.starts_with(&[0xFF, 0xFE]) {
        return Err(Error::UnsupportedEncoding {
            offset: 0,
            encoding: "UTF-16".to_owned(),
        });
    }
    match input[start..].iter().position(|&b| !text::is_xml_ws(b)) {
        None => return Err(Error::Empty),
        Some(skip) => start += skip,
    }
    if input[start] != b'<' {
        return Err(Error::NotXml { offset: start });
    }
    parser::Parser::new(&input[start..], start, options, charset, rpcs, shortcuts).run()
}
