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
def _loaded_restorer(artifact_dir: str) -> Any:
    """A generation job samples input after input from one version: load it once (versions never change)."""
    from restorer.model import Restorer

    return Restorer.from_pretrained(artifact_dir).eval()


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

    restorer = _loaded_restorer(artifact_dir)
    resolution = restorer.config.resolution
    lq = torch.stack(
        [
            pil_to_tensor(Image.open(io.BytesIO(png)).convert("RGB").resize((resolution, resolution)))
            for png in lq_pngs
        ]
    )
    outputs: list[list[bytes]] = [[] for _ in lq_pngs]
    with torch.no_grad():
        for seed in seeds:
            images = sample(
                restorer, lq, instructions, num_steps=num_steps, eta=eta, seeds=[seed] * len(lq_pngs)
            ).images
            for index, image in enumerate(images):
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
    *, judgments_path: str, images_root: str, out_dir: str, size: str, max_steps: int, seed: int
) -> dict:
    """Train a reward model on a preference export; returns its metrics (also in `out_dir/metrics.json`)."""
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
    result = train(config, judgments=rows, images=bank, out_dir=out_dir, progress=False)
    return {**result.metrics, "train_config": config.to_dict()}


def rl_fine_tune(
    *,
    policy_dir: str,
    reward_dir: str,
    manifest_path: str,
    out_dir: str,
    preset: str,
    overrides: dict,
    on_progress: Callable[[int, int, dict], None],
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
        on_progress=on_progress,
        should_stop=should_stop,
        progress_bar=False,
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
