//! Date-time parsing for `CurrentTime` and for receive timestamps.
//!
//! Hand-written on purpose: CPE clocks produce every variant of broken time
//! (`0001-01-01T00:01:03`, `2019-03-05T11:54::14`, `+0000`), and the rule is simply
//! "a valid `xsd:dateTime`, or nothing". Everything here is total: no input panics.

/// Milliseconds since the Unix epoch of 2000-01-01T00:00:00Z; earlier CPE times are
/// an unsynchronised clock, not a time.
pub const Y2000_MS: i64 = 946_684_800_000;

/// Parses an `xsd:dateTime` (`YYYY-MM-DDThh:mm:ss[.fff…][Z|±hh:mm]`) to epoch
/// milliseconds. A time without a zone is taken as UTC.
///
/// ```
/// use cwmp_record::parse_xsd_datetime_ms;
/// assert_eq!(parse_xsd_datetime_ms("2016-01-30T13:20:27+01:00"), Some(1454156427000));
/// assert_eq!(parse_xsd_datetime_ms("2019-03-05T11:54::14"), None);
/// ```
pub fn parse_xsd_datetime_ms(text: &str) -> Option<i64> {
    parse(text.as_bytes(), false)
}

/// Parses an RFC 3339 timestamp (a zone is required; `T`, `t` or a space between date
/// and time) to epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    parse(text.as_bytes(), true)
}

/// `CurrentTime` as trustworthy epoch milliseconds: a valid date-time after
/// 2000-01-01, else `None`.
pub fn cpe_time_ms(current_time: &str) -> Option<i64> {
    parse_xsd_datetime_ms(current_time).filter(|&ms| ms >= Y2000_MS)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn parse(b: &[u8], rfc3339: bool) -> Option<i64> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    match b.get(10) {
        Some(b'T') => {}
        Some(b't' | b' ') if rfc3339 => {}
        _ => return None,
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let frac = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if frac == 0 {
            return None;
        }
        for i in 0..3 {
            millis = millis * 10
                + if i < frac {
                    i64::from(b[at + 1 + i] - b'0')
                } else {
                    0
                };
        }
        at += 1 + frac;
    }
    let offset_minutes = match b.get(at) {
        None if !rfc3339 => 0,
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
            let h = digits(b, at + 1, 2)?;
            let m = digits(b, at + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_times() {
        // (CurrentTime as CPEs wrote it, cpe_time_ms)
        let cases = [
            ("2012-10-08T21:31:55", Some(1_349_731_915_000)),
            ("2016-01-30T13:20:27+01:00", Some(1_454_156_427_000)),
            ("2020-06-10T11:27:26.054Z", Some(1_591_788_446_054)),
            ("2026-11-24T22:23:44.800Z", Some(1_795_559_024_800)),
            ("2012-10-03T18:16:02.202Z", Some(1_349_288_162_202)),
            ("1970-01-02T00:01:05.021239+00:00", None),
            ("1970-01-01T00:05:09+00:00", None),
            ("0001-01-01T00:01:03", None),
            ("2019-03-05T11:54::14", None),
            ("2017-01-09T17:40:23+0000", None),
            ("2015-09-22T05:04:58-07:00", Some(1_442_923_498_000)),
            ("2024-02-30T00:00:00Z", None),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("", None),
            ("2024-01-01", None),
            ("2024-01-01T24:00:00Z", None),
            ("2024-01-01T00:00:00.Z", None),
            ("２０２４-01-01T00:00:00Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(cpe_time_ms(text), want, "{text}");
        }
    }

    #[test]
    fn rfc3339_requires_a_zone() {
        assert_eq!(
            parse_rfc3339_ms("2025-11-24T16:00:00Z"),
            Some(1_764_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-24 17:00:00+01:00"),
            Some(1_764_000_000_000)
        );
        assert_eq!(parse_rfc3339_ms("2025-11-24T16:00:00"), None);
    }

    #[test]
    fn epoch_and_far_dates() {
        assert_eq!(parse_xsd_datetime_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_xsd_datetime_ms("0000-03-01T00:00:00Z"),
            Some(-62_162_035_200_000)
        );
        assert_eq!(
            parse_xsd_datetime_ms("9999-12-31T23:59:59.999Z"),
            Some(253_402_300_799_999)
        );
    }
}
