"""Annotators racing for pairs on real connections: nobody gets a pair beyond its overlap, nothing is doubled."""

import threading
from collections import Counter

import pytest
from django.db import connections

from annotation_web.labeling import judgments, queue
from annotation_web.labeling.models import Judgment, Pair, Reservation

# Every test here runs on each queue path, and the queue invariant is checked after it (conftest.py).
pytestmark = pytest.mark.usefixtures("queue_path")


def _annotate_until_empty(user, project, errors, barrier):
    try:
        barrier.wait()
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            judgments.judgment_submit(
                annotator=user,
                reservation_id=reservation.pk,
                choice="left",
                idempotency_key=str(reservation.pk),
            )
    except Exception as exc:  # noqa: BLE001 - reported by the test below
        errors.append(repr(exc))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 3])
def test_racing_annotators_never_exceed_the_overlap(make_project, make_user, overlap):
    # PostgreSQL: row locks with SKIP LOCKED (sql path) or the ORM's select_for_update (orm path) are under
    # test. SQLite (a file, see tests/annotation_web/conftest.py): its one write lock serialises the racers.
    project = make_project(pairs=30, overlap=overlap)
    users = [make_user() for _ in range(8)]
    errors: list[str] = []
    barrier = threading.Barrier(len(users))
    threads = [
        threading.Thread(target=_annotate_until_empty, args=(u, project, errors, barrier)) for u in users
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    per_pair = Counter(Judgment.objects.values_list("pair_id", flat=True))
    assert set(per_pair.values()) == {overlap} and len(per_pair) == 30
    assert not Judgment.objects.values("pair_id", "annotator_id").annotate().filter().count() > 30 * overlap
    assert Reservation.objects.filter(state="submitted").count() == 30 * overlap
    assert not Pair.objects.filter(project=project, open_slots__gt=0).exists()
