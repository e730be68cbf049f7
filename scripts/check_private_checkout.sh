#!/usr/bin/env bash
# The throwaway PostgreSQL of the tests works from a checkout that other
# users cannot enter (a root home folder, any `mktemp -d`): copies the
# scripts into a mode-700 folder and starts a cluster from there, with a
# query through it. Run by `make test`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
private="$(mktemp -d)"
trap 'rm -rf "$private"' EXIT INT TERM
chmod 700 "$private"
mkdir -p "$private/checkout/target"
cp -r "$root/scripts" "$private/checkout/"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
export PSQL="$pg_bin/psql"
"$private/checkout/scripts/with_test_postgres.sh" sh -c \
  '"$PSQL" -X -q -t -A -c "SELECT '"'"'a cluster for a checkout in a mode-700 folder: '"'"' || current_database()" "$ONTHEFLY_TEST_DATABASE_URL"'
