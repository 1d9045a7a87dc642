#!/usr/bin/env bash
# Regenerates the lock files infra/install.sh installs from: exact versions with their hashes, resolved from
# the same indexes as the install (PyPI, the local mirrors under /opt, the wheels that lie on this machine's
# disk), pinned to what the venv that CI tested holds. Usage: infra/lock.sh   (then commit both files)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${PREF_VENV_BIN:-$HOME/.venvs/pref-restore/bin}"
FREEZE="$(mktemp)"
trap 'rm -f "$FREEZE"' EXIT
"$BIN/pip" freeze --exclude-editable 2>/dev/null | grep -v " @ " > "$FREEZE"
SOURCES=(--find-links /opt/wheels --index-strategy unsafe-best-match)
for index in /opt/pypi-more/simple /opt/pypi/simple; do
  [ -d "$index" ] && SOURCES+=(--extra-index-url "file://$index")
done
common=(pyproject.toml --generate-hashes --python-version 3.11 --python "$BIN/python" -c "$FREEZE" "${SOURCES[@]}"
  --no-header --annotation-style line)
"$BIN/uv" pip compile "${common[@]}" -o requirements.lock
"$BIN/uv" pip compile "${common[@]}" --extra test -o requirements-test.lock
# The constraints file is a temporary one: keep its name out of the annotations.
sed -i "s|-c $FREEZE, ||; s|, -c $FREEZE||; s|# via -c $FREEZE$|# via the tested venv|" requirements.lock requirements-test.lock
