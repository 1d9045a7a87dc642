"""Judgments: recording an annotator's answer for a reservation, idempotently.

`judgment_submit` is deliberately not one transaction; its docstring says why. A judgment that arrives after
its reservation expired is kept when the pair still has room for it (the slot is taken again in the same
transaction), and refused with a clear 410 otherwise; `reservation_renew` keeps the pair on screen reserved.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.utils import timezone

from annotation_web.accounts.models import User
from annotation_web.labeling import access, queue_sql
from annotation_web.labeling.errors import Conflict, Expired, Forbidden, LabelingError, NotFound
from annotation_web.labeling.models import Judgment, Outcome, Pair, Reservation, ReservationState, Side
from annotation_web.labeling.queue import (
    MAX_HELD_RESERVATIONS,
    open_slots_recomputed,
    reservations_release_expired,
)
from annotation_web.labeling.results import RenewedReservation, SubmitResult

SCREEN_CHOICES = ("left", "right", "tie", "both_bad", "skip")

EXPIRED_AND_FULL = (
    "this pair's reservation expired and others have judged it since, so your answer was not recorded;"
    " the next pair is yours"
)


def _outcome_from_screen(choice: str, shown_left: str) -> str:
    """The pair's outcome for a screen choice (already validated by the caller)."""
    if choice in ("left", "right"):
        shown_right = Side.B if shown_left == Side.A else Side.A
        return shown_left if choice == "left" else shown_right
    return choice


def _judgment_submit_fast(
    *,
    annotator: User,
    reservation_id: UUID | str,
    choice: str,
    idempotency_key: str,
    client_duration_ms: int | None,
) -> SubmitResult | None:
    """The one-statement submit (SQL path, the common case); None hands the request to the ORM path."""
    if not queue_sql.use_sql() or choice not in SCREEN_CHOICES or not 0 < len(idempotency_key) <= 100:
        return None
    try:
        reservation_id = UUID(str(reservation_id))
    except ValueError:
        return None
    try:
        with transaction.atomic():
            return queue_sql.submit(
                annotator_id=annotator.pk,
                reservation_id=reservation_id,
                choice=choice,
                idempotency_key=idempotency_key,
                client_duration_ms=client_duration_ms,
                now=timezone.now(),
                members_only=not annotator.is_superuser,
            )
    except IntegrityError:
        return None  # a key or a pair judged before: the ORM path says which, or returns the first result


def judgment_submit(
    *,
    annotator: User,
    reservation_id: UUID | str,
    choice: str,
    idempotency_key: str,
    client_duration_ms: int | None = None,
) -> SubmitResult:
    """Record the annotator's answer for a reservation. Repeats with the same key return the first result.

    Not one transaction, on purpose: up to three, each committed on its own. (1) On the SQL path, the
    one-statement submit; a used key or a judged pair aborts its transaction, so (2) the ORM path runs in a
    fresh one and gives each refusal its precise error (or returns the first result of a repeat). (3) On an
    expired reservation the slot is given back in a transaction of its own before `Expired` is raised: the
    refusal propagates as an exception, which would roll the release back if it shared a transaction.
    """
    fast = _judgment_submit_fast(
        annotator=annotator,
        reservation_id=reservation_id,
        choice=choice,
        idempotency_key=idempotency_key,
        client_duration_ms=client_duration_ms,
    )
    if fast is not None:
        return fast
    # The fast path checked the membership in its statement; every other answer starts with it here.
    if access.reservation_outside_membership(user=annotator, reservation_id=reservation_id):
        raise NotFound("no such reservation")
    result = _judgment_submit(
        annotator=annotator,
        reservation_id=reservation_id,
        choice=choice,
        idempotency_key=idempotency_key,
        client_duration_ms=client_duration_ms,
    )
    if result is None:
        # Committed on its own: the refusal must not roll back the slot going back to the queue.
        reservations_release_expired()
        raise Expired(EXPIRED_AND_FULL)
    return result


def _take_slot_again(*, reservation: Reservation, now: datetime) -> bool:
    """Make an expired reservation live again if its pair still has room; False when it has none.

    The caller holds the reservation's lock. An active reservation past its time still holds its slot (nobody
    released it yet): it only needs a new deadline. A released one must take a slot again, under the pair's
    lock, exactly as a fresh reservation would."""
    pair = Pair.objects.select_for_update(of=("self",)).select_related("project").get(pk=reservation.pair_id)
    if reservation.state == ReservationState.EXPIRED:
        if not pair.is_gold:
            if pair.open_slots <= 0:
                return False
            Pair.objects.filter(pk=pair.pk).update(open_slots=F("open_slots") - 1)
        reservation.state = ReservationState.ACTIVE
    reservation.expires_at = now + timedelta(seconds=pair.project.reservation_ttl_seconds)
    reservation.save(update_fields=["state", "expires_at"])
    return True


