//! The extraction state machine over quick-xml's borrowed events, and over the plain
//! markup the shortcut reads itself (see [`crate::scan`]).
//!
//! Elements are matched by local name only; prefixes are never compared. A stack of
//! small [`Open`] values says where in the envelope each open element sits and which
//! name its end tag must repeat, so one pass is enough and nothing but the kept text
//! is materialized.

use std::borrow::Cow;

use quick_xml::errors::IllFormedError;
use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

use crate::attrs::{local_name, prefix, RawAttrs};
use crate::error::{bounded_name, Error};
use crate::find;
use crate::inform::{Event, Inform, Param, Warning};
use crate::scan::{self, Leaf};
use crate::text::{is_xml_ws, trim, Charset, TextAcc};
use crate::Options;

/// SOAP 1.1 (what CWMP uses) and SOAP 1.2 envelope namespaces.
const SOAP_ENVELOPE_NAMESPACES: &[&str] = &[
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
];

/// A UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where an open element sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Envelope,
    Header,
    Body,
    Inform,
    DeviceId,
    EventList,
    EventStruct,
    ParamList,
    ParamStruct,
    /// An element whose text is kept.
    Field(Field),
    /// Anything else: its content is read for well-formedness and otherwise ignored.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    HoldRequests,
    NoMoreRequests,
    SessionTimeout,
    SupportedVersions,
    Manufacturer,
    Oui,
    ProductClass,
    SerialNumber,
    EventCode,
    CommandKey,
    MaxEnvelopes,
    CurrentTime,
    RetryCount,
    Name,
    Value,
}

/// Schema order of Inform's children, to notice CPEs that send them shuffled.
fn inform_child_rank(ctx: Ctx) -> Option<u8> {
    match ctx {
        Ctx::DeviceId => Some(0),
        Ctx::EventList => Some(1),
        Ctx::Field(Field::MaxEnvelopes) => Some(2),
        Ctx::Field(Field::CurrentTime) => Some(3),
        Ctx::Field(Field::RetryCount) => Some(4),
        Ctx::ParamList => Some(5),
        _ => None,
    }
}

/// An open element: where it sits, and its qualified name, which its end tag must repeat.
#[derive(Debug, Clone, Copy)]
struct Open<'a> {
    ctx: Ctx,
    qname: &'a [u8],
}

/// What `arrayType` said, checked against what was present when the array closes.
#[derive(Debug, Default, Clone, Copy)]
struct ArrayCount {
    declared: Option<u64>,
    present: u64,
}

/// Half-built parameter.
#[derive(Debug, Default)]
struct ParamDraft<'a> {
    name: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
    type_: Option<Cow<'a, str>>,
}

/// The event struct being read: its codes are pushed to the output as they come,
/// from `first` on, and get the command key, which may come after them, when it closes.
#[derive(Debug, Default)]
struct EventDraft<'a> {
    first: usize,
    command_key: Option<Cow<'a, str>>,
}

pub(crate) struct Parser<'a, 'o> {
    /// The slice handed to quick-xml (input without BOM and leading white space).
    doc: &'a [u8],
    /// Offset of `doc` within the caller's input, added to every reported offset.
    base: usize,
    opts: &'o Options,
    charset: Charset,
    /// Charset fixed by a BOM or by the caller; the XML declaration may not change it.
    charset_fixed: bool,
    /// The whole document as text, when it is valid UTF-8 in a UTF-8 charset: fields
    /// are then sliced from it with no per-field validation.
    doc_str: Option<&'a str>,
    /// Whether the document holds a CR at all (if not, no field needs normalizing).
    doc_has_cr: bool,
    /// Whether the document holds a byte order mark (after the one the caller cut).
    doc_has_bom: bool,
    reader: Reader<&'a [u8]>,
    /// Bytes taken from the reader's input by [`Parser::shortcut`] rather than by
    /// quick-xml, whose own offsets leave them out.
    skipped: u64,
    /// Whether plain markup is read by [`Parser::shortcut`] (off only to test that it
    /// reads exactly what quick-xml's events give).
    shortcuts: bool,
    stack: Vec<Open<'a>>,
    /// Namespace declarations seen on the Inform element and its ancestors:
    /// (depth, prefix, raw URI). Only those elements are scanned.
    ns: Vec<(usize, &'a [u8], &'a [u8])>,
    root_seen: bool,
    body_seen: bool,
    inform_depth: Option<usize>,
    inform_done: bool,
    seen_device_id: bool,
    seen_event_list: bool,
    seen_param_list: bool,
    last_rank: u8,
    text: TextAcc<'a>,
    events_count: ArrayCount,
    params_count: ArrayCount,
    event: EventDraft<'a>,
    param: ParamDraft<'a>,
    out: Inform<'a>,
}

