#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a folder, for tests and benchmarks:
#   pg_cluster.sh newdir NAME      print a new empty folder for a cluster, where the server's user
#                                  can reach it (under /tmp, not the checkout: a checkout in a
#                                  folder nobody else may enter, such as root's home, would not do)
#   pg_cluster.sh init DIR         initdb into DIR/data (installs the server with apt-get if missing)
#   pg_cluster.sh start DIR PORT   start it on 127.0.0.1:PORT (socket in DIR), wait until it accepts
#   pg_cluster.sh stop DIR         stop it (fast: open connections are closed)
#   pg_cluster.sh destroy DIR      stop it at once and remove DIR
#   pg_cluster.sh free-port        print a free loopback port
# As root, the server runs as the `postgres` system user (initdb refuses root).
set -euo pipefail

find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin="$(find_pg_bin)"
ensure_server() {
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "[postgres] server binaries not found; installing with apt-get" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "[postgres] need root to install postgresql; install it and retry" >&2
      exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin="$(find_pg_bin)"
  fi
}

cmd="${1:-}"
case "$cmd" in
  newdir)
    mktemp -d "/tmp/onthefly-pg-${2:-cluster}.XXXXXX"
    ;;
  init)
    dir="$2"
    ensure_server
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    if ! as_pg test -w "$dir"; then
      echo "[postgres] the server's user cannot write $dir (a folder above it is closed to others); use: $0 newdir NAME" >&2
      exit 1
    fi
    as_pg "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
    ;;
  start)
    dir="$2" port="$3"
    as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    as_pg "$pg_bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
    ;;
  destroy)
    as_pg "$pg_bin/pg_ctl" -D "$2/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$2"
    ;;
  createdb)
    as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$3" -U postgres "$4"
    ;;
  version)
    ensure_server
    "$pg_bin/postgres" --version
    ;;
  free-port)
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    ;;
  *)
    echo "usage: $0 newdir NAME | init DIR | start DIR PORT | stop DIR | destroy DIR | createdb DIR PORT NAME | version | free-port" >&2
    exit 2
    ;;
esac
