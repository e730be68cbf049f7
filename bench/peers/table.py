"""Prints the side-by-side table of `bench/peers/run.sh` from the JSON files
it wrote (target/peers/*.json): for each comparison, each side's figures and
the peer's figure as a ratio of onthefly's. Standard library only; a file
that is missing (a part not run, a peer that did not install) is a dash, and
the tagger's tables (part 4) are left out when neither of its files is there.

Usage: python table.py [FOLDER]   (default target/peers)
"""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "target/peers")


def load(name):
    """The JSON of one side, or None when it is missing or empty (a failed run)."""
    path = folder / f"{name}.json"
    text = path.read_text().strip() if path.exists() else ""
    return json.loads(text) if text else None


def load_lines(name):
    """The JSON lines of a file of repeated runs (empty when it is missing)."""
    path = folder / f"{name}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def ratio(peer, ours):
    return "-" if peer is None or not ours else f"{peer / ours:.2f}x"


def table(title, header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def spread(runs, key):
    """mean ± standard deviation over the seeds' runs."""
    values = [r[key] for r in runs]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def ewc():
    # Times are the fastest seed's: on a shared machine the slower seeds
    # measure the neighbours. Accuracy and forgetting are mean ± sd over seeds.
    rows, fastest = [], {}
    for method in ["ewc", "online_ewc"]:
        ours = load(f"ewc-onthefly-{method}")
        sides = [("onthefly", ours)] + [
            (f"avalanche-lib ({fisher} Fisher)", load(f"ewc-avalanche-{fisher}-{method}"))
            for fisher in ["matched", "stock"]
        ]
        for name, r in sides:
            if r is None:
                rows.append([method, name] + ["-"] * 7)
                continue
            wall = min(run["wall_s"] for run in r["runs"])
            update = min(run["mean_update_s"] for run in r["runs"])
            fastest.setdefault(method, update)
            lam = f"{r['lambda']:g}" + (f" (ewc_lambda {r['ewc_lambda']:g})" if "ewc_lambda" in r else "")
            rows.append(
                [
                    method,
                    name,
                    lam,
                    spread(r["runs"], "final_avg_acc"),
                    spread(r["runs"], "avg_forgetting"),
                    f"{wall:.1f}",
                    f"{update:.2f}",
                    ratio(update, fastest[method]) if ours else "-",
                    str(len(r["runs"])),
                ]
            )
    table(
        "1. EWC on permuted Fashion-MNIST (accuracy: mean ± sd over seeds; times: the fastest seed's)",
        ["method", "library", "lambda", "final avg acc", "avg forgetting", "run s", "update s", "update vs ours", "seeds"],
        rows,
    )
    stock = load("ewc-avalanche-stock-ewc")
    if stock:
        print(
            f"  Avalanche's stock importances / the per-example Fisher after task 1: "
            f"{stock['stock_over_matched_fisher_after_task_1']:.3f}"
        )


def news_table(title, ours_name, names):
    ours = load(ours_name)
    rows = []
    for label, name in names:
        r = load(name)
        get = lambda k: None if r is None else r.get(k)  # noqa: E731
        base = ours or {}
        steps = get("gradient_steps_per_article") or get("gradient_steps_per_article_at_most")
        rows.append(
            [
                label,
                cell(get("prequential_accuracy"), ".3f"),
                cell(get("prequential_accuracy_from_1001"), ".3f"),
                cell(steps, ".2f"),
                cell(get("examples_per_s"), ",.0f"),
                ratio(get("prequential_accuracy"), base.get("prequential_accuracy")),
                ratio(get("examples_per_s"), base.get("examples_per_s")),
            ]
        )
    table(
        title,
        ["model", "prequential acc", "articles 1,001-", "steps/article", "articles/s", "acc vs ours", "speed vs ours"],
        rows,
    )


def news():
    vw_like = [
        ("vowpal wabbit, batches of 50, each batch shuffled", "news-vw-batch-50-shuffled"),
        ("vowpal wabbit, batches of 50, 2 passes", "news-vw-batch-50-passes-2"),
        ("vowpal wabbit, batches of 50, 50 replayed", "news-vw-batch-50-replay-50"),
        ("vowpal wabbit, batches of 50, 50 replayed, 2 passes", "news-vw-batch-50-replay-50-passes-2"),
        ("vowpal wabbit on onthefly's tokens, each article", "news-vw-tokens"),
        ("vowpal wabbit on onthefly's tokens, batches of 50", "news-vw-tokens-batch-50"),
    ]
    news_table(
        "2. news stream, 9 outlets, date order: predict, then learn (ratios against onthefly waiting for each "
        "update; articles 1-1,000 were where onthefly's defaults were chosen; steps: examples learned per "
        "article, onthefly's at most: rolled-back updates count)",
        "news-onthefly-wait",
        [
            ("onthefly, as fast as possible", "news-onthefly-fast"),
            ("onthefly, waiting for each update of 50", "news-onthefly-wait"),
            ("onthefly, waiting, nothing held out", "news-onthefly-wait-no-held-out"),
            ("onthefly, waiting, updates of 1", "news-onthefly-wait-1"),
            ("onthefly, waiting, updates of 1, nothing held out (none judged)", "news-onthefly-wait-1-no-held-out"),
            ("the previous article's outlet", "news-previous"),
            ("river MultinomialNB (uni+bigrams)", "news-river-nb"),
            ("river LogisticRegression OvR (TF-IDF)", "news-river-lr"),
            ("vowpal wabbit --oaa 9 --ngram 2, learns each article", "news-vw"),
            ("vowpal wabbit, learns each article and 1 replayed", "news-vw-replay-1"),
            ("vowpal wabbit, in batches of 10", "news-vw-batch-10"),
            ("vowpal wabbit, in batches of 50", "news-vw-batch-50"),
        ]
        + vw_like,
    )
    news_table(
        "2b. the same articles in a fixed-seed shuffle (no runs of one outlet)",
        "news-shuffled-onthefly-wait",
        [
            ("onthefly, waiting for each update of 50", "news-shuffled-onthefly-wait"),
            ("onthefly, waiting, updates of 1", "news-shuffled-onthefly-wait-1"),
            ("the previous article's outlet", "news-shuffled-previous"),
            ("river MultinomialNB (uni+bigrams)", "news-shuffled-river-nb"),
            ("vowpal wabbit, learns each article", "news-shuffled-vw"),
            ("vowpal wabbit, learns each article and 1 replayed", "news-shuffled-vw-replay-1"),
            ("vowpal wabbit, in batches of 50", "news-shuffled-vw-batch-50"),
            ("vowpal wabbit, batches of 50, 50 replayed, 2 passes", "news-shuffled-vw-batch-50-replay-50-passes-2"),
        ],
    )
    pairs = load_lines("news-pairs")
    if pairs:
        ratios = sorted(p["onthefly"]["examples_per_s"] / p["vw_batch_50"]["examples_per_s"] for p in pairs)
        median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1 : len(ratios) // 2 + 1]) / 2
        print(
            f"  updates of 50, articles/s of onthefly (waiting) over Vowpal Wabbit (batches of 50), "
            f"{len(ratios)} pairs run back to back: median {median:.2f}x, "
            f"range {ratios[0]:.2f}x to {ratios[-1]:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"
        )


def ingest():
    ours, original = load("ingest-onthefly"), load("ingest-original")
    rows = []
    for label, r in [("onthefly add_training_example + batched writer", ours), ("original: one INSERT per example (Python)", original)]:
        get = lambda k: None if r is None else r[k]  # noqa: E731
        rows.append(
            [
                label,
                cell(get("rows"), "d"),
                cell(get("rows_per_s"), ",.0f"),
                cell(get("latency_p50_us"), ",.1f"),
                cell(get("latency_p99_us"), ",.1f"),
                ratio(get("rows_per_s"), (ours or {}).get("rows_per_s")),
                ratio(get("latency_p50_us"), (ours or {}).get("latency_p50_us")),
            ]
        )
    table(
        "3. ingest into PostgreSQL, news articles",
        ["path", "rows", "rows/s", "p50 us", "p99 us", "rows/s vs ours", "p50 vs ours"],
        rows,
    )


def tagger(prefix="tagger", data="WNUT-16 tweets"):
    """Printed only when part 4 ran: it came later than the others, and
    folders of earlier runs have no tagger files. `prefix` names the files
    of one data set (`tagger`: WNUT-16, `tagger-conll`: CoNLL-2003)."""
    ours, peers = load(f"{prefix}-onthefly"), load(f"{prefix}-peers")
    if ours is None and peers is None:
        return
    systems = [("onthefly", ours)] + [
        (name, (peers or {}).get("systems", {}).get(name))
        for name in ["crf", "dictionary_cased", "dictionary_lower"]
    ]
    labels = {
        "onthefly": "onthefly tagger",
        "crf": "sklearn-crfsuite CRF (tutorial word features)",
        "dictionary_cased": "dictionary of training entities, case kept",
        "dictionary_lower": "dictionary of training entities, lower-cased",
    }
    rows = []
    for name, r in systems:
        get = lambda k: None if r is None else r[k]  # noqa: E731
        seconds = None if r is None else r.get("train_seconds", r.get("seconds"))
        rows.append(
            [
                labels[name],
                cell(get("f1"), ".3f"),
                cell(get("precision"), ".3f"),
                cell(get("recall"), ".3f"),
                ratio(get("f1"), (ours or {}).get("f1")),
                cell(seconds, ",.2f"),
            ]
        )
    about = peers or ours
    table(
        f"4. entity tagger, {data}, {about['split']} split ({about['eval_sentences']} sentences, "
        f"{about['train_sentences']} to train on): entity F1, exact span and type, micro-averaged",
        ["system", "F1", "precision", "recall", "F1 vs ours", "seconds"],
        rows,
    )
    print("  seconds: training for the peers; the whole run for onthefly")
    if ours:
        print(
            f"  onthefly: {ours['updates']} updates, {ours['rolled_back']} rolled back, "
            f"{ours['quarantined']} quarantined"
        )
    if ours and peers and any(ours[k] != peers[k] for k in ["split", "train_sentences", "eval_sentences"]):
        print(
            "  the sides differ in their data: onthefly "
            f"{ours['split']}, {ours['train_sentences']} / {ours['eval_sentences']} tweets; peers "
            f"{peers['split']}, {peers['train_sentences']} / {peers['eval_sentences']}"
        )
    present = [(name, r) for name, r in systems if r is not None]
    kinds = sorted({kind for _, r in present for kind in r["per_type"]})
    per_type = []
    for kind in kinds:
        support = next((r["per_type"][kind]["support"] for _, r in present if kind in r["per_type"]), None)
        per_type.append(
            [kind, cell(support, "d")]
            + [cell(r["per_type"].get(kind, {}).get("f1") if r else None, ".3f") for _, r in systems]
        )
    table(
        "   F1 per entity type (support: true entities of the type in the evaluation tweets)",
        ["type", "support"] + [name for name, _ in systems],
        per_type,
    )


def noisy():
    streams = [
        ("news-date", "news 1,001-3,823, date order"),
        ("news-shuffled", "news 1,001-3,823, shuffled"),
        ("vader-rest", "VADER movie/Amazon/NYT, shuffled"),
        ("validation-news-date", "validation: news 1-1,000, date order"),
        ("validation-news-shuffled", "validation: news 1-1,000, shuffled"),
        ("validation-vader-tweets", "validation: VADER tweets, shuffled"),
    ]
    learners = [
        ("onthefly, updates of 50", "onthefly"),
        ("vw, batches of 50", "vw-50"),
        ("vw, each text", "vw-1"),
        ("river naive Bayes, each text", "river-nb"),
    ]
    rows = []
    for stream, title in streams:
        for noise in ["0", "0.1", "0.2"]:
            runs = [load(f"noisy-{stream}-{noise}-{key}") for _, key in learners]
            if all(r is None for r in runs):
                continue
            rows.append(
                [title, f"{float(noise):.0%}"]
                + [
                    "-" if r is None else f"{r['prequential_accuracy']:.3f} / {r['unseen_accuracy']:.3f}"
                    for r in runs
                ]
            )
    if rows:
        table(
            "5. Wrong labels: prequential accuracy against the true labels / accuracy on the clean unseen last fifth",
            ["stream", "wrong"] + [name for name, _ in learners],
            rows,
        )


ewc()
news()
ingest()
tagger()
tagger("tagger-conll", "CoNLL-2003 news (training split in date order, test split a later month)")
noisy()
