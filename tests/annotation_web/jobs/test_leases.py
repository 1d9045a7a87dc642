"""Leases, attempts, the reaper, one job of a kind per project, commit against cancel, retry: each guarantee of
`jobs.runs` and `jobs.reaper` attacked in-process (the real worker processes are in test_worker_death)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user, user_create
from annotation_web.errors import ServiceError
from annotation_web.jobs import kinds, reaper, tasks
from annotation_web.jobs.models import Job, JobState, WorkerPresence
from annotation_web.jobs.runs import LeaseKeeper, job_run
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.jobs.services import JobStopped, job_cancel, job_commit, job_create, job_retry


@pytest.fixture
def sent(monkeypatch):
    """The messages jobs sends, recorded instead of reaching a broker."""
    messages: list[tuple[int, str]] = []
    monkeypatch.setattr(
        tasks.run_job, "apply_async", lambda args, queue, **_: messages.append((args[0], queue))
    )
    return messages


@pytest.fixture
def echo_kind():
    runs: list[int] = []

    def runner(*, job, progress, should_stop):
        runs.append(job.attempt)
        return {"attempt": job.attempt}

    kinds.register("test_lease", runner=runner, max_attempts=3)
    yield runs
    kinds.unregister("test_lease")


def running(job: Job, *, attempt: int = 1, expired: bool = False, worker: str = "w1:1") -> Job:
    """The job as a worker left it: RUNNING under a lease, live or expired."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempt=attempt,
        worker=worker,
        heartbeat_at=now - timedelta(seconds=120 if expired else 1),
        lease_expires_at=now + timedelta(seconds=-60 if expired else 60),
        started_at=now - timedelta(seconds=200),
    )
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_a_run_under_a_live_lease_is_left_alone_and_an_expired_one_is_taken_over(echo_kind, sent):
    job = running(job_create(kind="test_lease", params={}))
    job_run(job_id=job.pk, worker="w2:2")  # a redelivered message while w1 still works
    job.refresh_from_db()
    assert echo_kind == [] and job.state == JobState.RUNNING and job.worker == "w1:1"

    running(job, expired=True)
    job_run(job_id=job.pk, worker="w2:2")
    job.refresh_from_db()
    assert echo_kind == [2], "the next attempt ran"
    assert job.state == JobState.SUCCEEDED and job.attempt == 2 and job.worker == "w2:2"
    assert "attempt 2/3 started on w2:2, taking over from w1:1 whose lease expired" in job.log_tail


@pytest.mark.django_db
def test_the_reaper_requeues_a_lost_run_and_fails_it_after_the_last_attempt(echo_kind, sent):
    job = running(job_create(kind="test_lease", params={}), attempt=1, expired=True)
    live = running(job_create(kind="test_lease", params={}, project=None), attempt=1)
    sent.clear()
    with transaction.atomic():
        reaped = reaper.jobs_reap()
    assert reaped.requeued == [job.pk] and live.pk not in reaped.requeued
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.lease_expires_at is None
    assert "attempt 1 lost: w1:1 stopped heartbeating" in job.log_tail

    running(job, attempt=3, expired=True)  # killed on its last attempt too
    reaped = reaper.jobs_reap()
    job.refresh_from_db()
    assert reaped.failed == [job.pk] and job.state == JobState.FAILED
    assert job.error.startswith("killed 3 times while running (last on w1:1")
    assert "out of memory" in job.error
    job_run(job_id=job.pk, worker="w3:3")  # Redis redelivering the dead worker's message: nothing runs
    assert echo_kind == []


@pytest.mark.django_db
def test_a_redelivery_after_the_last_attempt_fails_the_job_with_the_reason(echo_kind):
    job = running(job_create(kind="test_lease", params={}), attempt=3, expired=True)
    job_run(job_id=job.pk, worker="w2:2")
    job.refresh_from_db()
    assert echo_kind == [] and job.state == JobState.FAILED and "killed 3 times" in job.error


@pytest.mark.django_db
def test_a_job_whose_message_was_lost_is_sent_again(
    echo_kind, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.run_job, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(kind="test_lease", params={})  # the request still succeeds
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.enqueued_at is None
    assert "could not send the job to queue 'default' (broker unreachable)" in job.log_tail

    messages = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, queue, **_: messages.append(args[0]))
    assert reaper.jobs_reap().resent == [], "too fresh: its own on-commit send may still be on its way"
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert reaper.jobs_reap().resent == [job.pk] and messages == [job.pk]
    job.refresh_from_db()
    assert job.enqueued_at is not None
    assert reaper.jobs_reap().resent == [], "sent once per JOB_RESEND_SECONDS, not every tick"


