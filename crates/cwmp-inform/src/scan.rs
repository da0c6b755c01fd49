//! Reads plain markup straight from the bytes: start and end tags, and text-only
//! elements (`<Name>x</Name>`) whole. An Inform is almost nothing else, and reading
//! it here spares quick-xml's work per event; a text-only element's three events
//! (start, text, end) become one scan. (Reading whole `ParameterValueStruct`s this
//! way was tried and measured slower.)
//!
//! Tags are cut exactly where quick-xml 0.41 cuts them: a start tag ends at the first
//! `>` outside quotes, its name ends at white space, a trailing `/` makes it empty; an
//! end tag ends at the first `>` and may hold white space after its name. Whatever is
//! not plain — CDATA, comments, processing instructions, declarations, odd names, a
//! reference without its `;`, an unfinished tag — gives `None`, and the parser leaves
//! it to quick-xml. `tests/integration/shortcut.rs` checks that both ways give the
//! same result on every input.

use crate::find::{self, find1, find2, find3};
use crate::text::is_xml_ws;

/// A start tag. Offsets are from its `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartTag<'a> {
    pub(crate) qname: &'a [u8],
    /// The raw attribute text after the name.
    pub(crate) attrs: &'a [u8],
    /// Whether it is an empty-element tag (`<Value/>`).
    pub(crate) empty: bool,
    /// One past its `>`.
    pub(crate) stop: usize,
}

/// The rest of a text-only element after its start tag. Offsets are from the start
/// tag's `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leaf<'a> {
    /// The content between the tags.
    pub(crate) text: &'a [u8],
    /// Whether the text holds a reference (`&`); each is complete (has its `;`).
    pub(crate) has_refs: bool,
    /// Where its end tag begins.
    pub(crate) end: usize,
    /// One past its last byte.
    pub(crate) stop: usize,
}

/// Reads the start tag that begins `input` (at its `<`), or `None` when it is not
/// plain (or not a start tag).
#[inline(always)]
pub(crate) fn start_tag(input: &[u8]) -> Option<StartTag<'_>> {
    // `</`, `<!` and `<?` start other markup; odd names are left to quick-xml.
    if !input
        .get(1)
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
    {
        return None;
    }
    let body = &input[1..];
    let name_len = start_name_len(body)?;
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

/// The bytes that end a start tag's name for quick-xml (white space, `>`), and those
/// that make it odd (`/`, quotes): a table, as names are read byte by byte.
static ENDS_START_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = matches!(
            i as u8,
            b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/' | b'"' | b'\''
        );
        i += 1;
    }
    table
};

/// Where a start tag's name (from just after its `<`) ends: at the first byte of
/// [`ENDS_START_NAME`]. Eight bytes at a time while none of them can be one (all
/// are `0x30` or above and none is `>`), then byte by byte.
fn start_name_len(body: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(word) = body.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let word = u64::from_le_bytes(*word);
        if find::any_below(word, 0x30) || find::has(word, b'>') {
            break;
        }
        i += 8;
    }
    body[i..]
        .iter()
        .position(|&b| ENDS_START_NAME[usize::from(b)])
        .map(|n| i + n)
}

/// Reads the end tag of `qname` that begins `input` (at its `<`); gives one past its
/// `>`. `None` when it is not plain or names another element: quick-xml then reads
/// it, and the parser reports any mismatch with the name quick-xml read.
pub(crate) fn end_tag(input: &[u8], qname: &[u8]) -> Option<usize> {
    let rest = input.strip_prefix(b"</")?;
    let rest = rest
        .get(qname.len()..)
        .filter(|_| same(&rest[..qname.len()], qname))?;
    // quick-xml reads end tags as it reads start tags, quotes and all, and keeps
    // white space after the name out of it.
    let trail = rest.iter().position(|&b| !is_xml_ws(b))?;
    (rest[trail] == b'>').then_some(2 + qname.len() + trail + 1)
}

