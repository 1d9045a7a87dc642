"""The plots of each dashboard page: what each draws (title, axes with units, what it counts) and the rows
behind it, built from the selectors. The page embeds each plot's spec and rows as a JSON data block that
`static/dashboards/charts.js` draws; the CSV and JSON downloads write the very same rows, so what is
downloaded is what is plotted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib.auth.models import AbstractUser, AnonymousUser

from annotation_web.dashboards.selectors import dataset, jobs, models, people
from annotation_web.dashboards.selectors.filters import DashboardFilters
from annotation_web.labeling.models import Outcome, Project

# How a plot is drawn (charts.js): "bar" (series side by side), "stacked" (series stacked), "line" (one line
# per value of `group`, or per series), "interval" (a point and its interval), "timeline" (versions at the time
# they were made, joined to their parent), "hbar" (horizontal bars), "table" (no chart: a table and its CSV).
CHARTS = ("bar", "stacked", "line", "interval", "timeline", "hbar", "table")


@dataclass(frozen=True)
class Column:
    key: str
    label: str


@dataclass
class Plot:
    name: str
    title: str
    chart: str
    counts: str  # what the figure counts, in words (gold or not, skips or not, which filter applies)
    x: str  # the column on the category axis
    x_label: str
    y_label: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    series: list[str] = field(default_factory=list)  # the columns drawn (values on the y axis)
    group: str | None = None  # "line": one line per value of this column (rows in long format)
    y_range: tuple[float, float] | None = None  # a fixed value axis (shares: 0 to 1); None: from the data

    def __post_init__(self) -> None:
        if self.chart not in CHARTS:
            raise ValueError(f"unknown chart {self.chart!r}")

    def data(self) -> list[dict[str, Any]]:
        keys = [column.key for column in self.columns]
        return [{key: row.get(key) for key in keys} for row in self.rows]

    def spec(self) -> dict[str, Any]:
        labels = {column.key: column.label for column in self.columns}
        return {
            "name": self.name,
            "title": self.title,
            "chart": self.chart,
            "counts": self.counts,
            "x": self.x,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "series": [{"key": key, "label": labels[key]} for key in self.series],
            "group": self.group,
            "y_range": list(self.y_range) if self.y_range else None,
            "columns": [{"key": column.key, "label": column.label} for column in self.columns],
            "rows": self.data(),
        }

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([column.key for column in self.columns])
        for row in self.data():
            writer.writerow(["" if row[column.key] is None else row[column.key] for column in self.columns])
        return buffer.getvalue()


@dataclass
class Page:
    plots: list[Plot]
    notes: dict[str, Any] = field(default_factory=dict)

    def plot(self, name: str) -> Plot | None:
        return next((plot for plot in self.plots if plot.name == name), None)

    @property
    def by_name(self) -> dict[str, Plot]:
        """The plots by name with `_` for `-`, as templates reach them (`page.by_name.job_durations`)."""
        return {plot.name.replace("-", "_"): plot for plot in self.plots}


User = AbstractUser | AnonymousUser


class Sources:
    """What a page's plots are built from: the project, the filter, the reader, and the selectors' rows that
    more than one plot shows, each read when a plot first needs it and then kept. A page builds all its plots
    from one `Sources`; a plot's CSV or JSON builds that plot alone, so it reads only what that plot needs."""

    def __init__(
        self, *, project: Project, filters: DashboardFilters, user: User, whole_page: bool = False
    ) -> None:
        self.project = project
        self.filters = filters
        self.user = user
        # Building every plot of a page: a table some plots show in full is read in full once for all of them.
        self.whole_page = whole_page

    @cached_property
    def judgments_per_day(self) -> list[dict]:
        return dataset.judgments_per_day(project=self.project, filters=self.filters)

    @cached_property
    def outcomes(self) -> list[dict]:
        return dataset.outcome_mix(project=self.project, filters=self.filters)

    @cached_property
    def annotator_table(self) -> list[dict]:
        return people.annotator_table(project=self.project, filters=self.filters)

    @cached_property
    def annotator_counts(self) -> list[dict]:
        """The annotator table for the plots that show none of its agreement with the majority: the whole
        table when building a whole page or when it is read already, else the table without that figure (one
        statement fewer)."""
        if self.whole_page or "annotator_table" in self.__dict__:
            return self.annotator_table
        return people.annotator_table(project=self.project, filters=self.filters, with_majority=False)

    @cached_property
    def annotator_flags(self) -> list[dict]:
        return people.annotator_flags(project=self.project, filters=self.filters, table=self.annotator_counts)

    @cached_property
    def thresholds(self) -> people.FlagThresholds:
        return people.FlagThresholds.from_settings()

    @cached_property
    def leaderboard(self) -> dict[str, Any]:
        return models.leaderboard(project=self.project)

    @cached_property
    def rl_rounds(self) -> list[dict]:
        return models.rl_rounds(project=self.project)


