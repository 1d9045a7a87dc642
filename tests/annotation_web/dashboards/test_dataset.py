"""The dataset figures on planted judgments: per-day counts with gold and skips apart, the filters, the queue,
composition and the outcome mix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.dashboards.selectors import dataset
from annotation_web.dashboards.selectors.filters import NO_FILTERS, DashboardFilters
from annotation_web.labeling.models import FaceInput, Pair, Reservation, ReservationState
from tests.annotation_web.dashboards.conftest import plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def planted(make_project, make_user, ordinary_pairs, gold_pairs_of):
    """4 ordinary pairs (batches b1, b2, b1, b2) and 2 gold pairs; today: 3 ordinary answers, 2 gold answers
    (one right, one wrong) and a skip; two days ago: one ordinary answer in b2."""
    project = make_project(pairs=4, gold=2)
    alice, bob = make_user(Role.ANNOTATOR, "alice"), make_user(Role.ANNOTATOR, "bob")
    pairs, gold = ordinary_pairs(project), gold_pairs_of(project)
    today = timezone.localdate()
    plant(pair=pairs[0], annotator=alice, outcome="a")
    plant(pair=pairs[1], annotator=alice, outcome="tie")
    plant(pair=pairs[2], annotator=bob, outcome="b")
    plant(pair=pairs[3], annotator=bob, outcome="skip")
    plant(pair=gold[0], annotator=alice, outcome=gold[0].gold_outcome)
    plant(pair=gold[1], annotator=bob, outcome="b" if gold[1].gold_outcome == "a" else "a")
    plant(pair=pairs[1], annotator=bob, outcome="both_bad", day=today - timedelta(days=2))
    return project


def test_judgments_per_day_counts_gold_and_skips_apart_and_fills_empty_days(planted):
    today = timezone.localdate()
    rows = dataset.judgments_per_day(project=planted, filters=NO_FILTERS)
    assert [row["day"] for row in rows] == [(today - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert rows[0] == {"day": rows[0]["day"], "ordinary": 1, "gold": 0, "skips": 0}
    assert rows[1] == {"day": rows[1]["day"], "ordinary": 0, "gold": 0, "skips": 0}
    assert rows[2] == {"day": rows[2]["day"], "ordinary": 3, "gold": 2, "skips": 1}


def test_date_and_batch_filters(planted):
    today = timezone.localdate()
    only_today = DashboardFilters(date_from=today, date_to=today)
    assert dataset.judgments_per_day(project=planted, filters=only_today) == [
        {"day": today.isoformat(), "ordinary": 3, "gold": 2, "skips": 1}
    ]
    # Gold pairs have no batch: batch b2 is pairs 1 and 3, whose answers are a tie, a skip and a both-bad.
    b2 = {
        row["outcome"]: row
        for row in dataset.outcome_mix(project=planted, filters=DashboardFilters(batch="b2"))
    }
    assert (b2["tie"]["ordinary"], b2["skip"]["ordinary"], b2["both_bad"]["ordinary"]) == (1, 1, 1)
    assert sum(row["ordinary"] + row["gold"] for row in b2.values()) == 3
    two_days_ago = today - timedelta(days=2)
    old_b2 = DashboardFilters(date_from=two_days_ago, date_to=two_days_ago, batch="b2")
    assert [row["ordinary"] for row in dataset.judgments_per_day(project=planted, filters=old_b2)] == [1]


def test_outcome_mix_lists_every_outcome_with_gold_apart(planted):
    rows = {row["outcome"]: row for row in dataset.outcome_mix(project=planted, filters=NO_FILTERS)}
    assert list(rows) == ["a", "b", "tie", "both_bad", "skip"]
    assert sum(row["gold"] for row in rows.values()) == 2
    assert sum(row["ordinary"] for row in rows.values()) == 5  # skip included, in its own row
    assert rows["skip"] == {"outcome": "skip", "label": "Skipped", "ordinary": 1, "gold": 0}


def test_queue_depth_counts_waiting_pairs_slots_and_live_reservations(planted, make_user):
    Pair.objects.filter(project=planted, is_gold=False).update(open_slots=0)
    waiting = Pair.objects.filter(project=planted, is_gold=False).order_by("pk")[:2]
    Pair.objects.filter(pk__in=[p.pk for p in waiting]).update(open_slots=2)
    carol = make_user(Role.ANNOTATOR, "carol")
    now = timezone.now()
    for pair, expires in ((waiting[0], now + timedelta(minutes=3)), (waiting[1], now - timedelta(minutes=1))):
        Reservation.objects.create(
            pair=pair,
            annotator=carol,
            shown_left="a",
            state=ReservationState.ACTIVE,
            created_at=now,
            expires_at=expires,
        )
    rows = {row["measure"]: row["count"] for row in dataset.queue_depth(project=planted, filters=NO_FILTERS)}
    assert rows == {
        "ordinary pairs waiting": 2,
        "judgments still wanted (open slots)": 4,
        "reservations live now": 1,  # the expired one is not live
        "ordinary pairs complete": 2,
        "gold pairs": 2,
    }
    b1 = {
        row["measure"]: row["count"]
        for row in dataset.queue_depth(project=planted, filters=DashboardFilters(batch="b1"))
    }
    assert b1["ordinary pairs waiting"] == 1 and b1["gold pairs"] == 0


def test_composition_by_severity_and_by_model_version(planted):
    inputs = list(
        FaceInput.objects.filter(pairs__project=planted, pairs__is_gold=False).order_by("pk").distinct()
    )
    FaceInput.objects.filter(pk=inputs[0].pk).update(degradation={"downscale": 1.5})
    FaceInput.objects.filter(pk__in=[i.pk for i in inputs[1:3]]).update(degradation={"downscale": 6.0})
    rows = {
        row["severity"]: row for row in dataset.composition_by_severity(project=planted, filters=NO_FILTERS)
    }
    assert rows["mild (downscale ≤ 2×)"] == {"severity": "mild (downscale ≤ 2×)", "pairs": 1, "judgments": 1}
    # pair 1 (tie today, both-bad two days ago) and pair 2 (b): three answers
    assert rows["strong (4–8×)"]["pairs"] == 2 and rows["strong (4–8×)"]["judgments"] == 3
    assert rows["moderate (2–4×)"]["pairs"] == 0
    assert (
        rows[dataset.SEVERITY_UNKNOWN]["pairs"] == 1
    )  # pair 3 has no degradation; its only judgment is a skip
    assert rows[dataset.SEVERITY_UNKNOWN]["judgments"] == 0
    versions = {
        row["version"]: row
        for row in dataset.composition_by_model_version(project=planted, filters=NO_FILTERS)
    }
    # every ordinary pair is classical a against classical b; 4 answers that are not skips, not gold
    assert versions == {
        "classical:a@v1": {"version": "classical:a@v1", "pairs": 4, "judgments": 4},
        "classical:b@v1": {"version": "classical:b@v1", "pairs": 4, "judgments": 4},
    }
