"""Entity taggers from PyPI and dictionaries on the WNUT-16 tweets, for
`bench/peers/run.sh`: the peers of the analyst's entity tagger
(examples/peer_tagger.rs), on the same tweets, split and metric.

What it measures: entity F1, precision and recall on the evaluation tweets,
micro-averaged over entities, an entity counting when its span and type are
both right (src/eval.rs's `entity_spans` and `entity_f1`: BIO read
leniently, an I- that does not continue an open entity of its type starts
one; F1 is 1 when neither side has an entity), the same per entity type with
its support (true entities of the type), and each system's training time
(one thread). The systems:

- `crf`: sklearn-crfsuite's linear-chain CRF (L-BFGS, c1 = c2 = 0.1,
  100 iterations, all possible transitions) over the word features of the
  sklearn-crfsuite tutorial, without its part-of-speech ones (the tweets have
  none): the word lower-cased, its last three and two characters, whether it
  is upper case, title case, digits; the previous and next word lower-cased,
  title case, upper case; beginning and end of the tweet. Trained on the
  whole training set at once; nothing was tuned on this data.
- `dictionary_cased`: every entity of the training set, as its token sequence
  with case kept, with its most frequent type (a tie goes to the larger type
  name), matched greedily, longest first, left to right.
- `dictionary_lower`: the same lower-cased (tests/common/ner.rs's
  `Dictionary`).

The tweets are data/ner/ner.txt (`make data`), read as tests/common/ner.rs
reads them: token TAB tag, both trimmed; a line without a tab or with a blank
token ends a tweet; a tweet is kept when its tokens joined by spaces split
back into as many (Rust's whitespace). Kept tweet i (from 0, in file order)
is in the test set when i % 5 == 0, in the validation set when i % 5 == 1;
`--split test` trains on all others, `--split validation` on those with
i % 5 not 0 or 1, in file order, the first N with `--limit-train N`.

The last line printed is one JSON object: {"split", "train_sentences",
"eval_sentences", "systems": {name: {"f1", "precision", "recall",
"per_type": {type: {"f1", "precision", "recall", "support"}},
"train_seconds"}}}. A precision (recall) with nothing predicted (nothing to
find) is 0, and 1 when there was neither.

With `--conll data/conll2003` the same systems run on the CoNLL-2003
English news instead (examples/peer_tagger.rs's `--data conll`): trained on
the training split in date order (the first N sentences with
`--limit-train N`), evaluated on the test split, a later month.

Usage: python wnut_tagger.py [--split test|validation] [--limit-train N]
           [--systems crf,dictionary_cased,dictionary_lower] [--data FILE]
           [--conll FOLDER]
(needs sklearn-crfsuite==0.5.0 for `crf`; the dictionaries need nothing)
"""

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

SYSTEMS = ["crf", "dictionary_cased", "dictionary_lower"]
DATA = Path(__file__).resolve().parents[2] / "data/ner/ner.txt"

# Rust's char::is_whitespace (Unicode White_Space), what `str::trim` and
# `split_whitespace` use; Python's str.isspace also counts U+001C..U+001F.
RUST_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
RUST_SPLIT = re.compile(f"[{re.escape(RUST_WHITESPACE)}]+")


def rust_split_whitespace(text):
    return [part for part in RUST_SPLIT.split(text) if part]


def load_sentences(path):
    """The kept tweets as (tokens, tags), as tests/common/ner.rs's `load_sentences`."""
    # newline="": no newline translation; Rust's `lines` splits at \n only
    # (and drops a \r before it, as the trim_end_matches below does).
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    sentences, tokens, tags = [], [], []
    for line in text.split("\n") + [""]:
        token, tab, tag = line.rstrip("\r").partition("\t")
        if tab and token.strip(RUST_WHITESPACE):
            tokens.append(token.strip(RUST_WHITESPACE))
            tags.append(tag.strip(RUST_WHITESPACE))
        elif tokens:
            if len(rust_split_whitespace(" ".join(tokens))) == len(tokens):
                sentences.append((tokens, tags))
            tokens, tags = [], []
    return sentences


