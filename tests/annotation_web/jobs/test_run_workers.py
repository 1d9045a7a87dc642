"""`manage.py run_workers` with real processes on the embedded defaults (SQLite, the filesystem broker): a killed
worker is restarted while the one beat keeps running, and nothing outlives a killed supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.celery,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's"),
]


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its new parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def celery_processes(var_dir: Path, role: str) -> list[int]:
    """The live `celery worker` or `celery beat` processes of this VAR_DIR (by their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"celery" in command
            and role.encode() in command
            and f"PREF_VAR_DIR={var_dir}".encode() in environ
        ):
            if alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def wait_for(predicate, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    text = log.read_bytes().decode(errors="replace") if log.exists() else "(no log)"
    raise AssertionError(f"timed out waiting for {what}; log:\n{text[-3000:]}")


@pytest.fixture
def embedded(tmp_path):
    """The environment of a fresh machine (no server), migrated, in a VAR_DIR of its own."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PREF_STORAGE"}
    }
    env["PREF_VAR_DIR"] = str(tmp_path / "var")
    env["DJANGO_SETTINGS_MODULE"] = "annotation_web.settings"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    return env


class Supervisor:
    def __init__(self, env: dict[str, str], var_dir: Path, *args: str) -> None:
        self.var_dir, self.log = var_dir, var_dir / "worker.log"
        self.pid_file = var_dir / "workers.json"
        command = [sys.executable, "manage.py", "run_workers", "--log", str(self.log), *args]
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)

    def pids(self) -> dict:
        try:
            return json.loads(self.pid_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def ready_lines(self) -> int:
        return self.log.read_bytes().count(b" ready.") if self.log.exists() else 0

    def wait_ready(self, count: int) -> dict:
        wait_for(lambda: self.ready_lines() >= count, timeout=90, what=f"worker ready #{count}", log=self.log)
        return self.pids()

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.pids().values():
            if isinstance(pid, int) and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_restarted_and_nothing_outlives_the_supervisor(embedded, tmp_path):
    var_dir = tmp_path / "var"
    supervisor = Supervisor(embedded, var_dir, "--queues", "default,train", "--beat")
    try:
        first = supervisor.wait_ready(1)
        assert first["supervisor"] == supervisor.process.pid
        worker, beat = first["worker"], first["beat"]
        assert alive(worker) and alive(beat) and worker != beat

        os.kill(worker, signal.SIGKILL)
        second = supervisor.wait_ready(2)
        assert second["worker"] not in (None, worker) and alive(second["worker"])
        assert not alive(worker)
        assert b"worker exited with signal SIGKILL after" in supervisor.log.read_bytes()
        # The beat was not touched, and it is the only one of this VAR_DIR (a separate process, not embedded).
        assert second["beat"] == beat and alive(beat)
        assert celery_processes(var_dir, "beat") == [beat]
        assert celery_processes(var_dir, "worker") == [second["worker"]]

        supervisor.process.kill()
        supervisor.process.wait()
        wait_for(
            lambda: not alive(second["worker"]) and not alive(beat),
            timeout=10,
            what="the worker and the beat to die with the supervisor",
            log=supervisor.log,
        )
        assert b"\0" not in supervisor.log.read_bytes()
    finally:
        supervisor.cleanup()


def test_sigterm_stops_the_children_and_exits(embedded, tmp_path):
    var_dir = tmp_path / "var"
    # A beat pid file left by a SIGKILL, naming a pid that another process (this one) now has: beat starts anyway.
    (var_dir / "celerybeat.pid").write_text(f"{os.getpid()}\n")
    supervisor = Supervisor(embedded, var_dir, "--queues", "default", "--beat")
    try:
        pids = supervisor.wait_ready(1)
        wait_for(
            lambda: b"beat: Starting" in supervisor.log.read_bytes(),
            timeout=30,
            what="beat",
            log=supervisor.log,
        )
        supervisor.process.send_signal(signal.SIGTERM)
        assert supervisor.process.wait(timeout=30) == 0
        assert not alive(pids["worker"]) and not alive(pids["beat"])
        assert not supervisor.pid_file.exists()
        log = supervisor.log.read_bytes()
        assert b"[run_workers] stopped" in log and b"restarting" not in log
    finally:
        supervisor.cleanup()
