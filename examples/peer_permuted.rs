//! onthefly's side of the EWC comparison in `bench/peers/run.sh`: EWC or
//! online EWC on the permuted Fashion-MNIST tasks of
//! `examples/permuted_fashion.rs` (the same images, permutations and MLP),
//! through the library's `diagonal_fisher_with` and `EwcState`, for several
//! seeds (initial weights and shuffling), timing each update.
//!
//! `permuted_fashion` fixes one seed and reports accuracy only; this runner
//! exists for the side-by-side run, where one seed's noise (several points of
//! accuracy on this benchmark) would swamp the difference between libraries.
//!
//! `cargo run --release --example peer_permuted -- --method ewc --lambda 1000`
//! Options: `--method ewc|online_ewc`, `--lambda X` (the penalty is
//! λ/2·Σ F(θ−θ*)²), `--gamma X` (online decay, default 0.9), `--seeds 1,2,3`,
//! `--tasks N` (5), `--train N` images per task (10000), `--epochs N` (2),
//! `--export-tasks FILE` (writes the settings and every task's pixel
//! permutation as JSON, for the peer to build the same tasks from the same
//! files). The last line printed is JSON.

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // Only the tasks are used here; the runs are below.
#[path = "../tests/common/permuted.rs"]
mod permuted;

use std::collections::BTreeMap;
use std::time::Instant;

use onthefly::ewc::{diagonal_fisher_with, EwcState};
use onthefly::features::SplitMix64;
use permuted::{avg_forgetting, final_avg_acc, Images, Task};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 128;
const LEARNING_RATE: f64 = 1e-3;
const FISHER_SAMPLES: usize = 500;
const TEST_IMAGES: usize = 10_000;

fn main() {
    let method = args::value::<String>("--method").unwrap_or_else(|| "ewc".into());
    assert!(
        method == "ewc" || method == "online_ewc",
        "--method must be ewc or online_ewc, got {method}"
    );
    let lambda = args::value::<f64>("--lambda").unwrap_or(1e3);
    let gamma = args::value::<f64>("--gamma").unwrap_or(0.9);
    let seeds: Vec<u64> =
        args::numbers("--seeds").map_or_else(|| vec![1, 2, 3], |s| s.iter().map(|&x| x as u64).collect());
    let n_tasks = args::value("--tasks").unwrap_or(5);
    let train_n = args::value("--train").unwrap_or(10_000);
    let epochs = args::value("--epochs").unwrap_or(2);

    let tasks = permuted::tasks(n_tasks, train_n, 0, TEST_IMAGES);
    if let Some(path) = args::value::<String>("--export-tasks") {
        export_tasks(&path, n_tasks, train_n, epochs, gamma);
    }
    println!(
        "{method} λ {lambda} (γ {gamma}): {n_tasks} tasks of {train_n} images, {epochs} epoch(s), seeds {seeds:?}"
    );
    let runs: Vec<serde_json::Value> = seeds
        .iter()
        .map(|&seed| {
            let run = Run::new(seed, &method, lambda, gamma, epochs);
            let result = run.all(&tasks);
            println!(
                "  seed {seed}: final avg acc {:.4}, avg forgetting {:.4}, {:.1} s",
                result["final_avg_acc"], result["avg_forgetting"], result["wall_s"]
            );
            result
        })
        .collect();
    let mean = |key: &str| runs.iter().map(|r| r[key].as_f64().unwrap()).sum::<f64>() / runs.len() as f64;
    let report = serde_json::json!({
        "peer": "onthefly",
        "method": method,
        "lambda": lambda,
        "gamma": if method == "online_ewc" { Some(gamma) } else { None },
        "threads": tch::get_num_threads(),
        "final_avg_acc": mean("final_avg_acc"),
        "avg_forgetting": mean("avg_forgetting"),
        "wall_s": mean("wall_s"),
        "update_s": mean("mean_update_s"),
        "runs": runs,
    });
    println!("{report}");
}

/// One seed's sequence of tasks.
struct Run {
    seed: u64,
    ewc: bool,
    lambda: f64,
    gamma: f64,
    epochs: usize,
    vs: nn::VarStore,
    net: nn::Sequential,
}

impl Run {
    fn new(seed: u64, method: &str, lambda: f64, gamma: f64, epochs: usize) -> Run {
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let net = nn::seq()
            .add(nn::linear(&root / "l1", 784, 256, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&root / "l2", 256, 256, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&root / "l3", 256, 10, Default::default()));
        Run {
            seed,
            ewc: method == "ewc",
            lambda,
            gamma,
            epochs,
            vs,
            net,
        }
    }

