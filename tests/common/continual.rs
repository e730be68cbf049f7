//! A domain-incremental continual-learning experiment over the library's own
//! pieces: the built-in text classifier, `train_one_epoch` and EWC. Methods:
//!
//! - `finetune`: train on each domain in turn, nothing else;
//! - `ewc`: after each domain, its Fisher and anchor become one more penalty
//!   term (Kirkpatrick et al. 2017), each with the same λ;
//! - `online_ewc`: one penalty, `F ← γ·F + F_new`, `θ* ← θ` after each domain
//!   (Schwarz et al. 2018), the library's own update rule;
//! - `joint`: one model trained on all domains together (the upper bound).
//!
//! After each stage every domain's test set is measured; the final average
//! accuracy is the mean over domains after the last stage, and a domain's
//! forgetting is its best accuracy at an earlier stage minus its final one.

use onthefly::ewc::{EwcState, FisherKind};
use onthefly::features::{stable_hash, SplitMix64};
use onthefly::fisher::diagonal_fisher;
use onthefly::models::{AgentModel, TextClassifier};
use onthefly::{train_one_epoch, Target, TextModelConfig, TrainingExample};

/// One domain's splits.
pub struct Domain {
    /// Its name.
    pub name: String,
    /// Training examples.
    pub train: Vec<TrainingExample>,
    /// Validation examples (for choosing λ).
    pub validation: Vec<TrainingExample>,
    /// Test examples (reported).
    pub test: Vec<TrainingExample>,
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Epochs over each domain (over everything for `joint`).
    pub epochs: usize,
    /// Penalty strength.
    pub lambda: f64,
    /// Online EWC decay.
    pub gamma: f64,
    /// Examples per domain used for its Fisher.
    pub fisher_samples: usize,
    /// The classifier's hyper-parameters.
    pub model: TextModelConfig,
}

impl Settings {
    /// What the sentiment experiment uses: 2 epochs per domain, γ 0.9, the
    /// Fisher of 256 examples, a 2¹⁶ × 32 classifier with Adam 0.02 in
    /// minibatches of 32; λ is set per run.
    pub fn sentiment() -> Settings {
        Settings {
            epochs: 2,
            lambda: 0.0,
            gamma: 0.9,
            fisher_samples: 256,
            model: TextModelConfig {
                hash_buckets: 1 << 16,
                embedding_dim: 32,
                learning_rate: 0.02,
                minibatch_size: 32,
                // The mean feature values its λ were chosen with: the bound
                // on a short text's step is for the adaptive steps of a
                // stream, and these are Adam epochs.
                full_step_ngrams: 1,
                ..TextModelConfig::default()
            },
        }
    }
}

/// The accuracies of a run: `matrix[stage][domain]`.
#[derive(Debug, Clone)]
pub struct Run {
    /// Accuracy on every domain after each stage.
    pub matrix: Vec<Vec<f64>>,
}

impl Run {
    /// Mean accuracy over all domains after the last stage.
    pub fn final_avg_acc(&self) -> f64 {
        let last = self.matrix.last().expect("at least one stage");
        last.iter().sum::<f64>() / last.len() as f64
    }

    /// Mean over all domains but the last of (best earlier accuracy − final accuracy).
    pub fn avg_forgetting(&self) -> f64 {
        let stages = self.matrix.len();
        if stages < 2 {
            return 0.0;
        }
        let last = &self.matrix[stages - 1];
        let domains = last.len() - 1;
        (0..domains)
            .map(|d| {
                let best = (d..stages - 1).map(|s| self.matrix[s][d]).fold(f64::MIN, f64::max);
                best - last[d]
            })
            .sum::<f64>()
            / domains as f64
    }
}

/// The four VADER domains in benchmark order, each split (at most `limit`
/// snippets per domain), labelled with the sign of the rating.
pub fn vader_domains(limit: Option<usize>) -> Vec<Domain> {
    super::vader::DOMAINS
        .iter()
        .map(|(name, file)| {
            let items = super::vader::load_domain(file)
                .into_iter()
                .map(|s| {
                    let label = s.label().to_string();
                    (s.text, label)
                })
                .collect();
            split(name, items, limit)
        })
        .collect()
}

/// Labelled examples, split by a stable hash of the text: 20 % test, 10 %
/// validation, the rest training.
pub fn split(name: &str, items: Vec<(String, String)>, limit: Option<usize>) -> Domain {
    let mut domain = Domain {
        name: name.to_string(),
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for (i, (text, label)) in items.into_iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        let slot = stable_hash(text.as_bytes()) % 10;
        let example = TrainingExample::new(i as u64, "experiment", name, text, Target::Label(label));
        match slot {
            0 | 1 => domain.test.push(example),
            2 => domain.validation.push(example),
            _ => domain.train.push(example),
        }
    }
    domain
}

