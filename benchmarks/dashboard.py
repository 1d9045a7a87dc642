"""Server time and SQL queries of every page an ML engineer or a manager reads, on a project with a realistic
amount of data: 100,000 judgments from 50 annotators over 60 days, on PostgreSQL.

What it measures. The pages are discovered, not listed: every GET route of `annotation_web.urls` (walked
through its includes) that is not an annotator's, an API or an auth route — the dashboards and their CSV / JSON
data endpoints (everything under `dashboard/`), the jobs, models, loop, compare and job-form pages — plus the
API data endpoints the pages stand beside (`api/projects/<slug>/dashboard/`, `…/leaderboard/`,
`…/loop/events/`, `api/jobs/`, `api/models/`). Route arguments are filled from the seeded data (`slug`: the
project; `pk`: a finished RL job for job routes, the restorer in use for model routes; `plot`: every plot the
dashboards name; `kind`: every job form); a route with any other argument is listed as not timed. Each page
is fetched in-process with Django's test client, logged in (the manager for the `dashboard` pages, the engineer
for the others): one warm-up GET, then `--repeats` (5) GETs, each timed with `time.perf_counter()` around the
whole request (middleware, session, view, template, the streamed body) with its SQL queries counted by
`CaptureQueriesContext`. The report gives the median and max ms and the queries of each page, measured twice:
after `--judgments / 10` judgments and after all of them (the same pairs, inputs, versions, jobs and days:
only the number of judgments changes), so a query count that grows with the data shows.

Targets: every page answers 200 (or a redirect) in under 1 s (median), and its number of queries does not
change with the number of judgments. Exit status 1 when either is missed.

The data (seeded with `bulk_create` in chunks, created_at set explicitly): 1 project; 50 annotators (three
too fast, one side-biased, one below the gold threshold: the people page's flags have something to find), an
engineer and a manager; restorer versions v1 (supervised) → v2 (RL) → v3 (RL, in use) → v4 (RL, not
promoted), reward models v1–v3, a classical and a reference "model"; ~2,000 inputs in four import batches with
degradation severities; candidates of each version; ordinary, cross-version and gold pairs; judgments each with
its reservation (outcome mix, shown side, durations), some live and expired reservations; finished, failed,
running and queued jobs; loop events, version changes and judgment snapshots. `Pair.judgment_count` and
`open_slots` are recomputed after each step and checked with `labeling.queue.queue_invariant_violations`;
the database is then `ANALYZE`d (a live one has autovacuum's statistics; a bulk-loaded one has none).

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/dashboard.py
    ~/.venvs/pref-restore/bin/python benchmarks/dashboard.py --quick     # 2,000 judgments: does it run?

It is heavy (seeding 100,000 judgments and ~100 pages × 6 requests × 2 sizes): run it under
`flock /tmp/pref-heavy.lock`. It uses its own database (`--database-url`, default
`pref_restore_dashboard_bench`), created when missing and emptied (`flush`) before seeding; `--fresh` drops and
recreates it. Writes its report to `benchmarks/results/dashboard.txt` (`--quick`: `dashboard_quick.txt`;
`--results-name` to choose).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pref_restore_dashboard_bench"
TARGET_MS = 1000.0
SLUG = "faces"
CHUNK = 5000
SLOW_WARM_UP_MS = 5 * TARGET_MS  # a page whose warm-up took longer is timed twice, not `--repeats` times
STREAM_LIMIT_SECONDS = 5.0  # a streamed body (server-sent events) is read for at most this long

# Routes never timed: the annotators' pages and files, auth, the admin.
EXCLUDED_PREFIXES = ("login/", "logout/", "admin/", "files/", "annotate/")
EXCLUDED_NAMES = ("reservation-image", "storage-file", "annotate", "login", "logout")
# The API data endpoints timed beside the pages (every other `api/` route is left out).
API_ROUTES = (
    "api/projects/<slug>/dashboard/",
    "api/projects/<slug>/leaderboard/",
    "api/jobs/",
    "api/models/",
    "api/projects/<slug>/loop/events/",
)

# Annotators planted for the people page's flags (indexes into the annotators).
TOO_FAST = (0, 1, 2)
SIDE_BIASED = 3
BELOW_GOLD = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    parser.add_argument("--judgments", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5, help="timed GETs per page (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 judgments, 400 inputs: does it run?")
    parser.add_argument("--results-name", default=None, help="report file name under benchmarks/results")
    args = parser.parse_args(argv)
    if args.quick:
        args.judgments = min(args.judgments, 2000)
        args.inputs = min(args.inputs, 400)
    if args.annotators < 10:
        parser.error("--annotators must be at least 10 (five of them are planted for the flags)")
    name = urlsplit(args.database_url).path.lstrip("/")
    if "bench" not in name:
        # The database is emptied before seeding: never one of the project's own or test databases.
        parser.error(f"refusing database {name!r}: its name must contain 'bench' (it is flushed)")
    return args


# --- Django and the database ---------------------------------------------------------------------------


def configure_environment(args: argparse.Namespace) -> Path:
    var_dir = Path(tempfile.mkdtemp(prefix="pref-dashboard-bench-"))
    (var_dir / "static").mkdir()
    os.environ.pop("REDIS_CACHE_URL", None)  # the settings' default cache (per process)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "annotation_web.settings",
            "DATABASE_URL": args.database_url,
            "DATABASE_CONN_MAX_AGE": "600",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "dashboard-benchmark-" + secrets.token_hex(24),
            "PREF_VAR_DIR": str(var_dir),
            "PREF_STORAGE": "local",
            "PREF_STORAGE_ROOT": str(var_dir / "storage"),
            "PREF_LOG_LEVEL": "ERROR",
            "PREF_THROTTLE_USER": "1000000/min",
        }
    )
    return var_dir


def ensure_database(url: str, *, fresh: bool) -> str:
    """Create the database when missing (drop it first with `fresh`); say what was done."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        if fresh:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return "existing"
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return "created"


def setup_django(*, empty_first: bool) -> None:
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if empty_first:
        call_command("flush", verbosity=0, interactive=False)
    # A page that crashes is reported from the response (its status and exception), not logged at length.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)


def analyze() -> None:
    """Planner statistics of the freshly loaded tables, as autovacuum keeps them on a live database: without
    them PostgreSQL plans for the few rows it saw before the bulk load (a filtered people page took 83 s)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def set_created_at(model, ids: list[int], times: list[datetime]) -> None:
    """`created_at` of rows whose field is `auto_now_add` (bulk_create set it to now): one UPDATE per chunk."""
    from django.db import connection

    table = model._meta.db_table
    for start in range(0, len(ids), CHUNK):
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" AS t SET created_at = v.created_at '  # noqa: S608 (table from _meta)
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, created_at) WHERE t.id = v.id",
                [ids[start : start + CHUNK], times[start : start + CHUNK]],
            )


# --- the data ------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Every judgment of the full size, decided up front; the two measured sizes insert parts of it."""

    pair: np.ndarray  # index into World.pairs
    annotator: np.ndarray  # index into World.annotators
    outcome: np.ndarray  # str
    shown_left: np.ndarray  # "a" | "b"
    duration_ms: np.ndarray
    at: np.ndarray  # seconds since World.start
    is_gold: np.ndarray


