"""The dataset as a manager reads it: how many judgments arrive per day, how deep the queue is, what the pairs
are made of (degradation severity, model versions) and how people answer. Each figure is one aggregate query;
the rows say what they count (gold apart from the rest, skips apart from answers)."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Case, Count, FloatField, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from annotation_web.dashboards.selectors.filters import DashboardFilters, judgments_in
from annotation_web.labeling.models import Outcome, Pair, Project, Reservation, ReservationState

# A calendar wider than this is not filled day by day (the plot would be unreadable and the rows many).
MAX_DAYS_FILLED = 732

# Severity of a face's degradation, by its downscale factor (the LQ is the HQ shrunk this many times, then
# blurred, noised and JPEG-compressed): the factor decides most of what is lost. Upper bounds, inclusive.
SEVERITY_BINS = (
    ("mild (downscale ≤ 2×)", 2.0),
    ("moderate (2–4×)", 4.0),
    ("strong (4–8×)", 8.0),
    ("severe (> 8×)", None),
)
SEVERITY_UNKNOWN = "unknown (no degradation recorded)"


def day_range(first: date | None, last: date | None) -> list[date]:
    """Every day from `first` to `last` inclusive (empty when either is unknown; capped at MAX_DAYS_FILLED)."""
    if first is None or last is None or last < first:
        return []
    days = min((last - first).days + 1, MAX_DAYS_FILLED)
    return [first + timedelta(days=offset) for offset in range(days)]


def _as_date(value) -> date | None:
    # TruncDate gives a date on PostgreSQL and on SQLite alike; a string would mean a backend that does not.
    return value if isinstance(value, date) or value is None else date.fromisoformat(str(value))


def judgments_per_day(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """Per calendar day (UTC) in the filter, or from the first to the last judgment: answers on ordinary
    pairs, answers on gold pairs, and skips, counted apart. Days without a judgment are rows of zeros."""
    rows = (
        judgments_in(project=project, filters=filters)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            ordinary=Count("pk", filter=Q(is_gold=False) & ~Q(outcome=Outcome.SKIP)),
            gold=Count("pk", filter=Q(is_gold=True) & ~Q(outcome=Outcome.SKIP)),
            skips=Count("pk", filter=Q(outcome=Outcome.SKIP)),
        )
        .order_by("day")
    )
    by_day = {_as_date(row["day"]): row for row in rows}
    known = sorted(day for day in by_day if day is not None)
    first = filters.date_from or (known[0] if known else None)
    last = filters.date_to or (known[-1] if known else None)
    if filters.date_from and not filters.date_to:
        last = max(known[-1], timezone.localdate()) if known else timezone.localdate()
    return [
        {
            "day": day.isoformat(),
            "ordinary": by_day[day]["ordinary"] if day in by_day else 0,
            "gold": by_day[day]["gold"] if day in by_day else 0,
            "skips": by_day[day]["skips"] if day in by_day else 0,
        }
        for day in day_range(first, last)
    ]


def queue_depth(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """The queue now (the date range does not apply; the batch does): ordinary pairs still waiting for a
    judgment, the judgments they still want (open slots), reservations live now (held on screen and not
    expired), ordinary pairs complete, and gold pairs (served beside the queue, never waiting in it)."""
    pairs = Pair.objects.filter(project=project)
    if filters.batch is not None:
        pairs = pairs.filter(batch=filters.batch)
    counts = pairs.aggregate(
        waiting=Count("pk", filter=Q(is_gold=False, open_slots__gt=0)),
        slots_wanted=Coalesce(Sum("open_slots", filter=Q(is_gold=False, open_slots__gt=0)), Value(0)),
        complete=Count("pk", filter=Q(is_gold=False, open_slots=0)),
        gold=Count("pk", filter=Q(is_gold=True)),
    )
    live = Reservation.objects.filter(
        pair__project=project, state=ReservationState.ACTIVE, expires_at__gt=timezone.now()
    )
    if filters.batch is not None:
        live = live.filter(pair__batch=filters.batch)
    return [
        {"measure": "ordinary pairs waiting", "count": counts["waiting"]},
        {"measure": "judgments still wanted (open slots)", "count": counts["slots_wanted"]},
        {"measure": "reservations live now", "count": live.count()},
        {"measure": "ordinary pairs complete", "count": counts["complete"]},
        {"measure": "gold pairs", "count": counts["gold"]},
    ]


def _severity_expression(field: str) -> tuple[Case, Cast]:
    """(the severity label, the downscale factor it is read from) of the degradation JSON at `field`; the
    factor must be aliased as `downscale_factor` on the queryset the label is used in."""
    # KeyTextTransform (not KT): KT does not follow relations (`pair__face_input__…`).
    downscale = Cast(KeyTextTransform("downscale", field), FloatField())
    whens = []
    for label, upper in SEVERITY_BINS:
        condition = Q(downscale_factor__isnull=False)
        whens.append(
            When(condition & Q(downscale_factor__lte=upper) if upper else condition, then=Value(label))
        )
    return Case(*whens, default=Value(SEVERITY_UNKNOWN)), downscale


def composition_by_severity(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """Ordinary (non-gold) pairs of the batch by their input's degradation severity (downscale factor bins),
    and the answers (skips and gold left out) those pairs received in the date range."""
    severity, downscale = _severity_expression("face_input__degradation")
    pairs = Pair.objects.filter(project=project, is_gold=False)
    if filters.batch is not None:
        pairs = pairs.filter(batch=filters.batch)
    pair_counts = dict(
        pairs.alias(downscale_factor=downscale)
        .annotate(severity=severity)
        .values("severity")
        .annotate(n=Count("pk"))
        .values_list("severity", "n")
    )
    judgment_severity, judgment_downscale = _severity_expression("pair__face_input__degradation")
    judgment_counts = dict(
        judgments_in(project=project, filters=filters)
        .filter(is_gold=False)
        .exclude(outcome=Outcome.SKIP)
        .alias(downscale_factor=judgment_downscale)
        .annotate(severity=judgment_severity)
        .values("severity")
        .annotate(n=Count("pk"))
        .values_list("severity", "n")
    )
    labels = [label for label, _ in SEVERITY_BINS] + [SEVERITY_UNKNOWN]
    return [
        {"severity": label, "pairs": pair_counts.get(label, 0), "judgments": judgment_counts.get(label, 0)}
        for label in labels
        if label != SEVERITY_UNKNOWN or pair_counts.get(label) or judgment_counts.get(label)
    ]


def composition_by_model_version(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """Per model version: the ordinary pairs of the batch it has a candidate in (either side), and the answers
    (skips and gold left out) those pairs received in the date range. A pair counts once for each of its two
    versions, so the column sums are twice the totals."""
    pairs = Pair.objects.filter(project=project, is_gold=False)
    if filters.batch is not None:
        pairs = pairs.filter(batch=filters.batch)
    judgments = (
        judgments_in(project=project, filters=filters).filter(is_gold=False).exclude(outcome=Outcome.SKIP)
    )
    # One query for the pairs and one for the answers, grouped by the pair's two versions at once (a few
    # groups), each group then counted for both its versions.
    sides = ("a", "b")
    label_fields = [
        f"candidate_{side}__model_version__{part}" for side in sides for part in ("kind", "name", "version")
    ]
    totals: dict[int, dict] = {}
    for row in (
        pairs.values(*(f"candidate_{side}__model_version_id" for side in sides), *label_fields)
        .annotate(n=Count("pk"))
        .order_by()
    ):
        for side in sides:
            version = f"candidate_{side}__model_version"
            entry = totals.setdefault(
                row[f"{version}_id"],
                {
                    "version": f"{row[f'{version}__kind']}:{row[f'{version}__name']}@v{row[f'{version}__version']}",
                    "pairs": 0,
                    "judgments": 0,
                },
            )
            entry["pairs"] += row["n"]
    versions = [f"pair__candidate_{side}__model_version_id" for side in sides]
    for *version_ids, n in (
        judgments.values_list(*versions).annotate(n=Count("pk")).order_by().values_list(*versions, "n")
    ):
        for version_id in version_ids:
            if version_id in totals:
                totals[version_id]["judgments"] += n
    return sorted(totals.values(), key=lambda row: (-row["pairs"], row["version"]))


def outcome_mix(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """Per outcome (a / b / tie / both bad / skip): judgments on ordinary pairs and on gold pairs, apart.
    `a` and `b` are the pair's candidates, not screen sides (the side is drawn at random per reservation)."""
    counts = {
        (row["outcome"], row["is_gold"]): row["n"]
        for row in judgments_in(project=project, filters=filters)
        .values("outcome", "is_gold")
        .annotate(n=Count("pk"))
        .order_by()
    }
    return [
        {
            "outcome": outcome.value,
            "label": outcome.label,
            "ordinary": counts.get((outcome.value, False), 0),
            "gold": counts.get((outcome.value, True), 0),
        }
        for outcome in Outcome
    ]
