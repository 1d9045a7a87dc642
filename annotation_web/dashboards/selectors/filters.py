"""The filter every dashboard figure takes: a date range (inclusive, on the day a judgment or job was made, in
the site's time zone) and a batch (`Pair.batch`, the import batch a pair was made in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from annotation_web.labeling.models import Judgment, Project


@dataclass(frozen=True)
class DashboardFilters:
    date_from: date | None = None
    date_to: date | None = None
    # None: every batch; "" is a batch of its own (pairs made without one).
    batch: str | None = None

    def start(self) -> datetime | None:
        if self.date_from is None:
            return None
        return timezone.make_aware(datetime.combine(self.date_from, time.min))

    def end(self) -> datetime | None:
        """The first instant after the range (the range is inclusive of `date_to`)."""
        if self.date_to is None:
            return None
        return timezone.make_aware(datetime.combine(self.date_to + timedelta(days=1), time.min))

    def describe(self) -> str:
        """The filter in words, for the page and the CSV's callers."""
        parts = []
        if self.date_from or self.date_to:
            parts.append(f"{self.date_from or 'start'} to {self.date_to or 'today'}")
        if self.batch is not None:
            parts.append(f"batch {self.batch!r}" if self.batch else "pairs without a batch")
        return ", ".join(parts) or "all dates, all batches"


NO_FILTERS = DashboardFilters()


def judgments_in(*, project: Project, filters: DashboardFilters) -> QuerySet[Judgment]:
    """The project's judgments (gold and skips included: callers say which they count) inside the filter."""
    rows = Judgment.objects.filter(pair__project=project)
    return within_dates(rows, filters, field="created_at").filter(
        **({"pair__batch": filters.batch} if filters.batch is not None else {})
    )


def within_dates(rows: QuerySet, filters: DashboardFilters, *, field: str) -> QuerySet:
    start, end = filters.start(), filters.end()
    if start is not None:
        rows = rows.filter(**{f"{field}__gte": start})
    if end is not None:
        rows = rows.filter(**{f"{field}__lt": end})
    return rows