@pytest.mark.django_db
def test_one_job_of_a_kind_per_project_runs_and_the_next_waits(
    echo_kind, make_project, sent, django_capture_on_commit_callbacks
):
    project = make_project(pairs=0)
    first = running(job_create(kind="test_lease", params={}, project=project))
    second = job_create(kind="test_lease", params={}, project=project)
    other_project = job_create(kind="test_lease", params={}, project=make_project(pairs=0))

    job_run(job_id=second.pk, worker="w2:2")
    second.refresh_from_db()
    assert second.state == JobState.QUEUED and echo_kind == []
    assert JobSerializer(second).data["waiting_for"] == first.pk
    job_run(job_id=other_project.pk, worker="w2:2")
    assert echo_kind == [1], "another project's job is not held back"

    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=second.pk).update(state=JobState.RUNNING)  # the database refuses it too

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job_cancel(job_id=first.pk)
    assert sent == [(second.pk, "default")], "the waiting job is sent when the running one stops"
    job_run(job_id=second.pk, worker="w2:2")
    second.refresh_from_db()
    assert second.state == JobState.SUCCEEDED


@pytest.mark.django_db
def test_the_job_list_says_what_each_queued_job_waits_for_in_a_bounded_number_of_queries(
    echo_kind, make_project, engineer
):
    project, other = make_project(pairs=0), make_project(pairs=0)
    first = running(job_create(kind="test_lease", params={}, project=project))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")

    def listed() -> tuple[dict[int, int | None], int]:
        with CaptureQueriesContext(connection) as queries:
            body = client.get("/api/jobs/").json()
        rows = body["results"] if isinstance(body, dict) else body
        return {row["id"]: row["waiting_for"] for row in rows}, len(queries)

    waiting = [job_create(kind="test_lease", params={}, project=project) for _ in range(2)]
    alone = job_create(kind="test_lease", params={}, project=other)
    few, few_queries = listed()
    waiting += [job_create(kind="test_lease", params={}, project=project) for _ in range(6)]
    many, many_queries = listed()
    assert many_queries == few_queries, "one query per queued row"
    assert {pk: many[pk] for pk in [job.pk for job in waiting]} == {job.pk: first.pk for job in waiting}
    assert many[first.pk] is None and many[alone.pk] is None, "running, or nothing of its kind runs"
    assert few[alone.pk] is None


@pytest.mark.django_db
def test_a_cancel_before_the_commit_writes_nothing(make_project):
    written = []

    def runner(*, job, progress, should_stop):
        job_cancel(job_id=job.pk)  # the engineer's click lands after the runner's last should_stop()
        return job_commit(job, lambda: written.append("version") or {"made": 1})

    kinds.register("test_commit", runner=runner)
    try:
        job = job_create(kind="test_commit", params={})
        job_run(job_id=job.pk, worker="w1:1")
    finally:
        kinds.unregister("test_commit")
    job.refresh_from_db()
    assert written == [] and job.state == JobState.CANCELLED and job.outputs == {}
    with pytest.raises(ServiceError, match="already succeeded"):
        done = job_create(kind="import", params={})
        Job.objects.filter(pk=done.pk).update(state=JobState.SUCCEEDED)
        job_cancel(job_id=done.pk)


@pytest.mark.django_db
def test_a_run_whose_lease_was_taken_over_stops_and_writes_nothing():
    seen = {}

    def runner(*, job, progress, should_stop):
        seen["before"] = should_stop()
        Job.objects.filter(pk=job.pk).update(attempt=job.attempt + 1, worker="w2:2")  # another worker took it
        seen["after"] = should_stop()
        return job_commit(job, lambda: {"made": 1})

    kinds.register("test_taken", runner=runner)
    try:
        job = job_create(kind="test_taken", params={})
        job_run(job_id=job.pk, worker="w1:1")
    finally:
        kinds.unregister("test_taken")
    job.refresh_from_db()
    assert seen == {"before": False, "after": True}
    assert job.state == JobState.RUNNING and job.worker == "w2:2" and job.outputs == {}
    with pytest.raises(JobStopped):
        job_commit(Job(pk=job.pk, attempt=1), lambda: {})