fn accuracy(model: &dyn AgentModel, examples: &[TrainingExample]) -> f64 {
    let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
    let predictions = model.predict(&inputs).expect("prediction");
    let right = predictions
        .iter()
        .zip(examples)
        .filter(|(p, e)| p.output == e.expected_output)
        .count();
    right as f64 / examples.len().max(1) as f64
}

fn fresh_model(settings: &Settings, domains: &[Domain]) -> TextClassifier {
    let mut model = TextClassifier::new(settings.model.clone(), tch::Device::Cpu, 11).unwrap();
    // Every method knows both classes from the start, so output rows do not
    // depend on the order labels appear in.
    let labels: Vec<TrainingExample> = domains[0].train.iter().take(200).cloned().collect();
    model.prepare(&labels).unwrap();
    model
}

/// Runs one method; `evaluate_on` picks each domain's validation or test set.
pub fn run(
    method: &str,
    domains: &[Domain],
    settings: &Settings,
    evaluate_on: fn(&Domain) -> &[TrainingExample],
) -> Run {
    let mut model = fresh_model(settings, domains);
    let measure =
        |model: &TextClassifier| -> Vec<f64> { domains.iter().map(|d| accuracy(model, evaluate_on(d))).collect() };
    if method == "joint" {
        let all: Vec<TrainingExample> = domains.iter().flat_map(|d| d.train.iter().cloned()).collect();
        let mut order = all;
        SplitMix64::new(5).shuffle(&mut order);
        for epoch in 0..settings.epochs {
            train_one_epoch(&mut model, &order, epoch as u64, &[]).unwrap();
        }
        return Run {
            matrix: vec![measure(&model)],
        };
    }

    let mut terms: Vec<EwcState> = Vec::new();
    let mut online = EwcState::new();
    let mut matrix = Vec::new();
    for (stage, domain) in domains.iter().enumerate() {
        for epoch in 0..settings.epochs {
            let penalties: Vec<(&EwcState, f64)> = match method {
                "ewc" => terms.iter().map(|t| (t, settings.lambda)).collect(),
                "online_ewc" => vec![(&online, settings.lambda)],
                _ => Vec::new(),
            };
            train_one_epoch(&mut model, &domain.train, (stage * 100 + epoch) as u64, &penalties).unwrap();
        }
        if method != "finetune" {
            let fisher =
                diagonal_fisher(&model, &domain.train, FisherKind::Empirical, settings.fisher_samples, 1).unwrap();
            if method == "ewc" {
                let mut term = EwcState::new();
                term.consolidate(model.var_store(), fisher, 1.0).unwrap();
                terms.push(term);
            } else {
                online.consolidate(model.var_store(), fisher, settings.gamma).unwrap();
            }
        }
        matrix.push(measure(&model));
    }
    Run { matrix }
}

/// The live model's accuracy on every domain's `split` (its [`test`] or
/// [`validation`] examples), for (agent, task) of a coordinator (the
/// streamed runs' scoring). Unused by `examples/continual_sentiment.rs`,
/// which includes this file too.
#[allow(dead_code)]
pub fn coordinator_accuracies(
    c: &onthefly::Coordinator,
    agent: &str,
    task: &str,
    domains: &[Domain],
    split: fn(&Domain) -> &[TrainingExample],
) -> Vec<f64> {
    domains
        .iter()
        .map(|d| {
            let examples = split(d);
            let texts: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
            let predictions = c.predict_batch(agent, task, &texts).unwrap();
            let right = predictions
                .iter()
                .zip(examples)
                .filter(|(p, e)| p.output == e.expected_output)
                .count();
            right as f64 / examples.len() as f64
        })
        .collect()
}

/// The validation split of a domain.
pub fn validation(d: &Domain) -> &[TrainingExample] {
    &d.validation
}

/// The test split of a domain.
pub fn test(d: &Domain) -> &[TrainingExample] {
    &d.test
}

/// The λ with the best final average validation accuracy (ties: less
/// forgetting, then the smaller λ).
pub fn choose_lambda(method: &str, domains: &[Domain], settings: &Settings, grid: &[f64]) -> (f64, Vec<(f64, Run)>) {
    let runs: Vec<(f64, Run)> = grid
        .iter()
        .map(|&lambda| {
            let s = Settings {
                lambda,
                ..settings.clone()
            };
            (lambda, run(method, domains, &s, validation))
        })
        .collect();
    let best = runs
        .iter()
        .max_by(|a, b| {
            let key = |r: &Run| (r.final_avg_acc() * 1e6).round() as i64;
            key(&a.1)
                .cmp(&key(&b.1))
                .then(b.1.avg_forgetting().total_cmp(&a.1.avg_forgetting()))
                .then(b.0.total_cmp(&a.0))
        })
        .map(|(l, _)| *l)
        .expect("a non-empty grid");
    (best, runs)
}
