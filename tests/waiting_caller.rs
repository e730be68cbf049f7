//! A caller waiting for idle runs queued updates itself, but only within
//! `max_concurrent_updates`: with the only worker held by another agent's
//! update, an update queued behind it waits (the caller ran it beside the
//! held one); and shutdown waits for an update a caller runs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{label, small_config, wait_until};
use onthefly::models::{AgentModel, Gradients, ModelKind, ModelOutput, TextClassifier, TrainingSettings};
use onthefly::{Coordinator, ModelError, NewExample, TargetKind, TrainingExample};
use tch::{nn::VarStore, Tensor};

/// A classifier whose training waits while `gate` is closed, saying on
/// `entered` that it started.
struct Gated {
    model: TextClassifier,
    gate: Arc<AtomicBool>,
    entered: Arc<AtomicBool>,
}

impl AgentModel for Gated {
    fn kind(&self) -> ModelKind {
        ModelKind::Custom
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Label
    }
    fn var_store(&self) -> &VarStore {
        self.model.var_store()
    }
    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        self.model.prepare(examples)
    }
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError> {
        self.entered.store(true, Ordering::Release);
        while !self.gate.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.model.loss(examples, gradients)
    }
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        self.model.predict(inputs)
    }
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Ok(Box::new(Gated {
            model: self.model.try_copy()?,
            gate: Arc::clone(&self.gate),
            entered: Arc::clone(&self.entered),
        }))
    }
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adam(0.01, 16)
    }
    fn labels(&self) -> Vec<String> {
        self.model.labels()
    }
}

/// Opens a gate when dropped: a failed assertion must not leave a worker
/// held (the coordinator's drop would wait for it for ever).
struct OpensOnDrop(Arc<AtomicBool>);

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn a_waiting_caller_keeps_to_max_concurrent_updates() {
    let config = onthefly::Config {
        max_concurrent_updates: 1,
        ..small_config()
    };
    let c = Coordinator::new(config.clone()).unwrap();
    let (gate, entered) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let _open = OpensOnDrop(Arc::clone(&gate));
    let gated = Gated {
        model: TextClassifier::new(config.text_model, tch::Device::Cpu, 7).unwrap(),
        gate: Arc::clone(&gate),
        entered: Arc::clone(&entered),
    };
    c.register_model("critic", "news", Box::new(gated)).unwrap();
    let example = |agent: &str, text: &str, outlet: &str| NewExample::new(agent, "news", text, label(outlet));

    // The only worker takes the critic's update and is held in its training.
    c.add_training_example(example("critic", "an article the critic learns", "bbc"))
        .unwrap();
    c.force_update_agent("critic").unwrap();
    assert!(wait_until(Duration::from_secs(30), || entered.load(Ordering::Acquire)));

    // The scout's update queues behind it. A caller waiting for idle runs
    // queued updates itself only within max_concurrent_updates: here it
    // waits (it ran the scout's beside the critic's, two at once, when a
    // user had asked for one to bound memory).
    c.add_training_example(example("scout", "an article the scout learns", "cnn"))
        .unwrap();
    c.force_update_agent("scout").unwrap();
    let idle = c.wait_for_idle(Duration::from_millis(300));
    assert!(!idle, "the critic's update is still held");
    let status = c.get_training_status();
    assert_eq!(
        status.agents["scout"].models.get("news").map_or(0, |m| m.version),
        0,
        "a second update ran beside the held one"
    );
    assert_eq!(status.agents["critic"].models["news"].version, 0, "still training");

    gate.store(true, Ordering::Release);
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let status = c.get_training_status();
    assert_eq!(status.agents["critic"].models["news"].version, 1);
    assert_eq!(status.agents["scout"].models["news"].version, 1);
    assert_eq!(
        c.predict("scout", "news", "an article the scout learns")
            .unwrap()
            .model_version,
        1
    );
    c.shutdown();
}

/// Shutdown waits for an update a waiting caller runs as for one a worker
/// runs: the scout's update is held in its training while a caller waits
/// for idle (the caller or the only worker runs it, whichever takes the
/// job first), and shutdown does not return until it is done.
#[test]
fn shutdown_waits_for_an_update_a_waiting_caller_may_run() {
    let config = onthefly::Config {
        max_concurrent_updates: 1,
        ..small_config()
    };
    let c = Arc::new(Coordinator::new(config.clone()).unwrap());
    let (gate, entered) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let _open = OpensOnDrop(Arc::clone(&gate));
    let gated = Gated {
        model: TextClassifier::new(config.text_model.clone(), tch::Device::Cpu, 7).unwrap(),
        gate: Arc::clone(&gate),
        entered: Arc::clone(&entered),
    };
    c.register_model("scout", "news", Box::new(gated)).unwrap();
    c.add_training_example(NewExample::new("scout", "news", "an article", label("bbc")))
        .unwrap();
    let waiter = {
        let c = Arc::clone(&c);
        c.force_update_agent("scout").unwrap();
        std::thread::spawn(move || c.wait_for_idle(Duration::from_secs(60)))
    };
    assert!(wait_until(Duration::from_secs(30), || entered.load(Ordering::Acquire)));

    let stopped = Arc::new(AtomicBool::new(false));
    let stopper = {
        let (c, stopped) = (Arc::clone(&c), Arc::clone(&stopped));
        std::thread::spawn(move || {
            c.shutdown();
            stopped.store(true, Ordering::Release);
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !stopped.load(Ordering::Acquire),
        "shutdown returned while the update was running"
    );
    gate.store(true, Ordering::Release);
    stopper.join().unwrap();
    assert!(waiter.join().unwrap(), "the waiting caller saw idle");
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.updates_accepted + scout.updates_rolled_back, 1, "{scout:?}");
}
