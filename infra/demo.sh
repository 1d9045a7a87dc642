#!/usr/bin/env bash
# The platform on embedded defaults (SQLite, local files, a Celery worker on a filesystem broker; no server
# to install): installs, migrates, builds the demo project and users, starts the worker and beat (supervised by
# manage.py run_workers) and serves http://127.0.0.1:8000 until Ctrl-C (PREF_DEMO_PORT for another port).
# The loop runs itself in the background: the first restorer trains as a job, simulated annotators judge at a
# person's pace (PREF_DEMO_SIMULATE=0: none) and the loop's policy runs rounds (reward model, RL, evaluation,
# promotion, new pairs) while you judge too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(bash infra/install.sh | tail -1)"
export PREF_VAR_DIR="${PREF_VAR_DIR:-$PWD/var}" HF_HUB_OFFLINE=1
# The demo is a local debug server with published passwords: it says so explicitly (the settings fail closed:
# no debug and no demo users unless asked for).
export DJANGO_DEBUG=1 PREF_DEMO=1
mkdir -p "$PREF_VAR_DIR"
"$BIN/python" manage.py migrate --noinput -v0
"$BIN/python" manage.py demo_setup --faces "${PREF_DEMO_FACES:-40}"
"$BIN/python" manage.py loop_enable --project demo --demo
PORT="${PREF_DEMO_PORT:-8000}"
# Every process below dies with this script: by the trap on exit, Ctrl-C or kill, and through the kernel
# (setpriv's parent-death signal) even when the script itself is SIGKILLed.
DIE=()
command -v setpriv >/dev/null 2>&1 && DIE=(setpriv --pdeathsig KILL --)
# One worker on both queues and one separate beat, supervised: a worker that dies is restarted (the log says
# why), and neither outlives the supervisor. The log is appended to, never truncated.
"${DIE[@]}" "$BIN/python" manage.py run_workers --queues default,train --beat \
  --log "$PREF_VAR_DIR/worker.log" >> "$PREF_VAR_DIR/worker.log" 2>&1 &
PIDS="$!" WATCH="$!"
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
if [ "${PREF_DEMO_SIMULATE:-1}" != 0 ]; then
  # Three simulated people, ~${PREF_DEMO_PACE:-5} s a judgment each, from when the server answers until Ctrl-C.
  (until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 1; kill -0 $$ || exit 0; done
   exec "${DIE[@]}" "$BIN/python" -u manage.py simulate_annotators --project demo --count 3 --forever \
     --pace "${PREF_DEMO_PACE:-5}" --base-url "http://127.0.0.1:$PORT") >> "$PREF_VAR_DIR/annotators.log" 2>&1 &
  PIDS="$PIDS $!"
  echo "Simulated annotators: $PREF_VAR_DIR/annotators.log"
fi
echo "Worker log (the loop's decisions too): $PREF_VAR_DIR/worker.log (pids: $PREF_VAR_DIR/workers.json)"
echo "Open http://127.0.0.1:$PORT  (annotator1 / demo-password; engineer / demo-password; API docs at /api/docs/)"
echo "Watch the loop: http://127.0.0.1:$PORT/api/projects/demo/loop/events/ (as engineer)"
"${DIE[@]}" "$BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload &
PIDS="$PIDS $!" WATCH="$WATCH $!"
# Until Ctrl-C, or until the server or the worker supervisor stops (it restarts a dead worker or beat itself):
# then everything stops, with the status of the one that stopped.
set +e
wait -n -p DONE $WATCH
STATUS=$?
echo "demo: process $DONE stopped (exit status $STATUS); stopping the others" >&2
exit "$STATUS"
