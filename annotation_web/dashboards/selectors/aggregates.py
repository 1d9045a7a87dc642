"""Database aggregates the dashboards need beyond Django's own.

`Median` is PostgreSQL's `percentile_cont(0.5) WITHIN GROUP (ORDER BY …)`. SQLite (the embedded default) has
no median, so `register_sqlite_median` gives each new SQLite connection an aggregate of the same name and
meaning (the mean of the two middle values for an even count), and the figure is still computed by the
database, group by group, rather than by reading rows into Python.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Aggregate, FloatField

SQLITE_MEDIAN = "pref_median"


class Median(Aggregate):
    """The median of a numeric expression over each group (NULLs ignored; NULL for an empty group)."""

    function = "percentile_cont"
    name = "Median"
    output_field = FloatField()
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def as_sqlite(self, compiler, connection, **extra_context):
        # A copy with SQLite's function and a plain call template (Aggregate.as_sql wraps it in the FILTER
        # clause itself, so the template cannot be passed as an argument).
        clone = self.copy()
        clone.function = SQLITE_MEDIAN
        clone.template = "%(function)s(%(expressions)s)"
        return clone.as_sql(compiler, connection, **extra_context)


class _SQLiteMedian:
    """The step / finalize aggregate SQLite calls for `pref_median(x)`."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: Any) -> None:
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        if not self.values:
            return None
        ordered = sorted(self.values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2


def register_sqlite_median(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: adds `pref_median` to every SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate(SQLITE_MEDIAN, 1, _SQLiteMedian)
