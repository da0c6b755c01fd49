//! The extraction state machine over quick-xml's borrowed events, and over the plain
//! markup the shortcut reads itself (see [`crate::scan`]).
//!
//! Elements are matched by local name only; prefixes are never compared. A stack of
//! small [`Open`] values says where in the envelope each open element sits and which
//! name its end tag must repeat, so one pass is enough and nothing but the kept text
//! is materialized.
//!
//! Split by job, each an `impl Parser` of its own:
//! - this module, the driver: the event loop ([`Parser::run`]), the shortcut over
//!   plain markup and text-only leaves, end tags, the end of input;
//! - [`schema`]: what the CWMP schema makes of each element — where it sits
//!   ([`Ctx`]), which text is kept ([`Field`]), what opening and closing one does.
//!   A new header field or RPC goes there;
//! - [`xml`]: the XML chores — namespaces, references, attribute values, decoding.

mod schema;
mod xml;

use std::borrow::Cow;

use quick_xml::errors::IllFormedError;
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

use crate::error::{bounded_name, Error};
use crate::inform::{Inform, Warning};
use crate::scan::{self, Leaf};
use crate::text::{is_xml_ws, Charset, TextAcc};
use crate::transfer::{Message, Transfer};
use crate::Options;
use crate::Rpcs;
use schema::{ArrayCount, Ctx, EventDraft, ParamDraft, Rpc};
use xml::{find_cr_and_bom, reborrow, substr};

/// An open element: where it sits, and its qualified name, which its end tag must repeat.
#[derive(Debug, Clone, Copy)]
struct Open<'a> {
    ctx: Ctx,
    qname: &'a [u8],
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
    /// Which RPCs the body may hold.
    rpcs: Rpcs,
    /// The RPC the body holds, once its element has opened.
    rpc: Option<Rpc>,
    /// Whether the RPC element has closed, checked.
    rpc_done: bool,
    seen_device_id: bool,
    seen_event_list: bool,
    seen_param_list: bool,
    last_rank: u8,
    text: TextAcc<'a>,
    events_count: ArrayCount,
    params_count: ArrayCount,
    event: EventDraft<'a>,
    param: ParamDraft<'a>,
    /// The Inform being read; for a transfer, it holds the envelope's namespace,
    /// header and warnings, which move to `transfer` at the end.
    out: Inform<'a>,
    transfer: Transfer<'a>,
    seen_fault: bool,
    /// Whether the current `FaultStruct` had a `FaultCode`.
    fault_code_seen: bool,
    transfer_key_seen: bool,
}

impl<'a, 'o> Parser<'a, 'o> {
    pub(crate) fn new(
        doc: &'a [u8],
        base: usize,
        opts: &'o Options,
        charset: Option<Charset>,
        rpcs: Rpcs,
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
            rpcs,
            rpc: None,
            rpc_done: false,
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
            transfer: Transfer::default(),
            seen_fault: false,
            fault_code_seen: false,
            transfer_key_seen: false,
        }
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::MalformedXml {
            offset: self.offset(offset),
            reason: reason.into(),
        }
    }

    /// Where `at`, an offset in `doc`, lies in the caller's input: what errors report.
    fn offset(&self, at: u64) -> usize {
        self.base + at as usize
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

    pub(crate) fn run(mut self) -> Result<Message<'a>, Error> {
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
                                    offset: self.offset(start),
                                    encoding: bounded_name(&enc),
                                })
                            }
                        }
                    }
                }
                XmlEvent::DocType(_) => {
                    return Err(Error::DoctypeForbidden {
                        offset: self.offset(start),
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
                    | Ctx::Transfer
                    | Ctx::FaultStruct
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

    fn finish(self, at: u64) -> Result<Message<'a>, Error> {
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
        // Every path that ends the envelope without an RPC has already returned.
        if !self.rpc_done {
            return Err(Error::NotSoap {
                offset: self.offset(at),
                reason: "no Inform".to_owned(),
            });
        }
        Ok(match self.rpc {
            Some(Rpc::Inform) | None => Message::Inform(self.out),
            Some(Rpc::TransferComplete | Rpc::AutonomousTransferComplete) => {
                let mut transfer = self.transfer;
                transfer.namespace = self.out.namespace;
                transfer.header = self.out.header;
                transfer.warnings = self.out.warnings;
                Message::Transfer(transfer)
            }
        })
    }
}
