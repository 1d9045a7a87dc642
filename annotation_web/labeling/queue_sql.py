"""The queue's hot path in raw SQL, for PostgreSQL: one statement to reserve, one to submit.

The ORM costs ~0.3 ms of CPU per statement, raw SQL ~0.03 ms; these statements take the same rows and locks
as the ORM path of `labeling.queue` / `labeling.judgments`, which handles every case they do not, and return
the same results (`labeling.results`). Table names come from the models' `_meta.db_table`.

Which path runs is `settings.PREF_QUEUE_PATH`, read at each call: "auto" (SQL on PostgreSQL, the ORM
elsewhere), "sql" (an error on any other database) or "orm" (no raw SQL at all, also on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Model

from annotation_web.accounts.models import ProjectMembership, User
from annotation_web.labeling.models import Candidate, FaceInput, Judgment, Pair, Reservation
from annotation_web.labeling.results import ReservedPair, SubmitResult

QUEUE_PATHS = ("auto", "sql", "orm")


def use_sql() -> bool:
    """Whether the queue runs these statements now (`settings.PREF_QUEUE_PATH` on this connection)."""
    path = getattr(settings, "PREF_QUEUE_PATH", "auto")
    if path not in QUEUE_PATHS:
        raise ImproperlyConfigured(f"PREF_QUEUE_PATH must be one of {', '.join(QUEUE_PATHS)}, not {path!r}")
    if path == "sql" and connection.vendor != "postgresql":
        raise ImproperlyConfigured(
            f"PREF_QUEUE_PATH=sql needs PostgreSQL; this database is {connection.vendor}"
        )
    return path == "sql" or (path == "auto" and connection.vendor == "postgresql")


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def lock_annotator(annotator: User) -> None:
    """Row lock of the annotator (the ORM equivalent is `select_for_update` on the user)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_table(User)} WHERE id = %s FOR UPDATE", [annotator.pk])


# Lock the first open pair nobody else holds, take a slot, insert the reservation, and return what the
# payload needs. Same rows and locks as the ORM's lock of the next open pair + reserve.
_RESERVE_NEXT_OPEN_PAIR_SQL = """
WITH chosen AS (
    SELECT p.id FROM {pair} p
    WHERE p.project_id = %(project)s AND NOT p.is_gold AND p.open_slots > 0
      AND NOT (p.id = ANY(%(held)s::bigint[]))
      AND NOT EXISTS (
          SELECT 1 FROM {judgment} j WHERE j.pair_id = p.id AND j.annotator_id = %(annotator)s
      )
    ORDER BY p.priority, p.id
    LIMIT 1
    FOR UPDATE OF p SKIP LOCKED
), taken AS (
    UPDATE {pair} p SET open_slots = p.open_slots - 1 FROM chosen WHERE p.id = chosen.id
    RETURNING p.id, p.face_input_id, p.candidate_a_id, p.candidate_b_id
), reserved AS (
    INSERT INTO {reservation} (id, pair_id, annotator_id, shown_left, state, created_at, expires_at)
    SELECT %(reservation)s, taken.id, %(annotator)s, %(shown_left)s, 'active', %(now)s, %(expires)s FROM taken
    RETURNING id
)
SELECT taken.id, f.id, f.lq_key, f.instruction, a.id, a.image_key, b.id, b.image_key
FROM taken
JOIN {face_input} f ON f.id = taken.face_input_id
JOIN {candidate} a ON a.id = taken.candidate_a_id
JOIN {candidate} b ON b.id = taken.candidate_b_id
"""


