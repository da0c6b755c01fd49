//! Turning the bytes of one field into text: charset decoding, U+FFFD repair,
//! entity references, line-end normalization and white-space trimming.
//!
//! Markup in every supported charset is ASCII, so the XML parser runs over the
//! original bytes and only the text of the fields we keep is decoded. Text that is
//! valid UTF-8 (or plain ASCII in a single-byte charset) stays borrowed.

use std::borrow::Cow;

/// The character encodings a body may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// UTF-8 (and US-ASCII, its subset). The default.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// windows-1252: ISO-8859-1 with printable characters in 0x80–0x9F.
    Windows1252,
}

impl Charset {
    /// Reads an encoding label as found in `charset=` or `encoding="…"`.
    /// Returns `None` for labels this crate does not read (UTF-16, EBCDIC, …).
    pub fn from_label(label: &[u8]) -> Option<Charset> {
        let label = trim_ascii_ws(label);
        let label = label
            .strip_prefix(b"\"")
            .and_then(|l| l.strip_suffix(b"\""))
            .or_else(|| label.strip_prefix(b"'").and_then(|l| l.strip_suffix(b"'")))
            .unwrap_or(label);
        let is = |name: &str| label.eq_ignore_ascii_case(name.as_bytes());
        if is("utf-8") || is("utf8") || is("us-ascii") || is("ascii") {
            Some(Charset::Utf8)
        } else if is("iso-8859-1")
            || is("iso8859-1")
            || is("iso_8859-1")
            || is("latin1")
            || is("latin-1")
            || is("l1")
        {
            Some(Charset::Latin1)
        } else if is("windows-1252") || is("cp1252") {
            Some(Charset::Windows1252)
        } else {
            None
        }
    }

    /// Decodes one run of bytes. The flag is true when invalid bytes were replaced.
    pub(crate) fn decode(self, bytes: &[u8]) -> (Cow<'_, str>, bool) {
        match self {
            Charset::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => (Cow::Borrowed(s), false),
                Err(_) => (
                    Cow::Owned(String::from_utf8_lossy(bytes).into_owned()),
                    true,
                ),
            },
            Charset::Latin1 | Charset::Windows1252 => {
                if bytes.is_ascii() {
                    // ASCII is valid UTF-8, so this cannot fail; the fallback keeps it panic-free.
                    return match std::str::from_utf8(bytes) {
                        Ok(s) => (Cow::Borrowed(s), false),
                        Err(_) => (String::from_utf8_lossy(bytes), true),
                    };
                }
                let s = bytes.iter().map(|&b| self.single_byte_char(b)).collect();
                (Cow::Owned(s), false)
            }
        }
    }

    fn single_byte_char(self, b: u8) -> char {
        if self == Charset::Windows1252 && (0x80..0xA0).contains(&b) {
            WINDOWS_1252_C1[usize::from(b - 0x80)]
        } else {
            char::from(b)
        }
    }
}

/// windows-1252's characters for 0x80–0x9F (the five undefined bytes map to the C1
/// control of the same value, as the WHATWG encoding standard does).
const WINDOWS_1252_C1: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// XML white space: space, tab, CR, LF.
pub(crate) fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_ascii_ws(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_xml_ws(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_xml_ws(b))
        .map_or(start, |p| p + 1);
    &bytes[start..end]
}

/// Trims XML white space, staying borrowed when the text was borrowed.
pub(crate) fn trim(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(trim_str(s)),
        Cow::Owned(s) => {
            let t = trim_str(&s);
            if t.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(t.to_owned())
            }
        }
    }
}

