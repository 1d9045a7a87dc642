"""The ML loop as jobs: candidates from a restorer, reward-model training on the judgments, RL fine-tuning.

Each `*_run` function is what a job of that kind does (registered as the kind's runner in
`TrainingConfig.ready()`, run by `jobs` in a Celery worker); each `*_job_create` validates a request and queues
the job. Lineage goes into `ModelVersion.parent`, `ModelVersion.config["lineage"]` and the job's outputs.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from PIL import Image

from annotation_web import ml_bridge
from annotation_web.accounts.models import User
from annotation_web.jobs.kinds import Progress, ShouldStop
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_commit, job_create, job_record_event
from annotation_web.labeling import selectors
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.models import (
    EDIT_MARK,
    Candidate,
    FaceInput,
    Judgment,
    JudgmentSnapshot,
    Pair,
    Project,
)
from annotation_web.labeling.pairs import candidate_store, pair_create
from annotation_web.labeling.snapshots import judgment_snapshot_create, judgment_snapshot_rows
from annotation_web.registry import selectors as registry_selectors
from annotation_web.registry.artifacts import artifact_local_dir
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from annotation_web.storage import LocalStorage, get_storage

# The job kinds of the ML loop (registered in TrainingConfig.ready()).
GENERATE = "generate"
TRAIN_REWARD = "train_reward"
TRAIN_RL = "train_rl"
TRAIN_RESTORER = "train_restorer"
# Two candidates whose mean absolute difference is below this (in 0-255 levels) look the same to a person: such
# a pair teaches nothing (deterministic sampling made 76 of 80 such pairs "tie"), so it is never queued.
MIN_PAIR_DIFFERENCE = 0.5
# Other versions of an input tried for a cross-version pair before giving up on the input.
CROSS_VERSION_TRIES = 8
# The overlap of the pairs a generation keeps for measuring agreement (`agreement_share`).
AGREEMENT_OVERLAP = 2


def _model_version(pk: int, kind: str) -> ModelVersion:
    return registry_selectors.model_version_loadable(pk=pk, kind=kind)


def _project(job: Job) -> Project:
    if job.project is None:
        raise LabelingError(f"{job.kind} job {job.pk} has no project")
    return job.project


# --- generation ----------------------------------------------------------------------------------------


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def images_distinguishable(a_png: bytes, b_png: bytes) -> bool:
    """Whether a person could tell the two images apart (mean absolute difference ≥ MIN_PAIR_DIFFERENCE)."""
    a, b = _pixels(a_png), _pixels(b_png)
    return a.shape != b.shape or float(np.abs(a - b).mean()) >= MIN_PAIR_DIFFERENCE


def _distinct(candidates: dict[str, bytes]) -> dict[str, bytes]:
    """The candidates minus those indistinguishable from an earlier one (pair selection never sees twins)."""
    kept: dict[str, bytes] = {}
    for key, png in candidates.items():
        if all(images_distinguishable(png, other) for other in kept.values()):
            kept[key] = png
    return kept


def cross_version_order(inputs: list[FaceInput], *, seed: int, job_id: int) -> list[FaceInput]:
    """The inputs in the order a generation offers them to cross-version pairs: shuffled by the job's seed and
    id, so that the leaderboard's judgments spread over the project's faces. In the inputs' own order a budget
    of 15 took the same first 15 faces of 40 every round (benchmarks/results/loop_reward_tolerance.txt), and
    the leaderboard ranked the versions by those faces alone."""
    order = np.random.default_rng([seed, job_id]).permutation(len(inputs))
    return [inputs[i] for i in order]


def _cross_version_pairs(
    *,
    inputs: list[FaceInput],
    new: dict[str, Candidate],
    restorer: ModelVersion,
    other_id: int | None,
    count: int,
    batch: str,
) -> tuple[list[int], int]:
    """Up to `count` pairs of a new candidate against one of version `other_id` on the same input (the
    new-vs-in-use comparisons), or, without `other_id`, against the newest other version's candidate that differs
    from it visibly; returns (pair ids, inputs whose other candidates were all indistinguishable)."""
    storage = get_storage()
    pair_ids: list[int] = []
    refused = 0
    for face_input in inputs:
        if len(pair_ids) >= count:
            break
        mine = next((c for c in new.values() if c.face_input_id == face_input.pk), None)
        # the other versions' own samples: their edits (made after them, so the newest) would pit a sample
        # against an unsharp mask and credit the mask to its version
        others = (
            Candidate.objects.filter(face_input=face_input)
            .exclude(model_version=restorer)
            .exclude(generation__contains=EDIT_MARK)
        )
        if other_id is not None:
            others = others.filter(model_version_id=other_id)
        if mine is None:
            continue
        # The newest candidate of the newest other version that a person can tell apart from the new one (an RL
        # step may change a restorer by less than a grey level: its parent's candidates are twins, older ones not).
        mine_png = storage.get(mine.image_key)
        theirs, tried = None, set()
        for other in others.order_by("-pk").iterator():
            if other.model_version_id in tried:
                continue
            if images_distinguishable(mine_png, storage.get(other.image_key)):
                theirs = other
                break
            tried.add(other.model_version_id)
            if len(tried) >= CROSS_VERSION_TRIES:
                break
        if theirs is None:
            refused += others.exists()
            continue
        pair = pair_create(a=mine, b=theirs, batch=batch, selection_reason="cross_version")
        pair_ids.append(pair.pk)
    return pair_ids, refused


def _edit_generation(generation: str, strength: float) -> str:
    """The generation tag of the candidates that are edits of a sample (unsharp mask of `strength`)."""
    return f"{generation}{EDIT_MARK}{strength:+g}"


def generation_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict:
    """Sample K candidates per input with a restorer version, then queue the pairs that teach most.

    A stop (cancel) between inputs ends the job with the candidates made so far and no pairs; the pairs are
    queued in one transaction with the job's success (`job_commit`), so they are all there or none."""
    params = job.params
    restorer = _model_version(params["restorer_id"], ModelKind.RESTORER)
    reward = _model_version(params["reward_id"], ModelKind.REWARD) if params.get("reward_id") else None
    inputs = list(FaceInput.objects.filter(project=job.project, pk__in=params["input_ids"]).order_by("pk"))
    if not inputs:
        raise LabelingError("none of the given inputs belong to this project")
    storage = get_storage()
    generation = f"job-{job.pk}"
    seeds = [int(params.get("seed", 0)) * 1000 + k for k in range(int(params.get("samples_per_input", 4)))]
    artifact_dir = str(artifact_local_dir(prefix=restorer.artifact_key))
    edit_strengths = [float(x) for x in params.get("edit_strengths", [])]
    candidate_sets = []
    created = twins = edited = 0
    for index, face_input in enumerate(inputs, start=1):
        lq_png = storage.get(face_input.lq_key)
        pngs = ml_bridge.restorer_samples_png(
            artifact_dir=artifact_dir,
            lq_pngs=[lq_png],
            instructions=[face_input.instruction],
            seeds=seeds,
            num_steps=int(params.get("num_steps", 20)),
            eta=float(params.get("eta", 0.0)),
        )[0]
        candidates = {}
        for seed, png in zip(seeds, pngs):
            # Per job: another job with the same restorer and seed but other settings (steps, eta) makes new
            # candidates beside these, never new bytes under images that may have been judged.
            candidate = candidate_store(
                face_input=face_input, model_version=restorer, seed=seed, png=png, generation=generation
            )
            candidates[candidate.image_key] = png
            created += 1
        if edit_strengths:
            first_seed, first_png = seeds[0], pngs[0]
            for strength, png in zip(
                edit_strengths,
                ml_bridge.edited_pngs(
                    first_png, strengths=edit_strengths, sigma=float(params.get("edit_sigma", 1.0))
                ),
            ):
                candidate = candidate_store(
                    face_input=face_input,
                    model_version=restorer,
                    seed=first_seed,
                    png=png,
                    generation=_edit_generation(generation, strength),
                )
                candidates[candidate.image_key] = png
                edited += 1
        distinct = _distinct(candidates)
        twins += len(candidates) - len(distinct)
        candidate_sets.append((str(face_input.pk), lq_png, distinct))
        progress(index, len(inputs), f"sampled {len(seeds)} candidates for input {face_input.pk}")
        if should_stop():
            return {
                "candidates": created,
                "pair_ids": [],
                "stopped_after_inputs": index,
                "restorer_id": restorer.pk,
            }
    budget = int(params.get("pairs_budget", len(inputs) * 2))
    cross_id = params.get("cross_version_restorer_id")
    cross_count = round(budget * float(params.get("cross_version_fraction", 0.0))) if cross_id else 0
    # `cross_version_fill`: when one restorer's samples are too alike to pair (a near-deterministic restorer),
    # the rest of the budget pairs them with other versions' candidates of the same inputs instead.
    cross_fill = bool(params.get("cross_version_fill", False))
    pairable = [entry for entry in candidate_sets if len(entry[2]) >= 2]
    # Pair-selection options (`reward_model.selection.select_pairs`): the per-input cap, given as is or as
    # `spread` times the even share of this batch over the inputs that can be paired, and the judgments each
    # pair of these candidates already has (a pair asked again must stay much more informative than the rest).
    max_per_input = params.get("max_per_input")
    if params.get("spread") is not None and pairable:
        max_per_input = ml_bridge.pair_selection_cap(
            spread=float(params["spread"]), budget=budget - cross_count, inputs=len(pairable)
        )
    keys = [key for _, _, pngs in pairable for key in pngs]
    label_counts = {
        (a_key, b_key): count
        for a_key, b_key, count in Pair.objects.filter(
            candidate_a__image_key__in=keys, candidate_b__image_key__in=keys, judgment_count__gt=0
        ).values_list("candidate_a__image_key", "candidate_b__image_key", "judgment_count")
    }
    choices = (
        ml_bridge.choose_pairs(
            candidate_sets=pairable,
            reward_dir=str(artifact_local_dir(prefix=reward.artifact_key)) if reward else None,
            budget=budget - cross_count,
            random_fraction=float(params.get("random_fraction", 0.2)),
            seed=int(params.get("seed", 0)),
            label_counts=label_counts,
            max_per_input=max_per_input,
            acquisition=params.get("acquisition", "bald"),
        )
        if pairable
        else []
    )
    by_key = {
        c.image_key: c
        for c in Candidate.objects.filter(
            face_input__in=inputs,
            model_version=restorer,
            generation__in=[generation] + [_edit_generation(generation, x) for x in edit_strengths],
        )
    }
    # New-vs-other-version pairs compare what the versions restore: samples, never an edit of one.
    samples_by_key = {key: c for key, c in by_key.items() if c.generation == generation}

    # `agreement_share` of the chosen pairs are asked of two annotators (overlap 2), drawn by the job's seed,
    # so that agreement between annotators stays measured whatever the project's overlap.
    share = float(params.get("agreement_share", 0.0))
    twice = set(
        np.random.default_rng(int(params.get("seed", 0)))
        .permutation(len(choices))[: round(share * len(choices))]
        .tolist()
    )

    def queue_pairs() -> dict:
        pair_ids, refused = [], 0
        for index, choice in enumerate(choices):
            a_png, b_png = candidate_sets_png(candidate_sets, choice)
            if not images_distinguishable(a_png, b_png):
                refused += 1
                continue
            pair = pair_create(
                a=by_key[choice.a_key],
                b=by_key[choice.b_key],
                batch=params.get("batch", f"gen-{job.pk}"),
                selection_reason=choice.reason,
                selection_score=choice.score,
                overlap=AGREEMENT_OVERLAP if index in twice else None,
            )
            pair_ids.append(pair.pk)
        cross_inputs = cross_version_order(inputs, seed=int(params.get("seed", 0)), job_id=job.pk)
        if cross_count:
            cross_ids, cross_refused = _cross_version_pairs(
                inputs=cross_inputs,
                new=samples_by_key,
                restorer=restorer,
                other_id=int(cross_id),
                count=cross_count,
                batch=f"gen-{job.pk}-cross",
            )
            pair_ids += cross_ids
            refused += cross_refused
        if cross_fill and len(pair_ids) < budget:
            paired = set(Pair.objects.filter(pk__in=pair_ids).values_list("face_input_id", flat=True))
            fill_ids, fill_refused = _cross_version_pairs(
                inputs=[i for i in cross_inputs if i.pk not in paired] or cross_inputs,
                new=samples_by_key,
                restorer=restorer,
                other_id=None,
                count=budget - len(pair_ids),
                batch=f"gen-{job.pk}-cross",
            )
            pair_ids += fill_ids
            refused += fill_refused
        if refused or twins:
            progress(
                len(inputs),
                len(inputs),
                f"{twins} candidates indistinguishable from another of their input left out of pairs; "
                f"{refused} pairs refused as indistinguishable",
            )
        return {
            "candidates": created,
            "pair_ids": pair_ids,
            "refused_indistinguishable": refused,
            "indistinguishable_candidates": twins,
            "edited_candidates": edited,
            "restorer_id": restorer.pk,
            "reward_id": reward.pk if reward else None,
        }

    return job_commit(job, queue_pairs)