    /// Learns the tasks in order; the accuracy matrix, its summary and times.
    fn all(&self, tasks: &[Task]) -> serde_json::Value {
        // EWC keeps one state per learned task; online EWC one decayed state.
        let mut states: Vec<EwcState> = Vec::new();
        let (mut matrix, mut update_s) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for (t, task) in tasks.iter().enumerate() {
            let t0 = Instant::now();
            self.learn(&task.train, &states, t as u64);
            let fisher = diagonal_fisher_with(&self.vs, FISHER_SAMPLES, |i| {
                let x = task.train.x.narrow(0, i as i64, 1);
                Ok(self
                    .net
                    .forward(&x)
                    .cross_entropy_for_logits(&task.train.y.narrow(0, i as i64, 1)))
            })
            .unwrap();
            if self.ewc || states.is_empty() {
                states.push(EwcState::new());
            }
            let gamma = if self.ewc { 1.0 } else { self.gamma };
            states.last_mut().unwrap().consolidate(&self.vs, fisher, gamma).unwrap();
            update_s.push(t0.elapsed().as_secs_f64());
            matrix.push(tasks.iter().map(|t| self.accuracy(&t.test)).collect::<Vec<f64>>());
        }
        serde_json::json!({
            "seed": self.seed,
            "final_avg_acc": final_avg_acc(&matrix),
            "avg_forgetting": avg_forgetting(&matrix),
            "matrix": matrix,
            "wall_s": started.elapsed().as_secs_f64(),
            "update_s": update_s,
            "mean_update_s": update_s.iter().sum::<f64>() / update_s.len() as f64,
        })
    }

    /// `epochs` passes of Adam (a fresh optimizer per task) over shuffled
    /// minibatches, the penalty of every state added to the loss.
    fn learn(&self, data: &Images, states: &[EwcState], task: u64) {
        let mut adam = nn::Adam::default().build(&self.vs, LEARNING_RATE).unwrap();
        let n = data.x.size()[0];
        let mut rng = SplitMix64::new(self.seed.wrapping_mul(1_000_003).wrapping_add(task));
        for _ in 0..self.epochs {
            let mut order: Vec<i64> = (0..n).collect();
            rng.shuffle(&mut order);
            for chunk in order.chunks(BATCH as usize) {
                let idx = Tensor::from_slice(chunk);
                let logits = self.net.forward(&data.x.index_select(0, &idx));
                let penalties = states.iter().filter_map(|s| s.penalty(&self.vs, self.lambda).unwrap());
                let loss = penalties.fold(
                    logits.cross_entropy_for_logits(&data.y.index_select(0, &idx)),
                    |l, p| l + p,
                );
                adam.backward_step(&loss);
            }
        }
    }

    fn accuracy(&self, data: &Images) -> f64 {
        tch::no_grad(|| {
            let right = self.net.forward(&data.x).argmax(-1, false).eq_tensor(&data.y);
            right.to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
        })
    }
}

/// Writes what a peer needs to rebuild the tasks and the training.
fn export_tasks(path: &str, n_tasks: usize, train: usize, epochs: usize, gamma: f64) {
    let permutations: Vec<Vec<i64>> = (0..n_tasks)
        .map(|t| Vec::<i64>::try_from(&permuted::permutation(t)).expect("a 1-d int64 tensor"))
        .collect();
    let mut spec = BTreeMap::new();
    spec.insert("data", serde_json::json!("data/fashion-mnist"));
    spec.insert("tasks", serde_json::json!(n_tasks));
    spec.insert("train", serde_json::json!(train));
    spec.insert("test", serde_json::json!(TEST_IMAGES));
    spec.insert("epochs", serde_json::json!(epochs));
    spec.insert("learning_rate", serde_json::json!(LEARNING_RATE));
    spec.insert("batch", serde_json::json!(BATCH));
    spec.insert("fisher_samples", serde_json::json!(FISHER_SAMPLES));
    spec.insert("gamma", serde_json::json!(gamma));
    spec.insert(
        "notes",
        serde_json::json!({
            "images": "the first `train` of train-images, the first `test` of t10k-images, bytes / 255",
            "permutations": "task t's image x becomes x[permutations[t]]",
            "model": "784-256-256-10 MLP, ReLU; weights He-uniform (bound sqrt(6 / fan_in)), biases uniform (bound 1 / sqrt(fan_in)), as tch's nn::linear",
            "optimizer": "Adam (0.9, 0.999, eps 1e-8), a fresh state per task",
            "fisher": "mean over the task's first `fisher_samples` training images of the squared gradient of each image's cross-entropy",
            "penalty": "lambda/2 * sum F (theta - theta*)^2",
        }),
    );
    spec.insert("permutations", serde_json::json!(permutations));
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).expect("the export folder can be created");
    }
    std::fs::write(path, serde_json::to_string(&spec).unwrap()).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    println!("tasks written to {path}");
}
