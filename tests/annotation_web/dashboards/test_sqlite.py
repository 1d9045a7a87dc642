"""The dashboards' selector and page suites once more on SQLite (the embedded default has no
`percentile_cont`: the median is the aggregate `dashboards` registers on each SQLite connection), in a pytest
subprocess, since one process cannot switch databases. Skipped when this run is on SQLite already."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[3]
SUITES = [
    "tests/annotation_web/dashboards/test_dataset.py",
    "tests/annotation_web/dashboards/test_people.py",
    "tests/annotation_web/dashboards/test_models.py",
    "tests/annotation_web/dashboards/test_pages.py",
    "tests/annotation_web/dashboards/test_jobs.py",
]


def test_the_dashboard_suites_pass_on_sqlite(tmp_path):
    if connection.vendor == "sqlite":
        pytest.skip("this run is on SQLite: the suites run here directly")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env["PREF_VAR_DIR"] = str(tmp_path / "var")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *SUITES]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, tail
