"""Uncertainty of a pairwise preference from the spread of the reward model's ensemble members.

Each member k gives a Bradley–Terry probability ``p_k = sigmoid(r_k(a) - r_k(b))`` that a is preferred to b
(given the annotator expresses a strict preference; ties and both-bad are left out of this number). The
ensemble's answer is the mean ``p``; its uncertainty is the spread (standard deviation) of the ``p_k``,
and the BALD score ``H(mean p) - mean H(p_k)`` is the information a label on this pair is expected to
give about the model (high where members disagree, low where they agree, even on a coin-flip pair).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from reward_model.model import RewardModel


def binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def pair_statistics(member_rewards_a: Tensor, member_rewards_b: Tensor) -> dict[str, Tensor]:
    """From member rewards ``[..., K]`` of a and b: mean P(a ≻ b), its spread across members, and BALD."""
    member_p = torch.sigmoid(member_rewards_a - member_rewards_b)
    mean_p = member_p.mean(dim=-1)
    spread = member_p.std(dim=-1, unbiased=False)
    bald = binary_entropy(mean_p) - binary_entropy(member_p).mean(dim=-1)
    return {"p_a_beats_b": mean_p, "spread": spread, "bald": bald.clamp(min=0.0)}


class RewardEnsemble:
    """Pairwise preferences with uncertainty from a (multi-member) :class:`RewardModel`."""

    def __init__(self, model: RewardModel) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(
        cls, artifact_dir: str | Path, *, device: str | torch.device = "cpu"
    ) -> RewardEnsemble:
        return cls(RewardModel.from_pretrained(artifact_dir, device=device))

    @property
    def size(self) -> int:
        return self.model.config.ensemble_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def member_rewards(self, lq: Tensor, x: Tensor) -> Tensor:
        """``[B, K]`` rewards of each member for candidates ``x`` of inputs ``lq`` (on the inputs' device; the
        model runs on its own, so callers holding CPU images may use an ensemble on CUDA)."""
        return self.model.member_rewards(lq.to(self.device), x.to(self.device)).to(x.device)

    @torch.no_grad()
    def preference(self, lq: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """``(p_a_beats_b [B], spread [B])`` for candidates a and b of the same inputs ``lq``."""
        rewards = self.member_rewards(torch.cat([lq, lq]), torch.cat([a, b]))
        reward_a, reward_b = rewards.chunk(2)
        stats = pair_statistics(reward_a, reward_b)
        return stats["p_a_beats_b"], stats["spread"]
