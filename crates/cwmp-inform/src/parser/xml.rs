//! The XML chores of the parser: text and references inside fields, the parts of a
//! tag quick-xml read, namespace declarations and look-ups, attribute values, and
//! decoding slices of the document.

use std::borrow::Cow;

use quick_xml::events::BytesStart;

use super::schema::Ctx;
use super::Parser;
use crate::attrs::{local_name, RawAttrs};
use crate::error::{bounded_name, Error};
use crate::find;
use crate::inform::Warning;
use crate::text::{is_xml_ws, Charset};

/// A UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<'a> Parser<'a, '_> {
    /// Adds a run of character data to the open field, or checks that text outside
    /// the root element is only white space.
    pub(super) fn text_piece(&mut self, bytes: &'a [u8], at: u64) -> Result<(), Error> {
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
    pub(super) fn reference(&mut self, raw: Option<&'a [u8]>, at: u64) -> Result<(), Error> {
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
    pub(super) fn tag_parts(
        &self,
        e: &BytesStart<'_>,
        at: u64,
    ) -> Result<(&'a [u8], &'a [u8]), Error> {
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
    pub(super) fn scan_namespaces(&mut self, attrs: &'a [u8], depth: usize) -> Result<(), Error> {
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
    pub(super) fn lookup_namespace(
        &mut self,
        prefix: &[u8],
        at: u64,
    ) -> Result<Option<Cow<'a, str>>, Error> {
        let Some(&(_, _, raw)) = self.ns.iter().rev().find(|(_, p, _)| *p == prefix) else {
            return Ok(None);
        };
        let uri = self.attr_value(raw, at)?;
        Ok((!uri.is_empty()).then_some(uri))
    }

    /// The value of the first attribute with this local name, decoded and unescaped.
    pub(super) fn attribute(
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

    pub(super) fn attr_value(&mut self, raw: &'a [u8], at: u64) -> Result<Cow<'a, str>, Error> {
        let text = self.decode(raw);
        if find::find1(b'&', text.as_bytes()).is_none() {
            return Ok(text);
        }
        match quick_xml::escape::unescape(&text) {
            Ok(u) => Ok(Cow::Owned(u.into_owned())),
            Err(err) => Err(self.malformed(at, format!("in attribute value: {err}"))),
        }
    }
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
pub(super) fn find_cr_and_bom(doc: &[u8]) -> (bool, bool) {
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
pub(super) fn substr<'a>(doc: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(doc.as_ptr() as usize)?;
    doc.get(start..start.checked_add(part.len())?)
}

/// Gives back `part` as a sub-slice of `doc` with `doc`'s lifetime, when `part`
/// lies inside `doc` (quick-xml hands out attribute values with a shorter lifetime).
pub(super) fn reborrow<'a>(doc: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let start = (part.as_ptr() as usize).checked_sub(doc.as_ptr() as usize)?;
    doc.get(start..start.checked_add(part.len())?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
