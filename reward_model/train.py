"""Train a reward model on exported judgments.

    python -m reward_model.train --judgments export.jsonl --images <storage dir> --out <artifact dir>

Judgments are split by input (no input in both train and validation), rows on gold pairs are held out to
measure accuracy on gold, the ensemble members and per-annotator reliabilities are fitted jointly with the
judgment model of :mod:`reward_model.losses`, and training stops early when validation pairwise accuracy
stops improving. The artifact holds ``config.json`` + ``model.safetensors`` (the best weights) +
``metrics.json``; a ``checkpoint/`` folder beside them, rewritten every ``checkpoint_every`` steps, lets an
interrupted run resume, and a resumed run ends with the same model as one that was never interrupted.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from restorer.artifacts import reject_unknown_fields
from restorer.devices import resolve_device
from reward_model.data import SPLIT_METHODS, ImageBank, JudgmentTensors, keys_of, split_by_input
from reward_model.export import JudgmentRow, read_judgments
from reward_model.losses import A, AnnotatorReliability, B
from reward_model.model import CONFIG_PRESETS, RewardConfig, RewardModel

TRAIN_CONFIG_VERSION = 1

ProgressCallback = Callable[[int, int, dict[str, float]], None]
# What a resumed run may change: a larger budget trains on (a cosine schedule stretches to it), and the
# checkpoint cadence changes nothing a step computes.
RESUMABLE_CHANGES = ("max_steps", "checkpoint_every")


@dataclass(frozen=True)
class TrainConfig:
    reward: RewardConfig = field(default_factory=lambda: CONFIG_PRESETS["small"])
    seed: int = 0
    max_steps: int = 2000
    batch_size: int = 64  # judgments per step (at least this many when grouped by input)
    # Draw whole inputs (all their judgments) instead of independent judgments: each image is then encoded
    # once per step, cheaper per judgment when inputs have many judgments, but a step sees fewer faces and,
    # measured on the reward benchmark, learns less per step. Off by default.
    group_by_input: bool = False
    learning_rate: float = 2e-3
    # "cosine": linear warm-up over warmup_steps, then cosine decay to min_lr_ratio * learning_rate at
    # max_steps (the small last steps average out the noise of the labels); "constant": learning_rate
    # throughout (the default, as before, so callers that tuned max_steps / patience keep their results).
    lr_schedule: str = "constant"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    # how inputs are held out (reward_model.data.split_by_input), seeded apart from the model: a loop that
    # seeds each round's model differently still holds out the same faces. Configs saved before "stable"
    # existed read back as "permutation" seeded by `seed`, the split they were trained with.
    split: str = "stable"
    split_seed: int = 0
    eval_every: int = 100
    # also at every evaluation; a killed run loses at most this many steps
    checkpoint_every: int = 50
    patience: int = 5  # evaluations without a better validation score before stopping
    min_steps: int = 0  # never stop before this step: early validation accuracy is noisy on small sets
    learn_annotator_reliability: bool = True
    reliability_prior_weight: float = 2.0
    reliability_learning_rate: float = 0.02  # a few scalars per annotator: they can move faster than weights
    bootstrap: bool = True  # each ensemble member sees its own Poisson(1) weighting of the judgments
    hflip: bool = True  # faces are left-right symmetric: flip lq and both candidates together
    version: int = TRAIN_CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.split not in SPLIT_METHODS:
            raise ValueError(f"split must be one of {SPLIT_METHODS}, got {self.split!r}")

    def held_out_split(self, judgments: Sequence[JudgmentRow]) -> tuple[list[JudgmentRow], list[JudgmentRow]]:
        """The non-gold judgments split by input as this config trains on them: (train, validation)."""
        return split_by_input(
            [row for row in judgments if not row.is_gold],
            val_fraction=self.val_fraction,
            seed=self.split_seed,
            method=self.split,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reward"] = self.reward.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        # strict like every config: a misspelt key would otherwise train with the default it meant to change
        reject_unknown_fields(cls, data, message="reward training config has unknown fields")
        values = dict(data)
        if "split" not in values:
            values.update(split="permutation", split_seed=values.get("seed", cls.seed))
        if "reward" in values:
            values["reward"] = RewardConfig.from_dict(values["reward"])
        return cls(**values)


@dataclass
class TrainResult:
    """``stopped``: ``should_stop()`` ended the run early; ``model`` then holds the weights of the last step,
    ``metrics`` only ``steps`` / ``max_steps`` / ``stopped``, and no artifact was written (the checkpoint was:
    the same call resumes)."""

    model: RewardModel
    metrics: dict[str, Any]
    out_dir: Path | None
    reliability: dict[str, dict[str, float]]
    stopped: bool = False


# ------------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def member_rewards_for(
    model: RewardModel, bank: ImageBank, lq_index: Tensor, x_index: Tensor, *, batch_size: int = 256
) -> Tensor:
    """``[N, K]`` member rewards of candidates ``x_index`` on inputs ``lq_index``, each distinct pair scored once."""
    device = next(model.parameters()).device
    combined = lq_index * len(bank.images) + x_index
    unique, inverse = torch.unique(combined, return_inverse=True)
    rewards = []
    model.eval()
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        lq = bank.images[chunk // len(bank.images)].to(device)
        x = bank.images[chunk % len(bank.images)].to(device)
        rewards.append(model.member_rewards(lq, x).cpu())
    if not rewards:
        return torch.empty(0, model.config.ensemble_size)
    return torch.cat(rewards)[inverse]


def expected_calibration_error(confidence: Tensor, correct: Tensor, *, bins: int = 10) -> float:
    """ECE over equal-width bins of the predicted probability of the side chosen as more likely."""
    if len(confidence) == 0:
        return float("nan")
    edges = torch.linspace(0.5, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (
            (confidence > low) & (confidence <= high)
            if low > 0.5
            else (confidence >= low) & (confidence <= high)
        )
        if in_bin.any():
            error += float(in_bin.float().mean()) * abs(
                float(confidence[in_bin].mean()) - float(correct[in_bin].float().mean())
            )
    return error


@torch.no_grad()
def strict_choices_right(model: RewardModel, data: JudgmentTensors, bank: ImageBank) -> Tensor:
    """For each a / b answer of ``data`` (ties and both-bad left out), whether the candidate with the higher
    mean reward is the one chosen."""
    strict = (data.outcome == A) | (data.outcome == B)
    reward_a = member_rewards_for(model, bank, data.lq[strict], data.a[strict]).mean(dim=1)
    reward_b = member_rewards_for(model, bank, data.lq[strict], data.b[strict]).mean(dim=1)
    return ((reward_a - reward_b) > 0).cpu() == (data.outcome[strict] == A).cpu()


@torch.no_grad()
def evaluate(
    model: RewardModel,
    data: JudgmentTensors,
    bank: ImageBank,
    reliability: AnnotatorReliability | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` on judgments ``data``.

    ``pairwise_accuracy``: on a / b answers, how often the higher mean reward is the chosen candidate.
    ``log_loss`` (all four outcomes) and ``pairwise_log_loss`` / ``calibration_error`` (ECE, a / b answers
    only) score the probabilities of the full judgment model (ties, both-bad, annotator reliability).
    """
    if len(data) == 0:
        return {"n": 0.0}
    reward_a = member_rewards_for(model, bank, data.lq, data.a)
    reward_b = member_rewards_for(model, bank, data.lq, data.b)
    if reliability is not None:
        scale, side_bias = reliability.lookup(reliability.indices(data.annotator_ids))
    else:
        scale, side_bias = torch.ones(len(data)), torch.zeros(len(data))
    log_probs = model.judgment.log_probs(
        reward_a.cpu(),
        reward_b.cpu(),
        scale=scale.unsqueeze(-1),
        side_bias=side_bias.unsqueeze(-1),
        a_shown_left=data.a_shown_left.unsqueeze(-1),
    )
    probs = log_probs.exp().mean(dim=1)  # mixture over ensemble members, [N, 4]
    log_loss = -probs.gather(1, data.outcome.unsqueeze(1)).clamp(min=1e-12).log().mean()

    strict = (data.outcome == A) | (data.outcome == B)
    chose_a = data.outcome[strict] == A
    reward_difference = (reward_a - reward_b).mean(dim=1)[strict]
    p_a = probs[strict, A] / (probs[strict, A] + probs[strict, B]).clamp(min=1e-12)
    p_chosen = torch.where(chose_a, p_a, 1 - p_a).clamp(1e-12, 1.0)
    predicted_a = p_a > 0.5
    return {
        "n": float(len(data)),
        "n_strict": float(strict.sum()),
        "pairwise_accuracy": float(((reward_difference > 0) == chose_a).float().mean())
        if strict.any()
        else float("nan"),
        "pairwise_log_loss": float(-p_chosen.log().mean()) if strict.any() else float("nan"),
        "calibration_error": expected_calibration_error(torch.maximum(p_a, 1 - p_a), predicted_a == chose_a),
        "log_loss": float(log_loss),
    }


