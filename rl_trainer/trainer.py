"""``RLTrainer``: one ``step()`` = on-policy rollouts, rewards, then several policy updates of one of two kinds.

``ddpo`` (DDPO with GRPO's group baseline): for each LQ input the policy samples G restorations with the
stochastic sampler (eta > 0), recording the whole trajectory; the rewards are normalised within each input's
group; every denoising step of every trajectory then gets the PPO clipped-ratio loss with its trajectory's
advantage, plus a KL penalty towards the frozen reference restorer, for ``inner_epochs`` passes over the batch.

``reward_backprop`` (AlignProp / DRaFT-1): the same rollouts; each image is recomputed from the state before its
last denoising step with gradients, and the policy climbs the reward's gradient minus that step's KL. DDPO learns
only from how a group's samples differ, and the ``tiny`` restorer's samples of one input barely do (solution
entropy ~4e-4: its last state hardly reaches the image), so DDPO has nothing to climb there; the gradient does not
need the samples to differ (``benchmarks/results/rl_gain.txt`` measures both).

Everything random is derived from ``(config.seed, step)`` (which inputs, which sampler seeds, the minibatch
order), so a run resumed from a checkpoint replays exactly the steps an uninterrupted run would have made.

On CUDA (``config.bf16_autocast``) the forward passes of the policy, the reference and the reward run under bf16
autocast (:meth:`RLTrainer.forward_precision`); what they return is cast back to float32 before any ratio,
advantage or loss is formed from it. On the CPU nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from rl_trainer.config import FIDELITY_EVALUATORS, RLConfig
from rl_trainer.guard import HackingGuard, HeldOutEvaluator, win_rate
from rl_trainer.losses import clipped_policy_loss, gaussian_kl, group_advantages, sampled_kl
from rl_trainer.manifest import RLInputs
from rl_trainer.rewards import (
    CompositeReward,
    DistanceFn,
    RewardBreakdown,
    RewardFn,
    group_agreement,
    members_gain_spread,
)
from rl_trainer.sampler import Rollout, SamplerAdapter, StepDistribution

EVAL_SEED_BASE = 1_000_000_007
ENTROPY_SEED_BASE = 2_000_000_011

T = TypeVar("T")


def _float32(value: T) -> T:
    """``value`` with its floating tensors in float32, also inside a dataclass (``Rollout``, ``StepDistribution``,
    ``RewardBreakdown``) or a dict; float32 tensors come back as they are (the same objects)."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value  # type: ignore[return-value]
    if isinstance(value, dict):
        return {key: _float32(item) for key, item in value.items()}  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _float32(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)  # type: ignore[return-value]
    return value


def solution_entropy(samples: Tensor) -> float:
    """Mean per-pixel std across seeds, ``samples``: ``[S, B, 3, H, W]`` (the paper's determinism measure)."""
    from restorer.metrics import solution_entropy as restorer_solution_entropy

    return float(restorer_solution_entropy(samples))


