//! Finding bytes in the short runs an Inform is made of: names, attribute values,
//! field texts. Eight bytes at a time in a register first (a call into a vector
//! search costs more than most runs take), then a vector search for what is long.

/// How far the word-at-a-time loop goes before a vector search takes over.
const WORD_SEARCH: usize = 64;

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that equals `byte`, and no other bit.
#[inline(always)]
pub(crate) fn equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW * u64::from(byte));
    // A byte of `x` is zero exactly when neither its low seven bits (which cannot
    // carry into the next byte when 0x7F is added) nor its high bit are set.
    !(((x & !HIGH).wrapping_add(!HIGH)) | x | !HIGH)
}

/// Whether some byte of `word` equals `byte`: cheaper than [`equal`] when which one
/// does not matter.
#[inline(always)]
pub(crate) fn has(word: u64, byte: u8) -> bool {
    let x = word ^ (LOW * u64::from(byte));
    x.wrapping_sub(LOW) & !x & HIGH != 0
}

/// Whether some byte of `word` is below `n` (at most 0x80). Exact for the word as a
/// whole, not per byte: a borrow may mark bytes after a true one.
#[inline(always)]
pub(crate) fn any_below(word: u64, n: u8) -> bool {
    word.wrapping_sub(LOW * u64::from(n)) & !word & HIGH != 0
}

/// The first byte of `hay` for which `mask` gives a high bit (`mask` must only mark
/// bytes that match), then `slow` past the word-at-a-time part.
#[inline(always)]
fn search(
    hay: &[u8],
    mask: impl Fn(u64) -> u64,
    is: impl Fn(u8) -> bool,
    slow: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let mut i = 0;
    while let Some(word) = hay.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let found = mask(u64::from_le_bytes(*word));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
        if i >= WORD_SEARCH {
            return slow(&hay[i..]).map(|n| i + n);
        }
    }
    hay[i..].iter().position(|&b| is(b)).map(|n| i + n)
}

/// The first `a` in `hay`.
#[inline(always)]
pub(crate) fn find1(a: u8, hay: &[u8]) -> Option<usize> {
    search(
        hay,
        |w| equal(w, a),
        |b| b == a,
        |rest| memchr::memchr(a, rest),
    )
}

/// The last `a` in `hay`: eight bytes at a time from the end until a word holds
/// one, then byte by byte in that word (`hay` is a name: short, so no vector search).
#[inline(always)]
pub(crate) fn rfind1(a: u8, hay: &[u8]) -> Option<usize> {
    let mut end = hay.len();
    while let Some(word) = hay[..end].last_chunk::<8>() {
        if has(u64::from_ne_bytes(*word), a) {
            break;
        }
        end -= 8;
    }
    hay[..end].iter().rposition(|&b| b == a)
}

/// The first `a` or `b` in `hay`.
#[inline(always)]
pub(crate) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    search(
        hay,
        |w| equal(w, a) | equal(w, b),
        |x| x == a || x == b,
        |rest| memchr::memchr2(a, b, rest),
    )
}

/// The first `a`, `b` or `c` in `hay`.
#[inline(always)]
pub(crate) fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    search(
        hay,
        |w| equal(w, a) | equal(w, b) | equal(w, c),
        |x| x == a || x == b || x == c,
        |rest| memchr::memchr3(a, b, c, rest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_marks_exactly_the_equal_bytes() {
        for byte in 0..=255u8 {
            for other in 0..=255u8 {
                let word = u64::from_le_bytes([other, byte, other, 0, 0xFF, byte, 0x80, 0x7F]);
                let mask = equal(word, byte);
                for (i, b) in word.to_le_bytes().into_iter().enumerate() {
                    let marked = mask >> (i * 8) & 0xFF;
                    assert_eq!(
                        marked,
                        if b == byte { 0x80 } else { 0 },
                        "{byte} {other} {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn has_is_exact_for_the_word() {
        for byte in 0..=255u8 {
            for other in [0x00, 0x01, 0x7F, 0x80, 0xFF, byte ^ 0x01, byte ^ 0x80] {
                for at in 0..8 {
                    let mut bytes = [other; 8];
                    assert_eq!(has(u64::from_le_bytes(bytes), byte), other == byte);
                    bytes[at] = byte;
                    assert!(has(u64::from_le_bytes(bytes), byte), "{byte:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn any_below_is_exact_for_the_word() {
        for n in [0x01, 0x21, 0x30, 0x80] {
            for byte in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [0xC0u8; 8];
                    bytes[at] = byte;
                    let word = u64::from_le_bytes(bytes);
                    assert_eq!(
                        any_below(word, n),
                        byte < n,
                        "{byte:#x} at {at} below {n:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn finds_like_a_byte_loop() {
        // Every length up to past the word search, the needles in every place,
        // among bytes that differ from them in one bit.
        for len in 0..150 {
            for at in 0..=len {
                for needle in [b'<', b'&', b'"', 0x00, 0xFF, 0x80] {
                    let mut hay = vec![needle ^ 0x01; len];
                    hay.iter_mut()
                        .skip(at + 3)
                        .step_by(5)
                        .for_each(|b| *b = needle ^ 0x80);
                    if at < len {
                        hay[at] = needle;
                    }
                    let expect = hay.iter().position(|&b| b == needle);
                    assert_eq!(find1(needle, &hay), expect, "find1 {len} {at}");
                    assert_eq!(find2(0x41, needle, &hay), expect, "find2 {len} {at}");
                    assert_eq!(find2(needle, 0x41, &hay), expect, "find2 {len} {at}");
                    assert_eq!(find3(0x41, 0x42, needle, &hay), expect, "find3 {len} {at}");
                    let last = hay.iter().rposition(|&b| b == needle);
                    assert_eq!(rfind1(needle, &hay), last, "rfind1 {len} {at}");
                }
            }
        }
    }
}
