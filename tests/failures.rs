//! A failing or panicking update is recorded and the training loop goes on; a
//! non-finite loss rejects the update. The model here is a caller's own model
//! (the real text classifier, wrapped) that fails on marked inputs, installed
//! with `register_model` as a user would install theirs.

mod common;

use std::time::Duration;

use common::{label, small_config};
use onthefly::models::{AgentModel, Gradients, ModelKind, ModelOutput, TextClassifier, TrainingSettings};
use onthefly::{Coordinator, ModelError, NewExample, Priority, TargetKind, TrainingExample};
use tch::{nn::VarStore, Tensor};

struct Fragile(TextClassifier);

impl AgentModel for Fragile {
    fn kind(&self) -> ModelKind {
        ModelKind::Custom
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Label
    }
    fn var_store(&self) -> &VarStore {
        self.0.var_store()
    }
    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        self.0.prepare(examples)
    }
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError> {
        if examples.iter().any(|e| e.input_text.contains("POISON")) {
            panic!("poisoned input");
        }
        if examples.iter().any(|e| e.input_text.contains("NAN")) {
            return Ok(self.0.loss(examples, gradients)? * f64::NAN);
        }
        self.0.loss(examples, gradients)
    }
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if inputs.iter().any(|t| t.contains("CRASH")) {
            // Panics with gradients switched off, as a user's model might.
            tch::no_grad(|| panic!("predict crashed"));
        }
        if inputs.iter().any(|t| t.contains("SHORT")) {
            return Ok(Vec::new());
        }
        self.0.predict(inputs)
    }
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Ok(Box::new(Fragile(self.0.try_copy()?)))
    }
    fn settings(&self) -> TrainingSettings {
        // Adam's rate: a custom model is trained by Adam, whatever it wraps;
        // the whole batch in one step, so a marked example spoils its batch.
        TrainingSettings::adam(0.1, 64)
    }
    fn labels(&self) -> Vec<String> {
        self.0.labels()
    }
}

fn coordinator() -> Coordinator {
    let config = small_config();
    let c = Coordinator::new(config.clone()).unwrap();
    let model = TextClassifier::new(config.text_model, tch::Device::Cpu, 7).unwrap();
    c.register_model("scout", "news", Box::new(Fragile(model))).unwrap();
    c
}

fn add(c: &Coordinator, text: &str) {
    c.add_training_example(NewExample::new("scout", "news", text, label("bbc")))
        .unwrap();
}

#[test]
fn a_panicking_example_is_isolated_and_the_rest_is_learned() {
    let c = coordinator();
    for i in 0..7 {
        add(&c, &format!("ordinary article {i}"));
    }
    add(&c, "a POISON article");
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));

    let scout = c.get_training_status().agents["scout"].clone();
    // Halving isolated the poisoned example: 8 → 4 → 2 → 1 failed.
    assert_eq!(scout.updates_failed, 4, "{scout:?}");
    assert_eq!(scout.examples_trained, 7);
    assert_eq!(scout.buffer_size, 1);
    let error = scout.last_error.expect("the failure is in the status");
    assert!(
        error.contains("panicked") && error.contains("poisoned input"),
        "{error}"
    );
    assert_eq!(scout.models["news"].model_kind.as_deref(), Some("custom"));

    // After MAX_UPDATE_ATTEMPTS (3) failures on its own it leaves the buffer.
    for _ in 0..2 {
        c.force_update_agent("scout").unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(60)));
    }
    let scout = c.get_training_status().agents["scout"].clone();
    assert_eq!((scout.examples_failed, scout.buffer_size), (1, 0));

    // The loop goes on: a correction still trains at once.
    let version = scout.models["news"].version;
    c.add_training_example(
        NewExample::new("scout", "news", "fresh article", label("cnn")).with_priority(Priority::High),
    )
    .unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.models["news"].version, version + 1);
    assert_eq!(scout.examples_trained, 8);
}

#[test]
fn a_non_finite_loss_rejects_the_update_and_keeps_the_live_model() {
    let c = coordinator();
    add(&c, "a good article");
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let before = c.predict("scout", "news", "a good article").unwrap();
    assert_eq!(before.model_version, 1);

    add(&c, "a NAN article");
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let record = c.performance_history().pop().unwrap();
    assert!(record.rollback_triggered);
    assert!(
        record.rollback_reason.as_deref().unwrap().contains("non-finite"),
        "{record:?}"
    );
    assert!(record.train_loss.is_nan());
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!((scout.updates_rolled_back, scout.examples_quarantined), (1, 1));
    let after = c.predict("scout", "news", "a good article").unwrap();
    assert_eq!(after.model_version, 1, "the live model was kept");
    assert_eq!(after.confidence, before.confidence);
}

