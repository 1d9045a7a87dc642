"""The registry of job kinds drives everything jobs does: creating, dispatching, cancelling, validating."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from annotation_web.celery import app
from annotation_web.errors import ServiceError
from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import job_run
from annotation_web.jobs.services import job_cancel, job_create


@pytest.fixture
def eager(settings, django_capture_on_commit_callbacks):
    """Runs the task a job's creation queues when its transaction commits, in this process."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    app.conf.task_always_eager = False


@pytest.fixture
def test_kind():
    """A kind registered by the test (as an app does in its ready()); its runner records what it was given."""
    calls: list[dict] = []

    def runner(*, job, progress, should_stop):
        calls.append({"job": job.pk, "params": job.params})
        progress(1, 2, "half way")
        progress(2, 2, "done")
        return {"echo": job.params["word"]}

    kinds.register("test_echo", runner=runner, label="Echo (test)")
    yield calls
    kinds.unregister("test_echo")


def test_the_apps_register_their_kinds_from_ready():
    owners = {spec.kind: spec.runner.__module__ for spec in kinds.registered()}
    assert owners["import"] == "annotation_web.labeling.import_jobs"
    for kind in ("generate", "train_reward", "train_rl"):
        assert owners[kind] == "annotation_web.training.services"
    queues = {spec.kind: spec.queue for spec in kinds.registered()}
    assert queues["import"] == kinds.DEFAULT_QUEUE
    for kind in ("generate", "train_reward", "train_rl", "train_restorer", "evaluate"):
        assert queues[kind] == kinds.TRAIN_QUEUE, kind
    assert all(spec.cancellable for spec in kinds.registered())


@pytest.mark.django_db
def test_a_registered_kind_is_created_enqueued_on_commit_and_dispatched_to_its_runner(test_kind, eager):
    with eager():
        job = job_create(kind="test_echo", params={"word": "hello"})
        assert job.state == JobState.QUEUED and not test_kind  # nothing runs before the commit
    job.refresh_from_db()
    assert test_kind == [{"job": job.pk, "params": {"word": "hello"}}]
    assert job.state == JobState.SUCCEEDED and job.outputs == {"echo": "hello"}
    assert (job.progress_done, job.progress_total) == (2, 2)
    assert "attempt 1/3 started" in job.log_tail and job.log_tail.endswith("half way\ndone\n")
    assert job.attempt == 1 and job.queue == kinds.DEFAULT_QUEUE
    assert job.started_at and job.finished_at


@pytest.mark.django_db
def test_an_unknown_kind_is_refused_at_creation_and_fails_a_job_at_run():
    with pytest.raises(ServiceError, match="unknown job kind 'no_such_kind'"):
        job_create(kind="no_such_kind", params={})
    assert not Job.objects.exists()
    orphan = Job.objects.create(kind="no_such_kind")  # e.g. a row left by an app that was removed
    job_run(job_id=orphan.pk)
    orphan.refresh_from_db()
    assert orphan.state == JobState.FAILED and "unknown job kind" in orphan.error


@pytest.mark.django_db
def test_job_kind_is_validated_against_the_registry(test_kind):
    Job(kind="test_echo").full_clean(exclude=["created_by"])
    with pytest.raises(ValidationError) as error:
        Job(kind="no_such_kind").full_clean(exclude=["created_by"])
    assert "kind" in error.value.message_dict
    assert ("test_echo", "Echo (test)") in Job._meta.get_field("kind").choices


@pytest.mark.django_db
def test_a_runner_that_fails_leaves_the_error_on_the_row(eager):
    def runner(*, job, progress, should_stop):
        raise RuntimeError("the runner broke")

    kinds.register("test_broken", runner=runner)
    try:
        with pytest.raises(RuntimeError), eager():
            job = job_create(kind="test_broken", params={})
        job = Job.objects.get(kind="test_broken")
        assert job.state == JobState.FAILED and "the runner broke" in job.error
    finally:
        kinds.unregister("test_broken")


@pytest.mark.django_db
def test_cancelling_follows_the_kind(test_kind):
    job = job_create(kind="test_echo", params={"word": "x"})
    assert job_cancel(job_id=job.pk).state == JobState.CANCELLED
    job_run(job_id=job.pk)  # a late delivery does nothing
    assert not test_kind

    kinds.register("test_uncancellable", runner=lambda *, job, progress, should_stop: {}, cancellable=False)
    try:
        stuck = job_create(kind="test_uncancellable", params={})
        with pytest.raises(ServiceError, match="cannot be cancelled"):
            job_cancel(job_id=stuck.pk)
    finally:
        kinds.unregister("test_uncancellable")


def test_a_kind_name_is_registered_once():
    def runner(*, job, progress, should_stop):
        return {}

    kinds.register("test_once", runner=runner)
    try:
        kinds.register("test_once", runner=runner)  # ready() running again: same registration, no error
        with pytest.raises(ValueError, match="already registered"):
            kinds.register("test_once", runner=lambda *, job, progress, should_stop: {})
        with pytest.raises(ValueError):
            kinds.register("x" * 33, runner=runner)
        with pytest.raises(ValueError, match="queue"):
            kinds.register("test_nowhere", runner=runner, queue="gpu-typo")
    finally:
        kinds.unregister("test_once")


@pytest.mark.django_db
def test_a_kind_on_its_own_queue_is_sent_there(monkeypatch, django_capture_on_commit_callbacks):
    from annotation_web.jobs import tasks

    sent = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, queue, **_: sent.append((args, queue)))
    kinds.register("test_gpu", runner=lambda *, job, progress, should_stop: {}, queue="train")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            on_train = job_create(kind="test_gpu", params={})
    finally:
        kinds.unregister("test_gpu")
    assert sent == [((on_train.pk,), "train")]
