"""The real restorer's sampler for RL, with the denoising steps of a trajectory recomputed in one UNet batch.

``restorer.sampling.trajectory_log_probs`` loops over the T steps with a batch of B; RL recomputes the same
quantities many times per rollout (reference, every inner update), and on a CPU one UNet call on B·T states is
markedly cheaper than T calls on B. This module does that, for all steps or a chosen subset, and returns the
per-step means and standard deviations so the trainer can use the exact Gaussian KL to the reference. The DDIM
step follows ``restorer.sampling`` (Song et al. 2021, eq. 12, x0 prediction); a test checks that the log-probs
agree with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from restorer import sampling as restorer_sampling
from restorer.model import Restorer

# a UNet call on more states than this is split (bounds the activation memory of a backward pass)
MAX_STATES_PER_CALL = 256


def step_alphas(restorer: Restorer, timesteps: Tensor) -> tuple[Tensor, Tensor]:
    """ᾱ at each timestep and at the step after it (the last step lands on ᾱ_0, as in the sampler)."""
    scheduler = restorer.sampling_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod.double()
    current = alphas_cumprod[timesteps.long().cpu()]
    final = torch.tensor([float(scheduler.final_alpha_cumprod)], dtype=torch.float64)
    return current, torch.cat([current[1:], final])


def trajectory_step_means(
    restorer: Restorer,
    lq: Tensor,
    instructions: list[str],
    trajectory: Tensor,
    timesteps: Tensor,
    *,
    eta: float,
    steps: Sequence[int] | None = None,
    with_x0: bool = False,
) -> Any:
    """Means ``[B, S, 3, H, W]`` and standard deviations ``[S]`` of the steps ``steps`` (all T by default) of a
    recorded trajectory, differentiable in the restorer's parameters; ``with_x0`` adds the clean estimates
    ``[B, S, 3, H, W]`` (states) the means were made from."""
    if eta <= 0:
        raise ValueError("per-step Gaussians need a stochastic policy: eta must be > 0")
    batch, total = trajectory.shape[0], len(timesteps)
    if trajectory.dim() != 5 or trajectory.shape[1] != total + 1 or lq.shape[0] != batch:
        raise ValueError(
            f"trajectory must be [B, T + 1, 3, H, W] with T={total}; got {tuple(trajectory.shape)}"
        )
    index = torch.as_tensor(list(range(total)) if steps is None else list(steps), dtype=torch.long)
    count = len(index)
    alpha_t, alpha_prev = (values[index] for values in step_alphas(restorer, timesteps))
    sigma = (
        eta
        * torch.sqrt((1 - alpha_prev) / (1 - alpha_t))
        * torch.sqrt((1 - alpha_t / alpha_prev).clamp_min(0))
    )
    x0_weight = torch.sqrt(alpha_prev)
    eps_weight = torch.sqrt((1 - alpha_prev - sigma**2).clamp_min(0))

    condition = restorer.encode_condition(lq, instructions)  # once per input, shared by its steps
    x_t = trajectory[:, index.to(trajectory.device)]
    states = x_t.reshape(batch * count, *trajectory.shape[2:])
    step_lq = lq.repeat_interleave(count, dim=0)
    step_condition = condition.repeat_interleave(count, dim=0)
    step_timesteps = timesteps[index].to(lq.device).repeat(batch)
    chunks = range(0, states.shape[0], MAX_STATES_PER_CALL)
    x0 = torch.cat(
        [
            restorer.predict_x0(
                states[start : start + MAX_STATES_PER_CALL],
                step_timesteps[start : start + MAX_STATES_PER_CALL],
                step_lq[start : start + MAX_STATES_PER_CALL],
                step_condition[start : start + MAX_STATES_PER_CALL],
            )
            for start in chunks
        ]
    ).view(batch, count, *trajectory.shape[2:])

    def per_step(values: Tensor) -> Tensor:
        return values.to(x0).view(1, count, 1, 1, 1)

    eps = (x_t - per_step(alpha_t.sqrt()) * x0) / per_step((1 - alpha_t).sqrt())
    means = per_step(x0_weight) * x0 + per_step(eps_weight) * eps
    if with_x0:
        return means, sigma.to(x0.dtype), x0
    return means, sigma.to(x0.dtype)


class RestorerSampling:
    """``restorer.sampling`` plus the batched ``trajectory_step_means``: what ``SamplerAdapter`` wraps."""

    def sample(self, restorer: Restorer, lq: Tensor, instructions: list[str], **options: Any) -> Any:
        return restorer_sampling.sample(restorer, lq, instructions, **options)

    def trajectory_log_probs(
        self,
        restorer: Restorer,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
    ) -> Tensor:
        return restorer_sampling.trajectory_log_probs(
            restorer, lq, instructions, trajectory, timesteps, eta=eta
        )

    def trajectory_step_means(
        self,
        restorer: Restorer,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
        steps: Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        return trajectory_step_means(restorer, lq, instructions, trajectory, timesteps, eta=eta, steps=steps)

    def final_images(
        self,
        restorer: Restorer,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The images of recorded trajectories, differentiable in the restorer's parameters, with the last
        step's Gaussian (means ``[B, 1, 3, H, W]``, std ``[1]``): ``restorer.sampling`` returns the clean estimate
        of the last step, so the image is a function of the state before it, recomputed here with gradients."""
        last = len(timesteps) - 1
        images, means, std = self.step_images(
            restorer, lq, instructions, trajectory, timesteps, eta=eta, steps=[last]
        )
        return images[:, 0], means, std

    def step_images(
        self,
        restorer: Restorer,
        lq: Tensor,
        instructions: list[str],
        trajectory: Tensor,
        timesteps: Tensor,
        *,
        eta: float,
        steps: Sequence[int],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The clean-image estimates of recorded trajectories at ``steps`` (``[B, S, 3, H, W]``), differentiable
        in the restorer's parameters, with those steps' Gaussians (means ``[B, S, 3, H, W]``, std ``[S]``)."""
        means, std, x0 = trajectory_step_means(
            restorer, lq, instructions, trajectory, timesteps, eta=eta, steps=list(steps), with_x0=True
        )
        count = x0.shape[1]
        images = restorer.to_image(x0.flatten(0, 1), lq.repeat_interleave(count, dim=0))
        return images.view(x0.shape), means, std
