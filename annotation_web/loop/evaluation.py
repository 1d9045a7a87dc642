"""The `evaluate` job kind: a candidate restorer against the one in use on the project's held-out inputs.

Both restorers restore the same inputs with the same seeds (deterministic sampling), so the comparison is paired:
PSNR against the HQ and the held-out evaluator of `rl_trainer.guard` (the oracle's noise-free score where the
HQ is known), which RL never optimises; the loop decides on promotion from these. Measured beside them, and
stored on the candidate's `ModelVersion.metrics["evaluation"]` with the inputs' ids (in the job's commit, so a
cancelled or superseded run writes nothing): SSIM and the perceptual distance against the HQ where it is known,
the solution entropy over the seeds, the learned reward of the reward model in use, and identity similarity
where face embeddings are available.

Beside the figures, a small gallery for people to look at (`metrics["evaluation"]["gallery"]`): for the first
`GALLERY_INPUTS` held-out inputs, one restoration by each restorer, sampled again with the evaluation's first
seed (`GALLERY_SEED`) and its deterministic sampling (`ml_bridge.restorer_held_out_scores` returns figures only),
stored as PNGs under `gallery/<candidate id>/<random>/` (written once; never under the artifact's prefix, which
holds the artifact's files only). The registry and compare pages show them to engineers and managers through
signed URLs; the LQ and HQ beside them are the inputs' own keys.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from annotation_web import ml_bridge
from annotation_web.accounts.models import User
from annotation_web.errors import ServiceError
from annotation_web.jobs.kinds import Progress, ShouldStop
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_commit, job_create
from annotation_web.labeling.models import FaceInput, Project
from annotation_web.loop.models import LoopPolicy
from annotation_web.loop.selectors import loop_policy_get, loop_state_get
from annotation_web.registry import selectors as registry_selectors
from annotation_web.registry.artifacts import artifact_local_dir
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import get_storage

EVALUATE = "evaluate"
# What an evaluation keeps of each restorer's measurement (ml_bridge.restorer_held_out_scores), by name.
MEASURES = (
    "psnr",
    "ssim",
    "perceptual",
    "perceptual_metric",
    "entropy",
    "learned_reward",
    "held_out",
    "evaluator",
    "win_rate_vs_first",
    "images",
    "hq_inputs",
)
# The gallery: how many held-out inputs get their restorations stored, and with which seed. A constant, not a
# setting: a page shows this many, and 8 small PNGs per restorer cost one more batch of sampling.
GALLERY_INPUTS = 8
GALLERY_SEED = 0


def restorer_baseline(version: ModelVersion) -> ModelVersion:
    """The root of a restorer's lineage: the version RL started from, generations ago (itself when it has no
    parent), against which the loop bounds the fidelity a chain of promotions may spend."""
    seen = {version.pk}
    while version.parent_id is not None and version.parent_id not in seen:
        seen.add(version.parent_id)
        version = ModelVersion.objects.get(pk=version.parent_id)
    return version


def evaluation_record(
    *,
    job: Job,
    in_use: dict[str, Any],
    candidate: dict[str, Any],
    reward_id: int | None,
    gallery: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What is stored on the candidate: its measures, the same of the restorer in use (`in_use`), what they
    were measured on (inputs, seeds, steps, the reward model of `learned_reward`, the job) and the gallery's
    image keys (`evaluation_gallery_store`; None when none was stored)."""
    params = job.params

    def measures(row: dict[str, Any]) -> dict[str, Any]:
        return {
            **{name: row.get(name) for name in MEASURES},
            "identity": row.get("identity_similarity"),
            "identity_metric": row.get("identity_metric"),
        }

    return {
        **measures(candidate),
        "inputs": [int(pk) for pk in params["input_ids"]],
        "seeds": int(params.get("seeds", 2)),
        "num_steps": int(params.get("num_steps", 20)),
        "against": int(params["in_use_id"]),
        "in_use": measures(in_use),
        # the lineage's root on the same inputs and seeds (None where the restorer in use is that root)
        "baseline_id": params.get("baseline_id"),
        "baseline": measures(baseline) if baseline is not None else None,
        "reward_id": reward_id,
        "job": job.pk,
        "gallery": gallery,
    }


