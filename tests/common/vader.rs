//! The VADER sentiment ground truth of `data/vader` (from the vaderSentiment
//! source package, fetched by `make data`): four domains of human-rated
//! snippets, used as a domain-incremental continual-learning benchmark.

use std::path::Path;

/// The domains, in the order of the benchmark.
pub const DOMAINS: [(&str, &str); 4] = [
    ("tweets", "tweets_GroundTruth.txt"),
    ("movie_reviews", "movieReviewSnippets_GroundTruth.txt"),
    ("amazon_reviews", "amazonReviewSnippets_GroundTruth.txt"),
    ("nyt_editorials", "nytEditorialSnippets_GroundTruth.txt"),
];

/// Ratings closer to 0 than this are neutral and left out of the benchmark.
pub const NEUTRAL_BAND: f64 = 0.5;

/// One rated snippet.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// The text.
    pub text: String,
    /// The mean human rating, -4..4.
    pub rating: f64,
}

impl Snippet {
    /// The class: the sign of the rating.
    pub fn label(&self) -> &'static str {
        if self.rating > 0.0 {
            "positive"
        } else {
            "negative"
        }
    }
}

/// The snippets of one domain's file (`id TAB rating TAB text`, CRLF lines),
/// without the neutral ones.
pub fn load_domain(file: &str) -> Vec<Snippet> {
    load_ratings(file)
        .into_iter()
        .filter(|s| s.rating.abs() >= NEUTRAL_BAND)
        .collect()
}

/// Every rated snippet of one domain's file, neutral ones included.
pub fn load_ratings(file: &str) -> Vec<Snippet> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/vader").join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make data`", path.display()));
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim_end_matches('\r').splitn(3, '\t');
            let _id = fields.next()?;
            let rating: f64 = fields.next()?.trim().parse().ok()?;
            let text = fields.next()?.trim().to_string();
            (!text.is_empty()).then_some(Snippet { text, rating })
        })
        .collect()
}
