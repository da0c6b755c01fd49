//! Reads the text-only elements of an Inform (`<Name>x</Name>`, `<Value/>`) straight
//! from the bytes. Most of a message is made of them, and reading them here spares
//! quick-xml's work per event: three events (start, text, end) become one scan.
//! (Reading whole `ParameterValueStruct`s this way was tried and measured slower.)
//!
//! Tags are cut exactly where quick-xml 0.41 cuts them: a start tag ends at the first
//! `>` outside quotes, its name ends at white space, a trailing `/` makes it empty; an
//! end tag ends at the first `>` and may hold white space after its name. Whatever is
//! not plain — CDATA, comments, processing instructions, child elements, a reference
//! that would not resolve, a mismatched or unfinished tag — gives
//! `None`, and the parser leaves it to quick-xml. `tests/integration/shortcut.rs`
//! checks that both ways give the same result on every input.

use crate::text::is_xml_ws;

/// A text-only element. Offsets are from the start of the input given to [`leaf`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leaf<'a> {
    pub(crate) qname: &'a [u8],
    /// The raw attribute text after the name.
    pub(crate) attrs: &'a [u8],
    /// The content between the tags; `None` for an empty-element tag (`<Value/>`).
    pub(crate) text: Option<&'a [u8]>,
    /// Whether the text holds a reference (`&`); each is complete and resolves.
    pub(crate) has_refs: bool,
    /// Where its start tag begins.
    pub(crate) start: usize,
    /// Where its end tag begins (its start for an empty-element tag).
    pub(crate) end: usize,
    /// One past its last byte.
    pub(crate) stop: usize,
}

/// Reads the text-only element that starts `input` (at its `<`), or `None` when it
/// is not plain.
pub(crate) fn leaf(input: &[u8]) -> Option<Leaf<'_>> {
    let tag = start_tag(input, 0)?;
    if tag.empty {
        return Some(Leaf {
            qname: tag.qname,
            attrs: tag.attrs,
            stop: tag.stop,
            ..Leaf::default()
        });
    }
    leaf_body(input, 0, tag)
}

/// A start tag: its name, attribute text, whether it is empty, and one past its `>`.
struct StartTag<'a> {
    qname: &'a [u8],
    attrs: &'a [u8],
    empty: bool,
    stop: usize,
}

/// Reads the start tag at `at` (its `<`).
fn start_tag(input: &[u8], at: usize) -> Option<StartTag<'_>> {
    // `</`, `<!` and `<?` start other markup; odd names are left to quick-xml.
    if !input
        .get(at + 1)
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
    {
        return None;
    }
    let body = &input[at + 1..];
    let name_len = body
        .iter()
        .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/' | b'"' | b'\''))?;
    let qname = &body[..name_len];
    let (gt, empty) = match body[name_len] {
        b'>' => (name_len, false),
        b'/' if body.get(name_len + 1) == Some(&b'>') => (name_len + 1, true),
        // A name holding `/` or a quote: quick-xml's to read.
        b'/' | b'"' | b'\'' => return None,
        _ => {
            let gt = name_len + start_tag_end(&body[name_len..])?;
            (gt, body[gt - 1] == b'/')
        }
    };
    let attrs_end = if empty { gt - 1 } else { gt };
    Some(StartTag {
        qname,
        attrs: &body[name_len..attrs_end.max(name_len)],
        empty,
        stop: at + 1 + gt + 1,
    })
}

/// Reads text up to the end tag of the (non-empty) start tag `tag` that began at `at`.
fn leaf_body<'a>(input: &'a [u8], at: usize, tag: StartTag<'a>) -> Option<Leaf<'a>> {
    let content = tag.stop;
    let (lt, has_refs) = match find2(b'<', b'&', &input[content..])? {
        i if input[content + i] == b'<' => (content + i, false),
        amp => (
            content + amp + memchr::memchr(b'<', &input[content + amp..])?,
            true,
        ),
    };
    let text = &input[content..lt];
    if has_refs && !references_resolve(text) {
        return None;
    }
    Some(Leaf {
        qname: tag.qname,
        attrs: tag.attrs,
        text: Some(text),
        has_refs,
        start: at,
        end: lt,
        stop: end_tag(input, lt, tag.qname)?,
    })
}

