"""The one module through which the web reaches the ML packages (restorer, reward_model, rl_trainer).

It speaks PNG bytes and plain dicts to the web side and tensors to the ML side, so views, services and
tasks never import torch or the ML packages themselves.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

CLASSICAL_SHARPEN_LEVELS = (0.0, 0.6, 1.5)


def device() -> str:
    """The torch device of this worker's ML calls: `PREF_DEVICE` ("auto": CUDA when present, else the CPU)."""
    from django.conf import settings

    from restorer.devices import resolve_device

    return resolve_device(settings.PREF_DEVICE)


@dataclass(frozen=True)
class TrainingReports:
    """Where a training run reports: `on_progress(step, total, metrics)` and `on_log(line)` (a resume from a
    checkpoint, a guard's stop)."""

    on_progress: Callable[[int, int, dict], None]
    on_log: Callable[[str], None]


@dataclass(frozen=True)
class DegradedFace:
    hq_png: bytes
    lq_png: bytes
    degradation: dict
    instruction: str


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def degrade_face(
    image: Image.Image, *, preset: str, seed: int, resolution: int, extra_instruction: str = ""
) -> DegradedFace:
    from restorer.degradations import degrade_image, instruction_text
    from restorer.images import face_crop_resize

    hq = face_crop_resize(image.convert("RGB"), resolution)
    lq, params = degrade_image(hq, preset=preset, seed=seed, resolution=resolution)
    return DegradedFace(
        hq_png=_png(hq),
        lq_png=_png(lq),
        degradation=params.to_dict(),
        instruction=instruction_text(params, extra_instruction),
    )


def heavily_degraded_png(hq_png: bytes, *, seed: int, resolution: int) -> bytes:
    """A copy of the HQ under the `heavy` preset: the clearly worse side of a gold pair."""
    from restorer.degradations import degrade_image

    lq, _ = degrade_image(Image.open(io.BytesIO(hq_png)), preset="heavy", seed=seed, resolution=resolution)
    return _png(lq)


def classical_restorations_png(
    lq_png: bytes, *, sharpen_levels: tuple[float, ...] = CLASSICAL_SHARPEN_LEVELS
) -> list[tuple[float, bytes]]:
    """Bicubic smoothing + unsharp mask at several strengths: the demo's candidates before a restorer exists."""
    from restorer.classical import classical_restore
    from restorer.images import pil_to_tensor, tensor_to_pil

    lq = pil_to_tensor(Image.open(io.BytesIO(lq_png)).convert("RGB"))[None]
    return [(level, _png(tensor_to_pil(classical_restore(lq, sharpen=level)[0]))) for level in sharpen_levels]


def synthetic_face_images(seeds: list[int], resolution: int = 64) -> list[Image.Image]:
    """Synthetic faces from the DCGAN of `gan-face-generate` (trained on DigiFace1M, research use)."""
    from restorer.data import synthetic_faces
    from restorer.images import tensor_to_pil

    return [tensor_to_pil(face) for face in synthetic_faces(seeds, resolution)]


# --- restorer, reward model, RL: artifacts are local directories; the web keeps them in its storage -----


@functools.lru_cache(maxsize=2)
def _loaded_restorer(artifact_dir: str, on_device: str = "cpu") -> Any:
    """A generation job samples input after input from one version: load it once (versions never change)."""
    from restorer.model import Restorer

    return Restorer.from_pretrained(artifact_dir, device=on_device).eval()


def restorer_samples_png(
    *,
    artifact_dir: str,
    lq_pngs: list[bytes],
    instructions: list[str],
    seeds: list[int],
    num_steps: int,
    eta: float,
) -> list[list[bytes]]:
    """Samples of the restorer for each input (outer list) and each seed (inner list), as PNG bytes."""
    import torch

    from restorer.images import pil_to_tensor, tensor_to_pil
    from restorer.sampling import sample

    on_device = device()
    restorer = _loaded_restorer(artifact_dir, on_device)
    resolution = restorer.config.resolution
    lq = torch.stack(
        [
            pil_to_tensor(Image.open(io.BytesIO(png)).convert("RGB").resize((resolution, resolution)))
            for png in lq_pngs
        ]
    ).to(on_device)
    outputs: list[list[bytes]] = [[] for _ in lq_pngs]
    with torch.no_grad():
        for seed in seeds:
            images = sample(
                restorer, lq, instructions, num_steps=num_steps, eta=eta, seeds=[seed] * len(lq_pngs)
            ).images
            for index, image in enumerate(images.cpu()):
                outputs[index].append(_png(tensor_to_pil(image)))
    return outputs


