"""`manage.py run_workers [--queues default,train] [--beat] [--log FILE]`: the Celery processes of a single-host
install, supervised. One worker process (`celery worker -Q <queues>`) and, with `--beat`, one separate
`celery beat` (never a worker's embedded `--beat`: that scheduler outlives a killed worker). A child that exits,
for whatever reason, is logged ("worker exited with signal SIGKILL after 42 s; restarting in 1 s") and started
again after a backoff (1 s, doubling, capped at 60 s; back to 1 s after a child ran a minute). The children die
with the supervisor (PR_SET_PDEATHSIG, Linux), also when it is SIGKILLed; SIGTERM or SIGINT stops them (SIGTERM,
then SIGKILL after `--stop-timeout`) and exits. Everything is appended to one log (never truncated), and the
children's pids are in `VAR_DIR/workers.json`. Several hosts: see docs/deployment.md."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PR_SET_PDEATHSIG = 1
MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the supervisor dies (or is already dead when it starts)."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def clear_stale_pidfile(path: Path) -> None:
    """Celery refuses to start while its pid file names a live process; after a reboot or a SIGKILL that may be
    any process reusing the pid. Only a running `celery beat` keeps the file."""
    try:
        command = Path(f"/proc/{int(path.read_text().strip())}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        command = []
    if b"beat" not in command:
        path.unlink(missing_ok=True)


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = 1.0


class Command(BaseCommand):
    help = "Run and supervise a Celery worker (and one beat) for a single host; restarts them when they die."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--queues", default="default,train", help="comma-separated queues of the worker")
        parser.add_argument("--beat", action="store_true", help="also run the one beat of the installation")
        parser.add_argument("--log", help="append the supervisor's and the children's output to this file")
        parser.add_argument("--name", help="the worker's node name (default: the queues joined by '-')")
        parser.add_argument("--pool", default="solo", help="Celery pool (solo: one job at a time)")
        parser.add_argument("--concurrency", type=int, help="Celery concurrency (pools other than solo)")
        parser.add_argument("--stop-timeout", type=float, default=10.0, help="seconds before SIGKILL on stop")
        parser.add_argument("--pid-file", help="where the pids are written (default: VAR_DIR/workers.json)")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = [q.strip() for q in options["queues"].split(",") if q.strip()]
        if not queues:
            raise CommandError("--queues names no queue")
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file = Path(options["pid_file"] or var_dir / "workers.json")
        self.log: IO[bytes] | None = open(options["log"], "ab", buffering=0) if options["log"] else None
        celery = [sys.executable, "-m", "celery", "-A", "annotation_web"]
        worker = [*celery, "worker", "-Q", ",".join(queues), f"--pool={options['pool']}", "--loglevel=INFO"]
        worker += ["-n", f"{options['name'] or '-'.join(queues)}@%h"]
        worker += [f"--concurrency={options['concurrency']}"] if options["concurrency"] else []
        self.children = [Child("worker", worker)]
        if options["beat"]:
            beat = [*celery, "beat", "--loglevel=INFO", f"--schedule={var_dir / 'celerybeat-schedule'}"]
            # The pid file makes a second beat on this VAR_DIR refuse to start.
            self.beat_pidfile = var_dir / "celerybeat.pid"
            self.children.append(Child("beat", [*beat, f"--pidfile={self.beat_pidfile}"]))
        default_queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
        if default_queue not in queues:
            self.say(
                f"warning: tasks without a queue go to {default_queue!r}, which this worker does not consume"
            )
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.say(
            f"supervisor {os.getpid()} starts: worker on {','.join(queues)}"
            + (" and beat" if options["beat"] else "")
        )
        try:
            self.supervise()
        finally:
            self.stop_all(options["stop_timeout"])
            self.pid_file.unlink(missing_ok=True)
            self.say("stopped")

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def supervise(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    self.child_exited(child, now)
                if child.process is None and now >= child.restart_at:
                    self.start(child)
            time.sleep(0.2)

    def child_exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        ran = now - child.started_at
        if ran >= HEALTHY_AFTER_S:
            child.backoff = 1.0
        reason = exit_reason(child.process.returncode)
        self.say(f"{child.name} exited with {reason} after {ran:.0f} s; restarting in {child.backoff:.0f} s")
        child.process, child.restart_at = None, now + child.backoff
        child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
        self.write_pids()

    def start(self, child: Child) -> None:
        if child.name == "beat":
            clear_stale_pidfile(self.beat_pidfile)
        output = self.log if self.log is not None else None
        child.process = subprocess.Popen(
            child.command,
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            process_group=0,  # a Ctrl-C reaches the supervisor only; it stops the children itself
            preexec_fn=die_with_parent(os.getpid()),
        )
        child.started_at = time.monotonic()
        self.say(f"{child.name} started (pid {child.process.pid})")
        self.write_pids()

    def stop_all(self, timeout: float) -> None:
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"pid {process.pid} did not stop within {timeout:.0f} s: SIGKILL")
                process.kill()
                process.wait()

    def write_pids(self) -> None:
        pids = {c.name: (c.process.pid if c.process else None) for c in self.children}
        record = {"supervisor": os.getpid(), "worker": pids["worker"], "beat": pids.get("beat")}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.pid_file)

    def say(self, line: str) -> None:
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [run_workers] {line}\n"
        if self.log is not None:
            self.log.write(text.encode())
        else:
            self.stdout.write(text, ending="")
            self.stdout.flush()
