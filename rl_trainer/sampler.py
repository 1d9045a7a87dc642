"""The two things RL needs from a stochastic diffusion sampler, behind one small adapter.

``restorer.sampling`` exposes ``sample(..., eta>0, return_trajectory=True)`` and
``trajectory_log_probs(...)``; any object with those two functions (the real module, or a stand-in policy in the
tests) can be wrapped. When it also exposes ``trajectory_step_means(policy, lq, instructions, trajectory,
timesteps, *, eta, steps) -> (means [B,S,C,H,W], std [S])`` for the chosen steps (``rl_trainer.restorer_steps``
does, for the real restorer), the trainer computes log-probs from the means itself and uses the exact Gaussian
KL to the reference; otherwise it falls back to the sampler's log-probs and a sampled KL estimator.

Backpropagating a reward (``RLConfig.policy_update = "reward_backprop"``) also needs ``final_images(policy, lq,
instructions, trajectory, timesteps, *, eta) -> (images, means [B,1,C,H,W], std [1])``: the images of recorded
trajectories recomputed from the state before their last step, differentiable in the policy's parameters, and
that step's Gaussian (for the KL to the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    log_probs: Tensor | None  # [B, T] per pixel, as recorded while sampling


@dataclass
class StepDistribution:
    """The policy's Gaussian for recorded steps; ``means`` / ``std`` are None when the sampler hides them."""

    log_probs: Tensor  # [B, S], per pixel
    means: Tensor | None  # [B, S, C, H, W]
    std: Tensor | None  # [S]


class SamplerAdapter:
    def __init__(self, functions: Any) -> None:
        for name in ("sample", "trajectory_log_probs"):
            if not callable(getattr(functions, name, None)):
                raise TypeError(f"{functions!r} has no {name}() and cannot drive RL rollouts")
        self.functions = functions
        self.has_means = callable(getattr(functions, "trajectory_step_means", None))
        self.has_final_images = callable(getattr(functions, "final_images", None))

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
        pixels = output.trajectory[0, 0].numel()
        # the sampler sums log-densities over the image; per pixel keeps PPO ratios in a usable range
        log_probs = output.log_probs / pixels if output.log_probs is not None else None
        return Rollout(
            images=output.images,
            trajectory=output.trajectory,
            timesteps=output.timesteps,
            log_probs=log_probs,
        )

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
        steps: Sequence[int] | None = None,
    ) -> StepDistribution:
        """The policy's step Gaussians at the steps ``steps`` (all by default) of recorded trajectories."""
        chosen = list(range(len(timesteps))) if steps is None else list(steps)
        next_states = trajectory[:, [step + 1 for step in chosen]]
        if self.has_means:
            means, std = self.functions.trajectory_step_means(
                policy, lq, instructions, trajectory, timesteps, eta=eta, steps=chosen
            )
            return StepDistribution(
                log_probs=gaussian_log_prob(next_states, means, std), means=means, std=std
            )
        log_probs = self.functions.trajectory_log_probs(
            policy, lq, instructions, trajectory, timesteps, eta=eta
        )
        pixels = trajectory[0, 0].numel()
        return StepDistribution(log_probs=log_probs[:, chosen] / pixels, means=None, std=None)

    def step_images(
        self,
        policy: nn.Module,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
        steps: Sequence[int],
    ) -> tuple[Tensor, StepDistribution]:
        """The policy's clean-image estimates at ``steps`` of recorded trajectories (``[B, S, C, H, W]``), with
        gradients, and its Gaussians there. Only the last step needs no ``step_images`` of the sampler (its
        ``final_images`` is that estimate)."""
        chosen = list(steps)
        last = len(timesteps) - 1
        if chosen == [last]:
            images, distribution = self.final_images(policy, lq, instructions, trajectory, timesteps, eta=eta)
            return images.unsqueeze(1), distribution
        if not callable(getattr(self.functions, "step_images", None)):
            raise TypeError(
                f"{self.functions!r} has no step_images(): it can fit only the last denoising step"
            )
        images, means, std = self.functions.step_images(
            policy, lq, instructions, trajectory, timesteps, eta=eta, steps=chosen
        )
        next_states = trajectory[:, [step + 1 for step in chosen]]
        return images, StepDistribution(
            log_probs=gaussian_log_prob(next_states, means, std), means=means, std=std
        )

    def final_images(
        self,
        policy: nn.Module,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
    ) -> tuple[Tensor, StepDistribution]:
        """Images of recorded trajectories with gradients to the policy, and the policy's last-step Gaussian."""
        if not self.has_final_images:
            raise TypeError(
                f"{self.functions!r} has no final_images(): it cannot backpropagate a reward; use the ddpo update"
            )
        images, means, std = self.functions.final_images(
            policy, lq, instructions, trajectory, timesteps, eta=eta
        )
        log_probs = gaussian_log_prob(trajectory[:, -1:], means, std)
        return images, StepDistribution(log_probs=log_probs, means=means, std=std)