@dataclass
class World:
    now: datetime
    start: datetime
    days: int
    project: Any = None
    engineer: Any = None
    manager: Any = None
    annotators: list[Any] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)
    inputs: list[int] = field(default_factory=list)
    input_day: np.ndarray | None = None
    held_out: list[int] = field(default_factory=list)
    candidates: int = 0
    pairs: list[int] = field(default_factory=list)  # pair ids, gold ones last
    pair_created: np.ndarray | None = None  # seconds since start
    pair_gold: np.ndarray | None = None
    pair_diff: np.ndarray | None = None  # quality of a minus b (logits) for ordinary pairs
    pair_wanted: np.ndarray | None = None  # overlap of each pair
    plan: Plan | None = None
    inserted: int = 0
    seed_seconds: dict[str, float] = field(default_factory=dict)

    def at(self, day: float) -> datetime:
        return self.start + timedelta(days=day)


# When things happened, in days after the start (of a `--days` long history; scaled for other lengths).
TIMELINE = {
    "import-1": 0.2,
    "train_restorer-1": 1.0,
    "generate-1": 2.0,
    "import-2": 14.0,
    "train_reward-1": 12.0,
    "train_rl-1": 13.0,
    "evaluate-1": 14.0,
    "generate-2": 15.0,
    "train_rl-failed": 20.0,
    "import-3": 28.0,
    "train_reward-2": 30.0,
    "train_rl-2": 31.0,
    "evaluate-2": 32.0,
    "generate-3": 33.0,
    "generate-cancelled": 36.0,
    "import-4": 42.0,
    "train_reward-3": 50.0,
    "train_rl-3": 52.0,
    "evaluate-3": 53.0,
}
BATCHES = ("batch-1", "batch-2", "batch-3", "batch-4")
# Quality of each restorer (logit scale) from which ordinary pairs' outcomes are drawn.
QUALITY = {"bicubic": 0.0, "v1": 1.0, "v2": 1.4, "v3": 1.7}


def seed_world(args: argparse.Namespace, rng: np.random.Generator) -> World:
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from annotation_web.accounts.models import ProjectMembership, Role, User
    from annotation_web.labeling.pairs import project_create

    now = timezone.now().replace(microsecond=0)
    world = World(now=now, start=now - timedelta(days=args.days), days=args.days)
    scale = args.days / 60.0

    def day(name: str) -> float:
        return TIMELINE[name] * scale

    # People: one password hash for all (nobody logs in with it; the pages are fetched with force_login).
    password = make_password(secrets.token_urlsafe(16))
    users = [
        User(
            username=f"annotator-{index:02d}",
            role=Role.ANNOTATOR,
            password=password,
            date_joined=world.at(rng.uniform(0, 10 * scale)),
        )
        for index in range(args.annotators)
    ]
    users += [
        User(username="engineer", role=Role.ENGINEER, password=password, date_joined=world.start),
        User(username="manager", role=Role.MANAGER, password=password, date_joined=world.start),
    ]
    users = User.objects.bulk_create(users)
    world.annotators, world.engineer, world.manager = users[:-2], users[-2], users[-1]
    world.project = project_create(
        name="Faces (dashboard benchmark)",
        slug=SLUG,
        overlap=1,
        reservation_ttl_seconds=600,
        gold_rate=0.05,
    )
    type(world.project).objects.filter(pk=world.project.pk).update(created_at=world.start)
    ProjectMembership.objects.bulk_create(
        [ProjectMembership(user=user, project=world.project) for user in users]
    )
    seed_jobs_and_versions(world, day)
    seed_inputs_candidates_pairs(args, world, rng, day)
    world.plan = plan_judgments(args, world, rng)
    seed_loop(world, day)
    return world


def _job_history(kind: str, started: datetime, finished: datetime | None, state: str) -> tuple[str, str]:
    lines = [f"{started.isoformat(timespec='seconds')} attempt 1 started on worker train@gpu-1"]
    log = [f"{kind}: step {step}/2000 loss {0.9 / (1 + step / 300):.4f}" for step in range(0, 2001, 100)]
    if kind == "train_rl" and state != "failed":
        lines.append(
            f"{(started + timedelta(minutes=40)).isoformat(timespec='seconds')} worker lost; taken over"
        )
        lines.append(
            f"{(started + timedelta(minutes=41)).isoformat(timespec='seconds')} resumed from step 600"
        )
    if finished is not None:
        lines.append(f"{finished.isoformat(timespec='seconds')} {state}")
    return "\n".join(log[-20:]), "\n".join(lines)


