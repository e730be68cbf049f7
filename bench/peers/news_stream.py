"""Streaming text classifiers from PyPI on the news stream, for
`bench/peers/run.sh`: River (multinomial naive Bayes over word uni- and
bigram counts, and one-vs-rest logistic regression over their TF-IDF) and
Vowpal Wabbit (`--oaa 9` over hashed words and bigrams).

What it measures: prequential accuracy (each article is predicted by the
model as it stands, then learned: predict, then learn, one article at a time)
over the articles in date order, and articles per second over the whole
stream (prediction plus learning, one thread). A prediction before anything
was learned counts as wrong, as on onthefly's side.

The stream is the JSON-lines file that `cargo run --release --example
peer_news -- --export FILE` writes: the same 3,823 articles (title, subtitle
and body), the same order and labels (the outlet) that onthefly reads.
Library defaults throughout; nothing was tuned on this data.

With `--batch N` the model predicts N articles before it learns them (the
cadence of onthefly's updates of N); the default, 1, learns each article at
once.

A stream written by `peer_noisy --export` (the wrong-label comparison) has
two more fields per line: `label`, the label handed in (wrong for a share
of the texts), and `test`, true for the clean unseen part at its end. Then
each text is learned with `label` and scored against `outlet` (the true
class), and the final model is scored on the `test` texts
(`unseen_accuracy`), which are never learned.

Like for like with onthefly, which trains each update's batch mixed with as
many class-balanced replayed examples, shuffled: `--shuffle-batch` learns a
batch in a fixed-seed shuffled order, `--passes N` learns it N times,
`--replay N` mixes N examples drawn class-balanced from a memory of 1,000
earlier ones into each batch (onthefly's default replay), and
`--onthefly-tokens` gives Vowpal Wabbit the words onthefly hashes (the
`tokens` field `peer_news --export` writes) instead of its own split.
`gradient_steps_per_article` counts the examples learned over the articles.
`--peer previous` is a baseline: each article is predicted to have the
outlet of the article before it (the stream's runs of one outlet).

`prequential_accuracy_from_1001` scores only the articles after the first
1,000 (where onthefly's settings were chosen), in a stream learned from
the start.

Usage: python news_stream.py STREAM_JSONL --peer river-nb|river-lr|vw|previous [--batch N] [--passes N]
       [--shuffle-batch] [--replay N] [--onthefly-tokens] [--out FILE]
"""

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path


def river_model(kind):
    from river import compose, feature_extraction, linear_model, multiclass, naive_bayes

    if kind == "river-nb":
        return compose.Pipeline(
            feature_extraction.BagOfWords(lowercase=True, ngram_range=(1, 2)),
            naive_bayes.MultinomialNB(alpha=1.0),
        )
    return compose.Pipeline(
        feature_extraction.TFIDF(lowercase=True, ngram_range=(1, 2)),
        multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
    )


class RiverPeer:
    def __init__(self, kind):
        import river

        self.version = river.__version__
        self.model = river_model(kind)
        self.description = str(self.model).replace("\n", " ")

    def predict(self, text):
        return self.model.predict_one(text)  # None before the first example

    def learn(self, text, label):
        self.model.learn_one(text, label)


class VowpalPeer:
    ARGS = "--ngram 2 -b 18 --quiet"  # 2^18 hashed features, as onthefly's buckets

    def __init__(self, labels):
        import vowpalwabbit

        self.version = vowpalwabbit.__version__
        args = f"--oaa {len(labels)} {self.ARGS}"
        self.workspace = vowpalwabbit.Workspace(args)
        self.description = f"vw {args}"
        self.index = {label: i + 1 for i, label in enumerate(labels)}  # vw's classes are 1..k
        self.labels = {i: label for label, i in self.index.items()}
        self.learned = 0

    @staticmethod
    def features(text):
        # vw's text format reserves '|' and ':'; words are whitespace-separated.
        if isinstance(text, list):  # onthefly's tokens
            text = " ".join(text)
        return " ".join(re.sub(r"[|:]", " ", text.lower()).split())

    def predict(self, text):
        features = self.features(text)
        return self.labels.get(self.workspace.predict(f"| {features}")) if self.learned else None

    def learn(self, text, label):
        self.workspace.learn(f"{self.index[label]} | {self.features(text)}")
        self.learned += 1


