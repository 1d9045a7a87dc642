"""The scalar an RL rollout is scored with: the learned reward plus weighted fidelity terms, each kept apart.

- ``learned``: ``r(lq, x)``, the reward model (any callable ``(lq [B,3,H,W], x [B,3,H,W]) -> [B]``, higher better).
- ``consistency``: minus the mean squared error between the LQ and the restoration degraded again. With the
  input's recorded ``DegradationParams`` the degradation is re-applied exactly (same blur, resize, noise seed and
  JPEG, so the noise realisation cancels and only the restoration's own error remains); without them both images
  go through a fixed low-pass + downsample, which ignores the detail a restorer is allowed to invent. Needs no HQ.
- ``perceptual``: minus a perceptual distance to the HQ original, for inputs whose HQ is known (0 otherwise:
  advantages are normalised per input, so a constant within a group has no effect). ``rl_trainer.train`` gives
  it a distance of its own (a seeded random trunk), never the held-out evaluator's, so the guard keeps watching
  a score the policy does not climb.
- ``agreement``: minus the mean squared distance of a sample to the mean of the other samples of its group (the
  same input under other seeds). This is the paper's determinism goal as a reward: the group's consensus
  estimates the posterior mean, so group-normalised advantages pull every seed's restoration towards the same
  image, which lowers the solution entropy (and, being closer to the mean, rarely costs PSNR). Needs no HQ; the
  learned reward, the consistency term and the KL leash keep the consensus from drifting.
  With ``agreement_target="best"`` the target is instead the group's best sample by the other terms' weighted
  total (held fixed): the consensus of a few seeds is a little smoother than any of them, and pulling every seed
  towards it trades detail for determinism, while pulling them towards the best one lowers the spread in a
  direction the other terms already prefer. The best sample itself scores 0.

Builders of the terms' callables: :func:`learned_reward` (a reward model artifact as the ``learned`` term, with an
optional pessimism) and :func:`perceptual_reward_distance` (the ``perceptual`` term's LPIPS heads on seeded random
trunks, averaged by :class:`MeanDistance` when there are several).

The total is ``learned_weight * learned + consistency_weight * consistency + perceptual_weight * perceptual
+ agreement_weight * agreement``;
with ``RLConfig.normalize_reward_terms`` the advantages instead use each term standardised within its group
before weighting, so that a weight means the same whatever the units of its term.

``CompositeReward.differentiable`` computes the same total with gradients to the images, for the
reward-backpropagation update: the learned reward must then be differentiable itself (the reward model is), and
the JPEG step of the exact re-degradation passes its gradient straight through (its value is kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rl_trainer.config import AGREEMENT_TARGETS

RewardFn = Callable[[Tensor, Tensor], Tensor]
DistanceFn = Callable[[Tensor, Tensor], Tensor]
PERCEPTUAL_REWARD_TRUNK_SEED = 1  # restorer.metrics.RANDOM_TRUNK_SEED (0) is the evaluators' trunk


@dataclass
class RewardBreakdown:
    total: Tensor  # [B], the weighted sum of the terms
    terms: dict[str, Tensor]  # each [B], before weighting
    weights: dict[str, float]  # the weight of each term

    def means(self, group_size: int | None = None) -> dict[str, float]:
        """Mean of every term; with ``group_size``, also its mean spread within groups (``reward/<term>_spread``),
        the part of a term that can reach the group-normalised advantages."""
        values = {f"reward/{name}": float(term.mean()) for name, term in self.terms.items()}
        values["reward/total"] = float(self.total.mean())
        if group_size is not None:
            for name, term in self.terms.items():
                values[f"reward/{name}_spread"] = float(
                    term.view(-1, group_size).std(dim=1, unbiased=False).mean()
                )
        return values

    def normalized_total(self, group_size: int, eps: float = 1e-6) -> Tensor:
        """Weighted sum of the terms after standardising each within its group: weights then say how much each
        term counts regardless of its units (an MSE of 1e-3 and a reward of 100 on equal footing)."""
        total = torch.zeros_like(self.total)
        for name, term in self.terms.items():
            groups = term.view(-1, group_size)
            centred = groups - groups.mean(dim=1, keepdim=True)
            standardised = centred / (groups.std(dim=1, unbiased=False, keepdim=True) + eps)
            total = total + self.weights[name] * standardised.view(-1)
        return total


def lowpass(images: Tensor, factor: int) -> Tensor:
    return F.avg_pool2d(images, kernel_size=factor, stride=factor) if factor > 1 else images


class RewardNotDifferentiableError(TypeError):
    """The reward-backpropagation update got a reward callable whose output carries no gradient."""


def _differentiable_degradation(image: Tensor, params: Any) -> Tensor:
    """``apply_degradation``'s value with the gradient of its blur and resizes (noise and JPEG, which have no
    useful gradient, pass it straight through)."""
    from restorer.degradations import apply_degradation, degradation_linear_part

    exact = apply_degradation(image.detach().clamp(-1, 1), params).to(image)
    smooth = degradation_linear_part(image, params)
    return smooth + (exact - smooth).detach()


def redegrade(
    images: Tensor,
    degradations: Sequence[Any | None],
    *,
    fallback_factor: int,
    differentiable: bool = False,
    linear: bool = False,
) -> tuple[Tensor, Tensor]:
    """Each image passed through its input's degradation: ``(degraded, exact)`` where ``exact[i]`` says the
    recorded params were used; rows without params are low-passed (compare them to a low-passed LQ).
    ``linear``: the params' blur and resizes only, without the noise draw and the JPEG round trip."""
    degraded = lowpass(images, fallback_factor)
    degraded = F.interpolate(degraded, size=images.shape[-2:], mode="nearest")
    exact = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
    if any(params is not None for params in degradations):
        from restorer.degradations import apply_degradation, degradation_linear_part

        rows = []
        for index, params in enumerate(degradations):
            if params is None:
                rows.append(degraded[index])
            elif linear:
                image = images[index] if differentiable else images[index].detach()
                rows.append(degradation_linear_part(image.float().clamp(-1, 1), params).to(images))
                exact[index] = True
            elif differentiable:
                rows.append(_differentiable_degradation(images[index], params))
                exact[index] = True
            else:
                rows.append(apply_degradation(images[index].clamp(-1, 1), params).to(images))
                exact[index] = True
        degraded = torch.stack(rows)
    return degraded, exact


