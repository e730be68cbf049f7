//! The hashed features of each token of a sentence: the standard features of
//! feature-based named-entity taggers (Ratinov & Roth 2009; the
//! sklearn-crfsuite tutorial's set and more), each a bucket of the tagger's
//! weight table.
//!
//! Per token: a bias; the word as written and lower-cased; its shape
//! (`Xxxx`, `dd`, `@xxxx`) in full and with repeats collapsed; prefixes and
//! suffixes of one to four characters; whether it is capitalised at the
//! start of a sentence (after a full stop) or inside one; whether it is the
//! first or last token; the lower-cased words two either side, the shapes
//! of the neighbours, and the word pairs it forms with them. The entities
//! seen so far are remembered by the weights of the word features
//! themselves: a name tagged once has moved its word's row.

use crate::base::stable_hash;

/// Characters of the longest prefix and suffix features.
const AFFIX: usize = 4;
/// Characters of a shape kept (a long word's shape adds nothing past it).
const SHAPE: usize = 8;

/// Per token, its feature buckets (with repeats, rare: two features of one
/// token that hash to one bucket count twice).
pub(crate) fn sentence_features(tokens: &[&str], buckets: usize) -> Vec<Vec<u32>> {
    let words: Vec<Word> = tokens.iter().map(|t| Word::new(t)).collect();
    let mut hasher = Hasher::new(buckets);
    (0..words.len())
        .map(|i| {
            let w = &words[i];
            let at = |offset: isize| {
                let j = i as isize + offset;
                (0..words.len() as isize).contains(&j).then(|| &words[j as usize])
            };
            let mut ids = Vec::with_capacity(40);
            let mut add = |name: &[u8], value: &str| ids.push(hasher.bucket(name, value));
            add(b"bias", "");
            add(b"w", w.text);
            add(b"l", &w.lower);
            add(b"s", &w.shape);
            add(b"ss", &w.short_shape);
            let chars: Vec<char> = w.lower.chars().collect();
            for n in 1..=AFFIX.min(chars.len()) {
                let prefix: String = chars[..n].iter().collect();
                let suffix: String = chars[chars.len() - n..].iter().collect();
                add(b"p", &prefix);
                add(b"x", &suffix);
            }
            let after_stop = at(-1).is_none_or(|p| p.ends_sentence());
            match (w.capitalised(), after_stop) {
                (true, true) => add(b"cap", "first"),
                (true, false) => add(b"cap", "inside"),
                _ => {}
            }
            if i == 0 {
                add(b"pos", "first");
            }
            if i + 1 == words.len() {
                add(b"pos", "last");
            }
            for offset in [-2, -1, 1, 2] {
                let neighbour = at(offset).map_or(if offset < 0 { "<s>" } else { "</s>" }, |n| n.lower.as_str());
                add(&[b'c', b'0' + (offset + 2) as u8], neighbour);
            }
            for offset in [-1, 1] {
                let shape = at(offset).map_or("", |n| n.short_shape.as_str());
                add(&[b'h', b'0' + (offset + 2) as u8], shape);
            }
            let previous = at(-1).map_or("<s>", |p| p.lower.as_str());
            let next = at(1).map_or("</s>", |n| n.lower.as_str());
            add(b"b-", &format!("{previous} {}", w.lower));
            add(b"b+", &format!("{} {next}", w.lower));
            ids
        })
        .collect()
}

/// A token and the forms its features read.
struct Word<'a> {
    text: &'a str,
    lower: String,
    shape: String,
    short_shape: String,
}

impl Word<'_> {
    fn new(text: &str) -> Word<'_> {
        let shape: String = text
            .chars()
            .take(SHAPE)
            .map(|c| match c {
                c if c.is_uppercase() => 'X',
                c if c.is_lowercase() => 'x',
                c if c.is_numeric() => 'd',
                c => c,
            })
            .collect();
        let mut short_shape = String::new();
        for c in shape.chars() {
            if !short_shape.ends_with(c) {
                short_shape.push(c);
            }
        }
        Word {
            text,
            lower: text.to_lowercase(),
            shape,
            short_shape,
        }
    }

    fn capitalised(&self) -> bool {
        self.text.chars().next().is_some_and(char::is_uppercase)
    }

    fn ends_sentence(&self) -> bool {
        self.text.ends_with(['.', '!', '?', ':'])
    }
}

/// Hashes `name` and a value into a bucket, reusing one buffer.
struct Hasher {
    buffer: Vec<u8>,
    buckets: u64,
}

impl Hasher {
    fn new(buckets: usize) -> Hasher {
        Hasher {
            buffer: Vec::with_capacity(64),
            buckets: buckets as u64,
        }
    }

    fn bucket(&mut self, name: &[u8], value: &str) -> u32 {
        self.buffer.clear();
        self.buffer.extend_from_slice(name);
        // A byte no UTF-8 text holds keeps "ab"+"c" apart from "a"+"bc".
        self.buffer.push(0xff);
        self.buffer.extend_from_slice(value.as_bytes());
        let h = stable_hash(&self.buffer);
        // Buckets fit 32 bits: the configuration caps the table at 2³⁰ weights.
        match self.buckets.is_power_of_two() {
            true => (h & (self.buckets - 1)) as u32,
            false => (h % self.buckets) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_its_word_shape_affixes_and_context() {
        let tokens = ["Met", "Barack", "Obama", "in", "NYC", "."];
        let features = sentence_features(&tokens, 1 << 20);
        assert_eq!(features.len(), tokens.len());
        let mut hasher = Hasher::new(1 << 20);
        let obama = &features[2];
        for (name, value) in [
            (&b"w"[..], "Obama"),
            (b"l", "obama"),
            (b"s", "Xxxxx"),
            (b"ss", "Xx"),
            (b"p", "ob"),
            (b"x", "ama"),
            (b"cap", "inside"),
            (b"c1", "barack"),
            (b"c4", "nyc"),
            (b"b-", "barack obama"),
        ] {
            assert!(obama.contains(&hasher.bucket(name, value)), "{value}");
        }
        assert!(features[0].contains(&hasher.bucket(b"cap", "first")));
        assert!(features[0].contains(&hasher.bucket(b"c0", "<s>")));
        assert!(features[5].contains(&hasher.bucket(b"pos", "last")));
        // The same word elsewhere shares its word features, not its context.
        let again = sentence_features(&["Obama", "spoke"], 1 << 20);
        assert!(again[0].contains(&hasher.bucket(b"l", "obama")));
        assert!(!again[0].contains(&hasher.bucket(b"c1", "barack")));
        assert!(features.iter().flatten().all(|&b| b < 1 << 20));
    }
}
