#!/usr/bin/env bash
# Installs the platform into a virtual environment kept outside the checkout, so that every clone on this
# machine reuses it. Usage: infra/install.sh [--test]   (prints the venv's bin folder on its last line)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PREF_VENV:-$HOME/.venvs/pref-restore}"
PYTHON="${PREF_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
# torch and torchvision first: the pinned pair lies on this machine's disk (lpips needs torchvision).
"$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null || "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
# Exactly what CI tested: every package at its locked version, each file checked against its hash
# (infra/lock.sh writes the lock files from pyproject.toml). The project itself then without dependencies.
LOCK="requirements.lock"
[ "${1:-}" = "--test" ] && LOCK="requirements-test.lock"
"$VENV/bin/pip" install -q --require-hashes -r "$LOCK"
"$VENV/bin/pip" install -q --no-deps -e .
# The synthetic faces' DCGAN; its declared dependencies (wandb, ...) are not needed to generate faces.
"$VENV/bin/python" -c "import gan_face_generate" 2>/dev/null || "$VENV/bin/pip" install -q --no-deps "gan-face-generate==1.1.1"
echo "$VENV/bin"