def observation_consistency(
    lq: Tensor,
    images: Tensor,
    degradations: Sequence[Any | None],
    *,
    fallback_factor: int,
    differentiable: bool = False,
    linear: bool = False,
) -> Tensor:
    """Minus the MSE between the LQ and the re-degraded restoration, ``[B]`` (0 is perfect). ``linear``: through
    the degradation's blur and resizes only (``degradation_linear_part``), so that the LQ's noise and JPEG are an
    error every restoration pays alike and the score moves smoothly with the image."""
    degraded, exact = redegrade(
        images, degradations, fallback_factor=fallback_factor, differentiable=differentiable, linear=linear
    )
    reference = lowpass(lq, fallback_factor)
    reference = F.interpolate(reference, size=lq.shape[-2:], mode="nearest")
    reference = torch.where(exact.view(-1, 1, 1, 1), lq, reference)
    return -((degraded - reference) ** 2).flatten(1).mean(dim=1)


def group_agreement(
    images: Tensor,
    group_size: int,
    *,
    differentiable: bool = False,
    target: str = "mean",
    quality: Tensor | None = None,
) -> Tensor:
    """Minus the mean squared distance of each sample to its group's target, ``[B]`` (0 when every sample of the
    group is the same image). ``target="mean"``: the leave-one-out mean of the group; ``"best"``: the sample of the
    group with the highest ``quality`` ``[B]``, held fixed (no gradient flows into the target)."""
    if group_size < 2 or images.shape[0] % group_size:
        raise ValueError(
            f"agreement needs groups of >= 2 samples; got {images.shape[0]} images in groups of {group_size}"
        )
    if target not in AGREEMENT_TARGETS:
        raise ValueError(f"agreement target must be one of {', '.join(AGREEMENT_TARGETS)}, got {target!r}")
    values = images.float() if differentiable else images.detach().float()
    groups = values.reshape(-1, group_size, *images.shape[1:])
    if target == "mean":
        targets = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    else:
        if quality is None or quality.shape[0] != images.shape[0]:
            raise ValueError("the best-sample agreement target needs one quality score per image")
        best = quality.detach().reshape(-1, group_size).argmax(dim=1).to(images.device)
        targets = groups.detach()[torch.arange(groups.shape[0], device=images.device), best].unsqueeze(1)
    return -((groups - targets) ** 2).flatten(2).mean(dim=2).reshape(-1)