/// Reads the text and end tag after `tag`, a non-empty start tag that begins `input`,
/// or `None` when the element is not text-only or not plain.
#[inline(always)]
pub(crate) fn leaf<'a>(input: &'a [u8], tag: &StartTag<'a>) -> Option<Leaf<'a>> {
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
        text,
        has_refs,
        end: lt,
        stop: lt + end_tag(&input[lt..], tag.qname)?,
    })
}

/// Where a start tag's text (from anywhere after its `<`) ends: the first `>` outside
/// a single- or double-quoted run.
fn start_tag_end(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += find3(b'>', b'"', b'\'', input.get(i..)?)?;
        let quote = input[i];
        if quote == b'>' {
            return Some(i);
        }
        i += 1;
        i += find1(quote, input.get(i..)?)? + 1;
    }
}

/// Whether two names are the same bytes, compared eight at a time: names are short
/// and a call to `memcmp` costs more than the comparison.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
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

    /// The text and stop of a text-only element, or the empty tag's stop.
    fn leaf(input: &str) -> Option<(Option<&[u8]>, usize)> {
        let tag = start_tag(input.as_bytes())?;
        if tag.empty {
            return Some((None, tag.stop));
        }
        let leaf = super::leaf(input.as_bytes(), &tag)?;
        Some((Some(leaf.text), leaf.stop))
    }

    #[test]
    fn start_tags() {
        let t = start_tag(b"<Value xsi:type=\"a>b\" />").expect("empty");
        assert_eq!(
            (t.qname, t.attrs, t.empty, t.stop),
            (&b"Value"[..], &b" xsi:type=\"a>b\" "[..], true, 24)
        );
        let t = start_tag(b"<p:A>x").expect("start");
        assert_eq!(
            (t.qname, t.attrs, t.empty, t.stop),
            (&b"p:A"[..], &b""[..], false, 5)
        );
        for not_plain in [
            "</A>",
            "<!-- x -->",
            "<?pi?>",
            "<1>",
            "<a/b>",
            "<a\"b>",
            "<a",
            "<a x='>",
        ] {
            assert!(start_tag(not_plain.as_bytes()).is_none(), "{not_plain}");
        }
    }

    #[test]
    fn start_names() {
        for (body, len) in [
            ("Envelope>", Some(8)),
            ("soap:Envelope xmlns", Some(13)),
            ("ParameterValueStruct/>", Some(20)),
            ("a-b.c_d:e\"", Some(9)),
            ("ABCDEFGHIJKLMNOP\tx", Some(16)),
            ("ABCDEFGH'", Some(8)),
            ("ABCDEFG\u{e9}\r", Some(9)),
            ("ABCDEFGHIJKLMNOPQRSTUVWX", None),
            ("", None),
        ] {
            assert_eq!(start_name_len(body.as_bytes()), len, "{body:?}");
        }
        // Against the byte loop alone, every byte in every place of a 20-byte name.
        for at in 0..20 {
            for b in 0..=255u8 {
                let mut name = *b"ParameterValueStruct";
                name[at] = b;
                let slow = name.iter().position(|&c| ENDS_START_NAME[usize::from(c)]);
                assert_eq!(start_name_len(&name), slow, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn end_tags() {
        assert_eq!(end_tag(b"</p:A>x", b"p:A"), Some(6));
        assert_eq!(end_tag(b"</A \r\n>", b"A"), Some(7));
        for not_plain in [
            "<A>", "</A", "</A B>", "</A ", "</A\"B>", "</A '>'>", "</AB>", "</B>",
        ] {
            assert!(end_tag(not_plain.as_bytes(), b"A").is_none(), "{not_plain}");
        }
    }

    #[test]
    fn leaves() {
        assert_eq!(leaf("<Name>A.B</Name>rest"), Some((Some(&b"A.B"[..]), 16)));
        assert_eq!(leaf("<Value xsi:type=\"a>b\" />"), Some((None, 24)));
        let tag = start_tag(b"<V a='x\"'>t&amp;u</V \n>").expect("tag");
        let l =
            super::leaf(b"<V a='x\"'>t&amp;u</V \n>", &tag).expect("quotes, refs, end-tag space");
        assert!(l.has_refs);
        assert_eq!((l.end, l.stop), (17, 23));
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
