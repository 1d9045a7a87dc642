"""The models of a project as a manager reads them: the human leaderboard (the loop's, with its bootstrap
intervals), each reward model's held-out accuracy, each RL round's figures, each restorer's metrics, and every
version on a time line with its parent.

The figures are read out of `ModelVersion.metrics` by the database (JSON key lookups cast to numbers), one
query per figure whatever the number of versions. Where they come from:

- reward models: `val_pairwise_accuracy`, `val_log_loss`, `n_val_judgments` (reward_model's training);
- an RL round (a restorer with an `rl` record, rl_trainer's `metrics.json`): `rl.final."reward/total"` (the
  learned reward at the last step), `rl.entropy_before` / `rl.entropy_after` (solution entropy: mean per-pixel
  standard deviation over seeds); and, once the loop's `evaluate` job has run on it, `evaluation.held_out` /
  `evaluation.in_use.held_out` (the held-out evaluator RL never optimised, the candidate and the restorer in use
  on the same inputs), `evaluation.win_rate_vs_first`, and `evaluation.psnr − evaluation.in_use.psnr` (PSNR
  change, dB);
- restorers: `val_psnr` and `val_psnr_bicubic` (supervised training's validation), `evaluation.psnr`.
"""

from __future__ import annotations

from django.db.models import Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from annotation_web.labeling.models import Candidate, Project
from annotation_web.loop.selectors import project_leaderboard_data
from annotation_web.registry.models import ModelKind, ModelVersion


def _number(path: str) -> Cast:
    """A figure in `ModelVersion.metrics` at `path` (JSON keys joined by `__`), as a float (NULL if absent)."""
    return Cast(KT(f"metrics__{path}"), FloatField())


def project_versions(*, project: Project) -> QuerySet[ModelVersion]:
    """The versions of the project: made by one of its jobs, naming it in their lineage, or with candidates
    among its pairs (the classical and reference ones its pairs compare)."""
    in_pairs = Candidate.objects.filter(model_version=OuterRef("pk"), face_input__project=project)
    return ModelVersion.objects.filter(
        Q(made_by_job__project=project) | Q(config__lineage__project=project.slug) | Exists(in_pairs)
    )


def _name(kind: str, name: str, number: int) -> str:
    return f"{kind}:{name}@v{number}"  # as ModelVersion.__str__, from the values read


def leaderboard(*, project: Project) -> dict:
    """The loop's human leaderboard (`loop.selectors.project_leaderboard_data`): restorer versions best first,
    centred Bradley–Terry log-strength with its 95% bootstrap interval. The dashboards' date and batch filters
    do not apply: it is the one the loop's promotion reads."""
    data = project_leaderboard_data(project=project)
    rows = [
        {
            "rank": row["rank"],
            "version": row["version"],
            "score": row["score"],
            "lower": row["interval"][0],
            "upper": row["interval"][1],
            "judgments": row["judgments"],
            "wins": row["wins"],
            "losses": row["losses"],
            "ties": row["ties"],
            "in_use": row["in_use"],
        }
        for row in data["versions"]
    ]
    return {
        "rows": rows,
        "model": data["model"],
        "score": data["score"],
        "excluded": data["excluded"],
        "judgments": data["judgments"],
    }


def _figures_per_version(*, project: Project, kind: str, figures: dict[str, Cast]) -> list[dict]:
    """Each version of `kind` of the project, oldest first: its name, the day it was made and `figures`
    (name -> a figure of its metrics, NULL where absent), read by the database in one query."""
    rows = (
        project_versions(project=project)
        .filter(kind=kind)
        .annotate(**figures)
        .order_by("created_at", "pk")
        .values("kind", "name", "version", "created_at", *figures)
    )
    return [
        {
            "version": _name(row["kind"], row["name"], row["version"]),
            "created": row["created_at"].date().isoformat(),
            **{name: row[name] for name in figures},
        }
        for row in rows
    ]


