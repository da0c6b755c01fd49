//! The GenieACS device id rule, byte for byte, so keys join with GenieACS databases.

use std::fmt::Write;

/// Builds `OUI-ProductClass-SerialNumber` (or `OUI-SerialNumber` when ProductClass is
/// empty), each part escaped: every byte of the UTF-8 form of every character outside
/// `[A-Za-z0-9_]` becomes `%` followed by the byte in upper-case hex, not zero-padded.
///
/// ```
/// assert_eq!(cwmp_record::device_id("005018", "AX-1122", "00501867E867"), "005018-AX%2D1122-00501867E867");
/// assert_eq!(cwmp_record::device_id("000FB7", "", "S\t1"), "000FB7-S%91");
/// ```
pub fn device_id(oui: &str, product_class: &str, serial_number: &str) -> String {
    let mut out = String::with_capacity(oui.len() + product_class.len() + serial_number.len() + 8);
    escape_into(&mut out, oui);
    if !product_class.is_empty() {
        out.push('-');
        escape_into(&mut out, product_class);
    }
    out.push('-');
    escape_into(&mut out, serial_number);
    out
}

fn escape_into(out: &mut String, part: &str) {
    for &b in part.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::device_id;

    #[test]
    fn genieacs_golden_ids() {
        assert_eq!(
            device_id("005018", "AX-1122", "00501867E867"),
            "005018-AX%2D1122-00501867E867"
        );
        assert_eq!(
            device_id("000FB7", "Cavium eNB", "10.18.104.79"),
            "000FB7-Cavium%20eNB-10%2E18%2E104%2E79"
        );
        assert_eq!(
            device_id("202BC1", "", "8KA8WA1151100043"),
            "202BC1-8KA8WA1151100043"
        );
        assert_eq!(device_id("00D09E", "a\tb", "1"), "00D09E-a%9b-1");
        assert_eq!(device_id("00D09E", "é", "ü"), "00D09E-%C3%A9-%C3%BC");
        assert_eq!(device_id("a_b", "x", "y"), "a_b-x-y");
        assert_eq!(device_id("00D09E", "€", "\u{0}"), "00D09E-%E2%82%AC-%0");
    }
}
