//! A caller waiting for idle runs a queued update itself: with the only
//! worker held by another agent's update, an update queued behind it is
//! done by the waiting caller, on the caller's thread, and serves.

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
fn a_waiting_caller_runs_the_update_no_worker_is_free_for() {
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

    // The scout's update queues behind it; the caller that waits runs it.
    c.add_training_example(example("scout", "an article the scout learns", "cnn"))
        .unwrap();
    c.force_update_agent("scout").unwrap();
    let on = std::thread::current().id();
    let idle = c.wait_for_idle(Duration::from_millis(300));
    assert!(!idle, "the critic's update is still held");
    assert_eq!(std::thread::current().id(), on);
    let status = c.get_training_status();
    let scout = &status.agents["scout"];
    assert_eq!(scout.models["news"].version, 1, "the waiting caller ran it: {scout:?}");
    assert_eq!(scout.examples_trained, 1);
    assert_eq!(
        c.predict("scout", "news", "an article the scout learns")
            .unwrap()
            .model_version,
        1
    );
    assert_eq!(status.agents["critic"].models["news"].version, 0, "still training");

    gate.store(true, Ordering::Release);
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    assert_eq!(c.get_training_status().agents["critic"].models["news"].version, 1);
    c.shutdown();
}

#[test]
fn shutdown_waits_for_an_update_a_waiting_caller_runs() {
    let config = onthefly::Config {
        max_concurrent_updates: 1,
        ..small_config()
    };
    let c = Arc::new(Coordinator::new(config.clone()).unwrap());
    let gates: Vec<(Arc<AtomicBool>, Arc<AtomicBool>)> = (0..2)
        .map(|_| (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))))
        .collect();
    let _open: Vec<OpensOnDrop> = gates.iter().map(|(gate, _)| OpensOnDrop(Arc::clone(gate))).collect();
    for (agent, (gate, entered)) in ["critic", "scout"].into_iter().zip(&gates) {
        let gated = Gated {
            model: TextClassifier::new(config.text_model.clone(), tch::Device::Cpu, 7).unwrap(),
            gate: Arc::clone(gate),
            entered: Arc::clone(entered),
        };
        c.register_model(agent, "news", Box::new(gated)).unwrap();
        c.add_training_example(NewExample::new(agent, "news", "an article", label("bbc")))
            .unwrap();
        c.force_update_agent(agent).unwrap();
        if agent == "critic" {
            // The only worker is held by the critic's update.
            assert!(wait_until(Duration::from_secs(30), || entered.load(Ordering::Acquire)));
        }
    }
    // A waiting caller takes the scout's update and is held in it.
    let waiter = {
        let c = Arc::clone(&c);
        std::thread::spawn(move || c.wait_for_idle(Duration::from_secs(60)))
    };
    let (scout_gate, scout_entered) = &gates[1];
    assert!(wait_until(Duration::from_secs(30), || scout_entered.load(Ordering::Acquire)));

    let stopped = Arc::new(AtomicBool::new(false));
    let stopper = {
        let (c, stopped) = (Arc::clone(&c), Arc::clone(&stopped));
        std::thread::spawn(move || {
            c.shutdown();
            stopped.store(true, Ordering::Release);
        })
    };
    gates[0].0.store(true, Ordering::Release); // The worker finishes and stops.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !stopped.load(Ordering::Acquire),
        "shutdown returned while the waiting caller's update was running"
    );
    scout_gate.store(true, Ordering::Release);
    stopper.join().unwrap();
    assert!(waiter.join().unwrap(), "the waiting caller saw idle");
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.updates_accepted + scout.updates_rolled_back, 1, "{scout:?}");
}
