"""The read side of jobs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db.models import (
    Case,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from annotation_web.errors import NotFound
from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState, WorkerPresence


def job_list() -> QuerySet[Job]:
    """Every job, newest first, with its project at hand."""
    return Job.objects.select_related("project").order_by("-created_at")


def job_is_cancelled(*, job_id: int) -> bool:
    """Whether an engineer cancelled the job (a long runner asks this between steps)."""
    return Job.objects.filter(pk=job_id, state=JobState.CANCELLED).exists()


def workers_alive() -> QuerySet[WorkerPresence]:
    """The workers that announced themselves within `WORKER_ALIVE_SECONDS`."""
    since = timezone.now() - timedelta(seconds=settings.WORKER_ALIVE_SECONDS)
    return WorkerPresence.objects.filter(last_seen_at__gte=since).order_by("name")


def queues_alive() -> dict[str, int]:
    """Live workers per queue, for every queue the job kinds use (0: nobody would run its jobs)."""
    counts = {queue: 0 for queue in kinds.QUEUES}
    for queues in workers_alive().values_list("queues", flat=True):
        for queue in queues:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


def _running_sibling() -> Subquery:
    """Per row of a job queryset: the running job of the same kind and project (one runs at a time)."""
    running = Job.objects.filter(
        project_id=OuterRef("project_id"), kind=OuterRef("kind"), state=JobState.RUNNING
    ).order_by("pk")
    return Subquery(running.values("pk")[:1])


def with_waiting_for(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """``jobs`` with ``waiting_for_job_id`` on every row (what :func:`job_waiting_for` reads), in the same query:
    a list of queued jobs costs no query per row."""
    return jobs.annotate(
        waiting_for_job_id=Case(
            When(state=JobState.QUEUED, project__isnull=False, then=_running_sibling()),
            default=Value(None),
            output_field=IntegerField(),
        )
    )


def job_waiting_for(job: Job) -> int | None:
    """The running job of the same kind and project that a queued job waits for (one runs at a time); read from
    :func:`with_waiting_for`'s annotation when the job came through it."""
    if hasattr(job, "waiting_for_job_id"):
        return job.waiting_for_job_id
    if job.state != JobState.QUEUED or job.project_id is None:
        return None
    return (
        Job.objects.filter(project_id=job.project_id, kind=job.kind, state=JobState.RUNNING)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


# --- what a user may read (the API and the pages share this rule) --------------------------------------------


def job_list_visible(*, user: AbstractUser | AnonymousUser) -> QuerySet[Job]:
    """The jobs `user` may read, newest first: those of the projects they are a member of
    (`accounts.ProjectMembership`, reached through the project's `memberships` relation so that jobs imports no
    other app); every job, those without a project included, for a superuser; none for an anonymous user."""
    jobs = job_list().select_related("created_by")
    if user.is_superuser:
        return jobs
    if not user.is_authenticated:
        return jobs.none()
    return jobs.filter(project__memberships__user_id=user.pk)


def job_get_visible(*, user: AbstractUser | AnonymousUser, pk: int) -> Job:
    """One job `user` may read, with its `duration` (see `job_list_filtered`); a job of another project answers
    like one that does not exist."""
    job = job_list_filtered(user=user).filter(pk=pk).first()
    if job is None:
        raise NotFound(f"no job {pk}")
    return job


def job_list_filtered(
    *, user: AbstractUser | AnonymousUser, project: str = "", state: str = "", kind: str = ""
) -> QuerySet[Job]:
    """The jobs page's rows: the visible jobs, narrowed by project slug, state and kind (an empty value does
    not narrow), each with `duration` (finished or now, less started; None before it started)."""
    jobs = job_list_visible(user=user)
    if project:
        jobs = jobs.filter(project__slug=project)
    if state:
        jobs = jobs.filter(state=state)
    if kind:
        jobs = jobs.filter(kind=kind)
    return jobs.annotate(
        duration=ExpressionWrapper(
            Coalesce(F("finished_at"), Now()) - F("started_at"), output_field=DurationField()
        )
    )


def job_filter_options(*, user: AbstractUser | AnonymousUser) -> dict[str, list[tuple[str, str]]]:
    """What the jobs page's filters offer: the projects that have jobs `user` may read (slug, name; one query),
    every state and every registered kind."""
    projects = (
        job_list_visible(user=user)
        .filter(project__isnull=False)
        .order_by("project__name", "project__slug")
        .values_list("project__slug", "project__name")
        .distinct()
    )
    return {
        "projects": list(projects),
        "states": list(JobState.choices),
        "kinds": kinds.choices(),
    }


def job_max_attempts(*, job: Job) -> int:
    spec = kinds.find(job.kind)
    return spec.max_attempts if spec is not None else kinds.DEFAULT_MAX_ATTEMPTS


def job_queue_has_live_worker(*, job: Job) -> bool:
    """Whether a live worker consumes the job's queue (False: nobody would run it now)."""
    return queues_alive().get(job.queue, 0) > 0


# Keys of a job's params and outputs that hold the id of a model version (the kinds' own names for them; the
# pages link them to the registry, the registry finds the jobs that used a version by them).
MODEL_ID_KEYS = (
    "restorer_id",
    "reward_id",
    "candidate_id",
    "in_use_id",
    "cross_version_restorer_id",
    "parent_restorer_id",
)


def job_list_using_model(*, user: AbstractUser | AnonymousUser, model_version_id: int) -> QuerySet[Job]:
    """The visible jobs whose params name model version `model_version_id` (under `MODEL_ID_KEYS`)."""
    named = Q()
    for key in MODEL_ID_KEYS:
        named |= Q(**{f"params__{key}": model_version_id})
    return job_list_visible(user=user).filter(named)