# What a generation may ask to show beside a restorer's samples (its RL's proposals): a few unsharp masks.
MAX_EDITS = 8
EDIT_STRENGTH_LIMIT = 2.0


# A reward-ranked run compounds its proposals: fitted towards an edit of strength s, the restorer's next samples
# are edited again, so within a run it can reach about twice the strongest proposal. People judge those reaches
# too; a reward model that saw only the proposals ranked "sharper" higher past where the annotators stop
# preferring it, and RL followed it to -3.1 dB (benchmarks/results/loop_identity_small.txt, round 2). With the
# reaches judged, round 2 still sharpened to -2.0 dB (loop_identity_reach.txt): they help, they are not enough.
PROPOSAL_REACH = (1.5, 2.0)


def rl_proposal_edits(*, preset: str, overrides: dict) -> dict | None:
    """The edits a reward-ranked RL run of this config scores as proposals (`ranked_edit_strengths` other than
    0, and `ranked_edit_sigma`), and where they compound to (`PROPOSAL_REACH` times the strongest of each sign,
    within `EDIT_STRENGTH_LIMIT`), at most `MAX_EDITS`; or None for another policy update. The loop queues
    pairs of them beside the restorer's samples: reward-ranked RL learns only changes its reward model ranks,
    so people must have judged such changes, and a little beyond, for the ranking to carry what they
    prefer."""
    from rl_trainer.config import RLConfig

    config = RLConfig.preset(preset, **overrides)
    if config.policy_update != "reward_ranked":
        return None
    proposals = [float(s) for s in config.ranked_edit_strengths if s != 0.0]
    if not proposals:
        return None
    sharpest, softest = max(proposals), min(proposals)
    strongest = ([sharpest] if sharpest > 0 else []) + ([softest] if softest < 0 else [])
    reaches = {
        max(-EDIT_STRENGTH_LIMIT, min(EDIT_STRENGTH_LIMIT, s * factor))
        for s in strongest
        for factor in PROPOSAL_REACH
    } - set(proposals)
    strengths = (proposals + sorted(reaches, key=abs))[:MAX_EDITS]  # the proposals themselves come first
    return {"strengths": sorted(strengths), "sigma": float(config.ranked_edit_sigma)}


def edited_pngs(png: bytes, *, strengths: list[float], sigma: float) -> list[bytes]:
    """The image under an unsharp mask of each strength (negative: towards a blur), as the RL's ranked update
    makes its proposals (`restorer.classical.unsharp_mask`, clamped), as PNG bytes."""
    import torch

    from restorer.classical import unsharp_mask
    from restorer.images import pil_to_tensor, tensor_to_pil

    image = pil_to_tensor(Image.open(io.BytesIO(png)).convert("RGB"))[None]
    with torch.no_grad():
        return [
            _png(tensor_to_pil(unsharp_mask(image, strength, sigma=sigma).clamp(-1.0, 1.0)[0]))
            for strength in strengths
        ]


@dataclass(frozen=True)
class PairChoice:
    input_id: str
    a_key: str
    b_key: str
    reason: str
    score: float


