//! EWC against hand-computed values: the Fisher of a tiny logistic regression,
//! the penalty and its gradient, growth of variables, online consolidation.

use std::collections::BTreeMap;

use onthefly::ewc::{diagonal_fisher_with, EwcState};
use tch::{nn::VarStore, Device, Kind, Tensor};

const X: [[f64; 3]; 4] = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, 1.0]];
const Y: [f64; 4] = [1.0, 0.0, 1.0, 0.0];
const W: [f64; 3] = [0.3, -0.6, 0.2];
const B: f64 = 0.1;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logistic_regression() -> (VarStore, Tensor, Tensor) {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var_copy("w", &Tensor::from_slice(&W.map(|v| v as f32)));
    let b = vs.root().var_copy("b", &Tensor::from_slice(&[B as f32]));
    (vs, w, b)
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

#[test]
fn fisher_of_a_logistic_regression_equals_its_analytic_value() {
    let (vs, w, b) = logistic_regression();
    let fisher = diagonal_fisher_with(&vs, X.len(), |i| {
        let x = Tensor::from_slice(&X[i].map(|v| v as f32));
        let z = x.dot(&w) + &b;
        let y = Tensor::from_slice(&[Y[i] as f32]);
        Ok(z.binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Sum))
    })
    .unwrap();

    // ∂/∂w of −log p(y|x) is (σ(w·x+b) − y)·x, and ∂/∂b is σ(w·x+b) − y.
    let mut expected_w = [0.0; 3];
    let mut expected_b = 0.0;
    for (x, y) in X.iter().zip(Y) {
        let r = sigmoid(x.iter().zip(W).map(|(a, b)| a * b).sum::<f64>() + B) - y;
        for (e, xi) in expected_w.iter_mut().zip(x) {
            *e += (r * xi).powi(2) / X.len() as f64;
        }
        expected_b += r * r / X.len() as f64;
    }
    for (got, want) in values(&fisher["w"]).iter().zip(expected_w) {
        assert!((got - want).abs() < 1e-5, "F_w: got {got}, want {want}");
    }
    assert!((values(&fisher["b"])[0] - expected_b).abs() < 1e-5);
    // The gradients are left clean for the next optimiser step.
    assert!(!w.grad().defined() || values(&w.grad()).iter().all(|g| *g == 0.0));
}

#[test]
fn penalty_and_its_gradient_match_the_formula() {
    let (vs, w, b) = logistic_regression();
    let mut state = EwcState::new();
    let fisher = BTreeMap::from([
        ("w".to_string(), Tensor::from_slice(&[0.5f32, 2.0, 0.1])),
        ("b".to_string(), Tensor::from_slice(&[3.0f32])),
    ]);
    state.consolidate(&vs, fisher, 0.9).unwrap(); // θ* = current weights
    assert_eq!(state.consolidations(), 1);
    assert!(state.penalty(&vs, 10.0).unwrap().unwrap().double_value(&[]).abs() < 1e-12);

    // Move the weights away from the anchor.
    tch::no_grad(|| {
        w.shallow_clone().copy_(&Tensor::from_slice(&[1.0f32, -1.0, 0.0]));
        b.shallow_clone().copy_(&Tensor::from_slice(&[-0.4f32]));
    });
    let lambda = 10.0;
    let penalty = state.penalty(&vs, lambda).unwrap().unwrap();
    let theta = [1.0, -1.0, 0.0, -0.4];
    let anchor = [W[0], W[1], W[2], B];
    let f = [0.5, 2.0, 0.1, 3.0];
    let expected: f64 = (0..4)
        .map(|i| lambda / 2.0 * f[i] * (theta[i] - anchor[i]).powi(2))
        .sum();
    assert!(
        (penalty.double_value(&[]) - expected).abs() < 1e-4,
        "{} vs {expected}",
        penalty.double_value(&[])
    );

    penalty.backward();
    let grad: Vec<f64> = values(&w.grad()).into_iter().chain(values(&b.grad())).collect();
    for i in 0..4 {
        let want = lambda * f[i] * (theta[i] - anchor[i]);
        assert!(
            (grad[i] - want).abs() < 1e-4,
            "∂penalty/∂θ{i}: got {}, want {want}",
            grad[i]
        );
    }

    // Added in place to the gradients of a loss, as training does, it gives the
    // same step: the loss's gradient plus λ·F·(θ − θ*).
    for t in [&w, &b] {
        let _ = t.grad().zero_();
    }
    let loss = (&w * 2.0).sum(Kind::Float) + (&b * 3.0).sum(Kind::Float);
    loss.backward();
    state.add_penalty_gradient(&vs, lambda).unwrap();
    let grad: Vec<f64> = values(&w.grad()).into_iter().chain(values(&b.grad())).collect();
    let loss_grad = [2.0, 2.0, 2.0, 3.0];
    for i in 0..4 {
        let want = loss_grad[i] + lambda * f[i] * (theta[i] - anchor[i]);
        assert!(
            (grad[i] - want).abs() < 1e-4,
            "in place, θ{i}: got {}, want {want}",
            grad[i]
        );
    }
}

