"""The two things RL needs from a stochastic diffusion sampler, behind one small adapter.

``restorer.sampling`` exposes ``sample(..., eta>0, return_trajectory=True)`` and
``trajectory_log_probs(...)``; any object with those two functions (the real module, or a stand-in policy in the
tests) can be wrapped. When it also exposes ``trajectory_step_means(policy, lq, instructions, trajectory,
timesteps, *, eta) -> (means [B,T,C,H,W], std [T])`` the trainer computes log-probs from the means itself and
uses the exact Gaussian KL to the reference; otherwise it falls back to the sampler's log-probs and a sampled
KL estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from rl_trainer.losses import gaussian_log_prob


class SamplingFunctions(Protocol):
    def sample(
        self,
        restorer: Any,
        lq: Tensor,
        instructions: list[str],
        *,
        num_steps: int = ...,
        eta: float = ...,
        seeds: list[int] | None = ...,
        return_trajectory: bool = ...,
    ) -> Any: ...

    def trajectory_log_probs(
        self,
        restorer: Any,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
    ) -> Tensor: ...


@dataclass
class Rollout:
    images: Tensor  # [B, C, H, W]
    trajectory: Tensor  # [B, T+1, C, H, W], from pure noise to the image
    timesteps: Tensor  # [T]


@dataclass
class StepDistribution:
    """The policy's Gaussian for every recorded step; ``means`` / ``std`` are None when the sampler hides them."""

    log_probs: Tensor  # [B, T], per pixel
    means: Tensor | None  # [B, T, C, H, W]
    std: Tensor | None  # [T]


class SamplerAdapter:
    def __init__(self, functions: Any) -> None:
        for name in ("sample", "trajectory_log_probs"):
            if not callable(getattr(functions, name, None)):
                raise TypeError(f"{functions!r} has no {name}() and cannot drive RL rollouts")
        self.functions = functions
        self.has_means = callable(getattr(functions, "trajectory_step_means", None))

    def rollout(
        self,
        policy: nn.Module,
        lq: Tensor,
        instructions: list[str],
        *,
        num_steps: int,
        eta: float,
        seeds: list[int],
    ) -> Rollout:
        output = self.functions.sample(
            policy, lq, instructions, num_steps=num_steps, eta=eta, seeds=seeds, return_trajectory=True
        )
        if output.trajectory is None:
            raise RuntimeError("the sampler returned no trajectory although one was asked for")
        return Rollout(images=output.images, trajectory=output.trajectory, timesteps=output.timesteps)

    def generate(
        self,
        policy: nn.Module,
        lq: Tensor,
        instructions: list[str],
        *,
        num_steps: int,
        eta: float,
        seeds: list[int],
    ) -> Tensor:
        output = self.functions.sample(
            policy, lq, instructions, num_steps=num_steps, eta=eta, seeds=seeds, return_trajectory=False
        )
        images: Tensor = output.images
        return images

    def step_distribution(
        self,
        policy: nn.Module,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
    ) -> StepDistribution:
        if self.has_means:
            means, std = self.functions.trajectory_step_means(
                policy, lq, instructions, trajectory, timesteps, eta=eta
            )
            return StepDistribution(
                log_probs=gaussian_log_prob(trajectory[:, 1:], means, std), means=means, std=std
            )
        log_probs = self.functions.trajectory_log_probs(
            policy, lq, instructions, trajectory, timesteps, eta=eta
        )
        # the sampler's log-probs are summed over the image; per pixel keeps PPO ratios in a usable range
        pixels = trajectory[0, 0].numel()
        return StepDistribution(log_probs=log_probs / pixels, means=None, std=None)