@torch.no_grad()
def gold_accuracy(model: RewardModel, gold_rows: Sequence[JudgmentRow], bank: ImageBank) -> float | None:
    """Agreement with the consensus answer of each gold pair (majority of a / b answers, ties skipped)."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    representative: dict[str, JudgmentRow] = {}
    for row in gold_rows:
        if row.outcome in ("a", "b"):
            votes[row.pair_id][row.outcome] += 1
            representative.setdefault(row.pair_id, row)
    decided = [
        (pair_id, counts.most_common(1)[0][0])
        for pair_id, counts in votes.items()
        if counts["a"] != counts["b"]
    ]
    if not decided:
        return None
    rows = [representative[pair_id] for pair_id, _ in decided]
    data = JudgmentTensors.from_rows(rows, bank)
    difference = (
        member_rewards_for(model, bank, data.lq, data.a) - member_rewards_for(model, bank, data.lq, data.b)
    ).mean(1)
    consensus_a = torch.tensor([answer == "a" for _, answer in decided])
    return float(((difference > 0) == consensus_a).float().mean())


# -------------------------------------------------------------------------------------------- training


def learning_rate_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of every learning rate at step ``step`` (0-based) under ``config.lr_schedule``.

    It depends on the step and ``max_steps`` only, so a resumed run follows the same schedule (stretched to
    the new ``max_steps`` when that grew).
    """
    if config.lr_schedule == "constant":
        return 1.0
    if config.lr_schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r} (expected 'cosine' or 'constant')")
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + 0.5 * (1 - config.min_lr_ratio) * (1 + math.cos(math.pi * progress))


