"""The `evaluate` job kind: a candidate restorer against the one in use on the project's held-out inputs.

Both restorers restore the same inputs with the same seeds (deterministic sampling), so the comparison is paired:
PSNR against the HQ and the held-out evaluator of `rl_trainer.guard` (the oracle's noise-free score where the
HQ is known), which RL never optimises. The loop decides on promotion from the job's outputs.
"""

from __future__ import annotations

from typing import Any

from annotation_web import ml_bridge
from annotation_web.errors import ServiceError
from annotation_web.jobs.kinds import Progress, ShouldStop
from annotation_web.jobs.models import Job
from annotation_web.labeling.models import FaceInput
from annotation_web.registry import selectors as registry_selectors
from annotation_web.registry.artifacts import artifact_local_dir
from annotation_web.registry.models import ModelKind
from annotation_web.storage import get_storage

EVALUATE = "evaluate"


def evaluation_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict[str, Any]:
    params = job.params
    in_use = registry_selectors.model_version_loadable(pk=params["in_use_id"], kind=ModelKind.RESTORER)
    candidate = registry_selectors.model_version_loadable(pk=params["candidate_id"], kind=ModelKind.RESTORER)
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
    )
    if should_stop():
        return {"in_use_id": in_use.pk, "candidate_id": candidate.pk, "stopped": True}
    progress(2, 2, f"in use {rows[0]}; candidate {rows[1]}")
    return {"in_use_id": in_use.pk, "candidate_id": candidate.pk, "in_use": rows[0], "candidate": rows[1]}
