"""Frozen judgment snapshots: exactly the reward export's rows up to a judgment id, unchanged by later judgments
or edits, with a stable hash that catches a tampered file; numbered per project, even in a race; listed and
exported for engineers."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connections

from annotation_web.accounts.models import Role
from annotation_web.labeling import judgments, queue, snapshots
from annotation_web.labeling.models import Judgment, JudgmentSnapshot
from annotation_web.labeling.selectors import preference_export_rows
from annotation_web.storage import get_storage
from tests.annotation_web.training.test_ml_loop import engineer_client


def judge(project, user, *, limit: int | None = None) -> int:
    """The annotator judges what the queue serves (some skips, some ties) until it is empty or `limit`."""
    judged = 0
    while (limit is None or judged < limit) and (
        reservation := queue.pair_reserve_next(annotator=user, project=project)
    ) is not None:
        choice = ["left", "right", "tie", "skip"][reservation.pk.int % 4]
        judgments.judgment_submit(
            annotator=user, reservation_id=reservation.pk, choice=choice, idempotency_key=str(reservation.pk)
        )
        judged += 1
    return judged


@pytest.fixture
def judged_project(make_project, make_user):
    # gold_rate 1: every annotator meets the gold pairs first, so the export has gold rows to freeze too.
    project = make_project(pairs=8, gold=2, overlap=2, gold_rate=1.0)
    for _ in range(2):
        judge(project, make_user())
    return project


def what_the_reward_job_exports(project, up_to: int) -> list[dict]:
    """The reward job's export today (`training.services.reward_training_run`): the preference export, gold
    included, less judgments after the job's `up_to_judgment_id`."""
    return [row for row in preference_export_rows(project=project) if int(row["judgment_id"]) <= up_to]


@pytest.mark.django_db
def test_a_snapshot_is_the_reward_export_up_to_its_judgment(judged_project, any_storage):
    project = judged_project
    ids = sorted(Judgment.objects.filter(pair__project=project).values_list("pk", flat=True))
    up_to = ids[len(ids) * 2 // 3]
    snapshot = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    expected = what_the_reward_job_exports(project, up_to)
    rows = list(snapshots.judgment_snapshot_rows(snapshot))
    assert rows == expected and rows
    assert any(row["is_gold"] for row in rows) and not any(row["outcome"] == "skip" for row in rows)
    assert snapshot.number == 1 and snapshot.count == len(rows) and snapshot.up_to_judgment_id == up_to
    assert snapshot.judgment_ids == [int(row["judgment_id"]) for row in rows]
    assert snapshot.sha256 == hashlib.sha256(snapshots.canonical_jsonl(expected)).hexdigest()
    assert snapshots.judgment_snapshot_verify(snapshot) == {"stored_ok": True, "database_unchanged": True}


@pytest.mark.django_db
def test_later_judgments_and_edits_do_not_change_a_snapshot(judged_project, make_user):
    project = judged_project
    up_to = Judgment.objects.filter(pair__project=project).order_by("-pk").values_list("pk", flat=True)[0]
    snapshot = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    frozen = list(snapshots.judgment_snapshot_rows(snapshot))

    # More judgments (a third annotator on pairs raised to overlap 3), then an edit that changes what the
    # export gives for an old id.
    from annotation_web.labeling.pairs import project_set_overlap

    project_set_overlap(project=project, overlap=3)
    assert judge(project, make_user()) > 0
    assert Judgment.objects.filter(pair__project=project, pk__gt=up_to).exists()
    # The edit `gold_pairs_from_consensus` makes when it turns a judged pair gold: its judgments become gold.
    first_ordinary = next(row for row in frozen if not row["is_gold"])
    Judgment.objects.filter(pk=int(first_ordinary["judgment_id"])).update(is_gold=True)
    assert what_the_reward_job_exports(project, up_to) != frozen

    snapshot.refresh_from_db()
    assert list(snapshots.judgment_snapshot_rows(snapshot)) == frozen
    assert snapshots.judgment_snapshot_verify(snapshot) == {"stored_ok": True, "database_unchanged": False}
    # A new snapshot up to the same id is the next number and freezes the rows as they are now.
    again = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    assert again.number == 2 and again.sha256 != snapshot.sha256
    assert list(snapshots.judgment_snapshot_rows(again)) == what_the_reward_job_exports(project, up_to)


@pytest.mark.django_db
def test_the_hash_is_stable_and_catches_a_changed_file(judged_project):
    project = judged_project
    up_to = Judgment.objects.filter(pair__project=project).order_by("-pk").values_list("pk", flat=True)[0]
    first = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    second = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    assert (first.number, second.number) == (1, 2)
    assert first.sha256 == second.sha256 and first.rows_key != second.rows_key
    data = get_storage().get(first.rows_key)
    assert hashlib.sha256(data).hexdigest() == first.sha256
    # Canonical: keys sorted, no spaces, one row a line.
    assert data.splitlines()[0].startswith(b'{"a_key":') and b", " not in data.splitlines()[0]

    get_storage().put(first.rows_key, data.replace(b'"is_gold":false', b'"is_gold":true', 1))
    with pytest.raises(snapshots.SnapshotCorrupt):
        list(snapshots.judgment_snapshot_rows(first))
    assert snapshots.judgment_snapshot_verify(first)["stored_ok"] is False
    with pytest.raises(snapshots.LabelingError):
        snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=0)


@pytest.mark.django_db(transaction=True)
def test_snapshots_taken_in_a_race_get_distinct_numbers(make_project, make_user):
    project = make_project(pairs=6)
    judge(project, make_user())
    up_to = Judgment.objects.order_by("-pk").values_list("pk", flat=True)[0]
    racers = 4
    barrier = threading.Barrier(racers)
    numbers: list[int] = []
    errors: list[str] = []

    def take() -> None:
        try:
            barrier.wait()
            numbers.append(
                snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to).number
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(numbers) == [1, 2, 3, 4]
    assert len(set(JudgmentSnapshot.objects.filter(project=project).values_list("sha256", flat=True))) == 1


@pytest.mark.django_db
def test_the_snapshot_api_lists_and_exports_for_engineers(judged_project, engineer, make_user):
    project = judged_project
    up_to = Judgment.objects.filter(pair__project=project).order_by("-pk").values_list("pk", flat=True)[0]
    snapshot = snapshots.judgment_snapshot_create(project=project, up_to_judgment_id=up_to)
    client = engineer_client(engineer)
    listed = client.get(f"/api/projects/{project.slug}/snapshots/")
    assert listed.status_code == 200, listed.content
    [row] = listed.json()["snapshots"]
    assert row["number"] == 1 and row["count"] == snapshot.count and row["sha256"] == snapshot.sha256
    assert row["export"] == f"/api/projects/{project.slug}/snapshots/1/export.jsonl"

    exported = client.get(row["export"])
    assert exported.status_code == 200 and exported["Content-Type"] == "application/x-ndjson"
    assert hashlib.sha256(exported.content).hexdigest() == snapshot.sha256
    assert exported.content.count(b"\n") == snapshot.count
    assert client.get(f"/api/projects/{project.slug}/snapshots/9/export.jsonl").status_code == 404
    for role in (Role.ANNOTATOR, Role.MANAGER):
        other = engineer_client(make_user(role))
        assert other.get(f"/api/projects/{project.slug}/snapshots/").status_code == 403
        assert other.get(row["export"]).status_code == 403
