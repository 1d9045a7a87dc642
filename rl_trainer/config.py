"""The frozen configuration of one RL fine-tuning run, saved in every checkpoint and in the output artifact."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorer.artifacts import reject_unknown_fields

RL_CONFIG_VERSION = 1


POLICY_UPDATES = ("ddpo", "reward_backprop", "reward_ranked")
AGREEMENT_TARGETS = ("mean", "best")
RANKED_CANDIDATES = ("samples", "mean")
HELD_OUT_EVALUATORS = ("perceptual", "fidelity", "fidelity_linear")
# the evaluators whose score is an observation PSNR in dB: the fidelity budgets are stated in it
FIDELITY_EVALUATORS = ("fidelity", "fidelity_linear")


class RLConfigError(ValueError):
    """A configuration that cannot describe a valid run (unknown preset, foreign file, bad values)."""


@dataclass(frozen=True)
class RLConfig:
    """Everything that decides what an RL run does; two runs with equal configs and inputs give equal results.

    Rollouts: ``inputs_per_step`` LQ inputs, each sampled ``group_size`` times with ``rollout_steps`` stochastic
    (``eta`` > 0) denoising steps. The policy is then updated ``inner_epochs`` times over those samples in
    minibatches of ``minibatch_size`` trajectories with a PPO-style clipped ratio (DDPO) plus ``kl_weight`` times
    the per-step Gaussian KL to the frozen reference restorer.
    """

    version: int = RL_CONFIG_VERSION
    seed: int = 0
    max_steps: int = 20
    # wall-clock budget: training ends (normally, artifact written) at the first step boundary past it. A run
    # that hits it is not bit-for-bit repeatable; leave None where resume must equal an uninterrupted run.
    max_minutes: float | None = None

    # rollouts
    inputs_per_step: int = 4
    group_size: int = 4
    rollout_steps: int = 8
    eta: float = 1.0

    # policy update. "ddpo": the PPO clipped ratio over the denoising steps; needs only scores from the reward.
    # "reward_backprop" (AlignProp / DRaFT-1): the reward's gradient through the last denoising step, for a
    # differentiable reward; the rollouts are the same, minibatches hold whole groups (the agreement term), the KL
    # leash is that of the last step and normalize_reward_terms does not apply (there are no advantages).
    # "reward_ranked" (RAFT, reward-ranked fine-tuning, with edits as proposals): each group's samples and
    # ``ranked_edit_strengths`` unsharp masks of each (negative: towards a blur) are scored by the reward terms
    # (not the agreement term), and every sample of the group is pulled, through its last denoising step, towards
    # the group's best candidate. The reward ranks images and is never differentiated, so a pattern that fools
    # its gradient cannot be learned; the policy learns only changes the reward model was shown and judged. With
    # agreement_weight > 0, each last-step image is also pulled towards the other samples of its group.
    policy_update: str = "ddpo"
    inner_epochs: int = 2
    minibatch_size: int = 8
    # share of the denoising steps each minibatch update trains on (DDPO's timestep_fraction)
    train_timestep_fraction: float = 1.0
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    clip_range: float = 1e-2
    advantage_clip: float = 5.0
    kl_weight: float = 0.01

    # reward_ranked: the proposals (0, the sample itself, is always one) and their blur radius (px); the weight of
    # the mean squared distance to the target against the KL leash
    ranked_edit_strengths: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0)
    ranked_edit_sigma: float = 1.0
    ranked_fit_weight: float = 1e4
    # what the edits are made of: "samples" (each sample of the group) or "mean" (the group's mean image, the
    # consensus of its seeds). An unsharp mask amplifies what differs between seeds along with the detail, so a
    # sharpened sample as every seed's target raises the solution entropy; the sharpened consensus lowers it.
    ranked_candidates: str = "samples"
    # how many of the last denoising steps have their clean-image estimate pulled towards the target: 1, the
    # image itself; more, and the earlier states learn to point at the same image whatever the seed (lower
    # solution entropy), at the cost of as many more forward and backward passes
    ranked_fit_steps: int = 1
    # > 0: an edit is chosen over the image it edits only where the reward model's members agree that it is
    # better: each candidate's score is lowered by this many standard deviations (times the learned reward's
    # weight) of the members' gains over the unedited image, which itself pays nothing. The members share the
    # judgments' average taste (sharper is better) and split over faces that are already as sharp as the judges
    # like. On the loop's three reward models and 64 test faces (benchmarks/results/edit_confidence.txt), 1.0
    # left 50 / 41 / 76% of the faces the oracle would not edit unedited (the plain argmax: 0 / 12 / 33%) and
    # raised the share of chosen edits the oracle prefers from 0.60 / 0.66 / 0.72 to 0.68 / 0.74 / 0.84. Needs a
    # reward with members (rl_trainer.rewards.LearnedReward). 0: the plain argmax.
    ranked_edit_confidence: float = 0.0

    # reward: learned reward plus fidelity terms (each logged on its own)
    learned_reward_weight: float = 1.0
    # the learned reward is the ensemble's mean minus this many member standard deviations: where the members
    # disagree the reward model is guessing, and a policy that follows its gradient should not be paid for that
    learned_reward_pessimism: float = 0.0
    # True: the members' disagreement is measured after removing each member's own level over the images scored
    # together (its mean over the batch, held fixed). Each member learns its own offset, so raw member rewards
    # differ by that offset on every image (std ~0.55 against a spread of ~0.05 between a face's versions on
    # the tiny reward model); the raw std's gradient then pushes members above the mean down and those below up,
    # whatever the images show. Centred, the std is the members' disagreement about which image is better.
    learned_reward_centered_disagreement: bool = False
    # > 0: the learned reward is the mean over this many random shifts (up to `learned_reward_max_shift` pixels,
    # reflected at the borders) and mirror flips of the input and the image together. A face restored well is
    # as good shifted by a pixel; a pattern that fools the reward model at exact pixel positions is not, so its
    # gradient averages out while that of a real improvement adds up.
    learned_reward_augmentations: int = 0
    learned_reward_max_shift: int = 2
    consistency_weight: float = 1.0
    perceptual_weight: float = 0.0
    # the perceptual term's distance: the mean over this many random LPIPS trunks (seeds 1, 2, ...)
    perceptual_trunks: int = 1
    # determinism: reward a sample for agreeing with the other samples of its input (rl_trainer.rewards)
    agreement_weight: float = 0.0
    # what a sample should agree with: "mean" (the other samples' mean) or "best" (the group's best sample by the
    # other terms; rl_trainer.rewards explains why that costs less detail)
    agreement_target: str = "mean"
    # True: standardise each term within its group before weighting (unit-free weights). It also blows up a term
    # with a negligible spread (a reward model that cannot tell a group's samples apart) to unit variance, i.e.
    # noise: the rl_gain benchmark ran into that. False (GRPO's plain rule): normalise the weighted sum.
    normalize_reward_terms: bool = False
    # side of the fixed low-pass used for observation consistency when an input has no degradation params
    fallback_downsample: int = 4
    # on CUDA: the policy, reference and reward forward passes under torch.autocast(bfloat16) (tensor cores);
    # losses, log-prob ratios and advantages stay float32. No effect on the CPU (results unchanged).
    bf16_autocast: bool = True

    # optional LoRA (peft) on the UNet instead of full fine-tuning
    use_lora: bool = False
    lora_rank: int = 4
    lora_alpha: int = 4

    # evaluation, reward-hacking guard, solution entropy
    # what the guard and keep_best watch (rl_trainer.guard.default_held_out): "perceptual", minus the seed-0
    # random-trunk LPIPS distance to the HQ where every evaluation input has one (else as "fidelity");
    # "fidelity", the PSNR between the LQ and the restoration degraded again, which never reads the HQ and has no
    # opinion on detail the input cannot show. The LPIPS distance grows with sharpening that people prefer
    # (benchmarks/results/rl_gain_ablation.txt): as a guard it stops such runs as hacks. "fidelity_linear", the
    # same PSNR through the degradation's blur and resizes only: the LQ's own noise and JPEG are then a floor the
    # same for every restoration, and the score a smooth function of the image. Through the exact round trip a
    # change below an 8-bit level flips JPEG bins: on a face it reproduces at 44 dB, pixel noise of std 0.001 took
    # 1.27 dB and of 0.004 only 0.18 (benchmarks/results/guard_jitter.txt). On another run's guard faces the linear
    # form moved at most 0.03 dB under noise of 0.001 and 0.27 under 0.004, and fell 0.92 / 0.59 / 0.36 dB on the
    # three faces the RL candidate changed most, where the exact one rose 0.46 / 0.11 / 0.09 there
    # (guard_jitter_linear.txt).
    held_out_evaluator: str = "perceptual"
    eval_every: int = 5
    eval_inputs: int = 4
    eval_steps: int = 8
    eval_eta: float = 0.0
    eval_fraction: float = 0.2
    # evaluations in a row where the learned reward rose while the held-out score fell before a run stops as
    # hacked and hands back the policy before the divergence. 0: off, only with a fidelity budget, which then
    # bounds what RL may trade: with a smooth observation PSNR ("fidelity_linear") the steady fall of fidelity
    # that preference RL trades for sharper faces is such a streak, and the loop's round 2 stopped at step 21
    # within both budgets and handed back step 0 (benchmarks/results/loop_linear_guard.txt).
    hacking_patience: int = 3
    hacking_min_delta: float = 0.0
    # with an evaluator in dB (FIDELITY_EVALUATORS, an observation PSNR): a run ends at the first evaluation whose mean held-out
    # score is more than this many dB below step 0's, and hands back the policy of the last evaluation within it.
    # Preference RL trades fidelity for what people prefer; a promotion that allows a PSNR drop of L dB refuses
    # a candidate that went past L, so the run stops while it is still a candidate that can pass. None: off.
    fidelity_budget_db: float | None = None
    # the same for each held-out face alone: a run also ends at the first evaluation where one face's observation
    # PSNR is more than this many dB below its own at step 0. The mean hides a restorer that ruins a few faces
    # (benchmarks/results/guard_fidelity.txt: one face of eight carried -1.9 dB of a -0.34 dB mean). None: off.
    # With "fidelity", on a face the re-degradation reproduces almost exactly (44 dB) the measure is not smooth
    # ("fidelity_linear" is): pixel noise of std
    # 0.001 (an eighth of an 8-bit level) took 1.27 dB from one such face, and of 0.004 only 0.18
    # (benchmarks/results/guard_jitter.txt); such a face stopped rounds 2 and 3 of loop_main_confidence.txt at
    # every learning rate.
    fidelity_face_budget_db: float | None = None
    # for that budget, a face's observation PSNR above this counts as this: the same squared error costs more dB
    # where it is small. The loop's first guard face sits at 44 dB (the others at 31-38) and carried the largest
    # drop of every candidate measured (benchmarks/results/guard_fidelity.txt); there a 1.5 dB fall is an error
    # 1.41 times one of 44 dB, still smaller than the other faces' errors. Off by default: with a 40 dB ceiling
    # the loop's runs went on until the mean budget stopped them and the evaluation, a mean of dB over its own
    # faces, refused all three candidates at -0.76 / -0.73 / -0.68 dB (oracle win 0.84-0.86 at -0.22 to -0.30 dB
    # against the HQ: benchmarks/results/loop_face_ceiling.txt), where the same loop without it promoted two
    # (loop_backoff.txt). None: no ceiling.
    fidelity_face_ceiling_db: float | None = None
    # how often a run that went past a fidelity budget goes back to its last evaluation within it and goes on
    # with the learning rate times `fidelity_backoff_factor` (and fresh optimiser moments), before it stops
    # there. The budget is crossed between two evaluations, so without this a run whose first interval overshoots
    # hands back step 0: in the loop, once most of the baseline's limit is spent, every run did
    # (benchmarks/results/loop_face_budget.txt, round 3; loop_worse_images.txt, rounds 2 and 3). 0: stop at once.
    fidelity_backoffs: int = 0
    fidelity_backoff_factor: float = 0.5
    # hand back the policy of the evaluation with the best held-out score (its win rate against the reference's
    # samples of the evaluation inputs) instead of the last one: early stopping's "restore the best weights".
    # The reward terms keep climbing after the held-out evaluator has peaked; this keeps the peak.
    keep_best: bool = False
    # with keep_best: only evaluations whose solution entropy is at most this share of the reference's compete
    # (the determinism goal as a requirement; when none meets it, all compete). Needs eval_entropy_seeds.
    keep_best_entropy_ratio: float | None = None
    entropy_seeds: int = 4
    # >= 2: every evaluation also measures the solution entropy of its inputs over this many seeds (the first is
    # the evaluation's own samples), and its ratio to the reference's; 0: off
    eval_entropy_seeds: int = 0

    # checkpoints
    checkpoint_every: int = 5
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        # a JSON round trip gives a list; the config stays hashable and equal to the one saved
        object.__setattr__(self, "ranked_edit_strengths", tuple(float(s) for s in self.ranked_edit_strengths))
        positive = [
            "max_steps",
            "inputs_per_step",
            "group_size",
            "rollout_steps",
            "inner_epochs",
            "minibatch_size",
            "eval_every",
            "eval_inputs",
            "eval_steps",
            "checkpoint_every",
            "keep_checkpoints",
            "fallback_downsample",
            "lora_rank",
            "perceptual_trunks",
            "ranked_fit_steps",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise RLConfigError(f"RLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.policy_update not in POLICY_UPDATES:
            raise RLConfigError(
                f"RLConfig.policy_update must be one of {', '.join(POLICY_UPDATES)}, got {self.policy_update!r}"
            )
        if self.ranked_edit_sigma <= 0 or self.ranked_fit_weight <= 0:
            raise RLConfigError("RLConfig.ranked_edit_sigma and ranked_fit_weight must be > 0")
        if self.ranked_candidates not in RANKED_CANDIDATES:
            raise RLConfigError(
                f"RLConfig.ranked_candidates must be one of {', '.join(RANKED_CANDIDATES)},"
                f" got {self.ranked_candidates!r}"
            )
        if self.ranked_edit_confidence < 0:
            raise RLConfigError(
                f"RLConfig.ranked_edit_confidence must be >= 0, got {self.ranked_edit_confidence}"
            )
        if self.ranked_fit_steps > self.rollout_steps:
            raise RLConfigError("RLConfig.ranked_fit_steps must be at most rollout_steps")
        if self.held_out_evaluator not in HELD_OUT_EVALUATORS:
            raise RLConfigError(
                f"RLConfig.held_out_evaluator must be one of {', '.join(HELD_OUT_EVALUATORS)},"
                f" got {self.held_out_evaluator!r}"
            )
        if self.group_size < 2:
            raise RLConfigError("RLConfig.group_size must be >= 2: advantages are normalised within a group")
        if self.eta <= 0:
            raise RLConfigError("RLConfig.eta must be > 0: a deterministic sampler has no log-probabilities")
        if not 0 < self.clip_range < 1:
            raise RLConfigError(f"RLConfig.clip_range must be in (0, 1), got {self.clip_range}")
        if self.advantage_clip <= 0:
            raise RLConfigError("RLConfig.advantage_clip must be > 0")
        if min(self.kl_weight, self.consistency_weight, self.perceptual_weight, self.agreement_weight) < 0:
            raise RLConfigError("RLConfig weights (kl, consistency, perceptual, agreement) must be >= 0")
        if self.agreement_target not in AGREEMENT_TARGETS:
            raise RLConfigError(
                f"RLConfig.agreement_target must be {' or '.join(map(repr, AGREEMENT_TARGETS))},"
                f" got {self.agreement_target!r}"
            )
        if (
            self.policy_update == "reward_ranked"
            and self.agreement_weight > 0
            and self.agreement_target != "mean"
        ):
            raise RLConfigError(
                "RLConfig.agreement_target must be 'mean' with reward_ranked: the ranked target is the group's best"
            )
        if self.learned_reward_pessimism < 0:
            raise RLConfigError("RLConfig.learned_reward_pessimism must be >= 0")
        if self.learned_reward_augmentations < 0 or self.learned_reward_max_shift < 0:
            raise RLConfigError(
                "RLConfig.learned_reward_augmentations and learned_reward_max_shift must be >= 0"
            )
        if self.entropy_seeds < 2 and self.entropy_seeds != 0:
            raise RLConfigError("RLConfig.entropy_seeds must be 0 (off) or >= 2")
        if self.eval_entropy_seeds < 2 and self.eval_entropy_seeds != 0:
            raise RLConfigError("RLConfig.eval_entropy_seeds must be 0 (off) or >= 2")
        if self.keep_best_entropy_ratio is not None and (
            self.keep_best_entropy_ratio <= 0 or not self.keep_best or not self.eval_entropy_seeds
        ):
            raise RLConfigError(
                "RLConfig.keep_best_entropy_ratio must be > 0 and needs keep_best and eval_entropy_seeds >= 2"
            )
        if self.fidelity_budget_db is not None and (
            self.fidelity_budget_db <= 0 or self.held_out_evaluator not in FIDELITY_EVALUATORS
        ):
            raise RLConfigError(
                f"RLConfig.fidelity_budget_db must be > 0 and needs a held_out_evaluator in dB"
                f" ({' or '.join(FIDELITY_EVALUATORS)})"
            )
        if self.fidelity_face_budget_db is not None and (
            self.fidelity_face_budget_db <= 0 or self.held_out_evaluator not in FIDELITY_EVALUATORS
        ):
            raise RLConfigError(
                f"RLConfig.fidelity_face_budget_db must be > 0 and needs a held_out_evaluator in dB"
                f" ({' or '.join(FIDELITY_EVALUATORS)})"
            )
        if self.hacking_patience < 0 or (
            self.hacking_patience == 0
            and self.fidelity_budget_db is None
            and self.fidelity_face_budget_db is None
        ):
            raise RLConfigError(
                f"RLConfig.hacking_patience must be >= 1, or 0 (off) with a fidelity budget, got {self.hacking_patience}"
            )
        if self.fidelity_face_ceiling_db is not None and self.fidelity_face_ceiling_db <= 0:
            raise RLConfigError(
                f"RLConfig.fidelity_face_ceiling_db must be > 0 or None, got {self.fidelity_face_ceiling_db}"
            )
        if self.fidelity_backoffs < 0 or not 0 < self.fidelity_backoff_factor < 1:
            raise RLConfigError(
                "RLConfig.fidelity_backoffs must be >= 0 and fidelity_backoff_factor in (0, 1), got"
                f" {self.fidelity_backoffs} and {self.fidelity_backoff_factor}"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise RLConfigError("RLConfig.max_minutes must be > 0 or None")
        if not 0 < self.train_timestep_fraction <= 1:
            raise RLConfigError("RLConfig.train_timestep_fraction must be in (0, 1]")
        if not 0 <= self.eval_fraction < 1:
            raise RLConfigError("RLConfig.eval_fraction must be in [0, 1)")

    @property
    def samples_per_step(self) -> int:
        return self.inputs_per_step * self.group_size

    def to_dict(self) -> dict[str, Any]:
        """JSON's values: tuples as lists, so that a saved config and a live one compare equal."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RLConfig:
        if not isinstance(values, dict):
            raise RLConfigError("an RL config must be a JSON object")
        reject_unknown_fields(cls, values, message="not an RLConfig: unknown fields", error=RLConfigError)
        if values.get("version", RL_CONFIG_VERSION) != RL_CONFIG_VERSION:
            raise RLConfigError(f"RLConfig version {values.get('version')} is not {RL_CONFIG_VERSION}")
        return cls(**values)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> RLConfig:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RLConfigError(f"cannot read RL config {path}: {error}") from error
        return cls.from_dict(values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RLConfig:
        """``tiny``: the 64x64 restorer on a 2-core CPU; ``tiny_preference``: the same restorer learning from a
        reward model only (no HQ-reading term; ``benchmarks/rl_gain.py``); ``base``: a GPU run; ``test``:
        seconds-long unit tests."""
        if name not in PRESETS:
            raise RLConfigError(f"unknown RL preset {name!r}; known: {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)


def config_from_argument(value: str, **overrides: Any) -> RLConfig:
    """A preset name or a path to a config JSON file, as given on the command line."""
    if value in PRESETS:
        return RLConfig.preset(value, **overrides)
    config = RLConfig.load(Path(value))
    return dataclasses.replace(config, **overrides)


PRESETS: dict[str, RLConfig] = {
    "test": RLConfig(
        max_steps=4,
        inputs_per_step=2,
        group_size=4,
        rollout_steps=4,
        inner_epochs=2,
        minibatch_size=8,
        learning_rate=1e-2,
        eval_every=2,
        eval_inputs=2,
        eval_steps=4,
        entropy_seeds=3,
        checkpoint_every=2,
    ),
    "tiny": RLConfig(
        max_steps=30,
        inputs_per_step=4,
        group_size=4,
        rollout_steps=8,
        eta=1.0,
        inner_epochs=2,
        minibatch_size=8,
        learning_rate=3e-5,
        clip_range=1e-2,
        kl_weight=0.01,
        eval_every=5,
        eval_inputs=8,
        eval_steps=8,
        entropy_seeds=4,
        checkpoint_every=5,
    ),
    # The recipe that learns from preferences (benchmarks/rl_gain.py --ablation, its learned-reward row; the
    # platform's train-rl default): the tiny restorer on a 2-core CPU, no fixed term that reads the HQ. The update
    # is reward_ranked (RAFT with edits as proposals): each input's 4 samples are averaged, the consensus and its
    # unsharp masks at strengths -1, -0.5, 0.5 and 1 are ranked by the learned reward (pessimistic ensemble mean)
    # plus observation consistency, and every sample is pulled through its last denoising step towards the
    # winner (weight 1e4) and towards the other samples of its input (agreement, weight 3e6: the determinism),
    # against a KL leash of weight 20. The reward model only ranks finished images, so the pixel patterns its
    # gradient rewards (reward_backprop with this reward model lost to the supervised restorer: win 27-50%,
    # benchmarks/results/probe14_*.txt) cannot be learned. The agreement pulls towards a blur and the ranking
    # answers with sharper winners: at 1e6 the run keeps PSNR (-0.19 dB) but not the determinism (-12%), at a fit
    # weight of 5e3 the blur wins (oracle win 43%). The guard watches the observation PSNR (it never reads the HQ;
    # along the sharpening axis it peaks where the annotators' oracle does, while the seed-0 LPIPS distance to the
    # HQ grows with any sharpening) and stops a run in which the learned reward rises while it falls for 3
    # evaluations (without the agreement term it stopped every run: the sharpening alone lowers it); the last
    # policy is handed back. 30 steps: ~2 minutes. Measured (benchmarks/results/rl_gain_ablation_seed{0,1}.txt):
    # oracle win 76.6% / 71.1% against the supervised restorer (the same run without the learned reward: 21.1% /
    # 21.1%, the agreement's blur), PSNR -0.50 / -0.37 dB, solution entropy -32% / -33%.
    "tiny_preference": RLConfig(
        max_steps=30,
        max_minutes=20.0,
        inputs_per_step=4,
        group_size=4,
        rollout_steps=8,
        eta=1.0,
        policy_update="reward_ranked",
        ranked_edit_strengths=(-1.0, -0.5, 0.5, 1.0),
        ranked_candidates="mean",
        ranked_fit_weight=1e4,
        inner_epochs=1,
        minibatch_size=8,
        learning_rate=1e-5,
        kl_weight=20.0,
        learned_reward_weight=3.0,
        learned_reward_pessimism=1.0,
        consistency_weight=1000.0,
        perceptual_weight=0.0,
        perceptual_trunks=5,
        agreement_weight=3e6,
        agreement_target="mean",
        held_out_evaluator="fidelity",
        eval_every=10,
        eval_inputs=48,
        eval_steps=8,
        eval_eta=0.0,
        eval_fraction=0.0,
        hacking_patience=3,
        keep_best=False,
        entropy_seeds=0,
        eval_entropy_seeds=2,
        checkpoint_every=5,
    ),
    "base": RLConfig(
        max_steps=500,
        inputs_per_step=16,
        group_size=8,
        rollout_steps=20,
        inner_epochs=2,
        minibatch_size=32,
        learning_rate=1e-5,
        eval_every=25,
        eval_inputs=64,
        eval_steps=20,
        entropy_seeds=8,
        checkpoint_every=25,
    ),
}