def reserve_next_open_pair(
    *,
    project_id: int,
    annotator_id: int,
    exclude_pair_ids: Sequence[int],
    reservation_id: UUID,
    shown_left: str,
    now: datetime,
    expires_at: datetime,
) -> ReservedPair | None:
    """Reserve the first open non-gold pair nobody holds a lock on; None when there is none (the ORM path
    then waits for locked ones, or releases expired slots)."""
    statement = _RESERVE_NEXT_OPEN_PAIR_SQL.format(
        pair=_table(Pair),
        judgment=_table(Judgment),
        reservation=_table(Reservation),
        face_input=_table(FaceInput),
        candidate=_table(Candidate),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            statement,
            {
                "project": project_id,
                "held": list(exclude_pair_ids),
                "annotator": annotator_id,
                "reservation": reservation_id,
                "shown_left": shown_left,
                "now": now,
                "expires": expires_at,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    pair_id, input_id, lq_key, instruction, a_id, a_key, b_id, b_key = row
    return ReservedPair(
        reservation_id=reservation_id,
        pair_id=pair_id,
        project_id=project_id,
        input_id=input_id,
        lq_key=lq_key,
        instruction=instruction,
        candidate_a_id=a_id,
        candidate_b_id=b_id,
        a_key=a_key,
        b_key=b_key,
        shown_left=str(shown_left),
        is_gold=False,
        created_at=now,
        expires_at=expires_at,
    )


# Submit in one statement for the common case (an active, unexpired reservation of this annotator, a fresh
# key): mark the reservation submitted, insert the judgment with the outcome mapped from the screen side,
# and count it on the pair (or give the slot back on a skip). A skip of a pair with no open slot left goes to
# the ORM path: its overlap may have been lowered below what it holds, and only a count of its live
# reservations under its lock says whether the slot comes back (`+ 1` is exact only while slots are open).
_SUBMIT_SQL = """
WITH r AS (
    UPDATE {reservation} SET state = 'submitted'
    WHERE id = %(reservation)s AND annotator_id = %(annotator)s AND state = 'active' AND expires_at > %(now)s
      AND (NOT %(members_only)s OR EXISTS (
          SELECT 1 FROM {pair} pm JOIN {membership} m ON m.project_id = pm.project_id
          WHERE pm.id = {reservation}.pair_id AND m.user_id = %(annotator)s
      ))
      AND (%(choice)s <> 'skip' OR EXISTS (
          SELECT 1 FROM {pair} p0 WHERE p0.id = {reservation}.pair_id AND (p0.is_gold OR p0.open_slots > 0)
      ))
    RETURNING id, pair_id, shown_left, COALESCE(shown_at, created_at) AS started
), scored AS (
    SELECT r.id AS reservation_id, r.pair_id, r.shown_left, r.started, p.is_gold, p.gold_outcome,
           CASE %(choice)s
               WHEN 'left' THEN r.shown_left
               WHEN 'right' THEN CASE r.shown_left WHEN 'a' THEN 'b' ELSE 'a' END
               ELSE %(choice)s
           END AS outcome
    FROM r JOIN {pair} p ON p.id = r.pair_id
), j AS (
    INSERT INTO {judgment} (
        pair_id, annotator_id, reservation_id, outcome, shown_left, idempotency_key, server_duration_ms,
        client_duration_ms, is_gold, gold_correct, created_at
    )
    SELECT pair_id, %(annotator)s, reservation_id, outcome, shown_left, %(key)s,
           GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(now)s - started)) * 1000))::int,
           %(client_ms)s, is_gold,
           CASE WHEN is_gold AND outcome <> 'skip' THEN outcome = gold_outcome END,
           %(now)s
    FROM scored
    RETURNING id, pair_id, reservation_id, outcome, shown_left, is_gold, gold_correct
)
UPDATE {pair} p SET
    judgment_count = p.judgment_count + CASE WHEN j.outcome <> 'skip' THEN 1 ELSE 0 END,
    open_slots = p.open_slots + CASE WHEN j.outcome = 'skip' AND NOT j.is_gold THEN 1 ELSE 0 END
FROM j WHERE p.id = j.pair_id
RETURNING j.id, j.reservation_id, p.id, p.project_id, j.outcome, j.shown_left, j.is_gold, j.gold_correct
"""


def submit(
    *,
    annotator_id: int,
    reservation_id: UUID,
    choice: str,
    idempotency_key: str,
    client_duration_ms: int | None,
    now: datetime,
    members_only: bool = True,
) -> SubmitResult | None:
    """Record the judgment in one statement; None when the reservation is not an active, unexpired one of
    this annotator in a project they (still) belong to, with `members_only` (or a skip of a pair with no open
    slot): the membership is checked in the statement, costing the hot path no query of its own. Raises IntegrityError on a used key or a pair this annotator judged before (the
    enclosing transaction is then broken: run it in a transaction of its own)."""
    statement = _SUBMIT_SQL.format(
        reservation=_table(Reservation),
        pair=_table(Pair),
        judgment=_table(Judgment),
        membership=_table(ProjectMembership),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            statement,
            {
                "reservation": reservation_id,
                "annotator": annotator_id,
                "now": now,
                "choice": choice,
                "key": idempotency_key,
                "client_ms": client_duration_ms,
                "members_only": members_only,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    judgment_id, reservation_pk, pair_id, project_id, outcome, shown_left, is_gold, gold_correct = row
    return SubmitResult(
        judgment_id=judgment_id,
        reservation_id=reservation_pk,
        pair_id=pair_id,
        project_id=project_id,
        outcome=outcome,
        shown_left=shown_left,
        is_gold=is_gold,
        gold_correct=gold_correct,
        created=True,
    )