impl<'a, 'o> Parser<'a, 'o> {
    pub(crate) fn new(
        doc: &'a [u8],
        base: usize,
        opts: &'o Options,
        charset: Option<Charset>,
        shortcuts: bool,
    ) -> Self {
        let (doc_has_cr, doc_has_bom) = find_cr_and_bom(doc);
        let mut reader = Reader::from_reader(doc);
        let config = reader.config_mut();
        // End names are checked against `stack`, not by quick-xml: most tags are read
        // by `shortcut`, so quick-xml's own record of open elements is incomplete.
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.check_comments = false;
        config.trim_text_start = false;
        config.trim_text_end = false;
        config.expand_empty_elements = false;
        Parser {
            doc,
            base,
            opts,
            charset: charset.unwrap_or_default(),
            charset_fixed: charset.is_some(),
            doc_str: match charset.unwrap_or_default() {
                Charset::Utf8 => simdutf8::basic::from_utf8(doc).ok(),
                _ => None,
            },
            doc_has_cr,
            doc_has_bom,
            reader,
            skipped: 0,
            shortcuts,
            stack: Vec::with_capacity(16),
            ns: Vec::with_capacity(8),
            root_seen: false,
            body_seen: false,
            inform_depth: None,
            inform_done: false,
            seen_device_id: false,
            seen_event_list: false,
            seen_param_list: false,
            last_rank: 0,
            text: TextAcc::default(),
            events_count: ArrayCount::default(),
            params_count: ArrayCount::default(),
            event: EventDraft::default(),
            param: ParamDraft::default(),
            out: Inform::default(),
        }
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::MalformedXml {
            offset: self.base + offset as usize,
            reason: reason.into(),
        }
    }

    fn warn(&mut self, w: Warning) {
        self.out.warnings.insert(w);
    }

    /// Where the reader stands in `doc`.
    fn pos(&self) -> u64 {
        (self.doc.len() - self.reader.get_ref().len()) as u64
    }

    /// Takes `n` bytes from the reader's input without quick-xml seeing them.
    fn advance(&mut self, n: usize) {
        let input = self.reader.get_mut();
        *input = &input[n..];
        self.skipped += n as u64;
    }

