"""What the queue hands back: small frozen results, the same whichever path (raw SQL or ORM) produced them.

Callers read these, never half-built model instances; a field the fast path cannot fill does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from annotation_web.labeling.models import Judgment, Reservation, Side


@dataclass(frozen=True)
class ReservedPair:
    """A reservation of one pair for one annotator, with everything the judging page shows."""

    reservation_id: UUID
    pair_id: int
    project_id: int
    input_id: int
    lq_key: str
    instruction: str
    candidate_a_id: int
    candidate_b_id: int
    a_key: str
    b_key: str
    shown_left: str  # "a" or "b": which candidate is on the left of the screen
    is_gold: bool
    created_at: datetime
    expires_at: datetime

    @property
    def pk(self) -> UUID:
        """The reservation's primary key (as on the `Reservation` row)."""
        return self.reservation_id

    @property
    def left_key(self) -> str:
        return self.a_key if self.shown_left == Side.A else self.b_key

    @property
    def right_key(self) -> str:
        return self.b_key if self.shown_left == Side.A else self.a_key

    @classmethod
    def from_reservation(cls, reservation: Reservation) -> ReservedPair:
        """From a saved reservation (reads its pair, input and candidates: select them related)."""
        pair = reservation.pair
        return cls(
            reservation_id=reservation.pk,
            pair_id=pair.pk,
            project_id=pair.project_id,
            input_id=pair.face_input_id,
            lq_key=pair.face_input.lq_key,
            instruction=pair.face_input.instruction,
            candidate_a_id=pair.candidate_a_id,
            candidate_b_id=pair.candidate_b_id,
            a_key=pair.candidate_a.image_key,
            b_key=pair.candidate_b.image_key,
            shown_left=str(reservation.shown_left),
            is_gold=pair.is_gold,
            created_at=reservation.created_at,
            expires_at=reservation.expires_at,
        )


@dataclass(frozen=True)
class SubmitResult:
    """A recorded judgment; `created` is False when a repeat with the same key returned the first one."""

    judgment_id: int
    reservation_id: UUID
    pair_id: int
    project_id: int
    outcome: str
    shown_left: str
    is_gold: bool
    gold_correct: bool | None
    created: bool

    @classmethod
    def from_judgment(cls, judgment: Judgment, *, project_id: int, created: bool) -> SubmitResult:
        return cls(
            judgment_id=judgment.pk,
            reservation_id=judgment.reservation_id,
            pair_id=judgment.pair_id,
            project_id=project_id,
            outcome=str(judgment.outcome),
            shown_left=str(judgment.shown_left),
            is_gold=judgment.is_gold,
            gold_correct=judgment.gold_correct,
            created=created,
        )


@dataclass(frozen=True)
class RenewedReservation:
    """A reservation given a new deadline (`labeling.judgments.reservation_renew`)."""

    reservation_id: UUID
    expires_at: datetime
