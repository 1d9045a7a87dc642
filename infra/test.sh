#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite on the production-like services:
# PostgreSQL (psycopg 3), a Redis broker with a real Celery worker (started by the tests), a real S3 server
# (SeaweedFS, started and stopped here) and Debian's Chromium for the browser tests.
# Extra arguments go to pytest, e.g. `infra/test.sh tests/restorer -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL_LOG="$(mktemp -t pref-install-XXXXXX.log)"
bash infra/install.sh --test > "$INSTALL_LOG" 2>&1 || { cat "$INSTALL_LOG"; exit 1; }
BIN="$(tail -1 "$INSTALL_LOG")"
echo "installed into $BIN"
export PREF_VENV_BIN="$BIN" PATH="$BIN:$PATH"

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
  --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log

WORK_DIR="$(mktemp -d -t pref-tests-XXXXXX)"
export PREF_S3_ACCESS_KEY=pref-key PREF_S3_SECRET_KEY=pref-secret
bash infra/s3_server.sh stop "$WORK_DIR/s3" >/dev/null 2>&1 || true
bash infra/s3_server.sh start "$WORK_DIR/s3"
cleanup() { bash infra/s3_server.sh stop "$WORK_DIR/s3"; rm -rf "$WORK_DIR"; }
trap cleanup EXIT

export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pref_restore}"
export PREF_TEST_S3_ENDPOINT="http://127.0.0.1:8333"
export PREF_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
export CELERY_BROKER_URL="$PREF_TEST_REDIS_URL"
export PREF_VAR_DIR="$WORK_DIR/var"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$PREF_VAR_DIR"

"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy"
"$BIN/lint-imports"
"$BIN/python" -m pytest -p no:cacheprovider "$@"
