"""The jobs figures: running jobs first, then the recent others, with their durations; counts by state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.dashboards.selectors import jobs
from annotation_web.dashboards.selectors.filters import NO_FILTERS, DashboardFilters
from annotation_web.jobs.models import Job, JobState

pytestmark = pytest.mark.django_db


def test_running_jobs_come_first_with_durations_and_states_are_counted(make_project, make_user):
    project, other = make_project(pairs=1), make_project(pairs=1)
    manager = make_user(Role.MANAGER)
    now = timezone.now()
    finished = Job.objects.create(
        kind="train_reward",
        project=project,
        state=JobState.SUCCEEDED,
        started_at=now - timedelta(minutes=50),
        finished_at=now - timedelta(minutes=20),
    )
    running = Job.objects.create(
        kind="train_rl", project=project, state=JobState.RUNNING, started_at=now - timedelta(minutes=5)
    )
    queued = Job.objects.create(kind="generate", project=project, state=JobState.QUEUED)
    Job.objects.create(kind="generate", project=other, state=JobState.FAILED)
    old = Job.objects.create(kind="import", project=project, state=JobState.FAILED)
    Job.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=10))
    rows = jobs.jobs_running_and_recent(user=manager, project=project, filters=NO_FILTERS)
    assert [row["job"] for row in rows] == [running.pk, queued.pk, finished.pk, old.pk]
    by_id = {row["job"]: row for row in rows}
    assert by_id[finished.pk]["minutes"] == pytest.approx(30.0)
    assert by_id[running.pk]["minutes"] == pytest.approx(5.0, abs=0.5)  # running: now less started
    assert by_id[queued.pk]["minutes"] is None
    states = {
        row["state"]: row["jobs"]
        for row in jobs.jobs_by_state(user=manager, project=project, filters=NO_FILTERS)
    }
    assert states == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 0}
    recent = DashboardFilters(date_from=timezone.localdate() - timedelta(days=1))
    assert old.pk not in [
        row["job"] for row in jobs.jobs_running_and_recent(user=manager, project=project, filters=recent)
    ]
