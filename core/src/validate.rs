//! Checks shared by every primitive, run before anything reaches a store.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest key, id or name accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest TTL or retention accepted: 100 years.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Checks a key, id or name: non-empty and at most [`MAX_KEY_BYTES`] bytes.
pub(crate) fn key<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(Error::invalid_key(format!("{what} must not be empty")));
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_key(format!(
            "{what} is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(value)
}

/// Checks a TTL-like duration and returns it in whole milliseconds (at least 1).
pub(crate) fn ttl_ms(what: &str, ttl: Duration) -> Result<u64> {
    if ttl > MAX_TTL {
        return Err(Error::invalid_argument(format!("{what} {ttl:?} exceeds the maximum of 100 years")));
    }
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::invalid_argument(format!("{what} must be at least 1 ms, got {ttl:?}")));
    }
    Ok(ms)
}

/// Checks a namespace: may be empty (none), at most [`MAX_KEY_BYTES`] bytes.
pub(crate) fn namespace(value: &str) -> Result<&str> {
    if value.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_argument(format!(
            "namespace is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(value)
}

/// String equality for the short keys of hot paths, inlined: `==` on strings calls libc's
/// `memcmp` through the PLT, which cost more than the comparison itself (measured on `mark`:
/// three calls were 8% of a Python call).
#[inline(always)]
pub(crate) fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] on bytes.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        // Loads from both ends, overlapping in the middle, cover every length in the range.
        16..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        8..=15 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    /// `same` agrees with `==` for every length its branches cover and a difference at every
    /// byte position (including multi-byte characters and differing lengths).
    #[test]
    fn same_agrees_with_eq() {
        for n in 0..=40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same(&a, &a.clone()), "{a:?}");
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).expect("ascii");
                assert!(!same(&a, &b), "{a:?} vs {b:?}");
            }
            assert!(!same(&a, &format!("{a}x")));
        }
        assert!(same("é-é-é-é-é", "é-é-é-é-é"));
        assert!(!same("é-é-é-é-é", "é-é-é-é-è"));
    }
}