/// Checks the end tag at `at` closes `qname`; gives one past its `>`.
fn end_tag(input: &[u8], at: usize, qname: &[u8]) -> Option<usize> {
    let rest = input.get(at..)?.strip_prefix(b"</")?.strip_prefix(qname)?;
    let trail = rest.iter().position(|&b| !is_xml_ws(b))?;
    (rest[trail] == b'>').then_some(at + 2 + qname.len() + trail + 1)
}

/// Where a start tag's text (from anywhere after its `<`) ends: the first `>` outside
/// a single- or double-quoted run. Tags are short: plain loops beat vector searches.
fn start_tag_end(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += input
            .get(i..)?
            .iter()
            .position(|&b| b == b'>' || b == b'"' || b == b'\'')?;
        let quote = input[i];
        if quote == b'>' {
            return Some(i);
        }
        i += 1;
        i += input.get(i..)?.iter().position(|&b| b == quote)? + 1;
    }
}

/// The first `a` or `b` in `hay`. Most field texts are short: a plain loop over their
/// start, then a vector search for the long ones.
fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = &hay[..hay.len().min(SHORT)];
    match head.iter().position(|&c| c == a || c == b) {
        Some(i) => Some(i),
        None if hay.len() > SHORT => memchr::memchr2(a, b, &hay[SHORT..]).map(|i| i + SHORT),
        None => None,
    }
}

/// Whether every `&` in `text` starts a reference quick-xml would read (a `;` comes
/// before any other `&`) and that reference resolves.
fn references_resolve(mut text: &[u8]) -> bool {
    while let Some(amp) = memchr::memchr(b'&', text) {
        let after = &text[amp + 1..];
        let Some(end) = memchr::memchr2(b';', b'&', after) else {
            return false;
        };
        if after[end] != b';' || resolve_reference(&after[..end]).is_none() {
            return false;
        }
        text = &after[end + 1..];
    }
    true
}

/// What a reference stands for.
pub(crate) enum Resolved {
    Char(char),
    Str(&'static str),
}

/// Resolves the text between `&` and `;` the way quick-xml does: a character
/// reference or one of the five predefined entities; `None` for anything else.
pub(crate) fn resolve_reference(raw: &[u8]) -> Option<Resolved> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(input: &str) -> Option<Leaf<'_>> {
        super::leaf(input.as_bytes())
    }

    #[test]
    fn leaves() {
        let l = leaf("<Name>A.B</Name>rest").expect("leaf");
        assert_eq!(
            (l.qname, l.text, l.end, l.stop),
            (&b"Name"[..], Some(&b"A.B"[..]), 9, 16)
        );
        let l = leaf("<Value xsi:type=\"a>b\" />").expect("empty");
        assert_eq!(
            (l.qname, l.attrs, l.text),
            (&b"Value"[..], &b" xsi:type=\"a>b\" "[..], None)
        );
        let l = leaf("<V a='x\"'>t&amp;u</V \n>").expect("quotes, refs, end-tag space");
        assert!(l.has_refs);
        assert_eq!(l.stop, 23);
        for plain_no in [
            "<V>a<![CDATA[b]]></V>",
            "<V>a<!-- c --></V>",
            "<V>a&b</V>",
            "<V>a&nbsp;</V>",
            "<V>a</W>",
            "<V>a</Vx>",
            "<V>a</V",
            "<V a='>a</V>",
            "</V>",
            "<!DOCTYPE x>",
            "<1>a</1>",
            "<P><A>1</A></P>",
        ] {
            assert!(leaf(plain_no).is_none(), "{plain_no}");
        }
    }
}