PlotBuilder = Callable[[Sources], Plot]
# Plot name -> (page name, builder), in each page's order of plots.
PLOTS: dict[str, tuple[str, PlotBuilder]] = {}


def _plot(page: str, name: str) -> Callable[[PlotBuilder], PlotBuilder]:
    def register(builder: PlotBuilder) -> PlotBuilder:
        PLOTS[name] = (page, builder)
        return builder

    return register


ANNOTATOR_COLUMNS = [
    Column("annotator", "Annotator"),
    Column("answers", "Answers (gold included, skips not)"),
    Column("skips", "Skips"),
    Column("median_seconds", "Median seconds per answer"),
    Column("gold_answered", "Gold answered"),
    Column("gold_correct", "Gold right"),
    Column("gold_accuracy", "Gold accuracy (0–1)"),
    Column("majority_compared", "Compared with the majority"),
    Column("majority_agreed", "Agreed with the majority"),
    Column("majority_agreement", "Agreement with the majority (0–1)"),
    Column("decisive", "Decisive answers (A or B)"),
    Column("chose_left", "Chose the left image"),
    Column("left_share", "Left share of decisive (0–1)"),
]


ROUND_COLUMNS = [Column("version", "Version"), Column("round", "Round"), Column("parent", "Parent")]


@_plot("dataset", "judgments-per-day")
def _judgments_per_day(s: Sources) -> Plot:
    return Plot(
        name="judgments-per-day",
        title="Judgments per day",
        chart="stacked",
        counts="Judgments made each day (UTC) in the filter: answers on ordinary pairs, answers on gold "
        "pairs and skips, stacked.",
        x="day",
        x_label="Day (UTC)",
        y_label="Judgments per day (count)",
        columns=[
            Column("day", "Day"),
            Column("ordinary", "Answers, ordinary pairs"),
            Column("gold", "Answers, gold pairs"),
            Column("skips", "Skips"),
        ],
        series=["ordinary", "gold", "skips"],
        rows=s.judgments_per_day,
    )


@_plot("dataset", "queue-depth")
def _queue_depth(s: Sources) -> Plot:
    return Plot(
        name="queue-depth",
        title="Queue now",
        chart="bar",
        counts="The queue at this moment (the batch filter applies, the dates do not). Gold pairs are "
        "served beside the queue and never wait in it.",
        x="measure",
        x_label="Measure",
        y_label="Count (pairs, slots or reservations)",
        columns=[Column("measure", "Measure"), Column("count", "Count")],
        series=["count"],
        rows=dataset.queue_depth(project=s.project, filters=s.filters),
    )


@_plot("dataset", "severity")
def _severity(s: Sources) -> Plot:
    return Plot(
        name="severity",
        title="Composition by degradation severity",
        chart="bar",
        counts="Ordinary pairs of the batch by how much their input was downscaled, and the answers (gold "
        "and skips left out) they received in the date range.",
        x="severity",
        x_label="Degradation severity (downscale factor)",
        y_label="Count (pairs or answers)",
        columns=[
            Column("severity", "Severity"),
            Column("pairs", "Pairs"),
            Column("judgments", "Answers"),
        ],
        series=["pairs", "judgments"],
        rows=dataset.composition_by_severity(project=s.project, filters=s.filters),
    )


