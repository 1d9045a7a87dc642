"""A worker killed with SIGKILL in the middle of a job costs nothing: real Celery worker processes on Redis and
PostgreSQL (and on the embedded filesystem broker with SQLite), an RL job and a reward job killed mid-run,
a new worker started; the job resumes from its checkpoint and ends as an uninterrupted run of the same job
would, with exactly one model version. Also: a job whose workers keep dying fails with the reason; routing
sends each kind to its queue's workers only."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from django.conf import settings as django_settings
from django.db import connection
from safetensors.torch import load

from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import job_run
from annotation_web.labeling import imports
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.ingest import SourceFile
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from annotation_web.storage import get_storage
from annotation_web.training.services import generation_job_create, reward_job_create, rl_job_create
from tests.annotation_web.conftest import face_png
from tests.annotation_web.test_celery_worker import zip_of_faces

REPO = Path(__file__).resolve().parents[3]
REDIS_URL = os.environ.get("PREF_TEST_REDIS_URL")
# Leases short enough for a test: a killed worker's run is taken over within seconds.
FAST_LEASES = {
    "PREF_JOB_HEARTBEAT_SECONDS": "0.5",
    "PREF_JOB_LEASE_SECONDS": "3",
    "PREF_JOB_REAP_SECONDS": "1",
    "PREF_WORKER_HEARTBEAT_SECONDS": "1",
}

pytestmark = [
    pytest.mark.celery,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis (PREF_TEST_REDIS_URL, set by infra/test.sh)"),
]


@pytest.fixture
def worker_env(tmp_path, local_storage, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process shares the test database: PostgreSQL only")
    if not django_settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("infra/test.sh sets CELERY_BROKER_URL to the test Redis for the whole session")
    for name, value in FAST_LEASES.items():
        setattr(settings, name.removeprefix("PREF_"), float(value))
    database = connection.settings_dict
    return {
        **os.environ,
        **FAST_LEASES,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "PREF_STORAGE": "local",
        "PREF_STORAGE_ROOT": str(local_storage),
        "PREF_VAR_DIR": str(tmp_path / "var"),
    }


class Worker:
    """One worker process, its log kept across restarts; beside it (the `beat` fixture), one beat process that
    ticks the reaper, separate as under `run_workers` (a worker's embedded beat would outlive a SIGKILL)."""

    def __init__(self, env: dict[str, str], folder: Path, queues: str = "default,train") -> None:
        self.env, self.folder, self.queues = env, folder, queues
        self.log = folder / f"worker-{queues.replace(',', '-')}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, *, purge: bool = False) -> Worker:
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "annotation_web",
            "worker",
            "-Q",
            self.queues,
            "--pool=solo",
            "--loglevel=INFO",
            "-n",
            f"test-{self.queues.replace(',', '-')}-{self.starts}@%h",
        ]
        command += ["--purge"] if purge else []
        marker = self.log.read_bytes().count(b" ready.") if self.log.exists() else 0
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        wait_for(lambda: self.log.read_bytes().count(b" ready.") > marker, 60, "the worker to start", self)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def beat(worker_env, tmp_path):
    """The one scheduler: it ticks the reaper every second (PREF_JOB_REAP_SECONDS)."""
    log = tmp_path / "beat.log"
    command = [sys.executable, "-m", "celery", "-A", "annotation_web", "beat", "--loglevel=INFO"]
    command += [f"--schedule={tmp_path / 'beat-schedule'}", f"--pidfile={tmp_path / 'beat.pid'}"]
    process = subprocess.Popen(
        command, cwd=REPO, env=worker_env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(predicate, timeout: float, what: str, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.tail()}")


def job_row(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def artifact_weights(version: ModelVersion) -> dict[str, torch.Tensor]:
    return load(get_storage().get(f"{version.artifact_key}/model.safetensors"))


@pytest.fixture
def rl_setup(make_project, tmp_path):
    from restorer.model import Restorer, tiny_test_config
    from reward_model.model import CONFIG_PRESETS, RewardModel

    project = make_project(pairs=0, resolution=32)
    imports.face_inputs_import(
        project=project, source=[SourceFile(f"{s}.png", face_png(s, size=40)) for s in range(4)]
    )
    torch.manual_seed(0)
    Restorer(tiny_test_config()).save_pretrained(tmp_path / "restorer")
    RewardModel(CONFIG_PRESETS["tiny"]).save_pretrained(tmp_path / "reward")
    restorer = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=tmp_path / "restorer")
    reward = model_version_register(kind=ModelKind.REWARD, name="tiny", folder=tmp_path / "reward")
    return project, restorer, reward


def rl_test_job(rl_setup, user, overrides: dict) -> Job:
    """An RL job of the `test` preset on the fixture's project, restorer and reward model."""
    project, restorer, reward = rl_setup
    return rl_job_create(
        project=project,
        user=user,
        restorer_id=restorer.pk,
        reward_id=reward.pk,
        preset="test",
        overrides=overrides,
    )


def kill_mid_run_and_resume(job: Job, worker: Worker, *, at_step: int, timeout: float = 240) -> dict:
    """Let the job reach `at_step`, SIGKILL its worker, start another; return what happened."""
    wait_for(
        lambda: job_row(job).progress_done >= at_step, timeout, f"job {job.pk} at step {at_step}", worker
    )
    killed = job_row(job)
    worker.kill()
    killed_at = time.monotonic()
    worker.start()
    terminal = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    wait_for(lambda: job_row(job).state in terminal, timeout, f"job {job.pk} to end", worker)
    return {"killed_at_step": killed.progress_done, "resumed_after_s": time.monotonic() - killed_at}


@pytest.mark.django_db(transaction=True)
def test_an_rl_job_whose_worker_is_sigkilled_resumes_and_ends_as_an_uninterrupted_run(
    worker_env, beat, rl_setup, engineer, tmp_path
):
    project, restorer, reward = rl_setup
    overrides = {"max_steps": 12, "checkpoint_every": 1, "eval_every": 1000}
    worker = Worker(worker_env, tmp_path).start(purge=True)
    try:
        job = rl_test_job(rl_setup, engineer, overrides)
        happened = kill_mid_run_and_resume(job, worker, at_step=3)
    finally:
        worker.stop()
    job = job_row(job)
    assert job.state == JobState.SUCCEEDED, f"{job.error}\n{job.log_tail}\n{worker.tail()}"
    assert job.attempt == 2 and 3 <= happened["killed_at_step"] < 12
    assert "attempt 2/3 started" in job.history, job.history
    resumed = re.search(r"resumed from checkpoint at step (\d+) of 12", job.history)
    assert resumed and 1 <= int(resumed.group(1)) <= happened["killed_at_step"], job.history
    made = ModelVersion.objects.filter(made_by_job=job)
    assert made.count() == 1 and ModelVersion.objects.filter(kind=ModelKind.RESTORER).count() == 2

    # The same job, never interrupted (run here, in this process): the same weights.
    reference = rl_test_job(rl_setup, engineer, overrides)
    job_run(job_id=reference.pk, worker="reference")
    reference = job_row(reference)
    assert reference.state == JobState.SUCCEEDED, reference.error
    resumed_weights = artifact_weights(made.get())
    uninterrupted = artifact_weights(ModelVersion.objects.get(made_by_job=reference))
    assert resumed_weights.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=1e-6, msg=name)


