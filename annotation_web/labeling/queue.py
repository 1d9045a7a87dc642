"""Reservations: serving the next pair, the held-reservation rules, giving expired slots back, and the
queue invariant (see `labeling.models`).

`pair_reserve_next` and `reservations_release_expired` are one transaction each. On the SQL path
(`settings.PREF_QUEUE_PATH`, see `labeling.queue_sql`) the common case of reserving is one raw statement;
every other case, and everything on the ORM path, runs here. Both return the same `ReservedPair`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from annotation_web.accounts.models import User
from annotation_web.labeling import queue_sql
from annotation_web.labeling.errors import Conflict
from annotation_web.labeling.models import (
    Judgment,
    Outcome,
    Pair,
    Project,
    Reservation,
    ReservationState,
    Side,
)
from annotation_web.labeling.results import ReservedPair

# Current pair plus one prefetched: the page never waits on the server after a key press.
MAX_HELD_RESERVATIONS = 2

_rng = random.SystemRandom()


def _lock_annotator(annotator: User, *, sql: bool) -> None:
    # Serialises one annotator's own requests (a double click, two tabs); other annotators never wait on it.
    if sql:
        queue_sql.lock_annotator(annotator)
    else:
        User.objects.select_for_update().filter(pk=annotator.pk).first()


def _lock_next_open_pair(
    *, project: Project, annotator: User, exclude_pair_ids: Iterable[int]
) -> Pair | None:
    judged_by_me = Judgment.objects.filter(pair=OuterRef("pk"), annotator=annotator)
    open_for_me = (
        Pair.objects.filter(project=project, is_gold=False, open_slots__gt=0)
        .exclude(pk__in=list(exclude_pair_ids))
        .filter(~Exists(judged_by_me))
        .order_by("priority", "id")
        # Everything the served payload reads, in the same query (of=("self",) keeps the lock on the pair only).
        .select_related("face_input", "candidate_a", "candidate_b")
    )
    pair = open_for_me.select_for_update(skip_locked=True, of=("self",)).first()
    if pair is None:
        # Every open pair may only be locked for a moment by annotators racing for it: wait for them rather
        # than tell this annotator the queue is empty (only at the tail of the queue does this ever wait).
        pair = open_for_me.select_for_update(of=("self",)).first()
    return pair


def _pick_gold_pair(*, project: Project, annotator: User, exclude_pair_ids: Iterable[int]) -> Pair | None:
    judged_by_me = Judgment.objects.filter(pair=OuterRef("pk"), annotator=annotator)
    unseen = (
        Pair.objects.filter(project=project, is_gold=True)
        .exclude(pk__in=list(exclude_pair_ids))
        .filter(~Exists(judged_by_me))
        .values_list("pk", flat=True)
    )
    ids = list(unseen[:50])
    return (
        Pair.objects.select_related("face_input", "candidate_a", "candidate_b").get(pk=_rng.choice(ids))
        if ids
        else None
    )


def _held_reservations(*, annotator: User, project: Project, now: datetime) -> list[Reservation]:
    return list(
        Reservation.objects.filter(
            annotator=annotator, pair__project=project, state=ReservationState.ACTIVE, expires_at__gt=now
        )
        .select_related("pair__face_input", "pair__candidate_a", "pair__candidate_b")
        .order_by("created_at", "id")
    )


def _reserve(*, pair: Pair, annotator: User, ttl_seconds: int, now: datetime) -> ReservedPair:
    if not pair.is_gold:
        Pair.objects.filter(pk=pair.pk).update(open_slots=F("open_slots") - 1)
    reservation = Reservation.objects.create(
        pair=pair,
        annotator=annotator,
        shown_left=_rng.choice([Side.A, Side.B]),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    return ReservedPair.from_reservation(reservation)


@transaction.atomic
def pair_reserve_next(
    *, annotator: User, project: Project, exclude_reservations: Sequence[UUID | str] = ()
) -> ReservedPair | None:
    """The annotator's next pair, reserved for the project's TTL; None when nothing is left for them.

    Asking again returns the same reservation; `exclude_reservations` names the ones the client already
    holds (the current pair), so the page can prefetch one more. One transaction.
    """
    sql = queue_sql.use_sql()
    _lock_annotator(annotator, sql=sql)
    now = timezone.now()
    excluded = {str(r) for r in exclude_reservations}
    held = _held_reservations(annotator=annotator, project=project, now=now)
    for reservation in held:
        if str(reservation.pk) not in excluded:
            return ReservedPair.from_reservation(reservation)
    if len(held) >= MAX_HELD_RESERVATIONS:
        raise Conflict(f"you already hold {len(held)} pairs; submit one before asking for another")

    held_pair_ids = [r.pair_id for r in held]
    pair: Pair | None = None
    if project.gold_rate > 0 and _rng.random() < project.gold_rate:
        pair = _pick_gold_pair(project=project, annotator=annotator, exclude_pair_ids=held_pair_ids)
    if pair is None:
        if sql:
            # The common case in one statement; it skips locked pairs, so "none" falls through to the ORM.
            reserved = queue_sql.reserve_next_open_pair(
                project_id=project.pk,
                annotator_id=annotator.pk,
                exclude_pair_ids=held_pair_ids,
                reservation_id=uuid4(),
                shown_left=_rng.choice([Side.A, Side.B]),
                now=now,
                expires_at=now + timedelta(seconds=project.reservation_ttl_seconds),
            )
            if reserved is not None:
                return reserved
        pair = _lock_next_open_pair(project=project, annotator=annotator, exclude_pair_ids=held_pair_ids)
    if pair is None and _release_expired(project=project, now=now):
        # Slots held only by stale reservations are free again: never show "no tasks" because of them.
        pair = _lock_next_open_pair(project=project, annotator=annotator, exclude_pair_ids=held_pair_ids)
    if pair is None:
        return None
    return _reserve(pair=pair, annotator=annotator, ttl_seconds=project.reservation_ttl_seconds, now=now)


def _release_expired(*, project: Project | None, now: datetime) -> int:
    expired = Reservation.objects.filter(state=ReservationState.ACTIVE, expires_at__lte=now)
    if project is not None:
        expired = expired.filter(pair__project=project)
    rows = list(expired.order_by("pair_id").select_for_update(skip_locked=True).values_list("pk", "pair_id"))
    if not rows:
        return 0
    Reservation.objects.filter(pk__in=[pk for pk, _ in rows]).update(state=ReservationState.EXPIRED)
    pair_ids = sorted({pair_id for _, pair_id in rows})
    # Lock the pairs first, then recompute in a fresh statement: under READ COMMITTED an UPDATE that waited
    # on a pair's lock would count its reservations as of before the wait (missing one just taken).
    list(Pair.objects.select_for_update().filter(pk__in=pair_ids).order_by("pk").values_list("pk"))
    # Recomputed, not `+ count`: after the overlap was lowered below what a pair had judged and held, the
    # expired slot is not a slot to serve again.
    overlap_of_pair = Project.objects.filter(pk=OuterRef("project_id")).values("overlap")[:1]
    Pair.objects.filter(pk__in=pair_ids, is_gold=False).update(
        open_slots=open_slots_recomputed(overlap=Subquery(overlap_of_pair, output_field=IntegerField()))
    )
    return len(rows)


def pair_overlap(*, project_overlap: int, own: int | None) -> int:
    """A pair's overlap: the project's, or the pair's own where that is higher."""
    return max(project_overlap, own or 0)


