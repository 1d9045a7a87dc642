"""The `evaluate` job kind: a candidate restorer against the one in use on the project's held-out inputs.

Both restorers restore the same inputs with the same seeds (deterministic sampling), so the comparison is paired:
PSNR against the HQ and the held-out evaluator of `rl_trainer.guard` (the oracle's noise-free score where the
HQ is known), which RL never optimises; the loop decides on promotion from these. Measured beside them, and
stored on the candidate's `ModelVersion.metrics["evaluation"]` with the inputs' ids (in the job's commit, so a
cancelled or superseded run writes nothing): SSIM and the perceptual distance against the HQ where it is known,
the solution entropy over the seeds, the learned reward of the reward model in use, and identity similarity
where face embeddings are available.
"""

from __future__ import annotations

from typing import Any

from annotation_web import ml_bridge
from annotation_web.errors import ServiceError
from annotation_web.jobs.kinds import Progress, ShouldStop
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_commit
from annotation_web.labeling.models import FaceInput
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


def evaluation_record(
    *, job: Job, in_use: dict[str, Any], candidate: dict[str, Any], reward_id: int | None
) -> dict[str, Any]:
    """What is stored on the candidate: its measures, the same of the restorer in use (`in_use`), and what they
    were measured on (inputs, seeds, steps, the reward model of `learned_reward`, the job)."""
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
        "reward_id": reward_id,
        "job": job.pk,
    }


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
    rows = ml_bridge.restorer_held_out_scores(
        artifact_dirs=[str(artifact_local_dir(prefix=v.artifact_key)) for v in (in_use, candidate)],
        inputs=inputs,
        seeds=list(range(int(params.get("seeds", 2)))),
        num_steps=int(params.get("num_steps", 20)),
        reward_dir=str(artifact_local_dir(prefix=reward.artifact_key)) if reward else None,
    )
    if should_stop():
        return {"in_use_id": in_use.pk, "candidate_id": candidate.pk, "stopped": True}
    progress(2, 2, f"in use {rows[0]}; candidate {rows[1]}")
    record = evaluation_record(
        job=job, in_use=rows[0], candidate=rows[1], reward_id=reward.pk if reward else None
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
        }

    return job_commit(job, store)
