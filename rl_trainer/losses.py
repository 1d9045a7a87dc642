"""Group-normalised advantages, the clipped policy loss over denoising steps, and the KL to the reference.

Shapes: ``B`` trajectories, ``T`` denoising steps. Log-probabilities are per denoising step and per pixel
(DDPO averages the Gaussian log-density over the image's dimensions so that ratios stay near 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, group_size: int, *, clip: float, eps: float = 1e-6) -> Tensor:
    """Rewards ``[N*G]`` laid out input by input -> advantages normalised within each input's group of G.

    Each input competes only with its own samples (GRPO / Flow-GRPO): an easy input whose samples all score
    high teaches nothing, which is the point. A group whose rewards are all equal gets zero advantages.
    """
    if rewards.ndim != 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"rewards must be 1-D with a multiple of group_size={group_size} entries")
    groups = rewards.float().view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    scale = groups.std(dim=1, unbiased=False, keepdim=True)
    advantages = centred / (scale + eps)
    return advantages.clamp(-clip, clip).view(-1)


@dataclass(frozen=True)
class PolicyLossStats:
    approx_kl_to_old: float
    clip_fraction: float
    ratio_mean: float
    ratio_max: float


def clipped_policy_loss(
    log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_range: float
) -> tuple[Tensor, PolicyLossStats]:
    """PPO's clipped surrogate, applied to every denoising step of a trajectory as DDPO does.

    ``log_probs`` / ``old_log_probs``: ``[B, T]``; ``advantages``: ``[B]``, shared by all steps of a trajectory.
    Taking the max of the two negated surrogates means a step whose ratio has already moved beyond
    ``1 ± clip_range`` in the advantage's direction contributes no gradient, so one rollout batch cannot drag the
    policy far however many inner updates run on it.
    """
    if log_probs.shape != old_log_probs.shape or log_probs.ndim != 2:
        raise ValueError(
            f"log-prob shapes differ or are not [B, T]: {log_probs.shape} vs {old_log_probs.shape}"
        )
    log_ratio = log_probs - old_log_probs
    ratio = torch.exp(log_ratio)
    step_advantages = advantages.view(-1, 1).to(ratio)
    unclipped = -step_advantages * ratio
    clipped = -step_advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        stats = PolicyLossStats(
            # Schulman's low-variance estimator of KL(old || new)
            approx_kl_to_old=float(((ratio - 1) - log_ratio).mean()),
            clip_fraction=float(((ratio - 1).abs() > clip_range).float().mean()),
            ratio_mean=float(ratio.mean()),
            ratio_max=float(ratio.max()),
        )
    return loss, stats


def gaussian_log_prob(next_states: Tensor, means: Tensor, step_std: Tensor) -> Tensor:
    """Per-pixel mean log-density of ``next_states`` under N(means, step_std²), ``[B, T]``.

    ``next_states`` / ``means``: ``[B, T, C, H, W]``; ``step_std``: ``[T]``.
    """
    std = step_std.to(means).view(1, -1, *([1] * (means.ndim - 2)))
    log_density = -((next_states - means) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_density.flatten(2).mean(dim=2)


def gaussian_kl(policy_means: Tensor, reference_means: Tensor, step_std: Tensor) -> Tensor:
    """Per-step KL(policy || reference) of two Gaussians with the same per-step std, averaged per pixel.

    ``*_means``: ``[B, T, C, H, W]``, ``step_std``: ``[T]``. Exact (no sampling estimator): with equal variances
    the KL is the squared distance of the means over twice the variance. Returns ``[B, T]``.
    """
    if policy_means.shape != reference_means.shape:
        raise ValueError(f"mean shapes differ: {policy_means.shape} vs {reference_means.shape}")
    variance = step_std.to(policy_means).view(1, -1, *([1] * (policy_means.ndim - 2))) ** 2
    squared = (policy_means - reference_means) ** 2 / (2 * variance)
    return squared.flatten(2).mean(dim=2)


def sampled_kl(log_probs: Tensor, reference_log_probs: Tensor) -> Tensor:
    """KL(policy || reference) estimated from log-probs of the policy's own samples (Schulman's k3), ``[B, T]``.

    The fallback when a sampler cannot give per-step means: always >= 0, and its gradient pulls the policy
    towards the reference.
    """
    log_ratio = reference_log_probs - log_probs
    return torch.exp(log_ratio) - log_ratio - 1
