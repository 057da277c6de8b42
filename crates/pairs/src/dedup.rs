//! No text twice in a batch, by the 2021 rule: a row is skipped when any of its texts, stripped
//! and lowercased, is already in the batch. In-batch negatives assume every other row's texts
//! are wrong answers; a repeated text would be a positive scored as a negative.
//!
//! Texts are reduced to 64-bit hashes of their normalized UTF-8 bytes, so each row costs
//! O(its length) with no allocation, whatever the batch size. A hash collision can only skip a
//! row that was not a duplicate (about one in 10^10 at batch 65,536), never let one through.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The normalized-text key of `text`: Python's `text.strip().lower()`, hashed.
pub fn text_key(text: &str, scratch: &mut Vec<u8>) -> u64 {
    let t = text.trim();
    scratch.clear();
    if t.is_ascii() {
        scratch.extend(t.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        let mut enc = [0u8; 4];
        for c in t.chars().flat_map(char::to_lowercase) {
            scratch.extend_from_slice(c.encode_utf8(&mut enc).as_bytes());
        }
    }
    hash_bytes(scratch)
}

/// A fast 64-bit hash (multiply–rotate over 8-byte words, SplitMix64 finalizer).
pub fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    let rem = chunks.remainder();
    last[..rem.len()].copy_from_slice(rem);
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// Keys are already hashes: use them as they are.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type KeySet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

/// The texts of the batch being built.
#[derive(Default)]
pub struct BatchDedup {
    seen: KeySet,
    keys: Vec<u64>,
    scratch: Vec<u8>,
}

impl BatchDedup {
    pub fn clear(&mut self, batch_size: usize) {
        self.seen.clear();
        self.seen.reserve(batch_size * 2);
    }

    /// Adds the row's texts and returns true, or returns false (adding nothing) when one of
    /// them is already in the batch.
    pub fn admit(&mut self, row: &[String]) -> bool {
        self.keys.clear();
        for t in row {
            let k = text_key(t, &mut self.scratch);
            if self.seen.contains(&k) {
                return false;
            }
            self.keys.push(k);
        }
        self.seen.extend(self.keys.iter().copied());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_is_strip_and_lower() {
        let mut s = Vec::new();
        assert_eq!(
            text_key("  Hello World\n", &mut s),
            text_key("hello world", &mut s)
        );
        assert_eq!(text_key("ÉCOLE", &mut s), text_key("école", &mut s));
        assert_ne!(
            text_key("hello world", &mut s),
            text_key("hello  world", &mut s)
        );
        assert_ne!(text_key("", &mut s), text_key("a", &mut s));
    }

    #[test]
    fn a_row_is_admitted_only_with_new_texts() {
        let mut d = BatchDedup::default();
        d.clear(4);
        let row = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert!(d.admit(&row("q1", "a1")));
        // The 2021 rule checks the row against the batch, not against itself.
        assert!(d.admit(&row("same", "Same")));
        assert!(!d.admit(&row("q2", "A1 ")));
        // A rejected row leaves nothing behind.
        assert!(d.admit(&row("q2", "a2")));
        d.clear(4);
        assert!(d.admit(&row("q1", "a1")));
    }
}
