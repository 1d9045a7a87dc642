"""Load test of the judging API: N concurrent simulated annotators against a production-like server.

Server: gunicorn (DEBUG off, token auth, throttling set high enough not to bite) on PostgreSQL, in a fresh
database that this script creates and drops. Each simulated annotator loops `next -> submit` with zero
think time by default (`--think-ms` for people who look at the images), using the submit's `next` field so
one request both records a judgment and reserves the next pair.
A few submits are repeated with the same idempotency key to exercise the idempotent path under load.

For every (N, overlap) it prints judgments/s, p50/p95/p99 latency per call type and errors, then checks from
the database that the queue invariant holds (the package's own checker,
`annotation_web.labeling.queue.queue_invariant_violations`: no pair beyond its overlap, slots and counts
consistent) and that every 2xx submit has exactly one judgment row (nothing lost, nothing doubled).
The summary says MET or NOT MET for the target at N=32.

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/annotation_load.py

Images are not fetched: in production they come from S3 / a CDN by presigned URL, not from the app server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json as json_module
import math
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SCREEN_CHOICES = ["left", "right", "tie", "both_bad"]
COMPARE_AT = 32  # annotators in the comparison of server settings
# The target, at N=32 annotators: at least this many judgments/s, and the submit+next p99 below this.
TARGET_N, TARGET_RATE, TARGET_P99_MS = 32, 150.0, 100.0
SERVER_SETTINGS = {
    "sync-w3": "--worker-class sync --workers 3",
    "sync-w4": "--worker-class sync --workers 4",
    "gthread-w2t4": "--worker-class gthread --workers 2 --threads 4",
    "gthread-w3t2": "--worker-class gthread --workers 3 --threads 2",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per (N, overlap)")
    parser.add_argument(
        "--server", choices=sorted(SERVER_SETTINGS), default=None, help="skip the comparison, use this"
    )
    parser.add_argument(
        "--compare-servers",
        nargs="*",
        default=["sync-w3", "gthread-w2t4", "sync-w4"],
        help="settings tried at N=32",
    )
    parser.add_argument("--compare-duration", type=float, default=5.0)
    parser.add_argument("--skip-rate", type=float, default=0.05, help="share of answers that are 'skip'")
    parser.add_argument(
        "--repeat-rate", type=float, default=0.02, help="share of submits sent twice with one key"
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean time an annotator looks at a pair (exponential); 0 is the closed-loop worst case",
    )
    parser.add_argument("--gold-rate", type=float, default=0.0)
    parser.add_argument(
        "--max-rate", type=float, default=600.0, help="judgments/s the pair count is sized for"
    )
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="the load generator's HTTP client"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-db", action="store_true", help="leave the database for inspection")
    return parser.parse_args()


# --- the database and the server ---------------------------------------------------------------------


def configure_environment(db_name: str, var_dir: Path) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
        "DATABASE_CONN_MAX_AGE": "600",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "annotation-load-benchmark-" + uuid.uuid4().hex,
        "PREF_THROTTLE_USER": "1000000/min",
        "PREF_VAR_DIR": str(var_dir),
        "PREF_STORAGE": "local",
        "PREF_STORAGE_ROOT": str(var_dir / "storage"),
        "PREF_LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "annotation_web.settings",
    }
    (var_dir / "static").mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def create_database(db_name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{db_name}"')


def drop_database(db_name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    def __init__(self, setting: str, env: dict[str, str]):
        self.setting = setting
        self.db_name = env["DATABASE_URL"].rsplit("/", 1)[1]
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "annotation_web.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--timeout",
            "60",
            *shlex.split(SERVER_SETTINGS[setting]),
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **env}, start_new_session=True
        )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.base_url}/login/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not answer within 30 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- where the CPU goes --------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _postgres_pids(db_name: str) -> list[int]:
    """The PostgreSQL backends serving this benchmark's database (their title names the database)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {db_name} " in title:
                pids.append(int(entry.name))
    return pids


