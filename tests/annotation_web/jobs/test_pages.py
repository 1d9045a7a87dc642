"""The engineers' jobs pages: who reads which rows, filters and pages, a job's live facts, bounded queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import user_create
from annotation_web.jobs.models import Job, JobState, WorkerPresence
from annotation_web.labeling.pairs import project_create

pytestmark = pytest.mark.django_db


def job(project, *, kind="generate", state=JobState.QUEUED, **fields) -> Job:
    return Job.objects.create(kind=kind, project=project, state=state, **fields)


def listed(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-job="(\d+)">', response.content.decode())]


@pytest.fixture
def projects(make_project, engineer):
    """The engineer's project and one they are not a member of."""
    mine = make_project(pairs=0, slug="mine")
    theirs = project_create(name="Theirs", slug="theirs")
    return mine, theirs


@pytest.fixture
def eng_client(client, engineer):
    client.force_login(engineer)
    return client


def test_the_list_shows_the_jobs_of_the_engineers_projects_only(eng_client, projects, engineer):
    mine, theirs = projects
    started = timezone.now() - timedelta(minutes=3, seconds=5)
    running = job(
        mine,
        kind="train_rl",
        state=JobState.RUNNING,
        created_by=engineer,
        attempt=2,
        started_at=started,
        progress_done=3,
        progress_total=10,
    )
    done = job(
        mine,
        kind="import",
        state=JobState.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(seconds=42),
    )
    other = job(theirs)
    response = eng_client.get("/jobs/")
    assert response.status_code == 200
    assert listed(response) == [done.pk, running.pk]  # newest first
    assert other.pk not in listed(response)
    html = response.content.decode()
    row = html.split(f'<tr data-job="{running.pk}">')[1].split("</tr>")[0]
    assert "RL fine-tune a restorer" in row and "Running" in row and "mine" in row
    assert "eng" in row and "3 / 10" in row and ">2<" in row
    assert re.search(r"3 min 0\d s", row), row
    done_row = html.split(f'<tr data-job="{done.pk}">')[1].split("</tr>")[0]
    assert "42 s" in done_row and "the loop / a command" in done_row
    # The project filter offers only the engineer's projects.
    assert 'value="mine"' in html and 'value="theirs"' not in html
    assert 'href="/jobs/"' in html  # the nav link


def test_the_list_filters_by_project_state_and_kind(eng_client, make_project, engineer):
    first = make_project(pairs=0, slug="first")
    second = make_project(pairs=0, slug="second")
    a = job(first, kind="generate", state=JobState.FAILED)
    b = job(first, kind="import", state=JobState.QUEUED)
    c = job(second, kind="generate", state=JobState.QUEUED)
    assert listed(eng_client.get("/jobs/?project=first")) == [b.pk, a.pk]
    assert listed(eng_client.get("/jobs/?state=queued")) == [c.pk, b.pk]
    assert listed(eng_client.get("/jobs/?kind=generate")) == [c.pk, a.pk]
    assert listed(eng_client.get("/jobs/?project=second&kind=generate&state=queued")) == [c.pk]
    assert listed(eng_client.get("/jobs/?state=succeeded")) == []
    html = eng_client.get("/jobs/?state=failed").content.decode()
    assert '<option value="failed" selected>' in html


def test_the_list_is_paginated_and_pages_keep_the_filters(eng_client, projects):
    mine, _ = projects
    jobs = [job(mine, kind="import", state=JobState.SUCCEEDED) for _ in range(30)]
    first = eng_client.get("/jobs/?state=succeeded")
    assert listed(first) == [j.pk for j in reversed(jobs)][:25]
    assert "state=succeeded&amp;page=2" in first.content.decode()
    second = eng_client.get("/jobs/?state=succeeded&page=2")
    assert listed(second) == [j.pk for j in reversed(jobs)][25:]