def reward_accuracy_per_version(*, project: Project) -> list[dict]:
    """Each reward model of the project, oldest first: its pairwise accuracy on the held-out judgments of its
    training (share 0–1), their number, and its log loss there (nats)."""
    rows = _figures_per_version(
        project=project,
        kind=ModelKind.REWARD,
        figures={
            "accuracy": _number("val_pairwise_accuracy"),
            "held_out_judgments": _number("n_val_judgments"),
            "log_loss": _number("val_log_loss"),
        },
    )
    for row in rows:  # a count, stored as a JSON number
        if row["held_out_judgments"] is not None:
            row["held_out_judgments"] = int(row["held_out_judgments"])
    return rows


def rl_rounds(*, project: Project) -> list[dict]:
    """Each RL-tuned restorer of the project, oldest first (one per round): learned reward at its last step,
    held-out evaluator of it and of the restorer in use when it was evaluated, its held-out win rate against
    that restorer, solution entropy before and after, and its PSNR change against that restorer (dB)."""
    rows = (
        project_versions(project=project)
        .filter(kind=ModelKind.RESTORER, metrics__has_key="rl")
        .annotate(
            learned_reward=_number("rl__final__reward/total"),
            held_out=_number("evaluation__held_out"),
            held_out_in_use=_number("evaluation__in_use__held_out"),
            held_out_win=_number("evaluation__win_rate_vs_first"),
            entropy_before=_number("rl__entropy_before"),
            entropy_after=_number("rl__entropy_after"),
            psnr_change=_number("evaluation__psnr") - _number("evaluation__in_use__psnr"),
        )
        .order_by("created_at", "pk")
        .values(
            "kind",
            "name",
            "version",
            "created_at",
            "parent__kind",
            "parent__name",
            "parent__version",
            "learned_reward",
            "held_out",
            "held_out_in_use",
            "held_out_win",
            "entropy_before",
            "entropy_after",
            "psnr_change",
        )
    )
    return [
        {
            "round": index,
            "version": _name(row["kind"], row["name"], row["version"]),
            "parent": _name(row["parent__kind"], row["parent__name"], row["parent__version"])
            if row["parent__name"]
            else None,
            "created": row["created_at"].date().isoformat(),
            **{
                key: row[key]
                for key in (
                    "learned_reward",
                    "held_out",
                    "held_out_in_use",
                    "held_out_win",
                    "entropy_before",
                    "entropy_after",
                    "psnr_change",
                )
            },
        }
        for index, row in enumerate(rows, start=1)
    ]


def restorer_metrics_per_version(*, project: Project) -> list[dict]:
    """Each restorer of the project, oldest first: validation PSNR of its supervised training and of bicubic
    upscaling on the same faces (dB), and PSNR on the loop's held-out inputs where it was evaluated (dB)."""
    return _figures_per_version(
        project=project,
        kind=ModelKind.RESTORER,
        figures={
            "val_psnr": _number("val_psnr"),
            "val_psnr_bicubic": _number("val_psnr_bicubic"),
            "held_out_psnr": _number("evaluation__psnr"),
        },
    )


def version_timeline(*, project: Project) -> list[dict]:
    """Every version of the project, oldest first, with when it was made and its parent (lineage)."""
    rows = (
        project_versions(project=project)
        .order_by("created_at", "pk")
        .values(
            "pk",
            "kind",
            "name",
            "version",
            "created_at",
            "parent_id",
            "parent__kind",
            "parent__name",
            "parent__version",
        )
    )
    return [
        {
            "id": row["pk"],
            "version": _name(row["kind"], row["name"], row["version"]),
            "kind": row["kind"],
            "created": row["created_at"].isoformat(timespec="seconds"),
            "parent_id": row["parent_id"],
            "parent": _name(row["parent__kind"], row["parent__name"], row["parent__version"])
            if row["parent_id"]
            else None,
        }
        for row in rows
    ]
