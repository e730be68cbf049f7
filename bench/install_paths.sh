#!/usr/bin/env bash
# The Python install paths of docs/python.md, each timed from a fresh
# virtual environment (no pip cache; a fresh cargo target folder where the
# path compiles):
#   1. the wheel (`make wheel`) where torch==2.13.0 is already installed
#   2. the wheel in an empty environment (pip downloads torch from PyPI)
#   3. the source with --no-build-isolation where torch is installed
#   4. the source with pip's defaults (torch downloaded into the isolated
#      build environment and again into the environment)
# Usage: bash bench/install_paths.sh [1 2 3 4]   (from the checkout, after
# `make venv wheel`; paths 2 and 4 download about 4.7 GB each).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WHEEL="$(ls "$ROOT"/dist/onthefly_training-*.whl | head -n1)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

with_torch() {  # a venv holding the project's torch (hard links, as `make test` does)
    python3 -m venv --without-pip "$1"
    cp -a -l "$ROOT"/.venv/lib/python3*/site-packages/. "$(echo "$1"/lib/python3*/site-packages)/"
}

timed() {  # name, command...
    local name="$1"; shift
    local start end
    start=$(date +%s.%N)
    (cd "$WORK" && "$@" >/dev/null)
    end=$(date +%s.%N)
    printf '%s: %.1f s\n' "$name" "$(echo "$end - $start" | bc)"
}

check() {  # the installed package imports and pip sees every requirement met
    (cd "$WORK" && env -u LD_LIBRARY_PATH "$1/bin/python" -c "import onthefly; onthefly.library_version()")
    "$1/bin/python" -m pip check >/dev/null
    printf '  environment: %s\n' "$(du -sh "$1" | cut -f1)"
}

for path in "${@:-1 2 3 4}"; do
    for p in $path; do
        venv="$WORK/venv-$p"
        case "$p" in
        1) with_torch "$venv"
           timed "1. wheel, torch installed" "$venv/bin/python" -m pip install --no-cache-dir --quiet "$WHEEL" ;;
        2) python3 -m venv "$venv"
           timed "2. wheel, empty environment" "$venv/bin/python" -m pip install --no-cache-dir --quiet "$WHEEL" ;;
        3) with_torch "$venv"
           "$venv/bin/python" -m pip install --quiet "setuptools>=77" "setuptools-rust>=1.9" wheel
           timed "3. source, --no-build-isolation, torch installed" env CARGO_TARGET_DIR="$WORK/target-$p" \
               "$venv/bin/python" -m pip install --no-cache-dir --quiet --no-build-isolation "$ROOT/python" ;;
        4) python3 -m venv "$venv"
           timed "4. source, pip's defaults, empty environment" env CARGO_TARGET_DIR="$WORK/target-$p" \
               "$venv/bin/python" -m pip install --no-cache-dir --quiet "$ROOT/python" ;;
        esac
        check "$venv"
        rm -rf "$venv" "$WORK/target-$p"
    done
done