class RLTrainer:
    """Fine-tunes ``policy`` in place against ``reward_fn`` (a plain ``(lq, x) -> [B]`` callable, higher better)."""

    def __init__(
        self,
        config: RLConfig,
        policy: nn.Module,
        reference: nn.Module,
        reward_fn: RewardFn,
        *,
        train_inputs: RLInputs,
        eval_inputs: RLInputs | None = None,
        sampler: Any = None,
        held_out: HeldOutEvaluator | None = None,
        perceptual: DistanceFn | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.reference = reference
        self.reward_fn = reward_fn
        device = next(policy.parameters()).device
        self.bf16 = config.bf16_autocast and device.type == "cuda"
        self.train_inputs = train_inputs.to(device)
        eval_inputs = eval_inputs.to(device) if eval_inputs is not None else None
        # without held-out inputs, evaluate on training inputs (the guard still sees the held-out evaluator)
        evaluation_pool = eval_inputs if eval_inputs is not None else self.train_inputs
        self.eval_inputs = evaluation_pool.select(range(min(config.eval_inputs, len(evaluation_pool))))
        if sampler is None:
            from rl_trainer.restorer_steps import RestorerSampling

            sampler = RestorerSampling()
        self.sampler = sampler if isinstance(sampler, SamplerAdapter) else SamplerAdapter(sampler)
        self.held_out = held_out
        if config.ranked_edit_confidence > 0 and not hasattr(reward_fn, "members"):
            raise ValueError(
                "ranked_edit_confidence needs a reward with members (rl_trainer.rewards.LearnedReward)"
            )
        self.reward = CompositeReward(
            reward_fn,
            learned_weight=config.learned_reward_weight,
            consistency_weight=config.consistency_weight,
            perceptual_weight=config.perceptual_weight,
            perceptual=perceptual,
            agreement_weight=config.agreement_weight,
            agreement_target=config.agreement_target,
            fallback_downsample=config.fallback_downsample,
        )
        # what reward_ranked ranks candidates by: every term but agreement (the targets are what the group agrees on)
        self.selection = CompositeReward(
            reward_fn,
            learned_weight=config.learned_reward_weight,
            consistency_weight=config.consistency_weight,
            perceptual_weight=config.perceptual_weight,
            perceptual=perceptual,
            fallback_downsample=config.fallback_downsample,
        )
        self.guard = HackingGuard(patience=config.hacking_patience, min_delta=config.hacking_min_delta)

        for parameter in self.reference.parameters():
            parameter.requires_grad_(False)
        self.reference.eval()
        # eval mode on purpose: dropout would make the recomputed log-probs differ from the sampled ones
        self.policy.eval()
        self.trainable = [parameter for parameter in self.policy.parameters() if parameter.requires_grad]
        if not self.trainable:
            raise ValueError("the policy has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            self.trainable,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        self.step_count = 0
        self._permutations: dict[int, list[int]] = {}
        # the reference's samples of the evaluation inputs, their held-out scores and solution entropy (computed
        # at the first evaluation that needs them: the reference never changes)
        self._reference_samples: Tensor | None = None
        self._reference_held_out: Tensor | None = None
        self._reference_entropy: float | None = None

    def forward_precision(self) -> contextlib.AbstractContextManager[Any]:
        """Where the policy, reference and reward forward passes run: bf16 autocast on CUDA with
        ``config.bf16_autocast``, else full precision. Backward passes and optimizer steps stay outside it."""
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- what a step samples ---------------------------------------------------------------------------------

    def batch_indices(self, step: int) -> list[int]:
        """The training inputs of ``step``: consecutive slices of a fresh permutation each epoch."""
        count = len(self.train_inputs)
        indices = []
        for position in range(step * self.config.inputs_per_step, (step + 1) * self.config.inputs_per_step):
            epoch = position // count
            if epoch not in self._permutations:
                generator = torch.Generator().manual_seed(self.config.seed * 7_919 + epoch)
                self._permutations = {epoch: torch.randperm(count, generator=generator).tolist()}
            indices.append(self._permutations[epoch][position % count])
        return indices

    def rollout_seeds(self, step: int) -> list[int]:
        per_step = self.config.samples_per_step
        base = (self.config.seed * 1_000_003 + step) * per_step
        return [base + offset for offset in range(per_step)]

    # -- one RL step -----------------------------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        if self.config.policy_update == "reward_backprop":
            return self._reward_backprop_step()
        if self.config.policy_update == "reward_ranked":
            return self._reward_ranked_step()
        return self._ddpo_step()

    def _sample_and_score(self, step: int) -> tuple[RLInputs, Rollout, RewardBreakdown, float]:
        """The step's inputs, each repeated ``group_size`` times; the policy's rollouts of them; their rewards;
        and the seconds the sampler took."""
        config = self.config
        groups = self.train_inputs.select(self.batch_indices(step)).repeat_each(config.group_size)
        started = time.perf_counter()
        with torch.no_grad(), self.forward_precision():
            rollout = self.sampler.rollout(
                self.policy,
                groups.lq,
                groups.instructions,
                num_steps=config.rollout_steps,
                eta=config.eta,
                seeds=self.rollout_seeds(step),
            )
        rollout = _float32(rollout)
        sampling_seconds = time.perf_counter() - started
        with self.forward_precision():
            rewards = self.reward(
                groups.lq,
                rollout.images,
                hq=groups.hq,
                has_hq=groups.has_hq,
                degradations=groups.degradations,
                group_size=config.group_size,
            )
        return groups, rollout, _float32(rewards), sampling_seconds

    def _update(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()

    @staticmethod
    def _speed_metrics(count: int, elapsed: float, sampling_seconds: float) -> dict[str, float]:
        # end to end (sampling, rewards, updates) and the sampler alone
        return {
            "samples_per_s": count / max(elapsed, 1e-9),
            "sampling_samples_per_s": count / max(sampling_seconds, 1e-9),
            "step_seconds": elapsed,
        }

    def _ddpo_step(self) -> dict[str, float]:
        config = self.config
        started = time.perf_counter()
        step = self.step_count
        groups, rollout, rewards, sampling_seconds = self._sample_and_score(step)
        with torch.no_grad():
            if rollout.log_probs is not None:
                old_log_probs = rollout.log_probs
            else:
                with self.forward_precision():
                    old_log_probs = self.sampler.step_distribution(
                        self.policy,
                        groups.lq,
                        groups.instructions,
                        rollout.trajectory,
                        rollout.timesteps,
                        eta=config.eta,
                    ).log_probs.float()
            reference = self._reference_distribution(groups, rollout)
        scores = (
            rewards.normalized_total(config.group_size) if config.normalize_reward_terms else rewards.total
        )
        advantages = group_advantages(scores, config.group_size, clip=config.advantage_clip)

        generator = torch.Generator().manual_seed(config.seed * 104_729 + step)
        totals = {
            "loss/policy": 0.0,
            "kl": 0.0,
            "clip_fraction": 0.0,
            "approx_kl_to_old": 0.0,
        }
        updates, ratio_max = 0, 0.0
        count = len(groups)
        total_steps = config.rollout_steps
        trained_steps = max(1, round(total_steps * config.train_timestep_fraction))
        for _ in range(config.inner_epochs):
            order = torch.randperm(count, generator=generator).tolist()
            for start in range(0, count, config.minibatch_size):
                rows = order[start : start + config.minibatch_size]
                index = torch.as_tensor(rows)
                # DDPO's timestep subsampling: a random subset of the denoising steps per minibatch
                steps = sorted(torch.randperm(total_steps, generator=generator)[:trained_steps].tolist())
                with self.forward_precision():
                    current = self.sampler.step_distribution(
                        self.policy,
                        groups.lq[index],
                        [groups.instructions[row] for row in rows],
                        rollout.trajectory[index],
                        rollout.timesteps,
                        eta=config.eta,
                        steps=steps,
                    )
                current = _float32(current)
                policy_loss, stats = clipped_policy_loss(
                    current.log_probs,
                    old_log_probs[index][:, steps],
                    advantages[index],
                    clip_range=config.clip_range,
                )
                kl = self._kl(current, reference, index, steps).mean()
                self._update(policy_loss + config.kl_weight * kl)
                totals["loss/policy"] += float(policy_loss.detach())
                totals["kl"] += float(kl.detach())
                totals["clip_fraction"] += stats.clip_fraction
                totals["approx_kl_to_old"] += stats.approx_kl_to_old
                ratio_max = max(ratio_max, stats.ratio_max)
                updates += 1

        self.step_count += 1
        elapsed = time.perf_counter() - started
        metrics = {name: value / updates for name, value in totals.items()}
        metrics["ratio_max"] = ratio_max
        metrics.update(rewards.means(config.group_size))
        metrics["advantage_abs"] = float(advantages.abs().mean())
        metrics.update(self._speed_metrics(count, elapsed, sampling_seconds))
        return metrics

    def _group_minibatches(self, step: int, count: int) -> Iterator[list[int]]:
        """The rows of each update of ``step``: whole groups (the agreement term and the ranked targets compare a
        sample with the other seeds of its input), ``inner_epochs`` passes in a seeded order."""
        config = self.config
        group_size = config.group_size
        generator = torch.Generator().manual_seed(config.seed * 104_729 + step)
        group_count = count // group_size
        groups_per_update = max(1, config.minibatch_size // group_size)
        for _ in range(config.inner_epochs):
            order = torch.randperm(group_count, generator=generator).tolist()
            for start in range(0, group_count, groups_per_update):
                yield [
                    group * group_size + k
                    for group in order[start : start + groups_per_update]
                    for k in range(group_size)
                ]

    def _reward_backprop_step(self) -> dict[str, float]:
        """AlignProp / DRaFT-1: the same on-policy rollouts, then gradient ascent on the reward of each image
        recomputed from the state before its last denoising step, minus the KL leash of that step.

        Where DDPO learns from which of a group's samples scored higher, this follows the reward's gradient, so a
        near-deterministic restorer (whose samples of one input barely differ) still gets a signal. Minibatches
        hold whole groups, so that the agreement term compares each sample with the other seeds of its input.
        """
        config = self.config
        started = time.perf_counter()
        step = self.step_count
        group_size = config.group_size
        groups, rollout, rewards, sampling_seconds = self._sample_and_score(step)
        with torch.no_grad():
            last_step = len(rollout.timesteps) - 1
            reference = self._reference_distribution(groups, rollout, steps=[last_step])

        totals = {"loss/reward": 0.0, "kl": 0.0}
        updates = 0
        for rows in self._group_minibatches(step, len(groups)):
            index = torch.as_tensor(rows)
            with self.forward_precision():
                images, current = self.sampler.final_images(
                    self.policy,
                    groups.lq[index],
                    [groups.instructions[row] for row in rows],
                    rollout.trajectory[index],
                    rollout.timesteps,
                    eta=config.eta,
                )
                scored = self.reward.differentiable(
                    groups.lq[index],
                    images,
                    hq=groups.hq[index],
                    has_hq=groups.has_hq[index],
                    degradations=[groups.degradations[row] for row in rows],
                    group_size=group_size,
                )
            current, scored = _float32(current), _float32(scored)
            reward_loss = -scored.total.mean()
            kl = self._kl(current, reference, index, [0]).mean()
            self._update(reward_loss + config.kl_weight * kl)
            totals["loss/reward"] += float(reward_loss.detach())
            totals["kl"] += float(kl.detach())
            updates += 1

        self.step_count += 1
        elapsed = time.perf_counter() - started
        count = len(groups)
        metrics = {name: value / updates for name, value in totals.items()}
        metrics.update(rewards.means(group_size))
        metrics.update(self._speed_metrics(count, elapsed, sampling_seconds))
        return metrics

    def ranked_targets(self, groups: RLInputs, images: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Each group's best candidate by the reward terms (the agreement term aside), repeated for every sample of
        the group: ``[B, C, H, W]``, and what was chosen. The candidates are the group's samples (or, with
        ``ranked_candidates="mean"``, its mean image) and, of each, an unsharp mask at every
        ``ranked_edit_strengths``; the strength 0 is the image itself."""
        from restorer.classical import unsharp_mask

        config = self.config
        group_size = config.group_size
        if config.ranked_candidates == "mean":
            # one source per group: its consensus, standing in for each of its samples
            images = images.view(-1, group_size, *images.shape[1:]).mean(dim=1)
            groups = groups.select(range(0, len(groups), group_size))
            group_size = 1
        strengths = (0.0,) + tuple(s for s in config.ranked_edit_strengths if s != 0.0)
        # [K, B, C, H, W]: every strength of every sample
        candidates = torch.stack(
            [
                images
                if strength == 0.0
                else unsharp_mask(images, strength, sigma=config.ranked_edit_sigma).clamp(-1.0, 1.0)
                for strength in strengths
            ]
        )
        count = len(strengths)
        repeat = [row for row in range(len(groups)) for _ in range(count)]
        flat = candidates.transpose(0, 1).reshape(-1, *images.shape[1:])  # sample-major: [B*K, ...]
        with torch.no_grad(), self.forward_precision():
            scores = self.selection(
                groups.lq[repeat],
                flat,
                hq=groups.hq[repeat],
                has_hq=groups.has_hq[repeat],
                degradations=[groups.degradations[row] for row in repeat],
            ).total.float()
        plain_best = scores.view(-1, group_size * count).argmax(dim=1)
        if config.ranked_edit_confidence > 0:
            spread = self._edit_gain_spread(groups.lq[repeat], flat, count)
            scores = scores - config.ranked_edit_confidence * config.learned_reward_weight * spread
        per_group = scores.view(-1, group_size * count)  # [groups, G*K]: sample g's strength k at g*K + k
        best = per_group.argmax(dim=1)
        sample_of, strength_of = best // count, best % count
        group_index = torch.arange(per_group.shape[0])
        chosen = candidates[strength_of, group_index * group_size + sample_of]
        targets = chosen.repeat_interleave(config.group_size, dim=0)
        own = per_group.view(-1, group_size, count)[:, :, 0]  # the samples as they are
        chosen_strengths = torch.tensor(strengths)[strength_of]
        return targets, {
            "ranked/strength": float(chosen_strengths.mean()),
            "ranked/edited_share": float((strength_of != 0).float().mean()),
            "ranked/gain": float((per_group.max(dim=1).values - own.mean(dim=1)).mean()),
            # groups whose best edit by the plain scores was held back by ranked_edit_confidence
            "ranked/held_back_share": float(((plain_best % count != 0) & (strength_of == 0)).float().mean()),
        }

    def _edit_gain_spread(self, lq: Tensor, candidates: Tensor, count: int) -> Tensor:
        """``[B*K]``: for each candidate of ``ranked_targets`` (sample-major, ``count`` strengths each, the
        unedited image first), the std over the reward model's members of their gain over the unedited image."""
        members_fn = self.reward_fn.members  # type: ignore[attr-defined]  # checked in __init__
        with torch.no_grad(), self.forward_precision():
            members = members_fn(lq, candidates).float()
        return members_gain_spread(members.view(-1, count, members.shape[-1])).reshape(-1)

    def _reward_ranked_step(self) -> dict[str, float]:
        """RAFT with edits as proposals: the same rollouts; each group's best candidate (``ranked_targets``) is
        the target every sample of the group is pulled towards, through its last denoising step, minus that
        step's KL leash. The reward only ranks finished images, so no gradient of it is ever followed."""
        config = self.config
        started = time.perf_counter()
        step = self.step_count
        group_size = config.group_size
        groups, rollout, rewards, sampling_seconds = self._sample_and_score(step)
        targets, chosen = self.ranked_targets(groups, rollout.images)
        total_steps = len(rollout.timesteps)
        fitted = list(range(total_steps - min(config.ranked_fit_steps, total_steps), total_steps))
        with torch.no_grad():
            reference = self._reference_distribution(groups, rollout, steps=fitted)

        totals = {"loss/fit": 0.0, "kl": 0.0}
        if config.agreement_weight > 0:
            totals["loss/disagreement"] = 0.0
        updates = 0
        for rows in self._group_minibatches(step, len(groups)):
            index = torch.as_tensor(rows)
            with self.forward_precision():
                images, current = self.sampler.step_images(
                    self.policy,
                    groups.lq[index],
                    [groups.instructions[row] for row in rows],
                    rollout.trajectory[index],
                    rollout.timesteps,
                    eta=config.eta,
                    steps=fitted,
                )
            images, current = images.float(), _float32(current)  # images: [b, len(fitted), C, H, W]
            fit = ((images - targets[index].to(images).unsqueeze(1)) ** 2).flatten(1).mean(dim=1).mean()
            kl = self._kl(current, reference, index, list(range(len(fitted)))).mean()
            loss = config.ranked_fit_weight * fit + config.kl_weight * kl
            if config.agreement_weight > 0:
                # the shared target moves what a group restores; this makes the seeds restore the same thing
                disagreement = -group_agreement(images[:, -1], group_size, differentiable=True).mean()
                loss = loss + config.agreement_weight * disagreement
                totals["loss/disagreement"] += float(disagreement.detach())
            self._update(loss)
            totals["loss/fit"] += float(fit.detach())
            totals["kl"] += float(kl.detach())
            updates += 1

        self.step_count += 1
        elapsed = time.perf_counter() - started
        count = len(groups)
        metrics = {name: value / updates for name, value in totals.items()}
        metrics.update(chosen)
        metrics.update(rewards.means(group_size))
        metrics.update(self._speed_metrics(count, elapsed, sampling_seconds))
        return metrics

    def _reference_distribution(
        self, groups: RLInputs, rollout: Rollout, steps: Sequence[int] | None = None
    ) -> StepDistribution:
        """The frozen reference's step Gaussians along the rollout, at ``steps`` (all by default); the KL is
        logged even at weight 0."""
        with self.forward_precision():
            distribution = self.sampler.step_distribution(
                self.reference,
                groups.lq,
                groups.instructions,
                rollout.trajectory,
                rollout.timesteps,
                eta=self.config.eta,
                steps=steps,
            )
        return _float32(distribution)

    def _kl(
        self, current: StepDistribution, reference: StepDistribution, index: Tensor, steps: list[int]
    ) -> Tensor:
        if current.means is not None and reference.means is not None and current.std is not None:
            return gaussian_kl(current.means, reference.means[index][:, steps], current.std)
        return sampled_kl(current.log_probs, reference.log_probs[index][:, steps])

    # -- evaluation ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, inputs: RLInputs, seeds: Sequence[int], module: nn.Module | None = None) -> Tensor:
        with self.forward_precision():
            images = self.sampler.generate(
                module if module is not None else self.policy,
                inputs.lq,
                inputs.instructions,
                num_steps=self.config.eval_steps,
                eta=self.config.eval_eta,
                seeds=list(seeds),
            )
        return images.float()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Learned reward and held-out score of the policy's samples of the evaluation inputs, same seeds every
        time so that successive evaluations are paired. ``eval/held_out_win``: the held-out ``win_rate`` against
        the reference's image of the same input and seed.

        Only measures: the reward-hacking guard is updated by the caller, once per evaluation
        (:meth:`update_guard`), so that an extra evaluation (a report, a test) cannot advance its streak."""
        inputs = self.eval_inputs
        images = self.generate(inputs, self._evaluation_seeds(0))
        with self.forward_precision():
            learned = self.reward_fn(inputs.lq, images)
        metrics = {"eval/learned_reward": float(learned.float().mean())}
        if self.held_out is not None:
            score = self.held_out(inputs.lq, images, inputs.hq, inputs.degradations).float()
            if self._reference_held_out is None:
                self._reference_held_out = self.held_out(
                    inputs.lq, self._reference_images(), inputs.hq, inputs.degradations
                ).float()
            metrics["eval/held_out"] = float(score.mean())
            metrics["eval/held_out_win"] = win_rate(score, self._reference_held_out)
            # the largest fall of one input's score below the reference's image of it (the same seed)
            reference_score, own_score = self._reference_held_out, score
            ceiling = self.config.fidelity_face_ceiling_db
            if self.config.held_out_evaluator in FIDELITY_EVALUATORS and ceiling is not None:
                reference_score, own_score = reference_score.clamp(max=ceiling), score.clamp(max=ceiling)
            metrics["eval/held_out_worst_drop"] = float((reference_score - own_score).max())
        if self.config.eval_entropy_seeds:
            if self._reference_entropy is None:
                self._reference_entropy = self._evaluation_entropy(self.reference, self._reference_images())
            entropy = self._evaluation_entropy(self.policy, images)
            metrics["eval/entropy"] = entropy
            metrics["eval/entropy_ratio"] = entropy / max(self._reference_entropy, 1e-12)
        return metrics

    def update_guard(self, evaluation: dict[str, float]) -> dict[str, float]:
        """Feed one evaluation (of :meth:`evaluate`) to the reward-hacking guard; returns the evaluation with the
        guard's streak (``eval/hacking_streak``) added. Without a held-out evaluator there is nothing to watch."""
        if "eval/held_out" not in evaluation:
            return evaluation
        self.guard.update(evaluation["eval/learned_reward"], evaluation["eval/held_out"])
        return {**evaluation, "eval/hacking_streak": float(self.guard.streak)}

    def _evaluation_seeds(self, index: int) -> list[int]:
        """Sampler seeds of the evaluation inputs: index 0 the evaluation's own, 1.. the extra entropy seeds."""
        base = EVAL_SEED_BASE if index == 0 else ENTROPY_SEED_BASE + 1_000 * index
        return [base + i for i in range(len(self.eval_inputs))]

    def _reference_images(self) -> Tensor:
        """The frozen reference's samples of the evaluation inputs at the evaluation's seeds (sampled once)."""
        if self._reference_samples is None:
            self._reference_samples = self.generate(
                self.eval_inputs, self._evaluation_seeds(0), self.reference
            )
        return self._reference_samples

    def _evaluation_entropy(self, module: nn.Module, first: Tensor) -> float:
        """Solution entropy of the evaluation inputs over ``eval_entropy_seeds`` seeds; ``first``: the module's
        samples at the evaluation's own seeds, already generated."""
        samples = [first] + [
            self.generate(self.eval_inputs, self._evaluation_seeds(index), module)
            for index in range(1, self.config.eval_entropy_seeds)
        ]
        return solution_entropy(torch.stack(samples))

    @torch.no_grad()
    def entropy(self, module: nn.Module | None = None) -> float:
        """Solution entropy of the evaluation inputs over ``entropy_seeds`` seeds."""
        inputs = self.eval_inputs
        samples = [
            self.generate(inputs, [ENTROPY_SEED_BASE + 1_000 * seed + i for i in range(len(inputs))], module)
            for seed in range(self.config.entropy_seeds)
        ]
        return solution_entropy(torch.stack(samples))

    def back_off(self, factor: float) -> None:
        """Smaller steps from here on: the learning rate times ``factor``, and the optimiser's moments forgotten
        (they point the way that overshot)."""
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.optimizer.state.clear()

    # -- checkpoint state ------------------------------------------------------------------------------------

    def policy_state(self) -> dict[str, Tensor]:
        return {
            name: tensor.detach().cpu().clone().contiguous()
            for name, tensor in self.policy.state_dict().items()
        }

    def training_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step_count,
        }

    def load(
        self, policy_state: dict[str, Tensor], training_state: dict[str, Any], guard: dict[str, Any]
    ) -> None:
        self.policy.load_state_dict(policy_state)
        self.optimizer.load_state_dict(training_state["optimizer"])
        torch.set_rng_state(training_state["torch_rng"])
        self.step_count = int(training_state["step"])
        self.guard.load_state_dict(guard)
