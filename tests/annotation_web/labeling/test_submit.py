"""Submitting judgments: side mapping, idempotency, refusals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.labeling import judgments, queue
from annotation_web.labeling.errors import Conflict, Expired, Forbidden, LabelingError, NotFound
from annotation_web.labeling.models import Judgment, Outcome, Pair, Reservation

# Every test here runs on each queue path, and the queue invariant is checked after it (conftest.py).
pytestmark = pytest.mark.usefixtures("queue_path")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("shown_left", "choice", "outcome"),
    [
        ("a", "left", "a"),
        ("a", "right", "b"),
        ("b", "left", "b"),
        ("b", "right", "a"),
        ("b", "tie", "tie"),
        ("a", "both_bad", "both_bad"),
    ],
)
def test_screen_choice_is_recorded_against_the_pair(make_project, annotator, shown_left, choice, outcome):
    project = make_project(pairs=1)
    reservation = queue.pair_reserve_next(annotator=annotator, project=project)
    Reservation.objects.filter(pk=reservation.pk).update(shown_left=shown_left)
    result = judgments.judgment_submit(
        annotator=annotator, reservation_id=reservation.pk, choice=choice, idempotency_key="k1"
    )
    assert result.created
    judgment = Judgment.objects.get()
    assert (judgment.outcome, judgment.shown_left) == (outcome, shown_left)
    assert judgment.server_duration_ms >= 0
    assert Pair.objects.get().judgment_count == 1


@pytest.mark.django_db
def test_repeated_submit_returns_the_first_result(make_project, annotator):
    project = make_project(pairs=2)
    reservation = queue.pair_reserve_next(annotator=annotator, project=project)
    first = judgments.judgment_submit(
        annotator=annotator, reservation_id=reservation.pk, choice="left", idempotency_key="same"
    )
    repeat = judgments.judgment_submit(
        annotator=annotator, reservation_id=reservation.pk, choice="right", idempotency_key="same"
    )
    assert not repeat.created and repeat.judgment_id == first.judgment_id
    assert repeat.outcome == first.outcome
    assert Judgment.objects.count() == 1 and Pair.objects.get(pk=reservation.pair_id).judgment_count == 1


@pytest.mark.django_db
def test_second_submit_with_another_key_is_refused(make_project, annotator):
    project = make_project(pairs=2)
    reservation = queue.pair_reserve_next(annotator=annotator, project=project)
    judgments.judgment_submit(
        annotator=annotator, reservation_id=reservation.pk, choice="left", idempotency_key="k1"
    )
    with pytest.raises(Conflict):
        judgments.judgment_submit(
            annotator=annotator, reservation_id=reservation.pk, choice="left", idempotency_key="k2"
        )
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
def test_refusals_are_clear(make_project, make_user):
    project = make_project(pairs=2)
    owner, stranger = make_user(), make_user()
    reservation = queue.pair_reserve_next(annotator=owner, project=project)
    with pytest.raises(NotFound):
        judgments.judgment_submit(
            annotator=owner,
            reservation_id="00000000-0000-0000-0000-000000000000",
            choice="left",
            idempotency_key="x",
        )
    with pytest.raises(Forbidden):
        judgments.judgment_submit(
            annotator=stranger, reservation_id=reservation.pk, choice="left", idempotency_key="x"
        )
    with pytest.raises(LabelingError, match="choice must be one of"):
        judgments.judgment_submit(
            annotator=owner, reservation_id=reservation.pk, choice="a", idempotency_key="x"
        )
    # Expired, released, and the slot taken by someone else: the late answer has no room and says so.
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    queue.reservations_release_expired()
    taken = queue.pair_reserve_next(annotator=stranger, project=project)
    assert taken.pair_id == reservation.pair_id
    with pytest.raises(Expired, match="not recorded"):
        judgments.judgment_submit(
            annotator=owner, reservation_id=reservation.pk, choice="left", idempotency_key="x"
        )
    assert Judgment.objects.count() == 0


@pytest.mark.django_db
def test_database_forbids_two_judgments_of_one_pair_by_one_annotator(make_project, annotator):
    from django.db import IntegrityError, transaction

    project = make_project(pairs=1)
    reservation = queue.pair_reserve_next(annotator=annotator, project=project)
    judgments.judgment_submit(
        annotator=annotator, reservation_id=reservation.pk, choice="tie", idempotency_key="k1"
    )
    judgment = Judgment.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(
            pair=judgment.pair,
            annotator=annotator,
            reservation=Reservation.objects.create(
                pair=judgment.pair,
                annotator=annotator,
                shown_left="a",
                created_at=timezone.now(),
                expires_at=timezone.now(),
            ),
            outcome=Outcome.A,
            shown_left="a",
            idempotency_key="other",
            server_duration_ms=1,
        )
