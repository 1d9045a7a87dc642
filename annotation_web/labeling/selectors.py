"""Reads of the annotation domain."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import IO
from uuid import UUID

from django.core import signing
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone

from annotation_web.accounts.models import User
from annotation_web.labeling.agreement import agreement_with_majority, krippendorff_alpha_nominal
from annotation_web.labeling.errors import NotFound
from annotation_web.labeling.models import (
    PREFERENCE_OUTCOMES,
    Judgment,
    Outcome,
    Pair,
    Project,
    Reservation,
    ReservationState,
    Side,
)

EXPORT_SCHEMA_VERSION = 1


def project_get(*, slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise NotFound(f"no project {slug!r}")
    return project


def project_get_by_id(*, pk: int) -> Project:
    project = Project.objects.filter(pk=pk).first()
    if project is None:
        raise NotFound(f"no project with id {pk}")
    return project


def project_list() -> QuerySet[Project]:
    return Project.objects.order_by("name")


# --- what annotators see of images: per-reservation handles ---------------------------------------------

# The slots of a served pair. A handle names a reservation only; the slot is the URL's last part.
IMAGE_SLOTS = ("left", "right", "lq")
IMAGE_HANDLE_SALT = "reservation-image"
# How long a reservation's images still load after it stopped being live (released or judged): the page may
# still be drawing them while the answer is saved.
IMAGE_GRACE = timedelta(minutes=2)


def reservation_image_url(*, reservation_id: UUID, slot: str) -> str:
    """The URL an annotator loads one image of their reservation from: `/files/r/<handle>/<slot>/`.

    The handle is the signed reservation id and nothing else, so every URL of every pair (gold or not, any
    model, any storage) has the same shape and length, and decoding it reveals no key, model, seed or input."""
    handle = signing.dumps(UUID(str(reservation_id)).hex, salt=IMAGE_HANDLE_SALT)
    return reverse("reservation-image", kwargs={"handle": handle, "slot": slot})


def reservation_image_key(*, annotator: User, handle: str, slot: str) -> str:
    """The storage key behind an image URL of `reservation_image_url`, for its own annotator only, while the
    reservation is live or just ended. Anything else is `NotFound` (never a hint of what exists)."""
    try:
        reservation_id = UUID(hex=signing.loads(handle, salt=IMAGE_HANDLE_SALT))
    except (signing.BadSignature, TypeError, ValueError) as exc:
        raise NotFound("no such image, or the link expired") from exc
    reservation = (
        Reservation.objects.select_related("pair__face_input", "pair__candidate_a", "pair__candidate_b")
        .filter(pk=reservation_id, annotator=annotator)
        # A member removed from the project loses its images at once, even of a reservation still live.
        .filter(Q(pair__project__memberships__user=annotator) | Q(annotator__is_superuser=True))
        .first()
    )
    if slot not in IMAGE_SLOTS or reservation is None or not _images_still_shown(reservation):
        raise NotFound("no such image, or the link expired")
    pair = reservation.pair
    if slot == "lq":
        return pair.face_input.lq_key
    a_on_left = reservation.shown_left == Side.A
    return (pair.candidate_a if (slot == "left") == a_on_left else pair.candidate_b).image_key


def _images_still_shown(reservation: Reservation) -> bool:
    now = timezone.now()
    if reservation.state == ReservationState.ACTIVE:
        return True  # until released it holds its slot, and a late answer may still count
    if reservation.state == ReservationState.SUBMITTED:
        judged_at = (
            Judgment.objects.filter(reservation=reservation).values_list("created_at", flat=True).first()
        )
        return judged_at is not None and judged_at > now - IMAGE_GRACE
    return reservation.expires_at > now - IMAGE_GRACE


def annotator_stats(*, annotator: User, project: Project) -> dict:
    start_of_day = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    mine = Judgment.objects.filter(annotator=annotator, pair__project=project)
    judged_by_me = Judgment.objects.filter(pair=OuterRef("pk"), annotator=annotator)
    held_by_me = Reservation.objects.filter(
        pair=OuterRef("pk"), annotator=annotator, state=ReservationState.ACTIVE
    )
    # Every pair leaves the count when (and only when) this annotator judges it, gold or not: counting an
    # ordinary pair out when it is reserved (its last slot taken) but a gold one only when judged would let
    # the number after a submit tell which kind the last pair was. Unseen gold counts only while something
    # else is left, as gold is never served alone.
    not_judged = Pair.objects.filter(project=project).filter(~Exists(judged_by_me))
    live_for_me = not_judged.filter(Q(is_gold=False, open_slots__gt=0) | Exists(held_by_me)).count()
    unseen_gold = not_judged.filter(is_gold=True).filter(~Exists(held_by_me)).count() if live_for_me else 0
    left = live_for_me + unseen_gold
    return {
        "judged_today": mine.filter(created_at__gte=start_of_day).exclude(outcome=Outcome.SKIP).count(),
        "judged_total": mine.exclude(outcome=Outcome.SKIP).count(),
        "skipped_total": mine.filter(outcome=Outcome.SKIP).count(),
        "left_in_queue": left,
    }


def _preference_rows(project: Project, batch: str | None = None) -> QuerySet[Judgment]:
    rows = Judgment.objects.filter(pair__project=project, outcome__in=PREFERENCE_OUTCOMES, is_gold=False)
    if batch is not None:
        rows = rows.filter(pair__batch=batch)
    return rows


def project_agreement(*, project: Project) -> dict:
    """Krippendorff's alpha (whole project and per batch) and each annotator's agreement with the majority.

    Both read only the pairs with two or more preference judgments: a pair judged once carries no information on
    agreement (alpha leaves it out, and nobody else answered it), so only those rows leave the database."""
    rows = _preference_rows(project)
    shared = rows.values("pair_id").annotate(n=Count("id")).filter(n__gte=2).values("pair_id")
    quadruples = list(
        rows.filter(pair_id__in=shared).values_list("pair_id", "annotator_id", "outcome", "pair__batch")
    )
    triples = [(pair_id, annotator_id, outcome) for pair_id, annotator_id, outcome, _ in quadruples]
    units: dict[int, list[str]] = {}
    batch_of_pair: dict[int, str] = {}
    for pair_id, _, outcome, batch in quadruples:
        units.setdefault(pair_id, []).append(outcome)
        batch_of_pair[pair_id] = batch
    # every batch with a preference judgment is listed, those without a pair judged twice too
    batches: dict[str, dict[int, list[str]]] = {
        batch: {} for batch in rows.values_list("pair__batch", flat=True).distinct().order_by()
    }
    for pair_id, values in units.items():
        batches.setdefault(batch_of_pair[pair_id], {})[pair_id] = values
    per_annotator = agreement_with_majority(triples)
    usernames = dict(User.objects.filter(pk__in=list(per_annotator)).values_list("pk", "username"))
    return {
        "alpha": krippendorff_alpha_nominal(units),
        "pairs_with_two_or_more": len(units),
        "judgments": rows.count(),
        "per_batch": [
            {
                "batch": batch,
                "alpha": krippendorff_alpha_nominal(batch_units),
                "pairs_with_two_or_more": sum(1 for v in batch_units.values() if len(v) >= 2),
            }
            for batch, batch_units in sorted(batches.items())
        ],
        "per_annotator_majority_agreement": [
            {"annotator": usernames[annotator_id], **stats}
            for annotator_id, stats in sorted(per_annotator.items())
        ],
    }


def annotators_overview(*, project: Project) -> list[dict]:
    rows = (
        Judgment.objects.filter(pair__project=project)
        .values("annotator_id", "annotator__username")
        .annotate(
            judgments=Count("id", filter=~Q(outcome=Outcome.SKIP)),
            skips=Count("id", filter=Q(outcome=Outcome.SKIP)),
            gold_answered=Count("id", filter=Q(is_gold=True, gold_correct__isnull=False)),
            gold_correct=Count("id", filter=Q(is_gold=True, gold_correct=True)),
        )
        .order_by("annotator__username")
    )
    return [
        {
            "annotator": row["annotator__username"],
            "judgments": row["judgments"],
            "skips": row["skips"],
            "gold_answered": row["gold_answered"],
            "gold_accuracy": row["gold_correct"] / row["gold_answered"] if row["gold_answered"] else None,
        }
        for row in rows
    ]


def preference_export_rows(*, project: Project, include_gold: bool = True) -> Iterator[dict]:
    """Rows of the preference export contract (docs/architecture.md), read in chunks, never all in memory."""
    rows = Judgment.objects.filter(pair__project=project, outcome__in=PREFERENCE_OUTCOMES)
    if not include_gold:
        rows = rows.filter(is_gold=False)
    rows = rows.select_related(
        "pair__face_input",
        "pair__candidate_a__model_version",
        "pair__candidate_b__model_version",
        "annotator",
    ).order_by("id")
    for judgment in rows.iterator(chunk_size=2000):
        pair = judgment.pair
        a, b = pair.candidate_a, pair.candidate_b
        yield {
            "schema_version": EXPORT_SCHEMA_VERSION,
            # Ids are strings in the contract: readers must not depend on the database's key type.
            "judgment_id": str(judgment.pk),
            "pair_id": str(pair.pk),
            "input_id": str(pair.face_input_id),
            "lq_key": pair.face_input.lq_key,
            "hq_key": pair.face_input.hq_key or None,
            "a_key": a.image_key,
            "b_key": b.image_key,
            "outcome": judgment.outcome,
            "annotator_id": str(judgment.annotator_id),
            "is_gold": judgment.is_gold,
            "shown_left": judgment.shown_left,
            "duration_ms": judgment.client_duration_ms
            if judgment.client_duration_ms is not None
            else judgment.server_duration_ms,
            "server_duration_ms": judgment.server_duration_ms,
            "created_at": judgment.created_at.isoformat(),
            "a_model": str(a.model_version),
            "b_model": str(b.model_version),
            "a_seed": a.seed,
            "b_seed": b.seed,
            "batch": pair.batch,
        }


def preference_export_count(*, project: Project, include_gold: bool = True) -> int:
    """How many rows `preference_export_rows` gives now: the judgments a reward job queued now would snapshot
    (gold included, skips not)."""
    rows = Judgment.objects.filter(pair__project=project, outcome__in=PREFERENCE_OUTCOMES)
    return (rows if include_gold else rows.filter(is_gold=False)).count()


# The Parquet file of the preference export: the JSONL rows' columns, in their order, with these types (ids and
# `created_at` as the same text as in JSONL, so a row reads back equal whichever file it came from); the types are
# pyarrow's type factories by name.
EXPORT_PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int64"),
    ("judgment_id", "string"),
    ("pair_id", "string"),
    ("input_id", "string"),
    ("lq_key", "string"),
    ("hq_key", "string"),
    ("a_key", "string"),
    ("b_key", "string"),
    ("outcome", "string"),
    ("annotator_id", "string"),
    ("is_gold", "bool_"),
    ("shown_left", "string"),
    ("duration_ms", "int64"),
    ("server_duration_ms", "int64"),
    ("created_at", "string"),
    ("a_model", "string"),
    ("b_model", "string"),
    ("a_seed", "int64"),
    ("b_seed", "int64"),
    ("batch", "string"),
)
# Rows per Parquet row group: one group is all the export holds in memory at a time.
EXPORT_PARQUET_ROW_GROUP = 10_000


def preference_export_parquet(*, project: Project, include_gold: bool = True) -> IO[bytes]:
    """The preference export as one Parquet file (an anonymous temporary file, read from its start; closing it
    deletes it), written a row group at a time from `preference_export_rows`. The schema version is in the
    file's key-value metadata (`pref_restore_export_schema_version`) as well as in its column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [pa.field(name, getattr(pa, kind)()) for name, kind in EXPORT_PARQUET_COLUMNS],
        metadata={"pref_restore_export_schema_version": str(EXPORT_SCHEMA_VERSION)},
    )
    handle = tempfile.TemporaryFile()
    try:
        with pq.ParquetWriter(handle, schema) as writer:
            batch: list[dict] = []
            for row in preference_export_rows(project=project, include_gold=include_gold):
                batch.append(row)
                if len(batch) >= EXPORT_PARQUET_ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def pairs_for_engineer(*, project: Project) -> QuerySet[Pair]:
    return (
        Pair.objects.filter(project=project)
        .select_related("candidate_a__model_version", "candidate_b__model_version")
        .order_by("id")
    )


