"""A job's page in a real browser (Chromium via Playwright): the progress bar and log follow the job without
a reload, and Cancel stops it through the API (session auth, CSRF token) and says so."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.services import job_report_progress
from annotation_web.labeling.pairs import project_create
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    collect_errors,
    log_in,
    page,
    pytestmark,
)
from tests.annotation_web.test_browser import (
    screenshot as _shot,
)


@pytest.mark.django_db(transaction=True)
def test_an_engineer_watches_a_running_job_move_and_cancels_it(page, live_server):  # noqa: F811
    project = project_create(name="Jobs project", slug="jobs-browser")
    engineer = user_create(username="watching-engineer", password=PASSWORD, role=Role.ENGINEER)
    membership_add(user=engineer, project=project)
    job = Job.objects.create(
        kind="train_rl",
        project=project,
        state=JobState.RUNNING,
        queue="train",
        created_by=engineer,
        started_at=timezone.now(),
        attempt=1,
        worker="gpu-1@host",
        progress_done=3,
        progress_total=10,
        log_tail="step 3/10 reward 0.12\n",
        params={"restorer_id": 1, "reward_id": 2, "preset": "tiny"},
    )
    errors = collect_errors(page)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith(f"/api/jobs/{job.pk}/") else None)

    log_in(page, live_server.url, username=engineer.username, next_path="/jobs/")
    _shot(page, "jobs-list.png")
    # From the list to the job, by keyboard: the row's link is focusable and Enter follows it.
    page.locator(f'tr[data-job="{job.pk}"] a').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/jobs/{job.pk}/")
    assert page.get_attribute("#job-progress", "value") == "3"
    assert "3 / 10" in page.inner_text("#job-progress-text")
    assert page.locator("#no-worker").is_visible()  # nobody consumes the train queue
    page.evaluate("() => { window.__notReloaded = true; }")
    _shot(page, "job-running-3-of-10.png")

    job_report_progress(job_id=job.pk, done=7, total=10, log_line="step 7/10 reward 0.31")
    page.wait_for_function("() => document.getElementById('job-progress').value === 7")
    assert "7 / 10 steps (70%)" in page.inner_text("#job-progress-text")
    page.wait_for_function("() => document.getElementById('job-log').textContent.includes('step 7/10')")
    assert page.evaluate("() => window.__notReloaded === true")  # moved without a reload
    _shot(page, "job-running-7-of-10.png")

    # Polling keeps the reader's place: a focused input link stays focused across polls (tables unchanged).
    page.locator('#job-params a[href="/models/1/"]').focus()
    polled = len(polls)
    deadline = time.monotonic() + 10
    while len(polls) < polled + 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert len(polls) >= polled + 2
    assert page.evaluate("() => document.activeElement.getAttribute('href')") == "/models/1/"

    page.click("#cancel-button")
    page.wait_for_function("() => document.getElementById('job-state').textContent === 'Cancelled'")
    assert "cancelled" in page.inner_text("#job-flash").lower()
    assert page.locator("#cancel-button").is_hidden() and page.locator("#retry-button").is_hidden()
    assert "cancelled" in page.inner_text("#job-history")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.finished_at is not None
    _shot(page, "job-cancelled.png")

    # Over: the page stops polling.
    seen = len(polls)
    assert seen >= 1
    time.sleep(4.5)
    assert len(polls) == seen
    assert errors == []