def choose_pairs(
    *,
    candidate_sets: list[tuple[str, bytes, dict[str, bytes]]],
    reward_dir: str | None,
    budget: int,
    random_fraction: float,
    seed: int,
    label_counts: dict[tuple[str, str], int] | None = None,
    max_per_input: int | None = None,
    acquisition: str = "bald",
) -> list[PairChoice]:
    """Pairs that teach the reward model most (ensemble disagreement), with a random share kept for evaluation.

    `candidate_sets` are (input id, LQ png, {candidate key: png}). The options are
    `reward_model.selection.select_pairs`'s: `label_counts` ((a key, b key) -> judgments the pair already has;
    its score is divided by 1 + that), `max_per_input` (informative picks per input at most), `acquisition`
    (`bald`, `entropy` or `information`). Before a reward model exists every pick is random and they do not apply.
    """
    from restorer.images import pil_to_tensor
    from reward_model.ensemble import RewardEnsemble
    from reward_model.selection import CandidateSet, select_pairs

    def tensor(png: bytes) -> Any:
        return pil_to_tensor(Image.open(io.BytesIO(png)).convert("RGB"))

    sets = [
        CandidateSet(
            input_id=input_id, lq=tensor(lq), candidates={key: tensor(png) for key, png in candidates.items()}
        )
        for input_id, lq, candidates in candidate_sets
    ]
    ensemble = RewardEnsemble.from_pretrained(reward_dir, device=device()) if reward_dir else None
    selected = select_pairs(
        sets,
        ensemble,
        budget=budget,
        random_fraction=random_fraction,
        seed=seed,
        label_counts=label_counts,
        max_per_input=max_per_input,
        acquisition=acquisition,
    )
    return [PairChoice(p.input_id, p.a_key, p.b_key, p.reason, float(p.score)) for p in selected]