def candidate_sets_png(
    candidate_sets: list[tuple[str, bytes, dict[str, bytes]]], choice: ml_bridge.PairChoice
) -> tuple[bytes, bytes]:
    pngs = next(c for input_id, _, c in candidate_sets if input_id == choice.input_id)
    return pngs[choice.a_key], pngs[choice.b_key]


# --- reward model ---------------------------------------------------------------------------------------


def _materialise_images(keys: set[str], root: Path) -> Path:
    """The images a training run reads, as files under one folder keyed like the storage."""
    storage = get_storage()
    if isinstance(storage, LocalStorage):
        return storage.root
    for key in keys:
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get(key))
    return root


def _reporter(job: Job, progress: Progress) -> ml_bridge.TrainingReports:
    """The ML packages' progress (step, total, metrics) and log lines (a resume, a guard's stop) as the job's
    progress bar and log tail."""

    def on_progress(step: int, total: int, metrics: dict) -> None:
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, int | float)}
        progress(step, total, f"step {step}/{total} {json.dumps(shown)}")

    def on_log(line: str) -> None:
        job_record_event(job_id=job.pk, line=line)

    return ml_bridge.TrainingReports(on_progress=on_progress, on_log=on_log)


def _run_dir(kind: str, job: Job) -> Path:
    """A run's folder: it outlives a killed worker so that the job's next attempt resumes from its checkpoint
    (named by the job's `run_id`, fixed when it was queued; older jobs by their id)."""
    folder = Path(settings.VAR_DIR) / kind / str(job.params.get("run_id") or f"job-{job.pk}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _snapshot_lineage(snapshot: JudgmentSnapshot) -> dict:
    return {
        "snapshot_id": snapshot.pk,
        "snapshot_number": snapshot.number,
        "snapshot_sha256": snapshot.sha256,
    }


def reward_training_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict:
    params = job.params
    project = _project(job)
    last_judgment = int(params["up_to_judgment_id"])
    work = _run_dir("reward-runs", job)
    export = work / "judgments.jsonl"
    # Exactly the frozen snapshot the job was queued with (jobs queued before snapshots: the export up to its id).
    snapshot = JudgmentSnapshot.objects.filter(pk=params.get("snapshot_id")).first()
    rows = (
        judgment_snapshot_rows(snapshot)
        if snapshot is not None
        else (
            r
            for r in selectors.preference_export_rows(project=project)
            if int(r["judgment_id"]) <= last_judgment
        )
    )
    keys: set[str] = set()
    count = 0
    with export.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
            keys.update((row["lq_key"], row["a_key"], row["b_key"]))
            count += 1
    if count == 0:
        raise LabelingError("the project has no judgments to train a reward model on")
    progress(0, int(params.get("max_steps", 2000)), f"exported {count} judgments")
    images_root = _materialise_images(keys, work / "images")
    out_dir = work / "artifact"
    metrics = ml_bridge.reward_model_train(
        judgments_path=str(export),
        images_root=str(images_root),
        out_dir=str(out_dir),
        size=params.get("size", "small"),
        max_steps=int(params.get("max_steps", 2000)),
        seed=int(params.get("seed", 0)),
        reports=_reporter(job, progress),
        should_stop=should_stop,
    )
    if metrics is None:
        return {"judgments": count, "stopped": True}
    comparison = _compare_with_in_use(params=params, export=export, images_root=images_root, out_dir=out_dir)

    def register() -> dict:
        version = model_version_register(
            kind=ModelKind.REWARD,
            name=params.get("name", project.slug),
            folder=out_dir,
            lineage={
                "project": project.slug,
                "judgments": count,
                "up_to_judgment_id": last_judgment,
                "job": job.pk,
                **(_snapshot_lineage(snapshot) if snapshot is not None else {}),
            },
            description=f"Reward model trained on {count} judgments of {project.slug}",
            job_id=job.pk,
        )
        progress(
            int(params.get("max_steps", 2000)), int(params.get("max_steps", 2000)), f"registered {version}"
        )
        outputs = {"reward_id": version.pk, "judgments": count, "metrics": version.metrics}
        if comparison is not None:
            outputs["comparison"] = comparison
        if snapshot is not None:
            outputs["snapshot"] = {
                "number": snapshot.number,
                "sha256": snapshot.sha256,
                "count": snapshot.count,
            }
        return outputs

    return job_commit(job, register)


# --- RL ------------------------------------------------------------------------------------------------


def _compare_with_in_use(*, params: dict, export: Path, images_root: Path, out_dir: Path) -> dict | None:
    """The new reward model and the one in use (`compare_with_reward_id`) on the same held-out judgments
    (`reward_model.compare`): of the snapshot, those on the inputs the new one held out that the one in use did
    not train on, on faces it held out too or judged after it was trained."""
    other_id = params.get("compare_with_reward_id")
    other = ModelVersion.objects.filter(pk=other_id, kind=ModelKind.REWARD).first() if other_id else None
    if other is None:
        return None
    trained_up_to = int((other.config.get("lineage") or {}).get("up_to_judgment_id", 0))
    unseen = export.parent / "unseen-by-in-use.jsonl"
    with export.open() as rows, unseen.open("w") as kept:
        for line in rows:
            if int(json.loads(line)["judgment_id"]) > trained_up_to:
                kept.write(line)
    shared = ml_bridge.reward_models_compare(
        new_dir=str(out_dir),
        in_use_dir=str(artifact_local_dir(prefix=other.artifact_key)),
        trained_on_path=str(export),
        unseen_path=str(unseen),
        images_root=str(images_root),
    )
    return {"in_use_id": other.pk, "judged_after_id": trained_up_to, **shared}


def _write_manifest(project: Project, folder: Path, exclude_ids: list[int] | None = None) -> Path:
    """The project's inputs as an RL inputs manifest (written by the ML package, through the bridge), less
    `exclude_ids` (the loop's held-out inputs, which RL never sees)."""
    storage = get_storage()
    inputs = [
        ml_bridge.RLInput(
            id=str(face_input.pk),
            lq_png=storage.get(face_input.lq_key),
            instruction=face_input.instruction,
            hq_png=storage.get(face_input.hq_key) if face_input.hq_key else None,
            degradation=face_input.degradation or None,
        )
        for face_input in FaceInput.objects.filter(project=project)
        .exclude(pk__in=exclude_ids or [])
        .order_by("pk")
    ]
    if len(inputs) < 2:
        raise LabelingError("RL needs at least two inputs in the project (one is held out for evaluation)")
    return Path(ml_bridge.rl_manifest_write(folder=str(folder), inputs=inputs))


def _check_resolution(restorer: ModelVersion, project: Project) -> None:
    resolution = restorer.config.get("resolution")
    if resolution is not None and resolution != project.resolution:
        raise LabelingError(
            f"{restorer} works at {resolution} px but project {project.slug} keeps its faces at {project.resolution} px"
        )


def rl_training_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict:
    params = job.params
    policy = _model_version(params["restorer_id"], ModelKind.RESTORER)
    reward = _model_version(params["reward_id"], ModelKind.REWARD)
    project = _project(job)
    _check_resolution(policy, project)
    run_dir = _run_dir("rl-runs", job)
    manifest = _write_manifest(project, run_dir, params.get("exclude_input_ids"))
    summary = ml_bridge.rl_fine_tune(
        policy_dir=str(artifact_local_dir(prefix=policy.artifact_key)),
        reward_dir=str(artifact_local_dir(prefix=reward.artifact_key)),
        manifest_path=str(manifest),
        out_dir=str(run_dir / "artifact"),
        preset=params.get("preset", "tiny"),
        overrides=params.get("overrides", {}),
        reports=_reporter(job, progress),
        should_stop=should_stop,
    )
    if summary.get("stop_reason") == "cancelled":
        return {"summary": summary, "stopped": True}

    def register() -> dict:
        version = model_version_register(
            kind=ModelKind.RESTORER,
            name=policy.name,
            folder=run_dir / "artifact",
            parent=policy,
            lineage={
                "parent_restorer_id": policy.pk,
                "reward_id": reward.pk,
                "project": project.slug,
                "job": job.pk,
            },
            description=f"RL fine-tune of {policy} against {reward}: {summary.get('message', '')}",
            job_id=job.pk,
        )
        return {"restorer_id": version.pk, "summary": summary}

    return job_commit(job, register)


# --- supervised restorer training ----------------------------------------------------------------------


def restorer_training_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict:
    """The first restorer of a project: supervised training on synthetic faces (`restorer.train`), resumed
    from the run folder's latest checkpoint when a worker died mid-run, registered as the next version."""
    params = job.params
    project = _project(job)
    run_dir = _run_dir("restorer-runs", job)
    metrics = ml_bridge.restorer_train(
        config=params["config"],
        overrides=params.get("overrides", {}),
        out_dir=str(run_dir),
        reports=_reporter(job, progress),
        should_stop=should_stop,
    )
    if metrics is None:
        return {"stopped": True}

    def register() -> dict:
        version = model_version_register(
            kind=ModelKind.RESTORER,
            name=params.get("name") or project.slug,
            folder=run_dir,
            lineage={"project": project.slug, "job": job.pk, "train_config": params["config"]},
            description=f"Supervised restorer ({params['config']}, {metrics.get('steps')} steps) for {project.slug}",
            job_id=job.pk,
        )
        return {
            "restorer_id": version.pk,
            "metrics": {k: v for k, v in metrics.items() if k != "train_config"},
        }

    return job_commit(job, register)


@transaction.atomic
def restorer_training_job_create(
    *,
    project: Project,
    user: User | None,
    config: str = "tiny",
    overrides: dict | None = None,
    name: str = "",
) -> Job:
    try:
        resolved = ml_bridge.restorer_train_config(config=config, overrides=overrides or {})
    except ValueError as exc:
        raise LabelingError(str(exc)) from exc
    if resolved["model"]["resolution"] != project.resolution:
        raise LabelingError(
            f"training config {config!r} makes a {resolved['model']['resolution']} px restorer but project "
            f"{project.slug} keeps its faces at {project.resolution} px"
        )
    params = {"run_id": uuid.uuid4().hex, "config": config, "overrides": overrides or {}, "name": name}
    return job_create(kind=TRAIN_RESTORER, project=project, user=user, params=params)


# --- queueing jobs -------------------------------------------------------------------------------------


@transaction.atomic
def generation_job_create(
    *,
    project: Project,
    user: User | None,
    restorer_id: int,
    reward_id: int | None = None,
    input_ids: list[int] | None = None,
    samples_per_input: int = 4,
    pairs_budget: int | None = None,
    random_fraction: float = 0.2,
    num_steps: int = 20,
    eta: float = 0.0,
    seed: int = 0,
    cross_version_restorer_id: int | None = None,
    cross_version_fraction: float = 0.0,
    cross_version_fill: bool = False,
    acquisition: str = "bald",
    max_per_input: int | None = None,
    spread: float | None = None,
    agreement_share: float = 0.0,
    edit_strengths: list[float] | None = None,
    edit_sigma: float = 1.0,
) -> Job:
    """`acquisition`, `max_per_input` and `spread` are pair-selection options (`ml_bridge.choose_pairs`):
    the informative score, and the cap on informative pairs per input, fixed or as `spread` times the even
    share of the batch (computed by the run over the inputs it can pair).

    `edit_strengths` (with `edit_sigma`): beside each input's samples, unsharp masks of its first sample at
    these strengths (`ml_bridge.edited_pngs`), candidates of the same version that pair selection may pair with
    the samples and each other: the proposals a reward-ranked RL run will rank (`ml_bridge.rl_proposal_edits`)."""
    _model_version(restorer_id, ModelKind.RESTORER)
    if reward_id is not None:
        _model_version(reward_id, ModelKind.REWARD)
    if not 2 <= samples_per_input <= 16:
        raise LabelingError("samples_per_input must be between 2 and 16")
    if not 0.0 <= random_fraction <= 1.0:
        raise LabelingError("random_fraction must be between 0 and 1")
    if not 0.0 <= agreement_share <= 1.0:
        raise LabelingError("agreement_share must be between 0 and 1")
    try:
        ml_bridge.pair_selection_validate(acquisition=acquisition, max_per_input=max_per_input, spread=spread)
    except ValueError as exc:
        raise LabelingError(str(exc)) from exc
    edits = [float(x) for x in edit_strengths or []]
    if len(edits) > ml_bridge.MAX_EDITS or any(
        x == 0.0 or abs(x) > ml_bridge.EDIT_STRENGTH_LIMIT for x in edits
    ):
        raise LabelingError(
            f"edit_strengths: at most {ml_bridge.MAX_EDITS} strengths, each non-zero and within "
            f"±{ml_bridge.EDIT_STRENGTH_LIMIT:g}"
        )
    if edits and not 0.2 <= edit_sigma <= 4.0:
        raise LabelingError("edit_sigma must be between 0.2 and 4 pixels")
    ids = input_ids or list(project.inputs.values_list("pk", flat=True))
    if not ids:
        raise LabelingError("the project has no inputs; import faces first")
    params: dict[str, Any] = {
        "restorer_id": restorer_id,
        "reward_id": reward_id,
        "input_ids": ids,
        "samples_per_input": samples_per_input,
        "pairs_budget": pairs_budget or 2 * len(ids),
        "random_fraction": random_fraction,
        "num_steps": num_steps,
        "eta": eta,
        "seed": seed,
        "acquisition": acquisition,
    }
    if max_per_input is not None:
        params["max_per_input"] = max_per_input
    if spread is not None:
        params["spread"] = float(spread)
    if agreement_share > 0:
        params["agreement_share"] = agreement_share
    if cross_version_restorer_id is not None and cross_version_fraction > 0:
        params["cross_version_restorer_id"] = cross_version_restorer_id
        params["cross_version_fraction"] = cross_version_fraction
    if cross_version_fill:
        params["cross_version_fill"] = True
    if edits:
        params["edit_strengths"] = sorted(set(edits))
        params["edit_sigma"] = float(edit_sigma)
    return job_create(kind=GENERATE, project=project, user=user, params=params)


@transaction.atomic
def reward_job_create(
    *,
    project: Project,
    user: User | None,
    size: str = "small",
    max_steps: int = 2000,
    seed: int = 0,
    name: str = "",
    compare_with_reward_id: int | None = None,
) -> Job:
    """`compare_with_reward_id` (the reward model in use): the job also scores the new model and that one on
    the same held-out judgments (`outputs["comparison"]`), which the loop decides on."""
    last = Judgment.objects.filter(pair__project=project).aggregate(Max("pk"))["pk__max"]
    if last is None:
        raise LabelingError("the project has no judgments yet")
    if size not in ("tiny", "small", "gpu"):
        raise LabelingError("size must be tiny, small or gpu")
    # The judgments it trains on, frozen now: a retry, a resume or a retraining reads exactly these rows.
    snapshot = judgment_snapshot_create(project=project, up_to_judgment_id=last)
    params = {
        # The run folder's name: unique across databases, fixed for the job so a redelivered task resumes.
        "run_id": uuid.uuid4().hex,
        "snapshot_id": snapshot.pk,
        "snapshot_number": snapshot.number,
        "up_to_judgment_id": last,
        "size": size,
        "max_steps": max_steps,
        "seed": seed,
        "name": name or project.slug,
    }
    if compare_with_reward_id is not None:
        _model_version(compare_with_reward_id, ModelKind.REWARD)
        params["compare_with_reward_id"] = compare_with_reward_id
    return job_create(kind=TRAIN_REWARD, project=project, user=user, params=params)


@transaction.atomic
def rl_job_create(
    *,
    project: Project,
    user: User | None,
    restorer_id: int,
    reward_id: int,
    preset: str = "tiny",
    overrides: dict | None = None,
    exclude_input_ids: list[int] | None = None,
) -> Job:
    restorer = _model_version(restorer_id, ModelKind.RESTORER)
    _model_version(reward_id, ModelKind.REWARD)
    _check_resolution(restorer, project)
    params = {
        # The run folder's name: unique across databases, fixed for the job so a redelivered task resumes.
        "run_id": uuid.uuid4().hex,
        "restorer_id": restorer_id,
        "reward_id": reward_id,
        "preset": preset,
        "overrides": overrides or {},
        "exclude_input_ids": exclude_input_ids or [],
    }
    return job_create(kind=TRAIN_RL, project=project, user=user, params=params)