def load_conll(path):
    """A CoNLL-2003 split as (tokens, tags), as tests/common/ner.rs's `load_conll`:
    `token POS chunk tag` lines, sentences between other lines, -DOCSTART- skipped."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    sentences, tokens, tags = [], [], []
    for line in text.split("\n") + [""]:
        fields = rust_split_whitespace(line)
        if len(fields) == 4 and fields[0] != "-DOCSTART-":
            tokens.append(fields[0])
            tags.append(fields[3])
        elif tokens:
            if len(rust_split_whitespace(" ".join(tokens))) == len(tokens):
                sentences.append((tokens, tags))
            tokens, tags = [], []
    return sentences


def split_sentences(sentences, split, limit_train):
    """(training, evaluation) tweets of a split, in file order."""
    evaluated, held = {"test": (0, {0}), "validation": (1, {0, 1})}[split]
    evaluation = [s for i, s in enumerate(sentences) if i % 5 == evaluated]
    train = [s for i, s in enumerate(sentences) if i % 5 not in held]
    if limit_train is not None:
        train = train[:limit_train]
    return train, evaluation


def entity_spans(tags):
    """src/eval.rs's `entity_spans`: (first token, end token, type), BIO read leniently."""
    spans, open_ = [], None
    for i, tag in enumerate(tags):
        prefix, dash, kind = tag.partition("-")
        if not dash:
            prefix, kind = tag, ""
        if prefix == "I" and open_ is not None and open_[1] == kind:
            continue
        if open_ is not None:
            spans.append((open_[0], i, open_[1]))
            open_ = None
        if prefix in ("B", "I") and kind:
            open_ = (i, kind)
    if open_ is not None:
        spans.append((open_[0], len(tags), open_[1]))
    return spans


def scores(right, predicted, true):
    """F1 as src/eval.rs's `entity_f1` (1 when neither side has an entity), precision, recall."""
    if predicted + true == 0:
        return 1.0, 1.0, 1.0
    return (
        2 * right / (predicted + true),
        right / predicted if predicted else 0.0,
        right / true if true else 0.0,
    )


def evaluate(truths, predictions):
    """Micro-averaged entity F1, precision, recall, and the same per type."""
    counts = defaultdict(lambda: [0, 0, 0])  # type -> [right, predicted, true]
    for truth, prediction in zip(truths, predictions):
        truth, prediction = entity_spans(truth), entity_spans(prediction)
        for span in prediction:
            counts[span[2]][1] += 1
            # `truth.contains`: a span listed twice would count twice, as in Rust.
            counts[span[2]][0] += span in truth
        for span in truth:
            counts[span[2]][2] += 1
    total = [sum(c[k] for c in counts.values()) for k in range(3)]
    f1, precision, recall = scores(*total)
    per_type = {}
    for kind in sorted(counts):
        kf1, kp, kr = scores(*counts[kind])
        per_type[kind] = {"f1": kf1, "precision": kp, "recall": kr, "support": counts[kind][2]}
    return {"f1": f1, "precision": precision, "recall": recall, "per_type": per_type}


