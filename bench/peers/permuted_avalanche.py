"""Avalanche's EWC on the permuted Fashion-MNIST tasks that onthefly's
`examples/permuted_fashion.rs` trains on, for `bench/peers/run.sh`.

What it measures: the test accuracy of every task after each task is learned
(the matrix), from it the final average accuracy and the average forgetting
(computed as the Rust side does: for each task but the last, its best
accuracy at an earlier stage minus its final accuracy), the wall time of the
whole run and of each task's update (training plus the Fisher).

What is the same as the Rust side: the images (the first `train` of the
training file, the first `test` of the test file, bytes / 255), the task
count and every pixel permutation (read from the JSON that
`permuted_fashion --export-tasks` writes), the 784-256-256-10 MLP and its
initialisation (He-uniform weights, biases uniform within 1/sqrt(fan_in), as
tch's `nn::linear`), Adam with a fresh state per task, the learning rate,
epochs and batch size, and the penalty:

- ours: loss + lambda/2 * sum F (theta - theta*)^2;
- Avalanche's EWCPlugin: loss + ewc_lambda * sum F (theta - theta*)^2,
  so ewc_lambda = lambda / 2. Mode `separate` is our `ewc` (one term per
  earlier task), mode `online` with `decay_factor` gamma is our `online_ewc`
  (F <- gamma F + F_new, theta* <- theta).

The Fisher estimate is the one difference left, chosen by `--fisher`:
`matched` replaces Avalanche's `compute_importances` by ours (the mean over
the first `fisher_samples` images of the squared gradient of each image's own
loss); `stock` keeps Avalanche's (the mean over all minibatches of the task of
the squared gradient of the minibatch's mean loss), which is smaller by
roughly the batch size when gradients are mostly noise, so the same
ewc_lambda penalises less. The script prints the ratio of the two estimates on
the first task.

Usage: python permuted_avalanche.py TASKS_JSON --method ewc|online_ewc
       --lambda L [--fisher matched|stock] [--seeds 1,2,3] [--out FILE]
(TASKS_JSON from `cargo run --release --example peer_permuted --
--export-tasks FILE`). Prints per seed to stderr, the JSON summary (means
over seeds, and every run) to stdout.
"""

import argparse
import gzip
import json
import struct
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # qpsolvers and friends warn at import

import torch  # noqa: E402
from torch import nn  # noqa: E402

from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets  # noqa: E402
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset  # noqa: E402
from avalanche.evaluation.metrics import accuracy_metrics  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, EWCPlugin  # noqa: E402
from avalanche.training.templates import SupervisedTemplate  # noqa: E402
from avalanche.training.utils import zerolike_params_dict  # noqa: E402


def read_idx(path, magic):
    """The payload of one gzipped IDX file, after checking its magic number."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if struct.unpack(">I", raw[:4])[0] != magic:
        raise ValueError(f"{path}: not an IDX file of magic {magic}")
    return raw


def load(data_dir, split, limit):
    """(x [n, 784] float in 0..1, y [n] int64) of at most `limit` images."""
    images = read_idx(Path(data_dir) / f"{split}-images-idx3-ubyte.gz", 2051)
    labels = read_idx(Path(data_dir) / f"{split}-labels-idx1-ubyte.gz", 2049)
    n = min(struct.unpack(">I", images[4:8])[0], limit)
    x = torch.frombuffer(bytearray(images[16 : 16 + n * 784]), dtype=torch.uint8)
    y = torch.frombuffer(bytearray(labels[8 : 8 + n]), dtype=torch.uint8)
    return x.reshape(n, 784).float() / 255.0, y.long()


def mlp():
    """784-256-256-10 with tch's `nn::linear` initialisation."""
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            bound = 1.0 / layer.in_features**0.5
            nn.init.uniform_(layer.bias, -bound, bound)
    return net