def open_slots_recomputed(*, overlap: Any) -> Greatest:
    """`max(0, overlap - judged - live)` for the pairs a queryset update touches: the right-hand side of the
    queue invariant, for every move that gives slots back (overlap change, expiry, skip), with `overlap` the
    project's (an expression) and each pair's own `Pair.overlap` where higher. The caller holds the pairs'
    locks; `judgment_count` is a pair's non-skip judgments."""
    live = _per_pair_count(Reservation.objects.filter(state=ReservationState.ACTIVE))
    wanted = Greatest(overlap, Coalesce(F("overlap"), Value(0)))
    return Greatest(wanted - F("judgment_count") - live, Value(0))


@transaction.atomic
def reservations_release_expired(*, project: Project | None = None) -> int:
    """Give the slots of reservations past their TTL back to the queue; returns how many were released.

    One transaction."""
    return _release_expired(project=project, now=timezone.now())


# --- the invariant -----------------------------------------------------------------------------------


def _per_pair_count(rows: QuerySet[Any]) -> Coalesce:
    counted = rows.filter(pair=OuterRef("pk")).order_by().values("pair").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted[:1], output_field=IntegerField()), Value(0))


def _served_since_overlap_change(*, project: Project, pair_id: int) -> bool:
    """Whether a reservation that counts on the pair (live, or judged) was made after the overlap last changed:
    a pair beyond a lowered overlap is legitimate only when everything it holds predates the change."""
    counted = Reservation.objects.filter(pair_id=pair_id).filter(
        Q(state=ReservationState.ACTIVE) | (Q(judgment__isnull=False) & ~Q(judgment__outcome=Outcome.SKIP))
    )
    if project.overlap_changed_at is not None:
        counted = counted.filter(created_at__gt=project.overlap_changed_at)
    return counted.exists()


