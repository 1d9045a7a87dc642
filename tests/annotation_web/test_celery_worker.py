"""A real Celery worker on a real broker runs the jobs: Redis (production-like) and the filesystem broker
of the embedded default, with SQLite, as a fresh machine runs the platform."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.models import FaceInput
from tests.annotation_web.conftest import face_png

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("PREF_TEST_REDIS_URL")


def zip_of_faces(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for seed in range(count):
            archive.writestr(f"face-{seed}.png", face_png(100 + seed))
    return buffer.getvalue()


def start_worker(env: dict[str, str], log: Path, *, purge: bool = False) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "annotation_web",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
    ]
    # --purge: messages that earlier tests queued for jobs of their own (long gone) are dropped first.
    command += ["--purge"] if purge else []
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_for(predicate, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.mark.celery
@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (PREF_TEST_REDIS_URL, set by infra/test.sh)")
@pytest.mark.django_db(transaction=True)
def test_worker_on_redis_runs_an_import_job(make_project, engineer, tmp_path, local_storage):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process shares the test database: PostgreSQL only")
    if not django_settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("infra/test.sh sets CELERY_BROKER_URL to the test Redis for the whole session")
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "PREF_STORAGE": "local",
        "PREF_STORAGE_ROOT": str(local_storage),
        "PREF_VAR_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, purge=True)
    try:
        wait_for(lambda: b" ready." in log.read_bytes(), timeout=60, what="the worker to start", log=log)
        project = make_project(pairs=0)
        job = import_job_create(
            project=project, user=engineer, upload_name="faces.zip", upload=io.BytesIO(zip_of_faces(3))
        )
        wait_for(
            lambda: Job.objects.get(pk=job.pk).state in (JobState.SUCCEEDED, JobState.FAILED),
            timeout=90,
            what="the import job",
            log=log,
        )
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, job.error
        assert job.outputs["imported"] == 3 and job.progress_done == 3 and job.started_at and job.finished_at
        assert FaceInput.objects.filter(project=project).count() == 3
    finally:
        stop(worker)


def test_embedded_defaults_sqlite_and_filesystem_broker(tmp_path):
    """No server at all: SQLite, local files, a worker on the filesystem broker."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PREF_STORAGE"}
    }
    env["PREF_VAR_DIR"] = str(tmp_path / "var")
    env["DJANGO_SETTINGS_MODULE"] = "annotation_web.settings"
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True)
    (tmp_path / "faces.zip").write_bytes(zip_of_faces(2))
    enqueue = f"""
from annotation_web.accounts.services import user_create
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.pairs import project_create
p = project_create(name='E', slug='embedded')
u = user_create(username='eng', password='pw-123456', role='engineer')
job = import_job_create(project=p, user=u, upload_name='faces.zip', upload=open({str(tmp_path / "faces.zip")!r}, 'rb'))
print(job.pk)
"""
    subprocess.run([*manage, "shell", "-c", enqueue], cwd=REPO, env=env, check=True, capture_output=True)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    state: dict = {}

    def done() -> bool:
        with sqlite3.connect(tmp_path / "var" / "db.sqlite3", timeout=30) as db:
            state["row"] = db.execute("select state, outputs, error from jobs_job").fetchone()
        return state["row"][0] in ("succeeded", "failed")

    try:
        wait_for(done, timeout=120, what="the job on the filesystem broker", log=log)
    finally:
        stop(worker)
    job_state, outputs, error = state["row"]
    assert job_state == "succeeded", error
    assert json.loads(outputs)["imported"] == 2
    assert (tmp_path / "var" / "db.sqlite3").exists()
    assert list((tmp_path / "var" / "storage" / "inputs" / "embedded").rglob("lq.png"))
