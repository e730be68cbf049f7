//! A clean stream through the coordinator and what the judge did to it
//! (`examples/judge_clean.rs`, `tests/judge_clean.rs`): every label right,
//! handed in as an agent would, waiting for each update of 50, with the
//! default configuration and no store.

use std::time::Duration;

use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

const AGENT: &str = "agent";
const TASK: &str = "task";

/// What the judge did to one clean stream.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    /// Its name.
    pub stream: String,
    /// Examples streamed.
    pub examples: usize,
    /// Updates of whole batches.
    pub whole_updates: usize,
    /// Of those, rolled back.
    pub whole_rolled_back: usize,
    /// Updates of whole batches during the stream's second half.
    pub second_half_updates: usize,
    /// Of those, rolled back.
    pub second_half_rolled_back: usize,
    /// Every rollback, the retrained halves' included.
    pub all_rollbacks: u64,
    /// Examples quarantined as harmful.
    pub quarantined: u64,
    /// Examples trained.
    pub trained: u64,
}

/// Streams `items` (input, target) to one task and reports what the judge did.
pub fn run(stream: &str, items: &[(String, Target)]) -> Outcome {
    let data_dir = std::env::temp_dir().join(format!(
        "onthefly-judge-clean-{}-{:x}",
        std::process::id(),
        onthefly::features::stable_hash(stream.as_bytes())
    ));
    let config = Config {
        data_dir: data_dir.clone(),
        predict_feedback_threshold: 0.0,
        checkpoints_kept: 0,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..Config::default()
    };
    let c = Coordinator::new(config).unwrap();
    let half = items.len() / 2;
    let mut second_half_from = None;
    for (i, (text, target)) in items.iter().enumerate() {
        if i == half {
            second_half_from = Some(c.performance_history().len());
        }
        c.add_training_example(NewExample::new(AGENT, TASK, text.clone(), target.clone()))
            .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(600)));
    }
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(600)));
    let history = c.performance_history();
    // A whole batch is the threshold's 50 examples (its record counts no
    // replayed ones); the halves retrained after a rollback are fewer.
    let whole: Vec<(usize, bool)> = history
        .iter()
        .enumerate()
        .filter(|(_, r)| r.examples_trained >= 50)
        .map(|(i, r)| (i, r.rollback_triggered))
        .collect();
    let from = second_half_from.unwrap_or(0);
    if std::env::args().any(|a| a == "--verbose") {
        for (i, r) in history.iter().enumerate().filter(|(_, r)| r.rollback_triggered) {
            eprintln!("  #{i} trained {} {:?}", r.examples_trained, r.rollback_reason);
        }
    }
    let status = c.get_training_status();
    let agent = &status.agents[AGENT];
    let outcome = Outcome {
        stream: stream.to_string(),
        examples: items.len(),
        whole_updates: whole.len(),
        whole_rolled_back: whole.iter().filter(|(_, r)| *r).count(),
        second_half_updates: whole.iter().filter(|(i, _)| *i >= from).count(),
        second_half_rolled_back: whole.iter().filter(|(i, r)| *i >= from && *r).count(),
        all_rollbacks: agent.updates_rolled_back,
        quarantined: agent.examples_quarantined,
        trained: agent.examples_trained,
    };
    c.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    eprintln!(
        "{stream}: {} examples; whole updates {} rolled back of {}; second half {} of {}; all rollbacks {}; quarantined {}",
        outcome.examples,
        outcome.whole_rolled_back,
        outcome.whole_updates,
        outcome.second_half_rolled_back,
        outcome.second_half_updates,
        outcome.all_rollbacks,
        outcome.quarantined
    );
    outcome
}

/// The same items in a fixed-seed shuffle.
pub fn shuffled(items: &[(String, Target)]) -> Vec<(String, Target)> {
    let mut items = items.to_vec();
    onthefly::features::SplitMix64::new(2026).shuffle(&mut items);
    items
}