#[test]
fn grown_rows_have_zero_importance_and_consolidation_decays() {
    let vs = VarStore::new(Device::Cpu);
    let _ = vs
        .root()
        .var_copy("out", &Tensor::from_slice(&[1.0f32, 2.0]).reshape([2, 1]));
    let mut state = EwcState::new();
    state
        .consolidate(
            &vs,
            BTreeMap::from([("out".into(), Tensor::from_slice(&[1.0f32, 1.0]).reshape([2, 1]))]),
            0.5,
        )
        .unwrap();

    // The variable grows by a row (a new label), as a classifier's output layer does.
    let grown = VarStore::new(Device::Cpu);
    let _ = grown
        .root()
        .var_copy("out", &Tensor::from_slice(&[1.0f32, 2.0, 50.0]).reshape([3, 1]));
    let penalty = state.penalty(&grown, 2.0).unwrap().unwrap();
    assert_eq!(
        penalty.double_value(&[]),
        0.0,
        "the new row is free, the old rows did not move"
    );

    // F ← γ·F + F_new, the old Fisher padded with zero importance for the new row.
    let fresh = BTreeMap::from([(
        "out".to_string(),
        Tensor::from_slice(&[0.2f32, 0.2, 0.2]).reshape([3, 1]),
    )]);
    state.consolidate(&grown, fresh, 0.5).unwrap();
    assert_eq!(
        values(&state.fisher()["out"]),
        [0.7, 0.7, 0.2].map(|v: f64| (v as f32) as f64)
    );
    assert_eq!(values(&state.anchors()["out"]), [1.0, 2.0, 50.0]);
    assert_eq!(state.consolidations(), 2);
}

#[test]
fn the_classifiers_sparse_fisher_equals_the_dense_one() {
    use onthefly::ewc::FisherKind;
    use onthefly::fisher::diagonal_fisher;
    use onthefly::models::{AgentModel, Gradients, TextClassifier};
    use onthefly::{Target, TextModelConfig, TrainingExample};

    let config = TextModelConfig {
        hash_buckets: 1 << 12,
        embedding_dim: 8,
        ..TextModelConfig::default()
    };
    let examples: Vec<TrainingExample> = [
        ("the cat sat on the mat the cat", "a"),
        ("dogs bark loudly", "b"),
        ("the dog sat", "a"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (text, label))| {
        TrainingExample::new(
            i as u64,
            "scout",
            "t",
            text.to_string(),
            Target::Label(label.to_string()),
        )
    })
    .collect();
    let mut model = TextClassifier::new(config, Device::Cpu, 5).unwrap();
    model.prepare(&examples).unwrap();
    onthefly::train_one_epoch(&mut model, &examples, 1, &[]).unwrap();

    let sparse = diagonal_fisher(&model, &examples, FisherKind::Empirical, 10, 0).unwrap();
    let dense = diagonal_fisher_with(model.var_store(), examples.len(), |i| {
        model.loss(&[&examples[i]], Gradients::Dense)
    })
    .unwrap();
    assert_eq!(sparse.keys().collect::<Vec<_>>(), dense.keys().collect::<Vec<_>>());
    for (name, s) in &sparse {
        let d = &dense[name];
        let diff = (s - d).abs().max().double_value(&[]);
        assert!(diff < 1e-9, "{name}: sparse and dense Fisher differ by {diff}");
        assert!(
            s.sum(Kind::Double).double_value(&[]) > 0.0,
            "{name} has some importance"
        );
    }
    // The "true" Fisher (labels sampled from the model) has the same shapes.
    let sampled = diagonal_fisher(&model, &examples, FisherKind::True, 10, 3).unwrap();
    assert_eq!(sampled["weight"].size(), sparse["weight"].size());
}

