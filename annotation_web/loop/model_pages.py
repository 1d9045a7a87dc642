"""The model registry as engineers and managers read it (here, above the registry, because a version's status
is the loop's): every model version with its status in the loop and its headline metrics, and one
version's page (lineage both ways, the job that made it, the judgment snapshot a reward model was trained
on, every metric with its unit, the gallery of its evaluation, links to compare it with the version in use).

Engineers and managers read them (as `/api/models/`); what a user may read is
`selectors.model_version_list_visible`. The artifact's files are downloaded as one zip from
`/api/models/<id>/artifact.zip` (`registry.downloads`), which the page links.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation_web.errors import NotFound
from annotation_web.loop import selectors as loop_selectors
from annotation_web.registry import selectors
from annotation_web.registry.models import ModelKind, ModelVersion

VERSIONS_PER_PAGE = 50
# Parts of a version's metrics that are settings, per-step records or image keys (an evaluation's gallery, shown
# as images), not figures (all shown on the API).
NOT_FIGURES = frozenset(
    {"rl_config", "train_config", "history", "evaluations", "annotator_reliability", "gallery"}
)
# The figures a list row shows first, in this order, where a version has them.
HIGHLIGHTS = (
    "val_psnr",
    "val_psnr_bicubic",
    "val_pairwise_accuracy",
    "val_log_loss",
    "n_val_judgments",
    "rl.final.reward/total",
    "rl.final.eval/held_out_win",
    "rl.steps",
    "steps",
)
HIGHLIGHTS_SHOWN = 3
# (part of a metric's name, its unit), first match wins.
UNITS = (
    ("psnr", "dB"),
    ("accuracy", "share of pairs (0–1)"),
    ("_win", "share of inputs (0–1)"),
    ("calibration_error", "share (0–1)"),
    ("ratio", "ratio"),
    ("ssim", "SSIM (0–1)"),
    ("perceptual", "perceptual distance (lower is closer)"),
    ("identity", "face-embedding similarity"),
    # solution entropy here is the mean per-pixel standard deviation over seeds (rl_trainer's measure)
    ("entropy", "per-pixel std over seeds"),
    ("loss", "nats"),
    ("kl", "nats"),
    ("per_second", "per second"),
    ("per_s", "per second"),
    ("seconds", "s"),
    ("n_", "count"),
    ("judgments", "count"),
    ("rollouts", "count"),
    ("step", "steps"),
)


def _require_reader(user) -> None:
    if not (user.is_engineer or user.is_manager):
        raise PermissionDenied("The model registry pages are for ML engineers and managers.")


def metric_text(value: Any) -> str:
    """A figure at a precision that says something: whole numbers as integers (`4000`, not `4000.000`), small
    magnitudes in scientific notation (`3.20e-05`, not `0.000`), others to four significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) < 1e-3:
            return f"{value:.2e}"
        if abs(value) >= 1e3:
            return f"{value:.1f}"
        return f"{value:.4g}"
    return str(value)


def metric_unit(key: str) -> str:
    """The unit of a figure, from its name (`val_psnr`: dB); empty when the name does not say."""
    name = key.rsplit(".", 1)[-1].lower()
    for part, unit in UNITS:
        matches = name.startswith(part) if part == "n_" else part in name
        if matches:
            return unit
    return ""


def metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """A version's metrics as rows (key, text, unit) in key order, nested records flattened to dotted keys
    (`rl.steps`); settings, per-step records and lists left out."""
    rows: list[dict[str, str]] = []
    for key, value in sorted((metrics or {}).items()):
        if key in NOT_FIGURES or isinstance(value, list) or value is None:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(metric_rows(value, prefix=f"{name}."))
        else:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            rows.append(
                {"key": name, "text": metric_text(value), "unit": metric_unit(name) if numeric else ""}
            )
    return rows


def metric_highlights(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    by_key = {row["key"]: row for row in rows}
    chosen = [by_key[key] for key in HIGHLIGHTS if key in by_key]
    return (chosen or [row for row in rows if row["unit"]])[:HIGHLIGHTS_SHOWN]


def _status(statuses: dict[int, list[dict[str, str]]], version: ModelVersion) -> list[dict[str, str]]:
    return statuses.get(version.pk, [])


@require_GET
@login_required
def model_list(request):
    _require_reader(request.user)
    kind = request.GET.get("kind", "").strip()
    versions = selectors.model_version_list_visible(user=request.user, kind=kind)
    page = Paginator(versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    statuses = loop_selectors.version_statuses(user=request.user)
    rows = []
    for version in page.object_list:
        metrics = metric_rows(version.metrics)
        rows.append(
            {
                "version": version,
                "statuses": _status(statuses, version),
                "highlights": metric_highlights(metrics),
            }
        )
    context = {
        "page": page,
        "rows": rows,
        "kind": kind,
        "kinds": list(ModelKind.choices),
        "filter_query": f"kind={kind}" if kind else "",
    }
    return render(request, "registry/list.html", context)


@require_GET
@login_required
def model_detail(request, pk: int):
    # Imported here: `loop.comparison` formats its figures with this module's `metric_rows`.
    from annotation_web.loop import comparison

    _require_reader(request.user)
    try:
        version = selectors.model_version_get_visible(user=request.user, pk=pk)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    lineage_config = (version.config or {}).get("lineage") or {}
    snapshot = None
    if "snapshot_id" in lineage_config:
        snapshot = {
            "id": lineage_config.get("snapshot_id"),
            "number": lineage_config.get("snapshot_number"),
            "sha256": lineage_config.get("snapshot_sha256", ""),
            "judgments": lineage_config.get("judgments"),
            "project": lineage_config.get("project", ""),
        }
    context = {
        "version": version,
        "statuses": _status(loop_selectors.version_statuses(user=request.user), version),
        "lineage": selectors.model_version_lineage(user=request.user, version=version),
        "lineage_config": sorted(lineage_config.items()),
        "snapshot": snapshot,
        "metrics": metric_rows(version.metrics),
        "can_read_jobs": request.user.is_engineer,
        "compare_links": comparison.compare_links_for_version(user=request.user, version=version),
        "gallery": comparison.version_gallery(version=version),
    }
    return render(request, "registry/detail.html", context)
