"""A worker SIGKILLed in the middle of an RL job, on the embedded defaults (SQLite, the filesystem broker,
`manage.py run_workers`, as `infra/demo.sh` runs them): when the job resumes, from which step, how long it
all took against an uninterrupted run of the same job, and how many model versions the job made.

    ~/.venvs/pref-restore/bin/python benchmarks/kill_and_resume.py [--steps 30] [--kill-at 10] [--preset test]

Leases are shortened (heartbeat 1 s, lease 5 s, reaper every 2 s) so that a lost run is noticed in seconds; the
defaults (5 s / 60 s / 15 s) make the take-over come about a minute later. Prints one table; exits 1 when the
killed job did not end with exactly one model version equal to the uninterrupted run's weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEASES = {
    "PREF_JOB_HEARTBEAT_SECONDS": "1",
    "PREF_JOB_LEASE_SECONDS": "5",
    "PREF_JOB_REAP_SECONDS": "2",
    "PREF_WORKER_HEARTBEAT_SECONDS": "2",
}

SETUP = """
import io, pathlib, torch
from annotation_web.accounts.services import user_create
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.pairs import project_create
from annotation_web.registry.models import ModelKind
from annotation_web.registry.services import model_version_register
from annotation_web.training.services import rl_job_create
from restorer.model import Restorer, tiny_test_config
from reward_model.model import CONFIG_PRESETS, RewardModel
from annotation_web import ml_bridge

project = project_create(name='Kill and resume', slug='kill', resolution=32)
def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()
faces = [SourceFile(f'{i}.png', png(face)) for i, face in enumerate(ml_bridge.synthetic_face_images(list(range(6)), 64))]
imports.face_inputs_import(project=project, source=faces)
torch.manual_seed(0)
Restorer(tiny_test_config()).save_pretrained('{tmp}/restorer')
RewardModel(CONFIG_PRESETS['tiny']).save_pretrained('{tmp}/reward')
restorer = model_version_register(kind=ModelKind.RESTORER, name='tiny', folder=pathlib.Path('{tmp}/restorer'))
reward = model_version_register(kind=ModelKind.REWARD, name='tiny', folder=pathlib.Path('{tmp}/reward'))
user = user_create(username='eng', password='pw-123456', role='engineer')
for _ in range(2):
    job = rl_job_create(project=project, user=user, restorer_id=restorer.pk, reward_id=reward.pk,
                        preset='{preset}', overrides={'max_steps': {steps}, 'checkpoint_every': 1})
    print('JOB', job.pk)
"""

COMPARE = """
import json, sys
from safetensors.torch import load
from annotation_web.registry.models import ModelVersion
from annotation_web.storage import get_storage
killed, uninterrupted = (ModelVersion.objects.filter(made_by_job_id=j) for j in ({a}, {b}))
weights = [load(get_storage().get(f"{{q.get().artifact_key}}/model.safetensors")) for q in (killed, uninterrupted)]
gap = max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[1])
print(json.dumps({{"versions": killed.count(), "max_weight_difference": gap}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--kill-at", type=int, default=10)
    parser.add_argument("--preset", default="test")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kill-and-resume-"))
    var = folder / "var"
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PREF_STORAGE"}
    }
    env.update(LEASES, PREF_VAR_DIR=str(var), DJANGO_DEBUG="1", HF_HUB_OFFLINE="1")
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True)
    log = var / "worker.log"
    supervisor = subprocess.Popen(
        [*manage, "run_workers", "--queues", "default,train", "--beat", "--log", str(log)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    database = var / "db.sqlite3"

    def row(job_id: int) -> tuple:
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute(
                "select state, progress_done, attempt, history, started_at, finished_at from jobs_job where id = ?",
                (job_id,),
            ).fetchone()

    def wait(predicate, what: str, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}; see {log}")
            time.sleep(0.1)

    try:
        wait(lambda: log.exists() and b" ready." in log.read_bytes(), "the worker")
        setup = (
            SETUP.replace("{tmp}", str(folder))
            .replace("{preset}", args.preset)
            .replace("{steps}", str(args.steps))
        )
        out = subprocess.run(
            [*manage, "shell", "-c", setup], cwd=REPO, env=env, check=True, capture_output=True, text=True
        )
        killed_job, reference_job = (
            int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("JOB ")
        )
        started = time.monotonic()
        wait(lambda: row(killed_job)[1] >= args.kill_at, f"step {args.kill_at}")
        killed_at_step = row(killed_job)[1]
        worker_pid = json.loads((var / "workers.json").read_text())["worker"]
        os.kill(worker_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait(lambda: row(killed_job)[2] >= 2, "the second attempt")
        resumed_at = time.monotonic()
        wait(lambda: row(killed_job)[0] in ("succeeded", "failed"), "the killed job to end")
        ended = time.monotonic()
        wait(lambda: row(reference_job)[0] in ("succeeded", "failed"), "the uninterrupted job")
        reference_ended = time.monotonic()
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=60)
    state, done, attempts, history, _, _ = row(killed_job)
    reference_state = row(reference_job)[0]
    compare = subprocess.run(
        [*manage, "shell", "-c", COMPARE.format(a=killed_job, b=reference_job)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    measured = json.loads(compare.stdout.strip().splitlines()[-1]) if compare.returncode == 0 else {}
    resumed_from = next(
        (line for line in history.splitlines() if "resumed from checkpoint" in line), "(none)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
        f"RL preset {args.preset!r}, {args.steps} steps, tiny test restorer at 32 px, embedded defaults"
    )
    print(f"leases: {LEASES}")
    rows = [
        ("killed at step", f"{killed_at_step} of {args.steps}"),
        ("taken over after the kill", f"{resumed_at - killed_at:.1f} s (attempt 2)"),
        ("resumed", resumed_from.split("] ", 1)[-1]),
        ("killed job: state, steps, attempts", f"{state}, {done}, {attempts}"),
        ("killed job: wall time, start to end", f"{ended - started:.1f} s"),
        (
            "uninterrupted job (ran after it): state, wall time",
            f"{reference_state}, {reference_ended - ended:.1f} s",
        ),
        ("model versions made by the killed job", str(measured.get("versions", "?"))),
        (
            "max weight difference to the uninterrupted run",
            f"{measured.get('max_weight_difference', float('nan')):.3g}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\nhistory of the killed job:\n" + history)
    ok = (
        state == "succeeded"
        and measured.get("versions") == 1
        and measured.get("max_weight_difference", 1) <= 1e-6
    )
    print("RESULT:", "one version, equal to the uninterrupted run" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