/// Trims XML white space by bytes (all four are ASCII, so the cut is on a char boundary).
fn trim_str(s: &str) -> &str {
    let b = s.as_bytes();
    // Most texts have nothing to trim.
    if b.first().is_none_or(|&c| !is_xml_ws(c)) && b.last().is_none_or(|&c| !is_xml_ws(c)) {
        return s;
    }
    let start = b.iter().position(|&c| !is_xml_ws(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_xml_ws(c))
        .map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(s)
}

/// Collects the text content of one element from its pieces (text runs, CDATA
/// sections, entity and character references), borrowing when there is one piece.
#[derive(Debug, Default)]
pub(crate) struct TextAcc<'a> {
    text: Option<Cow<'a, str>>,
    /// A `\r` was seen: line ends must be normalized when the text is taken.
    has_cr: bool,
}

impl<'a> TextAcc<'a> {
    pub(crate) fn clear(&mut self) {
        self.text = None;
        self.has_cr = false;
    }

    /// Adds a decoded run of text (a text event or a CDATA section). `may_have_cr`
    /// is false when the whole document holds no CR, which spares the search.
    pub(crate) fn push_piece(&mut self, piece: Cow<'a, str>, may_have_cr: bool) {
        if piece.is_empty() {
            return;
        }
        if may_have_cr && memchr::memchr(b'\r', piece.as_bytes()).is_some() {
            self.has_cr = true;
        }
        self.push(piece);
    }

    /// Adds decoded text (a resolved reference).
    pub(crate) fn push_str(&mut self, s: &str) {
        self.push(Cow::Owned(s.to_owned()));
    }

    pub(crate) fn push_char(&mut self, c: char) {
        match &mut self.text {
            Some(t) => t.to_mut().push(c),
            None => self.text = Some(Cow::Owned(c.to_string())),
        }
    }

    fn push(&mut self, piece: Cow<'a, str>) {
        match &mut self.text {
            None => self.text = Some(piece),
            Some(t) => t.to_mut().push_str(&piece),
        }
    }

    /// Takes the collected text with line ends normalized (`\r\n` and `\r` become `\n`,
    /// as XML 1.0 section 2.11 requires).
    pub(crate) fn take(&mut self) -> Cow<'a, str> {
        let text = self.text.take().unwrap_or(Cow::Borrowed(""));
        if std::mem::take(&mut self.has_cr) {
            Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(Charset::from_label(b"UTF-8"), Some(Charset::Utf8));
        assert_eq!(
            Charset::from_label(b" \"iso-8859-1\" "),
            Some(Charset::Latin1)
        );
        assert_eq!(
            Charset::from_label(b"Windows-1252"),
            Some(Charset::Windows1252)
        );
        assert_eq!(Charset::from_label(b"UTF-16"), None);
    }

    #[test]
    fn decode_single_byte() {
        let (s, bad) = Charset::Latin1.decode(b"caf\xe9");
        assert_eq!((s.as_ref(), bad), ("café", false));
        let (s, _) = Charset::Windows1252.decode(b"\x80 \x9f");
        assert_eq!(s, "€ Ÿ");
        assert!(matches!(
            Charset::Latin1.decode(b"plain").0,
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn decode_invalid_utf8() {
        let (s, bad) = Charset::Utf8.decode(b"a\xffb");
        assert_eq!((s.as_ref(), bad), ("a\u{FFFD}b", true));
    }

    #[test]
    fn accumulate_and_normalize() {
        let mut acc = TextAcc::default();
        acc.push_piece(Cow::Borrowed("a\r\nb"), true);
        acc.push_char('&');
        acc.push_piece(Cow::Borrowed("c\rd"), true);
        assert_eq!(acc.take(), "a\nb&c\nd");
        acc.push_piece(Cow::Borrowed("x"), true);
        assert!(matches!(acc.take(), Cow::Borrowed("x")));
        assert_eq!(acc.take(), "");
    }

    #[test]
    fn trims() {
        assert_eq!(trim(Cow::Borrowed(" \t a b\r\n")), "a b");
        assert_eq!(trim(Cow::Owned(" x ".into())), "x");
        assert_eq!(trim(Cow::Borrowed(" \u{a0}é\u{a0} ")), "\u{a0}é\u{a0}");
        assert_eq!(trim(Cow::Borrowed("   ")), "");
    }
}
