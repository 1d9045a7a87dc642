"""Serving pairs: reservations, overlap, expiry, skips, gold interleaving."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.labeling import judgments, pairs, queue
from annotation_web.labeling.errors import Conflict
from annotation_web.labeling.models import Judgment, Outcome, Pair, Reservation, ReservationState

# Every test here runs on each queue path, and the queue invariant is checked after it (conftest.py).
pytestmark = pytest.mark.usefixtures("queue_path")


def judge(user, reservation, choice="left", key=None):
    return judgments.judgment_submit(
        annotator=user,
        reservation_id=reservation.pk,
        choice=choice,
        idempotency_key=key or f"k-{reservation.pk}",
    )


@pytest.mark.django_db
def test_asking_again_before_submitting_returns_the_same_reservation(make_project, annotator):
    project = make_project(pairs=3)
    first = queue.pair_reserve_next(annotator=annotator, project=project)
    again = queue.pair_reserve_next(annotator=annotator, project=project)
    assert first is not None and again.pk == first.pk
    assert Reservation.objects.filter(annotator=annotator).count() == 1


@pytest.mark.django_db
def test_prefetch_holds_a_second_pair_but_never_a_third(make_project, annotator):
    project = make_project(pairs=3)
    current = queue.pair_reserve_next(annotator=annotator, project=project)
    prefetched = queue.pair_reserve_next(
        annotator=annotator, project=project, exclude_reservations=[current.pk]
    )
    assert prefetched.pair_id != current.pair_id
    with pytest.raises(Conflict):
        queue.pair_reserve_next(
            annotator=annotator, project=project, exclude_reservations=[current.pk, prefetched.pk]
        )


@pytest.mark.django_db
@pytest.mark.parametrize("overlap", [1, 3])
def test_a_pair_is_served_to_exactly_overlap_annotators(make_project, make_user, overlap):
    project = make_project(pairs=2, overlap=overlap)
    annotators = [make_user() for _ in range(overlap + 2)]
    served_first_pair = 0
    for user in annotators:
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            served_first_pair += reservation.pair_id == Pair.objects.order_by("id").first().pk
            judge(user, reservation)
    assert served_first_pair == overlap
    for pair in Pair.objects.filter(project=project):
        assert pair.judgments.count() == overlap
        assert pair.open_slots == 0
    assert queue.pair_reserve_next(annotator=make_user(), project=project) is None


@pytest.mark.django_db
def test_an_annotator_never_gets_a_pair_they_judged(make_project, annotator):
    project = make_project(pairs=3, overlap=3)
    seen = []
    while (reservation := queue.pair_reserve_next(annotator=annotator, project=project)) is not None:
        seen.append(reservation.pair_id)
        judge(annotator, reservation)
    assert len(seen) == len(set(seen)) == 3


@pytest.mark.django_db
def test_stale_reservations_never_make_the_queue_look_empty(make_project, make_user):
    project = make_project(pairs=1, ttl=60)
    first, second = make_user(), make_user()
    stale = queue.pair_reserve_next(annotator=first, project=project)
    assert queue.pair_reserve_next(annotator=second, project=project) is None  # held, not expired
    Reservation.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    fresh = queue.pair_reserve_next(annotator=second, project=project)
    assert fresh is not None and fresh.pair_id == stale.pair_id
    assert Reservation.objects.get(pk=stale.pk).state == ReservationState.EXPIRED


@pytest.mark.django_db
def test_periodic_release_returns_expired_slots(make_project, make_user):
    project = make_project(pairs=2, overlap=2)
    user = make_user()
    reservation = queue.pair_reserve_next(annotator=user, project=project)
    assert Pair.objects.get(pk=reservation.pair_id).open_slots == 1
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    assert queue.reservations_release_expired() == 1
    assert queue.reservations_release_expired() == 0
    assert Pair.objects.get(pk=reservation.pair_id).open_slots == 2


@pytest.mark.django_db
def test_skip_is_recorded_and_gives_the_slot_back(make_project, make_user):
    project = make_project(pairs=1)
    skipper, other = make_user(), make_user()
    reservation = queue.pair_reserve_next(annotator=skipper, project=project)
    judge(skipper, reservation, choice="skip")
    assert Judgment.objects.get(annotator=skipper).outcome == Outcome.SKIP
    pair = Pair.objects.get(pk=reservation.pair_id)
    assert pair.open_slots == 1 and pair.judgment_count == 0
    assert queue.pair_reserve_next(annotator=skipper, project=project) is None  # they skipped it
    assert queue.pair_reserve_next(annotator=other, project=project).pair_id == pair.pk


@pytest.mark.django_db
def test_raising_the_overlap_reopens_judged_pairs(make_project, make_user):
    project = make_project(pairs=1, overlap=1)
    first = make_user()
    judge(first, queue.pair_reserve_next(annotator=first, project=project))
    second = make_user()
    assert queue.pair_reserve_next(annotator=second, project=project) is None
    pairs.project_set_overlap(project=project, overlap=2)
    assert queue.pair_reserve_next(annotator=second, project=project) is not None


@pytest.mark.django_db
def test_gold_pairs_are_interleaved_and_scored(make_project, make_user):
    project = make_project(pairs=30, gold=10, gold_rate=0.3)
    user = make_user(Role.MANAGER)  # managers may annotate too
    served_gold = 0
    while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
        served_gold += reservation.is_gold
        # Always pick the candidate `a`, whatever side it was shown on.
        choice = "left" if reservation.shown_left == "a" else "right"
        judge(user, reservation, choice=choice)
    assert 3 <= served_gold <= 10
    gold_judgments = Judgment.objects.filter(annotator=user, is_gold=True)
    assert gold_judgments.count() == served_gold
    for judgment in gold_judgments:
        assert judgment.outcome == Outcome.A
        assert judgment.gold_correct == (judgment.pair.gold_outcome == Outcome.A)
    # Gold pairs measure annotators; they never take overlap slots.
    assert not Pair.objects.filter(project=project, is_gold=True, open_slots__gt=0).exists()


@pytest.mark.django_db
def test_left_right_is_randomised_per_reservation(make_project, make_user):
    project = make_project(pairs=60)
    user = make_user()
    sides = []
    while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
        sides.append(reservation.shown_left)
        judge(user, reservation)
    assert 10 < sides.count("a") < 50


@pytest.mark.django_db
def test_beat_schedules_the_release_task_and_the_task_releases(make_project, make_user):
    from annotation_web.celery import app
    from annotation_web.labeling.tasks import release_expired_reservations

    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert release_expired_reservations.name in scheduled
    project = make_project(pairs=1)
    reservation = queue.pair_reserve_next(annotator=make_user(), project=project)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert release_expired_reservations.apply().get() == 1
    assert Pair.objects.get(pk=reservation.pair_id).open_slots == 1
