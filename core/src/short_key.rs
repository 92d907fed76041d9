//! Equality for the short strings of hot paths (names, keys, event names), beside no other code:
//! the memory store's tables and the event guard's event lookup both compare with it.

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
