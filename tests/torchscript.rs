//! A user's TorchScript model trained by the library: a module scripted at
//! test time by a small Python program under the project's `.venv` (an
//! EmbeddingBag and a linear layer over the library's hashed n-gram ids, the
//! documented contract), configured for the newsreader's `outlet` task and
//! streamed real news articles. It goes through updates with EWC (its
//! parameters are the VarStore's), held-out evaluation, a rollback of
//! corrupted corrections, and a checkpoint restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::news::{load_articles, OUTLETS};
use common::small_config;
use onthefly::ewc::EwcConfig;
use onthefly::models::TorchScriptSpec;
use onthefly::{Config, Coordinator, NewExample, Target, TargetKind};

/// The accuracy docs/measurements.md quotes; the test fails 0.05 below it.
const MEASURED: f64 = 0.696;
const AGENT: &str = "newsreader";
const TASK: &str = "outlet";
const BUCKETS: usize = 1 << 16;

const SCRIPT: &str = r#"
import sys, torch

class Outlet(torch.nn.Module):
    def __init__(self, buckets: int, dim: int, labels: int):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(buckets, dim, mode="mean")
        self.out = torch.nn.Linear(dim, labels)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(self.bag(ids, offsets))

torch.manual_seed(0)
torch.jit.script(Outlet(int(sys.argv[2]), 32, int(sys.argv[3]))).save(sys.argv[1])
"#;

fn script_module(dir: &Path) -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make venv`", python.display());
    let script = dir.join("make_module.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let module = dir.join("outlet.pt");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&module)
        .arg(BUCKETS.to_string())
        .arg(OUTLETS.len().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    module
}

#[test]
fn a_scripted_module_learns_news_outlets_rolls_back_and_restarts_from_its_checkpoint() {
    let base = small_config();
    let module = script_module(&base.data_dir);
    let key = format!("{AGENT}/{TASK}");
    let config = Config {
        held_out_fraction: 0.2,
        update_threshold: 1000,
        torchscript: [(
            key.clone(),
            TorchScriptSpec {
                path: module,
                target_kind: TargetKind::Label,
                labels: OUTLETS.iter().map(|s| s.to_string()).collect(),
                hash_buckets: BUCKETS,
                max_tokens: 1000,
                learning_rate: 0.05,
                minibatch_size: 16,
            },
        )]
        .into(),
        ewc_per_task: [(
            key,
            EwcConfig {
                enabled: true,
                lambda: 1.0,
                ..EwcConfig::default()
            },
        )]
        .into(),
        ..base
    };
    let articles = load_articles();
    let (train, test) = articles.split_at(articles.len() - 500);
    let c = Coordinator::new(config.clone()).unwrap();
    for (i, a) in train.iter().take(2000).enumerate() {
        c.add_training_example(NewExample::new(
            AGENT,
            TASK,
            a.text.clone(),
            Target::Label(a.outlet.clone()),
        ))
        .unwrap();
        if i % 200 == 199 {
            c.force_update_agent(AGENT).unwrap();
            assert!(c.wait_for_idle(Duration::from_secs(300)));
        }
    }
    let status = c.get_training_status();
    let model = &status.agents[AGENT].models[TASK];
    assert_eq!(model.model_kind.as_deref(), Some("torchscript"));
    assert!(model.version >= 1, "{model:?}");

    let texts: Vec<&str> = test.iter().map(|a| a.text.as_str()).collect();
    let predictions = c.predict_batch(AGENT, TASK, &texts).unwrap();
    let right = predictions
        .iter()
        .zip(test)
        .filter(|(p, a)| p.output == Target::Label(a.outlet.clone()))
        .count();
    let accuracy = right as f64 / test.len() as f64;
    let majority = OUTLETS
        .iter()
        .map(|o| test.iter().filter(|a| a.outlet == *o).count())
        .max()
        .unwrap() as f64
        / test.len() as f64;
    let history = c.performance_history();
    println!(
        "TorchScript module: accuracy {accuracy:.3} on the last {} articles (majority class {majority:.3}); {} updates, {} kept",
        test.len(),
        history.len(),
        history.iter().filter(|r| !r.rollback_triggered).count()
    );
    assert!(accuracy > majority + 0.1, "{accuracy:.3} vs majority {majority:.3}");
    assert!(
        accuracy >= MEASURED - 0.05,
        "accuracy {accuracy:.3}, docs/measurements.md says {MEASURED}"
    );

    // Corrections with every label rotated: rolled back, the version stays.
    let version = model.version;
    common::assert_wrong_answers_roll_back(
        &c,
        AGENT,
        TASK,
        train.iter().take(100).map(|a| {
            let at = OUTLETS.iter().position(|o| *o == a.outlet).unwrap();
            let wrong = Target::Label(OUTLETS[(at + 1) % OUTLETS.len()].to_string());
            (a.text.clone(), Target::Label(a.outlet.clone()), wrong)
        }),
    );
    // What serves now (the version above, or one after it if a small part
    // of the harmful batch passed) serves again after a restart.
    let serving = c.predict_batch(AGENT, TASK, &texts).unwrap();
    assert!(serving[0].model_version >= version);
    c.shutdown();

    // A restart loads the module and the checkpoint's weights: the same answers.
    let restarted = Coordinator::new(config).unwrap();
    let again = restarted.predict_batch(AGENT, TASK, &texts).unwrap();
    assert_eq!(again[0].model_version, serving[0].model_version);
    assert!(again.iter().zip(&serving).all(|(a, b)| a.output == b.output));
}
