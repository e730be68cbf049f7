#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: initdb under /tmp (where
# the server's user can reach it wherever the checkout lives), a
# free loopback port, a database `onthefly_test`, its URL exported as
# ONTHEFLY_TEST_DATABASE_URL. The cluster is stopped and removed when the
# command ends, also when it fails. Installs the server with apt-get if missing
# (see scripts/pg_cluster.sh).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cluster="$root/scripts/pg_cluster.sh"

dir="$("$cluster" newdir test)"
trap '"$cluster" destroy "$dir"' EXIT INT TERM

"$cluster" init "$dir"
port="$("$cluster" free-port)"
"$cluster" start "$dir" "$port"
"$cluster" createdb "$dir" "$port" onthefly_test

export ONTHEFLY_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/onthefly_test"
echo "[postgres] throwaway cluster on 127.0.0.1:$port ($("$cluster" version))" >&2
"$@"
