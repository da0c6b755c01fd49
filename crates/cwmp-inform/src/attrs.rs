//! A small scanner over the raw attribute text of a start tag.
//!
//! The extractor reads attributes on a handful of elements only (the envelope path,
//! `Event`, `ParameterList`, `Value`), so a direct scan that hands back borrowed
//! slices is cheaper than a general attribute iterator. It checks the syntax it
//! walks: `name = "value"` or `name='value'`, separated by white space.

use crate::text::is_xml_ws;

/// One attribute: its qualified name and its raw (still escaped) value.
pub(crate) type RawAttr<'a> = (&'a [u8], &'a [u8]);

/// Iterates the attributes of `buf`, the text after the element name.
/// Errors carry the position in `buf` and what was expected.
pub(crate) struct RawAttrs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> RawAttrs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        RawAttrs { buf, pos: 0 }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.buf.len() && is_xml_ws(self.buf[self.pos]) {
            self.pos += 1;
        }
    }

    fn fail(&mut self, what: &'static str) -> Option<Result<RawAttr<'a>, (usize, &'static str)>> {
        let at = self.pos;
        self.pos = self.buf.len();
        Some(Err((at, what)))
    }
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = Result<RawAttr<'a>, (usize, &'static str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        self.skip_ws();
        if self.pos >= self.buf.len() {
            return None;
        }
        if self.pos == start && start != 0 {
            return self.fail("white space between attributes");
        }
        let key_start = self.pos;
        while self.pos < self.buf.len()
            && !is_xml_ws(self.buf[self.pos])
            && self.buf[self.pos] != b'='
        {
            self.pos += 1;
        }
        let key = &self.buf[key_start..self.pos];
        if key.is_empty() {
            return self.fail("an attribute name");
        }
        self.skip_ws();
        if self.buf.get(self.pos) != Some(&b'=') {
            return self.fail("'=' after an attribute name");
        }
        self.pos += 1;
        self.skip_ws();
        let quote = match self.buf.get(self.pos) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return self.fail("a quoted attribute value"),
        };
        let value_start = self.pos + 1;
        let Some(len) = crate::find::find1(quote, &self.buf[value_start..]) else {
            return self.fail("the closing quote of an attribute value");
        };
        let value = &self.buf[value_start..value_start + len];
        self.pos = value_start + len + 1;
        Some(Ok((key, value)))
    }
}

/// The part of a qualified name after the colon (the whole name when there is none).
pub(crate) fn local_name(name: &[u8]) -> &[u8] {
    match crate::find::rfind1(b':', name) {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// The part of a qualified name before the colon (empty when there is none).
pub(crate) fn prefix(name: &[u8]) -> &[u8] {
    match crate::find::rfind1(b':', name) {
        Some(i) => &name[..i],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, local, prefix_) in [
            ("Envelope", "Envelope", ""),
            ("soap:Envelope", "Envelope", "soap"),
            ("SOAP-ENV:Envelope", "Envelope", "SOAP-ENV"),
            ("cwmp:ParameterValueStruct", "ParameterValueStruct", "cwmp"),
            ("a:b:ParameterValueStruct", "ParameterValueStruct", "a:b"),
            ("ParameterValueStruct:", "", "ParameterValueStruct"),
            (":x", "x", ""),
            ("", "", ""),
        ] {
            assert_eq!(local_name(name.as_bytes()), local.as_bytes(), "{name}");
            assert_eq!(prefix(name.as_bytes()), prefix_.as_bytes(), "{name}");
        }
        // Against a byte loop, a colon in every place of names of every length.
        for len in 0..40 {
            for at in 0..=len {
                let mut name = vec![b'N'; len];
                if at < len {
                    name[at] = b':';
                }
                let slow = name.iter().rposition(|&b| b == b':');
                assert_eq!(
                    crate::find::rfind1(b':', &name),
                    slow,
                    "colon at {at} of {len}"
                );
            }
        }
    }

    fn all(buf: &str) -> Result<Vec<(String, String)>, (usize, &'static str)> {
        RawAttrs::new(buf.as_bytes())
            .map(|r| {
                r.map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn well_formed() {
        assert_eq!(all(""), Ok(vec![]));
        assert_eq!(all("  "), Ok(vec![]));
        assert_eq!(
            all(" a=\"1\"\n\tb = 'two' c='' "),
            Ok(vec![
                ("a".into(), "1".into()),
                ("b".into(), "two".into()),
                ("c".into(), String::new())
            ])
        );
        assert_eq!(
            all(" xmlns:x=\"a'b\""),
            Ok(vec![("xmlns:x".into(), "a'b".into())])
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(all(" a=1"), Err((3, "a quoted attribute value")));
        assert_eq!(all(" a"), Err((2, "'=' after an attribute name")));
        assert_eq!(
            all(" a=\"1"),
            Err((3, "the closing quote of an attribute value"))
        );
        assert_eq!(
            all(" a=\"1\"b=\"2\""),
            Err((6, "white space between attributes"))
        );
        assert_eq!(all(" =\"1\""), Err((1, "an attribute name")));
    }
}
