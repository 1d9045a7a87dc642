"""Planted judgments for the dashboards' tests: each with the outcome, screen side, duration and day a test
needs, written straight to the tables (a reservation and its judgment), so every figure has a known answer."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from annotation_web.labeling.models import Judgment, Outcome, Pair, Reservation, ReservationState

_keys = itertools.count()


def at_noon(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(12, 0)))


def plant(
    *,
    pair: Pair,
    annotator,
    outcome: str,
    shown_left: str = "a",
    duration_ms: int = 3000,
    day: date | None = None,
) -> Judgment:
    """One judgment of `pair` by `annotator` made at noon (UTC) of `day` (today by default); a gold pair's
    judgment is marked right or wrong against its known outcome, as `judgment_submit` marks it."""
    when = at_noon(day or timezone.localdate())
    reservation = Reservation.objects.create(
        pair=pair,
        annotator=annotator,
        shown_left=shown_left,
        state=ReservationState.SUBMITTED,
        created_at=when - timedelta(milliseconds=duration_ms),
        expires_at=when + timedelta(minutes=5),
    )
    judgment = Judgment.objects.create(
        pair=pair,
        annotator=annotator,
        reservation=reservation,
        outcome=outcome,
        shown_left=shown_left,
        idempotency_key=f"k{next(_keys)}",
        server_duration_ms=duration_ms,
        is_gold=pair.is_gold,
        gold_correct=(outcome == pair.gold_outcome) if pair.is_gold and outcome != Outcome.SKIP else None,
    )
    Judgment.objects.filter(pk=judgment.pk).update(created_at=when)
    judgment.created_at = when
    return judgment


@pytest.fixture
def ordinary_pairs():
    def pairs_of(project) -> list[Pair]:
        return list(Pair.objects.filter(project=project, is_gold=False).order_by("pk"))

    return pairs_of


@pytest.fixture
def gold_pairs_of():
    def pairs_of(project) -> list[Pair]:
        return list(Pair.objects.filter(project=project, is_gold=True).order_by("pk"))

    return pairs_of
