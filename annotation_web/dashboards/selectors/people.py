"""The people behind the judgments: their pace, speed, gold accuracy, agreement with the others, the
reliability of each batch over time (Krippendorff's alpha), and the annotators a manager should look at, each
flag with the figures that raised it.

Counts, medians and agreement with the majority are aggregates in the database (a fixed number of queries
whatever the number of judgments). Alpha per batch over time reads the days each batch received answers, and the
(batch, day, pair, answer) tuples of the pairs with two or more answers in the filter (the only ones alpha
counts) once, in order, and keeps the coincidence matrix of each batch up to date as it goes: one pass, not one
query or one recomputation per day.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, Window
from django.db.models.functions import TruncDate
from scipy.stats import binomtest

from annotation_web.dashboards.selectors.aggregates import Median
from annotation_web.dashboards.selectors.filters import DashboardFilters, judgments_in
from annotation_web.labeling.models import PREFERENCE_OUTCOMES, Judgment, Outcome, Pair, Project
from annotation_web.labeling.pairs import trusted_annotators
from annotation_web.loop.selectors import annotators_flagged

DECISIVE = (Outcome.A, Outcome.B)


@dataclass(frozen=True)
class FlagThresholds:
    """When an annotator is flagged. Read from the settings (`DASHBOARD_*`) with these defaults; the gold rule
    is the loop's (`loop.selectors.annotators_flagged`, thresholds in `labeling.pairs.trusted_annotators`)."""

    too_fast_median_seconds: float = 1.5
    too_fast_min_answers: int = 10
    side_bias_p_value: float = 0.01
    side_bias_min_decisive: int = 20

    @classmethod
    def from_settings(cls) -> FlagThresholds:
        defaults = cls()
        return cls(
            too_fast_median_seconds=float(
                getattr(settings, "DASHBOARD_TOO_FAST_MEDIAN_SECONDS", defaults.too_fast_median_seconds)
            ),
            too_fast_min_answers=int(
                getattr(settings, "DASHBOARD_TOO_FAST_MIN_ANSWERS", defaults.too_fast_min_answers)
            ),
            side_bias_p_value=float(
                getattr(settings, "DASHBOARD_SIDE_BIAS_P_VALUE", defaults.side_bias_p_value)
            ),
            side_bias_min_decisive=int(
                getattr(settings, "DASHBOARD_SIDE_BIAS_MIN_DECISIVE", defaults.side_bias_min_decisive)
            ),
        )


def gold_thresholds() -> dict[str, float]:
    """The loop's gold rule, read where it lives (the defaults of `trusted_annotators`)."""
    defaults = trusted_annotators.__kwdefaults__ or {}
    return {
        "min_gold_answered": defaults.get("min_gold_answered", 5),
        "min_gold_accuracy": defaults.get("min_gold_accuracy", 0.8),
    }