    pub(crate) fn run(mut self) -> Result<Inform<'a>, Error> {
        // True after any markup (not after text, whose end quick-xml has read past),
        // where quick-xml waits for text and the input may be taken by `shortcut`
        // instead. Also true before the first event, unless the document holds a byte
        // order mark: quick-xml drops one found where it reads its first event.
        let mut after_markup = !self.doc_has_bom;
        loop {
            if after_markup && self.shortcuts && self.shortcut()? {
                continue;
            }
            let start = self.pos();
            let event = match self.reader.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    let at = self.reader.error_position() + self.skipped;
                    return Err(self.malformed(at, e.to_string()));
                }
            };
            after_markup = !matches!(event, XmlEvent::Text(_));
            match event {
                XmlEvent::Start(e) => {
                    let (qname, attrs) = self.tag_parts(&e, start)?;
                    let ctx = self.open(qname, attrs, start)?;
                    self.stack.push(Open { ctx, qname });
                }
                XmlEvent::Empty(e) => {
                    let (qname, attrs) = self.tag_parts(&e, start)?;
                    let ctx = self.open(qname, attrs, start)?;
                    self.close(ctx, start)?;
                }
                XmlEvent::End(e) => self.end_tag(e.name().into_inner(), start)?,
                XmlEvent::Text(t) => {
                    let bytes: &'a [u8] = match t.into_inner() {
                        Cow::Borrowed(b) => b,
                        Cow::Owned(_) => return Err(self.malformed(start, "unexpected owned text")),
                    };
                    self.text_piece(bytes, start)?;
                }
                XmlEvent::CData(c) => {
                    let bytes: &'a [u8] = match c.into_inner() {
                        Cow::Borrowed(b) => b,
                        Cow::Owned(_) => {
                            return Err(self.malformed(start, "unexpected owned CDATA"))
                        }
                    };
                    if self.stack.is_empty() {
                        return Err(self.malformed(start, "CDATA outside the root element"));
                    }
                    self.text_piece(bytes, start)?;
                }
                XmlEvent::GeneralRef(r) => self.reference(reborrow(self.doc, &r), start)?,
                XmlEvent::Decl(d) => {
                    if self.root_seen {
                        return Err(self.malformed(start, "XML declaration after the root element"));
                    }
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|e| self.malformed(start, e.to_string()))?;
                        match Charset::from_label(&enc) {
                            Some(cs) if !self.charset_fixed => {
                                self.charset = cs;
                                if cs != Charset::Utf8 {
                                    self.doc_str = None;
                                }
                            }
                            Some(_) => {}
                            None => {
                                return Err(Error::UnsupportedEncoding {
                                    offset: self.base + start as usize,
                                    encoding: bounded_name(&enc),
                                })
                            }
                        }
                    }
                }
                XmlEvent::DocType(_) => {
                    return Err(Error::DoctypeForbidden {
                        offset: self.base + start as usize,
                    })
                }
                XmlEvent::Comment(_) | XmlEvent::PI(_) => {}
                XmlEvent::Eof => return self.finish(start),
            }
        }
    }

    /// Closes the innermost open element for an end tag named `name` starting at `at`,
    /// with the errors quick-xml gives when it checks end names.
    fn end_tag(&mut self, name: &[u8], at: u64) -> Result<(), Error> {
        // quick-xml's messages decode names as UTF-8, or leave them empty.
        let text = |b: &[u8]| std::str::from_utf8(b).unwrap_or_default().to_owned();
        let ill_formed = match self.stack.last() {
            Some(open) if open.qname == name => return self.end(at),
            Some(open) => IllFormedError::MismatchedEndTag {
                expected: text(open.qname),
                found: text(name),
            },
            None => IllFormedError::UnmatchedEndTag(text(name)),
        };
        Err(self.malformed(at, quick_xml::Error::IllFormed(ill_formed).to_string()))
    }

    /// Closes the innermost open element, whose end tag starts at `at`.
    fn end(&mut self, at: u64) -> Result<(), Error> {
        let Open { ctx, .. } = self
            .stack
            .pop()
            .ok_or_else(|| self.malformed(at, "end tag without start tag"))?;
        // Declarations go out of scope with the element that made them.
        while self.ns.last().is_some_and(|(d, ..)| *d > self.stack.len()) {
            self.ns.pop();
        }
        self.close(ctx, at)
    }

    /// Reads the next piece of plain markup, and the white space before it, straight
    /// from the input instead of as quick-xml events: a start or end tag, or a
    /// text-only element (`<Name>text</Name>`) whole. Most of an Inform is such markup.
    /// Each goes through the same `open`, text, `end_tag` and `close` steps its events
    /// would, so the outcome is the same. Anything [`scan`] does not read exactly as
    /// quick-xml would (CDATA, comments, declarations, odd names, a reference without
    /// its `;`, an unfinished tag) is left untouched to quick-xml, which reads it or
    /// reports the error.
    ///
    /// Called only after markup, where quick-xml waits for text, and never inside a
    /// kept field, where white space is content. Returns whether it took anything.
    fn shortcut(&mut self) -> Result<bool, Error> {
        let parent = self.stack.last().map(|open| open.ctx);
        if matches!(parent, Some(Ctx::Field(_))) {
            return Ok(false);
        }
        let input: &'a [u8] = self.reader.get_ref();
        let ws = input
            .iter()
            .position(|&b| !is_xml_ws(b))
            .unwrap_or(input.len());
        if input.get(ws) != Some(&b'<') {
            return Ok(false);
        }
        // White space between tags outside a field means nothing to anyone.
        self.advance(ws);
        let input = &input[ws..];
        let at = self.pos();
        if input.get(1) == Some(&b'/') {
            let Some(open) = self.stack.last() else {
                return Ok(false);
            };
            let Some(stop) = scan::end_tag(input, open.qname) else {
                return Ok(false);
            };
            self.advance(stop);
            self.end(at)?;
            return Ok(true);
        }
        let Some(tag) = scan::start_tag(input) else {
            return Ok(false);
        };
        // Text-only children are looked for only where they are expected: elsewhere
        // (the envelope's path, the arrays) the search would be wasted.
        let leaves_expected = matches!(
            parent,
            Some(
                Ctx::Header
                    | Ctx::Inform
                    | Ctx::DeviceId
                    | Ctx::EventStruct
                    | Ctx::ParamStruct
                    | Ctx::Skip
            )
        );
        if !tag.empty && leaves_expected {
            if let Some(leaf) = scan::leaf(input, &tag) {
                self.advance(leaf.stop);
                self.take_leaf(&tag, &leaf, input, at)?;
                return Ok(true);
            }
        }
        self.advance(tag.stop);
        let ctx = self.open(tag.qname, tag.attrs, at)?;
        if tag.empty {
            self.close(ctx, at)?;
        } else {
            self.stack.push(Open {
                ctx,
                qname: tag.qname,
            });
        }
        Ok(true)
    }

    /// Opens, fills and closes a text-only element read by `shortcut`; `input` is what
    /// the scan read, starting at `base` in the document.
    fn take_leaf(
        &mut self,
        tag: &scan::StartTag<'a>,
        leaf: &Leaf<'a>,
        input: &'a [u8],
        base: u64,
    ) -> Result<(), Error> {
        let ctx = self.open(tag.qname, tag.attrs, base)?;
        let end = base + leaf.end as u64;
        // The common case: a field whose text is a plain slice of the document, which
        // the accumulator would only hand back. (Fields declare no namespaces, so
        // there is nothing to put out of scope either.)
        if let (Ctx::Field(field), false) = (ctx, leaf.has_refs) {
            if let Some(text) = self.plain_text(leaf.text) {
                return self.store_text(field, Cow::Borrowed(text), end);
            }
        }
        self.stack.push(Open {
            ctx,
            qname: tag.qname,
        });
        let mut text = leaf.text;
        let offset_of =
            |part: &[u8]| base + (part.as_ptr() as usize - input.as_ptr() as usize) as u64;
        // The scan has checked that each `&` has its `;`; `reference` resolves it or
        // gives the error quick-xml's event would have led to.
        while let Some(amp) = leaf.has_refs.then(|| memchr::memchr(b'&', text)).flatten() {
            if amp > 0 {
                self.text_piece(&text[..amp], offset_of(text))?;
            }
            let after = &text[amp + 1..];
            let semi = memchr::memchr(b';', after).unwrap_or(after.len());
            self.reference(after.get(..semi), offset_of(&text[amp..]))?;
            text = after.get(semi + 1..).unwrap_or_default();
        }
        if !text.is_empty() {
            self.text_piece(text, offset_of(text))?;
        }
        // The scan has checked that the end tag closes this element.
        self.end(end)
    }

    /// `bytes` as text needing no decoding and no line-end normalization, if it is.
    fn plain_text(&self, bytes: &'a [u8]) -> Option<&'a str> {
        let text = substr(self.doc_str?, bytes)?;
        (!self.doc_has_cr || memchr::memchr(b'\r', bytes).is_none()).then_some(text)
    }

    fn finish(self, at: u64) -> Result<Inform<'a>, Error> {
        if !self.stack.is_empty() {
            return Err(self.malformed(
                at,
                format!(
                    "unexpected end of input: {} element(s) not closed",
                    self.stack.len()
                ),
            ));
        }
        if !self.root_seen {
            return Err(self.malformed(at, "no root element"));
        }
        // Every path that ends the envelope without an Inform has already returned.
        if !self.inform_done {
            return Err(Error::NotSoap {
                offset: self.base + at as usize,
                reason: "no Inform".to_owned(),
            });
        }
        Ok(self.out)
    }

    /// Decides what a new element is, reads the attributes it needs, checks limits.
    fn open(&mut self, qname: &'a [u8], attrs: &'a [u8], at: u64) -> Result<Ctx, Error> {
        let depth = self.stack.len() + 1;
        if depth > self.opts.limits.max_depth {
            return Err(Error::TooDeep {
                offset: self.base + at as usize,
                limit: self.opts.limits.max_depth,
            });
        }
        let local = local_name(qname);
        let Some(parent) = self.stack.last().map(|open| open.ctx) else {
            if self.root_seen {
                return Err(self.malformed(at, "more than one root element"));
            }
            self.root_seen = true;
            if local != b"Envelope" {
                return Err(Error::NotSoap {
                    offset: self.base + at as usize,
                    reason: format!("root element is {:?}, not Envelope", bounded_name(local)),
                });
            }
            self.scan_namespaces(attrs, depth)?;
            let prefix = prefix(qname);
            match self.lookup_namespace(prefix, at)? {
                Some(uri) if SOAP_ENVELOPE_NAMESPACES.contains(&uri.as_ref()) => {}
                Some(uri) => {
                    return Err(Error::NotSoap {
                        offset: self.base + at as usize,
                        reason: format!(
                            "Envelope is in namespace {:?}, not a SOAP envelope namespace",
                            bounded_name(uri.as_bytes())
                        ),
                    })
                }
                None => {
                    return Err(Error::NotSoap {
                        offset: self.base + at as usize,
                        reason: format!(
                            "Envelope prefix {:?} is not bound to a namespace",
                            bounded_name(prefix)
                        ),
                    })
                }
            }
            return Ok(Ctx::Envelope);
        };
        let ctx = match parent {
            Ctx::Envelope => match local {
                b"Header" => {
                    self.scan_namespaces(attrs, depth)?;
                    Ctx::Header
                }
                b"Body" => {
                    self.scan_namespaces(attrs, depth)?;
                    self.body_seen = true;
                    Ctx::Body
                }
                _ => Ctx::Skip,
            },
            Ctx::Header => match local {
                b"ID" => Ctx::Field(Field::Id),
                b"HoldRequests" | b"HoldRequest" => Ctx::Field(Field::HoldRequests),
                b"NoMoreRequests" => Ctx::Field(Field::NoMoreRequests),
                b"SessionTimeout" => Ctx::Field(Field::SessionTimeout),
                b"SupportedCWMPVersions" => Ctx::Field(Field::SupportedVersions),
                _ => Ctx::Skip,
            },
            Ctx::Body => {
                if self.inform_depth.is_some() {
                    // Whatever follows the Inform in the same body is not ours.
                    self.warn(Warning::UnknownElement);
                    Ctx::Skip
                } else if local == b"Inform" {
                    self.scan_namespaces(attrs, depth)?;
                    self.out.namespace = self.lookup_namespace(prefix(qname), at)?;
                    self.inform_depth = Some(depth);
                    Ctx::Inform
                } else {
                    return Err(Error::NotInform {
                        offset: self.base + at as usize,
                        rpc: bounded_name(local),
                    });
                }
            }
            Ctx::Inform => {
                let ctx = match local {
                    b"DeviceId" => self.once(Ctx::DeviceId),
                    b"Event" => self.once(Ctx::EventList),
                    b"MaxEnvelopes" => Ctx::Field(Field::MaxEnvelopes),
                    b"CurrentTime" => Ctx::Field(Field::CurrentTime),
                    b"RetryCount" => Ctx::Field(Field::RetryCount),
                    b"ParameterList" => self.once(Ctx::ParamList),
                    _ => {
                        self.warn(Warning::UnknownElement);
                        Ctx::Skip
                    }
                };
                if let Some(rank) = inform_child_rank(ctx) {
                    if rank < self.last_rank {
                        self.warn(Warning::UnknownChildrenOrder);
                    }
                    self.last_rank = rank;
                }
                ctx
            }
            Ctx::DeviceId => match local {
                b"Manufacturer" => Ctx::Field(Field::Manufacturer),
                b"OUI" => Ctx::Field(Field::Oui),
                b"ProductClass" => Ctx::Field(Field::ProductClass),
                b"SerialNumber" => Ctx::Field(Field::SerialNumber),
                _ => self.unknown(),
            },
            Ctx::EventList => match local {
                b"EventStruct" => Ctx::EventStruct,
                _ => self.unknown(),
            },
            Ctx::EventStruct => match local {
                b"EventCode" => Ctx::Field(Field::EventCode),
                b"CommandKey" => Ctx::Field(Field::CommandKey),
                _ => self.unknown(),
            },
            Ctx::ParamList => match local {
                b"ParameterValueStruct" => Ctx::ParamStruct,
                _ => self.unknown(),
            },
            Ctx::ParamStruct => match local {
                b"Name" => Ctx::Field(Field::Name),
                b"Value" => Ctx::Field(Field::Value),
                _ => self.unknown(),
            },
            Ctx::Field(_) => self.unknown(),
            Ctx::Skip => Ctx::Skip,
        };
        match ctx {
            Ctx::Field(Field::Value) => {
                self.text.clear();
                self.param.type_ = self.attribute(attrs, b"type", at)?;
            }
            Ctx::Field(_) => self.text.clear(),
            Ctx::EventList => {
                self.events_count = ArrayCount {
                    declared: self.array_count(attrs, at)?,
                    present: 0,
                };
            }
            Ctx::ParamList => {
                self.params_count = ArrayCount {
                    declared: self.array_count(attrs, at)?,
                    present: 0,
                };
                let hint = self.params_count.declared.unwrap_or(0);
                let room = self
                    .opts
                    .limits
                    .max_params
                    .saturating_sub(self.out.params.len());
                self.out
                    .params
                    .reserve(usize::try_from(hint).unwrap_or(0).min(room).min(256));
            }
            Ctx::EventStruct => {
                self.event = EventDraft {
                    first: self.out.events.len(),
                    command_key: None,
                };
            }
            Ctx::ParamStruct => self.param = ParamDraft::default(),
            _ => {}
        }
        Ok(ctx)
    }

    fn unknown(&mut self) -> Ctx {
        self.warn(Warning::UnknownElement);
        Ctx::Skip
    }

    /// Marks a once-only child of Inform as seen, warning when it repeats.
    fn once(&mut self, ctx: Ctx) -> Ctx {
        let seen = match ctx {
            Ctx::DeviceId => &mut self.seen_device_id,
            Ctx::EventList => &mut self.seen_event_list,
            Ctx::ParamList => &mut self.seen_param_list,
            _ => return ctx,
        };
        let repeated = std::mem::replace(seen, true);
        if repeated {
            self.warn(Warning::DuplicateElement);
        }
        ctx
    }

    /// Finishes an element: stores its text, or completes the struct it closes.
    fn close(&mut self, ctx: Ctx, at: u64) -> Result<(), Error> {
        match ctx {
            Ctx::Field(field) => self.store_field(field, at),
            Ctx::EventStruct => self.close_event_struct(),
            Ctx::ParamStruct => self.close_param_struct(at),
            Ctx::EventList => {
                self.check_array(self.events_count);
                Ok(())
            }
            Ctx::ParamList => {
                self.check_array(self.params_count);
                Ok(())
            }
            Ctx::Inform => self.close_inform(at),
            Ctx::Body if self.inform_depth.is_none() => Err(Error::NotInform {
                offset: self.base + at as usize,
                rpc: String::new(),
            }),
            Ctx::Envelope if !self.body_seen => Err(Error::NotSoap {
                offset: self.base + at as usize,
                reason: "Envelope without Body".to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn store_field(&mut self, field: Field, at: u64) -> Result<(), Error> {
        let raw = self.text.take();
        self.store_text(field, raw, at)
    }

    /// Stores the text of a field whose end tag starts at `at`.
    fn store_text(&mut self, field: Field, raw: Cow<'a, str>, at: u64) -> Result<(), Error> {
        if field == Field::Value {
            if self.param.value.is_some() {
                self.warn(Warning::DuplicateElement);
            }
            self.param.value = Some(raw);
            return Ok(());
        }
        let text = trim(raw);
        let out = &mut self.out;
        let mut duplicate = false;
        let mut set = |slot: &mut Option<Cow<'a, str>>, text: Cow<'a, str>| {
            duplicate |= slot.replace(text).is_some();
        };
        match field {
            Field::Id => set(&mut out.header.id, text),
            Field::SupportedVersions => set(&mut out.header.supported_cwmp_versions, text),
            Field::CurrentTime => set(&mut out.current_time, text),
            Field::HoldRequests => out.header.hold_requests = parse_bool(&text, &mut out.warnings),
            Field::NoMoreRequests => {
                out.header.no_more_requests = parse_bool(&text, &mut out.warnings)
            }
            Field::SessionTimeout => {
                out.header.session_timeout = Some(parse_u32(&text, &mut out.warnings))
            }
            Field::MaxEnvelopes => out.max_envelopes = parse_u32(&text, &mut out.warnings),
            Field::RetryCount => out.retry_count = parse_u32(&text, &mut out.warnings),
            Field::Manufacturer => out.device_id.manufacturer = text,
            Field::Oui => out.device_id.oui = text,
            Field::ProductClass => out.device_id.product_class = text,
            Field::SerialNumber => out.device_id.serial_number = text,
            Field::EventCode => {
                if text.is_empty() {
                    self.out.warnings.insert(Warning::MissingEventCode);
                } else {
                    if self.out.events.len() >= self.opts.limits.max_events {
                        return Err(Error::TooManyEvents {
                            offset: self.base + at as usize,
                            limit: self.opts.limits.max_events,
                        });
                    }
                    // Its command key is filled in when the struct closes.
                    self.out.events.push(Event {
                        code: text,
                        command_key: Cow::Borrowed(""),
                    });
                }
            }
            Field::CommandKey => set(&mut self.event.command_key, text),
            Field::Name => set(&mut self.param.name, text),
            Field::Value => {}
        }
        if duplicate {
            self.warn(Warning::DuplicateElement);
        }
        Ok(())
    }

    fn close_event_struct(&mut self) -> Result<(), Error> {
        self.events_count.present += 1;
        let codes = self
            .out
            .events
            .get_mut(self.event.first..)
            .unwrap_or_default();
        let multiple = codes.len() > 1;
        let missing = codes.is_empty();
        if let Some(command_key) = self.event.command_key.take() {
            for event in codes {
                event.command_key = command_key.clone();
            }
        }
        if missing {
            self.warn(Warning::MissingEventCode);
        } else if multiple {
            self.warn(Warning::MultipleEventCodes);
        }
        Ok(())
    }

    fn close_param_struct(&mut self, at: u64) -> Result<(), Error> {
        self.params_count.present += 1;
        let draft = std::mem::take(&mut self.param);
        let name = match draft.name {
            Some(name) if !name.is_empty() => name,
            _ => {
                self.warn(Warning::MissingParamName);
                return Ok(());
            }
        };
        if self.out.params.len() >= self.opts.limits.max_params {
            return Err(Error::TooManyParams {
                offset: self.base + at as usize,
                limit: self.opts.limits.max_params,
            });
        }
        let value = match draft.value {
            Some(v) => v,
            None => {
                self.warn(Warning::MissingValue);
                Cow::Borrowed("")
            }
        };
        self.out.params.push(Param {
            name,
            value,
            type_: draft.type_,
        });
        Ok(())
    }

    fn check_array(&mut self, count: ArrayCount) {
        if let Some(declared) = count.declared {
            if declared != count.present {
                self.warn(Warning::ArrayTypeMismatch);
            }
        }
    }

    fn close_inform(&mut self, at: u64) -> Result<(), Error> {
        let offset = self.base + at as usize;
        if !self.seen_device_id {
            return Err(Error::MissingDeviceId {
                offset,
                field: "DeviceId",
            });
        }
        if self.out.device_id.oui.is_empty() {
            return Err(Error::MissingDeviceId {
                offset,
                field: "OUI",
            });
        }
        if self.out.device_id.serial_number.is_empty() {
            return Err(Error::MissingDeviceId {
                offset,
                field: "SerialNumber",
            });
        }
        if !self.seen_event_list {
            self.warn(Warning::MissingEventList);
        }
        if !self.seen_param_list {
            self.warn(Warning::MissingParameterList);
        }
        if has_duplicate_names(&self.out.params) {
            self.warn(Warning::DuplicateParam);
        }
        self.inform_done = true;
        Ok(())
    }

    /// Adds a run of character data to the open field, or checks that text outside
    /// the root element is only white space.
    fn text_piece(&mut self, bytes: &'a [u8], at: u64) -> Result<(), Error> {
        match self.stack.last().map(|open| open.ctx) {
            None => {
                if bytes.iter().all(|&b| is_xml_ws(b)) {
                    Ok(())
                } else {
                    Err(self.malformed(at, "text outside the root element"))
                }
            }
            Some(Ctx::Field(_)) => {
                let piece = self.decode(bytes);
                self.text.push_piece(piece, self.doc_has_cr);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Resolves `&name;` / `&#N;` (`raw` is the text between `&` and `;`). Only the
    /// five predefined entities exist: with no DTD allowed, any other name is an error
    /// wherever it appears.
    fn reference(&mut self, raw: Option<&'a [u8]>, at: u64) -> Result<(), Error> {
        let raw = raw.ok_or_else(|| self.malformed(at, "reference not borrowed from the input"))?;
        if self.stack.is_empty() {
            return Err(self.malformed(at, "reference outside the root element"));
        }
        let resolved = resolve_reference(raw).ok_or_else(|| {
            let what = if raw.starts_with(b"#") {
                "invalid character reference"
            } else {
                "unknown entity"
            };
            self.malformed(at, format!("{what} &{};", bounded_name(raw)))
        })?;
        if matches!(self.stack.last().map(|open| open.ctx), Some(Ctx::Field(_))) {
            match resolved {
                Resolved::Char(c) => self.text.push_char(c),
                Resolved::Str(s) => self.text.push_str(s),
            }
        }
        Ok(())
    }

    /// The qualified name and the raw attribute text of a tag quick-xml read, as
    /// slices of the input.
    fn tag_parts(&self, e: &BytesStart<'_>, at: u64) -> Result<(&'a [u8], &'a [u8]), Error> {
        let qname = reborrow(self.doc, e.name().into_inner());
        let attrs = reborrow(self.doc, e.attributes_raw());
        match (qname, attrs) {
            (Some(q), Some(a)) => Ok((q, a)),
            _ => Err(self.malformed(at, "tag not borrowed from the input")),
        }
    }

    /// The attributes of a start tag. Error offsets come from the slice's place in `doc`.
    fn raw_attrs(&self, attrs: &'a [u8]) -> (RawAttrs<'a>, u64) {
        let base = (attrs.as_ptr() as usize).saturating_sub(self.doc.as_ptr() as usize);
        (RawAttrs::new(attrs), base as u64)
    }

    /// Records `xmlns` / `xmlns:p` declarations of an element on the Inform's path.
    fn scan_namespaces(&mut self, attrs: &'a [u8], depth: usize) -> Result<(), Error> {
        let (attrs, base) = self.raw_attrs(attrs);
        for attr in attrs {
            let (key, value) = attr.map_err(|(pos, what)| {
                self.malformed(base + pos as u64, format!("expected {what}"))
            })?;
            let prefix: &'a [u8] = if key == b"xmlns" {
                b""
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                p
            } else {
                continue;
            };
            self.ns.push((depth, prefix, value));
        }
        Ok(())
    }

    /// The URI bound to `prefix`, or `None` when it is unbound (or reset with `xmlns=""`).
    fn lookup_namespace(&mut self, prefix: &[u8], at: u64) -> Result<Option<Cow<'a, str>>, Error> {
        let Some(&(_, _, raw)) = self.ns.iter().rev().find(|(_, p, _)| *p == prefix) else {
            return Ok(None);
        };
        let uri = self.attr_value(raw, at)?;
        Ok((!uri.is_empty()).then_some(uri))
    }

    /// The value of the first attribute with this local name, decoded and unescaped.
    fn attribute(
        &mut self,
        attrs: &'a [u8],
        local: &[u8],
        at: u64,
    ) -> Result<Option<Cow<'a, str>>, Error> {
        let (attrs, base) = self.raw_attrs(attrs);
        for attr in attrs {
            let (key, value) = attr.map_err(|(pos, what)| {
                self.malformed(base + pos as u64, format!("expected {what}"))
            })?;
            if local_name(key) == local {
                return self.attr_value(value, at).map(Some);
            }
        }
        Ok(None)
    }

    /// Decodes a slice of the document, borrowing when it can.
    fn decode(&mut self, bytes: &'a [u8]) -> Cow<'a, str> {
        if let Some(doc) = self.doc_str {
            if let Some(text) = substr(doc, bytes) {
                return Cow::Borrowed(text);
            }
        }
        let (text, invalid) = self.charset.decode(bytes);
        if invalid {
            self.warn(Warning::InvalidUtf8);
        }
        if matches!(text, Cow::Owned(_)) && self.charset != Charset::Utf8 {
            self.warn(Warning::Transcoded);
        }
        text
    }

    fn attr_value(&mut self, raw: &'a [u8], at: u64) -> Result<Cow<'a, str>, Error> {
        let text = self.decode(raw);
        if find::find1(b'&', text.as_bytes()).is_none() {
            return Ok(text);
        }
        match quick_xml::escape::unescape(&text) {
            Ok(u) => Ok(Cow::Owned(u.into_owned())),
            Err(err) => Err(self.malformed(at, format!("in attribute value: {err}"))),
        }
    }

    /// Reads the count of an `arrayType="cwmp:EventStruct[N]"` attribute.
    fn array_count(&mut self, attrs: &'a [u8], at: u64) -> Result<Option<u64>, Error> {
        let Some(value) = self.attribute(attrs, b"arrayType", at)? else {
            self.warn(Warning::MissingArrayType);
            return Ok(None);
        };
        match declared_count(&value) {
            Some(n) => Ok(Some(n)),
            None => {
                self.warn(Warning::InvalidArrayType);
                Ok(None)
            }
        }
    }
}

/// The count an `arrayType` value (`cwmp:EventStruct[2]`) declares: the digits
/// between its last `[` and a final `]`, white space allowed around them; `u64::MAX`
/// when they overflow. `None` when there are no such digits.
fn declared_count(value: &str) -> Option<u64> {
    let inner = value.trim().strip_suffix(']')?;
    let open = inner.bytes().rposition(|b| b == b'[')?;
    let digits = inner.get(open + 1..)?.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count = digits.bytes().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    });
    Some(count.unwrap_or(u64::MAX))
}

/// What a reference stands for.
enum Resolved {
    Char(char),
    Str(&'static str),
}

/// Resolves the text between `&` and `;` the way quick-xml does: a character
/// reference or one of the five predefined entities; `None` for anything else.
fn resolve_reference(raw: &[u8]) -> Option<Resolved> {
    let name = std::str::from_utf8(raw).ok()?;
    if name.starts_with('#') {
        match quick_xml::events::BytesRef::new(name).resolve_char_ref() {
            Ok(Some(c)) => Some(Resolved::Char(c)),
            Ok(None) | Err(_) => None,
        }
    } else {
        quick_xml::escape::resolve_predefined_entity(name).map(Resolved::Str)
    }
}

/// Whether `doc` holds a CR, and whether it holds a byte order mark: in one pass when
/// it holds neither, as most documents do.
fn find_cr_and_bom(doc: &[u8]) -> (bool, bool) {
    let has_bom_from =
        |at: usize| memchr::memchr_iter(BOM[0], &doc[at..]).any(|i| doc[at + i..].starts_with(BOM));
    let mut at = 0;
    while let Some(i) = memchr::memchr2(b'\r', BOM[0], &doc[at..]) {
        let i = at + i;
        if doc[i] == b'\r' {
            return (true, has_bom_from(i));
        }
        if doc[i..].starts_with(BOM) {
            return (memchr::memchr(b'\r', &doc[i..]).is_some(), true);
        }
        at = i + 1;
    }
    (false, false)
}

/// The text of `part`, a sub-slice of the document `doc` was validated from.
fn substr<'a>(doc: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(doc.as_ptr() as usize)?;
    doc.get(start..start.checked_add(part.len())?)
}

/// Gives back `part` as a sub-slice of `doc` with `doc`'s lifetime, when `part`
/// lies inside `doc` (quick-xml hands out attribute values with a shorter lifetime).
fn reborrow<'a>(doc: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let start = (part.as_ptr() as usize).checked_sub(doc.as_ptr() as usize)?;
    doc.get(start..start.checked_add(part.len())?)
}

fn parse_u32(text: &str, warnings: &mut crate::Warnings) -> Option<u32> {
    match text.parse::<u32>() {
        Ok(n) if !text.starts_with('+') => Some(n),
        _ => {
            warnings.insert(Warning::InvalidNumber);
            None
        }
    }
}

fn parse_bool(text: &str, warnings: &mut crate::Warnings) -> Option<bool> {
    match text {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => {
            warnings.insert(Warning::InvalidNumber);
            None
        }
    }
}

fn has_duplicate_names(params: &[Param<'_>]) -> bool {
    if params.len() <= 16 {
        return params
            .iter()
            .enumerate()
            .any(|(i, p)| params[..i].iter().any(|q| q.name == p.name));
    }
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(
        params.len(),
        foldhash::fast::FixedState::default(),
    );
    !params.iter().all(|p| seen.insert(p.name.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_counts() {
        for (value, count) in [
            ("cwmp:EventStruct[2]", Some(2)),
            ("cwmp:ParameterValueStruct[0016]", Some(16)),
            (" cwmp:EventStruct[ 3 ] ", Some(3)),
            ("EventStruct[0]", Some(0)),
            ("x[1][2]", Some(2)),
            ("x[99999999999999999999999]", Some(u64::MAX)),
            ("x[18446744073709551615]", Some(u64::MAX)),
            ("x[18446744073709551614]", Some(u64::MAX - 1)),
            ("cwmp:EventStruct[]", None),
            ("cwmp:EventStruct[-1]", None),
            ("cwmp:EventStruct[1 2]", None),
            ("cwmp:EventStruct", None),
            ("cwmp:EventStruct2]", None),
            ("cwmp:EventStruct[\u{664}]", None),
            ("", None),
        ] {
            assert_eq!(declared_count(value), count, "{value:?}");
        }
    }

    #[test]
    fn cr_and_bom() {
        let naive = |doc: &[u8]| (doc.contains(&b'\r'), doc.windows(3).any(|w| w == BOM));
        let parts: [&[u8]; 6] = [
            b"<a>",
            b"\r",
            BOM,
            b"\xEF",
            b"\xEF\xBB",
            "\u{e9}x".as_bytes(),
        ];
        // Every sequence of up to four parts.
        let mut docs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = docs
                .iter()
                .flat_map(|d| parts.iter().map(move |p| [d.as_slice(), p].concat()))
                .collect();
            docs.extend(longer);
        }
        for doc in docs {
            assert_eq!(find_cr_and_bom(&doc), naive(&doc), "{doc:?}");
        }
    }
}