@_plot("dataset", "model-versions")
def _model_versions(s: Sources) -> Plot:
    return Plot(
        name="model-versions",
        title="Composition by model version",
        chart="bar",
        counts="Ordinary pairs with a candidate of each version (either side: a pair counts for both its "
        "versions) and the answers they received (gold and skips left out).",
        x="version",
        x_label="Model version",
        y_label="Count (pairs or answers)",
        columns=[Column("version", "Version"), Column("pairs", "Pairs"), Column("judgments", "Answers")],
        series=["pairs", "judgments"],
        rows=dataset.composition_by_model_version(project=s.project, filters=s.filters),
    )


@_plot("dataset", "outcomes")
def _outcomes(s: Sources) -> Plot:
    return Plot(
        name="outcomes",
        title="Outcome mix",
        chart="stacked",
        counts="Judgments in the filter by outcome, on ordinary and on gold pairs (stacked). A and B are "
        "the pair's candidates, not screen sides.",
        x="label",
        x_label="Outcome",
        y_label="Judgments (count)",
        columns=[
            Column("outcome", "Outcome"),
            Column("label", "Label"),
            Column("ordinary", "Ordinary pairs"),
            Column("gold", "Gold pairs"),
        ],
        series=["ordinary", "gold"],
        rows=s.outcomes,
    )


@_plot("people", "annotator-per-day")
def _annotator_per_day(s: Sources) -> Plot:
    return Plot(
        name="annotator-per-day",
        title="Answers per annotator per day",
        chart="line",
        counts="Answers each annotator gave each day (UTC): gold included, skips left out.",
        x="day",
        x_label="Day (UTC)",
        y_label="Answers per day (count)",
        columns=[Column("day", "Day"), Column("annotator", "Annotator"), Column("answers", "Answers")],
        series=["answers"],
        group="annotator",
        rows=people.judgments_per_annotator_per_day(project=s.project, filters=s.filters),
    )


@_plot("people", "median-time")
def _median_time(s: Sources) -> Plot:
    return Plot(
        name="median-time",
        title="Median time per answer",
        chart="bar",
        counts="Median of the server-measured time from showing a pair to its answer, skips left out. "
        f"Flagged too fast below {s.thresholds.too_fast_median_seconds:g} s over at least "
        f"{s.thresholds.too_fast_min_answers} answers.",
        x="annotator",
        x_label="Annotator",
        y_label="Median time per answer (s)",
        columns=[
            Column("annotator", "Annotator"),
            Column("median_seconds", "Median seconds"),
            Column("answers", "Answers"),
        ],
        series=["median_seconds"],
        rows=s.annotator_counts,
    )


@_plot("people", "gold-accuracy")
def _gold_accuracy(s: Sources) -> Plot:
    return Plot(
        name="gold-accuracy",
        title="Gold accuracy",
        chart="bar",
        counts="Share of the gold pairs each annotator answered right in the filter (gold answers only).",
        x="annotator",
        x_label="Annotator",
        y_label="Gold accuracy (share 0–1)",
        columns=[
            Column("annotator", "Annotator"),
            Column("gold_accuracy", "Gold accuracy"),
            Column("gold_answered", "Gold answered"),
            Column("gold_correct", "Gold right"),
        ],
        y_range=(0.0, 1.0),
        series=["gold_accuracy"],
        rows=s.annotator_counts,
    )


@_plot("people", "majority-agreement")
def _majority_agreement(s: Sources) -> Plot:
    return Plot(
        name="majority-agreement",
        title="Agreement with the majority",
        chart="bar",
        counts="Share of an annotator's answers on ordinary pairs that equal the strict majority of the "
        "pair's other annotators (pairs without one are not compared; gold and skips left out).",
        x="annotator",
        x_label="Annotator",
        y_label="Agreement with the majority (share 0–1)",
        columns=[
            Column("annotator", "Annotator"),
            Column("majority_agreement", "Agreement"),
            Column("majority_compared", "Compared"),
            Column("majority_agreed", "Agreed"),
        ],
        y_range=(0.0, 1.0),
        series=["majority_agreement"],
        rows=s.annotator_table,
    )