def seed_jobs_and_versions(world: World, day) -> None:
    """Finished jobs and the versions they made (lineage v1 → v2 → v3 → v4), plus a failed, a cancelled, a
    running and a queued job."""
    from annotation_web.jobs.models import Job, JobState
    from annotation_web.registry.models import ModelKind, ModelVersion

    slug = world.project.slug
    specs: list[tuple[str, str, str, float, float | None]] = []  # (key, kind, state, start day, hours)
    for key in TIMELINE:
        kind = key.rsplit("-", 1)[0]
        state = JobState.SUCCEEDED
        if key.endswith("failed"):
            state = JobState.FAILED
        elif key.endswith("cancelled"):
            state = JobState.CANCELLED
        hours = {"import": 0.1, "generate": 0.5, "train_reward": 1.5, "train_rl": 6.0, "evaluate": 0.3}
        specs.append((key, kind, state, day(key), hours.get(kind, 1.0)))
    jobs = []
    for _key, kind, state, start_day, hours in specs:
        started = world.at(start_day)
        finished = started + timedelta(hours=hours)
        log_tail, history = _job_history(kind, started, finished, state)
        jobs.append(
            Job(
                kind=kind,
                state=state,
                project=world.project,
                created_by=world.engineer if kind in ("import", "train_restorer") else None,
                params={"project": slug, "preset": "small", "max_steps": 2000},
                progress_done=2000 if state == JobState.SUCCEEDED else 700,
                progress_total=2000,
                log_tail=log_tail,
                history=history,
                error="worker lost 3 times (max_attempts 3)" if state == JobState.FAILED else "",
                started_at=started,
                finished_at=finished,
                queue="train" if kind.startswith("train") else "default",
                enqueued_at=started - timedelta(seconds=5),
                attempt=2 if kind == "train_rl" else 1,
                worker="train@gpu-1",
                committed_at=finished - timedelta(seconds=30) if state == JobState.SUCCEEDED else None,
            )
        )
    running_start = world.now - timedelta(minutes=12)
    log_tail, history = _job_history("train_reward", running_start, None, JobState.RUNNING)
    jobs.append(
        Job(
            kind="train_reward",
            state=JobState.RUNNING,
            project=world.project,
            params={"project": slug, "size": "small", "max_steps": 2000},
            progress_done=800,
            progress_total=2000,
            log_tail=log_tail,
            history=history,
            started_at=running_start,
            queue="train",
            enqueued_at=running_start,
            attempt=1,
            worker="train@gpu-1",
            heartbeat_at=world.now,
            lease_expires_at=world.now + timedelta(hours=3),
        )
    )
    jobs.append(
        Job(
            kind="generate",
            state=JobState.QUEUED,
            project=world.project,
            params={"project": slug},
            queue="default",
        )
    )
    jobs = Job.objects.bulk_create(jobs)
    keys = [spec[0] for spec in specs] + ["train_reward-running", "generate-queued"]
    world.jobs = dict(zip(keys, jobs, strict=True))
    set_created_at(
        Job,
        [job.pk for job in jobs],
        [job.started_at - timedelta(seconds=8) if job.started_at else world.now for job in jobs],
    )

    def version(
        kind, name, number, made, *, parent=None, job=None, metrics=None, lineage=None, description=""
    ):
        row = ModelVersion.objects.create(
            kind=kind,
            name=name,
            version=number,
            parent=parent,
            made_by_job=world.jobs[job] if job else None,
            metrics=metrics or {},
            config={"lineage": {"project": slug, **(lineage or {})}}
            if kind in ("restorer", "reward")
            else {},
            artifact_key=f"models/{kind}/{name}/{uuid.uuid4().hex}" if kind in ("restorer", "reward") else "",
            description=description,
        )
        ModelVersion.objects.filter(pk=row.pk).update(created_at=made)
        row.created_at = made
        return row

    def done(key: str) -> datetime:
        return world.jobs[key].finished_at

    v = world.versions
    v["bicubic"] = version(ModelKind.CLASSICAL, "bicubic", 1, world.start, description="Bicubic upscaling")
    v["hq"] = version(ModelKind.REFERENCE, "hq", 1, world.start, description="The HQ original")
    v["v1"] = version(
        ModelKind.RESTORER,
        SLUG,
        1,
        done("train_restorer-1"),
        job="train_restorer-1",
        metrics={"val_psnr": 24.13, "val_psnr_bicubic": 22.31, "steps": 4000, "train_loss": 0.01234},
        lineage={"job": world.jobs["train_restorer-1"].pk, "train_config": "small"},
        description="Supervised restorer (small, 4000 steps)",
    )
    v["r1"] = version(
        ModelKind.REWARD,
        SLUG,
        1,
        done("train_reward-1"),
        job="train_reward-1",
        metrics={"val_pairwise_accuracy": 0.683, "val_log_loss": 0.612, "n_val_judgments": 812},
        lineage={"job": world.jobs["train_reward-1"].pk},
    )

    def rl_metrics(reward, entropy, held_out, in_use_held_out, win, psnr, in_use_psnr) -> dict:
        return {
            "rl": {
                "final": {"reward/total": reward},
                "entropy_before": entropy[0],
                "entropy_after": entropy[1],
            },
            "evaluation": {
                "held_out": held_out,
                "in_use": {"held_out": in_use_held_out, "psnr": in_use_psnr},
                "win_rate_vs_first": win,
                "psnr": psnr,
            },
        }

    for name, parent, reward, job, metrics in (
        ("v2", "v1", "r1", "train_rl-1", rl_metrics(0.42, (0.081, 0.064), 0.55, 0.48, 0.61, 24.02, 24.13)),
        ("v3", "v2", "r2", "train_rl-2", rl_metrics(0.57, (0.064, 0.052), 0.61, 0.55, 0.66, 23.95, 24.02)),
        ("v4", "v3", "r2", "train_rl-3", rl_metrics(0.88, (0.052, 0.021), 0.52, 0.61, 0.44, 23.05, 23.95)),
    ):
        if name == "v3":
            v["r2"] = version(
                ModelKind.REWARD,
                SLUG,
                2,
                done("train_reward-2"),
                job="train_reward-2",
                metrics={"val_pairwise_accuracy": 0.731, "val_log_loss": 0.571, "n_val_judgments": 2410},
                lineage={"job": world.jobs["train_reward-2"].pk},
            )
        if name == "v4":
            v["r3"] = version(
                ModelKind.REWARD,
                SLUG,
                3,
                done("train_reward-3"),
                job="train_reward-3",
                metrics={"val_pairwise_accuracy": 0.722, "val_log_loss": 0.580, "n_val_judgments": 4120},
                lineage={"job": world.jobs["train_reward-3"].pk},
            )
        v[name] = version(
            ModelKind.RESTORER,
            SLUG,
            int(name[1:]),
            done(job),
            parent=v[parent],
            job=job,
            metrics=metrics,
            lineage={
                "parent_restorer_id": v[parent].pk,
                "reward_id": v[reward].pk,
                "job": world.jobs[job].pk,
            },
            description=f"RL fine-tune of {v[parent]} against {v[reward]}",
        )
    outputs = {
        "train_restorer-1": {"restorer_id": v["v1"].pk},
        "train_reward-1": {"reward_id": v["r1"].pk},
        "train_reward-2": {"reward_id": v["r2"].pk},
        "train_reward-3": {"reward_id": v["r3"].pk},
        "train_rl-1": {"restorer_id": v["v2"].pk},
        "train_rl-2": {"restorer_id": v["v3"].pk},
        "train_rl-3": {"restorer_id": v["v4"].pk},
    }
    for key, output in outputs.items():
        Job.objects.filter(pk=world.jobs[key].pk).update(outputs=output)