class CompositeReward:
    """Scores restorations; ``learned`` is the reward model, ``perceptual`` a distance to HQ (e.g. LPIPS variant)."""

    def __init__(
        self,
        learned: RewardFn | None,
        *,
        learned_weight: float = 1.0,
        consistency_weight: float = 0.0,
        perceptual_weight: float = 0.0,
        perceptual: DistanceFn | None = None,
        agreement_weight: float = 0.0,
        agreement_target: str = "mean",
        fallback_downsample: int = 4,
    ) -> None:
        if learned is None and learned_weight != 0:
            raise ValueError("a learned reward weight without a learned reward")
        if perceptual_weight > 0 and perceptual is None:
            raise ValueError("a perceptual weight without a perceptual distance")
        self.learned = learned
        self.learned_weight = learned_weight
        self.consistency_weight = consistency_weight
        self.perceptual_weight = perceptual_weight
        self.perceptual = perceptual
        if agreement_target not in AGREEMENT_TARGETS:
            raise ValueError(
                f"agreement target must be one of {', '.join(AGREEMENT_TARGETS)}, got {agreement_target!r}"
            )
        self.agreement_weight = agreement_weight
        self.agreement_target = agreement_target
        self.fallback_downsample = fallback_downsample

    @torch.no_grad()
    def __call__(
        self,
        lq: Tensor,
        images: Tensor,
        *,
        hq: Tensor | None = None,
        has_hq: Tensor | None = None,
        degradations: Sequence[Any | None] | None = None,
        group_size: int | None = None,
    ) -> RewardBreakdown:
        """``group_size``: consecutive images that restore the same input (needed by the agreement term)."""
        return self._score(lq, images, hq=hq, has_hq=has_hq, degradations=degradations, group_size=group_size)

    def differentiable(
        self,
        lq: Tensor,
        images: Tensor,
        *,
        hq: Tensor | None = None,
        has_hq: Tensor | None = None,
        degradations: Sequence[Any | None] | None = None,
        group_size: int | None = None,
    ) -> RewardBreakdown:
        """The same breakdown with ``total`` differentiable in ``images`` (the terms are detached copies)."""
        return self._score(
            lq,
            images,
            hq=hq,
            has_hq=has_hq,
            degradations=degradations,
            group_size=group_size,
            differentiable=True,
        )

    def _score(
        self,
        lq: Tensor,
        images: Tensor,
        *,
        hq: Tensor | None,
        has_hq: Tensor | None,
        degradations: Sequence[Any | None] | None,
        group_size: int | None,
        differentiable: bool = False,
    ) -> RewardBreakdown:
        batch = images.shape[0]
        graded: dict[str, Tensor] = {}  # each term, with its gradient when differentiable
        weights: dict[str, float] = {}
        if self.learned is not None:
            learned = self.learned(lq, images).float().view(batch)
            if differentiable and self.learned_weight and images.requires_grad and not learned.requires_grad:
                raise RewardNotDifferentiableError(
                    "the learned reward returned no gradient: reward backpropagation needs a differentiable "
                    "reward callable (or use the ddpo update, which needs only scores)"
                )
            graded["learned"] = learned
            weights["learned"] = self.learned_weight
        if self.consistency_weight > 0:
            params = list(degradations) if degradations is not None else [None] * batch
            graded["consistency"] = observation_consistency(
                lq, images, params, fallback_factor=self.fallback_downsample, differentiable=differentiable
            )
            weights["consistency"] = self.consistency_weight
        if self.perceptual_weight > 0 and self.perceptual is not None and hq is not None:
            known = has_hq.cpu() if has_hq is not None else torch.ones(batch, dtype=torch.bool)
            perceptual = torch.zeros(batch, device=images.device)
            if bool(known.any()):
                on_device = known.to(images.device)
                distance = self.perceptual(images[on_device], hq[on_device]).float().to(images.device)
                perceptual = perceptual.index_put((on_device.nonzero().view(-1),), -distance)
            graded["perceptual"] = perceptual
            weights["perceptual"] = self.perceptual_weight
        if self.agreement_weight > 0:
            if group_size is None:
                raise ValueError("the agreement term needs group_size: the samples of one input")
            quality = None
            if self.agreement_target == "best":
                # the best sample is judged by every other term, as weighted in the total
                quality = sum(
                    (weights[name] * term.detach().float().cpu() for name, term in graded.items()),
                    torch.zeros(batch),
                )
            graded["agreement"] = group_agreement(
                images,
                group_size,
                differentiable=differentiable,
                target=self.agreement_target,
                quality=quality,
            )
            weights["agreement"] = self.agreement_weight
        total = torch.zeros(batch)
        for name, term in graded.items():
            if not differentiable:
                term = term.detach()
            total = total.to(term.device) + weights[name] * term
        if not differentiable:
            total = total.cpu()
        terms = {name: term.detach().float().cpu() for name, term in graded.items()}
        return RewardBreakdown(total=total, terms=terms, weights=weights)


# -- the terms' callables --------------------------------------------------------------------------------------


# Variance (reward units squared) under which two members' relative scores count as agreeing.
DISAGREEMENT_FLOOR = 1e-6