def _score(metrics: dict[str, float]) -> tuple[float, float]:
    """Early-stopping score: validation accuracy first, lower log-loss breaks ties."""
    return (metrics.get("pairwise_accuracy", float("nan")), -metrics.get("log_loss", float("inf")))


def _better(candidate: tuple[float, float], best: tuple[float, float] | None) -> bool:
    return best is None or candidate > best


def _rows_by_input(rows: Sequence[JudgmentRow]) -> list[Tensor]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        grouped[row.input_id].append(index)
    return [torch.tensor(indices, dtype=torch.long) for indices in grouped.values()]


def _grouped_batch(rows_by_input: Sequence[Tensor], batch_size: int, generator: torch.Generator) -> Tensor:
    """Every judgment of randomly drawn inputs, until there are at least ``batch_size`` of them.

    Judgments of one input share candidates, so grouping them lets a batch encode each image once: with
    many judgments per input this needs several times fewer forward passes than independent rows.
    """
    chosen: list[Tensor] = []
    count = 0
    for input_index in torch.randperm(len(rows_by_input), generator=generator).tolist():
        chosen.append(rows_by_input[input_index])
        count += len(rows_by_input[input_index])
        if count >= batch_size:
            break
    return torch.cat(chosen)


def _save_checkpoint(
    checkpoint_dir: Path,
    *,
    config: TrainConfig,
    model: RewardModel,
    best_state: dict[str, Tensor],
    reliability: AnnotatorReliability | None,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: dict[str, Any],
) -> None:
    # Written beside the last one and swapped in, so that a run killed mid-write still finds a whole checkpoint
    # (a mix of new weights and an old step count would resume silently wrong).
    final_dir = checkpoint_dir
    checkpoint_dir = final_dir.with_name(final_dir.name + ".partial")
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    (checkpoint_dir / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(checkpoint_dir / "model.safetensors"),
    )
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in best_state.items()},
        str(checkpoint_dir / "best.safetensors"),
    )
    if reliability is not None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in reliability.state_dict().items()},
            str(checkpoint_dir / "reliability.safetensors"),
        )
    torch.save(
        {"optimizer": optimizer.state_dict(), "generator": generator.get_state()},
        checkpoint_dir / "trainer_state.pt",
    )
    (checkpoint_dir / "progress.json").write_text(json.dumps(progress, indent=2))
    previous = final_dir.with_name(final_dir.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(previous)
    checkpoint_dir.rename(final_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _checkpoint_to_resume(checkpoint_dir: Path) -> Path | None:
    """The checkpoint folder, or the one it replaces when a save was killed between the two renames."""
    for folder in (checkpoint_dir, checkpoint_dir.with_name(checkpoint_dir.name + ".previous")):
        if (folder / "progress.json").is_file():
            return folder
    return None


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config_dict.items() if key not in RESUMABLE_CHANGES}


def train(
    config: TrainConfig,
    *,
    judgments: Sequence[JudgmentRow],
    images: ImageBank,
    out_dir: str | Path | None = None,
    init_model: RewardModel | None = None,
    device: str | torch.device | None = "cpu",
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a reward model to ``judgments`` (images looked up by key in ``images``); save to ``out_dir`` if given.

    ``init_model`` warm-starts from an existing model (e.g. the previous round of active learning). With an
    ``out_dir`` the run resumes from its checkpoint. ``on_progress(step, max_steps, metrics)`` is called at every
    evaluation and checkpoint and once at the end (with the final metrics); ``should_stop()`` before every step:
    True saves the checkpoint and returns a ``TrainResult`` with ``stopped=True`` and no artifact.
    ``on_log(line)`` hears what a log should say: a resume, an early stop, a stop on request. ``device``: a
    ``torch.device`` or a name for :func:`restorer.devices.resolve_device` (``None`` / ``"auto"``: a GPU if any).
    """

    def log(line: str) -> None:
        if on_log is not None:
            on_log(line)

    if not isinstance(device, torch.device):
        device = resolve_device(device)
    torch.manual_seed(config.seed)
    if images.resolution != config.reward.resolution:
        raise ValueError(
            f"image bank resolution {images.resolution} != model resolution {config.reward.resolution}"
        )
    gold_rows = [row for row in judgments if row.is_gold]
    train_rows, val_rows = config.held_out_split(judgments)
    if not train_rows:
        raise ValueError("no training judgments left after holding out validation inputs and gold pairs")
    train_data = JudgmentTensors.from_rows(train_rows, images)
    val_data = JudgmentTensors.from_rows(val_rows, images)

    model = copy.deepcopy(init_model) if init_model is not None else RewardModel(config.reward)
    if model.config != config.reward:
        raise ValueError("init_model's config differs from config.reward")
    model.to(device)
    reliability = (
        AnnotatorReliability(train_data.annotator_ids, prior_weight=config.reliability_prior_weight).to(
            device
        )
        if config.learn_annotator_reliability
        else None
    )
    parameters = [{"params": model.parameters(), "weight_decay": config.weight_decay}]
    if reliability is not None:
        parameters.append(
            {"params": reliability.parameters(), "weight_decay": 0.0, "lr": config.reliability_learning_rate}
        )
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    for group in optimizer.param_groups:  # the schedule scales every group's own rate
        group["base_lr"] = group["lr"]

    members = config.reward.ensemble_size
    rng = np.random.default_rng(config.seed)
    if config.bootstrap and members > 1:
        sample_weights = torch.from_numpy(rng.poisson(1.0, size=(len(train_data), members))).float()
    else:
        sample_weights = torch.ones(len(train_data), members)
    annotator_index = reliability.indices(train_data.annotator_ids) if reliability is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    rows_by_input = _rows_by_input(train_rows)

    step, best_step, evals_without_improvement = 0, 0, 0
    best_score: tuple[float, float] | None = None
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint_dir = Path(out_dir) / "checkpoint" if out_dir is not None else None
    resume_dir = _checkpoint_to_resume(checkpoint_dir) if checkpoint_dir is not None else None
    if resume_dir is not None:
        saved_config = json.loads((resume_dir / "train_config.json").read_text())
        # Resuming with a larger budget trains on; anything that changes what a step computes is refused.
        if _comparable(saved_config) != _comparable(config.to_dict()):
            raise ValueError(f"{resume_dir} was written with a different training config; use a fresh --out")
        model.load_state_dict(load_file(str(resume_dir / "model.safetensors")))
        best_state = {k: v.to(device) for k, v in load_file(str(resume_dir / "best.safetensors")).items()}
        if reliability is not None:
            reliability.load_state_dict(load_file(str(resume_dir / "reliability.safetensors")))
        trainer_state = torch.load(resume_dir / "trainer_state.pt", weights_only=True)
        optimizer.load_state_dict(trainer_state["optimizer"])
        generator.set_state(trainer_state["generator"])
        saved = json.loads((resume_dir / "progress.json").read_text())
        step, best_step, evals_without_improvement = (
            saved["step"],
            saved["best_step"],
            saved["evals_without_improvement"],
        )
        best_score = tuple(saved["best_score"]) if saved["best_score"] is not None else None  # type: ignore[assignment]
        log(f"resumed from checkpoint at step {step} of {config.max_steps}")

    def checkpoint_now() -> None:
        if checkpoint_dir is None:
            return
        _save_checkpoint(
            checkpoint_dir,
            config=config,
            model=model,
            best_state=best_state,
            reliability=reliability,
            optimizer=optimizer,
            generator=generator,
            progress={
                "step": step,
                "best_step": best_step,
                "evals_without_improvement": evals_without_improvement,
                "best_score": list(best_score) if best_score is not None else None,
            },
        )

    started = time.perf_counter()
    stopped_early = (
        evals_without_improvement >= config.patience and step >= config.min_steps and len(val_data) > 0
    )
    bar = tqdm(
        total=config.max_steps, initial=step, desc="reward model", disable=not progress, dynamic_ncols=True
    )
    while step < config.max_steps and not stopped_early:
        if should_stop is not None and should_stop():
            checkpoint_now()
            bar.close()
            log(
                f"stopped on request at step {step} of {config.max_steps}; rerun to resume from the checkpoint"
            )
            return TrainResult(
                model=model,
                metrics={"steps": step, "max_steps": config.max_steps, "stopped": True},
                out_dir=Path(out_dir) if out_dir is not None else None,
                reliability=reliability.summary() if reliability is not None else {},
                stopped=True,
            )
        model.train()
        if config.group_by_input:
            batch = _grouped_batch(rows_by_input, config.batch_size, generator)
        else:
            batch = torch.randint(len(train_data), (config.batch_size,), generator=generator)
        # Each distinct candidate (with its LQ) is encoded once even when several judgments of the batch share it.
        pair_keys = torch.cat(
            [
                train_data.lq[batch] * len(images.images) + train_data.a[batch],
                train_data.lq[batch] * len(images.images) + train_data.b[batch],
            ]
        )
        unique_keys, inverse = torch.unique(pair_keys, return_inverse=True)
        lq = images.images[unique_keys // len(images.images)]
        x = images.images[unique_keys % len(images.images)]
        if config.hflip:
            # One flip decision per input, so an LQ and all its candidates are flipped together.
            flip = (torch.rand(len(images.images), generator=generator) < 0.5)[
                unique_keys // len(images.images)
            ]
            lq, x = (torch.where(flip[:, None, None, None], image.flip(-1), image) for image in (lq, x))
        rewards = model.member_rewards(lq.to(device), x.to(device))[inverse.to(device)]
        reward_a, reward_b = rewards.chunk(2)
        if reliability is not None and annotator_index is not None:
            scale, side_bias = reliability.lookup(annotator_index[batch].to(device))
            scale, side_bias = scale.unsqueeze(-1), side_bias.unsqueeze(-1)
        else:
            scale, side_bias = torch.ones(1, device=device), torch.zeros(1, device=device)
        nll = model.judgment.negative_log_likelihood(
            reward_a,
            reward_b,
            train_data.outcome[batch].to(device).unsqueeze(-1),
            scale=scale,
            side_bias=side_bias,
            a_shown_left=train_data.a_shown_left[batch].to(device).unsqueeze(-1),
        )
        loss = (nll * sample_weights[batch].to(device)).mean()
        if reliability is not None:
            # The prior is over the whole data set, the likelihood above is a per-judgment mean.
            loss = loss + reliability.prior_penalty() / len(train_data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        factor = learning_rate_factor(config, step)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        optimizer.step()
        step += 1
        loss_value = float(loss.detach())
        bar.update(1)

        step_metrics = {"loss": loss_value}
        evaluated = step % config.eval_every == 0 or step == config.max_steps
        if evaluated:
            if len(val_data) > 0:
                val_metrics = evaluate(model, val_data, images, reliability)
                step_metrics.update({f"val_{key}": value for key, value in val_metrics.items()})
                score = _score(val_metrics)
                bar.set_postfix(loss=f"{loss_value:.3f}", val_acc=f"{val_metrics['pairwise_accuracy']:.3f}")
                if _better(score, best_score):
                    best_score, best_step, evals_without_improvement = score, step, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    evals_without_improvement += 1
                    stopped_early = evals_without_improvement >= config.patience and step >= config.min_steps
                    if stopped_early:
                        log(
                            f"stopped early at step {step}: validation accuracy has not improved for "
                            f"{config.patience} evaluations; keeping the model of step {best_step}"
                        )
            else:
                best_step, best_state = step, {k: v.detach().clone() for k, v in model.state_dict().items()}
                bar.set_postfix(loss=f"{loss_value:.3f}")
        if evaluated or step % config.checkpoint_every == 0:
            checkpoint_now()
            if on_progress is not None:
                on_progress(step, config.max_steps, step_metrics)
    bar.close()
    train_seconds = time.perf_counter() - started

    model.load_state_dict(best_state)
    model.eval()
    val_metrics = evaluate(model, val_data, images, reliability)
    train_metrics = evaluate(model, train_data, images, reliability)
    metrics: dict[str, Any] = {
        "val_pairwise_accuracy": val_metrics.get("pairwise_accuracy"),
        "val_log_loss": val_metrics.get("log_loss"),
        "val_pairwise_log_loss": val_metrics.get("pairwise_log_loss"),
        "val_calibration_error": val_metrics.get("calibration_error"),
        "gold_pair_accuracy": gold_accuracy(model, gold_rows, images) if gold_rows else None,
        "train_pairwise_accuracy": train_metrics.get("pairwise_accuracy"),
        "n_train_judgments": len(train_data),
        "n_val_judgments": len(val_data),
        "n_gold_judgments": len(gold_rows),
        "n_train_inputs": len({row.input_id for row in train_rows}),
        "n_val_inputs": len({row.input_id for row in val_rows}),
        "best_step": best_step,
        "steps": step,
        "stopped_early": stopped_early,
        "train_seconds_this_run": round(train_seconds, 2),
        "tie_strength": model.judgment.tie_strength,
        "bad_threshold": float(model.judgment.bad_threshold.detach()),
        "annotator_reliability": reliability.summary() if reliability is not None else {},
        "train_config": config.to_dict(),
    }
    metrics = {
        key: (None if isinstance(value, float) and np.isnan(value) else value)
        for key, value in metrics.items()
    }
    if out_dir is not None:
        model.save_pretrained(out_dir, metrics=metrics)
    if on_progress is not None:
        on_progress(
            step,
            config.max_steps,
            {
                key: float(value)
                for key, value in metrics.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            },
        )
    return TrainResult(
        model=model,
        metrics=metrics,
        out_dir=Path(out_dir) if out_dir is not None else None,
        reliability=reliability.summary() if reliability is not None else {},
    )


# ------------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reward_model.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--judgments", required=True, type=Path, help="preference export (JSONL)")
    parser.add_argument(
        "--images", required=True, type=Path, help="folder holding the images under their storage keys"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="artifact directory to write (and resume from)"
    )
    parser.add_argument("--config", default="small", choices=sorted(CONFIG_PRESETS), help="reward model size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction)
    parser.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    parser.add_argument(
        "--no-annotator-reliability", action="store_true", help="weigh every annotator equally"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rows = read_judgments(args.judgments)
    reward_config = dataclasses.replace(CONFIG_PRESETS[args.config], seed=args.seed)
    config = TrainConfig(
        reward=reward_config,
        seed=args.seed,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        eval_every=args.eval_every,
        learn_annotator_reliability=not args.no_annotator_reliability,
    )
    bank = ImageBank.from_directory(args.images, keys_of(rows), config.reward.resolution)
    result = train(config, judgments=rows, images=bank, out_dir=args.out, device=args.device)
    summary = {k: v for k, v in result.metrics.items() if k not in ("annotator_reliability", "train_config")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