class Dictionary:
    """Every entity of the training tweets (token sequence -> its most frequent
    type), matched greedily, longest first: tests/common/ner.rs's `Dictionary`,
    with or without lower-casing."""

    def __init__(self, train, lower):
        self.lower = lower
        counts = defaultdict(Counter)
        for tokens, tags in train:
            for start, end, kind in entity_spans(tags):
                counts[self.key(tokens[start:end])][kind] += 1
        self.longest = max((len(k) for k in counts), default=1)
        # max by (count, type name), as Rust's max_by_key over (n, kind).
        self.entries = {k: max(kinds.items(), key=lambda kv: (kv[1], kv[0]))[0] for k, kinds in counts.items()}

    def key(self, tokens):
        return tuple(t.lower() for t in tokens) if self.lower else tuple(tokens)

    def tag(self, tokens):
        keys = self.key(tokens)
        tags = ["O"] * len(tokens)
        i = 0
        while i < len(tokens):
            for n in range(min(self.longest, len(tokens) - i), 0, -1):
                kind = self.entries.get(keys[i : i + n])
                if kind is not None:
                    tags[i] = f"B-{kind}"
                    tags[i + 1 : i + n] = [f"I-{kind}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        return tags


def word_features(tokens, i):
    """The sklearn-crfsuite tutorial's `word2features`, without part of speech."""
    word = tokens[i]
    features = {
        "bias": 1.0,
        "word.lower()": word.lower(),
        "word[-3:]": word[-3:],
        "word[-2:]": word[-2:],
        "word.isupper()": word.isupper(),
        "word.istitle()": word.istitle(),
        "word.isdigit()": word.isdigit(),
    }
    if i > 0:
        before = tokens[i - 1]
        features.update(
            {
                "-1:word.lower()": before.lower(),
                "-1:word.istitle()": before.istitle(),
                "-1:word.isupper()": before.isupper(),
            }
        )
    else:
        features["BOS"] = True
    if i < len(tokens) - 1:
        after = tokens[i + 1]
        features.update(
            {
                "+1:word.lower()": after.lower(),
                "+1:word.istitle()": after.istitle(),
                "+1:word.isupper()": after.isupper(),
            }
        )
    else:
        features["EOS"] = True
    return features


def sentence_features(tokens):
    return [word_features(tokens, i) for i in range(len(tokens))]


class Crf:
    def __init__(self, train):
        import sklearn_crfsuite

        self.model = sklearn_crfsuite.CRF(
            algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100, all_possible_transitions=True
        )
        self.model.fit([sentence_features(tokens) for tokens, _ in train], [tags for _, tags in train])

    def tag(self, tokens):
        return list(self.model.predict_single(sentence_features(tokens)))


def build(name, train):
    if name == "crf":
        return Crf(train)
    return Dictionary(train, lower=name == "dictionary_lower")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--limit-train", type=int, help="train on the first N training tweets only")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--data", default=str(DATA), help="the tweets (default data/ner/ner.txt)")
    parser.add_argument(
        "--conll",
        help="a CoNLL-2003 folder (data/conll2003) instead of the tweets: trains on train.txt in order, "
        "evaluates on test.txt (valid.txt with --split validation)",
    )
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems must name some of {', '.join(SYSTEMS)}, got {args.systems!r}")
    if args.limit_train is not None and args.limit_train < 0:
        parser.error(f"--limit-train must be at least 0, got {args.limit_train}")

    if args.conll:
        train = load_conll(Path(args.conll) / "train.txt")[: args.limit_train]
        evaluation = load_conll(Path(args.conll) / ("valid.txt" if args.split == "validation" else "test.txt"))
        sentences = train + evaluation
    else:
        sentences = load_sentences(args.data)
        train, evaluation = split_sentences(sentences, args.split, args.limit_train)
    print(
        f"{len(sentences)} tweets: {len(train)} to train on, {len(evaluation)} to evaluate ({args.split})",
        file=sys.stderr,
    )
    truths = [tags for _, tags in evaluation]
    results = {}
    for name in systems:
        started = time.perf_counter()
        system = build(name, train)
        seconds = time.perf_counter() - started
        predictions = [system.tag(tokens) for tokens, _ in evaluation]
        results[name] = {**evaluate(truths, predictions), "train_seconds": seconds}
        r = results[name]
        print(
            f"{name}: F1 {r['f1']:.4f}, precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
            f"trained in {seconds:.2f} s",
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "split": args.split,
                "train_sentences": len(train),
                "eval_sentences": len(evaluation),
                "systems": results,
            }
        )
    )


if __name__ == "__main__":
    main()