def shifted(images: Tensor, dx: int, dy: int, flip: bool) -> Tensor:
    """``images`` mirrored (``flip``) and moved by (dx, dy) pixels, the uncovered border reflected."""
    if flip:
        images = images.flip(-1)
    pad = max(abs(dx), abs(dy))
    if pad == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    top, left = pad - dy, pad - dx  # out[y, x] = in[y - dy, x - dx]
    return padded[..., top : top + height, left : left + width]


def learned_reward(
    reward_model: Any,
    *,
    pessimism: float = 0.0,
    augmentations: int = 0,
    max_shift: int = 2,
    seed: int = 0,
    centered_disagreement: bool = False,
) -> RewardFn:
    """The reward callable of a reward model: its ensemble mean, minus ``pessimism`` times the members' std;
    with ``augmentations`` > 0, the mean of that over as many random shifts and flips of the input and the
    image together (``RLConfig.learned_reward_augmentations`` says why); ``centered_disagreement``: the std is
    taken of the members' rewards minus each member's mean over the images scored together
    (``RLConfig.learned_reward_centered_disagreement``). Differentiable in the images (the
    reward_backprop update); the model's own weights stay frozen."""
    generator = torch.Generator().manual_seed(seed)

    def score(lq: Tensor, images: Tensor) -> Tensor:
        if pessimism == 0:
            return reward_model(lq, images).cpu()
        members = reward_model.member_rewards(lq, images)
        if not centered_disagreement:
            return (members.mean(dim=1) - pessimism * members.std(dim=1, unbiased=False)).cpu()
        # each member's level over these images, held fixed: only its relative scores are compared; the floor
        # under the variance keeps the gradient of a near-zero disagreement finite (sqrt's slope at 0)
        relative = members - members.mean(dim=0, keepdim=True).detach()
        disagreement = (relative.var(dim=1, unbiased=False) + DISAGREEMENT_FLOOR).sqrt()
        return (members.mean(dim=1) - pessimism * disagreement).cpu()

    def reward_fn(lq: Tensor, images: Tensor) -> Tensor:
        if augmentations == 0:
            return score(lq, images)
        total = torch.zeros(images.shape[0])
        for _ in range(augmentations):
            dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
            flip = bool(torch.randint(2, (1,), generator=generator))
            total = total + score(shifted(lq, dx, dy, flip), shifted(images, dx, dy, flip))
        return total / augmentations

    def members(lq: Tensor, images: Tensor) -> Tensor:
        return reward_model.member_rewards(lq, images).cpu()

    return LearnedReward(reward_fn, members)


def members_gain_spread(members: Tensor) -> Tensor:
    """``[B, K]``: for ``members`` ``[B, K, M]`` (M members' rewards of K candidates of each of B images, the
    unedited image first), the std over the members of each candidate's gain over the unedited image; 0 for it.
    What ``RLConfig.ranked_edit_confidence`` charges an edit."""
    return (members - members[:, :1]).std(dim=2, unbiased=False)


class LearnedReward:
    """A reward model as the ``learned`` term: called, the reward (``learned_reward`` says which); ``members``,
    each ensemble member's own reward ``[B, M]`` (no pessimism, no augmentation), for rules that ask whether the
    members agree about a difference between two images rather than about one image's level."""

    def __init__(self, reward_fn: RewardFn, members: RewardFn) -> None:
        self.reward_fn = reward_fn
        self.members = members

    def __call__(self, lq: Tensor, images: Tensor) -> Tensor:
        return self.reward_fn(lq, images)


class MeanDistance:
    """The mean of several distances (``.name`` joins theirs): an ensemble is harder to over-optimise than any
    one of its members, which matters once a reward's gradient is followed (``reward_backprop``)."""

    def __init__(self, distances: list[Any]) -> None:
        if not distances:
            raise ValueError("an ensemble needs at least one distance")
        self.distances = distances
        self.name = "+".join(distance.name for distance in distances)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.stack([distance(x, y) for distance in self.distances]).mean(dim=0)


def perceptual_reward_distance(trunks: int, device: str | torch.device = "cpu") -> Any:
    """LPIPS heads on ``trunks`` random trunks of seeds 1, 2, ... (never the evaluators' seed 0): the guard would
    otherwise watch the very score the policy climbs."""
    from restorer.metrics import PerceptualDistance

    seeds = range(PERCEPTUAL_REWARD_TRUNK_SEED, PERCEPTUAL_REWARD_TRUNK_SEED + trunks)
    distances = [PerceptualDistance(device=device, trunk_seed=seed) for seed in seeds]
    return distances[0] if trunks == 1 else MeanDistance(distances)
