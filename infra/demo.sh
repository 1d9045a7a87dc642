#!/usr/bin/env bash
# The platform on embedded defaults (SQLite, local files, a Celery worker on a filesystem broker; no server
# to install): installs, migrates, builds the demo project and users, starts the worker and beat, and serves
# http://127.0.0.1:8000 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(bash infra/install.sh | tail -1)"
export PREF_VAR_DIR="${PREF_VAR_DIR:-$PWD/var}" HF_HUB_OFFLINE=1
mkdir -p "$PREF_VAR_DIR"
"$BIN/python" manage.py migrate --noinput -v0
"$BIN/python" manage.py demo_setup --faces "${PREF_DEMO_FACES:-40}"
"$BIN/celery" -A annotation_web worker --beat --pool=solo --loglevel=INFO \
  --schedule="$PREF_VAR_DIR/celerybeat-schedule" > "$PREF_VAR_DIR/worker.log" 2>&1 &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null || true' EXIT
echo "Worker log: $PREF_VAR_DIR/worker.log"
echo "Open http://127.0.0.1:8000  (annotator1 / demo-password; engineer / demo-password; API docs at /api/docs/)"
"$BIN/python" manage.py runserver 127.0.0.1:8000 --noreload