@pytest.fixture
def judged(rl_setup, engineer, make_user):
    """The project's inputs sampled by the restorer and every pair judged (committed: workers read them)."""
    from tests.annotation_web.training.test_ml_loop import judge_everything

    project, restorer, reward = rl_setup
    generated = generation_job_create(
        project=project, user=engineer, restorer_id=restorer.pk, num_steps=2, eta=1.0, pairs_budget=12
    )
    job_run(job_id=generated.pk, worker="setup")
    assert job_row(generated).state == JobState.SUCCEEDED, job_row(generated).error
    assert judge_everything(project, make_user, count=3) >= 12
    return project


@pytest.mark.django_db(transaction=True)
def test_a_reward_job_whose_worker_is_sigkilled_resumes_and_ends_as_an_uninterrupted_run(
    worker_env, beat, judged, engineer, tmp_path
):
    worker = Worker(worker_env, tmp_path).start(purge=True)
    try:
        job = reward_job_create(project=judged, user=engineer, size="tiny", max_steps=150)
        happened = kill_mid_run_and_resume(job, worker, at_step=50)
    finally:
        worker.stop()
    job = job_row(job)
    assert job.state == JobState.SUCCEEDED, f"{job.error}\n{job.history}\n{worker.tail()}"
    assert job.attempt == 2 and 50 <= happened["killed_at_step"] < 150, happened
    resumed = re.search(r"resumed from checkpoint at step (\d+) of 150", job.history)
    assert resumed and 50 <= int(resumed.group(1)) <= happened["killed_at_step"], job.history
    made = ModelVersion.objects.filter(made_by_job=job)
    assert (
        made.count() == 1 and ModelVersion.objects.filter(kind=ModelKind.REWARD).count() == 2
    )  # + rl_setup's

    reference = reward_job_create(project=judged, user=engineer, size="tiny", max_steps=150)
    job_run(job_id=reference.pk, worker="reference")
    assert job_row(reference).state == JobState.SUCCEEDED, job_row(reference).error
    resumed_weights = artifact_weights(made.get())
    uninterrupted = artifact_weights(ModelVersion.objects.get(made_by_job=reference))
    assert resumed_weights.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=1e-6, msg=name)


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_workers_keep_dying_fails_with_the_reason(worker_env, beat, rl_setup, engineer, tmp_path):
    """Killed on each of its three attempts (as an out-of-memory kill would), the job fails and says why."""
    project, restorer, reward = rl_setup
    worker = Worker(worker_env, tmp_path).start(purge=True)
    try:
        job = rl_test_job(rl_setup, engineer, {"max_steps": 400, "checkpoint_every": 1, "eval_every": 1000})
        for attempt in (1, 2, 3):
            wait_for(
                lambda attempt=attempt: (
                    (row := job_row(job)).attempt == attempt and row.state == JobState.RUNNING
                ),
                120,
                f"attempt {attempt}",
                worker,
            )
            worker.kill()
            worker.start()  # it runs the reaper's ticks: the lost attempt is requeued, or after the third fails
        wait_for(lambda: job_row(job).state == JobState.FAILED, 60, "the job to fail", worker)
    finally:
        worker.stop()
    job = job_row(job)
    assert job.attempt == 3 and job.error.startswith("killed 3 times while running"), job.error
    assert not ModelVersion.objects.filter(made_by_job=job).exists()


@pytest.mark.django_db(transaction=True)
def test_each_queue_only_takes_its_own_kinds(worker_env, rl_setup, engineer, tmp_path):
    project, restorer, reward = rl_setup
    train_only = Worker(worker_env, tmp_path, queues="train").start(purge=True)
    try:
        imported = import_job_create(
            project=project, user=engineer, upload_name="faces.zip", upload=io.BytesIO(zip_of_faces(1))
        )
        tuned = rl_test_job(rl_setup, engineer, {"max_steps": 2})
        wait_for(lambda: job_row(tuned).state == JobState.SUCCEEDED, 120, "the RL job", train_only)
        assert job_row(imported).state == JobState.QUEUED, "a train worker does not take imports"
    finally:
        train_only.stop()
    default_only = Worker(worker_env, tmp_path, queues="default").start()
    try:
        wait_for(lambda: job_row(imported).state == JobState.SUCCEEDED, 120, "the import", default_only)
        later = rl_test_job(rl_setup, engineer, {"max_steps": 2})
        time.sleep(3)
        assert job_row(later).state == JobState.QUEUED, "a default worker does not take ML jobs"
    finally:
        default_only.stop()
