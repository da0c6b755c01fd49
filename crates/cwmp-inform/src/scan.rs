//! Reads the text-only elements of an Inform (`<Name>x</Name>`, `<Value/>`) straight
//! from the bytes. Most of a message is made of them, and reading them here spares
//! quick-xml's work per event: three events (start, text, end) become one scan.
//! (Reading whole `ParameterValueStruct`s this way was tried and measured slower.)
//!
//! Tags are cut exactly where quick-xml 0.41 cuts them: a start tag ends at the first
//! `>` outside quotes, its name ends at white space, a trailing `/` makes it empty; an
//! end tag ends at the first `>` and may hold white space after its name. Whatever is
//! not plain — CDATA, comments, processing instructions, child elements, a reference
//! without its `;`, a mismatched or unfinished tag — gives
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
    /// Whether the text holds a reference (`&`); each is complete (has its `;`).
    pub(crate) has_refs: bool,
    /// Where its end tag begins (0, its start, for an empty-element tag).
    pub(crate) end: usize,
    /// One past its last byte.
    pub(crate) stop: usize,
}

/// Reads the text-only element that starts `input` (at its `<`), or `None` when it
/// is not plain.
pub(crate) fn leaf(input: &[u8]) -> Option<Leaf<'_>> {
    let tag = start_tag(input)?;
    if tag.empty {
        return Some(Leaf {
            qname: tag.qname,
            attrs: tag.attrs,
            stop: tag.stop,
            ..Leaf::default()
        });
    }
    leaf_body(input, tag)
}

/// A start tag: its name, attribute text, whether it is empty, and one past its `>`.
struct StartTag<'a> {
    qname: &'a [u8],
    attrs: &'a [u8],
    empty: bool,
    stop: usize,
}

/// Reads the start tag that begins `input` (at its `<`).
fn start_tag(input: &[u8]) -> Option<StartTag<'_>> {
    // `</`, `<!` and `<?` start other markup; odd names are left to quick-xml.
    if !input
        .get(1)
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
    {
        return None;
    }
    let body = &input[1..];
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
        stop: 1 + gt + 1,
    })
}

/// Reads text up to the end tag of the (non-empty) start tag `tag`.
fn leaf_body<'a>(input: &'a [u8], tag: StartTag<'a>) -> Option<Leaf<'a>> {
    let content = tag.stop;
    let (lt, has_refs) = match find2(b'<', b'&', &input[content..])? {
        i if input[content + i] == b'<' => (content + i, false),
        amp => (
            content + amp + memchr::memchr(b'<', &input[content + amp..])?,
            true,
        ),
    };
    let text = &input[content..lt];
    if has_refs && !references_complete(text) {
        return None;
    }
    Some(Leaf {
        qname: tag.qname,
        attrs: tag.attrs,
        text: Some(text),
        has_refs,
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

/// Whether every `&` in `text` starts a reference quick-xml would read: a `;` comes
/// before any other `&`. Whether it resolves is the parser's to say, with the error
/// quick-xml's event would have led to.
fn references_complete(mut text: &[u8]) -> bool {
    while let Some(amp) = memchr::memchr(b'&', text) {
        let after = &text[amp + 1..];
        match memchr::memchr2(b';', b'&', after) {
            Some(end) if after[end] == b';' => text = &after[end + 1..],
            _ => return false,
        }
    }
    true
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
            "<V>a&amp b&lt;</V>",
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
