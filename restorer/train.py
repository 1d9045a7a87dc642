"""Supervised training of the restorer: ``python -m restorer.train --config tiny --out DIR``.

A readable linear loop: draw a batch of HQ faces, degrade each with its own seeded draw, take one AdamW
step on the denoising loss, update the EMA weights, and now and then validate, log and checkpoint.
Everything random is derived from ``(config.seed, step)``, so a run resumed from its latest checkpoint
sees exactly the batches it would have seen without the interruption.

Multi-GPU needs no code change: ``accelerate launch -m restorer.train --config base --out DIR``.
Each process draws different degradation seeds (offset by its rank) and gradients are averaged.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from restorer.artifacts import ArtifactError, reject_unknown_fields
from restorer.data import load_face_folder, split_seeds, synthetic_faces
from restorer.degradations import degrade_batch, instruction_text
from restorer.devices import resolve_device
from restorer.images import png_bytes
from restorer.metrics import psnr
from restorer.model import Restorer, RestorerConfig, tiny_test_config
from restorer.sampling import restore

CHECKPOINTS_DIR = "checkpoints"
TRAIN_CONFIG_FILE = "train_config.json"


@dataclass(frozen=True)
class TrainConfig:
    model: RestorerConfig = field(default_factory=RestorerConfig)
    name: str = "custom"
    seed: int = 0
    preset: str = "gfpgan"
    data_folder: str | None = None  # real faces (FFHQ, CelebA-HQ, ...); None: the synthetic train split
    train_faces: int = 8192  # synthetic HQ faces, each degraded once (TrainingPairs)
    batch_size: int = 32
    crop_size: int | None = None  # UNet trains on random crops of this side (None: whole images)
    num_threads: int | None = None  # torch CPU threads (None: torch's default)
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    max_steps: int = 1000
    max_minutes: float | None = None  # wall-clock budget; the LR schedule follows whichever ends first
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # "auto": bf16 on a GPU that supports it, else full precision
    validate_every: int = 200
    validation_images: int = 16
    validation_steps: int = 20
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        values = dict(data)
        base_name = values.pop("base", None)
        base = named_config(base_name) if base_name else cls()
        reject_unknown_fields(cls, values, message="unknown training config fields")
        model_changes = values.pop("model", {})
        model = RestorerConfig.from_dict({**base.model.to_dict(), **model_changes})
        return dataclasses.replace(base, model=model, **values)


def named_config(name: str) -> TrainConfig:
    """``tiny``: 64×64 on a 2-core CPU in ≤ 15 minutes; ``base``: 128×128 for a GPU; ``test``: seconds."""
    if name == "tiny":
        return TrainConfig(
            name="tiny",
            # Measured on the shared 2-core CPU: one step of batch 16 on 32×32 crops takes ~0.45 s with one
            # thread, and two threads are slower and erratic while other jobs share the cores. Within a fixed
            # budget, twice the steps at batch 16 beat batch 32 (a recipe sweep: 28.0 vs 27.2 dB, 1 DDIM step).
            # residual_scale 8: the state (residual RMS ~0.09 / 8) stays far below the noise until the last
            # DDIM step, so 20-step sampling stays close to the regression that PSNR rewards and the solution
            # entropy stays low (see restorer.model; at scale 4, 20 steps still cost 0.7 dB against 1 step).
            # Channels (32, 64, 96): on this CPU a step costs ~0.55x the (64, 96, 128) UNet's, and at the
            # steps a 14-minute budget allows the narrow net is ahead (a GPU sweep at CPU-equivalent step
            # counts, 256 test faces, 20 DDIM steps: 28.45 dB after 2,800 narrow steps vs 27.76 after 1,400
            # wide ones; bicubic 27.37).
            model=RestorerConfig(resolution=64, block_out_channels=(32, 64, 96), residual_scale=8.0),
            train_faces=6144,
            batch_size=16,
            crop_size=32,
            num_threads=1,
            learning_rate=2e-3,
            max_steps=4000,
            max_minutes=14.0,
            validate_every=250,
            checkpoint_every=100,
        )
    if name == "base":
        return TrainConfig(
            name="base",
            model=RestorerConfig(
                resolution=128,
                block_out_channels=(128, 192, 256, 384),
                cross_attention_levels=(False, False, True, True),
                layers_per_block=2,
                attention_head_dim=32,
                norm_num_groups=32,
                cross_attention_dim=256,
                num_queries=16,
                integrator_width=256,
                integrator_layers=6,
                integrator_heads=8,
                max_text_tokens=64,
                lq_patch_grid=8,
            ),
            batch_size=64,
            learning_rate=2e-4,
            warmup_steps=1000,
            max_steps=100_000,
            train_faces=200_000,
            ema_decay=0.9999,
            validate_every=2000,
            checkpoint_every=2000,
        )
    if name == "test":
        return TrainConfig(
            name="test",
            model=tiny_test_config(block_out_channels=(8, 16)),
            train_faces=64,
            batch_size=4,
            learning_rate=3e-3,
            warmup_steps=2,
            max_steps=6,
            validate_every=3,
            validation_images=2,
            validation_steps=2,
            checkpoint_every=3,
            log_every=1,
        )
    raise ValueError(f"unknown training config {name!r}; use tiny, base, test or a JSON file")


def load_train_config(name_or_path: str) -> TrainConfig:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.is_file():
        try:
            return TrainConfig.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read training config {path}: {error}") from error
    return named_config(name_or_path)


@dataclass
class TrainResult:
    """``stopped``: ``should_stop()`` ended the run early; the checkpoint of ``steps`` was written (the same call
    resumes from it), no artifact was, and ``metrics`` holds only ``steps`` and ``max_steps``."""

    out_dir: Path
    steps: int
    final_loss: float
    images_per_second: float
    train_seconds: float
    metrics: dict[str, float]
    stopped: bool = False


def _batch_generator(config: TrainConfig, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(config.seed * 1_000_003 + step * 101 + rank)


@dataclass
class TrainingPairs:
    """HQ faces with one fixed degradation each: degrading once up front keeps the CPU on the model."""

    hq: torch.Tensor
    lq: torch.Tensor
    instructions: list[str]


def training_pairs(config: TrainConfig, faces: torch.Tensor | None = None) -> TrainingPairs:
    if faces is None:
        if config.data_folder:
            faces = load_face_folder(config.data_folder, config.model.resolution)
        else:
            faces = synthetic_faces(split_seeds("train", config.train_faces), config.model.resolution)
    # degradation seeds live far from the face seeds' range, and change with the run's seed
    degradation_seeds = [config.seed * 10_000_019 + 500_000_000 + i for i in range(faces.shape[0])]
    lq, params = degrade_batch(faces, preset=config.preset, seeds=degradation_seeds)
    return TrainingPairs(faces, lq, [instruction_text(p) for p in params])


def training_batch(
    config: TrainConfig, pairs: TrainingPairs, step: int, rank: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """HQ, LQ and instructions of one step (random pairs, random horizontal flips); a pure function of
    (config.seed, step, rank)."""
    generator = _batch_generator(config, step, rank)
    indices = torch.randint(0, pairs.hq.shape[0], (config.batch_size,), generator=generator)
    flip = (torch.rand(config.batch_size, generator=generator) < 0.5)[:, None, None, None]
    hq, lq = pairs.hq[indices], pairs.lq[indices]
    hq = torch.where(flip, hq.flip(-1), hq)
    lq = torch.where(flip, lq.flip(-1), lq)
    return hq, lq, [pairs.instructions[i] for i in indices.tolist()]


def validation_set(config: TrainConfig, count: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Held-out faces (the synthetic val split) with fixed degradations, the same for every run."""
    seeds = split_seeds("val", count)
    hq = synthetic_faces(seeds, config.model.resolution)
    lq, params = degrade_batch(hq, preset=config.preset, seeds=seeds)
    return hq, lq, [instruction_text(p) for p in params]