#[test]
fn register_model_refuses_a_second_model_or_another_target_kind() {
    let c = coordinator();
    let model = TextClassifier::new(small_config().text_model, tch::Device::Cpu, 1).unwrap();
    let err = c.register_model("scout", "news", Box::new(model)).unwrap_err();
    assert!(matches!(err, onthefly::Error::ModelExists { .. }), "{err:?}");
    c.add_training_example(NewExample::new(
        "scout",
        "quality",
        "text",
        onthefly::Target::Score(0.4),
    ))
    .unwrap();
    let model = TextClassifier::new(small_config().text_model, tch::Device::Cpu, 1).unwrap();
    let err = c.register_model("scout", "quality", Box::new(model)).unwrap_err();
    assert!(matches!(
        err,
        onthefly::Error::Invalid(onthefly::ValidationError::TargetKindMismatch { .. })
    ));
}

#[test]
fn a_model_panicking_with_gradients_off_does_not_break_later_updates() {
    let config = onthefly::Config {
        held_out_fraction: 0.5,
        max_concurrent_updates: 1, // every update runs on the one worker or this thread
        ..small_config()
    };
    let c = Coordinator::new(config.clone()).unwrap();
    let model = TextClassifier::new(config.text_model, tch::Device::Cpu, 7).unwrap();
    c.register_model("scout", "news", Box::new(Fragile(model))).unwrap();
    // Find a text the hash holds out, so evaluation (predict) meets it.
    let crash = (0..)
        .map(|i| format!("CRASH text {i}"))
        .find(|t| onthefly::eval::is_held_out(t, 0.5))
        .unwrap();
    assert_eq!(
        c.add_training_example(NewExample::new("scout", "news", crash.as_str(), label("bbc")))
            .unwrap()
            .placement,
        onthefly::Placement::HeldOut
    );
    let ordinary = (0..)
        .map(|i| format!("an ordinary article {i}"))
        .find(|t| !onthefly::eval::is_held_out(t, 0.5))
        .unwrap();
    add(&c, &ordinary);
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let scout = c.get_training_status().agents["scout"].clone();
    assert_eq!(scout.updates_failed, 1, "{scout:?}");
    assert!(
        scout.last_error.as_deref().unwrap_or("").contains("predict crashed"),
        "{scout:?}"
    );
    assert_eq!(
        scout.examples_failed, 0,
        "nothing succeeded, so the examples are not blamed"
    );
    assert_eq!(scout.buffer_size, 1);

    // The same thread (the worker, or this one waiting for idle) trains
    // another task afterwards: the panic did not leave gradients switched off.
    c.add_training_example(
        NewExample::new("scout", "other", "a fresh text", label("cnn")).with_priority(Priority::High),
    )
    .unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let scout = c.get_training_status().agents["scout"].clone();
    assert_eq!(scout.models["other"].version, 1, "{scout:?}");

    // The caller's thread gets an error, not a panic, from a faulty model.
    assert!(matches!(
        c.predict("scout", "news", "CRASH now"),
        Err(onthefly::Error::Model(ModelError::Panicked(_)))
    ));
    assert!(matches!(
        c.predict("scout", "news", "SHORT answer"),
        Err(onthefly::Error::Model(ModelError::OutputCount {
            inputs: 1,
            outputs: 0
        }))
    ));
}

/// A task whose model cannot be created (here a TorchScript module that is
/// not there) keeps its examples buffered, out of the batches, and says so:
/// they filled the agent's best batch at every update, and its other tasks
/// never trained.
#[test]
fn a_task_whose_model_cannot_be_created_does_not_hold_the_others_back() {
    let c = Coordinator::new(onthefly::Config {
        update_threshold: 8,
        max_examples_per_update: 8,
        torchscript: common::broken_torchscript_classifier("scout/broken"),
        ..small_config()
    })
    .unwrap();
    for i in 0..20 {
        // More valuable than the news examples: first in every batch.
        c.add_training_example(
            NewExample::new("scout", "broken", format!("story {i}"), label(["bbc", "cnn"][i % 2])).with_importance(1.0),
        )
        .unwrap();
        c.add_training_example(
            NewExample::new("scout", "news", format!("article {i}"), label(["bbc", "cnn"][i % 2])).with_importance(0.1),
        )
        .unwrap();
    }
    for _ in 0..4 {
        c.force_update_agent("scout").unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(60)));
    }
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.examples_trained, 20, "{scout:?}");
    assert_eq!(scout.buffer_size, 20, "the broken task's examples wait: {scout:?}");
    let said = scout.last_error.clone().unwrap_or_default();
    assert!(said.contains("could not create a model for task \"broken\""), "{said}");
    assert!(!said.contains("frame #"), "libtorch's C++ frames in the status: {said}");
}