def judgments_for_engineer(*, project: Project) -> QuerySet[Judgment]:
    return Judgment.objects.filter(pair__project=project).select_related("annotator").order_by("id")


def judgments_per_day(*, project: Project, days: int = 14) -> list[dict]:
    from django.db.models.functions import TruncDate

    since = timezone.now() - timedelta(days=days - 1)
    counts = dict(
        Judgment.objects.filter(pair__project=project, created_at__gte=since)
        .exclude(outcome=Outcome.SKIP)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    today = timezone.localdate()
    return [
        {
            "day": (today - timedelta(days=offset)).isoformat(),
            "judgments": counts.get(today - timedelta(days=offset), 0),
        }
        for offset in range(days - 1, -1, -1)
    ]


def dashboard_overview(*, project: Project) -> dict:
    """What a manager reads: the dataset's size and pace, answer mix, agreement, annotators, models, jobs."""
    from annotation_web.jobs.models import Job
    from annotation_web.labeling.models import FaceInput
    from annotation_web.registry.models import ModelVersion

    pairs = Pair.objects.filter(project=project, is_gold=False)
    outcome_counts = dict(
        Judgment.objects.filter(pair__project=project, is_gold=False)
        .values("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    model_versions = ModelVersion.objects.filter(
        Q(candidates__face_input__project=project) | Q(kind__in=["restorer", "reward"])
    )
    return {
        "project": project.slug,
        "inputs": FaceInput.objects.filter(project=project).count(),
        "pairs": pairs.count(),
        "pairs_complete": pairs.filter(
            judgment_count__gte=Greatest(Value(project.overlap), Coalesce(F("overlap"), Value(0)))
        ).count(),
        "gold_pairs": Pair.objects.filter(project=project, is_gold=True).count(),
        "judgments": sum(n for outcome, n in outcome_counts.items() if outcome != Outcome.SKIP),
        "outcomes": [
            {"outcome": o.value, "label": o.label, "count": outcome_counts.get(o.value, 0)} for o in Outcome
        ],
        "per_day": judgments_per_day(project=project),
        "agreement": project_agreement(project=project),
        "annotators": annotators_overview(project=project),
        "models": [
            {
                "id": m.pk,
                "name": str(m),
                "kind": m.kind,
                "parent": str(m.parent) if m.parent_id else None,
                "metrics": {
                    k: v
                    for k, v in (m.metrics or {}).items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                },
            }
            for m in model_versions.distinct().select_related("parent").order_by("kind", "name", "version")
        ],
        "jobs": [
            {
                "id": j.pk,
                "kind": j.kind,
                "state": j.state,
                "done": j.progress_done,
                "total": j.progress_total,
                "created_at": j.created_at.isoformat(),
            }
            for j in Job.objects.filter(project=project).order_by("-created_at")[:10]
        ],
    }