def test_the_detail_page_shows_progress_log_history_inputs_and_outputs(eng_client, projects):
    mine, _ = projects
    one = job(
        mine,
        kind="train_rl",
        state=JobState.RUNNING,
        queue="train",
        started_at=timezone.now(),
        progress_done=3,
        progress_total=10,
        log_tail="step 3 loss 0.12\n",
        history="2026-12-01T12:00Z attempt 1 on w1\n",
        attempt=1,
        worker="w1@host",
        params={"restorer_id": 7, "reward_id": 8, "preset": "tiny"},
        outputs={"restorer_id": 9},
    )
    response = eng_client.get(f"/jobs/{one.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="job-progress" max="10" value="3"' in html and "3 / 10 steps (30%)" in html
    assert "step 3 loss 0.12" in html and "attempt 1 on w1" in html and "w1@host" in html
    assert 'href="/models/7/"' in html and 'href="/models/8/"' in html and 'href="/models/9/"' in html
    assert "<code>tiny</code>" in html
    assert f'data-api="/api/jobs/{one.pk}/"' in html and f'data-cancel="/api/jobs/{one.pk}/cancel/"' in html
    assert 'src="/static/jobs/job.js"' in html and "<script>" not in html  # no inline script (CSP)
    # Nobody consumes the train queue: the page says so; the job can be cancelled, not retried.
    assert re.search(r'<p id="no-worker" class="warning" role="alert">', html)
    assert '<button type="button" id="cancel-button">' in html
    assert '<button type="button" id="retry-button" hidden>' in html


def test_a_live_worker_on_the_queue_hides_the_warning_and_a_failed_job_offers_retry(eng_client, projects):
    mine, _ = projects
    now = timezone.now()
    WorkerPresence.objects.create(name="w1", queues=["default"], started_at=now, last_seen_at=now)
    failed = job(mine, kind="import", state=JobState.FAILED, error="boom", finished_at=now)
    html = eng_client.get(f"/jobs/{failed.pk}/").content.decode()
    assert '<p id="no-worker" class="warning" role="alert" hidden>' in html
    assert '<button type="button" id="retry-button">' in html
    assert '<button type="button" id="cancel-button" hidden>' in html
    assert "boom" in html


def test_jobs_of_other_projects_answer_404_annotators_403_and_anonymous_users_log_in(
    client, projects, engineer, annotator
):
    mine, theirs = projects
    own, other = job(mine), job(theirs)
    client.force_login(engineer)
    assert client.get(f"/jobs/{other.pk}/").status_code == 404
    assert client.get("/jobs/999999/").status_code == 404
    assert client.get(f"/jobs/{own.pk}/").status_code == 200
    client.force_login(annotator)
    assert client.get("/jobs/").status_code == 403
    assert client.get(f"/jobs/{own.pk}/").status_code == 403
    assert 'href="/jobs/"' not in client.get("/", follow=True).content.decode()
    client.logout()
    for url in ("/jobs/", f"/jobs/{own.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"


def test_a_superuser_reads_every_job_those_without_a_project_included(client, projects):
    mine, theirs = projects
    admin = user_create(username="root", password="pw-123456", role=Role.ENGINEER)
    admin.is_superuser = True
    admin.save()
    jobs = [job(mine), job(theirs), job(None, kind="import")]
    client.force_login(admin)
    assert sorted(listed(client.get("/jobs/"))) == sorted(j.pk for j in jobs)
    assert client.get(f"/jobs/{jobs[2].pk}/").status_code == 200


def test_the_pages_read_a_bounded_number_of_queries(
    eng_client, projects, engineer, django_assert_max_num_queries
):
    mine, _ = projects
    for index in range(40):
        job(mine, kind="import" if index % 2 else "generate", state=JobState.SUCCEEDED, created_by=engineer)
    # session, user, count, page rows (with project and user joined), filter options
    with django_assert_max_num_queries(6):
        assert len(listed(eng_client.get("/jobs/"))) == 25
    queued = job(mine, kind="train_rl")
    # session, user, the job, the running sibling it waits for, live workers
    with django_assert_max_num_queries(6):
        assert eng_client.get(f"/jobs/{queued.pk}/").status_code == 200
