#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: initdb under target/, a
# free loopback port, a database `onthefly_test`, its URL exported as
# ONTHEFLY_TEST_DATABASE_URL. The cluster is stopped and removed when the
# command ends, also when it fails. Installs the server with apt-get if missing.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
pg_bin="$(find_pg_bin)"
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "[postgres] server binaries not found; installing with apt-get" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "[postgres] need root to install postgresql; install it and retry" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin="$(find_pg_bin)"
fi

# As root, the cluster runs as the `postgres` system user (initdb refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$root/target"
dir="$(mktemp -d "$root/target/pg-test.XXXXXX")"
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

cleanup() {
  as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

as_pg "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres onthefly_test

export ONTHEFLY_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/onthefly_test"
echo "[postgres] throwaway cluster on 127.0.0.1:$port ($("$pg_bin/postgres" --version))" >&2
"$@"