@pytest.mark.django_db
def test_a_run_past_its_soft_time_limit_stops_and_fails_with_its_partial_outputs():
    def runner(*, job, progress, should_stop):
        steps = 0
        while not should_stop() and steps < 1000:
            time.sleep(0.01)
            steps += 1
        return {"steps": steps}

    kinds.register("test_slow", runner=runner, soft_time_limit=0.2, time_limit=10)
    try:
        job = job_create(kind="test_slow", params={})
        job_run(job_id=job.pk, worker="w1:1")
    finally:
        kinds.unregister("test_slow")
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "time limit (0.2 s)" in job.error
    assert job.outputs["partial"] is True and 0 < job.outputs["steps"] < 1000


@pytest.mark.django_db
def test_a_failed_job_is_retried_with_a_fresh_count_of_attempts(echo_kind, sent, engineer):
    job = running(job_create(kind="test_lease", params={}), attempt=3, expired=True)
    reaper.jobs_reap()
    with pytest.raises(ServiceError, match="only a failed job"):
        job_retry(job_id=job_create(kind="test_lease", params={}).pk)
    job = job_retry(job_id=job.pk, user=engineer)
    assert job.state == JobState.QUEUED and job.attempt == 0 and job.error == ""
    assert "retried by eng after attempt 3 failed: killed 3 times" in job.log_tail
    job_run(job_id=job.pk, worker="w2:2")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and echo_kind == [1]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_while_the_runner_works(settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    settings.JOB_LEASE_SECONDS = 0.5
    leases = []

    def runner(*, job, progress, should_stop):
        for _ in range(8):
            time.sleep(0.15)
            leases.append(Job.objects.get(pk=job.pk).lease_expires_at)
        return {}

    kinds.register("test_beating", runner=runner)
    try:
        job = job_create(kind="test_beating", params={})
        job_run(job_id=job.pk, worker="w1:1")
    finally:
        kinds.unregister("test_beating")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert len(set(leases)) >= 4 and leases == sorted(leases), "renewed again and again, always later"
    assert leases[-1] > timezone.now() - timedelta(seconds=1)


@pytest.mark.django_db
def test_lease_keeper_without_heartbeat_still_answers_should_stop(echo_kind):
    job = running(job_create(kind="test_lease", params={}))
    with LeaseKeeper(job, soft_time_limit=None, heartbeat=False) as keeper:
        assert keeper.should_stop() is False
        job_cancel(job_id=job.pk)
        assert keeper.should_stop() is True


@pytest.mark.django_db
def test_jobs_say_whether_a_live_worker_consumes_their_queue_and_workers_are_listed(make_project, engineer):
    project = make_project(pairs=0)
    job = job_create(kind="generate", params={}, project=project)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    body = client.get(f"/api/jobs/{job.pk}/").json()
    assert body["queue"] == "train" and body["queue_has_live_worker"] is False

    now = timezone.now()
    WorkerPresence.objects.create(name="gpu@h1", queues=["train"], started_at=now, last_seen_at=now)
    WorkerPresence.objects.create(
        name="dead@h2", queues=["default"], started_at=now, last_seen_at=now - timedelta(minutes=5)
    )
    assert client.get(f"/api/jobs/{job.pk}/").json()["queue_has_live_worker"] is True
    workers = client.get("/api/workers/").json()
    assert workers["queues"] == {"default": 0, "train": 1}
    assert [w["name"] for w in workers["workers"]] == ["gpu@h1"]

    annotator = user_create(username="nosy", password="pw-123456", role=Role.ANNOTATOR)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=annotator)}")
    assert client.get("/api/workers/").status_code == 403
    assert client.post(f"/api/jobs/{job.pk}/retry/").status_code == 403


@pytest.mark.django_db
def test_retry_through_the_api_is_for_members_and_failed_jobs_only(make_project, engineer):
    project = make_project(pairs=0)
    job = job_create(kind="generate", params={}, project=project)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    refused = client.post(f"/api/jobs/{job.pk}/retry/")
    assert refused.status_code == 400 and "only a failed job" in refused.json()["detail"]
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error="boom")
    outsider = user_create(username="outsider", password="pw-123456", role=Role.ENGINEER)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=outsider)}")
    assert other.post(f"/api/jobs/{job.pk}/retry/").status_code == 404
    retried = client.post(f"/api/jobs/{job.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
