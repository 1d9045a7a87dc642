"""RL fine-tuning of a restorer artifact against a reward-model artifact: the job runner's entry point and CLI.

    python -m rl_trainer.train --policy <restorer dir> --reward <reward dir> --inputs <manifest> --out <dir> \
        --config tiny

The manifest format is described in ``rl_trainer.manifest``. The output folder receives a restorer artifact
(``Restorer.from_pretrained(out)`` loads it) whose ``metrics.json`` records under ``"rl"`` its parent restorer,
its reward model, the RL config, the evaluations and why training stopped; ``rl_config.json`` holds the config
and ``checkpoints/`` the state to resume from after a crash (rerun the same command; removed once the run has
ended). ``rl_result.json``, written last, marks a finished run: calling again with the same config returns its
result without training (a redelivered job is idempotent).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rl_trainer.checkpoints import CHECKPOINTS_DIR, CheckpointError, load_latest_checkpoint, save_checkpoint
from rl_trainer.config import RLConfig, config_from_argument
from rl_trainer.guard import HeldOutEvaluator, default_held_out
from rl_trainer.lora import add_lora, merge_lora
from rl_trainer.manifest import RLInputs, load_inputs, read_manifest, split_entries
from rl_trainer.rewards import DistanceFn, RewardFn, learned_reward, perceptual_reward_distance
from rl_trainer.trainer import RLTrainer

ProgressCallback = Callable[[int, int, dict[str, float]], None]
LogCallback = Callable[[str], None]
ArtifactWriter = Callable[[nn.Module, Path, dict[str, Any]], None]

STOP_COMPLETED = "completed"
STOP_REWARD_HACKING = "reward_hacking"
STOP_CANCELLED = "cancelled"
STOP_TIME_BUDGET = "time_budget"
STOP_FIDELITY_BUDGET = "fidelity_budget"
# ends that hand back a policy as intended (the artifact is the run's result), unlike the guard or a cancel
NORMAL_ENDS = (STOP_COMPLETED, STOP_TIME_BUDGET, STOP_FIDELITY_BUDGET)
RESULT_FILE = "rl_result.json"


@dataclass
class RLResult:
    out_dir: Path
    steps: int
    stop_reason: str  # completed | time_budget | fidelity_budget | reward_hacking | cancelled
    message: str
    rollouts: int  # sampled trajectories
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    entropy_before: float | None = None
    entropy_after: float | None = None
    rolled_back_to_step: int | None = None
    selected_step: int | None = None  # config.keep_best: the evaluation whose policy was handed back
    backoffs: int = 0  # config.fidelity_backoffs: how often the run went back within its fidelity budgets

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason not in NORMAL_ENDS

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "stop_reason": self.stop_reason,
            "stopped_early": self.stopped_early,
            "message": self.message,
            "rollouts": self.rollouts,
            "seconds": round(self.seconds, 2),
            "entropy_before": self.entropy_before,
            "entropy_after": self.entropy_after,
            "rolled_back_to_step": self.rolled_back_to_step,
            "selected_step": self.selected_step,
            "backoffs": self.backoffs,
            "evaluations": self.evaluations,
        }


def _trainable_state(policy: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().cpu().clone() for name, p in policy.named_parameters() if p.requires_grad}


def _held_out_key(evaluation: dict[str, float], config: RLConfig) -> list[float] | None:
    """How ``keep_best`` ranks evaluations: those within ``keep_best_entropy_ratio`` first, then by the held-out win
    rate against the reference, then by the mean held-out score."""
    if "eval/held_out_win" not in evaluation:
        return None
    ratio = config.keep_best_entropy_ratio
    deterministic_enough = ratio is None or evaluation["eval/entropy_ratio"] <= ratio
    return [float(deterministic_enough), evaluation["eval/held_out_win"], evaluation["eval/held_out"]]


def _fidelity_drop(evaluation: dict[str, float], first: dict[str, float]) -> float | None:
    """How many dB of held-out observation PSNR an evaluation lost since step 0 (None: no held-out score)."""
    if "eval/held_out" not in evaluation or "eval/held_out" not in first:
        return None
    return first["eval/held_out"] - evaluation["eval/held_out"]


def train_policy(
    config: RLConfig,
    *,
    policy: nn.Module,
    reference: nn.Module,
    reward_fn: RewardFn,
    train_inputs: RLInputs,
    eval_inputs: RLInputs | None,
    out_dir: Path | str,
    sampler: Any = None,
    held_out: HeldOutEvaluator | None = None,
    perceptual: DistanceFn | None = None,
    write_artifact: ArtifactWriter | None = None,
    lineage: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_bar: bool = True,
    on_log: LogCallback | None = None,
) -> RLResult:
    """The RL loop over already-built models and inputs; ``train`` wraps it for artifact folders.

    ``policy`` is trained in place (LoRA adapters are injected first when ``config.use_lora``) and handed to
    ``write_artifact(policy, out_dir, rl_metrics)`` at the end, adapters merged. Resumes from the latest checkpoint
    in ``out_dir``. Ends after ``config.max_steps`` steps, or earlier: at the time budget (``config.max_minutes``,
    artifact written), when the reward-hacking guard fires (artifact of the policy before the divergence), or
    when ``should_stop()`` says so (cancelled: checkpoint kept, no artifact). With ``config.keep_best`` and a held-out
    evaluator, a run that ends normally hands back the policy of its best evaluation (``RLResult.selected_step``).
    ``on_log(line)`` hears a resume ("resumed from checkpoint at step N of M"), a finished run found in
    ``out_dir`` and, at the end, ``RLResult.message`` (why training stopped: guard, budget, cancel, completion).
    """

    def log(line: str) -> None:
        if on_log is not None:
            on_log(line)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = _finished_run(out_dir, config)
    if finished is not None:
        log(
            f"{out_dir} holds a finished run ({finished.steps} steps, {finished.stop_reason}): not training again"
        )
        return finished  # a redelivered job: the run already ended and wrote its artifact
    config.save(out_dir / "rl_config.json")
    torch.manual_seed(config.seed)
    if config.use_lora:
        add_lora(policy, rank=config.lora_rank, alpha=config.lora_alpha)
    trainer = RLTrainer(
        config,
        policy,
        reference,
        reward_fn,
        train_inputs=train_inputs,
        eval_inputs=eval_inputs,
        sampler=sampler,
        held_out=held_out,
        perceptual=perceptual,
    )

    history: list[dict[str, float]] = []
    evaluations: list[dict[str, float]] = []
    # trainable weights at recent evaluations: where to roll back to when the guard fires
    snapshots: dict[int, dict[str, Tensor]] = {}
    # config.keep_best: the evaluation with the best held-out key so far, and its trainable weights
    best: dict[str, Any] | None = None
    # the last evaluation within the fidelity budgets (where a run that went past them goes back to), and how
    # often it went back
    within_budget_step = 0
    backoffs = 0
    entropy_before: float | None = None
    seconds_before = 0.0
    checkpoint = load_latest_checkpoint(out_dir, config)
    if checkpoint is not None:
        trainer.load(checkpoint.policy_state, checkpoint.training_state, checkpoint.state["guard"])
        history = checkpoint.state["history"]
        evaluations = checkpoint.state["evaluations"]
        entropy_before = checkpoint.state["entropy_before"]
        seconds_before = float(checkpoint.state["seconds"])
        snapshots = {int(key): value for key, value in checkpoint.training_state["snapshots"].items()}
        best = checkpoint.training_state.get("best")
        within_budget_step = int(checkpoint.state.get("within_budget_step", 0))
        backoffs = int(checkpoint.state.get("backoffs", 0))
        log(f"resumed from checkpoint at step {trainer.step_count} of {config.max_steps}")
    else:
        if config.entropy_seeds:
            entropy_before = trainer.entropy()
        # the first evaluation gives the guard its starting point (no streak can begin before a second one)
        evaluations.append({"step": 0, **trainer.update_guard(trainer.evaluate())})
        snapshots[0] = _trainable_state(policy)
        first_key = _held_out_key(evaluations[0], config)
        if config.keep_best and first_key is not None:
            best = {"step": 0, "key": first_key, "state": snapshots[0]}

    started = time.perf_counter()

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - started

    def checkpoint_now() -> None:
        save_checkpoint(
            out_dir,
            step=trainer.step_count,
            policy_state=trainer.policy_state(),
            training_state={
                **trainer.training_state(),
                "snapshots": {str(k): v for k, v in snapshots.items()},
                "best": best,
            },
            state={
                "config": config.to_dict(),
                "guard": trainer.guard.state_dict(),
                "history": history,
                "evaluations": evaluations,
                "entropy_before": entropy_before,
                "seconds": elapsed(),
                "within_budget_step": within_budget_step,
                "backoffs": backoffs,
            },
            keep=config.keep_checkpoints,
        )

    stop_reason, message, rolled_back_to = STOP_COMPLETED, f"trained {config.max_steps} steps", None
    bar = tqdm(total=config.max_steps, initial=trainer.step_count, desc="rl", disable=not progress_bar)
    postfix: dict[str, float] = {}
    while trainer.step_count < config.max_steps:
        if should_stop is not None and should_stop():
            stop_reason = STOP_CANCELLED
            message = f"cancelled after {trainer.step_count} steps; rerun to resume from the checkpoint"
            checkpoint_now()
            break
        metrics = trainer.step()
        step = trainer.step_count
        history.append({"step": float(step), **metrics})
        postfix.update(
            reward=metrics["reward/total"],
            kl=metrics["kl"],
            fidelity=metrics.get("reward/consistency", float("nan")),
            sps=metrics["samples_per_s"],
        )
        # stop before a step that would overrun the budget (steps take about equally long)
        out_of_time = (
            config.max_minutes is not None
            and step < config.max_steps
            and elapsed() + metrics["step_seconds"] > 60 * config.max_minutes
        )
        if step % config.eval_every == 0 or step == config.max_steps or out_of_time:
            # evaluate() only measures; the guard counts this evaluation here, once
            guard_before = copy.deepcopy(trainer.guard.state_dict())
            evaluation = trainer.update_guard(trainer.evaluate())
            evaluations.append({"step": float(step), **evaluation})
            metrics.update(evaluation)
            postfix.update(held_out=evaluation.get("eval/held_out", float("nan")))
            snapshots[step] = _trainable_state(policy)
            for old_step in sorted(snapshots)[: -(config.hacking_patience + 1)]:
                if old_step != within_budget_step:
                    del snapshots[old_step]
            drop = _fidelity_drop(evaluation, evaluations[0])
            budget = config.fidelity_budget_db
            face_budget = config.fidelity_face_budget_db
            worst_drop = evaluation.get("eval/held_out_worst_drop")
            over_mean_budget = budget is not None and drop is not None and drop > budget
            over_face_budget = face_budget is not None and worst_drop is not None and worst_drop > face_budget
            over_budget = over_mean_budget or over_face_budget
            key = _held_out_key(evaluation, config)
            if best is not None and key is not None and key > best["key"] and not over_budget:
                best = {"step": step, "key": key, "state": snapshots[step]}
            if not over_budget:
                within_budget_step = step
            if over_budget:
                fell = (
                    f"the held-out observation PSNR fell {drop:.2f} dB below step 0's, past the {budget:g} dB budget"
                    if over_mean_budget
                    else f"one held-out face's observation PSNR fell {worst_drop:.2f} dB below its own at step 0,"
                    f" past the {face_budget:g} dB budget per face"
                    + (
                        f" (PSNR above {config.fidelity_face_ceiling_db:g} dB counted as that)"
                        if config.fidelity_face_ceiling_db is not None
                        else ""
                    )
                )
                # the snapshots always keep the last evaluation within the budgets
                policy.load_state_dict(snapshots[within_budget_step], strict=False)
                # past the last step there is nothing to go on with: the run ends at the policy it went back to
                if backoffs < config.fidelity_backoffs and step < config.max_steps and not out_of_time:
                    # this evaluation never happened for the guard and the best: its policy is gone
                    backoffs += 1
                    trainer.back_off(config.fidelity_backoff_factor)
                    trainer.guard.load_state_dict(guard_before)
                    del snapshots[step]
                    evaluations[-1]["eval/backed_off"] = float(backoffs)
                    log(
                        f"step {step}: {fell}; back to the policy of step {within_budget_step}, learning rate"
                        f" x{config.fidelity_backoff_factor**backoffs:g} ({backoffs} of {config.fidelity_backoffs})"
                    )
                else:
                    rolled_back_to = within_budget_step
                    stop_reason = STOP_FIDELITY_BUDGET
                    message = f"stopped at step {step}: {fell}; kept the policy of step {rolled_back_to}, the last within it"
            elif trainer.guard.triggered:
                rolled_back_to = min(snapshots)
                policy.load_state_dict(snapshots[rolled_back_to], strict=False)
                stop_reason = STOP_REWARD_HACKING
                message = (
                    f"stopped early at step {step}: the learned reward rose while the held-out "
                    f"{held_out.name if held_out else 'evaluator'} fell for {config.hacking_patience} evaluations "
                    f"in a row; kept the policy of step {rolled_back_to}, before the divergence"
                )
        bar.set_postfix({key: f"{value:.4g}" for key, value in postfix.items()})
        bar.update(1)
        if on_progress is not None:
            on_progress(step, config.max_steps, metrics)
        if stop_reason != STOP_COMPLETED:
            break
        if step % config.checkpoint_every == 0 or step == config.max_steps or out_of_time:
            checkpoint_now()
        if out_of_time:
            stop_reason = STOP_TIME_BUDGET
            message = (
                f"trained {step} of {config.max_steps} steps: the {config.max_minutes}-minute budget ran out"
            )
            break
    bar.close()

    if backoffs:
        message += (
            f"; went back within the fidelity budgets {backoffs} time{'s' if backoffs > 1 else ''}"
            f" (learning rate x{config.fidelity_backoff_factor**backoffs:g})"
        )
    selected_step = None
    if best is not None and stop_reason in NORMAL_ENDS:
        selected_step = int(best["step"])
        if selected_step != (rolled_back_to if rolled_back_to is not None else trainer.step_count):
            policy.load_state_dict(best["state"], strict=False)
        message += (
            f"; kept the policy of step {selected_step}, the best held-out win rate against the reference"
            f" ({best['key'][1]:.1%} of the evaluation images)"
        )
        if config.keep_best_entropy_ratio is not None:
            message += (
                f" among evaluations with solution entropy <= {config.keep_best_entropy_ratio:g} x the reference's"
                if best["key"][0]
                else f" (no evaluation had solution entropy <= {config.keep_best_entropy_ratio:g} x the reference's)"
            )

    log(message)
    result = RLResult(
        out_dir=out_dir,
        steps=trainer.step_count,
        stop_reason=stop_reason,
        message=message,
        rollouts=trainer.step_count * config.samples_per_step,
        seconds=elapsed(),
        history=history,
        evaluations=evaluations,
        entropy_before=entropy_before,
        rolled_back_to_step=rolled_back_to,
        selected_step=selected_step,
        backoffs=backoffs,
    )
    if stop_reason == STOP_CANCELLED:
        return result
    if config.entropy_seeds:
        result.entropy_after = trainer.entropy()
    if config.use_lora:
        merge_lora(policy)
    rl_metrics = {
        "rl_config": config.to_dict(),
        **(lineage or {}),
        **result.summary(),
        "final": history[-1] if history else {},
    }
    if write_artifact is not None:
        write_artifact(policy, out_dir, rl_metrics)
    # written last: its presence says the run is over and the artifact complete
    record = {**rl_metrics, "history": history}
    (out_dir / RESULT_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    # the checkpoints (optimizer state, snapshots) are only for resuming; keep the artifact folder small
    shutil.rmtree(out_dir / CHECKPOINTS_DIR, ignore_errors=True)
    return result


def _finished_run(out_dir: Path, config: RLConfig) -> RLResult | None:
    path = out_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is unreadable: {error}; remove it to train again") from error
    if record.get("rl_config") != config.to_dict():
        raise CheckpointError(
            f"{out_dir} holds a finished run with another RLConfig; use a fresh output folder"
        )
    return RLResult(
        out_dir=out_dir,
        steps=int(record["steps"]),
        stop_reason=str(record["stop_reason"]),
        message=str(record["message"]),
        rollouts=int(record["rollouts"]),
        seconds=float(record["seconds"]),
        history=record["history"],
        evaluations=record["evaluations"],
        entropy_before=record["entropy_before"],
        entropy_after=record["entropy_after"],
        rolled_back_to_step=record["rolled_back_to_step"],
        selected_step=record.get("selected_step"),
        backoffs=int(record.get("backoffs", 0)),
    )


def _write_restorer_artifact(policy: nn.Module, out_dir: Path, rl_metrics: dict[str, Any]) -> None:
    """The tuned restorer as an artifact like any other (restorer.artifacts); its metrics.json holds the run."""
    policy.save_pretrained(out_dir, metrics={"rl": rl_metrics})  # type: ignore[operator]


def train(
    config: RLConfig | str,
    *,
    policy_dir: Path | str,
    reward_dir: Path | str,
    inputs_manifest: Path | str,
    out_dir: Path | str,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_bar: bool = True,
    device: str | torch.device | None = "cpu",
    on_log: LogCallback | None = None,
) -> RLResult:
    """Fine-tune the restorer artifact ``policy_dir`` against the reward model ``reward_dir`` on the manifest's
    inputs; writes a restorer artifact to ``out_dir``. ``on_progress(step, total, metrics)`` is called after every
    step and ``should_stop()`` before each (True cancels, keeping a checkpoint to resume from); ``on_log`` as in
    ``train_policy``. ``device``: a ``torch.device`` or a name for ``restorer.devices.resolve_device`` (``None`` /
    ``"auto"``: a GPU when there is one)."""
    from restorer.devices import resolve_device
    from restorer.metrics import PerceptualDistance
    from restorer.model import Restorer
    from reward_model.model import RewardModel

    if not isinstance(device, torch.device):
        device = resolve_device(device)
    if isinstance(config, str):
        config = config_from_argument(config)
    policy = Restorer.from_pretrained(policy_dir, device=device)
    reference = copy.deepcopy(policy)
    reward_model = RewardModel.from_pretrained(reward_dir, device=device)
    reward_model.eval()
    for parameter in reward_model.parameters():
        parameter.requires_grad_(False)

    reward_fn = learned_reward(
        reward_model,
        pessimism=config.learned_reward_pessimism,
        augmentations=config.learned_reward_augmentations,
        max_shift=config.learned_reward_max_shift,
        seed=config.seed,
        centered_disagreement=config.learned_reward_centered_disagreement,
    )

    entries = read_manifest(inputs_manifest)
    train_entries, eval_entries = split_entries(entries, config.eval_fraction)
    resolution = int(policy.config.resolution)
    train_inputs = load_inputs(train_entries, resolution)
    eval_inputs = load_inputs(eval_entries, resolution) if eval_entries else None
    distance = PerceptualDistance(device=device)
    held_out = default_held_out(eval_inputs or train_inputs, config, distance, distance.name)
    # The perceptual reward term is never the held-out evaluator's distance: the guard would then watch the very
    # score the policy climbs. It is LPIPS heads on random trunks of other seeds: akin, not the same.
    perceptual = (
        perceptual_reward_distance(config.perceptual_trunks, device) if config.perceptual_weight > 0 else None
    )
    lineage = {
        "parent_restorer": str(Path(policy_dir).resolve()),
        "reward_model": str(Path(reward_dir).resolve()),
        "inputs_manifest": str(Path(inputs_manifest).resolve()),
        "train_inputs": len(train_inputs),
        "eval_inputs": len(eval_inputs) if eval_inputs is not None else 0,
        "held_out_evaluator": held_out.name,
        "perceptual_reward": perceptual.name if perceptual is not None else None,
    }
    return train_policy(
        config,
        policy=policy,
        reference=reference,
        reward_fn=reward_fn,
        train_inputs=train_inputs,
        eval_inputs=eval_inputs,
        out_dir=out_dir,
        held_out=held_out,
        perceptual=perceptual,
        write_artifact=_write_restorer_artifact,
        lineage=lineage,
        on_progress=on_progress,
        should_stop=should_stop,
        progress_bar=progress_bar,
        on_log=on_log,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_trainer.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="restorer artifact folder to fine-tune")
    parser.add_argument("--reward", required=True, help="reward model artifact folder")
    parser.add_argument(
        "--inputs", required=True, help="inputs manifest (JSONL or JSON, see rl_trainer.manifest)"
    )
    parser.add_argument("--out", required=True, help="output folder (resumes from its checkpoints)")
    parser.add_argument(
        "--config", default="tiny", help="preset name (test, tiny, base) or a config JSON path"
    )
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)
    overrides = {
        key: value for key, value in (("max_steps", args.max_steps), ("seed", args.seed)) if value is not None
    }
    config = config_from_argument(args.config, **overrides)
    result = train(
        config,
        policy_dir=args.policy,
        reward_dir=args.reward,
        inputs_manifest=args.inputs,
        out_dir=args.out,
        device=args.device,
    )
    print(json.dumps(result.summary(), indent=1))
    print(result.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
