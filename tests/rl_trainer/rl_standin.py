"""A stand-in policy with the restorer's sampler interface, small enough for RL tests to take seconds.

Each denoising step is a Gaussian whose mean moves the state towards ``gain * lq + bias + mix(lq)``; on the
last step the mean reaches it. ``GaussianStepSampling`` has the functions of ``restorer.sampling`` that RL uses
(``sample``, ``trajectory_log_probs`` and ``trajectory_step_means``), with per-sample seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rl_trainer.manifest import RLInputs

STEP_STD = 0.1


class GaussianStepPolicy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.gain = nn.Parameter(torch.tensor(0.5))
        self.mix = nn.Conv2d(3, 3, kernel_size=1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def target(self, lq: Tensor) -> Tensor:
        return self.gain * lq + self.bias + self.mix(lq)

    def fractions(self, steps: int) -> Tensor:
        """The share of the way to the target that each of ``steps`` steps moves (the last one arrives)."""
        return torch.tensor([1.0 / (steps - k) for k in range(steps)])


class HesitantStepPolicy(GaussianStepPolicy):
    """Moves only ``sigmoid(reach)`` of each step's way, so part of the initial noise survives to the image: its
    samples differ from seed to seed (a solution entropy that training can lower by learning to reach)."""

    def __init__(self) -> None:
        super().__init__()
        self.reach = nn.Parameter(torch.tensor(0.0))

    def fractions(self, steps: int) -> Tensor:
        return super().fractions(steps) * torch.sigmoid(self.reach)


@dataclass
class StandInOutput:
    images: Tensor
    trajectory: Tensor | None
    log_probs: Tensor | None
    timesteps: Tensor


class GaussianStepSampling:
    """Module-like: the stand-in's ``sample`` / ``trajectory_log_probs`` / ``trajectory_step_means``."""

    @staticmethod
    def _means(policy: GaussianStepPolicy, lq: Tensor, states: Tensor, steps: int) -> Tensor:
        # states: [B, T, C, H, W]; step k of T moves 1/(T-k) of the way to the target
        target = policy.target(lq).unsqueeze(1)
        fractions = policy.fractions(steps).view(1, -1, 1, 1, 1)
        return states + fractions * (target - states)

    @staticmethod
    def _std(steps: int, eta: float) -> Tensor:
        return torch.full((steps,), STEP_STD * eta)

    def sample(self, policy, lq, instructions, *, num_steps=4, eta=0.0, seeds=None, return_trajectory=False):
        batch = lq.shape[0]
        seeds = seeds if seeds is not None else list(range(batch))
        generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        state = torch.stack([torch.randn(lq.shape[1:], generator=g) for g in generators])
        states, log_probs = [state], []
        target = policy.target(lq)
        fractions = policy.fractions(num_steps)
        for k in range(num_steps):
            mean = state + fractions[k] * (target - state)
            if eta > 0:
                noise = torch.stack([torch.randn(lq.shape[1:], generator=g) for g in generators])
                std = STEP_STD * eta
                state = mean + std * noise
                log_probs.append(
                    (-(noise**2) / 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
                )
            else:
                state = mean
            states.append(state)
        return StandInOutput(
            images=state,
            trajectory=torch.stack(states, dim=1) if return_trajectory else None,
            log_probs=torch.stack(log_probs, dim=1) if log_probs else None,
            timesteps=torch.arange(num_steps, 0, -1),
        )

    def trajectory_step_means(self, policy, lq, instructions, trajectory, timesteps, *, eta, steps=None):
        total = trajectory.shape[1] - 1
        chosen = list(range(total)) if steps is None else list(steps)
        means = self._means(policy, lq, trajectory[:, :-1], total)
        return means[:, chosen], self._std(total, eta)[chosen]

    def final_images(self, policy, lq, instructions, trajectory, timesteps, *, eta):
        # the image is the last state: the last step's mean plus its recorded noise, held fixed
        last = trajectory.shape[1] - 2
        means, std = self.trajectory_step_means(
            policy, lq, instructions, trajectory, timesteps, eta=eta, steps=[last]
        )
        return means[:, 0] + (trajectory[:, -1] - means[:, 0]).detach(), means, std

    def trajectory_log_probs(self, policy, lq, instructions, trajectory, timesteps, *, eta):
        means, std = self.trajectory_step_means(policy, lq, instructions, trajectory, timesteps, eta=eta)
        std = std.view(1, -1, 1, 1, 1)
        density = (
            -((trajectory[:, 1:] - means) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
        )
        return density.flatten(2).sum(2)


class LogProbOnlySampling(GaussianStepSampling):
    """The same sampler without per-step means: exercises the trainer's sampled-KL fallback."""

    trajectory_step_means = None  # type: ignore[assignment]

    def trajectory_log_probs(self, policy, lq, instructions, trajectory, timesteps, *, eta):
        means, std = GaussianStepSampling.trajectory_step_means(
            self, policy, lq, instructions, trajectory, timesteps, eta=eta
        )
        std = std.view(1, -1, 1, 1, 1)
        density = (
            -((trajectory[:, 1:] - means) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
        )
        return density.flatten(2).sum(2)


def make_inputs(count: int, *, size: int = 8, seed: int = 0, with_hq: bool = True) -> RLInputs:
    generator = torch.Generator().manual_seed(seed)
    hq = torch.rand(count, 3, size, size, generator=generator) * 1.2 - 0.6
    lq = torch.nn.functional.avg_pool2d(hq, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
    return RLInputs(
        ids=[f"input-{i}" for i in range(count)],
        lq=lq,
        hq=hq if with_hq else torch.zeros_like(hq),
        has_hq=torch.full((count,), with_hq, dtype=torch.bool),
        degradations=[None] * count,
        instructions=["restore the face"] * count,
    )


def brightness(lq: Tensor, images: Tensor) -> Tensor:
    return images.mean(dim=(1, 2, 3))
