"""The queue, submit, path and concurrency suites once more on SQLite (the embedded default), in a pytest
subprocess: one process cannot switch databases. Skipped when this run is on SQLite already."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[3]
SUITES = [
    "tests/annotation_web/labeling/test_queue.py",
    "tests/annotation_web/labeling/test_submit.py",
    "tests/annotation_web/labeling/test_queue_paths.py",
    "tests/annotation_web/labeling/test_concurrency.py",
    "tests/annotation_web/labeling/test_expiry.py",
]


def test_the_queue_suites_pass_on_sqlite(tmp_path):
    if connection.vendor == "sqlite":
        pytest.skip("this run is on SQLite: the suites run here directly")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PREF_QUEUE_PATH"}}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env["PREF_VAR_DIR"] = str(tmp_path / "var")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *SUITES]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, tail
    # Only the one test that compares the two paths may skip: SQLite has one.
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("one path on this database" in line for line in skipped), tail
    assert "test_concurrency" not in "".join(skipped), tail