#[test]
fn an_update_from_the_anchored_version_copies_only_its_rows_into_the_anchors() {
    use onthefly::ewc::{Changed, UpdateRows};
    let vs = VarStore::new(Device::Cpu);
    let table = vs
        .root()
        .var_copy("t", &Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([4, 3]));
    let fisher = || BTreeMap::from([("t".to_string(), Tensor::ones([4, 3], (Kind::Float, Device::Cpu)))]);
    let whole = |_: &str| Ok(Changed::Whole);
    let mut state = EwcState::new();
    let first = UpdateRows {
        from: 0,
        to: 1,
        rows_of: &whole,
    };
    state.consolidate_update(&vs, fisher(), 0.9, Some(first)).unwrap();
    let set = |row: i64, value: f64| {
        let _ = tch::no_grad(|| table.get(row).shallow_clone().fill_(value));
    };

    // Version 1 → 2 changed row 1: its anchor row follows, and all rows equal θ.
    set(1, 100.0);
    let row_1 = |_: &str| Ok(Changed::Rows(Tensor::from_slice(&[1i64])));
    let second = UpdateRows {
        from: 1,
        to: 2,
        rows_of: &row_1,
    };
    state.consolidate_update(&vs, fisher(), 0.9, Some(second)).unwrap();
    assert!(
        state.anchors()["t"].equal(&table.detach()),
        "anchors are θ after a row-wise copy"
    );

    // Version 2 → 3 wrote row 3 and recorded its values: they are the
    // anchor's row (given, not read from θ).
    set(3, 300.0);
    let written = |_: &str| {
        Ok(Changed::Written {
            rows: Tensor::from_slice(&[3i64]),
            values: Tensor::from_slice(&[300f32, 300.0, 300.0]).reshape([1, 3]),
        })
    };
    let third = UpdateRows {
        from: 2,
        to: 3,
        rows_of: &written,
    };
    state.consolidate_update(&vs, fisher(), 0.9, Some(third)).unwrap();
    assert!(
        state.anchors()["t"].equal(&table.detach()),
        "anchors are θ after a copy of the written rows"
    );

    // The anchors are taken as a copy of version 3: an update from it that
    // says it changed nothing copies nothing (the shortcut is taken)...
    set(2, 200.0);
    let nothing = |_: &str| Ok(Changed::Nothing);
    let third = UpdateRows {
        from: 3,
        to: 4,
        rows_of: &nothing,
    };
    state.consolidate_update(&vs, fisher(), 0.9, Some(third)).unwrap();
    assert_eq!(values(&state.anchors()["t"].get(2))[0], 6.0);

    // ...while an update from any other version copies every row.
    let fourth = UpdateRows {
        from: 7,
        to: 8,
        rows_of: &nothing,
    };
    state.consolidate_update(&vs, fisher(), 0.9, Some(fourth)).unwrap();
    assert!(
        state.anchors()["t"].equal(&table.detach()),
        "anchors are θ after a whole copy"
    );
    // And the Fisher decayed in place each time: 1, 1.9, 2.71, 3.439, 4.0951.
    assert!((values(&state.fisher()["t"])[0] - 4.0951).abs() < 1e-5);
}

#[test]
fn the_scale_carried_over_row_by_row_equals_the_scale_counted_afresh() {
    let vs = VarStore::new(Device::Cpu);
    let _table = vs
        .root()
        .var_copy("t", &Tensor::zeros([4, 3], (Kind::Float, Device::Cpu)));
    // A sparse fresh Fisher of some rows, as the hashed models give it.
    let sparse = |rows: &[i64], values: &[f32]| {
        let indices = Tensor::from_slice(rows).reshape([1, -1]);
        let values = Tensor::from_slice(values).reshape([rows.len() as i64, 3]);
        let t = Tensor::sparse_coo_tensor_indices_size(&indices, &values, [4, 3], (Kind::Float, Device::Cpu), true);
        BTreeMap::from([("t".to_string(), t)])
    };
    let mut state = EwcState::new();
    state
        .consolidate(&vs, sparse(&[0, 2], &[1.0, 0.0, 2.0, 0.0, 0.0, 0.5]), 0.9)
        .unwrap();
    // Zeros become positive, positive rows get more, an untouched row stays.
    state
        .consolidate(&vs, sparse(&[0, 3], &[0.0, 3.0, 0.0, 0.25, 0.0, 0.0]), 0.9)
        .unwrap();
    state
        .consolidate(&vs, sparse(&[1, 2], &[0.0, 0.0, 0.0, 4.0, 4.0, 4.0]), 0.9)
        .unwrap();
    let copied = |m: &BTreeMap<String, Tensor>| m.iter().map(|(k, t)| (k.clone(), t.copy())).collect();
    let afresh = EwcState::from_parts(copied(state.fisher()), copied(state.anchors()), state.consolidations());
    // Positive: row 0 three, row 2 three, row 3 one: 7 entries.
    let sum: f64 = values(&state.fisher()["t"]).iter().sum();
    assert!(
        (afresh.scale() - sum / 7.0).abs() < 1e-6,
        "{} against {}",
        afresh.scale(),
        sum / 7.0
    );
    assert_eq!(state.scale(), afresh.scale(), "carried over and counted afresh differ");
}