class MatchedFisherEWC(EWCPlugin):
    """Avalanche's EWC plugin with onthefly's Fisher estimate: per-example
    squared gradients of the first `samples` training images, averaged."""

    def __init__(self, *args, samples, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples = samples

    def compute_importances(self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0):
        return per_example_fisher(model, criterion, dataset, self.samples)


def per_example_fisher(model, criterion, dataset, samples):
    model.eval()
    importances = zerolike_params_dict(model)
    n = min(samples, len(dataset))
    for i in range(n):
        x, y = dataset[i][0], dataset[i][1]
        model.zero_grad()
        criterion(model(x.unsqueeze(0)), torch.as_tensor([y])).backward()
        for (_, p), (_, imp) in zip(model.named_parameters(), importances.items()):
            if p.grad is not None:
                imp.data += p.grad.detach().pow(2)
    for _, imp in importances.items():
        imp.data /= float(n)
    model.zero_grad()
    model.train()
    return importances


def final_avg_acc(matrix):
    return sum(matrix[-1]) / len(matrix[-1])


def avg_forgetting(matrix):
    stages = len(matrix)
    if stages < 2:
        return 0.0
    last = matrix[-1]
    drops = [max(matrix[s][d] for s in range(d, stages - 1)) - last[d] for d in range(len(last) - 1)]
    return sum(drops) / len(drops)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks_json")
    parser.add_argument("--method", choices=["ewc", "online_ewc"], required=True)
    parser.add_argument("--lambda", dest="lam", type=float, required=True, help="onthefly's lambda")
    parser.add_argument("--fisher", choices=["matched", "stock"], default="matched")
    parser.add_argument("--seeds", default="1,2,3", help="torch seeds (initial weights, shuffling), one run each")
    parser.add_argument("--out")
    args = parser.parse_args()

    spec = json.loads(Path(args.tasks_json).read_text())
    train_x, train_y = load(spec["data"], "train", spec["train"])
    test_x, test_y = load(spec["data"], "t10k", spec["test"])
    train_sets, test_sets = [], []
    for order in spec["permutations"]:
        p = torch.tensor(order, dtype=torch.long)
        train_sets.append(_make_taskaware_tensor_classification_dataset(train_x[:, p], train_y, task_labels=0, targets=train_y))
        test_sets.append(_make_taskaware_tensor_classification_dataset(test_x[:, p], test_y, task_labels=0, targets=test_y))
    benchmark = benchmark_from_datasets(train=train_sets, test=test_sets)

    mode = "separate" if args.method == "ewc" else "online"
    decay = spec["gamma"] if mode == "online" else None
    ewc_lambda = args.lam / 2.0  # ours: lambda/2 * sum F d^2; Avalanche: ewc_lambda * sum F d^2
    print(f"avalanche {args.method} ({mode}, ewc_lambda {ewc_lambda}, {args.fisher} Fisher)", file=sys.stderr)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        run = one_run(benchmark, spec, seed, args, mode, decay, ewc_lambda, measure_ratio=not runs)
        print(
            f"  seed {seed}: final avg acc {run['final_avg_acc']:.4f}, "
            f"avg forgetting {run['avg_forgetting']:.4f}, {run['wall_s']:.1f} s",
            file=sys.stderr,
        )
        runs.append(run)
    mean = lambda key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    result = {
        "peer": "avalanche-lib",
        "version": __import__("avalanche").__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "method": args.method,
        "fisher": args.fisher,
        "lambda": args.lam,
        "ewc_lambda": ewc_lambda,
        "mode": mode,
        "decay_factor": decay,
        "final_avg_acc": mean("final_avg_acc"),
        "avg_forgetting": mean("avg_forgetting"),
        "wall_s": mean("wall_s"),
        "update_s": mean("mean_update_s"),
        "stock_over_matched_fisher_after_task_1": runs[0].pop("stock_over_matched_fisher"),
        "runs": runs,
    }
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


def one_run(benchmark, spec, seed, args, mode, decay, ewc_lambda, measure_ratio):
    """One seed's sequence of experiences: train, then evaluate every task."""
    torch.manual_seed(seed)
    model = mlp()
    if args.fisher == "matched":
        plugin = MatchedFisherEWC(ewc_lambda, mode=mode, decay_factor=decay, samples=spec["fisher_samples"])
    else:
        plugin = EWCPlugin(ewc_lambda, mode=mode, decay_factor=decay)
    strategy = SupervisedTemplate(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=spec["learning_rate"]),
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=spec["batch"],
        train_epochs=spec["epochs"],
        eval_mb_size=1000,
        device="cpu",
        plugins=[plugin],
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    matrix, update_s, ratio = [], [], None
    started = time.perf_counter()
    aside = 0.0
    for stage, experience in enumerate(benchmark.train_stream):
        t0 = time.perf_counter()
        # A fresh Adam state per task, as the Rust side builds a new optimizer
        # per task (Avalanche keeps the state across experiences by default).
        strategy.train(experience, reset_optimizer_state=True)  # epochs, then the Fisher
        update_s.append(time.perf_counter() - t0)
        if stage == 0 and measure_ratio:
            t1 = time.perf_counter()
            ratio = stock_vs_matched(model, experience.dataset, spec)
            aside = time.perf_counter() - t1
        metrics = strategy.eval(benchmark.test_stream)
        tasks = range(len(benchmark.test_stream))
        matrix.append([metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Exp{t:03d}"] for t in tasks])
    run = {
        "seed": seed,
        "final_avg_acc": final_avg_acc(matrix),
        "avg_forgetting": avg_forgetting(matrix),
        "matrix": matrix,
        "wall_s": time.perf_counter() - started - aside,
        "update_s": update_s,
        "mean_update_s": sum(update_s) / len(update_s),
    }
    if measure_ratio:
        run["stock_over_matched_fisher"] = ratio
    return run


def stock_vs_matched(model, dataset, spec):
    """sum of Avalanche's stock importances / sum of the matched ones, on the
    model after task 1 (not counted in the wall time)."""
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    stock = EWCPlugin(1.0).compute_importances(model, criterion, optimizer, dataset, "cpu", spec["batch"])
    matched = per_example_fisher(model, criterion, dataset, spec["fisher_samples"])
    total = lambda imps: sum(float(v.data.sum()) for _, v in imps.items())  # noqa: E731
    return total(stock) / total(matched)


if __name__ == "__main__":
    main()