def queue_invariant_violations(*, project: Project) -> list[str]:
    """Every way the project's queue breaks what `labeling.models` promises; an empty list when it holds.

    Checked: for every non-gold pair `open_slots == max(0, overlap - judgments(non-skip) - live reservations)`
    (live: state active, whatever the clock says, until released), and so no pair is served beyond its
    overlap (a pair may hold more than a lowered overlap only with nothing reserved since); for every pair `judgment_count` == its non-skip judgments; gold pairs hold no slots; a
    reservation is submitted exactly when it has a judgment, of the same pair and annotator, and the
    judgment's `is_gold` is its pair's; no annotator holds more than MAX_HELD_RESERVATIONS unexpired pairs.
    """
    violations: list[str] = []
    pairs = (
        Pair.objects.filter(project=project)
        .annotate(
            done=_per_pair_count(Judgment.objects.exclude(outcome=Outcome.SKIP)),
            live=_per_pair_count(Reservation.objects.filter(state=ReservationState.ACTIVE)),
        )
        .order_by("pk")
        .values_list("pk", "is_gold", "open_slots", "judgment_count", "done", "live", "overlap")
    )
    for pk, is_gold, open_slots, judgment_count, done, live, own in pairs:
        overlap = pair_overlap(project_overlap=project.overlap, own=own)
        if is_gold:
            if open_slots != 0:
                violations.append(f"gold pair {pk}: open_slots={open_slots}, expected 0")
        else:
            if open_slots != max(0, overlap - done - live):
                violations.append(
                    f"pair {pk}: open_slots={open_slots} != max(0, overlap {overlap} - judgments {done}"
                    f" - live reservations {live}) = {max(0, overlap - done - live)}"
                )
            if done + live > overlap and _served_since_overlap_change(project=project, pair_id=pk):
                violations.append(f"pair {pk}: {done} judged + {live} held exceed the overlap {overlap}")
        if judgment_count != done:
            violations.append(f"pair {pk}: judgment_count={judgment_count} != {done} non-skip judgments")

    reservations = Reservation.objects.filter(pair__project=project)
    for reservation_id in reservations.filter(
        state=ReservationState.SUBMITTED, judgment__isnull=True
    ).values_list("pk", flat=True):
        violations.append(f"reservation {reservation_id}: submitted without a judgment")
    for reservation_id, state in (
        reservations.exclude(state=ReservationState.SUBMITTED)
        .filter(judgment__isnull=False)
        .values_list("pk", "state")
    ):
        violations.append(f"reservation {reservation_id}: {state} but has a judgment")
    mismatched = Judgment.objects.filter(pair__project=project).filter(
        ~Q(reservation__pair=F("pair"))
        | ~Q(reservation__annotator=F("annotator"))
        | ~Q(is_gold=F("pair__is_gold"))
    )
    for pk in mismatched.values_list("pk", flat=True):
        violations.append(f"judgment {pk}: pair, annotator or is_gold differ from its reservation's pair")
    over_held = (
        reservations.filter(state=ReservationState.ACTIVE, expires_at__gt=timezone.now())
        .values("annotator_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=MAX_HELD_RESERVATIONS)
        .values_list("annotator_id", "n")
    )
    for annotator_id, held in over_held:
        violations.append(f"annotator {annotator_id}: holds {held} pairs, more than {MAX_HELD_RESERVATIONS}")
    return violations
