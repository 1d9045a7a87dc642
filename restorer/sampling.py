"""DDIM sampling of the restorer, with the per-step Gaussian log-probabilities that on-policy RL needs.

One DDIM step from state ``x_t`` to ``x_prev`` (Song et al. 2021, eq. 12) with the UNet's x0 estimate::

    eps     = (x_t - sqrt(ᾱ_t) x0) / sqrt(1 - ᾱ_t)
    σ_t     = eta · sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) · sqrt(1 - ᾱ_t / ᾱ_prev)
    mean    = sqrt(ᾱ_prev) x0 + sqrt(1 - ᾱ_prev - σ_t²) eps
    x_prev  = mean + σ_t · noise

``eta = 0`` is deterministic given the initial noise; ``eta > 0`` makes each step a Gaussian policy
``N(mean, σ_t² I)`` whose log-density of the step actually taken is recorded. The log-probability is the
exact one, summed over all pixels of the state (``reduction="sum"``); ``reduction="mean"`` divides by the
number of pixels, as DDPO does, for better-scaled ratios.

Randomness is per sample: sample ``i`` draws its initial noise and every step's noise from its own
``torch.Generator`` seeded with ``seeds[i]``, so an image does not depend on its batch-mates.
The trajectory holds the diffusion *state* (the scaled residual over the LQ, see ``restorer.model``),
``T + 1`` entries from pure noise to the final state; ``images`` are the model's clean estimate at the last
step mapped to pixels (the final state itself when ``eta`` is 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from restorer.model import Restorer

Reduction = Literal["sum", "mean"]


@dataclass
class SampleOutput:
    images: torch.Tensor  # [B, 3, H, W] in [-1, 1]
    trajectory: torch.Tensor | None  # [B, T + 1, 3, H, W] diffusion states, when asked for
    log_probs: torch.Tensor | None  # [B, T] log N(x_prev | mean, σ²) of each step, when eta > 0
    timesteps: torch.Tensor  # [T] the DDIM timesteps, in order


def sampling_timesteps(restorer: Restorer, num_steps: int) -> torch.Tensor:
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    scheduler = restorer.sampling_scheduler()
    scheduler.set_timesteps(num_steps)
    return scheduler.timesteps.clone()


def _alphas(restorer: Restorer, timesteps: torch.Tensor) -> tuple[list[float], list[float]]:
    """ᾱ at each timestep and at the step after it (the last step lands on ᾱ_0, not 1)."""
    scheduler = restorer.sampling_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod
    final = float(scheduler.final_alpha_cumprod)
    current = [float(alphas_cumprod[int(t)]) for t in timesteps]
    following = [float(alphas_cumprod[int(t)]) for t in timesteps[1:]] + [final]
    return current, following


def ddim_step_mean_std(
    x0: torch.Tensor, x_t: torch.Tensor, alpha_t: float, alpha_prev: float, eta: float
) -> tuple[torch.Tensor, float]:
    eps = (x_t - math.sqrt(alpha_t) * x0) / math.sqrt(1.0 - alpha_t)
    sigma = (
        eta
        * math.sqrt((1.0 - alpha_prev) / (1.0 - alpha_t))
        * math.sqrt(max(0.0, 1.0 - alpha_t / alpha_prev))
    )
    mean = math.sqrt(alpha_prev) * x0 + math.sqrt(max(0.0, 1.0 - alpha_prev - sigma**2)) * eps
    return mean, sigma


def gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, sigma: float, reduction: Reduction
) -> torch.Tensor:
    per_pixel = -((x - mean) ** 2) / (2.0 * sigma**2) - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)
    flat = per_pixel.flatten(1)
    return flat.sum(1) if reduction == "sum" else flat.mean(1)


def _check_inputs(restorer: Restorer, lq: torch.Tensor, instructions: list[str]) -> None:
    size = restorer.config.resolution
    if lq.dim() != 4 or lq.shape[1:] != (3, size, size):
        raise ValueError(f"restorer works on [B, 3, {size}, {size}] inputs, got {tuple(lq.shape)}")
    if len(instructions) != lq.shape[0]:
        raise ValueError(f"need one instruction per input: {len(instructions)} for {lq.shape[0]}")


def sample(
    restorer: Restorer,
    lq: torch.Tensor,
    instructions: list[str],
    *,
    num_steps: int = 20,
    eta: float = 0.0,
    seeds: list[int] | None = None,
    return_trajectory: bool = False,
    reduction: Reduction = "sum",
) -> SampleOutput:
    """Restore ``lq`` (``[B, 3, R, R]`` in [-1, 1]); log-probs are returned when ``eta > 0``."""
    _check_inputs(restorer, lq, instructions)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    batch = lq.shape[0]
    if seeds is None:
        seeds = torch.randint(0, 2**31 - 1, (batch,)).tolist()
    if len(seeds) != batch:
        raise ValueError(f"need one seed per input: {len(seeds)} for {batch}")
    device = lq.device
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def noise_like_state() -> torch.Tensor:
        return torch.stack([torch.randn(lq.shape[1:], generator=g) for g in generators]).to(device)

    timesteps = sampling_timesteps(restorer, num_steps)
    alphas_t, alphas_prev = _alphas(restorer, timesteps)
    state = noise_like_state()
    states = [state] if return_trajectory else []
    log_probs: list[torch.Tensor] = []
    with torch.no_grad():
        condition = restorer.encode_condition(lq, instructions)
        for i, t in enumerate(timesteps):
            x0 = restorer.predict_x0(state, t.to(device), lq, condition)
            # The image is the model's clean estimate at the last step, not the last state: that state still
            # holds ᾱ_0's sliver of noise (times residual_scale in pixels). Deterministic sampling lands on
            # the estimate (DDIM with ᾱ = 1 after the last step); a stochastic trajectory keeps ᾱ_0 < 1 so
            # that its last step has a proper log-probability, and that step's noise never reaches the image.
            alpha_prev = 1.0 if eta == 0 and i == len(timesteps) - 1 else alphas_prev[i]
            mean, sigma = ddim_step_mean_std(x0, state, alphas_t[i], alpha_prev, eta)
            if sigma > 0:
                state = mean + sigma * noise_like_state()
                log_probs.append(gaussian_log_prob(state, mean, sigma, reduction))
            else:
                state = mean
            if return_trajectory:
                states.append(state)
    return SampleOutput(
        images=restorer.to_image(x0, lq),
        trajectory=torch.stack(states, dim=1) if return_trajectory else None,
        log_probs=torch.stack(log_probs, dim=1) if eta > 0 else None,
        timesteps=timesteps,
    )


def trajectory_log_probs(
    restorer: Restorer,
    lq: torch.Tensor,
    instructions: list[str],
    trajectory: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    eta: float,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Recompute ``[B, T]`` log-probs of a recorded trajectory under ``restorer`` (differentiable)."""
    _check_inputs(restorer, lq, instructions)
    if eta <= 0:
        raise ValueError("log-probabilities need a stochastic policy: eta must be > 0")
    steps = len(timesteps)
    if trajectory.dim() != 5 or trajectory.shape[0] != lq.shape[0] or trajectory.shape[1] != steps + 1:
        raise ValueError(
            f"trajectory must be [B, T + 1, 3, H, W] with B={lq.shape[0]}, T={steps}; got {tuple(trajectory.shape)}"
        )
    alphas_t, alphas_prev = _alphas(restorer, timesteps)
    condition = restorer.encode_condition(lq, instructions)
    result = []
    for i, t in enumerate(timesteps):
        x_t = trajectory[:, i]
        x0 = restorer.predict_x0(x_t, t.to(lq.device), lq, condition)
        mean, sigma = ddim_step_mean_std(x0, x_t, alphas_t[i], alphas_prev[i], eta)
        result.append(gaussian_log_prob(trajectory[:, i + 1], mean, sigma, reduction))
    return torch.stack(result, dim=1)


def restore(
    restorer: Restorer,
    lq: torch.Tensor,
    instructions: list[str],
    *,
    num_steps: int = 20,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Deterministic (eta = 0) restorations of any number of inputs, in batches; seed ``seed + i`` for input i."""
    outputs = []
    for start in range(0, lq.shape[0], batch_size):
        chunk = lq[start : start + batch_size]
        seeds = list(range(seed + start, seed + start + chunk.shape[0]))
        outputs.append(
            sample(
                restorer, chunk, instructions[start : start + batch_size], num_steps=num_steps, seeds=seeds
            ).images
        )
    return torch.cat(outputs) if outputs else lq.new_empty(0, *lq.shape[1:])
