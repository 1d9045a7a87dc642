"""The one module through which the web reaches the ML packages (restorer, reward_model, rl_trainer).

It speaks PNG bytes and plain dicts to the web side and tensors to the ML side, so views, services and
tasks never import torch or the ML packages themselves.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
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
) -> list[PairChoice]:
    """Pairs that teach the reward model most (ensemble disagreement), with a random share kept for evaluation.

    `candidate_sets` are (input id, LQ png, {candidate key: png}).
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
    ensemble = RewardEnsemble.from_pretrained(reward_dir) if reward_dir else None
    selected = select_pairs(sets, ensemble, budget=budget, random_fraction=random_fraction, seed=seed)
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
    from pathlib import Path

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


def oracle_annotators(kind: str, *, seeds: list[int], **settings: float) -> list:
    """Simulated annotators that know the HQ original (`reward_model.oracle`), one per seed, sharing one
    perceptual distance. Each answers `judge(hq, a, b, shown_left="a")` on PIL images with an outcome
    (`a`, `b`, `tie`, `both_bad`); `settings` (temperature, tie_margin, both_bad_threshold) default to the
    oracle's own for its distance."""
    from reward_model.oracle import OracleAnnotator, default_distance

    distance = default_distance()
    return [OracleAnnotator(kind, seed=seed, distance=distance, **settings) for seed in seeds]


def artifact_metrics(artifact_dir: str) -> dict:
    import json
    from pathlib import Path

    path = Path(artifact_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def artifact_config(artifact_dir: str) -> dict:
    import json
    from pathlib import Path

    path = Path(artifact_dir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


# The web's own ceilings on what one job may ask for (the configs bound values from below only).
RL_MAX_STEPS = 100_000
RL_MAX_SAMPLES_PER_STEP = 4096
RL_MAX_MINUTES = 7 * 24 * 60.0
# Overrides a request may not set: the config's version is the artifact format's, not a setting.
RL_FIXED_FIELDS = frozenset({"version"})


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
    *, artifact_dirs: list[str], inputs: list[RLInput], seeds: list[int], num_steps: int
) -> list[dict]:
    """Each restorer (artifact folder) on the same held-out inputs and seeds (deterministic DDIM, eta 0):
    mean PSNR against the HQ (dB) and mean score of `rl_trainer.guard`'s held-out evaluator, plus the win rate
    of each restorer's images against the first restorer's (`rl_trainer.guard.win_rate`)."""
    import tempfile

    import torch

    from restorer.metrics import PerceptualDistance, psnr
    from restorer.sampling import sample
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
    evaluator = default_held_out(batch, RLConfig.preset("tiny"), distance, distance.name)
    rows, reference_scores = [], None
    for restorer in loaded:
        if int(restorer.config.resolution) != resolution:
            raise ValueError("the restorers compared work at different resolutions")
        fidelity, scores = [], []
        with torch.no_grad():
            lq, hq = batch.lq.to(on_device), batch.hq.to(on_device)
            for seed in seeds:
                images = sample(
                    restorer, lq, batch.instructions, num_steps=num_steps, eta=0.0, seeds=[seed] * len(batch)
                ).images
                fidelity.append(psnr(images, hq).cpu())
                scores.append(evaluator(lq, images, hq, batch.degradations).cpu())
        joined = torch.cat(scores)
        reference_scores = joined if reference_scores is None else reference_scores
        rows.append(
            {
                "psnr": float(torch.cat(fidelity).mean()),
                "held_out": float(joined.mean()),
                "win_rate_vs_first": win_rate(joined, reference_scores),
                "evaluator": evaluator.name,
                "images": int(joined.numel()),
            }
        )
    return rows