def cpu_snapshot(server: Gunicorn) -> dict[str, float]:
    """CPU seconds used so far by the server (master + workers), PostgreSQL and this load generator.

    PostgreSQL counts the backends of this database only (not the WAL writer and other shared processes).
    """
    master = server.process.pid
    return {
        "server": sum(_process_cpu_seconds(pid) for pid in [master, *_children(master)]),
        "postgres": sum(_process_cpu_seconds(pid) for pid in _postgres_pids(server.db_name)),
        "load generator": time.process_time(),
    }


# --- data: users, and one fresh project per run ------------------------------------------------------


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def create_annotators(count: int) -> list[tuple[int, str]]:
    from knox.models import AuthToken

    from annotation_web.accounts.models import Role, User

    users = User.objects.bulk_create(
        [User(username=f"bench-{index}", role=Role.ANNOTATOR) for index in range(count)], batch_size=500
    )
    # knox keeps only a hash of each token: the token itself is known here, once.
    return [(user.pk, AuthToken.objects.create(user=user)[1]) for user in users]


def create_project(
    *, slug: str, overlap: int, pairs: int, gold_rate: float, candidates_per_input: int = 16
) -> int:
    """Pairs in bulk: every pair of `candidates_per_input` candidates per input; candidates share 4 image keys."""
    import itertools

    from annotation_web.labeling.models import Candidate, FaceInput, ModelKind, ModelVersion, Pair, Project

    project = Project.objects.create(
        name=slug, slug=slug, overlap=overlap, gold_rate=gold_rate, reservation_ttl_seconds=600
    )
    model_version, _ = ModelVersion.objects.get_or_create(kind=ModelKind.CLASSICAL, name="bench")
    per_input = candidates_per_input * (candidates_per_input - 1) // 2
    inputs = FaceInput.objects.bulk_create(
        [
            FaceInput(
                project=project,
                source_name=f"bench-{index}.png",
                content_hash=f"{slug}-{index}",
                hq_key=f"bench/{index % 4}/hq.png",
                lq_key=f"bench/{index % 4}/lq.png",
                instruction="Remove moderate blur and slight noise.",
            )
            for index in range(math.ceil(pairs / per_input))
        ]
    )
    candidates = Candidate.objects.bulk_create(
        [
            Candidate(
                face_input=face_input,
                model_version=model_version,
                seed=seed,
                image_key=f"bench/c{seed % 4}.png",
            )
            for face_input in inputs
            for seed in range(candidates_per_input)
        ],
        batch_size=2000,
    )
    by_input: dict[int, list] = {}
    for candidate in candidates:
        by_input.setdefault(candidate.face_input_id, []).append(candidate)
    rows = [
        Pair(project=project, face_input_id=input_id, candidate_a=a, candidate_b=b, open_slots=overlap)
        for input_id, group in by_input.items()
        for a, b in itertools.combinations(group, 2)
    ][:pairs]
    if gold_rate > 0:
        # Gold pairs: the reverse orientation of an existing pair is a distinct (a, b), so it stays unique.
        for input_id, group in list(by_input.items())[:20]:
            rows.append(
                Pair(
                    project=project,
                    face_input_id=input_id,
                    candidate_a=group[-1],
                    candidate_b=group[0],
                    is_gold=True,
                    gold_outcome="a",
                    open_slots=0,
                )
            )
    Pair.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    # Annotators judge only the projects they belong to: every benchmark user joins.
    from annotation_web.accounts.models import ProjectMembership, User

    ProjectMembership.objects.bulk_create(
        [ProjectMembership(user_id=pk, project=project) for pk in User.objects.values_list("pk", flat=True)],
        ignore_conflicts=True,
    )
    return project.pk


# --- the load ----------------------------------------------------------------------------------------


@dataclass
class Accepted:
    user_id: int
    idempotency_key: str
    reservation: str
    judgment_id: int


