//! onthefly's side of the tagger comparison in `bench/peers/run.sh` (part
//! 4): the WNUT-16 tweets streamed in file order to the analyst's
//! `entity_extraction` task through the coordinator, as an agent hands them
//! in (predict each tweet with the live model, then hand in its gold tags,
//! waiting for each update), then the final model tags tweets it never saw.
//! Entity F1 as `onthefly::eval::entity_f1` counts it, overall and per type.
//!
//! `--split test` (default): trained on every tweet but every fifth,
//! evaluated on every fifth (the split of `tests/tagger_wnut.rs`).
//! `--split validation`: trained on the training part without its
//! validation tweets, evaluated on those; every choice of a default is made
//! on this split, never on the test split.
//!
//! `--data conll`: the CoNLL-2003 English news instead (training split in
//! date order, use `--limit-train N`; evaluated on the test split, a later
//! month, or `--split validation`), a stream no default was chosen on.
//!
//! `--passes N` streams the training tweets N times (1); `--limit-train N`
//! keeps the first N; `--update-threshold N` (50), `--rate R` (the tagger's
//! adaptive base rate), `--hash-buckets N`, `--seed N` (the order of
//! each update's examples), `--rotate K` (the stream starts K fifths in), `--held-out F` (the judging
//! share) and `--replay-capacity N` change one setting each. Everything else
//! is the library's default configuration, with no store and no checkpoints.
//! The last line printed is JSON.
//!
//! `cargo run --release --example peer_tagger -- [--split validation]`

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/ner.rs"]
#[allow(dead_code)] // The dictionaries are the tests' and the benches'.
mod ner;

use std::time::{Duration, Instant};

use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

const AGENT: &str = "analyst";
const TASK: &str = "entity_extraction";

fn tags_of(output: &Target) -> Vec<String> {
    match output {
        Target::Tags(t) => t.clone(),
        other => panic!("tags, got {other:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = args::value::<String>("--data").unwrap_or_else(|| "wnut".into());
    let split = args::value::<String>("--split").unwrap_or_else(|| "test".into());
    let (sentences, conll_train, conll_eval);
    let (mut train, eval) = match data.as_str() {
        // CoNLL-2003: the training split in date order, the final model
        // scored on the later month's test split (or the validation split).
        "conll" => {
            conll_train = ner::load_conll("train");
            conll_eval = ner::load_conll(if split == "validation" { "valid" } else { "test" });
            (
                conll_train.iter().collect::<Vec<_>>(),
                conll_eval.iter().collect::<Vec<_>>(),
            )
        }
        _ => {
            sentences = ner::load_sentences();
            ner::wnut_split(&sentences, split == "validation")
        }
    };
    if let Some(limit) = args::value::<usize>("--limit-train") {
        train.truncate(limit);
    }
    if let Some(fifths) = args::value::<usize>("--rotate") {
        // The same tweets from another starting point: the spread of the
        // figures over orders is their noise.
        let len = train.len();
        train.rotate_left(fifths * len / 5 % len.max(1));
    }
    let passes = args::value::<usize>("--passes").unwrap_or(1);

    let data_dir = std::env::temp_dir().join(format!("onthefly-peer-tagger-{}", std::process::id()));
    let defaults = Config::default();
    let config = Config {
        data_dir: data_dir.clone(),
        predict_feedback_threshold: 0.0,
        held_out_fraction: args::value("--held-out").unwrap_or(defaults.held_out_fraction),
        update_threshold: args::value("--update-threshold").unwrap_or(defaults.update_threshold),
        replay: args::replay(&defaults.replay),
        text_model: onthefly::TextModelConfig {
            tagger_learning_rate: args::value("--rate").unwrap_or(defaults.text_model.tagger_learning_rate),
            hash_buckets: args::value("--hash-buckets").unwrap_or(defaults.text_model.hash_buckets),
            seed: args::value("--seed").unwrap_or(defaults.text_model.seed),
            ..defaults.text_model.clone()
        },
        checkpoints_kept: 0,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..defaults
    };
    let coordinator = Coordinator::new(config)?;

    let started = Instant::now();
    let mut prequential = Vec::new();
    for pass in 0..passes {
        for s in &train {
            let text = s.text();
            if pass == 0 {
                // Before the first update there is no model: nothing tagged.
                let predicted = match coordinator.predict(AGENT, TASK, &text) {
                    Ok(p) => tags_of(&p.output),
                    Err(_) => vec!["O".to_string(); s.tokens.len()],
                };
                prequential.push(predicted);
            }
            coordinator.add_training_example(NewExample::new(AGENT, TASK, text, Target::Tags(s.tags.clone())))?;
            assert!(
                coordinator.wait_for_idle(Duration::from_secs(600)),
                "an update took over 10 minutes"
            );
        }
    }
    coordinator.force_update_agent(AGENT)?;
    assert!(coordinator.wait_for_idle(Duration::from_secs(600)));
    let seconds = started.elapsed().as_secs_f64();

    let texts: Vec<String> = eval.iter().map(|s| s.text()).collect();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let predicted: Vec<Vec<String>> = coordinator
        .predict_batch(AGENT, TASK, &inputs)?
        .iter()
        .map(|p| tags_of(&p.output))
        .collect();
    let (all, per_type) = ner::entity_scores(
        eval.iter()
            .zip(&predicted)
            .map(|(s, p)| (s.tags.as_slice(), p.as_slice())),
    );
    let (streamed, _) = ner::entity_scores(
        train
            .iter()
            .zip(&prequential)
            .map(|(s, p)| (s.tags.as_slice(), p.as_slice())),
    );
    let status = coordinator.get_training_status();
    let analyst = &status.agents[AGENT];
    let history = coordinator.performance_history();
    if args::flag("--verbose") {
        for r in &history {
            eprintln!(
                "update {} trained {} held out {} {:?} -> {:?} {:?}",
                r.update_id,
                r.examples_trained,
                r.held_out_examples,
                r.accuracy_before,
                r.accuracy_after,
                r.rollback_reason
            );
        }
    }
    let update_ms: u64 = history.iter().map(|r| r.duration_ms).sum();
    let per_type: serde_json::Map<String, serde_json::Value> = per_type
        .iter()
        .map(|(kind, s)| {
            let scores = serde_json::json!({
                "f1": s.f1, "precision": s.precision, "recall": s.recall, "support": s.support,
            });
            (kind.clone(), scores)
        })
        .collect();
    let report = serde_json::json!({
        "peer": "onthefly",
        "data": data,
        "split": split,
        "passes": passes,
        "train_sentences": train.len(),
        "eval_sentences": eval.len(),
        "f1": all.f1,
        "precision": all.precision,
        "recall": all.recall,
        "per_type": per_type,
        "prequential_f1": streamed.f1,
        "seconds": seconds,
        "updates": history.len(),
        "mean_update_ms": update_ms as f64 / history.len().max(1) as f64,
        "rolled_back": analyst.updates_rolled_back,
        "quarantined": analyst.examples_quarantined,
        "examples_trained": analyst.examples_trained,
        "examples_held_out": analyst.examples_held_out,
        "tagger_learning_rate": coordinator.config().text_model.tagger_learning_rate,
    });
    coordinator.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    println!("{report}");
    Ok(())
}
