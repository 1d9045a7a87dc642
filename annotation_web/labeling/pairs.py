"""Building the queue: projects and their overlap, pairs, gold pairs, and the candidates they compare.

Functions marked `@transaction.atomic` are one transaction each. `candidate_store`,
`classical_candidates_create` and `gold_pair_create_for_input` are not: they write files first, then each
row in its own short transaction, so a crash in between leaves an orphan file under a random key, never a
row pointing at nothing. Candidate files are written once (`put_new`) and never replaced.
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from collections import Counter
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Value
from django.utils import timezone

from annotation_web.accounts.models import User
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.models import (
    Candidate,
    FaceInput,
    Judgment,
    Outcome,
    Pair,
    Project,
)
from annotation_web.labeling.queue import open_slots_recomputed, pair_overlap
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
    locked.overlap = overlap
    locked.overlap_changed_at = timezone.now()
    locked.save(update_fields=["overlap", "overlap_changed_at"])
    pairs = Pair.objects.filter(project=locked, is_gold=False)
    list(pairs.select_for_update().order_by("pk").values_list("pk"))  # then count in a fresh statement
    # Recomputed from what is judged and held, never shifted by the change: a pair lowered below what it
    # already has keeps 0 slots (not a debt the release of an expired reservation would pay back as a slot).
    pairs.update(open_slots=open_slots_recomputed(overlap=Value(overlap)))
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
    overlap: int | None = None,
) -> Pair:
    """`overlap`: judgments wanted of this pair at least (the project's overlap when higher); a pair that
    exists already keeps its own."""
    if overlap is not None and overlap < 1:
        raise LabelingError("a pair's overlap must be at least 1")
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
            "overlap": overlap,
            "open_slots": pair_overlap(project_overlap=project.overlap, own=overlap),
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


def candidate_image_key() -> str:
    """A fresh, meaningless key for a candidate image: the same shape for every model, seed, input and for
    gold pairs' references, so nothing an annotator could see tells them apart."""
    return f"c/{uuid.uuid4().hex}.png"


def candidate_store(
    *, face_input: FaceInput, model_version: ModelVersion, seed: int, png: bytes, generation: str = ""
) -> Candidate:
    """The candidate of (input, model, seed, generation), its image written once under a random key.

    Asking again returns the stored candidate and leaves its bytes alone: what was judged never changes."""
    from annotation_web.storage import get_storage

    found = Candidate.objects.filter(
        face_input=face_input, model_version=model_version, seed=seed, generation=generation
    ).first()
    if found is not None:
        return found
    storage = get_storage()
    key = candidate_image_key()
    storage.put_new(key, png, content_type="image/png")
    try:
        with transaction.atomic():
            return Candidate.objects.create(
                face_input=face_input,
                model_version=model_version,
                seed=seed,
                generation=generation,
                image_key=key,
            )
    except IntegrityError:
        # Another worker stored the same candidate first: keep theirs, drop the file nobody points at.
        storage.delete(key)
        return Candidate.objects.get(
            face_input=face_input, model_version=model_version, seed=seed, generation=generation
        )


RANDOM_CANDIDATE_KEY = re.compile(r"c/[0-9a-f]{32}\.png")


def candidates_rekey(*, project: Project | None = None) -> int:
    """Copy every candidate image stored under a telling key (`samples/<model>/<input>/<seed>.png`, a gold
    pair's `inputs/…/hq.png`, from before keys were random) to a fresh random key; returns how many moved.

    The old files stay (an input's `hq.png` is still the input's); only the candidate rows point elsewhere,
    each updated on its own after its copy is written, so a crash leaves at worst an unused copy."""
    from annotation_web.storage import get_storage

    storage = get_storage()
    candidates = Candidate.objects.order_by("pk")
    if project is not None:
        candidates = candidates.filter(face_input__project=project)
    moved = 0
    for pk, old_key in candidates.values_list("pk", "image_key").iterator():
        if RANDOM_CANDIDATE_KEY.fullmatch(old_key):
            continue
        new_key = candidate_image_key()
        storage.put_new(new_key, storage.get(old_key), content_type="image/png")
        moved += Candidate.objects.filter(pk=pk, image_key=old_key).update(image_key=new_key)
    return moved


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
    # A copy under a candidate key: the HQ is served exactly like any candidate, never from `inputs/…/hq.png`.
    better = candidate_store(face_input=face_input, model_version=original, seed=0, png=hq_png)
    worse_png = ml_bridge.heavily_degraded_png(
        hq_png, seed=face_input.pk, resolution=face_input.project.resolution
    )
    worse = candidate_store(face_input=face_input, model_version=degraded, seed=face_input.pk, png=worse_png)
    return gold_pair_create(better=better, worse=worse)


# --- gold from consensus ------------------------------------------------------------------------------


def trusted_annotators(
    *, project: Project, min_gold_answered: int = 5, min_gold_accuracy: float = 0.8
) -> list[User]:
    """Annotators who answered at least `min_gold_answered` gold pairs of the project, enough of them right."""
    rows = (
        Judgment.objects.filter(pair__project=project, is_gold=True, gold_correct__isnull=False)
        .values("annotator_id")
        .annotate(answered=Count("pk"), correct=Count("pk", filter=Q(gold_correct=True)))
    )
    ids = [
        row["annotator_id"]
        for row in rows
        if row["answered"] >= min_gold_answered and row["correct"] / row["answered"] >= min_gold_accuracy
    ]
    return list(User.objects.filter(pk__in=ids).order_by("pk"))


@transaction.atomic
def gold_pairs_from_consensus(
    *,
    project: Project,
    annotators: Sequence[User] | None = None,
    min_judgments: int = 3,
    min_share: float = 0.75,
) -> list[Pair]:
    """Turn ordinary pairs that at least `min_judgments` trusted annotators judged, with a clear majority
    (a share of at least `min_share` for A or for B), into gold pairs whose answer is that majority.

    Gold made this way is an ordinary pair of model candidates, not "HQ against a heavy degradation", so a
    careful annotator cannot tell gold from the rest by how it looks. `annotators` defaults to
    `trusted_annotators`. The pair stops taking slots (gold holds none); its earlier judgments are marked
    gold with no score (they made the answer; they are not a test of the annotator). One transaction.
    """
    if min_judgments < 1 or not 0.5 < min_share <= 1:
        raise LabelingError("min_judgments must be positive and min_share in (0.5, 1]")
    trusted = list(annotators) if annotators is not None else trusted_annotators(project=project)
    if not trusted:
        return []
    votes: dict[int, Counter[str]] = {}
    for pair_id, outcome in Judgment.objects.filter(
        pair__project=project,
        pair__is_gold=False,
        annotator__in=trusted,
        outcome__in=[Outcome.A, Outcome.B, Outcome.TIE, Outcome.BOTH_BAD],
    ).values_list("pair_id", "outcome"):
        votes.setdefault(pair_id, Counter())[outcome] += 1
    made = []
    for pair_id, counts in sorted(votes.items()):
        total = sum(counts.values())
        outcome, top = counts.most_common(1)[0]
        if total < min_judgments or top / total < min_share or outcome not in (Outcome.A, Outcome.B):
            continue
        pair = Pair.objects.select_for_update().get(pk=pair_id)
        if pair.is_gold:
            continue
        pair.is_gold = True
        pair.gold_outcome = outcome
        pair.open_slots = 0
        pair.selection_reason = pair.selection_reason or "consensus"
        pair.save(update_fields=["is_gold", "gold_outcome", "open_slots", "selection_reason"])
        Judgment.objects.filter(pair=pair).update(is_gold=True, gold_correct=None)
        made.append(pair)
    return made
