"""Two restorer versions of a project side by side, the read side of the compare page (`loop.pages`): which
versions a project may compare, the defaults (in use against the newest candidate), both versions' metrics in
one table, the paired held-out evaluation when one version was evaluated against the other, the human
leaderboard's verdict on the two, and the images of the same inputs (LQ, both outputs, HQ where known).

Which versions belong to a project follows the registry's rule (`registry.selectors.model_version_list_visible`):
a version one of the project's jobs made, or one no job made (registered by a command; shared by all projects).
A restorer another project's job made is not this project's to compare or promote: it answers 404.

Images are served through the storage's signed URLs (`BlobStorage.url`: the local storage's signed link, or
S3's presigned one), which only these engineer and manager pages hand out.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from annotation_web.accounts.models import User
from annotation_web.errors import NotFound
from annotation_web.labeling import access
from annotation_web.labeling.models import Candidate, FaceInput, Project
from annotation_web.loop import selectors
from annotation_web.loop.evaluation import GALLERY_INPUTS
from annotation_web.loop.leaderboard import Leaderboard
from annotation_web.loop.model_pages import metric_rows, metric_text, metric_unit
from annotation_web.loop.models import LoopState
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import get_storage

# The restorers the version pickers offer, newest first (a project has tens; the id field takes any other).
VERSIONS_OFFERED = 200
# The paired measures of an evaluation (`loop.evaluation.MEASURES`), in this order, with what each says.
EVALUATION_MEASURES = (
    ("psnr", "PSNR against the HQ", "higher is closer"),
    ("ssim", "SSIM against the HQ", "higher is closer"),
    ("perceptual", "perceptual distance to the HQ", "lower is closer"),
    ("held_out", "held-out evaluator score", "higher is better"),
    ("win_rate_vs_first", "win rate against the restorer in use (share of images, 0–1)", "higher is better"),
    ("learned_reward", "learned reward of the reward model in use", "higher is better"),
    ("entropy", "solution entropy over the seeds", "higher is more varied"),
    ("identity", "identity similarity to the HQ", "higher keeps the face"),
)


# --- which versions ---------------------------------------------------------------------------------------


def project_restorers(*, project: Project) -> QuerySet[ModelVersion]:
    """The restorer versions `project` may compare and promote, newest first."""
    return (
        ModelVersion.objects.filter(kind=ModelKind.RESTORER)
        .filter(Q(made_by_job__project=project) | Q(made_by_job__isnull=True))
        .order_by("-pk")
    )


def project_restorer_get(*, project: Project, pk: int) -> ModelVersion:
    version = project_restorers(project=project).filter(pk=pk).first()
    if version is None:
        raise NotFound(f"no restorer version {pk} in project {project.slug!r}")
    return version


def comparison_defaults(*, project: Project) -> tuple[int | None, int | None]:
    """(a, b) to compare when the page is opened without a choice: the restorer in use against the loop's
    candidate, else against the newest other restorer; without one in use, the two newest."""
    state = selectors.loop_state_get(project=project)
    newest = list(project_restorers(project=project).values_list("pk", flat=True)[:3])
    if state.restorer_id is None:
        return (newest[1] if len(newest) > 1 else None), (newest[0] if newest else None)
    if state.candidate_id is not None and state.candidate_id != state.restorer_id:
        return state.restorer_id, state.candidate_id
    others = [pk for pk in newest if pk != state.restorer_id]
    return state.restorer_id, (others[0] if others else None)


# --- figures ----------------------------------------------------------------------------------------------


def metrics_side_by_side(*, a: ModelVersion, b: ModelVersion) -> list[dict[str, str]]:
    """Every figure either version records (`model_pages.metric_rows`: same precision and units as the
    registry's pages), one row per name: the name, a's text, b's text ("—" where one has none), the unit."""
    rows_a = {row["key"]: row for row in metric_rows(a.metrics)}
    rows_b = {row["key"]: row for row in metric_rows(b.metrics)}
    rows = []
    for key in sorted(set(rows_a) | set(rows_b)):
        one, other = rows_a.get(key), rows_b.get(key)
        rows.append(
            {
                "key": key,
                "a": one["text"] if one else "—",
                "b": other["text"] if other else "—",
                "unit": (one or other or {}).get("unit", ""),
            }
        )
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _evaluation_between(*, first: ModelVersion, second: ModelVersion) -> dict[str, Any] | None:
    """`first`'s stored evaluation when it was measured against `second` (the `evaluate` job's record)."""
    record = (first.metrics or {}).get("evaluation")
    if isinstance(record, dict) and record.get("against") == second.pk:
        return record
    return None


def paired_evaluation(*, a: ModelVersion, b: ModelVersion) -> dict[str, Any] | None:
    """The evaluation that measured one of the two against the other on the same held-out inputs and seeds
    (b's against a first), as rows (measure, a, b, b − a, unit); None when neither was evaluated against the
    other (their own evaluations, against other versions, are in `metrics_side_by_side`)."""
    record = _evaluation_between(first=b, second=a)
    candidate = "b"
    if record is None:
        record = _evaluation_between(first=a, second=b)
        candidate = "a"
    if record is None:
        return None
    in_use = record.get("in_use") or {}
    rows = []
    for name, label, direction in EVALUATION_MEASURES:
        measured, against = record.get(name), in_use.get(name)
        if measured is None and against is None:
            continue
        value_a, value_b = (against, measured) if candidate == "b" else (measured, against)
        number_a, number_b = _number(value_a), _number(value_b)
        difference = number_b - number_a if number_a is not None and number_b is not None else None
        rows.append(
            {
                "key": name,
                "label": label,
                "direction": direction,
                "a": "—" if value_a is None else metric_text(value_a),
                "b": "—" if value_b is None else metric_text(value_b),
                "difference": "—"
                if difference is None
                else f"{'+' if difference >= 0 else ''}{metric_text(difference)}",
                "unit": metric_unit(name),
            }
        )
    return {
        "candidate": candidate,
        "job": record.get("job"),
        "inputs": len(record.get("inputs") or []),
        "seeds": record.get("seeds"),
        "num_steps": record.get("num_steps"),
        "evaluator": record.get("evaluator") or "",
        "perceptual_metric": record.get("perceptual_metric") or "",
        "identity_metric": record.get("identity_metric") or "",
        "rows": rows,
    }


# --- the human leaderboard --------------------------------------------------------------------------------


def leaderboard_verdict(*, board: Leaderboard, a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """What people's judgments say of a against b: "a ahead" when the bootstrap interval of score(a) − score(b)
    lies above zero, "b ahead" when below, else "not separated yet"; with the judgments of pairs that showed
    the two side by side (the fit also uses each one's judgments against other versions)."""
    direct = board.judgments_between(a.pk, b.pk)
    level = selectors.LEADERBOARD_LEVEL
    verdict: dict[str, Any] = {
        "judgments": direct,
        "fitted_judgments": board.judgments,
        "level": level,
        "difference": None,
        "interval": None,
    }
    if a.pk not in board.versions or b.pk not in board.versions:
        missing = " and ".join(
            f"{label} ({v})" for label, v in (("A", a), ("B", b)) if v.pk not in board.versions
        )
        return {
            **verdict,
            "outcome": "not_separated",
            "headline": "not separated yet",
            "text": f"{missing}: no judgments of cross-version pairs yet",
        }
    difference, lower, upper = board.difference(a.pk, b.pk, level=level)
    if lower > 0:
        outcome, headline = "a", f"A ({a}) ahead"
    elif upper < 0:
        outcome, headline = "b", f"B ({b}) ahead"
    else:
        outcome, headline = "not_separated", "not separated yet"
    return {
        **verdict,
        "outcome": outcome,
        "headline": headline,
        "difference": difference,
        "interval": [lower, upper],
        "text": (
            f"score(A) − score(B) = {difference:+.2f}, {level:.0%} bootstrap interval [{lower:+.2f}, {upper:+.2f}] "
            f"(a difference d means odds e^d to 1)"
        ),
    }


# --- images -----------------------------------------------------------------------------------------------


def _url(key: str) -> str | None:
    return get_storage().url(key) if key else None


def _faces(*, project: Project, ids: list[int]) -> dict[int, FaceInput]:
    return {face.pk: face for face in FaceInput.objects.filter(project=project, pk__in=ids)}


def _image_row(face: FaceInput, a_key: str | None, b_key: str | None) -> dict[str, Any]:
    return {
        "input": face.pk,
        "name": face.source_name,
        "lq": _url(face.lq_key),
        "hq": _url(face.hq_key),
        "a": _url(a_key or ""),
        "b": _url(b_key or ""),
    }


def _gallery_of(record: dict[str, Any] | None) -> dict[str, Any] | None:
    gallery = (record or {}).get("gallery")
    return gallery if isinstance(gallery, dict) and gallery.get("images") else None


def comparison_images(*, project: Project, a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """The same inputs seen by both versions, at most `GALLERY_INPUTS` rows of (LQ, a's output, b's output,
    HQ where known), from the best source there is:

    1. the gallery of the evaluation that measured one against the other (same held-out inputs, same seed);
    2. else the candidates both versions generated for the same inputs (the judged samples; first seed each);
    3. else the project's held-out inputs, LQ and HQ only (no output of either is stored for them)."""
    for first, second, candidate_is in ((b, a, "b"), (a, b, "a")):
        gallery = _gallery_of(_evaluation_between(first=first, second=second))
        if gallery is None:
            continue
        images = gallery["images"][:GALLERY_INPUTS]
        faces = _faces(project=project, ids=[row["input"] for row in images])
        rows = []
        for row in images:
            face = faces.get(row["input"])
            if face is None:
                continue
            keys = (
                (row["in_use"], row["candidate"])
                if candidate_is == "b"
                else (row["candidate"], row["in_use"])
            )
            rows.append(_image_row(face, *keys))
        return {
            "source": "evaluation",
            "text": (
                f"held-out inputs of the evaluation of {first} against {second} (seed {gallery.get('seed')}, "
                f"deterministic sampling, {gallery.get('num_steps')} steps)"
            ),
            "rows": rows,
        }
    shared = list(
        Candidate.objects.filter(face_input__project=project, model_version_id__in=[a.pk, b.pk])
        .values("face_input_id")
        .annotate(versions=Count("model_version_id", distinct=True))
        .filter(versions=2)
        .order_by("face_input_id")
        .values_list("face_input_id", flat=True)[:GALLERY_INPUTS]
    )
    if shared:
        first_keys: dict[tuple[int, int], str] = {}
        for input_id, version_id, key in (
            Candidate.objects.filter(face_input_id__in=shared, model_version_id__in=[a.pk, b.pk])
            .order_by("face_input_id", "model_version_id", "seed", "pk")
            .values_list("face_input_id", "model_version_id", "image_key")
        ):
            first_keys.setdefault((input_id, version_id), key)
        faces = _faces(project=project, ids=shared)
        return {
            "source": "candidates",
            "text": "inputs both versions generated candidates for (the samples people judged; the first seed of each)",
            "rows": [
                _image_row(faces[pk], first_keys.get((pk, a.pk)), first_keys.get((pk, b.pk)))
                for pk in shared
                if pk in faces
            ],
        }
    held_out = [int(pk) for pk in selectors.loop_state_get(project=project).held_out_input_ids][
        :GALLERY_INPUTS
    ]
    faces = _faces(project=project, ids=held_out)
    return {
        "source": "held_out",
        "text": (
            "the project's held-out inputs: no output of either version is stored for the same inputs yet "
            "(an evaluation of one against the other stores them)"
        ),
        "rows": [_image_row(faces[pk], None, None) for pk in held_out if pk in faces],
    }


def version_gallery(*, version: ModelVersion) -> dict[str, Any] | None:
    """The gallery of `version` for its registry page: rows of (LQ, the other restorer's output, its own
    output, HQ where known). From its own evaluation; else, for a version that was only ever the one in use
    (a first restorer), from the newest evaluation of a candidate against it (its outputs are there too);
    None when there is neither."""
    record = (version.metrics or {}).get("evaluation")
    own, other = "candidate", "in_use"
    against_id = record.get("against") if isinstance(record, dict) else None
    if _gallery_of(record if isinstance(record, dict) else None) is None:
        challenger = (
            ModelVersion.objects.filter(kind=version.kind, metrics__evaluation__against=version.pk)
            .order_by("-pk")
            .first()
        )
        record = (challenger.metrics or {}).get("evaluation") if challenger is not None else None
        own, other = "in_use", "candidate"
        against_id = challenger.pk if challenger is not None else None
    if not isinstance(record, dict):
        return None
    gallery = _gallery_of(record)
    if gallery is None or not isinstance(gallery.get("project"), int):
        return None
    images = gallery["images"][:GALLERY_INPUTS]
    faces = {
        face.pk: face
        for face in FaceInput.objects.filter(
            project_id=int(gallery["project"]), pk__in=[row["input"] for row in images]
        )
    }
    against = ModelVersion.objects.filter(pk=against_id).first() if isinstance(against_id, int) else None
    return {
        "against": against,
        "seed": gallery.get("seed"),
        "num_steps": gallery.get("num_steps"),
        "job": record.get("job"),
        "rows": [
            _image_row(faces[row["input"]], row[other], row[own]) for row in images if row["input"] in faces
        ],
    }


# --- the whole page, and the links to it ------------------------------------------------------------------


def restorer_comparison(*, project: Project, a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """Everything the compare page shows of a and b (each a restorer of `project`): statuses, metrics side
    by side, the paired evaluation, the leaderboard's rows and verdict, the images. The leaderboard is fitted
    once (one query, then numpy)."""
    state = selectors.loop_state_get(project=project)
    board = selectors.project_leaderboard(project=project)
    data = selectors.leaderboard_data_of(project=project, board=board)
    ranks = {row["version_id"]: row for row in data["versions"]}

    def status(version: ModelVersion) -> str:
        if version.pk == state.restorer_id:
            return "in use"
        if version.pk == state.candidate_id:
            return "candidate"
        if version.pk == state.previous_restorer_id:
            return "previous"
        return ""

    return {
        "a": {"version": a, "status": status(a), "leaderboard": ranks.get(a.pk)},
        "b": {"version": b, "status": status(b), "leaderboard": ranks.get(b.pk)},
        "metrics": metrics_side_by_side(a=a, b=b),
        "evaluation": paired_evaluation(a=a, b=b),
        "verdict": leaderboard_verdict(board=board, a=a, b=b),
        "leaderboard": {key: data[key] for key in ("model", "score", "excluded", "judgments", "resamples")},
        "images": comparison_images(project=project, a=a, b=b),
        "state": state,
    }


def compare_links_for_version(*, user: User, version: ModelVersion) -> list[dict[str, Any]]:
    """Where `version`'s registry page links to the compare page: per project of `user`'s whose loop has a
    restorer in use and that may compare `version` (its job's project, or any for a shared version), (a, b)
    = (in use, version); for the version in use itself, against the loop's candidate or the previous one."""
    if version.kind != ModelKind.RESTORER:
        return []
    projects = access.projects_visible(user=user)
    if version.made_by_job is not None and version.made_by_job.project_id is not None:
        projects = projects.filter(pk=version.made_by_job.project_id)
    links = []
    states = (
        LoopState.objects.filter(project__in=projects, restorer__isnull=False)
        .select_related("project")
        .order_by("project__slug")
    )
    for state in states:
        if state.restorer_id != version.pk:
            links.append(
                {
                    "project": state.project.slug,
                    "a": state.restorer_id,
                    "b": version.pk,
                    "text": "the version in use",
                }
            )
            continue
        other = state.candidate_id or state.previous_restorer_id
        if other is not None:
            text = "its candidate" if state.candidate_id else "the previous version"
            links.append({"project": state.project.slug, "a": version.pk, "b": other, "text": text})
    return links