def evaluation_gallery_store(
    *,
    job: Job,
    faces: list[FaceInput],
    lq_pngs: list[bytes],
    in_use: ModelVersion,
    candidate: ModelVersion,
    num_steps: int,
) -> dict[str, Any]:
    """Restore the first `GALLERY_INPUTS` of `faces` (their LQ bytes in `lq_pngs`) with both restorers, seed
    `GALLERY_SEED` and deterministic sampling (eta 0, as the evaluation samples), and store each image once
    under a fresh `gallery/<candidate id>/<random>/` prefix (a second run of the job never meets the first's
    keys). Returns what the evaluation record keeps: the keys per input, and how they were sampled."""
    chosen = faces[:GALLERY_INPUTS]
    if not chosen:
        return {
            "seed": GALLERY_SEED,
            "eta": 0.0,
            "num_steps": num_steps,
            "project": job.project_id,
            "images": [],
        }
    instructions = [face.instruction for face in chosen]
    restored = {
        role: ml_bridge.restorer_samples_png(
            artifact_dir=str(artifact_local_dir(prefix=version.artifact_key)),
            lq_pngs=lq_pngs[: len(chosen)],
            instructions=instructions,
            seeds=[GALLERY_SEED],
            num_steps=num_steps,
            eta=0.0,
        )
        for role, version in (("in_use", in_use), ("candidate", candidate))
    }
    storage = get_storage()
    prefix = f"gallery/{candidate.pk}/{uuid.uuid4().hex}"
    images = []
    for index, face in enumerate(chosen):
        row: dict[str, Any] = {"input": face.pk}
        for role, file_name in (("in_use", "in-use.png"), ("candidate", "candidate.png")):
            key = f"{prefix}/{face.pk}/{file_name}"
            storage.put_new(key, restored[role][index][0], content_type="image/png")
            row[role] = key
        images.append(row)
    return {
        "seed": GALLERY_SEED,
        "eta": 0.0,
        "num_steps": num_steps,
        "project": job.project_id,
        "images": images,
    }