@transaction.atomic
def reservation_renew(
    *, annotator: User, reservation_id: UUID | str, shown: bool = False
) -> RenewedReservation:
    """Push the reservation's deadline one TTL from now while its annotator is looking at it.

    `shown` says the page just put it on screen: a prefetched pair's clock (its server-side duration) starts
    then, not when it was prefetched. An expired reservation is taken again when its pair has room; otherwise
    `Expired` (410). One transaction."""
    reservation = (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("pair__project")
        .filter(pk=reservation_id)
        .first()
    )
    if reservation is None:
        raise NotFound("unknown reservation")
    if reservation.annotator_id != annotator.pk:
        raise Forbidden("this reservation belongs to another annotator")
    if reservation.state == ReservationState.SUBMITTED:
        raise Conflict("this pair was already judged under this reservation")
    now = timezone.now()
    if reservation.state == ReservationState.EXPIRED:
        # Taken again, it is held again: never more than the queue lets one annotator hold (their own
        # requests serialised on their row, as in `pair_reserve_next`).
        User.objects.select_for_update().filter(pk=annotator.pk).first()
        held = Reservation.objects.filter(
            annotator=annotator,
            pair__project_id=reservation.pair.project_id,
            state=ReservationState.ACTIVE,
            expires_at__gt=now,
        ).count()
        if held >= MAX_HELD_RESERVATIONS:
            raise Conflict(f"you already hold {held} pairs; submit one before taking this one back")
    if not _take_slot_again(reservation=reservation, now=now):
        raise Expired(EXPIRED_AND_FULL)
    if shown and reservation.shown_at is None:
        reservation.shown_at = now
        reservation.save(update_fields=["shown_at"])
    return RenewedReservation(reservation_id=reservation.pk, expires_at=reservation.expires_at)


@transaction.atomic
def _judgment_submit(
    *,
    annotator: User,
    reservation_id: UUID | str,
    choice: str,
    idempotency_key: str,
    client_duration_ms: int | None,
) -> SubmitResult | None:
    if not idempotency_key or len(idempotency_key) > 100:
        raise LabelingError("idempotency_key must be 1 to 100 characters")
    if choice not in SCREEN_CHOICES:
        raise LabelingError(f"choice must be one of {', '.join(SCREEN_CHOICES)}, not {choice!r}")
    previous = Judgment.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
    if previous is not None:
        if str(previous.reservation_id) != str(reservation_id):
            raise Conflict("this idempotency_key was already used for another reservation")
        return SubmitResult.from_judgment(previous, project_id=previous.pair.project_id, created=False)

    reservation = Reservation.objects.select_for_update().filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound("unknown reservation")
    if reservation.annotator_id != annotator.pk:
        raise Forbidden("this reservation belongs to another annotator")
    if reservation.state == ReservationState.SUBMITTED:
        existing = Judgment.objects.select_related("pair").get(reservation=reservation)
        if existing.idempotency_key == idempotency_key:
            return SubmitResult.from_judgment(existing, project_id=existing.pair.project_id, created=False)
        raise Conflict("this pair was already judged under this reservation")
    now = timezone.now()
    if reservation.state == ReservationState.EXPIRED or reservation.expires_at <= now:
        # Late, but not lost: the answer counts when the pair still has room for it.
        if not _take_slot_again(reservation=reservation, now=now):
            return None

    pair = Pair.objects.select_for_update(of=("self",)).select_related("project").get(pk=reservation.pair_id)
    outcome = _outcome_from_screen(choice, reservation.shown_left)
    started = reservation.shown_at or reservation.created_at
    server_ms = max(0, int((now - started).total_seconds() * 1000))
    try:
        with transaction.atomic():
            judgment = Judgment.objects.create(
                pair=pair,
                annotator=annotator,
                reservation=reservation,
                outcome=outcome,
                shown_left=reservation.shown_left,
                idempotency_key=idempotency_key,
                server_duration_ms=server_ms,
                client_duration_ms=client_duration_ms,
                is_gold=pair.is_gold,
                gold_correct=(outcome == pair.gold_outcome)
                if pair.is_gold and outcome != Outcome.SKIP
                else None,
            )
    except IntegrityError as exc:
        raise Conflict("you have already judged this pair") from exc
    reservation.state = ReservationState.SUBMITTED
    reservation.save(update_fields=["state"])
    if outcome == Outcome.SKIP:
        if not pair.is_gold:
            # Recounted, not `+ 1`: a pair whose overlap was lowered below what it holds gets no slot back.
            Pair.objects.filter(pk=pair.pk).update(
                open_slots=open_slots_recomputed(overlap=Value(pair.project.overlap))
            )
    else:
        pair.judgment_count = F("judgment_count") + 1
        pair.save(update_fields=["judgment_count"])
    return SubmitResult.from_judgment(judgment, project_id=pair.project_id, created=True)
