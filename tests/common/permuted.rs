//! Permuted Fashion-MNIST: task 1 is the images in their own pixel order,
//! each later task applies one fixed random permutation of the 784 pixels.
//! An MLP (784-256-256-10) is trained on the tasks in sequence with plain
//! fine-tuning, EWC (one penalty per earlier task), online EWC (one decayed
//! penalty) and joint training, using the library's model-agnostic EWC over a
//! `VarStore` (`diagonal_fisher_with`, `EwcState`).

use std::io::Read;
use std::path::Path;

use onthefly::ewc::{diagonal_fisher_with, EwcState};
use onthefly::features::SplitMix64;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Images as rows of 784 floats in 0..1 and their labels.
pub struct Images {
    /// `[n, 784]` float.
    pub x: Tensor,
    /// `[n]` int64.
    pub y: Tensor,
}

fn read_gz(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fashion-mnist")
        .join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make data`", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).unwrap();
    bytes
}

/// Loads `train` or `t10k` from the IDX files, at most `limit` images.
pub fn load(split: &str, limit: usize) -> Images {
    let images = read_gz(&format!("{split}-images-idx3-ubyte.gz"));
    let labels = read_gz(&format!("{split}-labels-idx1-ubyte.gz"));
    assert_eq!(
        u32::from_be_bytes(images[0..4].try_into().unwrap()),
        2051,
        "IDX image magic"
    );
    assert_eq!(
        u32::from_be_bytes(labels[0..4].try_into().unwrap()),
        2049,
        "IDX label magic"
    );
    let n = (u32::from_be_bytes(images[4..8].try_into().unwrap()) as usize).min(limit);
    let pixels: Vec<f32> = images[16..16 + n * 784].iter().map(|&p| f32::from(p) / 255.0).collect();
    let ys: Vec<i64> = labels[8..8 + n].iter().map(|&l| i64::from(l)).collect();
    Images {
        x: Tensor::from_slice(&pixels).reshape([n as i64, 784]),
        y: Tensor::from_slice(&ys),
    }
}

/// The pixel order of task `t` (identity for task 0).
pub fn permutation(t: usize) -> Tensor {
    let mut order: Vec<i64> = (0..784).collect();
    if t > 0 {
        SplitMix64::new(1000 + t as u64).shuffle(&mut order);
    }
    Tensor::from_slice(&order)
}

/// One task's data: the same images with the task's pixel order.
pub struct Task {
    /// Training images.
    pub train: Images,
    /// Validation images (for choosing λ).
    pub validation: Images,
    /// Test images.
    pub test: Images,
}

/// Builds `tasks` permuted tasks from `train_n` training, `val_n` validation
/// (taken after them in the training file) and `test_n` test images.
pub fn tasks(tasks: usize, train_n: usize, val_n: usize, test_n: usize) -> Vec<Task> {
    let train = load("train", train_n + val_n);
    let test = load("t10k", test_n);
    (0..tasks)
        .map(|t| {
            let p = permutation(t);
            let permute = |x: &Tensor| x.index_select(1, &p);
            Task {
                train: Images {
                    x: permute(&train.x.narrow(0, 0, train_n as i64)),
                    y: train.y.narrow(0, 0, train_n as i64),
                },
                validation: Images {
                    x: permute(&train.x.narrow(0, train_n as i64, val_n as i64)),
                    y: train.y.narrow(0, train_n as i64, val_n as i64),
                },
                test: Images {
                    x: permute(&test.x),
                    y: test.y.shallow_clone(),
                },
            }
        })
        .collect()
}

/// Settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Epochs per task.
    pub epochs: usize,
    /// Penalty strength.
    pub lambda: f64,
    /// Online decay.
    pub gamma: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Minibatch size.
    pub batch: i64,
    /// Examples per task for its Fisher.
    pub fisher_samples: usize,
}

fn mlp(vs: &nn::VarStore) -> impl Module {
    let root = vs.root();
    nn::seq()
        .add(nn::linear(&root / "l1", 784, 256, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "l2", 256, 256, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "l3", 256, 10, Default::default()))
}

fn accuracy(net: &impl Module, data: &Images) -> f64 {
    tch::no_grad(|| {
        net.forward(&data.x)
            .argmax(-1, false)
            .eq_tensor(&data.y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    })
}

fn train(net: &impl Module, vs: &nn::VarStore, data: &Images, s: &Settings, penalties: &[(&EwcState, f64)], seed: u64) {
    let mut opt = nn::Adam::default().build(vs, s.learning_rate).unwrap();
    let n = data.x.size()[0];
    for epoch in 0..s.epochs {
        let mut order: Vec<i64> = (0..n).collect();
        SplitMix64::new(seed * 31 + epoch as u64).shuffle(&mut order);
        let order = Tensor::from_slice(&order);
        for start in (0..n).step_by(s.batch as usize) {
            let idx = order.narrow(0, start, s.batch.min(n - start));
            let logits = net.forward(&data.x.index_select(0, &idx));
            let mut loss = logits.cross_entropy_for_logits(&data.y.index_select(0, &idx));
            for (state, lambda) in penalties {
                if let Some(p) = state.penalty(vs, *lambda).unwrap() {
                    loss += p;
                }
            }
            opt.backward_step(&loss);
        }
    }
}

fn fisher(
    net: &impl Module,
    vs: &nn::VarStore,
    data: &Images,
    samples: usize,
) -> std::collections::BTreeMap<String, Tensor> {
    diagonal_fisher_with(vs, samples, |i| {
        let x = data.x.narrow(0, i as i64, 1);
        let y = data.y.narrow(0, i as i64, 1);
        Ok(net.forward(&x).cross_entropy_for_logits(&y))
    })
    .unwrap()
}

/// The accuracies of a run: `matrix[stage][task]`, on validation or test data.
pub fn run(method: &str, tasks: &[Task], s: &Settings, on_test: bool) -> Vec<Vec<f64>> {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let measure = |net: &dyn Fn(&Images) -> f64| {
        tasks
            .iter()
            .map(|t| net(if on_test { &t.test } else { &t.validation }))
            .collect::<Vec<f64>>()
    };
    if method == "joint" {
        let x = Tensor::cat(&tasks.iter().map(|t| t.train.x.shallow_clone()).collect::<Vec<_>>(), 0);
        let y = Tensor::cat(&tasks.iter().map(|t| t.train.y.shallow_clone()).collect::<Vec<_>>(), 0);
        train(&net, &vs, &Images { x, y }, s, &[], 1);
        return vec![measure(&|d| accuracy(&net, d))];
    }
    let mut terms: Vec<EwcState> = Vec::new();
    let mut online = EwcState::new();
    let mut matrix = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let penalties: Vec<(&EwcState, f64)> = match method {
            "ewc" => terms.iter().map(|t| (t, s.lambda)).collect(),
            "online_ewc" => vec![(&online, s.lambda)],
            _ => Vec::new(),
        };
        train(&net, &vs, &task.train, s, &penalties, i as u64 + 2);
        if method != "finetune" {
            let f = fisher(&net, &vs, &task.train, s.fisher_samples);
            if method == "ewc" {
                let mut term = EwcState::new();
                term.consolidate(&vs, f, 1.0).unwrap();
                terms.push(term);
            } else {
                online.consolidate(&vs, f, s.gamma).unwrap();
            }
        }
        matrix.push(measure(&|d| accuracy(&net, d)));
    }
    matrix
}

/// Mean accuracy over tasks after the last stage.
pub fn final_avg_acc(matrix: &[Vec<f64>]) -> f64 {
    let last = matrix.last().unwrap();
    last.iter().sum::<f64>() / last.len() as f64
}

/// Mean over all tasks but the last of (best earlier accuracy − final accuracy).
pub fn avg_forgetting(matrix: &[Vec<f64>]) -> f64 {
    let stages = matrix.len();
    if stages < 2 {
        return 0.0;
    }
    let last = &matrix[stages - 1];
    (0..last.len() - 1)
        .map(|d| (d..stages - 1).map(|s| matrix[s][d]).fold(f64::MIN, f64::max) - last[d])
        .sum::<f64>()
        / (last.len() - 1) as f64
}
