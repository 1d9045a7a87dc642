"""Building the queue: projects and their overlap, pairs, gold pairs, and the candidates they compare.

Functions marked `@transaction.atomic` are one transaction each. `candidate_store`,
`classical_candidates_create` and `gold_pair_create_for_input` are not: they write files first, then each
row in its own short transaction, so a crash in between leaves an orphan file under a deterministic key,
which the next run rewrites, never a row pointing at nothing.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest

from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.models import Candidate, FaceInput, Outcome, Pair, Project
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_get_or_create

_rng = random.SystemRandom()


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    overlap: int = 1,
    reservation_ttl_seconds: int = 300,
    gold_rate: float = 0.1,
    degradation_preset: str = "gfpgan",
    resolution: int = 64,
) -> Project:
    project = Project(
        name=name,
        slug=slug,
        overlap=overlap,
        reservation_ttl_seconds=reservation_ttl_seconds,
        gold_rate=gold_rate,
        degradation_preset=degradation_preset,
        resolution=resolution,
    )
    project.full_clean()
    project.save()
    return project


@transaction.atomic
def project_set_overlap(*, project: Project, overlap: int) -> Project:
    if overlap < 1:
        raise LabelingError("overlap must be at least 1")
    locked = Project.objects.select_for_update().get(pk=project.pk)
    delta = overlap - locked.overlap
    locked.overlap = overlap
    locked.save(update_fields=["overlap"])
    Pair.objects.filter(project=locked, is_gold=False).update(open_slots=Greatest(F("open_slots") + delta, 0))
    return locked


@transaction.atomic
def pair_create(
    *,
    a: Candidate,
    b: Candidate,
    batch: str = "",
    priority: int = 0,
    selection_reason: str = "",
    selection_score: float | None = None,
) -> Pair:
    if a.face_input_id != b.face_input_id:
        raise LabelingError("both candidates of a pair must restore the same input")
    if a.pk == b.pk:
        raise LabelingError("a pair needs two different candidates")
    project = a.face_input.project
    pair, _ = Pair.objects.get_or_create(
        candidate_a=a,
        candidate_b=b,
        defaults={
            "project": project,
            "face_input": a.face_input,
            "batch": batch,
            "priority": priority,
            "selection_reason": selection_reason,
            "selection_score": selection_score,
            "open_slots": project.overlap,
        },
    )
    return pair


@transaction.atomic
def pairs_create_all_for_input(
    *, face_input: FaceInput, candidates: Sequence[Candidate], batch: str = "", reason: str = "all pairs"
) -> list[Pair]:
    """Every unordered pair of the input's candidates; which one is `a` is drawn at random."""
    pairs = []
    for first, second in itertools.combinations(candidates, 2):
        a, b = (first, second) if _rng.random() < 0.5 else (second, first)
        pairs.append(pair_create(a=a, b=b, batch=batch, selection_reason=reason))
    return pairs


@transaction.atomic
def gold_pair_create(*, better: Candidate, worse: Candidate, batch: str = "gold") -> Pair:
    """A pair with a known answer (e.g. the HQ original against a heavily degraded copy)."""
    if better.face_input_id != worse.face_input_id:
        raise LabelingError("both candidates of a gold pair must show the same input")
    a, b = (better, worse) if _rng.random() < 0.5 else (worse, better)
    pair, _ = Pair.objects.get_or_create(
        candidate_a=a,
        candidate_b=b,
        defaults={
            "project": better.face_input.project,
            "face_input": better.face_input,
            "batch": batch,
            "is_gold": True,
            "gold_outcome": Outcome.A if a == better else Outcome.B,
            "open_slots": 0,
            "selection_reason": "gold",
        },
    )
    return pair


# --- candidates ---------------------------------------------------------------------------------------


def candidate_store(
    *, face_input: FaceInput, model_version: ModelVersion, seed: int, png: bytes
) -> Candidate:
    from annotation_web.storage import get_storage

    key = f"samples/{model_version.kind}-{model_version.name}-v{model_version.version}/{face_input.pk}/{seed}.png"
    get_storage().put(key, png, content_type="image/png")
    candidate, _ = Candidate.objects.get_or_create(
        face_input=face_input, model_version=model_version, seed=seed, defaults={"image_key": key}
    )
    return candidate


def classical_candidates_create(*, face_input: FaceInput) -> list[Candidate]:
    """Classical restorations of the LQ (bicubic + unsharp mask), registered as `classical` model versions."""
    from annotation_web import ml_bridge
    from annotation_web.storage import get_storage

    lq_png = get_storage().get(face_input.lq_key)
    candidates = []
    for level, png in ml_bridge.classical_restorations_png(lq_png):
        model_version = model_version_get_or_create(
            kind=ModelKind.CLASSICAL,
            name=f"bicubic-unsharp-{level:g}",
            description=f"Classical: bicubic smoothing + unsharp mask (amount {level:g}). Not a learned model.",
            config={"sharpen": level},
        )
        candidates.append(
            candidate_store(face_input=face_input, model_version=model_version, seed=0, png=png)
        )
    return candidates


def gold_pair_create_for_input(*, face_input: FaceInput) -> Pair | None:
    """The HQ original against a heavily degraded copy: the HQ is the known answer."""
    from annotation_web import ml_bridge
    from annotation_web.storage import get_storage

    if not face_input.hq_key:
        return None
    hq_png = get_storage().get(face_input.hq_key)
    original = model_version_get_or_create(
        kind=ModelKind.REFERENCE, name="hq-original", description="The clean original."
    )
    degraded = model_version_get_or_create(
        kind=ModelKind.REFERENCE,
        name="heavy-degradation",
        description="The original under the `heavy` preset.",
    )
    better = Candidate.objects.get_or_create(
        face_input=face_input, model_version=original, seed=0, defaults={"image_key": face_input.hq_key}
    )[0]
    worse_png = ml_bridge.heavily_degraded_png(
        hq_png, seed=face_input.pk, resolution=face_input.project.resolution
    )
    worse = candidate_store(face_input=face_input, model_version=degraded, seed=face_input.pk, png=worse_png)
    return gold_pair_create(better=better, worse=worse)
