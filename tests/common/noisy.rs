//! Labelled streams with a share of wrong labels (issue 28, part 3), the
//! same for every learner: `examples/peer_noisy.rs` runs onthefly on them and
//! writes them for the Python peers, `tests/wrong_labels.rs` guards the
//! figures.
//!
//! A stream is `news` (the 3,823 articles, outlet, 9 classes), `vader`
//! (the four VADER domains' rated snippets, 3 classes: a mean rating below
//! −0.5 negative, above 0.5 positive, else neutral), `vader:DOMAIN` (one
//! domain) or `vader:rest` (all but the tweets), in the file's order (the
//! news articles by date) or a fixed-seed shuffle. The last fifth of that
//! order is set aside with its true labels as clean unseen data; of the
//! rest, a share of the labels is replaced by another class chosen at
//! random.

use std::time::Duration;

use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

use super::{news, vader};

/// One text of a stream.
#[derive(Debug, Clone)]
pub struct Item {
    pub text: String,
    /// The true class.
    pub truth: String,
    /// The class handed in (wrong for a share of the texts).
    pub given: String,
    /// Set aside as clean unseen data, never handed in.
    pub test: bool,
}

/// How a stream is drawn.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `news`, `vader`, `vader:DOMAIN` or `vader:rest`.
    pub data: String,
    /// `date` (the file's order) or `shuffled`.
    pub order: String,
    /// The share of wrong labels, 0..1.
    pub noise: f64,
    /// The share set aside at the end as unseen data.
    pub test_fraction: f64,
    /// Seed of the shuffle and of the wrong labels.
    pub seed: u64,
    /// Texts of the file's order left out before it is shuffled (the news
    /// articles 1–1,000, where settings were chosen: `skip` 1000).
    pub skip: usize,
    /// Texts taken after `skip`.
    pub limit: usize,
}

impl Spec {
    /// `data` in `order` with `noise` wrong labels, seed 1, a fifth unseen.
    pub fn new(data: &str, order: &str, noise: f64) -> Spec {
        Spec {
            data: data.to_string(),
            order: order.to_string(),
            noise,
            test_fraction: 0.2,
            seed: 1,
            skip: 0,
            limit: usize::MAX,
        }
    }
}

/// SplitMix64: a small, fixed generator, so the wrong labels and the order
/// are the same in every run and for every learner.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `0..1`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vader_class(rating: f64) -> &'static str {
    if rating < -vader::NEUTRAL_BAND {
        "negative"
    } else if rating > vader::NEUTRAL_BAND {
        "positive"
    } else {
        "neutral"
    }
}

/// The texts and classes of `data`, in the file's order.
fn load(data: &str) -> Vec<(String, String)> {
    let vader_domains = |keep: &dyn Fn(&str) -> bool| -> Vec<(String, String)> {
        vader::DOMAINS
            .iter()
            .filter(|(name, _)| keep(name))
            .flat_map(|(_, file)| vader::load_ratings(file))
            .map(|s| (s.text, vader_class(s.rating).to_string()))
            .collect()
    };
    match data.split_once(':') {
        None if data == "news" => news::load_articles().into_iter().map(|a| (a.text, a.outlet)).collect(),
        None if data == "vader" => vader_domains(&|_| true),
        Some(("vader", "rest")) => vader_domains(&|name| name != "tweets"),
        Some(("vader", domain)) => vader_domains(&|name| name == domain),
        _ => panic!("news|vader|vader:DOMAIN|vader:rest, not {data}"),
    }
}

/// The stream as every learner sees it.
pub fn stream(spec: &Spec) -> Vec<Item> {
    let mut rows: Vec<(String, String)> = load(&spec.data).into_iter().skip(spec.skip).take(spec.limit).collect();
    let mut rng = SplitMix(spec.seed);
    match spec.order.as_str() {
        "date" => {}
        "shuffled" => {
            for i in (1..rows.len()).rev() {
                rows.swap(i, rng.below(i + 1));
            }
        }
        other => panic!("date|shuffled, not {other}"),
    }
    let mut classes: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
    classes.sort();
    classes.dedup();
    let first_test = rows.len() - (rows.len() as f64 * spec.test_fraction).round() as usize;
    rows.into_iter()
        .enumerate()
        .map(|(i, (text, truth))| {
            let test = i >= first_test;
            // Drawn for every text, so the wrong labels of 10 % are a subset of 20 %'s.
            let draw = rng.unit();
            let other = rng.below(classes.len() - 1);
            let given = if !test && draw < spec.noise {
                classes.iter().filter(|c| **c != truth).nth(other).unwrap().clone()
            } else {
                truth.clone()
            };
            Item {
                text,
                truth,
                given,
                test,
            }
        })
        .collect()
}

