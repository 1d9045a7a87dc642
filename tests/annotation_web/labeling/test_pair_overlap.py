"""A pair's own overlap (`Pair.overlap`, at least the project's): served to that many annotators on both queue
paths, its slots given back on expiry and skip and kept across a change of the project's overlap, the queue
invariant holding throughout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.labeling import judgments, queue
from annotation_web.labeling.models import Pair, Reservation
from annotation_web.labeling.pairs import pair_create, project_set_overlap
from tests.annotation_web.labeling.conftest import assert_queue_invariant


def _twice(project) -> Pair:
    pair = Pair.objects.filter(project=project).order_by("pk").first()
    a, b = pair.candidate_a, pair.candidate_b
    pair.delete()
    return pair_create(a=a, b=b, overlap=2)


def _submit(user, reservation, choice="left"):
    return judgments.judgment_submit(
        annotator=user, reservation_id=reservation.pk, choice=choice, idempotency_key=str(reservation.pk)
    )


def test_a_pair_of_overlap_two_is_judged_twice_the_others_once(make_project, make_user, queue_path):
    project = make_project(pairs=3)
    twice = _twice(project)
    assert twice.overlap == 2 and twice.open_slots == 2
    judged: dict[int, int] = {}
    for _ in range(3):
        user = make_user()
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            _submit(user, reservation)
            judged[reservation.pair_id] = judged.get(reservation.pair_id, 0) + 1
    assert judged[twice.pk] == 2 and sorted(judged.values()) == [1, 1, 2]
    assert_queue_invariant()


def test_expiry_and_skip_give_a_slot_of_its_own_overlap_back(make_project, make_user, queue_path):
    project = make_project(pairs=1)
    twice = _twice(project)
    first, second = make_user(), make_user()
    held = queue.pair_reserve_next(annotator=first, project=project)
    _submit(first, held)
    stale = queue.pair_reserve_next(annotator=second, project=project)
    assert stale.pair_id == twice.pk
    Reservation.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue.reservations_release_expired() == 1
    twice.refresh_from_db()
    assert twice.open_slots == 1  # 2 wanted - 1 judged, not the project's 1 - 1
    again = queue.pair_reserve_next(annotator=second, project=project)
    _submit(second, again, choice="skip")
    twice.refresh_from_db()
    assert twice.open_slots == 1
    assert_queue_invariant()


@pytest.mark.django_db
def test_the_projects_overlap_wins_when_higher_and_the_pairs_own_stays(make_project):
    project = make_project(pairs=2)
    twice = _twice(project)
    other = Pair.objects.filter(project=project).exclude(pk=twice.pk).get()
    project_set_overlap(project=project, overlap=3)
    assert {p.pk: p.open_slots for p in Pair.objects.filter(project=project)} == {twice.pk: 3, other.pk: 3}
    assert_queue_invariant()
    project_set_overlap(project=project, overlap=1)
    assert {p.pk: p.open_slots for p in Pair.objects.filter(project=project)} == {twice.pk: 2, other.pk: 1}
    assert_queue_invariant()
