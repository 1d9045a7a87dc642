"""The kill-and-resume guarantee on the embedded defaults, as `infra/demo.sh` runs them: SQLite, local files,
the filesystem broker (which drops the message of a killed worker) and `manage.py run_workers` (which restarts
the worker). An RL job's worker is SIGKILLed mid-run; the supervisor restarts it, the reaper sends the lost job
again once its lease expired, and the job resumes from its checkpoint to exactly one model version."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.annotation_web.jobs.test_run_workers import Supervisor, alive, embedded, wait_for  # noqa: F401
from tests.annotation_web.jobs.test_worker_death import FAST_LEASES

REPO = Path(__file__).resolve().parents[3]

SETUP = """
import torch
from annotation_web.accounts.services import user_create
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.pairs import project_create
from annotation_web.registry.models import ModelKind
from annotation_web.registry.services import model_version_register
from annotation_web.training.services import rl_job_create
from restorer.model import Restorer, tiny_test_config
from reward_model.model import CONFIG_PRESETS, RewardModel
from tests.annotation_web.conftest import face_png

project = project_create(name='E', slug='embedded', resolution=32)
faces = [SourceFile(f'{s}.png', face_png(s, size=40)) for s in range(4)]
imports.face_inputs_import(project=project, source=faces)
torch.manual_seed(0)
Restorer(tiny_test_config()).save_pretrained('{tmp}/restorer')
RewardModel(CONFIG_PRESETS['tiny']).save_pretrained('{tmp}/reward')
restorer = model_version_register(kind=ModelKind.RESTORER, name='tiny', folder=__import__('pathlib').Path('{tmp}/restorer'))
reward = model_version_register(kind=ModelKind.REWARD, name='tiny', folder=__import__('pathlib').Path('{tmp}/reward'))
user = user_create(username='eng', password='pw-123456', role='engineer')
job = rl_job_create(project=project, user=user, restorer_id=restorer.pk, reward_id=reward.pk, preset='test',
                    overrides={'max_steps': 12, 'checkpoint_every': 1, 'eval_every': 1000})
print(job.pk)
"""


def test_a_sigkilled_worker_on_the_embedded_broker_costs_nothing(embedded, tmp_path):  # noqa: F811
    env = {**embedded, **FAST_LEASES}
    var_dir = tmp_path / "var"
    database = var_dir / "db.sqlite3"

    def row() -> tuple:
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute("select state, progress_done, attempt, history, error from jobs_job").fetchone()

    supervisor = Supervisor(env, var_dir, "--queues", "default,train", "--beat")
    try:
        first = supervisor.wait_ready(1)
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SETUP.replace("{tmp}", str(tmp_path))],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        wait_for(lambda: row()[1] >= 3, timeout=400, what="the RL job at step 3", log=supervisor.log)
        killed_at_step = row()[1]
        os.kill(first["worker"], signal.SIGKILL)
        supervisor.wait_ready(2)
        wait_for(
            lambda: row()[0] in ("succeeded", "failed"),
            timeout=240,
            what="the job to end",
            log=supervisor.log,
        )
    finally:
        supervisor.cleanup()
    state, done, attempt, history, error = row()
    assert state == "succeeded", f"{error}\n{history}"
    assert attempt == 2 and done == 12 and killed_at_step < 12
    assert "lost" in history or "taking over" in history, history
    resumed = re.search(r"resumed from checkpoint at step (\d+) of 12", history)
    assert resumed and 1 <= int(resumed.group(1)) <= killed_at_step, history
    with sqlite3.connect(database) as db:
        job_id = db.execute("select id from jobs_job").fetchone()[0]
        made = db.execute(
            "select count(*) from registry_modelversion where made_by_job_id = ?", (job_id,)
        ).fetchone()[0]
        restorers = db.execute(
            "select count(*) from registry_modelversion where kind = 'restorer'"
        ).fetchone()[0]
    assert made == 1 and restorers == 2
    assert not alive(first["worker"])