def reward_model_train(
    *,
    judgments_path: str,
    images_root: str,
    out_dir: str,
    size: str,
    max_steps: int,
    seed: int,
    reports: TrainingReports | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict | None:
    """Train a reward model on a preference export into `out_dir` (resuming from its checkpoint); returns its
    metrics (also in `out_dir/metrics.json`), or None when `should_stop()` stopped it (checkpoint kept)."""
    import dataclasses

    from reward_model.data import ImageBank, keys_of
    from reward_model.export import read_judgments
    from reward_model.model import CONFIG_PRESETS
    from reward_model.train import TrainConfig, train

    rows = read_judgments(judgments_path)
    config = TrainConfig(
        reward=dataclasses.replace(CONFIG_PRESETS[size], seed=seed), seed=seed, max_steps=max_steps
    )
    bank = ImageBank.from_directory(images_root, keys_of(rows), config.reward.resolution)
    result = train(
        config,
        judgments=rows,
        images=bank,
        out_dir=out_dir,
        progress=False,
        device=device(),
        on_progress=reports.on_progress if reports else None,
        on_log=reports.on_log if reports else None,
        should_stop=should_stop,
    )
    if result.stopped:
        return None
    return {**result.metrics, "train_config": config.to_dict()}


def reward_models_compare(
    *, new_dir: str, in_use_dir: str, trained_on_path: str, unseen_path: str, images_root: str
) -> dict:
    """Pairwise accuracy of a new reward model and the one in use on the same held-out judgments: those of
    `trained_on_path` on the inputs the new model held out that the one in use did not train on (on faces it
    held out too, or in `unseen_path`: judged after it was trained). `new` / `in_use` are None when fewer than
    `reward_model.compare.MIN_SHARED_JUDGMENTS` a / b answers are shared."""
    from reward_model.compare import compare_on_shared_judgments
    from reward_model.export import read_judgments

    result = compare_on_shared_judgments(
        new_dir=new_dir,
        in_use_dir=in_use_dir,
        trained_on=read_judgments(trained_on_path),
        unseen=read_judgments(unseen_path) if Path(unseen_path).stat().st_size else [],
        images_root=images_root,
        device=device(),
    )
    return result.to_dict()


def accuracy_difference_se(*, judgments: int, only_new: int, only_in_use: int) -> float:
    """`reward_model.compare.accuracy_difference_se`: the paired standard error of two reward models'
    accuracy difference on the same judgments."""
    from reward_model.compare import accuracy_difference_se as se

    return se(judgments=judgments, only_new=only_new, only_in_use=only_in_use)


def rl_fine_tune(
    *,
    policy_dir: str,
    reward_dir: str,
    manifest_path: str,
    out_dir: str,
    preset: str,
    overrides: dict,
    reports: TrainingReports,
    should_stop: Callable[[], bool],
) -> dict:
    """On-policy RL of a restorer artifact against a reward artifact; returns the run's summary."""
    from rl_trainer.config import RLConfig
    from rl_trainer.train import train

    config = RLConfig.preset(preset, **overrides)
    result = train(
        config,
        policy_dir=policy_dir,
        reward_dir=reward_dir,
        inputs_manifest=manifest_path,
        out_dir=out_dir,
        on_progress=reports.on_progress,
        on_log=reports.on_log,
        should_stop=should_stop,
        progress_bar=False,
        device=device(),
    )
    return {**result.summary(), "rl_config": config.to_dict()}


@dataclass(frozen=True)
class RLInput:
    """One input of an RL run as the web holds it: PNG bytes and what it knows of the degradation."""

    id: str
    lq_png: bytes
    instruction: str = ""
    hq_png: bytes | None = None
    degradation: dict | None = None


def rl_manifest_write(*, folder: str, inputs: list[RLInput]) -> str:
    """The images under `folder` and the inputs manifest naming them (`rl_trainer.manifest`); returns its path."""

    from rl_trainer.manifest import write_manifest

    root = Path(folder)
    rows = []
    for item in inputs:
        lq = root / f"{item.id}-lq.png"
        lq.write_bytes(item.lq_png)
        row: dict = {"id": item.id, "lq": lq.name, "instruction": item.instruction}
        if item.hq_png is not None:
            hq = root / f"{item.id}-hq.png"
            hq.write_bytes(item.hq_png)
            row["hq"] = hq.name
        if item.degradation:
            row["degradation"] = item.degradation
        rows.append(row)
    manifest = root / "inputs.jsonl"
    write_manifest(manifest, rows)
    return str(manifest)


# The simulated annotators' oracle unless asked otherwise: none of the RL's fixed terms, the reward model's
# inputs or the hacking guard computes it, so what RL learns of it comes through the judgments alone.
DEFAULT_ORACLE = "identity_sharpness"


def oracle_distance_names() -> tuple[str, ...]:
    from reward_model.oracle import DISTANCE_NAMES

    return DISTANCE_NAMES


def oracle_annotators(
    kind: str, *, seeds: list[int], distance: str = DEFAULT_ORACLE, **settings: float
) -> list:
    """Simulated annotators that know the HQ original (`reward_model.oracle`), one per seed, sharing the
    oracle distance called `distance` (`reward_model.oracle.DISTANCE_NAMES`). Each answers
    `judge(hq, a, b, shown_left="a")` on PIL images with an outcome (`a`, `b`, `tie`, `both_bad`); `settings`
    (temperature, tie_margin, both_bad_threshold) default to the oracle's own for its distance. Raises
    `OracleUnavailableError` when the distance cannot be computed here (identity_sharpness without dlib)."""
    from reward_model.oracle import OracleAnnotator, distance_by_name

    try:
        shared = distance_by_name(distance)
    except ImportError as error:  # reward_model.oracle_features.OracleFeaturesUnavailableError among them
        raise OracleUnavailableError(str(error)) from error
    return [OracleAnnotator(kind, seed=seed, distance=shared, **settings) for seed in seeds]


class OracleUnavailableError(RuntimeError):
    """The oracle asked for needs a package this installation lacks."""


def artifact_metrics(artifact_dir: str) -> dict:
    import json

    path = Path(artifact_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def artifact_config(artifact_dir: str) -> dict:
    import json

    path = Path(artifact_dir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


# The web's own ceilings on what one job may ask for (the configs bound values from below only).
RL_MAX_STEPS = 100_000
RL_MAX_SAMPLES_PER_STEP = 4096
RL_MAX_MINUTES = 7 * 24 * 60.0
# Overrides a request may not set: the config's version is the artifact format's, not a setting.
RL_FIXED_FIELDS = frozenset({"version"})
# rl_trainer.config.HELD_OUT_EVALUATORS, named here so that a request is checked without importing torch.
HELD_OUT_EVALUATORS = ("perceptual", "fidelity", "fidelity_linear")
# rl_trainer.config.FIDELITY_EVALUATORS: the evaluators whose score is in dB
FIDELITY_EVALUATORS = ("fidelity", "fidelity_linear")
# rl_trainer.guard.fidelity_evaluator's names: their scores are observation PSNRs, in dB
OBSERVATION_PSNR = "observation_psnr"
LINEAR_OBSERVATION_PSNR = "linear_observation_psnr"
OBSERVATION_PSNRS = (OBSERVATION_PSNR, LINEAR_OBSERVATION_PSNR)


def rl_config_validate(*, preset: str, overrides: dict) -> dict:
    """The RL config a job would run with, as a dict; ValueError naming what is wrong (an unknown field, a value
    of the wrong type, one out of the config's own bounds or over the web's ceilings). Jobs call it before they
    are queued, so a bad request never reaches a worker."""
    import dataclasses
    import math
    import typing

    from rl_trainer.config import PRESETS, RLConfig, RLConfigError

    if preset not in PRESETS:
        raise ValueError(f"unknown RL preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    if not isinstance(overrides, dict):
        raise ValueError("overrides must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(RLConfig)}
    hints = typing.get_type_hints(RLConfig)
    for name, value in overrides.items():
        if name not in fields or name in RL_FIXED_FIELDS:
            raise ValueError(f"overrides: {name!r} is not a setting of an RL run")
        hint = hints[name]
        allowed: tuple[type, ...]
        if hint is bool:
            allowed = (bool,)
        elif hint is int:
            allowed = (int,)
        elif hint is float:
            allowed = (int, float)
        elif hint is str:
            allowed = (str,)
        else:  # float | None and the like
            args = tuple(a for a in typing.get_args(hint) if a is not type(None))
            allowed = (int, float) if float in args else args
            if value is None and type(None) in typing.get_args(hint):
                continue
        if isinstance(value, bool) and hint is not bool:
            raise ValueError(f"overrides: {name} must be a {hint}, not a boolean")
        if not isinstance(value, allowed):
            raise ValueError(f"overrides: {name} must be a {getattr(hint, '__name__', hint)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"overrides: {name} must be a finite number")
    try:
        config = RLConfig.preset(preset, **overrides)
    except (RLConfigError, TypeError) as exc:
        raise ValueError(str(exc)) from exc
    if config.max_steps > RL_MAX_STEPS:
        raise ValueError(f"max_steps must be at most {RL_MAX_STEPS}")
    if config.samples_per_step > RL_MAX_SAMPLES_PER_STEP:
        raise ValueError(f"inputs_per_step x group_size must be at most {RL_MAX_SAMPLES_PER_STEP}")
    if config.max_minutes is not None and config.max_minutes > RL_MAX_MINUTES:
        raise ValueError(f"max_minutes must be at most {RL_MAX_MINUTES:g}")
    return config.to_dict()


def reward_sizes() -> list[str]:
    """The reward-model sizes a training job may ask for (`reward_model.model.CONFIG_PRESETS`)."""
    from reward_model.model import CONFIG_PRESETS

    return sorted(CONFIG_PRESETS)


# --- the loop: supervised restorer training and held-out evaluation ---------------------------------------


def restorer_train_config(*, config: str, overrides: dict) -> dict:
    """The supervised training config a `train_restorer` job would run with (ValueError names what is wrong):
    a named config of `restorer.train` (`tiny`, `test`, `base`) with top-level fields replaced."""
    import dataclasses

    from restorer.train import TrainConfig, named_config

    if not isinstance(overrides, dict):
        raise ValueError("overrides must be a JSON object")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data_folder"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"overrides: {', '.join(unknown)} not a setting of restorer training")
    try:
        return dataclasses.replace(named_config(config), **overrides).to_dict()
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def restorer_train(
    *,
    config: str,
    overrides: dict,
    out_dir: str,
    reports: TrainingReports,
    should_stop: Callable[[], bool] | None = None,
) -> dict | None:
    """Supervised training of a restorer on the synthetic training faces into `out_dir` (an artifact folder),
    resuming from the folder's latest checkpoint; returns the run's metrics, or None when `should_stop()`
    stopped it (checkpoint kept)."""
    from restorer.train import TrainConfig, train

    train_config = TrainConfig.from_dict(restorer_train_config(config=config, overrides=overrides))
    result = train(
        train_config,
        out_dir=out_dir,
        progress=False,
        on_progress=reports.on_progress,
        on_log=reports.on_log,
        should_stop=should_stop,
        device=device(),
    )
    if result.stopped:
        return None
    return {**result.metrics, "steps": result.steps, "train_config": train_config.to_dict()}


def restorer_held_out_scores(
    *,
    artifact_dirs: list[str],
    inputs: list[RLInput],
    seeds: list[int],
    num_steps: int,
    reward_dir: str | None = None,
    held_out_evaluator: str = "perceptual",
) -> list[dict]:
    """Each restorer (artifact folder) on the same held-out inputs and seeds (deterministic DDIM, eta 0):
    mean PSNR against the HQ (dB) and mean score of `rl_trainer.guard`'s held-out evaluator (the one
    `RLConfig.held_out_evaluator` names: the RL run's guard, so that promotion judges as the guard did), plus the
    win rate of each restorer's images against the first restorer's (`rl_trainer.guard.win_rate`).

    Also, per restorer: SSIM and the perceptual distance (`restorer.metrics.PerceptualDistance`, named in
    `perceptual_metric`) against the HQ over the inputs whose HQ is known (None when none is), the solution
    entropy over the seeds (mean per-pixel std, `restorer.metrics.solution_entropy`; None with one seed), the
    mean learned reward of the reward model at `reward_dir` (None without one) and the identity similarity to
    the HQ (`identity_similarity`; None where it is not available, `identity_metric` says why)."""
    import tempfile

    import torch

    from restorer.metrics import PerceptualDistance, psnr, solution_entropy
    from restorer.sampling import sample
    from reward_model.model import RewardModel
    from rl_trainer.config import RLConfig
    from rl_trainer.guard import default_held_out, win_rate
    from rl_trainer.manifest import load_inputs, read_manifest

    with tempfile.TemporaryDirectory(prefix="held-out-") as folder:
        entries = read_manifest(rl_manifest_write(folder=folder, inputs=inputs))
        on_device = device()
        loaded = [_loaded_restorer(path, on_device) for path in artifact_dirs]
        resolution = int(loaded[0].config.resolution)
        batch = load_inputs(entries, resolution)
    distance = PerceptualDistance(device=on_device)
    evaluator = default_held_out(
        batch, RLConfig.preset("tiny", held_out_evaluator=held_out_evaluator), distance, distance.name
    )
    reward = RewardModel.from_pretrained(reward_dir, device=on_device) if reward_dir else None
    known = batch.has_hq.cpu()
    rows, reference_scores = [], None
    for restorer in loaded:
        if int(restorer.config.resolution) != resolution:
            raise ValueError("the restorers compared work at different resolutions")
        fidelity, scores, samples, learned = [], [], [], []
        with torch.no_grad():
            lq, hq = batch.lq.to(on_device), batch.hq.to(on_device)
            for seed in seeds:
                images = sample(
                    restorer, lq, batch.instructions, num_steps=num_steps, eta=0.0, seeds=[seed] * len(batch)
                ).images
                fidelity.append(psnr(images, hq).cpu())
                scores.append(evaluator(lq, images, hq, batch.degradations).cpu())
                samples.append(images.cpu())
                if reward is not None:
                    learned.append(reward(lq, images).float().cpu())
        joined = torch.cat(scores)
        reference_scores = joined if reference_scores is None else reference_scores
        stacked = torch.stack(samples)  # [S, B, 3, H, W]
        rows.append(
            {
                "psnr": float(torch.cat(fidelity).mean()),
                "held_out": float(joined.mean()),
                "win_rate_vs_first": win_rate(joined, reference_scores),
                "evaluator": evaluator.name,
                "images": int(joined.numel()),
                **_against_hq(stacked, batch.hq.cpu(), known, distance),
                "entropy": solution_entropy(stacked) if len(seeds) >= 2 else None,
                "learned_reward": float(torch.cat(learned).mean()) if learned else None,
                **identity_similarity(stacked[:, known], batch.hq.cpu()[known]),
            }
        )
    return rows


def _against_hq(samples: Any, hq: Any, known: Any, distance: Any) -> dict:
    """SSIM and perceptual distance of samples `[S, B, 3, H, W]` to the HQ, over the inputs whose HQ is known."""
    import torch

    from restorer.metrics import ssim

    if not bool(known.any()):
        return {"ssim": None, "perceptual": None, "perceptual_metric": distance.name, "hq_inputs": 0}
    images = samples[:, known].flatten(0, 1)
    originals = hq[known].repeat(samples.shape[0], 1, 1, 1)
    with torch.no_grad():
        perceptual = float(distance(images, originals).mean())
    return {
        "ssim": float(ssim(images, originals).mean()),
        "perceptual": perceptual,
        "perceptual_metric": distance.name,
        "hq_inputs": int(known.sum()),
    }


# Face embeddings for identity similarity: the `face_recognition` package (dlib), which works offline once
# installed; dlib's recogniser wants face chips of about 150 px, so the images are upscaled to this first.
IDENTITY_SIZE = 150


def identity_similarity(samples: Any, hq: Any) -> dict:
    """Identity kept by restorations `[S, B, 3, H, W]` of faces whose HQ `[B, 3, H, W]` is known: the mean of
    1 - the `face_recognition` embedding distance (the same person is below 0.6 there, so above 0.4 here),
    each image treated as one face filling the frame. `identity_similarity` is None, and `identity_metric`
    says why, when the package is not installed, no HQ is known or dlib finds no face to encode."""
    try:
        import face_recognition
    except ImportError:
        return {
            "identity_similarity": None,
            "identity_metric": "not available (face_recognition not installed)",
        }
    import numpy as np

    from restorer.images import tensor_to_pil

    if samples.shape[1] == 0:
        return {"identity_similarity": None, "identity_metric": "not available (no HQ known)"}
    whole = [(0, IDENTITY_SIZE, IDENTITY_SIZE, 0)]  # (top, right, bottom, left): the face fills the image

    def encode(image: Any) -> Any:
        pixels = np.asarray(
            tensor_to_pil(image).resize((IDENTITY_SIZE, IDENTITY_SIZE), Image.Resampling.BICUBIC)
        )
        found = face_recognition.face_encodings(pixels, known_face_locations=whole)
        return found[0] if found else None

    originals = [encode(image) for image in hq]
    similarities = []
    for per_seed in samples:
        for image, original in zip(per_seed, originals):
            encoded = encode(image) if original is not None else None
            if encoded is not None:
                similarities.append(1.0 - float(face_recognition.face_distance([original], encoded)[0]))
    if not similarities:
        return {"identity_similarity": None, "identity_metric": "not available (no face encoded)"}
    return {
        "identity_similarity": float(np.mean(similarities)),
        "identity_metric": "face_recognition: 1 - embedding distance",
    }


# --- pair selection options (reward_model.selection) -------------------------------------------------------


def pair_selection_validate(*, acquisition: str, max_per_input: Any, spread: Any) -> None:
    """ValueError naming what is wrong with a generation's pair-selection options: `acquisition` one of
    `reward_model.selection.ACQUISITIONS`; `max_per_input` None or a whole number >= 1; `spread` None or a
    number >= 0 (the per-input cap as a multiple of the even share, `SelectionConfig.spread`); not both caps."""
    import math

    from reward_model.selection import ACQUISITIONS

    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, not {acquisition!r}")
    if max_per_input is not None and (
        isinstance(max_per_input, bool) or not isinstance(max_per_input, int) or max_per_input < 1
    ):
        raise ValueError(
            f"max_per_input must be a whole number of at least 1 (or null), not {max_per_input!r}"
        )
    if spread is not None and (
        isinstance(spread, bool)
        or not isinstance(spread, int | float)
        or not math.isfinite(spread)
        or spread < 0
    ):
        raise ValueError(f"spread must be a number of at least 0 (or null), not {spread!r}")
    if max_per_input is not None and spread is not None:
        raise ValueError("give max_per_input or spread, not both (both cap the pairs of one input)")


def pair_selection_cap(*, spread: float, budget: int, inputs: int) -> int | None:
    """The per-input cap `spread` gives a batch of `budget` pairs over `inputs` inputs (None: no cap), as
    `reward_model.selection.SelectionConfig.max_per_input` computes it for the reward benchmark's rounds."""
    from reward_model.selection import SelectionConfig

    return SelectionConfig(spread=float(spread)).max_per_input(budget, inputs)


def pair_selection_preset(name: str) -> dict:
    """A measured selection configuration of `reward_model.selection.SELECTION_PRESETS` as plain values:
    `acquisition`, `random_fraction`, `spread` (ValueError for an unknown name)."""
    from reward_model.selection import selection_preset

    preset = selection_preset(name)
    return {
        "acquisition": preset.acquisition,
        "random_fraction": preset.random_fraction,
        "spread": preset.spread,
    }
