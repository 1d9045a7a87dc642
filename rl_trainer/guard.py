"""The reward-hacking guard: a held-out evaluator the trainer never optimises, and the early-stop rule.

At every evaluation the policy's samples of the held-out inputs are scored twice: by the learned reward (what RL
climbs) and by a held-out evaluator (what we actually want). When the learned reward rises while the held-out
score falls, evaluation after evaluation, for ``patience`` evaluations in a row, the policy is exploiting the
reward model rather than restoring better faces, and training stops.

The guard's state changes only through :meth:`HackingGuard.update`, which the training loop
(``rl_trainer.train.train_policy``) calls once per evaluation: ``RLTrainer.evaluate`` only measures.
:func:`win_rate` is the held-out comparison with the reference (``eval/held_out_win``), also what the
``rl_gain`` benchmark reports on its test faces; :func:`default_held_out` picks the evaluator of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rl_trainer.config import RLConfig
from rl_trainer.manifest import RLInputs
from rl_trainer.rewards import DistanceFn, observation_consistency

HeldOutFn = Callable[[Tensor, Tensor, Tensor, Sequence[Any | None]], Tensor]
"""(lq [B,3,H,W], images, hq [B,3,H,W], degradations) -> score [B], higher is better."""


@dataclass
class HeldOutEvaluator:
    name: str
    score: HeldOutFn

    def __call__(self, lq: Tensor, images: Tensor, hq: Tensor, degradations: Sequence[Any | None]) -> Tensor:
        return self.score(lq, images, hq, degradations)


def oracle_evaluator(distance: DistanceFn, name: str) -> HeldOutEvaluator:
    """The simulated annotators' noise-free utility: minus the perceptual distance to the HQ original."""

    @torch.no_grad()
    def score(lq: Tensor, images: Tensor, hq: Tensor, degradations: Sequence[Any | None]) -> Tensor:
        return -distance(images, hq).detach().float().cpu()

    return HeldOutEvaluator(name=f"oracle_neg_{name}", score=score)


def fidelity_evaluator(fallback_downsample: int, *, linear: bool = False) -> HeldOutEvaluator:
    """Without HQ: the PSNR (dB) between the LQ and the re-degraded restoration. ``linear``: degraded by the
    blur and resizes only (``RLConfig.held_out_evaluator`` "fidelity_linear"), a smooth function of the image
    where the exact round trip's JPEG jumps under changes below an 8-bit level."""

    @torch.no_grad()
    def score(lq: Tensor, images: Tensor, hq: Tensor, degradations: Sequence[Any | None]) -> Tensor:
        mse = -observation_consistency(
            lq, images, degradations, fallback_factor=fallback_downsample, linear=linear
        )
        # images live in [-1, 1]: a peak-to-peak range of 2
        return (10 * torch.log10(4.0 / mse.clamp_min(1e-10))).cpu()

    return HeldOutEvaluator(name="linear_observation_psnr" if linear else "observation_psnr", score=score)


def default_held_out(
    eval_inputs: RLInputs, config: RLConfig, distance: DistanceFn, name: str
) -> HeldOutEvaluator:
    """``config.held_out_evaluator``: the perceptual score when every evaluation input has its HQ, else (or when
    the config asks for it) observation fidelity, through the exact degradation or its linear part."""
    if config.held_out_evaluator == "perceptual" and bool(eval_inputs.has_hq.all()):
        return oracle_evaluator(distance, name)
    return fidelity_evaluator(
        config.fallback_downsample, linear=config.held_out_evaluator == "fidelity_linear"
    )


# Scores this close are one score: on some CPUs a frozen copy of the same weights samples images ~1e-6 apart
# (another kernel path for parameters without gradients), far below what one RL step changes (~1e-4).
WIN_TIE_TOLERANCE = 1e-6


def win_rate(scores: Tensor, reference_scores: Tensor, *, tie_tolerance: float = WIN_TIE_TOLERANCE) -> float:
    """The share of images scored above the reference's image of the same input and seed, ties (within
    `tie_tolerance`) counting half: unlike a difference of means, near-ties between the two cannot swamp it."""
    difference = scores - reference_scores
    tied = difference.abs() <= tie_tolerance
    wins = ((difference > 0) & ~tied).float() + 0.5 * tied.float()
    return float(wins.mean())


@dataclass
class HackingGuard:
    patience: int
    min_delta: float = 0.0
    streak: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)

    def update(self, learned_reward: float, held_out_score: float) -> bool:
        """Record one evaluation (call it once per evaluation: the streak counts calls); True when the stop rule
        fires."""
        if self.history:
            previous_learned, previous_held_out = self.history[-1]
            diverging = (
                learned_reward > previous_learned + self.min_delta
                and held_out_score < previous_held_out - self.min_delta
            )
            self.streak = self.streak + 1 if diverging else 0
        self.history.append((learned_reward, held_out_score))
        return self.triggered

    @property
    def triggered(self) -> bool:
        """Patience 0: the rule is off (``RLConfig.hacking_patience``)."""
        return self.patience > 0 and self.streak >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "history": [list(pair) for pair in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak = int(state["streak"])
        self.history = [(float(a), float(b)) for a, b in state["history"]]