def judgments_per_annotator_per_day(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """(day, annotator, answers) for each day an annotator answered: gold included, skips left out."""
    rows = (
        judgments_in(project=project, filters=filters)
        .exclude(outcome=Outcome.SKIP)
        .annotate(day=TruncDate("created_at"))
        .values("day", "annotator__username")
        .annotate(n=Count("pk"))
        .order_by("day", "annotator__username")
    )
    return [
        {"day": str(row["day"]), "annotator": row["annotator__username"], "answers": row["n"]} for row in rows
    ]


def _majority_agreement(*, project: Project, filters: DashboardFilters) -> dict[int, dict[str, int]]:
    """Per annotator, over their answers on ordinary pairs in the filter: how many were compared with a strict
    majority of the pair's *other* annotators (all of them, whatever their date) and how many agreed with it,
    as `labeling.agreement.agreement_with_majority` counts it. One statement (portable SQL: PostgreSQL and
    SQLite ≥ 3.25), a raw one because the ORM has no derived tables: one pass over the project's answers on
    ordinary pairs (of the batch: a pair's answers share its batch), where a window over the pair counts each
    answer, and an answer's *others* are that count less the answer itself; the date range then picks the
    answers compared. The others have a strict majority when one answer's count is above each of the other
    three; the answer agreed when that one is its own."""
    judgment = connection.ops.quote_name(Judgment._meta.db_table)
    pair = connection.ops.quote_name(Pair._meta.db_table)
    outcomes = [str(outcome) for outcome in PREFERENCE_OUTCOMES]
    placeholders = ", ".join(["%s"] * len(outcomes))
    others_sql = ", ".join(
        f"SUM(CASE WHEN j.outcome = %s THEN 1 ELSE 0 END) OVER (PARTITION BY j.pair_id)"
        f" - CASE WHEN j.outcome = %s THEN 1 ELSE 0 END AS v{index}"
        for index in range(len(outcomes))
    )
    others_params = [outcome for outcome in outcomes for _ in range(2)]

    def strict_top(index: int) -> str:
        return "(" + " AND ".join(f"v{index} > v{k}" for k in range(len(outcomes)) if k != index) + ")"

    agreed_sql = " OR ".join(f"(outcome = %s AND {strict_top(index)})" for index in range(len(outcomes)))
    compared_sql = " OR ".join(strict_top(index) for index in range(len(outcomes)))
    where = ["p.project_id = %s", "j.is_gold = %s", f"j.outcome IN ({placeholders})"]
    where_params: list[Any] = [project.pk, False, *outcomes]
    if filters.batch is not None:
        where.append("p.batch = %s")
        where_params.append(filters.batch)
    in_range, range_params = ["1 = 1"], []
    start, end = filters.start(), filters.end()
    if start is not None:
        in_range.append("j.created_at >= %s")
        range_params.append(start)
    if end is not None:
        in_range.append("j.created_at < %s")
        range_params.append(end)
    sql = f"""
        SELECT annotator_id,
               SUM(CASE WHEN {agreed_sql} THEN 1 ELSE 0 END) AS agreed,
               SUM(CASE WHEN {compared_sql} THEN 1 ELSE 0 END) AS compared
        FROM (
            SELECT j.annotator_id AS annotator_id, j.outcome AS outcome,
                   CASE WHEN {" AND ".join(in_range)} THEN 1 ELSE 0 END AS in_range, {others_sql}
            FROM {judgment} j
            JOIN {pair} p ON p.id = j.pair_id
            WHERE {" AND ".join(where)}
        ) mine
        WHERE in_range = 1
        GROUP BY annotator_id
    """
    params: list[Any] = [*outcomes, *range_params, *others_params, *where_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        annotator_id: {"agreed": int(agreed), "compared": int(compared)}
        for annotator_id, agreed, compared in rows
    }


def annotator_table(*, project: Project, filters: DashboardFilters, with_majority: bool = True) -> list[dict]:
    """One row per annotator who judged in the filter, by name: answers (gold included, skips not), skips,
    median server-measured seconds per answer, gold answered and right, agreement with the majority, the
    decisive answers (A or B) and how many of them chose the candidate on the left of the screen. Without
    `with_majority` the agreement with the majority is not computed (its columns are None)."""
    rows = (
        judgments_in(project=project, filters=filters)
        .values("annotator_id", "annotator__username")
        .annotate(
            answers=Count("pk", filter=~Q(outcome=Outcome.SKIP)),
            skips=Count("pk", filter=Q(outcome=Outcome.SKIP)),
            median_ms=Median("server_duration_ms", filter=~Q(outcome=Outcome.SKIP)),
            gold_answered=Count("pk", filter=Q(is_gold=True, gold_correct__isnull=False)),
            gold_correct=Count("pk", filter=Q(is_gold=True, gold_correct=True)),
            decisive=Count("pk", filter=Q(outcome__in=DECISIVE)),
            # The screen side of an answer: `shown_left` is the candidate drawn on the left, so an answer
            # equal to it chose the left image.
            chose_left=Count("pk", filter=Q(outcome__in=DECISIVE, outcome=F("shown_left"))),
        )
        .order_by("annotator__username")
    )
    agreement = _majority_agreement(project=project, filters=filters) if with_majority else None
    table = []
    for row in rows:
        agreed: int | None = None
        compared: int | None = None
        if agreement is not None:
            majority = agreement.get(row["annotator_id"], {"agreed": 0, "compared": 0})
            agreed, compared = majority["agreed"], majority["compared"]
        table.append(
            {
                "annotator_id": row["annotator_id"],
                "annotator": row["annotator__username"],
                "answers": row["answers"],
                "skips": row["skips"],
                "median_seconds": row["median_ms"] / 1000 if row["median_ms"] is not None else None,
                "gold_answered": row["gold_answered"],
                "gold_correct": row["gold_correct"],
                "gold_accuracy": row["gold_correct"] / row["gold_answered"] if row["gold_answered"] else None,
                "majority_compared": compared,
                "majority_agreed": agreed,
                "majority_agreement": agreed / compared if compared and agreed is not None else None,
                "decisive": row["decisive"],
                "chose_left": row["chose_left"],
                "left_share": row["chose_left"] / row["decisive"] if row["decisive"] else None,
            }
        )
    return table


def annotator_flags(
    *, project: Project, filters: DashboardFilters, table: list[dict] | None = None
) -> list[dict]:
    """The annotators to look at, one row per flag with its evidence, by annotator then kind:

    - `too fast`: median seconds per answer below the threshold, over at least the minimum answers;
    - `side-biased`: chose the left (or the right) screen side more than chance allows: a two-sided exact
      binomial test of the left choices among the decisive answers against 1/2, p below the threshold, over at
      least the minimum decisive answers (ties and both-bad say nothing of a side);
    - `below gold`: the loop's rule (`loop.selectors.annotators_flagged`: all the project's gold answers,
      whatever the filter), the rule that also keeps them out of the leaderboard.

    `table` is `annotator_table`'s rows when the caller has them already."""
    thresholds = FlagThresholds.from_settings()
    rows = table if table is not None else annotator_table(project=project, filters=filters)
    flags: list[dict] = []
    for row in rows:
        median = row["median_seconds"]
        if row["answers"] >= thresholds.too_fast_min_answers and median is not None:
            if median < thresholds.too_fast_median_seconds:
                flags.append(
                    {
                        "annotator": row["annotator"],
                        "flag": "too fast",
                        "evidence": f"median {median:.2f} s per answer over {row['answers']} answers "
                        f"(threshold {thresholds.too_fast_median_seconds:g} s)",
                        "value": median,
                        "p_value": None,
                    }
                )
        if row["decisive"] >= thresholds.side_bias_min_decisive:
            p_value = float(binomtest(row["chose_left"], row["decisive"], 0.5).pvalue)
            if p_value < thresholds.side_bias_p_value:
                side = "left" if row["chose_left"] * 2 > row["decisive"] else "right"
                flags.append(
                    {
                        "annotator": row["annotator"],
                        "flag": f"side-biased ({side})",
                        "evidence": f"chose the left image in {row['chose_left']} of {row['decisive']} decisive "
                        f"answers ({row['left_share']:.0%}); two-sided binomial test against 50%: "
                        f"p = {p_value:.2g} (threshold {thresholds.side_bias_p_value:g})",
                        "value": row["left_share"],
                        "p_value": p_value,
                    }
                )
    gold = gold_thresholds()
    # Who is flagged is the loop's subquery; the evidence counts the same rows it counts (every gold answer of
    # the project that was marked right or wrong).
    below_gold = (
        Judgment.objects.filter(
            pair__project=project,
            is_gold=True,
            gold_correct__isnull=False,
            annotator_id__in=annotators_flagged(project=project),
        )
        .values("annotator__username")
        .annotate(answered=Count("pk"), correct=Count("pk", filter=Q(gold_correct=True)))
        .order_by("annotator__username")
    )
    for gold_row in below_gold:
        accuracy = gold_row["correct"] / gold_row["answered"]
        flags.append(
            {
                "annotator": gold_row["annotator__username"],
                "flag": "below gold",
                "evidence": f"{gold_row['correct']} of {gold_row['answered']} gold pairs right ({accuracy:.0%}) over the "
                f"whole project; needs {gold['min_gold_accuracy']:.0%} over at least "
                f"{gold['min_gold_answered']} (left out of the leaderboard)",
                "value": accuracy,
                "p_value": None,
            }
        )
    return sorted(flags, key=lambda flag: (flag["annotator"], flag["flag"]))


class RunningAlpha:
    """Krippendorff's alpha for nominal data, kept up to date as values arrive one at a time (the same figure
    as `labeling.agreement.krippendorff_alpha_nominal` over the values so far), in constant time a value.

    With `n_uc` the values of category c in unit u and `m_u` their total, a pairable unit (m_u ≥ 2) adds m_u
    to the number of pairable values n, n_uc to the marginal n_c, and (m_u² − Σ_c n_uc²) / (m_u − 1) to the
    disagreeing coincidences; alpha = 1 − (n − 1) · disagreeing / (n² − Σ_c n_c²). Adding a value changes
    one unit's share only, which is taken out and put back."""

    def __init__(self) -> None:
        self.units: dict[object, Counter[str]] = defaultdict(Counter)
        self.values = 0  # n: values in pairable units
        self.marginals: Counter[str] = Counter()
        self.disagreeing = 0.0
        self.pairable_units = 0

    @staticmethod
    def _disagreeing(counts: Counter[str]) -> float:
        m = sum(counts.values())
        return (m * m - sum(n * n for n in counts.values())) / (m - 1)

    def add(self, unit: object, value: str) -> None:
        counts = self.units[unit]
        before = sum(counts.values())
        if before >= 2:
            self.disagreeing -= self._disagreeing(counts)
        counts[value] += 1
        if before >= 2:
            self.values += 1
            self.marginals[value] += 1
        elif before == 1:  # the unit becomes pairable: both its values count from now on
            self.values += 2
            self.marginals.update(counts)
            self.pairable_units += 1
        if before >= 1:
            self.disagreeing += self._disagreeing(counts)

    def alpha(self) -> float | None:
        n = self.values
        if n <= 1:
            return None
        expected = n * n - sum(count * count for count in self.marginals.values())
        if expected == 0:
            return None
        return 1.0 - (n - 1) * self.disagreeing / expected


def alpha_per_batch_over_time(*, project: Project, filters: DashboardFilters) -> list[dict]:
    """(batch, day, alpha, pairs with ≥ 2 answers) at the end of each day a batch received answers: alpha over
    the batch's answers on ordinary pairs (gold and skips left out, four categories: a, b, tie, both bad) from
    the start of the filter up to that day, so the last point of a batch is its alpha over the whole range."""
    # One pass over the answers (the ORM writes it, the window and all; the outer statement is raw because the
    # ORM has no derived tables): an answer is read when its pair has two or more answers in the filter (on any
    # other pair it adds nothing to alpha, nor to the count of pairable units), and each (batch, day) with
    # answers is one more row (counted in a group, not sorted), so that every such day is a point.
    day = TruncDate("created_at")
    answers = (
        judgments_in(project=project, filters=filters)
        .filter(is_gold=False, outcome__in=PREFERENCE_OUTCOMES)
        .order_by()
        .values(
            batch_name=F("pair__batch"),
            answer_day=day,
            unit=F("pair_id"),
            answer=F("outcome"),
            answer_id=F("pk"),
            on_pair=Window(Count("pk"), partition_by=[F("pair_id")]),
        )
    )
    inner, params = answers.query.sql_with_params()
    sql = f"""
        WITH answers AS ({inner})
        SELECT batch_name, answer_day, unit, answer, on_pair, answer_id FROM answers WHERE on_pair >= 2
        UNION ALL
        SELECT batch_name, answer_day, NULL, NULL, 0, MIN(answer_id) FROM answers GROUP BY batch_name, answer_day
        ORDER BY 1, 2, 6
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    points: list[dict] = []
    running = RunningAlpha()
    current: tuple[str, object] | None = None
    for batch, answer_day, unit, answer, on_pair, _ in rows:
        if current is not None and (batch, answer_day) != current:
            points.append(_alpha_point(current, running))
        if current is None or batch != current[0]:
            running = RunningAlpha()
        if on_pair >= 2:
            running.add(unit, answer)
        current = (batch, answer_day)
    if current is not None:
        points.append(_alpha_point(current, running))
    return points


def _alpha_point(key: tuple[str, object], running: RunningAlpha) -> dict:
    batch, day = key
    return {
        "batch": batch or "(no batch)",
        "day": str(day),
        "alpha": running.alpha(),
        "pairs_with_two_or_more": running.pairable_units,
    }