@dataclass
class RunLog:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    rejected_submits: list[tuple[int, str, int, str]] = field(default_factory=list)
    repeat_mismatches: int = 0
    transport_errors: int = 0
    queue_ran_dry: int = 0

    def record(self, call: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(call, []).append(seconds * 1000)
        counts = self.statuses.setdefault(call, {})
        counts[status] = counts.get(status, 0) + 1


class RawResponse:
    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json_module.loads(self.content)


class RawHttpClient:
    """A minimal HTTP/1.1 JSON client over one asyncio connection, reused while the server keeps it alive.

    httpx costs the load generator several ms of CPU per request; on a 2-core machine that shares its cores
    with the server and PostgreSQL, a lean client leaves the cores to what is being measured.
    """

    def __init__(self, base_url: str):
        parsed = urlsplit(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, url: str, *, json: dict, headers: dict[str, str]) -> RawResponse:
        body = json_module.dumps(json).encode()
        head = [f"POST {urlsplit(url).path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: keep-alive"]
        for attempt in (0, 1):
            reused = self._streams is not None
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            try:
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("server closed the connection")
                return await self._read_response(reader, status_line)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if not reused or attempt:  # a kept-alive connection the server just closed: retry once
                    raise
        raise AssertionError("unreachable")

    async def _read_response(self, reader: asyncio.StreamReader, status_line: bytes) -> RawResponse:
        status = int(status_line.split()[1])
        length, close = None, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
        content = await reader.readexactly(length) if length is not None else await reader.read()
        if close or length is None:
            await self.close()
        return RawResponse(status, content)

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def annotator_loop(
    client,
    *,
    base_url: str,
    slug: str,
    user_id: int,
    token: str,
    deadline: float,
    log: RunLog,
    rng: random.Random,
    skip_rate: float,
    repeat_rate: float,
    think_ms: float = 0.0,
) -> None:
    import httpx

    headers = {"Authorization": f"Token {token}"}
    next_url = f"{base_url}/api/projects/{slug}/next/"
    submit_url = f"{base_url}/api/judgments/"
    pair = None
    while time.monotonic() < deadline:
        try:
            if pair is None:
                started = time.perf_counter()
                response = await client.post(next_url, json={"exclude": []}, headers=headers)
                log.record("next", time.perf_counter() - started, response.status_code)
                pair = response.json()["pair"] if response.status_code == 200 else None
                if pair is None:
                    log.queue_ran_dry += response.status_code == 200
                    return
            if think_ms > 0:
                await asyncio.sleep(rng.expovariate(1000.0 / think_ms))
            choice = "skip" if rng.random() < skip_rate else rng.choice(SCREEN_CHOICES)
            body = {
                "reservation": pair["reservation"],
                "choice": choice,
                "idempotency_key": uuid.uuid4().hex,
                "client_duration_ms": rng.randint(500, 5000),
                "next": {"exclude": []},
            }
            started = time.perf_counter()
            response = await client.post(submit_url, json=body, headers=headers)
            log.record("submit+next", time.perf_counter() - started, response.status_code)
            if response.status_code not in (200, 201):
                log.rejected_submits.append(
                    (user_id, body["idempotency_key"], response.status_code, response.text[:200])
                )
                pair = None
                continue
            data = response.json()
            log.accepted.append(
                Accepted(user_id, body["idempotency_key"], body["reservation"], data["judgment_id"])
            )
            pair = data["next"]["pair"]
            if rng.random() < repeat_rate:
                # A client that lost the response sends the same answer again: the first result comes back.
                repeat = {key: value for key, value in body.items() if key != "next"}
                started = time.perf_counter()
                again = await client.post(submit_url, json=repeat, headers=headers)
                log.record("submit (repeat)", time.perf_counter() - started, again.status_code)
                if again.status_code != 200 or again.json().get("judgment_id") != data["judgment_id"]:
                    log.repeat_mismatches += 1
            if pair is None:
                log.queue_ran_dry += 1
                return
        except (httpx.TransportError, OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            log.transport_errors += 1
            log.rejected_submits.append((user_id, "", 0, repr(exc)[:200]))
            pair = None
            await asyncio.sleep(0.05)


async def run_load(
    *,
    base_url: str,
    slug: str,
    annotators: list[tuple[int, str]],
    duration: float,
    seed: int,
    skip_rate: float,
    repeat_rate: float,
    think_ms: float = 0.0,
    client_kind: str = "raw",
) -> tuple[RunLog, float]:
    import httpx

    log = RunLog()
    limits = httpx.Limits(max_connections=len(annotators), max_keepalive_connections=len(annotators))
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as shared_httpx:
        clients = [
            RawHttpClient(base_url) if client_kind == "raw" else shared_httpx for _ in range(len(annotators))
        ]
        started = time.monotonic()
        deadline = started + duration
        loops = [
            annotator_loop(
                client,
                base_url=base_url,
                slug=slug,
                user_id=user_id,
                token=token,
                deadline=deadline,
                log=log,
                rng=random.Random(seed * 100_003 + index),
                skip_rate=skip_rate,
                repeat_rate=repeat_rate,
                think_ms=think_ms,
            )
            for index, ((user_id, token), client) in enumerate(zip(annotators, clients))
        ]
        # Bounded in time: a run never outlives its duration by more than the slowest answer allowed.
        await asyncio.wait_for(asyncio.gather(*loops), timeout=duration + 60)
        elapsed = time.monotonic() - started
        for client in clients:
            if isinstance(client, RawHttpClient):
                await client.close()
    return log, elapsed


# --- checks from the database ------------------------------------------------------------------------


def check_database(*, project_id: int, log: RunLog) -> tuple[dict[str, int], list[str]]:
    """The load's own checks (every 2xx has its row, nothing doubled) and the package's queue invariant."""
    from django.db import connection
    from django.db.models import Count

    from annotation_web.labeling.models import Judgment, Project, Reservation, ReservationState
    from annotation_web.labeling.queue import queue_invariant_violations

    connection.close()  # a fresh connection sees everything the server committed
    project = Project.objects.get(pk=project_id)
    judgments = Judgment.objects.filter(pair__project=project)
    rows = {
        (user_id, key): (judgment_id, str(reservation_id))
        for user_id, key, judgment_id, reservation_id in judgments.values_list(
            "annotator_id", "idempotency_key", "pk", "reservation_id"
        )
    }
    accepted_keys = {(a.user_id, a.idempotency_key) for a in log.accepted}
    lost = sum(
        1 for a in log.accepted if rows.get((a.user_id, a.idempotency_key)) != (a.judgment_id, a.reservation)
    )
    unexplained = len(set(rows) - accepted_keys)  # rows no 2xx answered for (e.g. saved, then an error)
    doubled = judgments.values("pair_id", "annotator_id").annotate(n=Count("id")).filter(n__gt=1).count()
    violations = queue_invariant_violations(project=project)
    checks = {
        "judgment rows": len(rows),
        "2xx submits": len(accepted_keys),
        "lost (2xx without its row)": lost,
        "rows without a 2xx": unexplained,
        "doubled (pair, annotator)": doubled,
        "queue invariant violations": len(violations),
        "active reservations left": Reservation.objects.filter(
            pair__project=project, state=ReservationState.ACTIVE
        ).count(),
    }
    return checks, violations


# --- reporting ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarise(log: RunLog, elapsed: float) -> tuple[float, list[str]]:
    created = len(log.accepted)
    rate = created / elapsed
    lines = []
    for call, values in log.latencies.items():
        statuses = " ".join(f"{status}:{count}" for status, count in sorted(log.statuses[call].items()))
        lines.append(
            f"    {call:<16} n={len(values):>6}  p50={statistics.median(values):7.1f} ms  "
            f"p95={percentile(values, 95):7.1f} ms  p99={percentile(values, 99):7.1f} ms  [{statuses}]"
        )
    errors = (
        sum(c for counts in log.statuses.values() for s, c in counts.items() if s >= 400)
        + log.transport_errors
    )
    lines.append(
        f"    errors={errors} (transport {log.transport_errors}), repeat mismatches={log.repeat_mismatches}, "
        f"queue ran dry for {log.queue_ran_dry} annotators"
    )
    for user_id, _, status, text in log.rejected_submits[:3]:
        lines.append(f"    rejected: user {user_id} HTTP {status}: {text}")
    return rate, lines


def warm_up(server: Gunicorn, annotators) -> None:
    """One unreported second of load, so that workers have imported everything and opened their connections."""
    from django.db import connections

    slug = f"warmup-{server.setting}-{server.port}"
    create_project(slug=slug, overlap=1, pairs=2000, gold_rate=0.0)
    connections.close_all()
    asyncio.run(
        run_load(
            base_url=server.base_url,
            slug=slug,
            annotators=annotators[:16],
            duration=1.0,
            seed=1,
            skip_rate=0.0,
            repeat_rate=0.0,
        )
    )


@dataclass(frozen=True)
class RunSummary:
    n: int
    overlap: int
    judgments_per_second: float
    submit_p99_ms: float
    errors: int
    checks_ok: bool

    def target_misses(self) -> list[str]:
        """How this run misses the target (empty when it meets it, or when no target applies to its N)."""
        if self.n != TARGET_N:
            return []
        misses = []
        if not self.judgments_per_second >= TARGET_RATE:
            misses.append(f"{self.judgments_per_second:.1f} judgments/s < {TARGET_RATE:g}")
        if not self.submit_p99_ms < TARGET_P99_MS:  # NaN (no submit answered) misses it too
            misses.append(f"p99 {self.submit_p99_ms:.1f} ms >= {TARGET_P99_MS:g} ms")
        return misses

    def target_verdict(self) -> str:
        if self.n != TARGET_N:
            return "-"
        return "NOT MET" if self.target_misses() else "MET"


def one_run(
    *, server: Gunicorn, annotators, n: int, overlap: int, duration: float, args, label: str
) -> RunSummary:
    from django.db import connections

    pairs = math.ceil(args.max_rate * duration / overlap * 1.2) + 4 * n
    slug = f"load-{label}-n{n}-o{overlap}"
    project_id = create_project(slug=slug, overlap=overlap, pairs=pairs, gold_rate=args.gold_rate)
    connections.close_all()
    cpu_before = cpu_snapshot(server)
    log, elapsed = asyncio.run(
        run_load(
            base_url=server.base_url,
            slug=slug,
            annotators=annotators[:n],
            duration=duration,
            seed=args.seed + n * 10 + overlap,
            skip_rate=args.skip_rate,
            repeat_rate=args.repeat_rate,
            think_ms=args.think_ms,
            client_kind=args.client,
        )
    )
    cpu_after = cpu_snapshot(server)
    rate, lines = summarise(log, elapsed)
    per_judgment = {k: (cpu_after[k] - cpu_before[k]) * 1000 / max(1, len(log.accepted)) for k in cpu_after}
    lines.append(
        "    CPU per judgment: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in per_judgment.items())
        + f"; all three used {sum(cpu_after.values()) - sum(cpu_before.values()):.1f} CPU-s in {elapsed:.1f} s"
        + f" of {os.cpu_count()} cores"
    )
    checks, violations = check_database(project_id=project_id, log=log)
    bad = {
        k: v
        for k, v in checks.items()
        if v and k not in ("judgment rows", "2xx submits", "active reservations left")
    }
    print(
        f"  N={n:<4} overlap={overlap}  {rate:7.1f} judgments/s  ({len(log.accepted)} in {elapsed:.1f} s, {pairs} pairs)"
    )
    for line in lines:
        print(line)
    print(
        "    db check: "
        + ", ".join(f"{k}={v}" for k, v in checks.items())
        + ("  -> OK" if not bad else f"  -> FAILED {bad}")
    )
    for violation in violations[:5]:
        print(f"      {violation}")
    sys.stdout.flush()
    submit_latencies = log.latencies.get("submit+next", [float("nan")])
    errors = sum(c for counts in log.statuses.values() for status, c in counts.items() if status >= 400)
    return RunSummary(
        n, overlap, rate, percentile(submit_latencies, 99), errors + log.transport_errors, not bad
    )


def query_counts(annotator_user_id: int) -> None:
    """Queries per call, measured in-process with Django's test client on the same database."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from knox.models import AuthToken

    from annotation_web.accounts.models import User

    project_id = create_project(slug="load-querycount", overlap=1, pairs=200, gold_rate=0.0)
    from annotation_web.labeling.models import Project

    slug = Project.objects.get(pk=project_id).slug
    token = AuthToken.objects.create(user=User.objects.get(pk=annotator_user_id))[1]
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    with CaptureQueriesContext(connection) as next_queries:
        pair = client.post(
            f"/api/projects/{slug}/next/", {"exclude": []}, content_type="application/json"
        ).json()["pair"]
    body = {
        "reservation": pair["reservation"],
        "choice": "left",
        "idempotency_key": "qc-1",
        "next": {"exclude": []},
    }
    with CaptureQueriesContext(connection) as submit_queries:
        response = client.post("/api/judgments/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    print(f"  queries per call: next={len(next_queries)}, submit+next={len(submit_queries)}")
    for query in submit_queries.captured_queries:
        print(f"      {query['sql'][:150]}")


def main() -> None:
    args = parse_args()
    # A `timeout` or Ctrl-C still stops gunicorn and drops the database (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    db_name = f"pref_bench_{os.getpid()}"
    var_dir = Path(tempfile.mkdtemp(prefix="pref-bench-"))
    env = configure_environment(db_name, var_dir)
    print("annotation_load: N concurrent simulated annotators looping next -> submit(+next)")
    print(
        f"machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), shared by the server "
        f"(gunicorn), PostgreSQL and this load generator (asyncio, {args.client} HTTP client); "
        f"Python {platform.python_version()}; other people's jobs may run on the same cores"
    )
    print(
        f"config: DEBUG off, token auth, PostgreSQL (fresh db {db_name}), duration {args.duration:g} s per run, "
        f"skip {args.skip_rate:.0%}, repeats {args.repeat_rate:.0%}, gold rate {args.gold_rate:g}, "
        f"think time {args.think_ms:g} ms"
    )
    create_database(db_name)
    server = None
    try:
        setup_django()
        annotators = create_annotators(max([*args.annotators, COMPARE_AT]))
        query_counts(annotators[0][0])
        setting = args.server
        if setting is None:
            print(f"server comparison at N={COMPARE_AT}, overlap 1, {args.compare_duration:g} s each:")
            best_rate = -1.0
            for candidate in args.compare_servers:
                server = Gunicorn(candidate, env)
                warm_up(server, annotators)
                print(f" gunicorn {SERVER_SETTINGS[candidate]}")
                summary = one_run(
                    server=server,
                    annotators=annotators,
                    n=COMPARE_AT,
                    overlap=1,
                    duration=args.compare_duration,
                    args=args,
                    label=candidate,
                )
                server.stop()
                server = None
                if summary.judgments_per_second > best_rate:
                    best_rate, setting = summary.judgments_per_second, candidate
        print(f"full matrix with gunicorn {SERVER_SETTINGS[setting]}:")
        server = Gunicorn(setting, env)
        warm_up(server, annotators)
        summaries = []
        for overlap in args.overlaps:
            for n in args.annotators:
                summaries.append(
                    one_run(
                        server=server,
                        annotators=annotators,
                        n=n,
                        overlap=overlap,
                        duration=args.duration,
                        args=args,
                        label="main",
                    )
                )
        print(
            f"summary (gunicorn {SERVER_SETTINGS[setting]}; target at N={TARGET_N}: >={TARGET_RATE:g} judgments/s,"
            f" p99 < {TARGET_P99_MS:g} ms):"
        )
        print("  overlap      N  judgments/s  submit+next p99  errors  db checks  target")
        for row in summaries:
            print(
                f"  {row.overlap:>7} {row.n:>6} {row.judgments_per_second:>12.1f} {row.submit_p99_ms:>13.1f} ms"
                f" {row.errors:>7}  {'OK' if row.checks_ok else 'FAILED':<9}  {row.target_verdict()}"
            )
        at_target = [row for row in summaries if row.n == TARGET_N]
        missed = [
            f"overlap {row.overlap}: {'; '.join(row.target_misses())}"
            for row in at_target
            if row.target_misses()
        ]
        if not at_target:
            print(f"target: not measured (no run at N={TARGET_N})")
        else:
            print("target: " + (f"NOT MET ({' | '.join(missed)})" if missed else "MET"))
        print("db checks: " + ("OK" if all(row.checks_ok for row in summaries) else "FAILED"))
    finally:
        if server is not None:
            server.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            drop_database(db_name)


if __name__ == "__main__":
    main()