/// What a run of onthefly on a stream measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Texts handed in.
    pub texts: usize,
    /// Of them with a wrong label.
    pub wrong_labels: usize,
    /// Prequential accuracy against the true labels.
    pub prequential_accuracy: f64,
    /// The same per tenth of the stream, in order.
    pub prequential_by_tenth: Vec<f64>,
    /// Texts set aside.
    pub unseen: usize,
    /// The final model's accuracy on them.
    pub unseen_accuracy: f64,
    pub updates_accepted: u64,
    pub updates_rolled_back: u64,
    pub examples_trained: u64,
    pub examples_quarantined: u64,
}

/// Streams `items` through a coordinator with `config` (its data folder,
/// store and checkpoints as given): each text predicted by the live model,
/// then handed in with its given label, then every update waited for; the
/// unseen part predicted at the end.
pub fn run(items: &[Item], config: Config) -> Outcome {
    let coordinator = Coordinator::new(Config {
        predict_feedback_threshold: 0.0,
        ..config
    })
    .unwrap();
    let (train, test): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| !i.test);
    let mut tenths = [(0usize, 0usize); 10];
    for (n, item) in train.iter().enumerate() {
        let right = coordinator
            .predict(AGENT, TASK, &item.text)
            .is_ok_and(|p| p.output == Target::Label(item.truth.clone()));
        let tenth = &mut tenths[n * 10 / train.len()];
        tenth.0 += usize::from(right);
        tenth.1 += 1;
        hand_in(&coordinator, item);
        assert!(
            coordinator.wait_for_idle(Duration::from_secs(600)),
            "an update took over 10 minutes"
        );
    }
    let prequential = Prequential {
        accuracy: tenths.iter().map(|t| t.0).sum::<usize>() as f64 / train.len() as f64,
        by_tenth: tenths.iter().map(|(r, n)| *r as f64 / (*n).max(1) as f64).collect(),
    };
    finish(coordinator, &train, &test, prequential).0
}

const AGENT: &str = "critic";
const TASK: &str = "stream";

/// Hands in a text with its given (possibly wrong) label.
fn hand_in(coordinator: &Coordinator, item: &Item) {
    coordinator
        .add_training_example(NewExample::new(
            AGENT,
            TASK,
            item.text.clone(),
            Target::Label(item.given.clone()),
        ))
        .unwrap();
}

/// Prequential accuracy over a stream, and per tenth of it.
struct Prequential {
    accuracy: f64,
    by_tenth: Vec<f64>,
}

/// Scores the unseen part, reads the agent's status and shuts the
/// coordinator down.
fn finish(
    coordinator: Coordinator,
    train: &[&Item],
    test: &[&Item],
    prequential: Prequential,
) -> (Outcome, onthefly::AgentStatus) {
    let unseen_right = test
        .iter()
        .filter(|item| {
            coordinator
                .predict(AGENT, TASK, &item.text)
                .is_ok_and(|p| p.output == Target::Label(item.truth.clone()))
        })
        .count();
    let agent = coordinator.get_training_status().agents[AGENT].clone();
    let outcome = Outcome {
        texts: train.len(),
        wrong_labels: train.iter().filter(|i| i.given != i.truth).count(),
        prequential_accuracy: prequential.accuracy,
        prequential_by_tenth: prequential.by_tenth,
        unseen: test.len(),
        unseen_accuracy: unseen_right as f64 / test.len().max(1) as f64,
        updates_accepted: agent.updates_accepted,
        updates_rolled_back: agent.updates_rolled_back,
        examples_trained: agent.examples_trained,
        examples_quarantined: agent.examples_quarantined,
    };
    coordinator.shutdown();
    (outcome, agent)
}

/// The library's defaults with the store and checkpoints off (as the peer
/// comparisons run), in `data_dir`.
pub fn defaults_without_store(data_dir: std::path::PathBuf) -> Config {
    Config {
        data_dir,
        checkpoints_kept: 0,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

/// Hands every text of `items` not set aside to a coordinator with `config`
/// as fast as the calls return (no prediction, no wait in between), waits
/// for idle once, then scores the unseen part: the fast caller of issue 28,
/// part 4. `prequential_accuracy` is not measured (0).
pub fn run_fast(items: &[Item], config: Config) -> (Outcome, onthefly::AgentStatus) {
    let coordinator = Coordinator::new(config).unwrap();
    let (train, test): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| !i.test);
    for item in &train {
        hand_in(&coordinator, item);
    }
    assert!(
        coordinator.wait_for_idle(Duration::from_secs(900)),
        "not idle after 15 minutes"
    );
    let none = Prequential {
        accuracy: 0.0,
        by_tenth: Vec::new(),
    };
    finish(coordinator, &train, &test, none)
}