@_plot("people", "screen-side")
def _screen_side(s: Sources) -> Plot:
    return Plot(
        name="screen-side",
        title="Screen side chosen",
        chart="bar",
        counts="Share of decisive answers (A or B, gold included) that chose the image on the left of the "
        "screen; 0.5 is no side preference.",
        x="annotator",
        x_label="Annotator",
        y_label="Left share of decisive answers (0–1)",
        columns=[
            Column("annotator", "Annotator"),
            Column("left_share", "Left share"),
            Column("decisive", "Decisive answers"),
            Column("chose_left", "Chose left"),
        ],
        y_range=(0.0, 1.0),
        series=["left_share"],
        rows=s.annotator_counts,
    )


@_plot("people", "alpha-over-time")
def _alpha_over_time(s: Sources) -> Plot:
    return Plot(
        name="alpha-over-time",
        title="Krippendorff's alpha per batch over time",
        chart="line",
        counts="Alpha (nominal: a, b, tie, both bad) over each batch's answers on ordinary pairs from the "
        "start of the filter up to each day; gold and skips left out. 1 is perfect agreement, 0 chance.",
        x="day",
        x_label="Day (UTC)",
        y_label="Krippendorff's alpha (−1 to 1)",
        columns=[
            Column("day", "Day"),
            Column("batch", "Batch"),
            Column("alpha", "Alpha"),
            Column("pairs_with_two_or_more", "Pairs with ≥ 2 answers"),
        ],
        series=["alpha"],
        group="batch",
        rows=people.alpha_per_batch_over_time(project=s.project, filters=s.filters),
    )


@_plot("people", "annotators")
def _annotators(s: Sources) -> Plot:
    return Plot(
        name="annotators",
        title="Annotators",
        chart="table",
        counts="Every annotator who judged in the filter.",
        x="annotator",
        x_label="Annotator",
        y_label="",
        columns=ANNOTATOR_COLUMNS,
        rows=s.annotator_table,
    )


@_plot("people", "flags")
def _flags(s: Sources) -> Plot:
    return Plot(
        name="flags",
        title="Flags",
        chart="table",
        counts="Annotators to look at, each flag with its evidence.",
        x="annotator",
        x_label="Annotator",
        y_label="",
        columns=[
            Column("annotator", "Annotator"),
            Column("flag", "Flag"),
            Column("evidence", "Evidence"),
            Column("value", "Figure"),
            Column("p_value", "p-value"),
        ],
        rows=s.annotator_flags,
    )


@_plot("models", "leaderboard")
def _leaderboard(s: Sources) -> Plot:
    return Plot(
        name="leaderboard",
        title="Human leaderboard",
        chart="interval",
        counts=f"{s.leaderboard['model']} fitted on {s.leaderboard['judgments']} judgments of cross-version pairs; left out: "
        f"{s.leaderboard['excluded']}. Score: {s.leaderboard['score']}; bars are 95% bootstrap intervals. Filters do not apply.",
        x="version",
        x_label="Restorer version (best first)",
        y_label="Score (centred log-strength)",
        columns=[
            Column("rank", "Rank"),
            Column("version", "Version"),
            Column("score", "Score"),
            Column("lower", "Interval low"),
            Column("upper", "Interval high"),
            Column("judgments", "Judgments"),
            Column("wins", "Wins"),
            Column("losses", "Losses"),
            Column("ties", "Ties"),
            Column("in_use", "In use"),
        ],
        series=["score", "lower", "upper"],
        rows=s.leaderboard["rows"],
    )


