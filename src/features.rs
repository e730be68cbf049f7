//! Text features shared by the built-in models: lower-cased word tokens and
//! hashed word uni- and bi-gram ids (fastText style), plus the stable hash used
//! wherever a decision must not change between runs or machines.

/// FNV-1a, 64 bit: stable across runs, platforms and Rust versions, unlike
/// `std`'s randomly keyed hasher.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Lower-cased runs of letters and digits; everything else separates tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Hashed uni- and bi-gram ids of a text, each in `0..buckets`.
///
/// Uses at most `max_tokens` tokens. A text without tokens maps to one reserved
/// id (bucket 0) so every input has at least one feature. The tokens are those
/// of [`tokenize`], hashed as they are read (no string per token): every
/// update hashes its batch and its held-out window, so this is on the hot path.
pub fn ngram_ids(text: &str, buckets: usize, max_tokens: usize) -> Vec<i64> {
    let buckets = buckets as u64;
    let mut ids = Vec::new();
    let mut previous: Option<u64> = None;
    for h in token_hashes(text).take(max_tokens) {
        ids.push((h % buckets) as i64);
        if let Some(p) = previous {
            // Order matters in a bigram, so mix the two hashes asymmetrically.
            let bigram = p.rotate_left(17) ^ h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ids.push((bigram % buckets) as i64);
        }
        previous = Some(h);
    }
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

/// The [`stable_hash`] of each token of [`tokenize`], computed over the
/// lower-cased UTF-8 bytes without building the token.
fn token_hashes(text: &str) -> impl Iterator<Item = u64> + '_ {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        while chars.peek().is_some_and(|c| !c.is_alphanumeric()) {
            chars.next();
        }
        chars.peek()?;
        let mut h = OFFSET;
        let mut buf = [0u8; 4];
        while let Some(c) = chars.next_if(|c| c.is_alphanumeric()) {
            if c.is_ascii() {
                h = (h ^ u64::from(c.to_ascii_lowercase() as u8)).wrapping_mul(PRIME);
            } else {
                for lower in c.to_lowercase() {
                    for &b in lower.encode_utf8(&mut buf).as_bytes() {
                        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
                    }
                }
            }
        }
        Some(h)
    })
}

/// A small deterministic generator (SplitMix64) for weight initialisation and
/// shuffling, so results do not depend on libtorch's global seed, which every
/// thread shares.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with this seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Reference values of FNV-1a 64 from its specification's test suite.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn tokens_are_lowercase_words() {
        assert_eq!(
            tokenize("Pence's tie-breaking VOTE, 51-50!"),
            ["pence", "s", "tie", "breaking", "vote", "51", "50"]
        );
    }

    #[test]
    fn ngrams_cover_unigrams_and_bigrams_in_range() {
        let ids = ngram_ids("a b c", 64, 100);
        assert_eq!(ids.len(), 5);
        assert!(ids.iter().all(|&i| (0..64).contains(&i)));
        assert_eq!(ngram_ids("!!!", 64, 100), vec![0]);
        assert_eq!(ngram_ids("a b c d", 1 << 20, 2).len(), 3);
        // The streaming hashes are those of the tokens.
        let text = "Ünïcode WORDS, 51-50 ok!";
        let want: Vec<u64> = tokenize(text).iter().map(|t| stable_hash(t.as_bytes())).collect();
        assert_eq!(token_hashes(text).collect::<Vec<_>>(), want);
        // Bigrams are ordered: "a b" and "b a" differ.
        assert_ne!(ngram_ids("a b", 1 << 20, 9)[2], ngram_ids("b a", 1 << 20, 9)[2]);
    }
}