def seed_inputs_candidates_pairs(
    args: argparse.Namespace, world: World, rng: np.random.Generator, day
) -> None:
    from annotation_web.labeling.models import Candidate, FaceInput, Pair

    v = world.versions
    n = args.inputs
    batch_of = np.minimum(np.arange(n) * len(BATCHES) // n, len(BATCHES) - 1)
    batch_day = np.array([day(f"import-{index + 1}") for index in range(len(BATCHES))])
    input_day = batch_day[batch_of] + rng.uniform(0, 0.05, n)
    world.input_day = input_day
    downscale = np.exp(rng.uniform(math.log(1.2), math.log(16), n))
    rows = [
        FaceInput(
            project=world.project,
            source_name=f"ffhq/{BATCHES[batch_of[index]]}/{index:05d}.png",
            content_hash=f"{index:064x}",
            hq_key=f"inputs/{SLUG}/{index % 256:02x}/{index:064x}/hq.png",
            lq_key=f"inputs/{SLUG}/{index % 256:02x}/{index:064x}/lq.png",
            degradation={
                "preset": "gfpgan",
                "downscale": round(float(downscale[index]), 3),
                "blur_sigma": round(float(rng.uniform(0.1, 10)), 3),
                "noise_sigma": round(float(rng.uniform(0, 20)), 3),
                "jpeg_quality": int(rng.integers(60, 100)),
            },
            instruction="Remove the blur and the noise; keep the identity.",
            batch=BATCHES[batch_of[index]],
        )
        for index in range(n)
    ]
    inputs = FaceInput.objects.bulk_create(rows, batch_size=CHUNK)
    world.inputs = [row.pk for row in inputs]
    set_created_at(FaceInput, world.inputs, [world.at(d) for d in input_day])
    world.held_out = world.inputs[:: max(1, n // 50)][:50]

    # Candidates per input: bicubic, the HQ reference (gold pairs only), restorers v1–v3 with 4 seeds each;
    # v4 (the candidate the loop did not promote) on the held-out inputs only.
    made = {
        "bicubic": 0.0,
        "hq": 0.0,
        "v1": day("generate-1"),
        "v2": day("generate-2"),
        "v3": day("generate-3"),
        "v4": day("evaluate-3"),
    }
    generation = {
        "v1": f"job-{world.jobs['generate-1'].pk}",
        "v2": f"job-{world.jobs['generate-2'].pk}",
        "v3": f"job-{world.jobs['generate-3'].pk}",
        "v4": f"job-{world.jobs['evaluate-3'].pk}",
    }
    layout = [("bicubic", 0), ("hq", 0)] + [(name, seed) for name in ("v1", "v2", "v3") for seed in range(4)]
    held = set(world.held_out)
    candidate_rows, candidate_days = [], []
    for index, input_id in enumerate(world.inputs):
        extra = [("v4", 0), ("v4", 1)] if input_id in held else []
        for name, seed in layout + extra:
            candidate_rows.append(
                Candidate(
                    face_input_id=input_id,
                    model_version=v[name],
                    seed=seed,
                    generation=generation.get(name, ""),
                    image_key=f"c/{uuid.uuid4()}.png",
                )
            )
            candidate_days.append(max(made[name], input_day[index]) + 0.01)
    candidates = Candidate.objects.bulk_create(candidate_rows, batch_size=CHUNK)
    set_created_at(Candidate, [row.pk for row in candidates], [world.at(d) for d in candidate_days])
    world.candidates = len(candidates)
    # (version, seed) -> position in an input's block of `layout` candidates
    position = {key: offset for offset, key in enumerate(layout)}
    per_input = len(layout)
    block_start = []
    offset = 0
    for input_id in world.inputs:
        block_start.append(offset)
        offset += per_input + (2 if input_id in held else 0)

    # Pair templates per input, served first to last: cross-version pairs, then pairs of seeds of one version.
    templates: list[tuple[tuple[str, int], tuple[str, int], str]] = [
        (("v2", 0), ("v1", 0), "cross-version"),
        (("v3", 0), ("v2", 0), "cross-version"),
        (("v3", 1), ("v1", 1), "cross-version"),
        (("v1", 0), ("bicubic", 0), "cross-version"),
    ]
    for name in ("v1", "v2", "v3"):
        templates += [((name, a), (name, b), "uncertainty") for a in range(4) for b in range(a + 1, 4)]
    for first, second in (("v2", "v1"), ("v3", "v2"), ("v3", "v1")):
        templates += [
            ((first, a), (second, b), "cross-version")
            for a in range(4)
            for b in range(4)
            if (first, a, second, b) not in {("v2", 0, "v1", 0), ("v3", 0, "v2", 0), ("v3", 1, "v1", 1)}
        ]
    ordinary_judgments = args.judgments * (1 - world.project.gold_rate) * 0.96  # less gold and skips
    slots_needed = ordinary_judgments / 0.85  # 15% of the slots stay open: a queue to show
    uncertain = sum(reason == "uncertainty" for _, _, reason in templates)
    per_pair = 1 + 0.3 * uncertain / len(templates)  # mean overlap: 30% of the seed-vs-seed pairs want two
    k = math.ceil(slots_needed / per_pair / n)
    if k > len(templates):
        raise SystemExit(
            f"{args.judgments} judgments need more inputs than {n} (at most {len(templates)} pairs each)"
        )
    pair_rows, created, diffs, wanted = [], [], [], []
    for index, input_id in enumerate(world.inputs):
        chosen = rng.choice(len(templates), size=k, replace=False)
        for template in sorted(chosen):
            (a_name, a_seed), (b_name, b_seed), reason = templates[template]
            if rng.random() < 0.5:
                (a_name, a_seed), (b_name, b_seed) = (b_name, b_seed), (a_name, a_seed)
            a = candidates[block_start[index] + position[(a_name, a_seed)]]
            b = candidates[block_start[index] + position[(b_name, b_seed)]]
            own = 2 if reason == "uncertainty" and rng.random() < 0.3 else None
            pair_rows.append(
                Pair(
                    project=world.project,
                    face_input_id=input_id,
                    candidate_a=a,
                    candidate_b=b,
                    batch=BATCHES[batch_of[index]],
                    priority=int(rng.integers(0, 1000)),
                    selection_reason=reason,
                    selection_score=float(rng.uniform(0, 1)) if reason == "uncertainty" else None,
                    open_slots=own or 1,
                    overlap=own,
                )
            )
            created.append(max(made[a_name], made[b_name], input_day[index]) + 0.02)
            diffs.append(QUALITY[a_name] - QUALITY[b_name] + rng.normal(0, 0.3))
            wanted.append(own or 1)
    # Gold: the HQ original against bicubic on the most degraded inputs.
    severe = np.argsort(-downscale)[: max(20, min(400, n // 5))]
    for index in sorted(severe):
        hq = candidates[block_start[index] + position[("hq", 0)]]
        bicubic = candidates[block_start[index] + position[("bicubic", 0)]]
        pair_rows.append(
            Pair(
                project=world.project,
                face_input_id=world.inputs[index],
                candidate_a=hq,
                candidate_b=bicubic,
                is_gold=True,
                gold_outcome="a",
                batch=BATCHES[batch_of[index]],
                selection_reason="gold: HQ against a heavy degradation",
                open_slots=0,
            )
        )
        created.append(input_day[index] + 0.02)
        diffs.append(0.0)
        wanted.append(0)
    pairs = Pair.objects.bulk_create(pair_rows, batch_size=CHUNK)
    world.pairs = [row.pk for row in pairs]
    world.pair_created = np.array(created) * 86400.0
    world.pair_gold = np.array([row.is_gold for row in pair_rows])
    world.pair_diff = np.array(diffs)
    world.pair_wanted = np.array(wanted)
    set_created_at(Pair, world.pairs, [world.at(d) for d in created])


def _distinct_annotators(pair: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An annotator for each judgment, drawn by activity, never twice on one pair."""
    count = len(weights)
    annotator = rng.choice(count, size=len(pair), p=weights)
    for _ in range(200):
        key = pair.astype(np.int64) * count + annotator
        _, first = np.unique(key, return_index=True)
        repeated = np.ones(len(key), dtype=bool)
        repeated[first] = False
        if not repeated.any():
            return annotator
        annotator[repeated] = rng.choice(count, size=int(repeated.sum()), p=weights)
    raise RuntimeError("could not give every judgment of a pair its own annotator")


def plan_judgments(args: argparse.Namespace, world: World, rng: np.random.Generator) -> Plan:
    total = args.judgments
    gold_total = int(round(total * world.project.gold_rate))
    ordinary = total - gold_total
    skips = int(round(ordinary * 0.04))
    fills = ordinary - skips
    ordinary_pairs = np.flatnonzero(~world.pair_gold)
    slots = np.repeat(ordinary_pairs, world.pair_wanted[ordinary_pairs])
    if fills > len(slots):
        raise SystemExit(f"not enough pair slots ({len(slots)}) for {fills} judgments")
    filled = rng.choice(slots, size=fills, replace=False)
    skipped = rng.choice(ordinary_pairs, size=skips)
    pair = np.concatenate([filled, skipped])
    skip = np.concatenate([np.zeros(fills, bool), np.ones(skips, bool)])
    activity = rng.gamma(2.0, 1.0, args.annotators)
    planted = [*TOO_FAST, SIDE_BIASED, BELOW_GOLD]  # busy enough for their flags' minimum answers
    activity[planted] = np.maximum(activity[planted], np.median(activity) * 1.5)
    weights = activity / activity.sum()
    annotator = _distinct_annotators(pair, weights, rng)

    # Gold: each annotator answers about gold_rate of their judgments on gold pairs (each gold pair once).
    gold_pairs = np.flatnonzero(world.pair_gold)
    per_annotator = np.bincount(annotator, minlength=args.annotators)
    quota = np.minimum(np.round(per_annotator * gold_total / max(1, ordinary)).astype(int), len(gold_pairs))
    gold_pair = np.concatenate(
        [rng.choice(gold_pairs, size=q, replace=False) for q in quota] or [np.zeros(0, int)]
    ).astype(int)
    gold_annotator = np.repeat(np.arange(args.annotators), quota)

    pair = np.concatenate([pair, gold_pair])
    annotator = np.concatenate([annotator, gold_annotator])
    skip = np.concatenate([skip, rng.random(len(gold_pair)) < 0.02])
    is_gold = world.pair_gold[pair]
    size = len(pair)
    shown_left = np.where(rng.random(size) < 0.5, "a", "b")

    # Outcomes: ties and both-bad, else the better one (by the versions' quality) with the annotator's noise.
    draw = rng.random(size)
    truth_a = rng.random(size) < 1 / (1 + np.exp(-1.5 * world.pair_diff[pair]))
    careful = rng.random(size) < 0.85
    picks_a = np.where(careful, truth_a, ~truth_a)
    fast = np.isin(annotator, TOO_FAST)
    picks_a = np.where(fast, rng.random(size) < 0.5, picks_a)
    biased = annotator == SIDE_BIASED
    picks_left = rng.random(size) < 0.8
    picks_a = np.where(biased, picks_left == (shown_left == "a"), picks_a)
    outcome = np.where(picks_a, "a", "b").astype(object)
    outcome[draw < 0.16] = "tie"
    outcome[draw < 0.06] = "both_bad"
    # Gold: the HQ side (a) is right with the annotator's accuracy.
    accuracy = np.where(annotator == BELOW_GOLD, 0.45, 0.95)
    gold_right = rng.random(size) < accuracy
    outcome = np.where(is_gold, np.where(gold_right, "a", np.where(draw < 0.5, "b", "tie")), outcome)
    outcome = np.where(skip, "skip", outcome)

    median_ms = np.exp(rng.uniform(np.log(2500), np.log(7000), args.annotators))
    median_ms[list(TOO_FAST)] = rng.uniform(500, 1000, len(TOO_FAST))
    duration = np.clip(rng.lognormal(np.log(median_ms[annotator]), 0.5), 150, 180_000).astype(int)

    # When: after the pair was made, in working hours, weekdays busier, never later than half an hour ago.
    end = (world.now - world.start).total_seconds() - 1800
    created = world.pair_created[pair]
    at = created + rng.random(size) ** 0.8 * (end - created)
    day_start = np.floor(at / 86400) * 86400
    at = np.clip(day_start + 8 * 3600 + rng.random(size) * 10 * 3600, created + 600, end)
    return Plan(
        pair=pair,
        annotator=annotator,
        outcome=outcome.astype(str),
        shown_left=shown_left,
        duration_ms=duration,
        at=at,
        is_gold=is_gold,
    )


def insert_judgments(world: World, indexes: np.ndarray) -> None:
    """Judgments of the plan at `indexes`, oldest first, each with its submitted reservation."""
    from annotation_web.labeling.models import Judgment, Reservation, ReservationState

    plan = world.plan
    order = indexes[np.argsort(plan.at[indexes], kind="stable")]
    ttl = timedelta(seconds=world.project.reservation_ttl_seconds)
    for start in range(0, len(order), CHUNK):
        chunk = order[start : start + CHUNK]
        reservations, judgments, times = [], [], []
        for index in chunk.tolist():
            at = world.start + timedelta(seconds=float(plan.at[index]))
            duration = int(plan.duration_ms[index])
            reserved = at - timedelta(milliseconds=duration + 150)
            reservation = Reservation(
                id=uuid.uuid4(),
                pair_id=world.pairs[plan.pair[index]],
                annotator_id=world.annotators[plan.annotator[index]].pk,
                shown_left=str(plan.shown_left[index]),
                state=ReservationState.SUBMITTED,
                created_at=reserved,
                shown_at=reserved + timedelta(milliseconds=150),
                expires_at=reserved + ttl,
            )
            reservations.append(reservation)
            outcome = str(plan.outcome[index])
            gold = bool(plan.is_gold[index])
            judgments.append(
                Judgment(
                    pair_id=reservation.pair_id,
                    annotator_id=reservation.annotator_id,
                    reservation=reservation,
                    outcome=outcome,
                    shown_left=reservation.shown_left,
                    idempotency_key=f"bench-{index}",
                    server_duration_ms=duration,
                    client_duration_ms=max(0, duration - 40),
                    is_gold=gold,
                    gold_correct=(outcome == "a") if gold and outcome != "skip" else None,
                )
            )
            times.append(at)
        Reservation.objects.bulk_create(reservations)
        made = Judgment.objects.bulk_create(judgments)
        set_created_at(Judgment, [row.pk for row in made], times)
    world.inserted += len(indexes)


def seed_live_and_expired_reservations(world: World, rng: np.random.Generator) -> None:
    """Reservations without a judgment: live ones (held through the run) on pairs the plan leaves open, and
    expired ones in the past."""
    from annotation_web.labeling.models import Reservation, ReservationState

    plan = world.plan
    taken = set((plan.pair.astype(np.int64) * len(world.annotators) + plan.annotator).tolist())
    judged = np.bincount(plan.pair[plan.outcome != "skip"], minlength=len(world.pairs))
    open_pairs = np.flatnonzero((~world.pair_gold) & (judged < world.pair_wanted))
    rows = []
    # One live reservation per annotator at most (the queue lets an annotator hold two: shown and prefetched).
    live_annotators = iter(rng.permutation(len(world.annotators)).tolist())
    for number, pair in enumerate(rng.choice(open_pairs, size=min(40, len(open_pairs)), replace=False)):
        live = number < min(25, len(world.annotators) // 2)
        for _ in range(50):
            annotator = next(live_annotators) if live else int(rng.integers(len(world.annotators)))
            if int(pair) * len(world.annotators) + annotator not in taken:
                break
        taken.add(int(pair) * len(world.annotators) + annotator)
        created = world.now - timedelta(seconds=30) if live else world.at(rng.uniform(1, world.days - 1))
        rows.append(
            Reservation(
                id=uuid.uuid4(),
                pair_id=world.pairs[int(pair)],
                annotator_id=world.annotators[annotator].pk,
                shown_left="a" if rng.random() < 0.5 else "b",
                state=ReservationState.ACTIVE if live else ReservationState.EXPIRED,
                created_at=created,
                shown_at=created,
                expires_at=world.now + timedelta(hours=6) if live else created + timedelta(minutes=10),
            )
        )
    Reservation.objects.bulk_create(rows)


def recount_pairs(world: World) -> None:
    """`judgment_count` (non-skip judgments) and `open_slots` (the queue invariant) of every pair."""
    from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
    from django.db.models.functions import Coalesce

    from annotation_web.labeling.models import Judgment, Outcome, Pair
    from annotation_web.labeling.queue import open_slots_recomputed

    judged = (
        Judgment.objects.filter(pair=OuterRef("pk"))
        .exclude(outcome=Outcome.SKIP)
        .order_by()
        .values("pair")
        .annotate(n=Count("pk"))
        .values("n")
    )
    pairs = Pair.objects.filter(project=world.project)
    pairs.update(judgment_count=Coalesce(Subquery(judged, output_field=IntegerField()), Value(0)))
    pairs.filter(is_gold=False).update(open_slots=open_slots_recomputed(overlap=Value(world.project.overlap)))
    pairs.filter(is_gold=True).update(open_slots=0)


def refresh_snapshots(world: World) -> None:
    """One judgment snapshot per reward model, of the judgments made before it was trained (remade at each
    size), cited in the reward model's lineage."""
    from annotation_web.labeling.models import Judgment, JudgmentSnapshot, Outcome
    from annotation_web.registry.models import ModelVersion

    JudgmentSnapshot.objects.filter(project=world.project).delete()
    for number, key in enumerate(("r1", "r2", "r3"), start=1):
        version = world.versions[key]
        before = Judgment.objects.filter(pair__project=world.project, created_at__lt=version.created_at)
        up_to = before.order_by("-pk").values_list("pk", flat=True).first() or 0
        ids = list(
            Judgment.objects.filter(pair__project=world.project, pk__lte=up_to)
            .exclude(outcome=Outcome.SKIP)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        snapshot = JudgmentSnapshot.objects.create(
            project=world.project,
            number=number,
            up_to_judgment_id=up_to,
            judgment_ids=ids,
            count=len(ids),
            sha256=secrets.token_hex(32),
            rows_key=f"exports/{SLUG}/snapshots/{uuid.uuid4()}.jsonl",
            schema_version=1,
        )
        JudgmentSnapshot.objects.filter(pk=snapshot.pk).update(created_at=version.created_at)
        lineage = {
            **version.config.get("lineage", {}),
            "judgments": len(ids),
            "up_to_judgment_id": up_to,
            "snapshot_id": snapshot.pk,
            "snapshot_number": number,
        }
        ModelVersion.objects.filter(pk=version.pk).update(config={**version.config, "lineage": lineage})


def seed_loop(world: World, day) -> None:
    """The loop's policy and state (v3 and reward v2 in use, held-out inputs, round 4), its decisions, and the
    history of what was in use."""
    from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange

    v, jobs = world.versions, world.jobs
    LoopPolicy.objects.create(project=world.project, enabled=True, updated_by=world.engineer)
    LoopState.objects.create(
        project=world.project,
        restorer=v["v3"],
        reward=v["r2"],
        tuned_with=v["r2"],
        generated_from=v["v3"],
        previous_restorer=v["v2"],
        reward_trained=v["r3"],
        held_out_input_ids=world.held_out,
        round=4,
        job=jobs["train_reward-running"],
        ticked_at=world.now - timedelta(seconds=15),
    )
    changes = [
        ("restorer", "put_in_use", "v1", None, world.engineer, "first restorer", "train_restorer-1"),
        ("reward", "put_in_use", "r1", None, None, "first reward model", "train_reward-1"),
        ("restorer", "promote", "v2", "v1", None, "held-out 0.55 > 0.48, PSNR −0.11 dB", "evaluate-1"),
        ("reward", "put_in_use", "r2", "r1", None, "held-out accuracy 0.731 > 0.683", "train_reward-2"),
        ("restorer", "promote", "v3", "v2", None, "held-out 0.61 > 0.55, PSNR −0.07 dB", "evaluate-2"),
    ]
    rows, times = [], []
    for kind, action, version, previous, by, reason, key in changes:
        rows.append(
            VersionChange(
                project=world.project,
                kind=kind,
                action=action,
                version=v[version],
                previous=v[previous] if previous else None,
                by=by,
                reason=reason,
            )
        )
        times.append(jobs[key].finished_at + timedelta(minutes=2))
    rows.append(
        VersionChange(
            project=world.project,
            kind="restorer",
            action="rollback",
            version=v["v2"],
            previous=v["v3"],
            by=world.engineer,
            reason="checking v3's gallery by hand",
        )
    )
    times.append(world.at(day("evaluate-2") + 1))
    rows.append(
        VersionChange(
            project=world.project,
            kind="restorer",
            action="promote",
            version=v["v3"],
            previous=v["v2"],
            by=world.engineer,
            reason="gallery fine; back to v3",
        )
    )
    times.append(world.at(day("evaluate-2") + 1.1))
    made = VersionChange.objects.bulk_create(rows)
    set_created_at(VersionChange, [row.pk for row in made], times)

    # Decisions: what each job round did, and the ticks in between that waited for judgments.
    events, times = [], []
    decisions = {
        "train_restorer": "started",
        "train_reward": "started",
        "train_rl": "started",
        "evaluate": "started",
        "generate": "started",
    }
    round_of = {1: 0.0, 2: day("train_rl-1"), 3: day("train_rl-2"), 4: day("train_rl-3")}
    for key, job in jobs.items():
        if job.started_at is None or key.startswith("import"):
            continue
        kind = key.rsplit("-", 1)[0]
        number = max(r for r, start in round_of.items() if start <= (job.started_at - world.start).days + 0.5)
        events.append(
            LoopEvent(
                project=world.project,
                round=number,
                decision=decisions.get(kind, "started"),
                reason=f"started {kind} (policy: {kind})",
                inputs={"job_kind": kind},
                job=job,
            )
        )
        times.append(job.started_at)
        if job.finished_at is not None:
            decision = {"failed": "failed", "cancelled": "skipped"}.get(job.state, "applied")
            if key == "evaluate-3":
                decision = "not_promoted"
            elif key.startswith("evaluate"):
                decision = "promoted"
            events.append(
                LoopEvent(
                    project=world.project,
                    round=number,
                    decision=decision,
                    reason=f"{kind} job {job.pk} {job.state}",
                    inputs={"job_id": job.pk},
                    job=job,
                )
            )
            times.append(job.finished_at + timedelta(minutes=1))
    for hour in range(0, world.days * 24, 6):
        events.append(
            LoopEvent(
                project=world.project,
                round=max(r for r, start in round_of.items() if start <= hour / 24),
                decision="waiting",
                reason="waiting for 500 new judgments since the reward model in use was trained",
                inputs={"new_judgments": hour},
            )
        )
        times.append(world.at(hour / 24 + 0.01))
    made = LoopEvent.objects.bulk_create(events)
    set_created_at(LoopEvent, [row.pk for row in made], times)


# --- the pages -----------------------------------------------------------------------------------------


@dataclass
class Page:
    label: str  # the URL, or the route with what it is not timed for
    url: str | None
    role: str  # "manager" | "engineer"
    note: str = ""


@dataclass
class Timing:
    status: int
    median_ms: float | None = None
    max_ms: float | None = None
    queries: int | None = None
    queries_varied: bool = False
    repeats: int = 0
    error: str = ""
    body: bytes = b""
    sql: list[str] = field(default_factory=list)  # the queries of the last timed GET


CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


def _walk(patterns, prefix: str = ""):
    from django.urls import URLResolver
    from django.urls.resolvers import RoutePattern

    for pattern in patterns:
        route = str(pattern.pattern)
        regex = not isinstance(pattern.pattern, RoutePattern)
        full = prefix + route
        if isinstance(pattern, URLResolver):
            if full.startswith(EXCLUDED_PREFIXES):
                continue
            yield from _walk(pattern.url_patterns, full)
        else:
            yield full, pattern, regex


def _argument_values() -> dict[str, list[str]]:
    """Values of the route arguments other than slug and pk, where the project names them."""
    values: dict[str, list[str]] = {}
    try:
        from annotation_web.dashboards.plots import PLOT_PAGES

        values["plot"] = list(PLOT_PAGES)
    except ImportError:
        pass
    try:
        from annotation_web.training.pages import FORM_KINDS

        values["kind"] = list(FORM_KINDS)
    except ImportError:
        pass
    return values


def discover_pages(world: World) -> list[Page]:
    """The GET pages of engineers and managers and their data endpoints, with their arguments filled in."""
    from django.urls import get_resolver

    values = _argument_values()
    job_pk = world.jobs["train_rl-2"].pk
    model_pk = world.versions["v3"].pk
    pages: list[Page] = []
    for route, pattern, regex in _walk(get_resolver().url_patterns):
        name = pattern.name or ""
        generic = CONVERTER.sub(lambda m: f"<{m['name']}>", route)
        if route.startswith(EXCLUDED_PREFIXES) or name in EXCLUDED_NAMES:
            continue
        if route.startswith("api/") and generic not in API_ROUTES:
            continue
        role = "manager" if "dashboard" in route else "engineer"
        if regex:
            pages.append(Page(f"/{route}", None, role, "not timed (a regex route)"))
            continue
        callback = pattern.callback
        module = getattr(getattr(callback, "view_class", callback), "__module__", "")
        urls = [("/" + route, "")]
        for match in CONVERTER.finditer(route):
            argument = match["name"]
            if argument == "slug":
                options = [world.project.slug]
            elif argument == "pk" and ("job" in name or ".jobs." in module):
                options = [str(job_pk)]
            elif argument == "pk" and ("model" in name or "model" in module or ".registry." in module):
                options = [str(model_pk)]
            elif argument in values:
                options = values[argument]
            else:
                urls = []
                pages.append(Page(f"/{route}", None, role, f"not timed (argument {argument})"))
                break
            urls = [(url.replace(match.group(0), option, 1), "") for url, _ in urls for option in options]
        for url, note in urls:
            pages.append(Page(url, url, role, note))
            if route.startswith("dashboard/") and "<plot>" not in generic and "data/" not in route:
                # The same page with the filters a manager sets: the last 30 days of one batch.
                since = (world.now - timedelta(days=30)).date().isoformat()
                filtered = (
                    f"{url}?date_from={since}&date_to={world.now.date().isoformat()}&batch={BATCHES[1]}"
                )
                pages.append(Page(filtered, filtered, role, "filtered"))
    return pages


def _read_body(response) -> bytes:
    if not getattr(response, "streaming", False):
        return response.content
    deadline = time.perf_counter() + STREAM_LIMIT_SECONDS
    chunks = []
    for chunk in response.streaming_content:
        chunks.append(chunk)
        if time.perf_counter() > deadline:
            break
    response.close()
    return b"".join(chunks)


def _error_text(response) -> str:
    exc_info = getattr(response, "exc_info", None)
    if not exc_info:
        return ""
    import traceback

    kind, value, tb = exc_info
    frames = traceback.extract_tb(tb)
    where = ""
    for frame in reversed(frames):
        if "/annotation_web/" in frame.filename:
            where = f" at {Path(frame.filename).relative_to(REPO)}:{frame.lineno}"
            break
    return f"{kind.__name__}: {str(value)[:160]}{where}"


def time_pages(world: World, pages: list[Page], repeats: int) -> dict[str, Timing]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for role, user in (("manager", world.manager), ("engineer", world.engineer)):
        client = Client(raise_request_exception=False)
        client.force_login(user)
        clients[role] = client
    timings: dict[str, Timing] = {}
    for page in pages:
        if page.url is None:
            continue
        client = clients[page.role]
        started = time.perf_counter()
        warm = client.get(page.url)
        _read_body(warm)
        warm_ms = (time.perf_counter() - started) * 1000
        if warm.status_code == 405:
            timings[page.url] = Timing(status=405, error="not a GET page")
            continue
        times, queries, statuses, body, error, sql = [], [], set(), b"", "", []
        # A page far over the target is timed twice only (it misses the target whatever its median).
        count = repeats if warm_ms < SLOW_WARM_UP_MS else min(repeats, 2)
        for _ in range(count):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(page.url)
                body = _read_body(response)
                times.append((time.perf_counter() - started) * 1000)
            queries.append(len(captured))
            sql = [query["sql"] for query in captured.captured_queries]
            statuses.add(response.status_code)
            error = error or _error_text(response)
        timings[page.url] = Timing(
            status=max(statuses),
            median_ms=statistics.median(times),
            max_ms=max(times),
            queries=max(queries),
            queries_varied=len(set(queries)) > 1,
            repeats=count,
            error=error,
            body=body,
            sql=sql,
        )
        print(
            f"    {page.url:<70} {response.status_code}  {statistics.median(times):8.1f} ms  {max(queries):4d} q",
            flush=True,
        )
    return timings


# --- the report ----------------------------------------------------------------------------------------


def _ok(status: int) -> bool:
    return 200 <= status < 400


def planted_flags(timings: dict[str, Timing], world: World) -> str:
    """Which planted annotators the flags' data names (a look at the data, not a test)."""
    body = next((t.body for url, t in timings.items() if "/data/flags.json" in url and t.status == 200), None)
    if body is None:
        return "flags: no flags.json answered 200"
    text = body.decode("utf-8", "replace")
    named = sorted(set(re.findall(r"annotator-\d\d", text)))
    planted = {
        "too fast": [f"annotator-{i:02d}" for i in TOO_FAST],
        "side-biased": [f"annotator-{SIDE_BIASED:02d}"],
        "below gold": [f"annotator-{BELOW_GOLD:02d}"],
    }
    found = "; ".join(
        f"{kind} {', '.join(n + ('' if n in named else ' (MISSING)') for n in names)}"
        for kind, names in planted.items()
    )
    others = [n for n in named if n not in {x for names in planted.values() for x in names}]
    return f"flags.json names the planted: {found}; others flagged: {', '.join(others) or 'none'}"


def report(
    args: argparse.Namespace,
    world: World,
    pages: list[Page],
    small: dict[str, Timing],
    large: dict[str, Timing],
    sizes: tuple[int, int],
    facts: dict[str, Any],
) -> tuple[list[str], bool]:
    lines = [
        "dashboard: server time (in-process, Django test client, DEBUG off) and SQL queries of the engineers'"
        " and managers' pages",
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}; shared with other jobs",
        f"database: PostgreSQL {facts['postgres']} ({urlsplit(args.database_url).path.lstrip('/')}, {facts['database']})",
        f"data: 1 project, {len(world.annotators)} annotators (+1 engineer, +1 manager), {len(world.inputs):,} inputs in"
        f" {len(BATCHES)} batches, {world.candidates:,} candidates, {len(world.pairs):,} pairs"
        f" ({int(world.pair_gold.sum())} gold), {len(world.versions)} model versions, {len(world.jobs)} jobs,"
        f" {facts['loop_events']} loop events, judgments over {args.days} days",
        f"sizes: {sizes[0]:,} judgments, then {sizes[1]:,} (the same pairs, inputs, versions, jobs and days)",
        "seed time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in world.seed_seconds.items()),
        f"queue invariant: {facts['violations']}",
        planted_flags(large, world),
        f"each page: 1 warm-up GET, then {args.repeats} timed; median and max ms, queries (the most of the"
        " timed GETs); manager for the dashboard pages, engineer for the others",
        "",
    ]
    k1, k2 = _size_label(sizes[0]), _size_label(sizes[1])
    header = (
        f"{'page':<78} {'user':<8} {'status':>7} {'ms@' + k1:>9} {'max':>8} {'q@' + k1:>7}"
        f" {'ms@' + k2:>9} {'max':>8} {'q@' + k2:>7}"
    )
    lines += [header, "-" * len(header)]
    slow, grew, failing, not_get, changes = [], [], [], [], []
    for page in pages:
        if page.url is None:
            lines.append(f"{page.label:<78} {page.role:<8} {page.note}")
            continue
        a, b = small.get(page.url), large.get(page.url)
        if a is None or b is None:
            continue
        if a.status == 405 and b.status == 405:
            not_get.append(page.url)
            continue
        status = str(a.status) if a.status == b.status else f"{a.status}/{b.status}"

        def cell(value, digits=1):
            return "-" if value is None else f"{value:.{digits}f}"

        varied = "~" if a.queries_varied or b.queries_varied else ""
        short = "*" if min(a.repeats, b.repeats) < args.repeats else ""
        lines.append(
            f"{page.url + short:<78} {page.role:<8} {status:>7} {cell(a.median_ms):>9} {cell(a.max_ms):>8}"
            f" {cell(a.queries, 0) + varied:>7} {cell(b.median_ms):>9} {cell(b.max_ms):>8} {cell(b.queries, 0):>7}"
        )
        if not (_ok(a.status) and _ok(b.status)):
            failing.append(
                f"{page.url} ({status}{': ' + (b.error or a.error) if (b.error or a.error) else ''})"
            )
            continue
        worst = max(a.median_ms, b.median_ms)
        if worst >= TARGET_MS:
            slow.append(f"{page.url} ({worst:.0f} ms)")
        if a.queries != b.queries:
            grew.append(f"{page.url} ({a.queries} -> {b.queries})")
            changes.append(f"  {page.url}:")
            changes += [f"    {line}" for line in _query_changes(a.sql, b.sql)]
    timed = [p for p in pages if p.url is not None and p.url not in not_get]
    lines += [
        "-" * len(header),
        f"pages timed: {len(timed)} URLs; not GET pages (405, left out): {', '.join(not_get) or 'none'}",
        "~: the query count differed between the timed GETs; *: timed twice only (its warm-up took over"
        f" {SLOW_WARM_UP_MS / 1000:g} s)",
    ]
    if failing:
        lines.append("pages not answering 200 (not timed as a success):")
        lines += [f"  {line}" for line in failing]
    if changes:
        lines.append(
            "queries that differ between the sizes (numbers as N; - only at the small size, + only at the large):"
        )
        lines += changes
    missed_time = bool(slow or failing)
    lines.append(
        "every page < 1 s: "
        + (
            "met"
            if not missed_time
            else "NOT MET (" + "; ".join(slow + [f.split(" (")[0] + " failed" for f in failing]) + ")"
        )
    )
    lines.append(
        "queries constant in the number of judgments: "
        + ("met" if not grew else "NOT MET (" + "; ".join(grew) + ")")
    )
    return lines, not (missed_time or grew)


def _query_changes(small: list[str], large: list[str]) -> list[str]:
    from collections import Counter

    def shape(sql: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"\b\d+\b", "N", sql))[:200]

    a, b = Counter(map(shape, small)), Counter(map(shape, large))
    return [f"- {sql}" for sql in (a - b).elements()] + [f"+ {sql}" for sql in (b - a).elements()]


def _size_label(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 else str(count)


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    configure_environment(args)
    database = ensure_database(args.database_url, fresh=args.fresh)
    setup_django(empty_first=database == "existing")
    print(
        f"dashboard benchmark: {args.judgments:,} judgments, {args.annotators} annotators, {args.days} days",
        flush=True,
    )
    facts: dict[str, Any] = {"postgres": postgres_version(), "database": database}

    from annotation_web.labeling.queue import queue_invariant_violations
    from annotation_web.loop.models import LoopEvent

    started = time.perf_counter()
    world = seed_world(args, rng)
    world.seed_seconds["project, people, versions, jobs, inputs, candidates, pairs, loop"] = (
        time.perf_counter() - started
    )
    facts["loop_events"] = LoopEvent.objects.filter(project=world.project).count()
    total = len(world.plan.pair)
    order = rng.permutation(total)
    first = max(1, total // 10)
    pages = discover_pages(world)
    print(f"  {sum(p.url is not None for p in pages)} URLs to time", flush=True)

    results: list[dict[str, Timing]] = []
    sizes: list[int] = []
    violations: list[str] = []
    for step, indexes in enumerate((order[:first], order[first:])):
        started = time.perf_counter()
        insert_judgments(world, indexes)
        if step == 0:
            seed_live_and_expired_reservations(world, rng)
        recount_pairs(world)
        refresh_snapshots(world)
        analyze()
        world.seed_seconds[f"judgments to {world.inserted:,}"] = time.perf_counter() - started
        found = queue_invariant_violations(project=world.project)
        violations.append(
            f"{len(found)} violations at {world.inserted:,}" + (f" (first: {found[0]})" if found else "")
        )
        print(
            f"  seeded {world.inserted:,} judgments in {time.perf_counter() - started:.1f} s; timing pages",
            flush=True,
        )
        sizes.append(world.inserted)
        results.append(time_pages(world, pages, args.repeats))
    facts["violations"] = "; ".join(violations)
    lines, met = report(args, world, pages, results[0], results[1], (sizes[0], sizes[1]), facts)
    text = "\n".join(lines) + "\n"
    print(text)
    name = args.results_name or ("dashboard_quick" if args.quick else "dashboard")
    out = REPO / "benchmarks" / "results" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out.relative_to(REPO)}")
    from django.db import connections

    connections.close_all()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
