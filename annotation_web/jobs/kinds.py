"""The registry of job kinds. `jobs` runs jobs without knowing what they do: each app registers the kinds it
owns from its `AppConfig.ready()`:

    from annotation_web.jobs.kinds import register
    register("import", runner=import_job_run, label="Import faces")

A runner is called as `runner(job=job, progress=progress, should_stop=should_stop)` in a worker and returns
the job's outputs (a JSON dict). `progress(done, total, log_line)` reports how far it got; `should_stop()` says
whether to stop at the next checkpoint of its work (cancelled, the run's lease lost to another worker, or past
the kind's soft time limit): the runner then returns what it has, writing no result. A result (a model version,
pairs) is written inside `jobs.services.job_commit(job)`, which refuses a run that no longer holds the job.

A runner is re-entrant: a job whose worker died is run again (attempt 2, 3, ...) and resumes from its latest
checkpoint. `queue` names the Celery queue of the job's task: `default` (imports, light work) or `train`
(generation, training, evaluation: the queue of GPU hosts). `max_attempts` runs are started before a job whose
workers keep dying fails; `soft_time_limit` (seconds) makes `should_stop()` say yes, `time_limit` is Celery's
hard limit (enforced by the prefork pool). `cancellable` says whether `job_cancel` may stop it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from annotation_web.errors import ServiceError

if TYPE_CHECKING:
    from annotation_web.jobs.models import Job

Progress = Callable[[int, int, str], None]
ShouldStop = Callable[[], bool]
DEFAULT_QUEUE = "default"
TRAIN_QUEUE = "train"
QUEUES = (DEFAULT_QUEUE, TRAIN_QUEUE)
DEFAULT_MAX_ATTEMPTS = 3
KIND_MAX_LENGTH = 32  # Job.kind's column


class Runner(Protocol):
    def __call__(self, *, job: Job, progress: Progress, should_stop: ShouldStop) -> dict[str, Any]: ...


class UnknownJobKind(ServiceError):
    pass


@dataclass(frozen=True)
class JobKindSpec:
    kind: str
    runner: Runner
    queue: str = DEFAULT_QUEUE
    cancellable: bool = True
    label: str = ""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    soft_time_limit: float | None = None
    time_limit: float | None = None


_kinds: dict[str, JobKindSpec] = {}


def register(
    kind: str,
    *,
    runner: Runner,
    queue: str = DEFAULT_QUEUE,
    cancellable: bool = True,
    label: str = "",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    soft_time_limit: float | None = None,
    time_limit: float | None = None,
) -> JobKindSpec:
    """Make `kind` a job kind. Registering the same kind again with the same runner is a no-op (an app's
    `ready()` may run twice in tests); another runner under a taken name is refused."""
    if not kind or len(kind) > KIND_MAX_LENGTH:
        raise ValueError(f"a job kind is 1 to {KIND_MAX_LENGTH} characters, not {kind!r}")
    if queue not in QUEUES:
        raise ValueError(f"job kind {kind!r}: queue {queue!r} is not one of {', '.join(QUEUES)}")
    if max_attempts < 1:
        raise ValueError(f"job kind {kind!r}: max_attempts must be at least 1")
    if soft_time_limit is not None and time_limit is not None and soft_time_limit >= time_limit:
        raise ValueError(f"job kind {kind!r}: the soft time limit must be below the hard one")
    spec = JobKindSpec(
        kind=kind,
        runner=runner,
        queue=queue,
        cancellable=cancellable,
        label=label or kind,
        max_attempts=max_attempts,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
    )
    existing = _kinds.get(kind)
    if existing is not None and existing != spec:
        raise ValueError(f"job kind {kind!r} is already registered with {existing.runner!r}")
    _kinds[kind] = spec
    return spec


def unregister(kind: str) -> None:
    """Forget a kind (for tests that register one of their own)."""
    _kinds.pop(kind, None)


def get(kind: str) -> JobKindSpec:
    spec = _kinds.get(kind)
    if spec is None:
        raise UnknownJobKind(f"unknown job kind {kind!r} (known: {', '.join(sorted(_kinds)) or 'none'})")
    return spec


def find(kind: str) -> JobKindSpec | None:
    return _kinds.get(kind)


def registered() -> list[JobKindSpec]:
    """The kinds in the order they were registered (the order of INSTALLED_APPS)."""
    return list(_kinds.values())


def choices() -> list[tuple[str, str]]:
    """`Job.kind`'s choices: whatever is registered when they are read (a callable, so no migration churns)."""
    return [(spec.kind, spec.label) for spec in registered()]
