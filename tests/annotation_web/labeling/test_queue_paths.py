"""The queue's two paths hand back the same results, the setting forces either, and the invariant checker
sees a broken queue."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation_web.labeling import judgments, queue, queue_sql
from annotation_web.labeling.models import Judgment, Pair, Reservation
from annotation_web.labeling.queue import queue_invariant_violations
from annotation_web.labeling.results import ReservedPair, SubmitResult

RAW_RESERVE, RAW_SUBMIT = "WITH chosen AS", "WITH r AS"


def reserved_from_db(reserved: ReservedPair) -> ReservedPair:
    reservation = Reservation.objects.select_related(
        "pair__face_input", "pair__candidate_a", "pair__candidate_b"
    ).get(pk=reserved.reservation_id)
    return ReservedPair.from_reservation(reservation)


def submitted_from_db(result: SubmitResult) -> SubmitResult:
    judgment = Judgment.objects.select_related("pair").get(pk=result.judgment_id)
    return SubmitResult.from_judgment(judgment, project_id=judgment.pair.project_id, created=result.created)


def serve_and_judge(annotator, project, choice="left", key="k1"):
    with CaptureQueriesContext(connection) as queries:
        reserved = queue.pair_reserve_next(annotator=annotator, project=project)
        result = judgments.judgment_submit(
            annotator=annotator, reservation_id=reserved.reservation_id, choice=choice, idempotency_key=key
        )
    return reserved, result, " ".join(q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("choice", ["left", "right", "tie", "skip"])
def test_results_are_what_the_database_holds_on_either_path(make_project, annotator, queue_path, choice):
    project = make_project(pairs=2)
    reserved, result, sql = serve_and_judge(annotator, project, choice=choice)
    assert reserved == reserved_from_db(reserved) and not reserved.is_gold
    assert result == submitted_from_db(result) and result.created
    assert (result.reservation_id, result.pair_id, result.project_id) == (
        reserved.reservation_id,
        reserved.pair_id,
        project.pk,
    )
    # The path is the one forced: raw statements on "sql" only.
    assert (RAW_RESERVE in sql, RAW_SUBMIT in sql) == (
        (True, True) if queue_path == "sql" else (False, False)
    )
    repeat = judgments.judgment_submit(
        annotator=annotator, reservation_id=reserved.reservation_id, choice="tie", idempotency_key="k1"
    )
    assert repeat == SubmitResult(**{**vars(result), "created": False})


@pytest.mark.django_db
def test_a_gold_judgment_reports_is_gold_on_either_path(make_project, annotator, queue_path):
    # Before the typed results, the fast path's `judgment.pair.is_gold` read False for a gold pair.
    project = make_project(pairs=0, gold=1, gold_rate=1.0)
    gold = Pair.objects.get(project=project, is_gold=True)
    reserved = queue.pair_reserve_next(annotator=annotator, project=project)
    assert reserved.is_gold and reserved.pair_id == gold.pk
    choice = "left" if reserved.shown_left == gold.gold_outcome else "right"  # the right answer
    result = judgments.judgment_submit(
        annotator=annotator, reservation_id=reserved.reservation_id, choice=choice, idempotency_key="g"
    )
    assert result.is_gold is True and result.gold_correct is True
    assert result == submitted_from_db(result)


@pytest.mark.django_db
def test_both_paths_give_equal_results_for_the_same_request(make_project, make_user, settings):
    if connection.vendor != "postgresql":
        pytest.skip("one path on this database")
    project = make_project(pairs=1, overlap=2)  # both annotators get the one pair
    seen = {}
    for path in ("sql", "orm"):
        settings.PREF_QUEUE_PATH = path
        reserved, result, _ = serve_and_judge(make_user(), project, choice="tie", key="same")
        seen[path] = (reserved, result)
    # What differs between two reservations of one pair whatever the path: ids, times, the drawn side.
    own = {"reservation_id", "judgment_id", "created_at", "expires_at", "shown_left"}
    for sql_result, orm_result in zip(seen["sql"], seen["orm"]):
        assert type(sql_result) is type(orm_result)
        assert {k: v for k, v in vars(sql_result).items() if k not in own} == {
            k: v for k, v in vars(orm_result).items() if k not in own
        }


@pytest.mark.django_db
def test_the_setting_is_checked(settings, monkeypatch):
    settings.PREF_QUEUE_PATH = "orm"
    assert queue_sql.use_sql() is False
    settings.PREF_QUEUE_PATH = "fast"
    with pytest.raises(ImproperlyConfigured, match="auto, sql, orm"):
        queue_sql.use_sql()
    monkeypatch.setattr(connection, "vendor", "sqlite")
    settings.PREF_QUEUE_PATH = "auto"
    assert queue_sql.use_sql() is False
    settings.PREF_QUEUE_PATH = "sql"
    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL"):
        queue_sql.use_sql()


@pytest.mark.django_db
def test_the_invariant_checker_sees_a_broken_queue(make_project, make_user, queue_path):
    project = make_project(pairs=3, overlap=2, gold=1)
    user = make_user()
    reserved, result, _ = serve_and_judge(user, project)
    held = queue.pair_reserve_next(annotator=user, project=project)
    assert queue_invariant_violations(project=project) == []

    Pair.objects.filter(pk=result.pair_id).update(open_slots=F("open_slots") + 1)
    Pair.objects.filter(pk=held.pair_id).update(judgment_count=5)
    Pair.objects.filter(project=project, is_gold=True).update(open_slots=1)
    Judgment.objects.filter(pk=result.judgment_id).update(is_gold=True)
    past = timezone.now() - timedelta(seconds=1)
    Reservation.objects.filter(pk=held.reservation_id).update(state="submitted", expires_at=past)
    found = "\n".join(queue_invariant_violations(project=project))
    assert (
        f"pair {result.pair_id}: open_slots=2 != max(0, overlap 2 - judgments 1 - live reservations 0) = 1"
        in found
    )
    assert f"pair {held.pair_id}: judgment_count=5 != 0 non-skip judgments" in found
    assert "gold pair" in found and "expected 0" in found
    assert f"judgment {result.judgment_id}: pair, annotator or is_gold differ" in found
    assert f"reservation {held.reservation_id}: submitted without a judgment" in found
    # Put back what was broken, so that the conftest's check after the test passes.
    Pair.objects.filter(pk=result.pair_id).update(open_slots=F("open_slots") - 1)
    Pair.objects.filter(pk=held.pair_id).update(judgment_count=0, open_slots=F("open_slots") + 1)
    Pair.objects.filter(project=project, is_gold=True).update(open_slots=0)
    Judgment.objects.filter(pk=result.judgment_id).update(is_gold=False)
    Reservation.objects.filter(pk=held.reservation_id).update(state="expired")
    assert queue_invariant_violations(project=project) == []


@pytest.mark.django_db
def test_the_invariant_checker_sees_a_pair_beyond_its_overlap(make_project, make_user, queue_path):
    project = make_project(pairs=1, overlap=1)
    first, second = make_user(), make_user()
    reserved = queue.pair_reserve_next(annotator=first, project=project)
    # A second reservation taken behind the queue's back: the pair is now held twice with overlap 1.
    Reservation.objects.create(
        pair_id=reserved.pair_id,
        annotator=second,
        shown_left="a",
        created_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    found = queue_invariant_violations(project=project)
    assert f"pair {reserved.pair_id}: 0 judged + 2 held exceed the overlap 1" in found
    Reservation.objects.filter(annotator=second).update(state="expired")
