//! Permuted Fashion-MNIST through the coordinator's own update loop: a
//! caller's model (an MLP 784-256-256-10 over the pixels, installed with
//! `register_model`) whose input text is the image's 784 pixels in
//! hexadecimal, trained by the library's adaptive optimiser with its state
//! in the model, judged, rolled back, replayed and consolidated as any
//! built-in model is.

use std::time::{Duration, Instant};

use onthefly::ewc::EwcConfig;
use onthefly::models::{AgentModel, Gradients, ModelKind, ModelOutput, TrainingSettings};
use onthefly::replay::ReplayConfig;
use onthefly::{Config, Coordinator, ModelError, NewExample, Target, TargetKind, TrainingExample};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::permuted::{Images, Task};

const PIXELS: usize = 784;
const CLASSES: i64 = 10;

/// The MLP; its variables and their adaptive sums live in one `VarStore`
/// (flat names: the sums are named after their variable).
pub struct PixelMlp {
    vs: VarStore,
    /// Weight and bias of each layer.
    layers: Vec<(Tensor, Tensor)>,
    learning_rate: f64,
}

/// The layers' variables, and their sums, in `vs`.
fn layers(vs: &VarStore) -> Vec<(Tensor, Tensor)> {
    let root = vs.root();
    [(PIXELS as i64, 256), (256, 256), (256, CLASSES)]
        .into_iter()
        .enumerate()
        .map(|(i, (inputs, outputs))| {
            let bound = 1.0 / (inputs as f64).sqrt();
            let w = root.uniform(&format!("w{i}"), &[outputs, inputs], -bound, bound);
            let b = root.uniform(&format!("b{i}"), &[outputs], -bound, bound);
            for (name, var) in [(format!("w{i}"), &w), (format!("b{i}"), &b)] {
                let _ = onthefly::optim::add_state(vs, &name, var).unwrap();
            }
            (w, b)
        })
        .collect()
}

impl PixelMlp {
    /// A fresh model, its weights seeded by `seed`, with the adaptive
    /// optimiser's base rate `learning_rate`.
    pub fn new(seed: i64, learning_rate: f64) -> PixelMlp {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let layers = layers(&vs);
        PixelMlp {
            vs,
            layers,
            learning_rate,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers
            .iter()
            .enumerate()
            .fold(x.shallow_clone(), |h, (i, (w, b))| {
                let h = h.linear(w, Some(b));
                if i < last {
                    h.relu()
                } else {
                    h
                }
            })
    }

    fn pixels(inputs: &[&str]) -> Result<Tensor, ModelError> {
        let mut values = Vec::with_capacity(inputs.len() * PIXELS);
        for text in inputs {
            let bytes = text.as_bytes();
            if bytes.len() != PIXELS * 2 {
                return Err(ModelError::NotSupported(format!(
                    "an image is {} hexadecimal digits, got {}",
                    PIXELS * 2,
                    bytes.len()
                )));
            }
            for pair in bytes.chunks_exact(2) {
                let digits = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|d| u8::from_str_radix(d, 16).ok());
                let byte = digits.ok_or_else(|| ModelError::NotSupported("not hexadecimal".into()))?;
                values.push(f32::from(byte) / 255.0);
            }
        }
        Ok(Tensor::from_slice(&values).reshape([inputs.len() as i64, PIXELS as i64]))
    }

    fn targets(examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        let classes = examples
            .iter()
            .map(|e| match &e.expected_output {
                Target::Label(l) => l
                    .parse::<i64>()
                    .ok()
                    .filter(|c| (0..CLASSES).contains(c))
                    .ok_or_else(|| ModelError::NotSupported(format!("label {l:?} is not a class 0..9"))),
                _ => Err(ModelError::NotSupported("a label target".into())),
            })
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(Tensor::from_slice(&classes))
    }
}

impl AgentModel for PixelMlp {
    fn kind(&self) -> ModelKind {
        ModelKind::Custom
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Label
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn prepare(&mut self, _examples: &[TrainingExample]) -> Result<(), ModelError> {
        Ok(())
    }
    fn loss(&self, examples: &[&TrainingExample], _: Gradients) -> Result<Tensor, ModelError> {
        let texts: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let logits = self.forward(&Self::pixels(&texts)?);
        Ok(logits.cross_entropy_for_logits(&Self::targets(examples)?))
    }
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        let probs = tch::no_grad(|| Self::pixels(inputs).map(|x| self.forward(&x).softmax(-1, Kind::Float)))?;
        let rows = Vec::<Vec<f32>>::try_from(&probs).map_err(ModelError::Torch)?;
        Ok(rows
            .into_iter()
            .map(|p| {
                let (best, confidence) = p
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                ModelOutput {
                    output: Target::Label(best.to_string()),
                    confidence: f64::from(confidence),
                    distribution: p.iter().map(|&v| f64::from(v)).collect(),
                }
            })
            .collect())
    }
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        let mut vs = VarStore::new(Device::Cpu);
        let layers = layers(&vs);
        vs.copy(&self.vs)?;
        Ok(Box::new(PixelMlp {
            vs,
            layers,
            learning_rate: self.learning_rate,
        }))
    }
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adaptive(self.learning_rate, 10)
    }
    fn labels(&self) -> Vec<String> {
        (0..CLASSES).map(|c| c.to_string()).collect()
    }
}

