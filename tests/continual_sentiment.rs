//! A reduced, fast run of the continual-sentiment experiment
//! (`examples/continual_sentiment.rs`): 800 snippets of each VADER domain, two
//! epochs per domain, the λ values the example's validation search chose at
//! this size (`--limit 800 --grid 10,1000`). EWC and online EWC must forget
//! at least 30 % less than plain fine-tuning without ending less accurate.

mod common;

use common::continual::{self, run, test, Settings};

#[test]
fn ewc_forgets_less_than_fine_tuning_across_sentiment_domains() {
    let domains = continual::vader_domains(Some(800));
    let settings = Settings::sentiment();
    let finetune = run("finetune", &domains, &settings, test);
    let ewc = run(
        "ewc",
        &domains,
        &Settings {
            lambda: 10.0,
            ..settings.clone()
        },
        test,
    );
    let online = run(
        "online_ewc",
        &domains,
        &Settings {
            lambda: 1000.0,
            ..settings.clone()
        },
        test,
    );
    for (name, r) in [("finetune", &finetune), ("ewc", &ewc), ("online_ewc", &online)] {
        eprintln!(
            "{name:<10} final avg acc {:.4}  avg forgetting {:.4}",
            r.final_avg_acc(),
            r.avg_forgetting()
        );
    }
    assert!(
        finetune.avg_forgetting() > 0.02,
        "fine-tuning should forget on this benchmark"
    );
    // At least 30 % less forgetting than plain fine-tuning (measured: about 80 %).
    assert!(ewc.avg_forgetting() <= 0.7 * finetune.avg_forgetting());
    assert!(online.avg_forgetting() <= 0.7 * finetune.avg_forgetting());
    assert!(ewc.final_avg_acc() >= finetune.final_avg_acc());
    assert!(online.final_avg_acc() >= finetune.final_avg_acc());
}