@_plot("models", "reward-accuracy")
def _reward_accuracy(s: Sources) -> Plot:
    return Plot(
        name="reward-accuracy",
        title="Reward model held-out accuracy",
        chart="bar",
        counts="Each reward model's pairwise accuracy on the judgments held out of its training.",
        x="version",
        x_label="Reward model version (oldest first)",
        y_label="Held-out pairwise accuracy (share 0–1)",
        columns=[
            Column("version", "Version"),
            Column("created", "Made on"),
            Column("accuracy", "Accuracy"),
            Column("held_out_judgments", "Held-out judgments"),
            Column("log_loss", "Log loss (nats)"),
        ],
        y_range=(0.0, 1.0),
        series=["accuracy"],
        rows=models.reward_accuracy_per_version(project=s.project),
    )


@_plot("models", "rl-rewards")
def _rl_rewards(s: Sources) -> Plot:
    return Plot(
        name="rl-rewards",
        title="RL rounds: learned reward and held-out evaluator",
        chart="line",
        counts="Per RL-tuned restorer: the learned reward at its last step, and the held-out evaluator "
        "(never optimised by RL) of it and of the restorer in use on the loop's held-out inputs.",
        x="version",
        x_label="RL round (restorer version)",
        y_label="Score (reward / evaluator units, higher is better)",
        columns=[
            *ROUND_COLUMNS,
            Column("learned_reward", "Learned reward"),
            Column("held_out", "Held-out evaluator"),
            Column("held_out_in_use", "Held-out, restorer in use"),
            Column("held_out_win", "Held-out win rate (0–1)"),
        ],
        series=["learned_reward", "held_out", "held_out_in_use"],
        rows=s.rl_rounds,
    )


@_plot("models", "rl-entropy")
def _rl_entropy(s: Sources) -> Plot:
    return Plot(
        name="rl-entropy",
        title="RL rounds: solution entropy",
        chart="bar",
        counts="Mean per-pixel standard deviation over sampler seeds before and after each RL round "
        "(a collapse to one solution shows as a drop).",
        x="version",
        x_label="RL round (restorer version)",
        y_label="Solution entropy (per-pixel std over seeds)",
        columns=[*ROUND_COLUMNS, Column("entropy_before", "Before"), Column("entropy_after", "After")],
        series=["entropy_before", "entropy_after"],
        rows=s.rl_rounds,
    )


@_plot("models", "rl-psnr")
def _rl_psnr(s: Sources) -> Plot:
    return Plot(
        name="rl-psnr",
        title="RL rounds: PSNR change",
        chart="bar",
        counts="PSNR against the HQ on the held-out inputs, RL result less the restorer in use.",
        x="version",
        x_label="RL round (restorer version)",
        y_label="PSNR change (dB)",
        columns=[*ROUND_COLUMNS, Column("psnr_change", "PSNR change (dB)")],
        series=["psnr_change"],
        rows=s.rl_rounds,
    )


@_plot("models", "restorer-metrics")
def _restorer_metrics(s: Sources) -> Plot:
    return Plot(
        name="restorer-metrics",
        title="Restorer metrics per version",
        chart="bar",
        counts="Validation PSNR of supervised training (and of bicubic upscaling on the same faces), and "
        "PSNR on the loop's held-out inputs where the version was evaluated.",
        x="version",
        x_label="Restorer version (oldest first)",
        y_label="PSNR (dB)",
        columns=[
            Column("version", "Version"),
            Column("created", "Made on"),
            Column("val_psnr", "Validation PSNR"),
            Column("val_psnr_bicubic", "Bicubic PSNR"),
            Column("held_out_psnr", "Held-out PSNR"),
        ],
        series=["val_psnr", "val_psnr_bicubic", "held_out_psnr"],
        rows=models.restorer_metrics_per_version(project=s.project),
    )


@_plot("models", "timeline")
def _timeline(s: Sources) -> Plot:
    return Plot(
        name="timeline",
        title="Versions over time, with lineage",
        chart="timeline",
        counts="Every version of the project at the time it was registered; a line joins a version to "
        "its parent.",
        x="created",
        x_label="Registered (UTC)",
        y_label="Kind",
        columns=[
            Column("id", "Id"),
            Column("version", "Version"),
            Column("kind", "Kind"),
            Column("created", "Registered"),
            Column("parent_id", "Parent id"),
            Column("parent", "Parent"),
        ],
        series=["kind"],
        rows=models.version_timeline(project=s.project),
    )