/// An image as the model's input text.
pub fn hex(pixels: &[f32]) -> String {
    pixels
        .iter()
        .map(|&p| format!("{:02x}", (p * 255.0).round().clamp(0.0, 255.0) as u8))
        .collect()
}

/// Every image of `images` as input text, with its label.
pub fn texts(images: &Images) -> Vec<(String, String)> {
    let n = images.y.size()[0];
    let x = Vec::<Vec<f32>>::try_from(&images.x).unwrap();
    let y = Vec::<i64>::try_from(&images.y).unwrap();
    (0..n as usize).map(|i| (hex(&x[i]), y[i].to_string())).collect()
}

/// One configuration of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The adaptive optimiser's base rate.
    pub learning_rate: f64,
    /// EWC strength (0: off).
    pub lambda: f64,
    /// Replay memory per (agent, task) (0: off).
    pub replay_capacity: usize,
    /// EWC decay of the old Fisher at each consolidation.
    pub gamma: f64,
}

/// What a stream of the tasks measured: accuracy on every task's evaluation
/// images after each task (`matrix[after][task]`), updates and time.
#[derive(Debug)]
pub struct Outcome {
    /// Accuracy on task `j` after streaming task `i`.
    pub matrix: Vec<Vec<f64>>,
    /// Updates kept.
    pub accepted: u64,
    /// Updates rolled back.
    pub rolled_back: u64,
    /// Wall-clock time of the whole stream (not the evaluations).
    pub seconds: f64,
}

impl Outcome {
    /// Mean accuracy over the tasks after the last one.
    pub fn final_avg_acc(&self) -> f64 {
        let last = self.matrix.last().unwrap();
        last.iter().sum::<f64>() / last.len() as f64
    }

    /// Mean over the tasks before the last of (best accuracy on it after it
    /// was learned) − (accuracy at the end).
    pub fn avg_forgetting(&self) -> f64 {
        let n = self.matrix.len();
        if n < 2 {
            return 0.0;
        }
        let last = &self.matrix[n - 1];
        let total: f64 = (0..n - 1)
            .map(|j| (j..n - 1).map(|i| self.matrix[i][j]).fold(f64::MIN, f64::max) - last[j])
            .sum();
        total / (n - 1) as f64
    }
}

/// Streams each task's training images through a coordinator (default
/// configuration: updates of 50, held-out judging and rollback, replay and
/// EWC as `settings` say), waiting for each update, and measures every
/// task's `eval` images (the validation or the test split) after each task.
pub fn stream(tasks: &[Task], settings: Settings, test: bool, data_dir: &std::path::Path) -> Outcome {
    let c = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        check_interval_ms: 3_600_000,
        checkpoints_kept: 0,
        data_dir: data_dir.to_path_buf(),
        ewc: EwcConfig {
            enabled: settings.lambda > 0.0,
            lambda: settings.lambda,
            gamma: settings.gamma,
            ..EwcConfig::default()
        },
        replay: ReplayConfig {
            capacity: settings.replay_capacity,
            ..ReplayConfig::default()
        },
        store: onthefly::StoreConfig {
            enabled: false,
            ..Default::default()
        },
        ..Config::default()
    })
    .unwrap();
    c.register_model("eye", "fashion", Box::new(PixelMlp::new(7, settings.learning_rate)))
        .unwrap();
    let evals: Vec<Vec<(String, String)>> = tasks
        .iter()
        .map(|t| texts(if test { &t.test } else { &t.validation }))
        .collect();
    let accuracies = |c: &Coordinator| -> Vec<f64> {
        evals
            .iter()
            .map(|images| {
                let inputs: Vec<&str> = images.iter().map(|(x, _)| x.as_str()).collect();
                let predictions = c.predict_batch("eye", "fashion", &inputs).unwrap();
                let right = predictions
                    .iter()
                    .zip(images)
                    .filter(|(p, (_, y))| p.output == Target::Label(y.clone()))
                    .count();
                right as f64 / images.len() as f64
            })
            .collect()
    };
    let mut matrix = Vec::new();
    let mut spent = Duration::ZERO;
    for task in tasks {
        let started = Instant::now();
        for (x, y) in texts(&task.train) {
            c.add_training_example(NewExample::new("eye", "fashion", x, Target::Label(y)))
                .unwrap();
            assert!(c.wait_for_idle(Duration::from_secs(300)));
        }
        c.force_update_agent("eye").unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(300)));
        spent += started.elapsed();
        matrix.push(accuracies(&c));
    }
    let status = &c.get_training_status().agents["eye"];
    let outcome = Outcome {
        matrix,
        accepted: status.updates_accepted,
        rolled_back: status.updates_rolled_back,
        seconds: spent.as_secs_f64(),
    };
    c.shutdown();
    outcome
}
