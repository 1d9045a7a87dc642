"""The loop's tick interval lives in the policy (`tick_seconds`): the beat fires every PREF_LOOP_TICK_SECONDS,
and a project ticked more recently than its interval is left alone, with nothing recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from annotation_web.loop import services
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState
from tests.annotation_web.loop import test_loop

loop_project = test_loop.loop_project  # the loop tests' fixture


def _ticked_at(project):
    return LoopState.objects.get(project=project).ticked_at


@pytest.mark.django_db
def test_the_beat_skips_a_project_ticked_less_than_its_interval_ago(loop_project):
    assert LoopPolicy.objects.get(project=loop_project).tick_seconds == 20  # the default
    services.loop_policy_update(project=loop_project, user=None, changes={"tick_seconds": 60})
    first = services.loop_tick_enabled()
    assert [e.project_id for e in first] == [loop_project.pk]
    assert first[0].decision == LoopEvent.Decision.STARTED  # the first restorer's training
    ticked = _ticked_at(loop_project)
    events = LoopEvent.objects.filter(project=loop_project).count()

    assert services.loop_tick_enabled() == []  # younger than 60 s: nothing decided, nothing recorded
    assert services.loop_tick(project=loop_project, scheduled=True) is None
    assert LoopEvent.objects.filter(project=loop_project).count() == events
    assert _ticked_at(loop_project) == ticked

    LoopState.objects.filter(project=loop_project).update(ticked_at=ticked - timedelta(seconds=61))
    again = services.loop_tick_enabled()
    assert len(again) == 1 and again[0].reason.startswith("waiting: train_restorer job")
    assert _ticked_at(loop_project) > ticked


@pytest.mark.django_db
def test_a_shorter_interval_lets_the_next_beat_through(loop_project):
    services.loop_policy_update(project=loop_project, user=None, changes={"tick_seconds": 5})
    assert len(services.loop_tick_enabled()) == 1
    ticked = _ticked_at(loop_project)
    LoopState.objects.filter(project=loop_project).update(ticked_at=ticked - timedelta(seconds=2))
    assert services.loop_tick_enabled() == []
    # A beat a moment early (the slack) still ticks: 4 s + 2 s of slack is the 5 s interval.
    LoopState.objects.filter(project=loop_project).update(ticked_at=ticked - timedelta(seconds=4))
    assert len(services.loop_tick_enabled()) == 1
    ticked = _ticked_at(loop_project)
    LoopState.objects.filter(project=loop_project).update(ticked_at=ticked - timedelta(seconds=6))
    assert len(services.loop_tick_enabled()) == 1


@pytest.mark.django_db
def test_a_tick_by_hand_always_runs_and_is_recorded_as_the_last_tick(loop_project):
    services.loop_policy_update(project=loop_project, user=None, changes={"tick_seconds": 3600})
    first = services.loop_tick(project=loop_project)
    second = services.loop_tick(project=loop_project)
    assert first is not None and second is not None
    assert second.reason.startswith("waiting: train_restorer job")
    assert services.loop_tick_enabled() == []  # the beat counts a tick by hand as the last tick


@pytest.mark.django_db
def test_the_interval_is_set_through_the_policy_api(loop_project, engineer):
    from tests.annotation_web.training.test_ml_loop import engineer_client

    client = engineer_client(engineer)
    url = f"/api/projects/{loop_project.slug}/loop/"
    changed = client.put(url, {"tick_seconds": 120, "agreement_share": 0.3}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["tick_seconds"] == 120 and changed.json()["agreement_share"] == 0.3
    assert "ticked_at" in changed.json()["state"]
    for bad in ({"tick_seconds": 0}, {"agreement_share": 1.5}, {"agreement_share": -0.1}):
        assert client.put(url, bad, format="json").status_code == 400, bad
