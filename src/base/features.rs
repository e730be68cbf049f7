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
    // A power of two (the default, 2¹⁸) takes a mask instead of a 64-bit
    // division per id: the same bucket, a fraction of the cost.
    let bucket = |h: u64| match buckets.is_power_of_two() {
        true => (h & (buckets - 1)) as i64,
        false => (h % buckets) as i64,
    };
    let mut ids = Vec::with_capacity(2 * max_tokens.min(text.len() / 2 + 1));
    let mut previous: Option<u64> = None;
    for h in token_hashes(text).take(max_tokens) {
        ids.push(bucket(h));
        if let Some(p) = previous {
            // Order matters in a bigram, so mix the two hashes asymmetrically.
            let bigram = p.rotate_left(17) ^ h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ids.push(bucket(bigram));
        }
        previous = Some(h);
    }
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

/// The [`stable_hash`] of each token of [`tokenize`], computed over its
/// UTF-8 bytes lower-cased a character at a time, without building the
/// token (so a word-final Σ hashes as σ, where `tokenize` gives ς).
///
/// Reads bytes, and decodes a character only where a byte is not ASCII:
/// an ASCII character is a letter or digit exactly when
/// [`char::is_alphanumeric`] says so, and lower-cases to one byte. Every
/// prediction hashes its text, and iterating characters through a
/// `Peekable` was a quarter of a prediction's cost.
fn token_hashes(text: &str) -> impl Iterator<Item = u64> + '_ {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = text.as_bytes();
    let mut at = 0;
    // The character at `at` (a boundary: `at` only moves by whole
    // characters), whether it belongs to a token, and its length.
    let next = move |at: usize| -> Option<(char, bool, usize)> {
        let &b = bytes.get(at)?;
        if b.is_ascii() {
            return Some((b as char, b.is_ascii_alphanumeric(), 1));
        }
        let c = text.get(at..)?.chars().next()?;
        Some((c, c.is_alphanumeric(), c.len_utf8()))
    };
    std::iter::from_fn(move || {
        loop {
            let (_, in_token, len) = next(at)?;
            if in_token {
                break;
            }
            at += len;
        }
        let mut h = OFFSET;
        let mut buf = [0u8; 4];
        while let Some((c, true, len)) = next(at) {
            if c.is_ascii() {
                h = (h ^ u64::from(c.to_ascii_lowercase() as u8)).wrapping_mul(PRIME);
            } else {
                for lower in c.to_lowercase() {
                    for &b in lower.encode_utf8(&mut buf).as_bytes() {
                        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
                    }
                }
            }
            at += len;
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

    /// The token hashes as the library computed them before it read bytes
    /// (a character at a time, each lower-cased on its own: a final Σ
    /// hashes as σ, where `str::to_lowercase` would give ς). Checkpoints
    /// hold weights for these ids, so they must not change.
    fn reference_hashes(text: &str) -> Vec<u64> {
        let mut chars = text.chars().peekable();
        let mut hashes = Vec::new();
        loop {
            while chars.peek().is_some_and(|c| !c.is_alphanumeric()) {
                chars.next();
            }
            if chars.peek().is_none() {
                return hashes;
            }
            let mut token = Vec::new();
            let mut buf = [0u8; 4];
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric()) {
                for lower in c.to_lowercase() {
                    token.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
                }
            }
            hashes.push(stable_hash(&token));
        }
    }

    /// The ids of [`reference_hashes`]: every token's hash, each bigram mixed
    /// from two, `% buckets`.
    fn reference_ids(text: &str, buckets: u64, max_tokens: usize) -> Vec<i64> {
        let hashes: Vec<u64> = reference_hashes(text).into_iter().take(max_tokens).collect();
        let mut ids = Vec::new();
        for (i, &h) in hashes.iter().enumerate() {
            ids.push((h % buckets) as i64);
            if i > 0 {
                let bigram = hashes[i - 1].rotate_left(17) ^ h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                ids.push((bigram % buckets) as i64);
            }
        }
        if ids.is_empty() {
            ids.push(0);
        }
        ids
    }

    #[test]
    fn ids_are_those_of_the_tokens_for_any_text() {
        // Letters and digits of several scripts, characters that lower-case
        // to several (İ, ẞ), marks, separators of every width, emoji.
        let pool: Vec<char> = "aZq09 _-'’.,!\t\nÜïßẞİıΣσςДж١٢三國한글\u{301}\u{a0}\u{2009}😀é\u{1d400}"
            .chars()
            .collect();
        let mut rng = SplitMix64::new(7);
        for round in 0..5_000 {
            let len = (rng.next_u64() % 40) as usize;
            let text: String = (0..len)
                .map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize])
                .collect();
            for buckets in [1u64 << 18, 1000, 64] {
                let max_tokens = if round % 3 == 0 { 3 } else { 1000 };
                assert_eq!(
                    ngram_ids(&text, buckets as usize, max_tokens),
                    reference_ids(&text, buckets, max_tokens),
                    "{text:?}, {buckets} buckets"
                );
            }
        }
    }
}