class PreviousPeer:
    """Predicts the outlet handed in with the previous article."""

    version = "-"
    description = "the previous article's outlet"

    def __init__(self):
        self.last = None

    def predict(self, text):
        return self.last

    def learn(self, text, label):
        self.last = label


class ReplayMemory:
    """Up to `capacity` earlier examples, class-balanced: a full memory
    drops a random example of its largest class (onthefly's replay)."""

    def __init__(self, capacity, rng):
        self.capacity, self.rng, self.by_class = capacity, rng, {}

    def add(self, example):
        label = example[1]
        self.by_class.setdefault(label, []).append(example)
        if sum(len(v) for v in self.by_class.values()) > self.capacity:
            largest = max(self.by_class.values(), key=len)
            largest.pop(self.rng.randrange(len(largest)))

    def sample(self, n):
        """n examples, the classes taking turns, each class's drawn at random."""
        classes = [v for v in self.by_class.values() if v]
        if not classes:
            return []
        self.rng.shuffle(classes)
        return [self.rng.choice(classes[i % len(classes)]) for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stream")
    parser.add_argument("--peer", choices=["river-nb", "river-lr", "vw", "previous"], required=True)
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="learn in batches of N: predict the N articles, then learn them (onthefly's updates of N)",
    )
    parser.add_argument("--passes", type=int, default=1, help="learn each batch N times")
    parser.add_argument("--shuffle-batch", action="store_true", help="learn a batch in a shuffled order")
    parser.add_argument("--replay", type=int, default=0, help="replayed examples mixed into each batch")
    parser.add_argument("--onthefly-tokens", action="store_true", help="learn onthefly's tokens, not the text")
    parser.add_argument("--out")
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.stream).read_text().splitlines() if line.strip()]
    articles = [a for a in rows if not a.get("test", False)]
    unseen = [a for a in rows if a.get("test", False)]
    labels = sorted({a["outlet"] for a in rows})
    if args.peer == "vw":
        peer = VowpalPeer(labels)
    elif args.peer == "previous":
        peer = PreviousPeer()
    else:
        peer = RiverPeer(args.peer)
    text_of = (lambda a: a["tokens"]) if args.onthefly_tokens else (lambda a: a["text"])

    rng = random.Random(1)
    memory = ReplayMemory(1000, rng)
    correct = correct_from_1001 = learned = 0
    started = time.perf_counter()
    for start in range(0, len(articles), args.batch):
        batch = articles[start : start + args.batch]
        for i, a in enumerate(batch):
            right = peer.predict(text_of(a)) == a["outlet"]
            correct += right
            correct_from_1001 += right and start + i >= 1000
        fresh = [(text_of(a), a.get("label", a["outlet"])) for a in batch]
        for _ in range(args.passes):
            examples = fresh + memory.sample(args.replay)
            if args.shuffle_batch or args.replay:
                rng.shuffle(examples)
            for text, label in examples:
                peer.learn(text, label)
            learned += len(examples)
        for example in fresh:
            memory.add(example)
    seconds = time.perf_counter() - started

    result = {
        "peer": args.peer,
        "batch": args.batch,
        "version": peer.version,
        "model": peer.description,
        "articles": len(articles),
        "prequential_accuracy": correct / len(articles),
        "prequential_accuracy_from_1001": correct_from_1001 / max(len(articles) - 1000, 1),
        "passes": args.passes,
        "shuffle_batch": args.shuffle_batch,
        "replay": args.replay,
        "onthefly_tokens": args.onthefly_tokens,
        "gradient_steps_per_article": learned / len(articles),
        "stream_s": seconds,
        "examples_per_s": len(articles) / seconds,
    }
    if unseen:
        result["wrong_labels"] = sum(a["label"] != a["outlet"] for a in articles)
        result["unseen"] = len(unseen)
        result["unseen_accuracy"] = sum(peer.predict(text_of(a)) == a["outlet"] for a in unseen) / len(unseen)
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    print(
        f"{args.peer}: prequential accuracy {result['prequential_accuracy']:.3f}, "
        f"{result['examples_per_s']:.0f} articles/s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
