//! The adaptive optimiser of the hashed linear models (`onthefly::optim`):
//! its closed-form step equals back-propagation, with and without EWC, and
//! so does the closed-form Fisher; its state is part of the model (saved
//! and restored with the weights), an update touches only the rows of the
//! n-grams it saw, and no EWC strength can make it diverge.

mod common;

use std::collections::BTreeMap;

use onthefly::eval::evaluate;
use onthefly::ewc::{EwcState, FisherKind};
use onthefly::fisher::{diagonal_fisher, diagonal_fisher_back_propagated};
use onthefly::models::{AgentModel, TextClassifier};
use onthefly::{train_one_epoch, train_one_epoch_back_propagated};
use tch::{Device, Kind, Tensor};

use common::news::labelled_examples as news;
use common::text_model_of_2_14_buckets as small;

fn variable(model: &dyn AgentModel, name: &str) -> Tensor {
    model.var_store().variables()[name].detach().copy()
}

/// Asserts that two models' weights and optimiser sums agree to 10⁻⁴ of
/// the largest value. Only the order of float additions differs between
/// the closed form and back-propagation (the closed form adds a repeated
/// n-gram's values before its step, the embedding bag after; it rounds to
/// the kept precision, 2⁻¹⁷, where the other does not), and AdaGrad's first
/// steps, divided by tiny sums, magnify it: a wrong step would differ by a
/// share of the values, not 10⁻⁴.
fn assert_same_steps(fast: &dyn AgentModel, slow: &dyn AgentModel, what: &str) {
    for name in ["weight", "weight__sumsq"] {
        let (a, b) = (variable(fast, name), variable(slow, name));
        let gap = (&a - &b).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]);
        assert!(
            gap <= 1e-4 * scale,
            "{what}: {name} differs by {gap} (largest value {scale})"
        );
    }
    assert!(variable(fast, "weight__sumsq").sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn the_closed_form_step_equals_back_propagation() {
    let examples = news(0..120);
    let mut fast = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut fast, &examples, 3, &[]).unwrap();
    let mut slow = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch_back_propagated(&mut slow, &examples, 3, &[]).unwrap();
    assert_same_steps(&fast, &slow, "no EWC");
}

#[test]
fn the_closed_form_step_with_ewc_equals_back_propagation() {
    let mut base = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut base, &news(0..200), 1, &[]).unwrap();
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(&base, &news(0..200), FisherKind::Empirical, 64, 1).unwrap();
    ewc.consolidate(base.var_store(), fisher, 0.9).unwrap();
    // Articles 200..320 bring labels the anchors lack (free columns) and
    // n-grams the Fisher never saw (free rows) beside ones it holds.
    let next = news(200..320);
    for lambda in [1.0, 100.0] {
        let mut fast = base.try_copy().unwrap();
        train_one_epoch(&mut fast, &next, 3, &[(&ewc, lambda)]).unwrap();
        let mut slow = base.try_copy().unwrap();
        train_one_epoch_back_propagated(&mut slow, &next, 3, &[(&ewc, lambda)]).unwrap();
        assert_same_steps(&fast, &slow, &format!("λ {lambda}"));
        // The penalty did something: the same pass without it ends elsewhere.
        let mut free = base.try_copy().unwrap();
        train_one_epoch(&mut free, &next, 3, &[]).unwrap();
        let moved = (variable(&free, "weight") - variable(&fast, "weight"))
            .abs()
            .max()
            .double_value(&[]);
        assert!(moved > 1e-3, "λ {lambda}: EWC changed the weights by at most {moved}");
    }
}

/// When an update's pass starts from the version its EWC anchors are a
/// copy of, it takes the anchors from the rows it reads instead of reading
/// them: the same weights and sums, bit for bit (new labels included, whose
/// columns the anchors lack).
#[test]
fn anchors_taken_from_the_weights_give_the_pass_that_reads_them() {
    use onthefly::ewc::{Changed, UpdateRows};
    let mut base = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut base, &news(0..200), 1, &[]).unwrap();
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(&base, &news(0..200), FisherKind::Empirical, 64, 1).unwrap();
    let whole = |_: &str| Ok(Changed::Whole);
    let update = UpdateRows {
        from: 0,
        to: 1,
        rows_of: &whole,
    };
    ewc.consolidate_update(base.var_store(), fisher, 0.9, Some(update))
        .unwrap();
    let next = news(200..320);
    ewc.passing_from(2);
    assert!(
        !ewc.anchors_are_the_weights(),
        "another version's weights are not the anchors"
    );
    let mut read = base.try_copy().unwrap();
    train_one_epoch(&mut read, &next, 3, &[(&ewc, 100.0)]).unwrap();
    ewc.passing_from(1);
    assert!(ewc.anchors_are_the_weights());
    let mut taken = base.try_copy().unwrap();
    train_one_epoch(&mut taken, &next, 3, &[(&ewc, 100.0)]).unwrap();
    ewc.passed();
    assert!(!ewc.anchors_are_the_weights());
    for name in ["weight", "weight__sumsq"] {
        assert!(variable(&read, name).equal(&variable(&taken, name)), "{name} differs");
    }
}