def _baseline_outputs(
    *,
    baseline: ModelVersion | None,
    in_use: ModelVersion,
    candidate: ModelVersion,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The lineage root's id and measures among an evaluation's rows: its own third row, or the row of the
    restorer in use (or of the candidate) that is that root; nothing when neither is and none was measured."""
    if baseline is not None:
        return {"baseline_id": baseline.pk, "baseline": rows[2]}
    for version, row in ((in_use, rows[0]), (candidate, rows[1])):
        if version.parent_id is None:
            return {"baseline_id": version.pk, "baseline": row}
    return {}


def evaluation_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict[str, Any]:
    params = job.params
    in_use = registry_selectors.model_version_loadable(pk=params["in_use_id"], kind=ModelKind.RESTORER)
    candidate = registry_selectors.model_version_loadable(pk=params["candidate_id"], kind=ModelKind.RESTORER)
    reward = (
        registry_selectors.model_version_loadable(pk=params["reward_id"], kind=ModelKind.REWARD)
        if params.get("reward_id")
        else None
    )
    storage = get_storage()
    faces = list(FaceInput.objects.filter(project=job.project, pk__in=params["input_ids"]).order_by("pk"))
    if not faces:
        raise ServiceError("the project has no held-out inputs to evaluate on")
    inputs = [
        ml_bridge.RLInput(
            id=str(face.pk),
            lq_png=storage.get(face.lq_key),
            instruction=face.instruction,
            hq_png=storage.get(face.hq_key) if face.hq_key else None,
            degradation=face.degradation or None,
        )
        for face in faces
    ]
    progress(0, 2, f"evaluating {candidate} against {in_use} on {len(inputs)} held-out inputs")
    baseline = (
        registry_selectors.model_version_loadable(pk=params["baseline_id"], kind=ModelKind.RESTORER)
        if params.get("baseline_id")
        else None
    )
    compared = [in_use, candidate] + ([baseline] if baseline is not None else [])
    rows = ml_bridge.restorer_held_out_scores(
        artifact_dirs=[str(artifact_local_dir(prefix=v.artifact_key)) for v in compared],
        inputs=inputs,
        seeds=list(range(int(params.get("seeds", 2)))),
        num_steps=int(params.get("num_steps", 20)),
        reward_dir=str(artifact_local_dir(prefix=reward.artifact_key)) if reward else None,
        held_out_evaluator=str(params.get("held_out_evaluator", "perceptual")),
    )
    if should_stop():
        return {"in_use_id": in_use.pk, "candidate_id": candidate.pk, "stopped": True}
    progress(1, 2, f"in use {rows[0]}; candidate {rows[1]}")
    gallery = evaluation_gallery_store(
        job=job,
        faces=faces,
        lq_pngs=[one.lq_png for one in inputs],
        in_use=in_use,
        candidate=candidate,
        num_steps=int(params.get("num_steps", 20)),
    )
    if should_stop():
        return {"in_use_id": in_use.pk, "candidate_id": candidate.pk, "stopped": True}
    progress(2, 2, f"stored a gallery of {len(gallery['images'])} held-out inputs")
    record = evaluation_record(
        job=job,
        in_use=rows[0],
        candidate=rows[1],
        reward_id=reward.pk if reward else None,
        gallery=gallery,
        baseline=rows[2] if baseline is not None else None,
    )

    def store() -> dict[str, Any]:
        version = ModelVersion.objects.select_for_update().get(pk=candidate.pk)
        version.metrics = {**(version.metrics or {}), "evaluation": record}
        version.save(update_fields=["metrics"])
        return {
            "in_use_id": in_use.pk,
            "candidate_id": candidate.pk,
            "in_use": rows[0],
            "candidate": rows[1],
            **_baseline_outputs(baseline=baseline, in_use=in_use, candidate=candidate, rows=rows),
        }

    return job_commit(job, store)


def policy_held_out_evaluator(policy: LoopPolicy) -> str:
    """What the guard of the policy's RL runs watches (`RLConfig.held_out_evaluator`): evaluations judge the
    candidate by it. A policy whose RL settings no longer validate is judged by the perceptual default (its next
    RL job is refused with the reason)."""
    try:
        return str(
            ml_bridge.rl_config_validate(preset=policy.rl_preset, overrides=policy.rl_overrides)[
                "held_out_evaluator"
            ]
        )
    except ValueError:
        return "perceptual"


@transaction.atomic
def evaluation_job_create(
    *,
    project: Project,
    user: User | None,
    candidate_id: int,
    against_id: int | None = None,
    reward_id: int | None = None,
    seeds: int = 2,
    num_steps: int = 20,
    held_out_evaluator: str | None = None,
) -> Job:
    """Queue an `evaluate` job as the loop does: the candidate against `against_id` (the restorer in use when
    left out) on the project's held-out inputs, the learned reward from `reward_id` (the one in use when left
    out). The held-out inputs are those the loop chose (RL never saw them); a project the loop has not ticked
    yet has none, and the request is refused with that reason rather than evaluated on inputs RL trained on.
    `held_out_evaluator`: an `RLConfig.held_out_evaluator` name; left out, what the guard of the loop policy's RL
    runs watches (`policy_held_out_evaluator`), so that an engineer's evaluation judges as promotion does."""
    state = loop_state_get(project=project)
    in_use_id = against_id or state.restorer_id
    if in_use_id is None:
        raise ServiceError("no restorer in use to compare with: give against_id")
    if in_use_id == candidate_id:
        raise ServiceError(
            f"restorer {candidate_id} would be evaluated against itself: give another against_id"
        )
    held_out = list(state.held_out_input_ids or [])
    if not held_out:
        raise ServiceError(
            f"project {project.slug} has no held-out inputs yet: the loop chooses them on its first tick "
            "(it needs at least 3 inputs)"
        )
    compared_with = ModelVersion.objects.filter(pk=in_use_id).first()
    root = restorer_baseline(compared_with) if compared_with is not None else None
    params = {
        "candidate_id": candidate_id,
        "in_use_id": in_use_id,
        "baseline_id": root.pk if root is not None and root.pk not in (in_use_id, candidate_id) else None,
        "reward_id": reward_id if reward_id is not None else state.reward_id,
        "input_ids": held_out,
        "seeds": seeds,
        "num_steps": num_steps,
        "held_out_evaluator": held_out_evaluator
        or policy_held_out_evaluator(loop_policy_get(project=project)),
    }
    return job_create(kind=EVALUATE, project=project, user=user, params=params)
