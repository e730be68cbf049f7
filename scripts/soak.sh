#!/usr/bin/env bash
# A soak run (not part of `make test`): a library instance under load for
# SOAK_SECONDS (600) against a throwaway PostgreSQL that is restarted every
# SOAK_PG_EVERY (120) seconds, the instance itself killed (SIGKILL) and
# restarted every SOAK_KILL_EVERY (180) seconds. At the end every id it
# acknowledged as durable (added before a flush that returned) must be in
# the database, no text twice, and no run may have crashed or panicked.
# Prints the resident memory of each run of the instance at its start and
# before it was killed. Output under target/soak/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${SOAK_SECONDS:-600}"
pg_every="${SOAK_PG_EVERY:-120}"
kill_every="${SOAK_KILL_EVERY:-180}"

make --quiet venv data
cargo build --release --quiet --example soak
export LD_LIBRARY_PATH="$root/.venv/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
worker="$root/target/release/examples/soak"

out="$root/target/soak"
rm -rf "$out" && mkdir -p "$out"
cluster="$root/scripts/pg_cluster.sh"
dir="$("$cluster" newdir soak)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  "$cluster" destroy "$dir"
}
trap cleanup EXIT INT TERM
"$cluster" init "$dir"
port="$("$cluster" free-port)"
"$cluster" start "$dir" "$port"
"$cluster" createdb "$dir" "$port" onthefly_soak
export DATABASE_URL="postgresql://postgres@127.0.0.1:$port/onthefly_soak"

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
run=0
start_worker() {
  run=$((run + 1))
  "$worker" work "$out/data" "$out/acknowledged.txt" >"$out/run$run.out" 2>"$out/run$run.err" &
  pid=$!
  # Resident memory once it works (model built, buffers filling).
  for _ in $(seq 1 100); do grep -q WORKING "$out/run$run.out" 2>/dev/null && break; sleep 0.1; done
  sleep 5
  echo "run $run: pid $pid, resident $(($(rss "$pid") / 1024)) MiB after 5 s"
}

started=$(date +%s)
next_pg=$((started + pg_every))
next_kill=$((started + kill_every))
start_worker
while [ $(($(date +%s) - started)) -lt "$seconds" ]; do
  sleep 1
  now=$(date +%s)
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run $run ended by itself (a crash):"; tail -n 20 "$out/run$run.err"; exit 1
  fi
  if [ "$now" -ge "$next_pg" ]; then
    echo "$(($now - started)) s: PostgreSQL restarted"
    "$cluster" stop "$dir" && "$cluster" start "$dir" "$port"
    next_pg=$((now + pg_every))
  fi
  if [ "$now" -ge "$next_kill" ]; then
    echo "$(($now - started)) s: run $run killed (SIGKILL) at resident $(($(rss "$pid") / 1024)) MiB"
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    start_worker
    next_kill=$(($(date +%s) + kill_every))
  fi
done
echo "end: run $run stopped (SIGKILL) at resident $(($(rss "$pid") / 1024)) MiB"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
pid=""
if grep -l "panicked" "$out"/run*.err; then echo "a run panicked"; exit 1; fi
# A last start replays what the killed run spooled; then the check.
"$worker" work "$out/data" "$out/final-ack.txt" >"$out/final.out" 2>"$out/final.err" &
pid=$!
sleep 15
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
pid=""
"$worker" check "$out/acknowledged.txt"
