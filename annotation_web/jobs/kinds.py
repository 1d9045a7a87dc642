"""The registry of job kinds. `jobs` runs jobs without knowing what they do: each app registers the kinds it
owns from its `AppConfig.ready()`:

    from annotation_web.jobs.kinds import register
    register("import", runner=import_job_run, label="Import faces")

A runner is called as `runner(job=job, progress=progress)` in a worker and returns the job's outputs (a JSON
dict); `progress(done, total, log_line)` reports how far it got. A runner is re-entrant: a job whose worker died
while running is run again. `queue` names the Celery queue the job's task goes to ("default": Celery's default
queue); `cancellable` says whether `job_cancel` may stop it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from annotation_web.errors import ServiceError

if TYPE_CHECKING:
    from annotation_web.jobs.models import Job

Progress = Callable[[int, int, str], None]
DEFAULT_QUEUE = "default"
KIND_MAX_LENGTH = 32  # Job.kind's column


class Runner(Protocol):
    def __call__(self, *, job: Job, progress: Progress) -> dict[str, Any]: ...


class UnknownJobKind(ServiceError):
    pass


@dataclass(frozen=True)
class JobKindSpec:
    kind: str
    runner: Runner
    queue: str = DEFAULT_QUEUE
    cancellable: bool = True
    label: str = ""


_kinds: dict[str, JobKindSpec] = {}


def register(
    kind: str,
    *,
    runner: Runner,
    queue: str = DEFAULT_QUEUE,
    cancellable: bool = True,
    label: str = "",
) -> JobKindSpec:
    """Make `kind` a job kind. Registering the same kind again with the same runner is a no-op (an app's
    `ready()` may run twice in tests); another runner under a taken name is refused."""
    if not kind or len(kind) > KIND_MAX_LENGTH:
        raise ValueError(f"a job kind is 1 to {KIND_MAX_LENGTH} characters, not {kind!r}")
    spec = JobKindSpec(kind=kind, runner=runner, queue=queue, cancellable=cancellable, label=label or kind)
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