@_plot("jobs", "jobs-by-state")
def _jobs_by_state(s: Sources) -> Plot:
    return Plot(
        name="jobs-by-state",
        title="Jobs by state",
        chart="bar",
        counts="The project's jobs created in the date range, by state.",
        x="state",
        x_label="State",
        y_label="Jobs (count)",
        columns=[Column("state", "State"), Column("jobs", "Jobs")],
        series=["jobs"],
        rows=jobs.jobs_by_state(user=s.user, project=s.project, filters=s.filters),
    )


@_plot("jobs", "job-durations")
def _job_durations(s: Sources) -> Plot:
    return Plot(
        name="job-durations",
        title="Running and recent jobs",
        chart="hbar",
        counts=f"Every running job, then the {jobs.RECENT_JOBS} most recent others; duration is finished (or "
        "now) less started, empty before a job starts.",
        x="label",
        x_label="Job",
        y_label="Duration (minutes)",
        columns=[
            Column("job", "Job"),
            Column("label", "Label"),
            Column("kind", "Kind"),
            Column("state", "State"),
            Column("created", "Created"),
            Column("minutes", "Duration (min)"),
            Column("progress", "Progress"),
        ],
        series=["minutes"],
        rows=jobs.jobs_running_and_recent(user=s.user, project=s.project, filters=s.filters),
    )


def _page_plots(page: str, sources: Sources) -> list[Plot]:
    return [builder(sources) for on, builder in PLOTS.values() if on == page]


def dataset_page(*, project: Project, filters: DashboardFilters, user: User) -> Page:
    sources = Sources(project=project, filters=filters, user=user, whole_page=True)
    plots = _page_plots("dataset", sources)
    outcomes = sources.outcomes
    # The tiles add up the plotted rows (five at most), so they cannot disagree with the plot.
    totals = {
        "answers_ordinary": sum(row["ordinary"] for row in outcomes if row["outcome"] != Outcome.SKIP),
        "answers_gold": sum(row["gold"] for row in outcomes if row["outcome"] != Outcome.SKIP),
        "skips": sum(row["ordinary"] + row["gold"] for row in outcomes if row["outcome"] == Outcome.SKIP),
    }
    return Page(plots=plots, notes={"totals": totals})


def people_page(*, project: Project, filters: DashboardFilters, user: User) -> Page:
    sources = Sources(project=project, filters=filters, user=user, whole_page=True)
    plots = _page_plots("people", sources)
    return Page(plots=plots, notes={"thresholds": sources.thresholds, "gold": people.gold_thresholds()})


def models_page(*, project: Project, filters: DashboardFilters, user: User) -> Page:
    return Page(
        plots=_page_plots("models", Sources(project=project, filters=filters, user=user, whole_page=True))
    )


def jobs_page(*, project: Project, filters: DashboardFilters, user: User) -> Page:
    return Page(
        plots=_page_plots("jobs", Sources(project=project, filters=filters, user=user, whole_page=True))
    )


def plot_build(*, name: str, project: Project, filters: DashboardFilters, user: User) -> Plot:
    """The one plot `name` (a key of `PLOTS`) with its rows, as its page draws it, reading only what it needs."""
    _, builder = PLOTS[name]
    return builder(Sources(project=project, filters=filters, user=user))


PageBuilder = Callable[..., Page]
# Page name -> (tab title, builder). The order is the tabs' order.
PAGES: dict[str, tuple[str, PageBuilder]] = {
    "dataset": ("Dataset", dataset_page),
    "people": ("People", people_page),
    "models": ("Models", models_page),
    "jobs": ("Jobs", jobs_page),
}
# Plot name -> page name (a plot's downloads build the very plot its page draws).
PLOT_PAGES = {name: page for name, (page, _) in PLOTS.items()}