#[test]
fn the_closed_form_fisher_equals_back_propagation() {
    let mut model = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &news(0..150), 1, &[]).unwrap();
    let examples = news(150..214);
    let fast = diagonal_fisher(&model, &examples, FisherKind::Empirical, 64, 1).unwrap();
    let slow = diagonal_fisher_back_propagated(&model, &examples).unwrap();
    assert_eq!(fast.keys().collect::<Vec<_>>(), vec!["weight"]);
    let (a, b) = (&fast["weight"], &slow["weight"]);
    assert_eq!(a.size(), b.size());
    let gap = (a - b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]);
    assert!(scale > 0.0);
    assert!(
        gap <= 1e-5 * scale,
        "the Fisher differs by {gap} (largest value {scale})"
    );
}

#[test]
fn an_update_touches_only_the_rows_of_its_n_grams() {
    let mut model = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &news(0..50), 1, &[]).unwrap();
    let before = variable(&model, "weight");
    let one = news(50..51);
    train_one_epoch(&mut model, &one, 2, &[]).unwrap();
    let changed = (variable(&model, "weight") - before)
        .abs()
        .sum_dim_intlist(1, false, Kind::Float)
        .gt(0.0)
        .nonzero()
        .reshape([-1]);
    let changed = Vec::<i64>::try_from(&changed).unwrap();
    let mut ids = onthefly::features::ngram_ids(&one[0].input_text, 1 << 14, 1000);
    ids.sort_unstable();
    ids.dedup();
    // Its n-grams and the constant feature, nothing else.
    let others = changed.iter().filter(|&&row| ids.binary_search(&row).is_err()).count();
    assert!(others <= 1, "{others} rows changed that are not the example's n-grams");
    // Every n-gram's row moved, but where its step was below half the
    // precision the rows keep (16 mantissa bits): it rounds to nothing.
    let moved = changed.len() - others;
    assert!(
        moved <= ids.len() && moved as f64 >= 0.99 * ids.len() as f64,
        "{moved} rows of its {} n-grams changed",
        ids.len()
    );
}

#[test]
fn the_optimiser_state_is_saved_and_restored_with_the_weights() {
    let mut model = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &news(0..80), 1, &[]).unwrap();
    let params: BTreeMap<String, Tensor> = model
        .var_store()
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    assert!(params.contains_key("weight__sumsq"));
    let restored = TextClassifier::from_checkpoint(Device::Cpu, &params, &model.metadata()).unwrap();
    for name in ["weight", "weight__sumsq"] {
        assert!(variable(&restored, name).equal(&variable(&model, name)), "{name}");
    }
    // Both continue identically: the restored model did not start a fresh optimiser.
    let next = news(80..120);
    let mut a = model.try_copy().unwrap();
    let mut b = restored;
    train_one_epoch(&mut a, &next, 5, &[]).unwrap();
    train_one_epoch(&mut b, &next, 5, &[]).unwrap();
    assert!(variable(&a, "weight").equal(&variable(&b, "weight")));
}

#[test]
fn no_ewc_strength_makes_the_model_diverge_or_fall_below_the_majority_class() {
    let first = news(0..600);
    let second = news(600..1200);
    let test = news(1200..1700);
    let majority = {
        let mut counts = BTreeMap::new();
        for e in &test {
            *counts.entry(format!("{:?}", e.expected_output)).or_insert(0usize) += 1;
        }
        *counts.values().max().unwrap() as f64 / test.len() as f64
    };
    let mut base = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut base, &first, 1, &[]).unwrap();
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(&base, &first, FisherKind::Empirical, 64, 1).unwrap();
    ewc.consolidate(base.var_store(), fisher, 0.9).unwrap();
    let anchored = variable(&base, "weight");
    let mut plain = base.try_copy().unwrap();
    train_one_epoch(&mut plain, &second, 2, &[]).unwrap();
    let plain_accuracy = evaluate(&plain, &test).unwrap().unwrap().value;
    for lambda in [1.0, 1e3, 1e9] {
        let mut model = base.try_copy().unwrap();
        train_one_epoch(&mut model, &second, 2, &[(&ewc, lambda)]).unwrap();
        let accuracy = evaluate(&model, &test).unwrap().unwrap().value;
        // Labels new in the second part are columns the anchor does not have.
        let overlap = variable(&model, "weight").narrow(1, 0, anchored.size()[1]);
        let moved = (overlap - &anchored).abs().max().double_value(&[]);
        println!("λ {lambda}: accuracy {accuracy:.3} (plain {plain_accuracy:.3}, majority {majority:.3}), largest move {moved:.4}");
        assert!(moved.is_finite());
        assert!(
            accuracy > majority + 0.1,
            "λ {lambda}: accuracy {accuracy} against the majority class {majority}"
        );
    }
}