def _lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, step: int, max_decay: float) -> None:
    decay = min(max_decay, (1.0 + step) / (10.0 + step))  # short runs: don't average in the random init
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.lerp_(param.detach().to(ema_param.dtype), 1.0 - decay)


def _latest_checkpoint(out_dir: Path) -> Path | None:
    root = out_dir / CHECKPOINTS_DIR
    candidates = [p for p in root.glob("step_*") if (p / "state.json").is_file()] if root.is_dir() else []
    return max(candidates, key=lambda p: int(p.name.split("_")[1]), default=None)


def _save_checkpoint(
    out_dir: Path,
    step: int,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    elapsed: float,
    keep: int,
) -> None:
    root = out_dir / CHECKPOINTS_DIR
    directory = root / f"step_{step:08d}"
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(directory / "model.safetensors"),
    )
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
        str(directory / "ema.safetensors"),
    )
    # An optimizer state is tensors and numbers only, so it loads back with torch.load(weights_only=True).
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    (directory / "state.json").write_text(json.dumps({"step": step, "elapsed_seconds": elapsed}))
    old = sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-keep]
    for stale in old:
        for file in stale.iterdir():
            file.unlink()
        stale.rmdir()


def _autodetect_precision(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _accelerator(config: TrainConfig, device: str | None) -> Accelerator:
    """``device`` as :func:`restorer.devices.resolve_device` reads it. Accelerate keeps one device per process,
    set by the first ``Accelerator``: a process that trained on the CPU cannot train on a GPU later."""
    resolved = resolve_device(device)
    if resolved.startswith("cuda:"):
        # a single-process Accelerator takes the current CUDA device
        torch.cuda.set_device(torch.device(resolved))
    return Accelerator(
        cpu=resolved == "cpu", mixed_precision=_autodetect_precision(config.mixed_precision, resolved)
    )


def train(
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike[str],
    faces: torch.Tensor | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_log: Callable[[str], None] | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train (or resume) a restorer into ``out_dir``; the final artifact holds the EMA weights.
    ``on_progress(step, max_steps, metrics)`` is called every ``log_every`` steps (a job's progress bar);
    ``should_stop()`` before every step: True checkpoints and returns a ``TrainResult`` with ``stopped=True`` and
    no artifact. ``on_log(line)`` hears a resume, a stop on request and the end of the time budget. ``device``:
    ``None`` / ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""

    def log(line: str) -> None:
        if on_log is not None and accelerator.is_main_process:
            on_log(line)

    accelerator = _accelerator(config, device)  # first: a device that is not there fails before any write
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    model = Restorer(config.model)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )

    start_step, elapsed_before = 0, 0.0
    latest = _latest_checkpoint(out)
    if latest is not None:
        saved = (
            json.loads((out / TRAIN_CONFIG_FILE).read_text()) if (out / TRAIN_CONFIG_FILE).is_file() else None
        )
        if saved is not None and saved.get("model") != config.model.to_dict():
            raise ValueError(f"{out} holds checkpoints of another model config; use a fresh --out")
        try:
            model.load_state_dict(load_file(str(latest / "model.safetensors")))
            ema.load_state_dict(load_file(str(latest / "ema.safetensors")))
            optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
            state = json.loads((latest / "state.json").read_text())
            start_step, elapsed_before = int(state["step"]), float(state["elapsed_seconds"])
        except Exception as error:  # safetensors, pickle and JSON each raise their own kinds
            raise ArtifactError(
                f"checkpoint {latest} is corrupt or incomplete ({error}); delete it to resume from an earlier one"
            ) from error
        log(f"resumed from checkpoint at step {start_step} of {config.max_steps}")
    if accelerator.is_main_process:
        (out / TRAIN_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))

    model, optimizer = accelerator.prepare(model, optimizer)
    ema.to(accelerator.device)
    unwrapped = accelerator.unwrap_model(model)
    scheduler = unwrapped.train_scheduler()
    pairs = training_pairs(config, faces)
    val_hq, val_lq, val_instructions = validation_set(config, config.validation_images)
    writer = SummaryWriter(str(out / "tensorboard")) if accelerator.is_main_process else None
    budget_seconds = config.max_minutes * 60.0 if config.max_minutes else math.inf

    step, loss_value, images_seen = start_step, float("nan"), 0
    metrics: dict[str, float] = {}
    validated_at = -1
    started = time.perf_counter()
    bar = tqdm(
        total=config.max_steps,
        initial=start_step,
        disable=not (progress and accelerator.is_main_process),
        desc=f"restorer {config.name}",
    )

    def stop_requested() -> bool:
        if should_stop is None:
            return False
        flag = torch.tensor([float(should_stop())], device=accelerator.device)
        # every process leaves at the same step, or the others would wait forever in the next gradient sync
        return bool(accelerator.reduce(flag, reduction="max").item())

    while step < config.max_steps:
        elapsed = elapsed_before + time.perf_counter() - started
        if elapsed >= budget_seconds:
            log(
                f"stopped at step {step} of {config.max_steps}: the {config.max_minutes}-minute budget ran out"
            )
            break
        if stop_requested():
            bar.close()
            if accelerator.is_main_process:
                # rewriting the checkpoint this step already has would only open a window to corrupt it
                if _latest_checkpoint(out) != out / CHECKPOINTS_DIR / f"step_{step:08d}":
                    _save_checkpoint(out, step, unwrapped, ema, optimizer, elapsed, config.keep_checkpoints)
                if writer is not None:
                    writer.close()
            accelerator.wait_for_everyone()
            log(
                f"stopped on request at step {step} of {config.max_steps}; rerun to resume from the checkpoint"
            )
            train_seconds = time.perf_counter() - started
            return TrainResult(
                out_dir=out,
                steps=step,
                final_loss=loss_value,
                images_per_second=images_seen / max(train_seconds, 1e-9),
                train_seconds=train_seconds,
                metrics={"steps": float(step), "max_steps": float(config.max_steps)},
                stopped=True,
            )
        hq, lq, instructions = training_batch(config, pairs, step, accelerator.process_index)
        hq, lq = hq.to(accelerator.device), lq.to(accelerator.device)
        lr = config.learning_rate * _lr_factor(
            config, step, max(step / config.max_steps, elapsed / budget_seconds)
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accelerator.autocast():
            # through the (possibly DDP-wrapped) module, so multi-GPU gradients are synchronised
            loss = model(
                hq,
                lq,
                instructions,
                scheduler=scheduler,
                generator=_batch_generator(config, step, 7919),
                crop_size=config.crop_size,
            )
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        _update_ema(ema, unwrapped, step, config.ema_decay)
        step += 1
        images_seen += config.batch_size * accelerator.num_processes
        loss_value = float(loss.detach())
        rate = images_seen / max(1e-9, time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{rate:.1f}")
        if writer is not None and step % config.log_every == 0:
            writer.add_scalar("train/loss", loss_value, step)
            writer.add_scalar("train/lr", lr, step)
            writer.add_scalar("train/images_per_second", rate, step)
        if on_progress is not None and step % config.log_every == 0:
            on_progress(step, config.max_steps, {"loss": loss_value, "images_per_second": rate, **metrics})
        if accelerator.is_main_process and step % config.validate_every == 0:
            metrics = _validate(ema, val_hq, val_lq, val_instructions, config, out, step, writer)
            validated_at = step
        if accelerator.is_main_process and step % config.checkpoint_every == 0:
            _save_checkpoint(
                out,
                step,
                unwrapped,
                ema,
                optimizer,
                elapsed_before + time.perf_counter() - started,
                config.keep_checkpoints,
            )
    bar.close()
    train_seconds = time.perf_counter() - started
    result_metrics: dict[str, float] = {}
    if accelerator.is_main_process:
        if validated_at != step:
            metrics = _validate(ema, val_hq, val_lq, val_instructions, config, out, step, writer)
        _save_checkpoint(
            out, step, unwrapped, ema, optimizer, elapsed_before + train_seconds, config.keep_checkpoints
        )
        result_metrics = {
            **metrics,
            "steps": float(step),
            "final_loss": loss_value,
            "train_images_per_second": images_seen / max(train_seconds, 1e-9),
        }
        ema.cpu().eval()
        ema.save_pretrained(out, metrics=result_metrics)
        if writer is not None:
            writer.close()
    accelerator.wait_for_everyone()
    return TrainResult(
        out_dir=out,
        steps=step,
        final_loss=loss_value,
        images_per_second=images_seen / max(train_seconds, 1e-9),
        train_seconds=train_seconds,
        metrics=result_metrics,
    )


def _validate(
    ema: torch.nn.Module,
    hq: torch.Tensor,
    lq: torch.Tensor,
    instructions: list[str],
    config: TrainConfig,
    out: Path,
    step: int,
    writer: SummaryWriter | None,
) -> dict[str, float]:
    assert isinstance(ema, Restorer)
    was_training = ema.training
    ema.eval()
    device = ema.device
    restored = restore(ema, lq.to(device), instructions, num_steps=config.validation_steps).cpu()
    ema.train(was_training)
    metrics = {"val_psnr": float(psnr(restored, hq).mean()), "val_psnr_bicubic": float(psnr(lq, hq).mean())}
    shown = min(8, hq.shape[0])
    grid = torch.cat([torch.cat(list(row[:shown]), dim=-1) for row in (lq, restored, hq)], dim=-2)
    validation_dir = out / "validation"
    validation_dir.mkdir(exist_ok=True)
    (validation_dir / f"step_{step:08d}.png").write_bytes(png_bytes(grid))
    if writer is not None:
        writer.add_scalar("val/psnr", metrics["val_psnr"], step)
        writer.add_scalar("val/psnr_bicubic", metrics["val_psnr_bicubic"], step)
        writer.add_image("val/lq_restored_hq", (grid + 1) / 2, step)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="tiny", help="tiny | base | test | path to a JSON training config"
    )
    parser.add_argument("--out", required=True, help="output directory (resumes from its latest checkpoint)")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data-folder", help="train on these face images instead of synthetic faces")
    parser.add_argument("--no-integrator", action="store_true", help="ablation: LQ conditioning only")
    parser.add_argument(
        "--device", default=None, help="auto (default: a GPU when there is one), cpu, cuda, cuda:N"
    )
    args = parser.parse_args(argv)
    config = load_train_config(args.config)
    changes: dict[str, Any] = {}
    if args.max_steps is not None:
        changes["max_steps"] = args.max_steps
    if args.max_minutes is not None:
        changes["max_minutes"] = args.max_minutes
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.data_folder:
        changes["data_folder"] = args.data_folder
    model = config.model
    if args.no_integrator:
        model = model.replace(use_integrator=False)
    if args.seed is not None:
        model = model.replace(seed=args.seed)
    config = dataclasses.replace(config, model=model, **changes)
    result = train(config, out_dir=args.out, device=args.device)
    print(json.dumps({"out_dir": str(result.out_dir), "steps": result.steps, **result.metrics}, indent=2))


if __name__ == "__main__":
    main()
