//! A reduced, fast run of the permuted Fashion-MNIST experiment
//! (`examples/permuted_fashion.rs`): 3 tasks of 3,000 training images, one
//! epoch each; online EWC at λ = 100 (what the example's validation search
//! chose at this size with `--tasks 3 --train 3000 --grid 100,10000`), EWC at
//! λ = 10³ (the full experiment's validated choice). Both must forget at
//! least 30 % less than plain fine-tuning without ending less accurate.

mod common;

use common::permuted::{self, avg_forgetting, final_avg_acc, run, Settings};

#[test]
fn online_ewc_forgets_less_than_fine_tuning_on_permuted_fashion_mnist() {
    let tasks = permuted::tasks(3, 3_000, 2_000, 10_000);
    let s = Settings {
        epochs: 1,
        lambda: 100.0,
        gamma: 0.9,
        learning_rate: 1e-3,
        batch: 128,
        fisher_samples: 500,
    };
    let finetune = run("finetune", &tasks, &s, true);
    let online = run("online_ewc", &tasks, &s, true);
    // One penalty per task: λ 10³, what the full experiment's validation
    // search chose for it (10² for online EWC).
    let ewc = run("ewc", &tasks, &Settings { lambda: 1000.0, ..s }, true);
    for (name, m) in [("finetune", &finetune), ("ewc", &ewc), ("online_ewc", &online)] {
        eprintln!(
            "{name:<10} final avg acc {:.4}  avg forgetting {:.4}",
            final_avg_acc(m),
            avg_forgetting(m)
        );
    }
    // Task 1 is learned well before any other task is seen.
    assert!(finetune[0][0] > 0.7, "task 1 accuracy {}", finetune[0][0]);
    assert!(finetune[0][1] < 0.3, "an unseen permutation is near chance");
    // At least 30 % less forgetting than plain fine-tuning.
    assert!(avg_forgetting(&online) <= 0.7 * avg_forgetting(&finetune));
    assert!(avg_forgetting(&ewc) <= 0.7 * avg_forgetting(&finetune));
    assert!(final_avg_acc(&online) >= final_avg_acc(&finetune));
    assert!(final_avg_acc(&ewc) >= final_avg_acc(&finetune));
}
