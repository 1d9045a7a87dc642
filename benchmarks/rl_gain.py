"""On-policy RL of the tiny restorer against a reward model learned from simulated judgments: what it gains.

Pipeline (every phase is what the platform does, at CPU scale):

1. **Supervised restorer**: ``/tmp/pref-artifacts/restorer_tiny`` when it holds a loadable restorer artifact
   (left there by ``restorer.train --config tiny``), else one is trained here with the same ``tiny`` config for
   ``--restorer-minutes``.
2. **Inputs**: synthetic 64x64 faces (DCGAN of gan-face-generate, trained on DigiFace1M: research use only),
   degraded with the ``gfpgan`` preset; RL inputs from the synthetic *train* split (seeds the restorer's pool
   never used), the guard's held-out inputs from *val*, the report's held-out inputs from *test*.
3. **The oracle** (``--oracle``, default ``identity_sharpness``: ``reward_model.oracle_features``, the dlib
   face-descriptor distance to the HQ + 0.35 x a band-pass sharpness mismatch + 2.5 x the worst-window
   artifact error). It plays two parts and only two: the simulated annotators judge with it (reliable
   annotators of ``reward_model.oracle`` at that distance's default temperature, tie margin and both-bad
   threshold: noise, ties and "both bad" like people), and the report scores the test faces with it (win rate:
   lower badness than the supervised restorer's image of the same face and seed, ties half). RL never calls
   it: no fixed RL term, no input of the reward model and not the guard computes it; the report prints the
   correlation of every fixed term with it on the policies' own test samples.
4. **Reward model from simulated judgments**, on a pool per input of on-policy candidates and a broader pool:
   ``--policy-samples`` samples of the supervised restorer with its stochastic RL sampler (eta 1, the rollout
   step count: what RL's groups hold), one sample at each of ``--fast-steps`` (eta 1 with fewer steps: more
   noise per step, so the samples differ), ``--edited`` edited versions of the samples (unsharp mask or blur of
   random strength, added noise: stand-ins for the other model versions of a real pool), ``--classical``
   classical restorations (``restorer.classical``, random sharpening) and ``--sharpened`` rungs of a sharpening
   ladder (unsharp masks of one sample, no noise, strengths stratified from a blur to a strong over-sharpening:
   a reward model fitted without them rose with sharpening far past the oracle's best strength, and RL followed
   its gradient there; judged by the same annotators, the ladder's pairs say where sharpening stops helping).
   The restorer's raw samples of one input
   are nearly identical under the oracle (the report measures the share of those pairs within the annotators'
   tie margin), so the informative on-policy pairs are those between samples, faster samples and edits. Every
   within-input pair is judged ``--judgments-per-pair`` times; ``reward_model.train`` fits the model. Its
   accuracy against the noise-free oracle is measured on held-out (*val*) inputs' pools, by kind of pair, and
   in the ablation on each policy's own test samples.
5. **RL**: ``rl_trainer.train`` (the job runner's entry point) on a JSONL manifest, recipe = the
   ``tiny_preference`` preset of ``rl_trainer.config`` (reward_ranked: each input's 4 samples averaged, the
   consensus and its unsharp masks at strengths -1, -0.5, 0.5, 1 ranked by the learned reward with pessimism 1
   plus observation consistency, every sample pulled through its last denoising step towards the winner
   against a KL leash of 20; ``--policy-update reward_backprop`` follows the reward's gradient instead). The
   guard's held-out evaluator (``RLConfig.held_out_evaluator``, ``rl_trainer.guard.default_held_out``) is the
   preset's observation PSNR (the LQ against the image degraded again: it never reads the HQ), or with
   ``--held-out-evaluator perceptual`` minus the seed-0 random-trunk LPIPS distance to the HQ (the *old*
   oracle); neither is the oracle of this benchmark, which RL never sees.
6. **Report** on held-out test inputs, supervised vs RL-tuned, same seeds: oracle win rate, PSNR, the seed-0
   random-trunk LPIPS (*not* LPIPS: no ImageNet weights offline), the learned reward, solution entropy (mean
   per-pixel std across seeds); the correlation of every fixed RL term with the oracle on the models' test samples;
   and the reward model along the sharpening axis (unsharp masks of the supervised samples: where the learned
   reward keeps rising past the oracle's best strength, its gradient over-sharpens).

``--ablation`` runs the rows of the issue's table, reusing one reward model: the supervised restorer; RL with
the recipe's fixed terms only (consistency and KL: the same update with the learned reward's weight 0);
``fixed_gt``, the same plus the GT perceptual term (LPIPS heads on random trunks of seeds 1-5 against the HQ,
weight 5000); RL with the learned reward (the preset: + consistency, KL); RL with both (+ the GT perceptual
term). ``--rows`` picks rows, ``--reuse-rows`` reuses rows measured by an earlier call with the same settings
(so a long ablation can run as several calls).

Heavy: run it under the shared lock (2-core CPU)::

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python -u benchmarks/rl_gain.py --ablation [--quick]

Writes its report to ``benchmarks/results/rl_gain.txt`` (``--ablation``: ``rl_gain_ablation.txt``; ``--quick``:
``..._quick.txt``; ``--results-name`` to choose).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from restorer import sampling
from restorer.artifacts import ArtifactError
from restorer.classical import classical_restore, unsharp_mask
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import apply_degradation, instruction_text, sample_degradation
from restorer.images import quantize, tensor_to_pil
from restorer.metrics import PerceptualDistance, psnr, solution_entropy
from restorer.model import Restorer
from reward_model.data import ImageBank
from reward_model.model import RewardConfig, RewardModel
from reward_model.oracle import DISTANCE_NAMES, OracleAnnotator, distance_by_name
from reward_model.selection import CandidatePair
from reward_model.simulated import simulated_judgments
from reward_model.train import TrainConfig as RewardTrainConfig
from reward_model.train import train as train_reward_model
from rl_trainer.config import HELD_OUT_EVALUATORS, RLConfig
from rl_trainer.guard import fidelity_evaluator, win_rate
from rl_trainer.manifest import write_manifest
from rl_trainer.rewards import group_agreement, observation_consistency, perceptual_reward_distance
from rl_trainer.train import RLResult
from rl_trainer.train import train as train_rl

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOLUTION = 64
DEFAULT_RESTORER = Path("/tmp/pref-artifacts/restorer_tiny")
RL_SEED_OFFSET = 900_000  # synthetic train seeds far beyond the restorer's training pool
PRESET = "tiny_preference"  # rl_trainer.config: the recipe of the learned-reward row
ABLATION_PERCEPTUAL_WEIGHT = (
    5000.0  # the GT perceptual term where a row keeps it (the earlier benchmark's weight)
)
DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Sizes:
    rl_inputs: int
    guard_inputs: int
    test_inputs: int
    reward_check_inputs: int  # val inputs whose candidate pools check the reward model
    reward_inputs: int
    reward_steps: int
    eval_seeds: int
    rl_max_steps: int | None  # None: the preset's


FULL = Sizes(
    rl_inputs=48,
    guard_inputs=48,
    test_inputs=96,
    reward_check_inputs=24,
    reward_inputs=192,
    reward_steps=800,
    eval_seeds=4,
    rl_max_steps=None,
)
QUICK = Sizes(
    rl_inputs=8,
    guard_inputs=2,
    test_inputs=4,
    reward_check_inputs=2,
    reward_inputs=8,
    reward_steps=40,
    eval_seeds=2,
    rl_max_steps=2,
)


@dataclasses.dataclass(frozen=True)
class Row:
    """One RL row of the ablation: which reward terms it has (the weights come from the preset and the flags)."""

    name: str
    title: str
    learned: bool
    perceptual: bool


ROWS: dict[str, Row] = {
    # the recipe's own fixed terms without the learned reward: what the preferences add is learned - fixed
    "fixed": Row("fixed", "RL fixed terms only", learned=False, perceptual=False),
    # the same with the GT perceptual term, which reads the HQ: what a fixed term with the HQ in hand finds
    "fixed_gt": Row("fixed_gt", "RL fixed terms (GT percept reads the HQ)", learned=False, perceptual=True),
    "learned": Row("learned", "RL learned reward", learned=True, perceptual=False),
    "both": Row("both", "RL learned reward + fixed terms", learned=True, perceptual=True),
}


def rl_config(args: argparse.Namespace, sizes: Sizes, row: Row | None) -> RLConfig:
    """The preset, the sizes of this run, and the row's terms (``row`` None: the flags alone decide)."""
    preset = RLConfig.preset(PRESET)
    learned_weight = args.learned_weight if args.learned_weight is not None else preset.learned_reward_weight
    perceptual_weight = args.perceptual_weight
    if row is not None:
        learned_weight = learned_weight if row.learned else 0.0
        perceptual_weight = (perceptual_weight or ABLATION_PERCEPTUAL_WEIGHT) if row.perceptual else 0.0
    overrides: dict[str, Any] = {
        "seed": args.seed,
        "max_steps": sizes.rl_max_steps if sizes.rl_max_steps is not None else preset.max_steps,
        "max_minutes": args.rl_minutes,
        "rollout_steps": args.rollout_steps,
        "eval_steps": args.rollout_steps,
        "eval_inputs": sizes.guard_inputs,
        "learned_reward_weight": learned_weight,
        "perceptual_weight": perceptual_weight or 0.0,
        "use_lora": args.lora,
    }
    for flag, field in (
        ("learning_rate", "learning_rate"),
        ("kl_weight", "kl_weight"),
        ("consistency_weight", "consistency_weight"),
        ("agreement_weight", "agreement_weight"),
        ("perceptual_trunks", "perceptual_trunks"),
        ("pessimism", "learned_reward_pessimism"),
        ("eval_every", "eval_every"),
        ("hacking_patience", "hacking_patience"),
        ("reward_augmentations", "learned_reward_augmentations"),
        ("centered_disagreement", "learned_reward_centered_disagreement"),
        ("policy_update", "policy_update"),
        ("ranked_strengths", "ranked_edit_strengths"),
        ("ranked_fit_weight", "ranked_fit_weight"),
        ("ranked_candidates", "ranked_candidates"),
        ("ranked_fit_steps", "ranked_fit_steps"),
        ("agreement_target", "agreement_target"),
        ("held_out_evaluator", "held_out_evaluator"),
    ):
        if getattr(args, flag) is not None:
            overrides[field] = getattr(args, flag)
    if args.quick:
        overrides["eval_every"] = 1
    if args.keep_best is not None:
        overrides["keep_best"] = args.keep_best
    if args.keep_best is False:
        overrides["keep_best_entropy_ratio"] = None
    return dataclasses.replace(preset, **overrides)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


# ------------------------------------------------------------------------------------------------ inputs


@dataclasses.dataclass
class Faces:
    ids: list[str]
    hq: torch.Tensor
    lq: torch.Tensor  # quantised like the PNG the platform stores
    params: list
    instructions: list[str]


def make_faces(split: str, count: int, offset: int = 0) -> Faces:
    seeds = split_seeds(split, count, offset=offset)
    hq = quantize(synthetic_faces(seeds, RESOLUTION))
    params = [sample_degradation("gfpgan", seed=seed, resolution=RESOLUTION) for seed in seeds]
    lq = quantize(torch.stack([apply_degradation(face, p) for face, p in zip(hq, params)]))
    return Faces(
        ids=[f"{split}{seed}" for seed in seeds],
        hq=hq,
        lq=lq,
        params=params,
        instructions=[instruction_text(p) for p in params],
    )


# ---------------------------------------------------------------------------------------------- restorer


def supervised_restorer(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    candidate = Path(args.restorer)
    try:
        Restorer.from_pretrained(candidate)
        return candidate, f"{candidate} (left by restorer.train --config tiny)"
    except (ArtifactError, OSError, ValueError) as error:
        log(f"no usable restorer at {candidate} ({error})")
    out = work / "restorer"
    try:
        Restorer.from_pretrained(out)
        trained = json.loads((out / "bench_note.json").read_text())["note"]
        return out, f"{trained} (by an earlier run of this benchmark)"
    except (ArtifactError, OSError, ValueError, KeyError):
        log("training one with restorer.train's tiny config")
    from restorer.train import named_config
    from restorer.train import train as train_restorer

    config = dataclasses.replace(named_config("tiny"), max_minutes=args.restorer_minutes)
    if args.quick:
        config = dataclasses.replace(config, max_steps=20, max_minutes=1.0, validate_every=10**9)
    threads = torch.get_num_threads()
    result = train_restorer(config, out_dir=out, progress=False)
    torch.set_num_threads(threads)  # restorer.train may pin its own thread count; RL should use every core
    note = f"trained here: tiny config, {result.steps} steps in {result.train_seconds / 60:.1f} min"
    (out / "bench_note.json").write_text(json.dumps({"note": note}))
    return out, note


# -------------------------------------------------------------------------------------------------- oracle


def oracle_definition(oracle: OracleAnnotator) -> str:
    name = getattr(oracle.distance, "name", type(oracle.distance).__name__)
    if name == "identity_sharpness":
        config = oracle.distance.config  # type: ignore[attr-defined]
        formula = (
            f"identity_sharpness(x, hq) = {config.identity_weight:g} identity + {config.sharpness_weight:g}"
            f" sharpness + {config.artifact_weight:g} artifact (reward_model.oracle_features; badness, 0 for the"
            " HQ, ~1 for a gfpgan LQ): identity = dlib face-descriptor distance to the HQ under the HQ's own"
            " landmark alignment; sharpness = mean |log band-energy ratio| over two band-pass bands of luma (nats);"
            " artifact = RMS band-pass error of the worst 5% of 8x8 windows"
        )
    elif name == "lpips_randtrunk":
        formula = (
            "lpips_randtrunk(x, hq): LPIPS heads on a seed-0 random AlexNet trunk (the guard's own distance!)"
        )
    else:
        formula = f"{name}(x, hq)"
    return (
        f"{formula}; annotators: reliable, Bradley-Terry temperature {oracle.temperature:g}, tie within"
        f" {oracle.tie_margin:g}, both bad above {oracle.both_bad_threshold:g}"
    )


def badness(distance: DistanceFn, images: torch.Tensor, hq: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """``distance(images, hq)`` in chunks, on the quantised images (what the platform stores and annotators see)."""
    with torch.no_grad():
        return torch.cat(
            [
                distance(quantize(images[i : i + chunk]), hq[i : i + chunk]).detach().float().cpu()
                for i in range(0, len(images), chunk)
            ]
        )


# ------------------------------------------------------------------------------------------ reward model


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """Candidates per input of the reward model's pool (module docstring, step 4)."""

    policy_samples: int
    fast_steps: tuple[int, ...]
    edited: int
    classical: int
    sharpened: int = 0  # the sharpening ladder: unsharp masks of one sample at strengths along the axis

    @property
    def size(self) -> int:
        return self.policy_samples + len(self.fast_steps) + self.edited + self.classical + self.sharpened


def edit(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Stand-ins for other model versions: unsharp mask of strength in [-0.8, 1.5] (negative: towards a blur) and
    Gaussian noise of std in [0, 0.03], drawn per image (``benchmarks/oracle_independence.py`` uses the same)."""
    strength = (torch.rand(len(images), generator=generator) * 2.3 - 0.8).view(-1, 1, 1, 1)
    noise_std = (torch.rand(len(images), generator=generator) * 0.03).view(-1, 1, 1, 1)
    noise = torch.randn(images.shape, generator=generator) * noise_std
    return (unsharp_mask(images, strength, sigma=1.0) + noise).clamp(-1.0, 1.0)


LADDER_STRENGTHS = (-0.7, 3.0)  # the sharpening ladder's range of unsharp-mask strengths
LADDER_SIGMAS = (0.7, 1.0, 1.5)  # its blur radii (px): RL can over-sharpen at more than one scale


def sharpening_ladder(image: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` unsharp masks of one image, without noise: strength stratified over ``LADDER_STRENGTHS`` (one
    random strength in each of ``count`` equal bins: from a blur to a strong over-sharpening), radius drawn from
    ``LADDER_SIGMAS``. Pairs of them and of their source differ only along the sharpening axis, so the
    annotators' answers on them tell the reward model where the oracle's best strength lies (the axis a
    reward's gradient was seen to hack: beyond that strength more sharpening is worse, not better)."""
    low, high = LADDER_STRENGTHS
    width = (high - low) / count
    strengths = low + width * (torch.arange(count) + torch.rand(count, generator=generator))
    sigmas = torch.randint(len(LADDER_SIGMAS), (count,), generator=generator).tolist()
    return torch.stack(
        [
            unsharp_mask(image[None], float(strength), sigma=LADDER_SIGMAS[sigma])[0].clamp(-1.0, 1.0)
            for strength, sigma in zip(strengths.tolist(), sigmas)
        ]
    )


@dataclasses.dataclass
class Pool:
    keys: list[str]
    kind: dict[str, str]  # policy | fast<n> | edited | classical
    input_of: dict[str, str]
    images: dict[str, torch.Tensor]  # candidate keys and each input's LQ key
    badness: dict[str, float]  # the oracle's, noise free
    candidates_of: dict[str, list[str]]


def candidate_pool(
    restorer: Restorer, batch: Faces, spec: PoolSpec, oracle: DistanceFn, rollout_steps: int, seed_base: int
) -> Pool:
    pool = Pool([], {}, {}, {}, {}, {})
    generator = torch.Generator().manual_seed(seed_base)
    per_call = 4  # inputs per sampler call: batches of 4 * K images keep the CPU busy
    for first in range(0, len(batch.ids), per_call):
        chunk = list(range(first, min(first + per_call, len(batch.ids))))
        drawn: dict[int, list[tuple[str, torch.Tensor]]] = {index: [] for index in chunk}
        runs = [("policy", rollout_steps, spec.policy_samples)] + [
            (f"fast{steps}", steps, 1) for steps in spec.fast_steps
        ]
        for kind, steps, count in runs:
            if count == 0:
                continue
            with torch.no_grad():
                out = sampling.sample(
                    restorer,
                    batch.lq[chunk].repeat_interleave(count, dim=0),
                    [batch.instructions[index] for index in chunk for _ in range(count)],
                    num_steps=steps,
                    eta=1.0,
                    seeds=[
                        seed_base + 1000 * index + 10 * steps + c for index in chunk for c in range(count)
                    ],
                )
            for position, index in enumerate(chunk):
                drawn[index] += [
                    (kind, image) for image in out.images[position * count : (position + 1) * count]
                ]
        for index in chunk:
            samples = [image for kind, image in drawn[index] if kind == "policy"] or [drawn[index][0][1]]
            sources = (
                torch.stack([samples[c % len(samples)] for c in range(spec.edited)]) if spec.edited else None
            )
            if sources is not None:
                drawn[index] += [("edited", image) for image in edit(sources, generator)]
            if spec.sharpened:
                drawn[index] += [
                    ("sharpened", image) for image in sharpening_ladder(samples[0], spec.sharpened, generator)
                ]
            levels = torch.randperm(3, generator=generator)[: spec.classical].tolist()
            for level in levels:
                sharpen = (0.0, 0.6, 1.5)[level]
                drawn[index].append(
                    ("classical", classical_restore(batch.lq[index : index + 1], sharpen=sharpen)[0])
                )
            input_id = batch.ids[index]
            keys = [f"samples/{kind}/{input_id}/{c}.png" for c, (kind, _) in enumerate(drawn[index])]
            images = quantize(torch.stack([image.clamp(-1, 1) for _, image in drawn[index]]))
            scores = badness(oracle, images, batch.hq[index : index + 1].expand_as(images))
            pool.images[f"inputs/{input_id}/lq.png"] = batch.lq[index]
            for key, (kind, _), image, score in zip(keys, drawn[index], images, scores.tolist()):
                pool.keys.append(key)
                pool.kind[key] = kind
                pool.input_of[key] = input_id
                pool.images[key] = image
                pool.badness[key] = score
            pool.candidates_of[input_id] = keys
    return pool


def pair_family(kind_a: str, kind_b: str) -> str:
    """raw (two RL-sampler samples), on-policy (samples, faster samples and their edits), classical (one is),
    sharpening (one is a rung of the sharpening ladder, neither classical)."""
    if kind_a == kind_b == "policy":
        return "raw"
    if "classical" in (kind_a, kind_b):
        return "classical"
    if "sharpened" in (kind_a, kind_b):
        return "sharpening"
    return "on-policy"


def pool_pairs(pool: Pool) -> list[tuple[str, str, str]]:
    return [
        (a, b, pair_family(pool.kind[a], pool.kind[b]))
        for keys in pool.candidates_of.values()
        for a, b in itertools.combinations(keys, 2)
    ]


def accuracy(
    reward_a: list[float], reward_b: list[float], bad_a: list[float], bad_b: list[float], margin: float
):
    """Share of pairs the reward orders as the noise-free oracle does, over pairs the oracle separates by more than
    ``margin`` (an annotator would call the rest a tie); (accuracy, pairs, share of pairs within the margin)."""
    decided = [
        (ra, rb, da, db) for ra, rb, da, db in zip(reward_a, reward_b, bad_a, bad_b) if abs(da - db) > margin
    ]
    correct = sum((ra > rb) == (da < db) for ra, rb, da, db in decided)
    ties = 1 - len(decided) / max(len(reward_a), 1)
    return (correct / len(decided) if decided else float("nan")), len(decided), ties


def judge_pairs(
    pairs: list[tuple[str, str]],
    pool: Pool,
    annotator: OracleAnnotator,
    args: argparse.Namespace,
    *,
    seed: int,
) -> list:
    """Every pair judged ``--judgments-per-pair`` times by the simulated annotators."""
    return simulated_judgments(
        [CandidatePair(pool.input_of[a], a, b) for a, b in pairs for _ in range(args.judgments_per_pair)],
        annotator,
        distances=pool.badness,
        lq_keys={input_id: f"inputs/{input_id}/lq.png" for input_id in pool.candidates_of},
        annotators=[f"reliable{index}" for index in range(args.judgments_per_pair)],
        rng=np.random.default_rng(seed),
        model="supervised",
    )


def reward_fit_config(args: argparse.Namespace, steps: int) -> RewardTrainConfig:
    # the reward_learning benchmark's model (4 members); at 64 px
    channels = (16, 32, 64) if args.reward_resolution <= 32 else (16, 32, 64, 64)
    reward_config = RewardConfig(
        resolution=args.reward_resolution,
        channels=channels,
        ensemble_size=4,
        residual_input=True,
        group_norm=True,
    )
    # no early stop (min_steps = the budget; the best validation step is still the one kept): with the sharpening
    # ladder's pairs the validation accuracy first dips (the model learns "sharper is better" before it learns
    # where that stops), and patience 4 stopped a fit at step 250 with the model of step 50 (chance accuracy)
    return RewardTrainConfig(
        reward=reward_config, max_steps=steps, eval_every=50, patience=4, min_steps=steps
    )


def build_reward_model(
    restorer: Restorer,
    faces: Faces,
    held_out: Faces,
    annotator: OracleAnnotator,
    spec: PoolSpec,
    args: argparse.Namespace,
    sizes: Sizes,
    work: Path,
    pool_key: dict,
) -> tuple[Path, dict]:
    started = time.perf_counter()
    # the candidate pools (samples and the oracle's badness) are cached: a refit with other fit settings reuses them
    pools_cache = work / "reward_pools.pt"
    saved = torch.load(pools_cache, weights_only=True) if pools_cache.is_file() else None
    if saved is not None and saved["key"] == json.loads(json.dumps(pool_key)):
        train_pool, check_pool = Pool(**saved["train"]), Pool(**saved["check"])
        generated = float(saved["seconds"])
        log(f"reward model: reusing the candidate pools of an earlier run (made in {generated:.0f} s)")
    else:
        train_pool = candidate_pool(restorer, faces, spec, annotator.distance, args.rollout_steps, 10_000_000)
        check_pool = candidate_pool(
            restorer, held_out, spec, annotator.distance, args.rollout_steps, 20_000_000
        )
        generated = time.perf_counter() - started
        torch.save(
            {
                "key": json.loads(json.dumps(pool_key)),
                # each image cloned: a view would save the whole batch it was cut from (gigabytes)
                **{
                    name: {
                        **dataclasses.asdict(pool),
                        "images": {key: image.clone() for key, image in pool.images.items()},
                    }
                    for name, pool in (("train", train_pool), ("check", check_pool))
                },
                "seconds": generated,
            },
            pools_cache,
        )
    margin = annotator.tie_margin
    train_pairs = pool_pairs(train_pool)
    rows = judge_pairs([(a, b) for a, b, _ in train_pairs], train_pool, annotator, args, seed=0)
    # what the judgments of each family of pairs say (ties dominate between raw samples)
    judged: dict[str, dict[str, int]] = {}
    family_of_pair = {(a, b): family for a, b, family in train_pairs}
    for row in rows:
        counts = judged.setdefault(family_of_pair[(row.a_key, row.b_key)], {})
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    config = reward_fit_config(args, sizes.reward_steps)
    reward_config = config.reward
    out = work / "reward"
    shutil.rmtree(out, ignore_errors=True)
    fit_started = time.perf_counter()
    result = train_reward_model(
        config,
        judgments=rows,
        images=ImageBank({**train_pool.images}, reward_config.resolution),
        out_dir=out,
        progress=False,
    )
    fit_seconds = time.perf_counter() - fit_started

    # accuracy on the held-out inputs' pools against the noise-free oracle, by family of pair
    model = result.model.eval()
    reward_of: dict[str, float] = {}
    lq_of = {input_id: held_out.lq[index] for index, input_id in enumerate(held_out.ids)}
    with torch.no_grad():
        for input_id, keys in check_pool.candidates_of.items():
            stack = torch.stack([check_pool.images[key] for key in keys])
            values = model(lq_of[input_id].expand_as(stack), stack).tolist()
            reward_of.update(zip(keys, values))
    check_pairs = pool_pairs(check_pool)
    by_family: dict[str, dict[str, float]] = {}
    for family in ("raw", "on-policy", "classical", "sharpening", "all"):
        chosen = [(a, b) for a, b, f in check_pairs if family in (f, "all")]
        acc, decided, ties = accuracy(
            [reward_of[a] for a, _ in chosen],
            [reward_of[b] for _, b in chosen],
            [check_pool.badness[a] for a, _ in chosen],
            [check_pool.badness[b] for _, b in chosen],
            margin,
        )
        in_train = [(a, b) for a, b, f in train_pairs if family in (f, "all")]
        tie_share = sum(
            abs(train_pool.badness[a] - train_pool.badness[b]) <= margin for a, b in in_train
        ) / max(len(in_train), 1)
        median_gap = (
            statistics.median(abs(train_pool.badness[a] - train_pool.badness[b]) for a, b in in_train)
            if in_train
            else float("nan")
        )
        if not chosen and not in_train:
            continue
        by_family[family] = {
            "accuracy": acc,
            "decided_pairs": decided,
            "check_pairs": len(chosen),
            "check_tie_share": ties,
            "train_pairs": len(in_train),
            "train_tie_share": tie_share,
            "train_median_gap": median_gap,
        }
    mean_badness = {
        kind: statistics.fmean(v for k, v in train_pool.badness.items() if train_pool.kind[k] == kind)
        for kind in sorted(set(train_pool.kind.values()))
    }
    info = {
        "sharpening_check": sharpening_check(model, held_out, check_pool, annotator.distance),
        "judgments": len(rows),
        "train_inputs": len(faces.ids),
        "check_inputs": len(held_out.ids),
        "pool": dataclasses.asdict(spec),
        "annotator": annotator.describe(),
        "reward_resolution": args.reward_resolution,
        "by_family": by_family,
        "judged": judged,
        "mean_badness_by_kind": mean_badness,
        "candidate_seconds": generated,
        "fit_seconds": fit_seconds,
        "validation": {k: v for k, v in result.metrics.items() if isinstance(v, float | int)},
    }
    return out, info


def sharpening_check(model: RewardModel, held_out: Faces, pool: Pool, oracle: DistanceFn) -> list[dict]:
    """The fitted reward model along the sharpening axis on the held-out (val) inputs: unsharp masks (sigma 1) of
    each input's first RL-sampler sample at the report's strengths; per strength the mean oracle badness, the
    ensemble's mean reward, its member std, and the share of inputs whose reward rises from strength 0 (a
    reward that keeps rising where the oracle's badness rises is one RL can hack by over-sharpening)."""
    ids = [input_id for input_id in held_out.ids if input_id in pool.candidates_of]
    images = torch.stack([pool.images[pool.candidates_of[input_id][0]] for input_id in ids])
    index = {input_id: i for i, input_id in enumerate(held_out.ids)}
    lq = held_out.lq[[index[i] for i in ids]]
    hq = held_out.hq[[index[i] for i in ids]]
    rows: list[dict] = []
    with torch.no_grad():
        base = None
        for strength in SHARPENING:
            edited = quantize(unsharp_mask(images, strength, sigma=1.0).clamp(-1, 1))
            members = model.member_rewards(lq, edited)
            mean = members.mean(dim=1)
            if strength == 0.0:
                base = mean
            rows.append(
                {
                    "s": strength,
                    "oracle": float(badness(oracle, edited, hq).mean()),
                    "learned": float(mean.mean()),
                    "member_std": float(members.std(dim=1, unbiased=False).mean()),
                    "_mean": mean,
                }
            )
    for row in rows:
        row["rises_from_0"] = (
            float((row.pop("_mean") > base).float().mean()) if base is not None else float("nan")
        )
    return rows


def reward_lines(info: dict) -> list[str]:
    pool = info["pool"]
    lines = [
        f"reward model: {info['judgments']} simulated judgments ({info['annotator']['kind']} oracle annotators) on"
        f" {pool['policy_samples']} RL-sampler samples + 1 sample at each of {pool['fast_steps']} steps + {pool['edited']}"
        f" edited samples + {pool['classical']} classical restoration(s) + {pool.get('sharpened', 0)} rungs of the"
        f" sharpening ladder of each of {info['train_inputs']} train inputs,"
        f" every within-input pair judged; candidates {info['candidate_seconds']:.0f} s, fit {info['fit_seconds']:.0f} s",
        "  mean oracle badness by kind (train pool): "
        + ", ".join(f"{kind} {value:.3f}" for kind, value in info["mean_badness_by_kind"].items()),
        "  pairs by family (raw: two RL-sampler samples of one input; on-policy: samples, faster samples, their edits;"
        " classical: one side classical): share within the annotators' tie margin, median |badness gap|, what the"
        " annotators answered, and the reward model's accuracy vs the noise-free oracle on held-out (val) inputs'"
        f" pools ({info['check_inputs']} inputs; pairs within the tie margin left out)",
    ]
    for family, figures in info["by_family"].items():
        answers = info["judged"].get(family) if family != "all" else None
        if family == "all":
            merged: dict[str, int] = {}
            for counts in info["judged"].values():
                for outcome, count in counts.items():
                    merged[outcome] = merged.get(outcome, 0) + count
            answers = merged
        total = sum((answers or {}).values()) or 1
        said = ", ".join(
            f"{outcome} {count / total:.0%}" for outcome, count in sorted((answers or {}).items())
        )
        lines.append(
            f"    {family:<10} train {figures['train_pairs']:>5} pairs, {figures['train_tie_share']:.0%} within the"
            f" margin, median gap {figures['train_median_gap']:.4f}; answers: {said}; held-out accuracy"
            f" {figures['accuracy']:.3f} on {figures['decided_pairs']} of {figures['check_pairs']} pairs"
        )
    if info.get("sharpening_check"):
        lines.append(
            f"  the reward model along the sharpening axis on the held-out (val) inputs ({info['check_inputs']}; unsharp"
            " mask of strength s, sigma 1, of each one's first RL-sampler sample): mean oracle badness, ensemble mean"
            " reward, member std, share of inputs whose reward is above its s = 0 reward"
        )
        lines.append(f"    {'s':>5} {'oracle':>8} {'learned':>8} {'std':>7} {'> s=0':>6}")
        for row in info["sharpening_check"]:
            lines.append(
                f"    {row['s']:>5.1f} {row['oracle']:>8.4f} {row['learned']:>8.4f} {row['member_std']:>7.4f}"
                f" {row['rises_from_0']:>6.2f}"
            )
    return lines


# ---------------------------------------------------------------------------------------------- RL run


def write_inputs(faces: Faces, guard: Faces, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, batch in (("train", faces), ("eval", guard)):
        for index, input_id in enumerate(batch.ids):
            tensor_to_pil(batch.lq[index]).save(folder / f"{input_id}_lq.png")
            tensor_to_pil(batch.hq[index]).save(folder / f"{input_id}_hq.png")
            rows.append(
                {
                    "id": input_id,
                    "lq": f"{input_id}_lq.png",
                    "hq": f"{input_id}_hq.png",
                    "degradation": batch.params[index].to_dict(),
                    "instruction": batch.instructions[index],
                    "split": split,
                }
            )
    write_manifest(folder / "inputs.jsonl", rows)
    return folder / "inputs.jsonl"


def evaluate(
    model: Restorer, faces: Faces, *, num_steps: int, eta: float, seeds: int, batch: int = 24
) -> tuple[torch.Tensor, float]:
    """Samples ``[S, N, 3, H, W]`` (seed s of input i: 7919 * s + i) and images/s."""
    started = time.perf_counter()
    per_seed = []
    for seed in range(seeds):
        chunks = []
        for start in range(0, len(faces.ids), batch):
            stop = min(start + batch, len(faces.ids))
            out = sampling.sample(
                model,
                faces.lq[start:stop],
                faces.instructions[start:stop],
                num_steps=num_steps,
                eta=eta,
                seeds=[7919 * seed + i for i in range(start, stop)],
            )
            chunks.append(out.images)
        per_seed.append(torch.cat(chunks))
    samples = torch.stack(per_seed)
    return samples, samples.shape[0] * samples.shape[1] / (time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------ scoring


@dataclasses.dataclass
class Scorers:
    oracle: DistanceFn  # the benchmark's oracle: badness, lower is better
    guard: DistanceFn  # the guard's held-out distance (rl_trainer.guard.default_held_out's)
    perceptual: DistanceFn  # the RL's GT perceptual term's distance (seeds 1..trunks)
    reward: RewardModel
    margin: float  # the annotators' tie margin, in the oracle's units


def score_samples(samples: torch.Tensor, faces: Faces, scorers: Scorers) -> dict[str, torch.Tensor]:
    """Per image (seed-major, ``[S * N]``): the oracle's badness and every term, each as its own function says."""
    seeds, count = samples.shape[:2]
    flat = quantize(samples.reshape(-1, 3, RESOLUTION, RESOLUTION))
    hq = faces.hq.repeat(seeds, 1, 1, 1)
    lq = faces.lq.repeat(seeds, 1, 1, 1)
    params = list(faces.params) * seeds
    with torch.no_grad():
        by_input = (
            flat.view(seeds, count, 3, RESOLUTION, RESOLUTION)
            .transpose(0, 1)
            .reshape(-1, 3, RESOLUTION, RESOLUTION)
        )
        agreement = group_agreement(by_input, seeds).view(count, seeds).t().reshape(-1)
        return {
            "oracle": badness(scorers.oracle, flat, hq),
            "psnr": psnr(flat, hq),
            "guard_lpips0": badness(scorers.guard, flat, hq),
            "perceptual": badness(scorers.perceptual, flat, hq),
            "consistency": observation_consistency(lq, flat, params, fallback_factor=4),
            "agreement": agreement,
            "learned": torch.cat(
                [scorers.reward(lq[i : i + 64], flat[i : i + 64]) for i in range(0, len(flat), 64)]
            ),
        }


@dataclasses.dataclass
class Measured:
    """One model's test samples under one sampler, scored."""

    samples: torch.Tensor
    scores: dict[str, torch.Tensor]
    entropy: float
    speed: float


def load_cache(path: Path) -> dict[str, Any]:
    """A measurement cache of an earlier call: tensors, plain values and `Measured` only (weights_only, so a
    cache file cannot run code when it is read)."""
    with torch.serialization.safe_globals([Measured]):
        return torch.load(path, weights_only=True)


def measure(
    model: Restorer, faces: Faces, sampler: tuple[str, int, float], seeds: int, scorers: Scorers
) -> Measured:
    _, steps, eta = sampler
    samples, speed = evaluate(model, faces, num_steps=steps, eta=eta, seeds=seeds)
    return Measured(samples, score_samples(samples, faces, scorers), solution_entropy(samples), speed)


def policy_accuracy(
    policy: Measured, reference: Measured | None, count: int, scorers: Scorers
) -> tuple[float, int]:
    """The reward model's accuracy on the policy's own samples: pairs (reference, policy) of one face and seed and
    (policy seed s, policy seed t) of one face, where the oracle separates them by more than the tie margin."""
    seeds = policy.samples.shape[0]
    pairs: list[tuple[tuple[Measured, int], tuple[Measured, int]]] = []
    for i in range(count):
        if reference is not None:
            pairs += [((reference, s * count + i), (policy, s * count + i)) for s in range(seeds)]
        pairs += [
            ((policy, s * count + i), (policy, t * count + i))
            for s, t in itertools.combinations(range(seeds), 2)
        ]
    acc, decided, _ = accuracy(
        [float(m.scores["learned"][j]) for (m, j), _ in pairs],
        [float(m.scores["learned"][j]) for _, (m, j) in pairs],
        [float(m.scores["oracle"][j]) for (m, j), _ in pairs],
        [float(m.scores["oracle"][j]) for _, (m, j) in pairs],
        scorers.margin,
    )
    return acc, decided


TERMS = (
    ("lq consistency (RL term)", "consistency", 1.0),
    ("GT perceptual, trunks 1-5 (RL)", "perceptual", -1.0),
    ("agreement (RL term)", "agreement", 1.0),
    ("guard: lpips seed-0 trunk", "guard_lpips0", -1.0),
    ("PSNR to HQ (not an RL term)", "psnr", 1.0),
    ("learned reward (not fixed)", "learned", 1.0),
)


def correlation_lines(measured: dict[str, Measured], count: int, margin: float) -> list[str]:
    """Each fixed RL term (oriented: higher is better) against minus the oracle's badness, pooled over the models'
    test samples; 'pairs agree': share of within-face pairs (any two models / seeds) the term orders as the
    noise-free oracle does (pairs within the tie margin and term ties left out)."""
    names = list(measured)
    oracle = -torch.cat([measured[n].scores["oracle"] for n in names]).numpy()
    seeds = measured[names[0]].samples.shape[0]
    face_of = np.tile(np.arange(count), seeds * len(names))
    lines = [
        f"  {'term (higher = better)':<32} {'n':>5} {'pearson':>8} {'spearman':>9} {'pairs agree':>12} {'pairs':>6}"
    ]
    groups = [np.flatnonzero(face_of == i) for i in range(count)]
    for title, key, sign in TERMS:
        term = sign * torch.cat([measured[n].scores[key].float() for n in names]).numpy()
        agree, decided = 0, 0
        for members in groups:
            for a, b in itertools.combinations(members, 2):
                if abs(oracle[a] - oracle[b]) <= margin or term[a] == term[b]:
                    continue
                decided += 1
                agree += (term[a] > term[b]) == (oracle[a] > oracle[b])
        lines.append(
            f"  {title:<32} {len(term):>5} {stats.pearsonr(term, oracle)[0]:>8.3f}"
            f" {stats.spearmanr(term, oracle)[0]:>9.3f} {agree / max(decided, 1):>12.3f} {decided:>6}"
        )
    lines.append(
        "  (KL is a property of the policy against its reference, not of an image: no per-image score)"
    )
    return lines


SHARPENING = (-0.5, 0.0, 0.3, 0.6, 1.0, 1.5, 2.5)


def sharpening_lines(reference: Measured, faces: Faces, scorers: Scorers) -> list[str]:
    """The reward model along one axis RL can move on: unsharp masks of the supervised restorer's test samples
    (first seed). Where the learned reward keeps rising past the oracle's best strength, following its gradient
    over-sharpens: the direction the reward model is hacked in."""
    images = reference.samples[0]
    lines = [
        "the reward model along the sharpening axis (unsharp mask of strength s, sigma 1, on the supervised"
        f" restorer's test samples, first seed, {len(images)} faces): mean oracle badness, learned reward, the"
        " perceptual guard's lpips seed-0 distance, the fidelity guard's observation PSNR (dB; the LQ against the"
        " image degraded again), and the solution entropy change of the sharpened samples of every seed (an"
        " unsharp mask amplifies what differs between seeds along with the detail)",
        f"  {'s':>5} {'oracle':>8} {'learned':>8} {'lpips0':>8} {'obs PSNR':>9} {'dH':>7}",
    ]
    observation = fidelity_evaluator(fallback_downsample=4)
    with torch.no_grad():
        for strength in SHARPENING:
            edited = unsharp_mask(images, strength, sigma=1.0).clamp(-1, 1)
            every_seed = unsharp_mask(reference.samples.flatten(0, 1), strength, sigma=1.0).clamp(-1, 1)
            entropy = solution_entropy(every_seed.view(reference.samples.shape))
            lines.append(
                f"  {strength:>5.1f} {float(badness(scorers.oracle, edited, faces.hq).mean()):>8.4f}"
                f" {float(scorers.reward(faces.lq, quantize(edited)).mean()):>8.4f}"
                f" {float(badness(scorers.guard, edited, faces.hq).mean()):>8.5f}"
                f" {float(observation(faces.lq, edited, faces.hq, faces.params).mean()):>9.3f}"
                f" {float(entropy) / max(reference.entropy, 1e-12) - 1:>+7.1%}"
            )
    return lines


# ---------------------------------------------------------------------------------------------- RL rows


def curve_lines(result: RLResult) -> list[str]:
    lines = [
        f"  {'step':>5} {'learned r':>10} {'held-out':>9} {'h-o win':>8} {'H ratio':>8} {'rollout r':>10}"
        f" {'consist.':>9} {'agree.':>9} {'percept.':>9} {'KL':>8} {'strength':>8}"
    ]
    previous = 0
    for evaluation in result.evaluations:
        step = int(evaluation["step"])
        window = [h for h in result.history if previous < h["step"] <= step]
        previous = step

        def mean_of(name: str, rows: list = window) -> float:
            values = [row[name] for row in rows if name in row]
            return statistics.fmean(values) if values else float("nan")

        lines.append(
            f"  {step:>5} {evaluation['eval/learned_reward']:>10.4f} {evaluation.get('eval/held_out', float('nan')):>9.5f}"
            f" {evaluation.get('eval/held_out_win', float('nan')):>8.3f} {evaluation.get('eval/entropy_ratio', float('nan')):>8.3f}"
            f" {mean_of('reward/learned'):>10.4f} {mean_of('reward/consistency'):>9.5f} {mean_of('reward/agreement'):>9.2e}"
            f" {mean_of('reward/perceptual'):>9.5f} {mean_of('kl'):>8.4f} {mean_of('ranked/strength'):>8.3f}"
        )
    return lines


def run_row(
    name: str, config: RLConfig, restorer_dir: Path, reward_dir: Path, manifest: Path, work: Path
) -> tuple[Restorer, dict[str, Any]]:
    rl_out = work / "rows" / name / "rl_out"
    shutil.rmtree(rl_out, ignore_errors=True)
    log(f"RL row {name}: {config.max_steps} steps at most, {config.max_minutes} minutes")
    result = train_rl(
        config,
        policy_dir=restorer_dir,
        reward_dir=reward_dir,
        inputs_manifest=manifest,
        out_dir=rl_out,
        progress_bar=False,
    )
    log(f"RL row {name}: {result.message}")
    handed_back = (
        result.selected_step
        if result.selected_step is not None
        else (result.rolled_back_to_step if result.rolled_back_to_step is not None else result.steps)
    )
    rl_speed = statistics.median(h["samples_per_s"] for h in result.history) if result.history else 0.0
    summary = {
        "steps": result.steps,
        "rollouts": result.rollouts,
        "minutes": result.seconds / 60,
        "stop_reason": result.stop_reason,
        "message": result.message,
        "handed_back_step": handed_back,
        "trajectories_per_s": rl_speed,
        "curve": curve_lines(result),
    }
    return Restorer.from_pretrained(rl_out), summary


def relabelled_row(
    name: str,
    config: RLConfig,
    restorer_dir: Path,
    reward_dir: Path,
    manifest: Path,
    work: Path,
    *,
    faces: Faces,
    annotator: OracleAnnotator,
    args: argparse.Namespace,
) -> tuple[Restorer, dict[str, Any]]:
    """RL in rounds, as the loop runs it: RL for ``config.max_steps`` / rounds steps, then the policy's own samples
    of the reward model's training faces are judged by the annotators (against the supervised samples of the
    same face, and against each other) and the reward model is fitted on for ``--relabel-steps`` steps from its
    weights on the old and the new judgments; the next round's RL starts from the policy and uses that model.
    The judgments say what the reward model got wrong about the policy's samples: the hack it was climbing."""
    saved = torch.load(work / "reward_pools.pt", weights_only=True)
    base_pool = Pool(**saved["train"])
    base_rows = judge_pairs([(a, b) for a, b, _ in pool_pairs(base_pool)], base_pool, annotator, args, seed=0)
    images = dict(base_pool.images)
    rows = list(base_rows)
    chosen = list(range(min(args.relabel_inputs, len(faces.ids))))
    subset = Faces(
        ids=[faces.ids[i] for i in chosen],
        hq=faces.hq[chosen],
        lq=faces.lq[chosen],
        params=[faces.params[i] for i in chosen],
        instructions=[faces.instructions[i] for i in chosen],
    )
    rounds = args.relabel_rounds + 1
    steps_per_round = max(1, config.max_steps // rounds)
    policy_dir, current_reward = restorer_dir, reward_dir
    summaries = []
    relabel_log = []
    for round_index in range(rounds):
        round_config = dataclasses.replace(
            config, max_steps=steps_per_round, seed=config.seed + round_index, max_minutes=config.max_minutes
        )
        policy, summary = run_row(
            f"{name}_r{round_index}", round_config, policy_dir, current_reward, manifest, work
        )
        summaries.append(summary)
        policy_dir = work / "rows" / f"{name}_r{round_index}" / "rl_out"
        if round_index == rounds - 1:
            break
        started = time.perf_counter()
        spec = PoolSpec(args.policy_samples, (), 0, 0, 0)
        fresh = candidate_pool(
            policy, subset, spec, annotator.distance, args.rollout_steps, 30_000_000 + 1_000_000 * round_index
        )
        # keys of this round, apart from the base pool's (which are the supervised restorer's)
        renamed = {key: f"round{round_index}/{key}" for key in fresh.keys}
        new_pool = Pool(
            keys=[renamed[k] for k in fresh.keys],
            kind={renamed[k]: "policy" for k in fresh.keys},
            input_of={**base_pool.input_of, **{renamed[k]: fresh.input_of[k] for k in fresh.keys}},
            images={renamed.get(k, k): v for k, v in fresh.images.items()},
            badness={**base_pool.badness, **{renamed[k]: fresh.badness[k] for k in fresh.keys}},
            candidates_of=base_pool.candidates_of,
        )
        pairs = []
        for input_id in subset.ids:
            mine = [renamed[k] for k in fresh.candidates_of[input_id]]
            theirs = [k for k in base_pool.candidates_of[input_id] if base_pool.kind[k] == "policy"]
            pairs += [(a, b) for a in mine for b in theirs] + list(itertools.combinations(mine, 2))
        new_rows = judge_pairs(pairs, new_pool, annotator, args, seed=100 + round_index)
        images.update(new_pool.images)
        # the new judgments count --relabel-repeat times: a few thousand among ~30k would barely move the fit
        rows += new_rows * args.relabel_repeat
        base_badness = statistics.fmean(
            base_pool.badness[k]
            for i in subset.ids
            for k in base_pool.candidates_of[i]
            if base_pool.kind[k] == "policy"
        )
        policy_badness = statistics.fmean(fresh.badness.values())
        model = RewardModel.from_pretrained(current_reward)
        out = work / "rows" / f"{name}_reward_r{round_index + 1}"
        shutil.rmtree(out, ignore_errors=True)
        train_reward_model(
            dataclasses.replace(
                reward_fit_config(args, args.relabel_steps), reward=model.config, seed=round_index + 1
            ),
            judgments=rows,
            images=ImageBank(images, model.config.resolution),
            out_dir=out,
            progress=False,
            init_model=model,
        )
        current_reward = out
        relabel_log.append(
            f"round {round_index + 1}: {len(new_rows)} new judgments of the policy's samples of {len(subset.ids)}"
            f" faces (mean oracle badness {policy_badness:.4f} against the supervised samples' {base_badness:.4f});"
            f" reward model fitted on for {args.relabel_steps} steps on {len(rows)} judgments in"
            f" {time.perf_counter() - started:.0f} s"
        )
        log(relabel_log[-1])
    last = summaries[-1]
    summary = {
        **last,
        "steps": sum(s["steps"] for s in summaries),
        "rollouts": sum(s["rollouts"] for s in summaries),
        "minutes": sum(s["minutes"] for s in summaries),
        "handed_back_step": sum(s["steps"] for s in summaries[:-1]) + last["handed_back_step"],
        "curve": [line for s in summaries for line in s["curve"]],
        "relabel": relabel_log,
    }
    return Restorer.from_pretrained(policy_dir), summary


# ------------------------------------------------------------------------------------------------ report


def row_figures(
    policy: Measured, reference: Measured, count: int, scorers: Scorers, is_reference: bool
) -> dict:
    acc, pairs = policy_accuracy(policy, None if is_reference else reference, count, scorers)
    return {
        "win": win_rate(-policy.scores["oracle"], -reference.scores["oracle"]),
        "psnr": float(policy.scores["psnr"].mean()),
        "psnr_change": float(policy.scores["psnr"].mean() - reference.scores["psnr"].mean()),
        "entropy": policy.entropy,
        "entropy_change": policy.entropy / max(reference.entropy, 1e-12) - 1,
        "learned_change": float(policy.scores["learned"].mean() - reference.scores["learned"].mean()),
        "oracle": float(policy.scores["oracle"].mean()),
        "guard_change": float(policy.scores["guard_lpips0"].mean() - reference.scores["guard_lpips0"].mean()),
        "rm_accuracy": acc,
        "rm_pairs": pairs,
    }


def row_title(name: str, config: RLConfig | None) -> str:
    """The row's name and the reward terms its configuration has (a weight > 0), as run."""
    if name == "supervised":
        return "supervised restorer"
    title = ROWS[name].title if name in ROWS else name
    if config is None:
        return title
    weights = (
        ("learned", config.learned_reward_weight),
        ("consist", config.consistency_weight),
        ("agree", config.agreement_weight),
        ("GT percept", config.perceptual_weight),
        ("KL", config.kl_weight),
    )
    return f"{title} ({'+'.join(term for term, weight in weights if weight > 0)})"


def table_lines(
    label: str,
    figures: dict[str, dict],
    summaries: dict[str, dict | None],
    configs: dict[str, RLConfig] | None = None,
) -> list[str]:
    lines = [
        f"sampler: {label}",
        f"  {'row':<50} {'oracle win':>10} {'badness':>8} {'PSNR dB':>8} {'dPSNR':>7} {'dH':>7} {'d learned':>9}"
        f" {'RM acc (pairs)':>15} {'d lpips0':>9} {'rollouts':>8} {'min':>5}  handed back",
    ]
    for name, row in figures.items():
        summary = summaries.get(name)
        title = row_title(name, (configs or {}).get(name))
        rollouts = f"{summary['rollouts']}" if summary else "0"
        minutes = f"{summary['minutes']:.1f}" if summary else "-"
        handed = (
            f"step {summary['handed_back_step']} of {summary['steps']} ({summary['stop_reason']})"
            if summary
            else "-"
        )
        win = f"{row['win']:.3f}" if summary else "(0.500)"
        lines.append(
            f"  {title:<50} {win:>10} {row['oracle']:>8.4f} {row['psnr']:>8.2f} {row['psnr_change']:>+7.2f}"
            f" {row['entropy_change']:>+7.1%} {row['learned_change']:>+9.4f}"
            f" {row['rm_accuracy']:>8.3f} ({row['rm_pairs']:>4}) {row['guard_change']:>+9.5f} {rollouts:>8} {minutes:>5}  {handed}"
        )
    return lines


def verdict_lines(figures: dict[str, dict]) -> list[str]:
    lines = []
    for name in ("learned", "both", "fixed", "fixed_gt"):
        if name not in figures:
            continue
        row = figures[name]
        line = (
            f"  {name}: win {row['win']:.1%} (target >= 65%: {verdict(row['win'] >= 0.65)}), PSNR change"
            f" {row['psnr_change']:+.3f} dB (limit -0.5 dB: {verdict(row['psnr_change'] >= -0.5)}), solution entropy"
            f" {row['entropy_change']:+.1%} (target <= -30%: {verdict(row['entropy_change'] <= -0.30)})"
        )
        if name == "learned" and "fixed" in figures:
            margin = row["win"] - figures["fixed"]["win"]
            line += f"; beats fixed-terms-only by {100 * margin:+.1f} points (target >= +10: {verdict(margin >= 0.10)})"
        lines.append(line)
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs (minutes)")
    parser.add_argument("--ablation", action="store_true", help="run the ablation's rows (module docstring)")
    parser.add_argument(
        "--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="--ablation rows to run"
    )
    parser.add_argument(
        "--reuse-rows",
        action="store_true",
        help="reuse rows measured by an earlier call with the same settings",
    )
    parser.add_argument(
        "--oracle",
        default="identity_sharpness",
        choices=[name for name in DISTANCE_NAMES if name != "default"],
        help="the simulated annotators' and the report's oracle (reward_model.oracle.distance_by_name)",
    )
    parser.add_argument("--seed", type=int, default=0, help="RL seed (the inputs and the reward model stay)")
    parser.add_argument("--restorer", default=str(DEFAULT_RESTORER))
    parser.add_argument("--restorer-minutes", type=float, default=10.0)
    parser.add_argument("--work", default="/tmp/pref-artifacts/rl_bench")
    parser.add_argument("--rl-minutes", type=float, default=18.0, help="wall-clock budget of each RL run")
    parser.add_argument(
        "--rl-steps", type=int, help="RL steps at most (default: the preset's; --rl-minutes may end it first)"
    )
    parser.add_argument("--rollout-steps", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, help=f"default: the {PRESET} preset's")
    parser.add_argument("--kl-weight", type=float, help=f"default: the {PRESET} preset's (20)")
    parser.add_argument(
        "--learned-weight", type=float, help="learned reward weight; default the preset's (3)"
    )
    parser.add_argument(
        "--consistency-weight", type=float, help="default: the preset's (1000, raw MSE units)"
    )
    parser.add_argument("--agreement-weight", type=float, help="default: the preset's (3e6, raw MSE units)")
    parser.add_argument(
        "--perceptual-weight",
        type=float,
        help="weight of the GT perceptual term (LPIPS heads on random trunks of seeds 1..N against the HQ); default"
        f" 0 (the preset) in a single run, {ABLATION_PERCEPTUAL_WEIGHT:g} in the ablation rows that keep it",
    )
    parser.add_argument(
        "--perceptual-trunks", type=int, help="random LPIPS trunks of the perceptual term (5)"
    )
    parser.add_argument(
        "--pessimism", type=float, help="learned reward = ensemble mean - this x member std (1)"
    )
    parser.add_argument(
        "--eval-every", type=int, help="RL steps between guard evaluations (the preset's: 10)"
    )
    parser.add_argument(
        "--reward-augmentations",
        type=int,
        help="learned reward averaged over this many random shifts and flips (RLConfig."
        "learned_reward_augmentations; the preset's: 0)",
    )
    parser.add_argument(
        "--relabel-rounds",
        type=int,
        default=0,
        help="learned-reward rows: stop RL this many times to have the annotators judge the policy's own samples"
        " and fit the reward model on (the loop's rounds, in one run)",
    )
    parser.add_argument(
        "--relabel-inputs", type=int, default=96, help="faces whose policy samples are judged"
    )
    parser.add_argument("--relabel-steps", type=int, default=150, help="reward steps fitted on per round")
    parser.add_argument(
        "--relabel-repeat",
        type=int,
        default=1,
        help="each new judgment of the policy's samples counts this often",
    )
    parser.add_argument(
        "--policy-update",
        choices=["reward_backprop", "ddpo", "reward_ranked"],
        help="RLConfig.policy_update (ddpo: the policy gradient, which uses the rewards of the samples and never"
        " the reward model's gradient; reward_ranked: each group pulled towards its best sample or edit by the"
        " reward terms, which only rank)",
    )
    parser.add_argument(
        "--ranked-strengths",
        type=float,
        nargs="+",
        help="RLConfig.ranked_edit_strengths: the unsharp-mask strengths proposed by reward_ranked",
    )
    parser.add_argument("--ranked-fit-weight", type=float, help="RLConfig.ranked_fit_weight")
    parser.add_argument("--ranked-fit-steps", type=int, help="RLConfig.ranked_fit_steps")
    parser.add_argument("--agreement-target", choices=["mean", "best"], help="RLConfig.agreement_target")
    parser.add_argument(
        "--held-out-evaluator",
        choices=list(HELD_OUT_EVALUATORS),
        help="RLConfig.held_out_evaluator: what the guard and keep-best watch",
    )
    parser.add_argument("--ranked-candidates", choices=["samples", "mean"], help="RLConfig.ranked_candidates")
    parser.add_argument(
        "--centered-disagreement",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pessimism on the members' centred disagreement (RLConfig.learned_reward_centered_disagreement)",
    )
    parser.add_argument(
        "--hacking-patience",
        type=int,
        help="guard evaluations of rising learned reward and falling held-out score before the guard stops the"
        " run (the preset's: 3; a large value lets a run go on, to see where the learned reward leads)",
    )
    parser.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hand back the policy of the guard evaluation with the best held-out win (val inputs, never the test"
        " faces) among those within the preset's entropy ratio (default: the preset's choice)",
    )
    parser.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (rank 4) instead of the whole UNet"
    )
    parser.add_argument("--rl-inputs", type=int, help="RL training inputs (default 48)")
    parser.add_argument("--guard-inputs", type=int, help="val inputs of the guard's evaluations (default 48)")
    parser.add_argument("--test-inputs", type=int, help="held-out test faces of the report (default 96)")
    parser.add_argument("--eval-seeds", type=int, help="seeds per test face (default 4; >= 2)")
    parser.add_argument(
        "--samplers",
        choices=["deterministic", "both"],
        help="test samplers: the deterministic DDIM sampler (eta 0, 20 steps) only, or also the RL sampler;"
        " default deterministic with --ablation, both otherwise",
    )
    parser.add_argument("--judgments-per-pair", type=int, default=2)
    parser.add_argument("--reward-inputs", type=int, help="inputs judged for the reward model (default 192)")
    parser.add_argument("--reward-steps", type=int, help="reward model training steps (default 800)")
    parser.add_argument(
        "--policy-samples", type=int, default=3, help="RL-sampler samples per input in the pool"
    )
    parser.add_argument(
        "--fast-steps",
        type=int,
        nargs="*",
        default=[2],
        help="one eta-1 sample per input at each step count",
    )
    parser.add_argument("--edited", type=int, default=3, help="edited samples per input in the pool")
    parser.add_argument("--classical", type=int, default=1, help="classical restorations per input (0-3)")
    parser.add_argument(
        "--sharpened",
        type=int,
        default=5,
        help="rungs of the sharpening ladder per input in the pool (unsharp masks of one sample, strength"
        f" stratified over {LADDER_STRENGTHS}, radius one of {LADDER_SIGMAS}); 0: none",
    )
    parser.add_argument(
        "--reuse-reward", action="store_true", help="reuse the reward model of an earlier run"
    )
    parser.add_argument(
        "--reward-only", action="store_true", help="fit (or reuse) the reward model, print its figures, stop"
    )
    parser.add_argument(
        "--annotator-temperature",
        type=float,
        help="the annotators' Bradley-Terry noise; default: the oracle's",
    )
    parser.add_argument(
        "--tie-margin", type=float, help="annotators answer tie within this; default: the oracle's"
    )
    parser.add_argument("--reward-resolution", type=int, default=64)
    parser.add_argument("--finish-by", default=None, help="UTC HH:MM: shorten the RL budgets to end by then")
    parser.add_argument("--give-up-after", default=None, help="UTC HH:MM: do nothing when started later")
    parser.add_argument("--results-name", default=None, help="report file name under benchmarks/results")
    parser.add_argument(
        "--eval-minutes", type=float, default=2.5, help="time kept per row for its evaluation"
    )
    return parser.parse_args(argv)


def utc_minutes() -> float:
    now = time.gmtime()
    return now.tm_hour * 60 + now.tm_min + now.tm_sec / 60


def hh_mm(value: str) -> int:
    hours, minutes = (int(part) for part in value.split(":"))
    return hours * 60 + minutes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.give_up_after and utc_minutes() > hh_mm(args.give_up_after):
        log(f"started after {args.give_up_after} UTC: too late for a meaningful RL budget; not running")
        return
    sizes = QUICK if args.quick else FULL
    size_options = {
        "rl_max_steps": args.rl_steps,
        "test_inputs": args.test_inputs,
        "eval_seeds": args.eval_seeds,
        "rl_inputs": args.rl_inputs,
        "guard_inputs": args.guard_inputs,
        "reward_steps": args.reward_steps,
        "reward_inputs": args.reward_inputs,
    }
    sizes = dataclasses.replace(sizes, **{name: value for name, value in size_options.items() if value})
    sizes = dataclasses.replace(sizes, reward_inputs=max(sizes.reward_inputs, sizes.rl_inputs))
    if args.quick:
        args.rl_minutes = min(args.rl_minutes, 2.0)
    spec = PoolSpec(args.policy_samples, tuple(args.fast_steps), args.edited, args.classical, args.sharpened)
    torch.manual_seed(0)
    work = Path(args.work) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    total_started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    restorer_dir, restorer_note = supervised_restorer(args, work)
    supervised = Restorer.from_pretrained(restorer_dir)
    log(f"restorer: {restorer_note}")

    rl_faces = make_faces("train", sizes.rl_inputs, offset=RL_SEED_OFFSET)
    reward_faces = make_faces("train", sizes.reward_inputs, offset=RL_SEED_OFFSET)  # RL inputs are among them
    reward_check = make_faces("val", sizes.reward_check_inputs, offset=100)
    guard_faces = make_faces("val", sizes.guard_inputs)
    test_faces = make_faces("test", sizes.test_inputs)

    annotator = OracleAnnotator(
        "reliable",
        temperature=args.annotator_temperature,
        tie_margin=args.tie_margin,
        seed=0,
        distance=distance_by_name(args.oracle),
    )
    guard_distance = PerceptualDistance()  # what rl_trainer.train hands default_held_out
    guard_name = f"oracle_neg_{guard_distance.name}"
    held_out_override = {"held_out_evaluator": args.held_out_evaluator} if args.held_out_evaluator else {}
    guard_evaluator = RLConfig.preset(PRESET, **held_out_override).held_out_evaluator
    linear_guard = guard_evaluator == "fidelity_linear"
    if guard_distance.name == args.oracle:
        log(
            f"WARNING: the guard's held-out evaluator ({guard_name}) is the oracle: the benchmark is not honest"
        )

    reward_key = {
        "oracle": args.oracle,
        "annotator": annotator.describe(),
        "reward_resolution": args.reward_resolution,
        "restorer": str(restorer_dir),
        "pool": dataclasses.asdict(spec),
        "sizes": {
            key: value
            for key, value in dataclasses.asdict(sizes).items()
            if key in ("reward_inputs", "reward_steps", "reward_check_inputs")
        },
        "rollout_steps": args.rollout_steps,
        "judgments_per_pair": args.judgments_per_pair,
        "reward_encoder": "residual input, group norm",
        "reward_fit": "no early stop (min_steps = reward_steps), best validation step kept",
    }
    cached = work / "reward_info.json"
    if (
        args.reuse_reward
        and cached.is_file()
        and json.loads(cached.read_text()).get("key") == json.loads(json.dumps(reward_key))
    ):
        reward_dir, reward_info = work / "reward", json.loads(cached.read_text())["info"]
        log("reward model: reusing the one fitted by an earlier run with the same settings")
    else:
        log("reward model: sampling candidates, simulated judgments, fitting")
        pool_key = {
            key: value
            for key, value in reward_key.items()
            if key not in ("reward_encoder", "reward_fit", "judgments_per_pair")
        }
        pool_key["sizes"] = {k: v for k, v in reward_key["sizes"].items() if k != "reward_steps"}
        reward_dir, reward_info = build_reward_model(
            supervised, reward_faces, reward_check, annotator, spec, args, sizes, work, pool_key
        )
        cached.write_text(json.dumps({"key": reward_key, "info": reward_info}))
    log(f"reward model: {json.dumps(reward_info['by_family'])}")
    if args.reward_only:
        print("\n".join(reward_lines(reward_info)))
        return

    manifest = write_inputs(rl_faces, guard_faces, work / "inputs")
    scorers = Scorers(
        oracle=annotator.distance,
        guard=guard_distance,
        perceptual=perceptual_reward_distance(
            args.perceptual_trunks or RLConfig.preset(PRESET).perceptual_trunks
        ),
        reward=RewardModel.from_pretrained(reward_dir).eval(),
        margin=annotator.tie_margin,
    )
    seeds = max(2, sizes.eval_seeds if args.eval_seeds or not args.ablation else 2)
    samplers = [("deterministic (eta 0, 20 steps)", 20, 0.0)]
    if (args.samplers or ("deterministic" if args.ablation else "both")) == "both":
        samplers.append((f"RL sampler (eta 1, {args.rollout_steps} steps)", args.rollout_steps, 1.0))
    test_key = {"reward": reward_key, "test_inputs": sizes.test_inputs, "seeds": seeds, "samplers": samplers}

    rows_dir = work / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    reference_cache = rows_dir / "supervised.pt"
    test_key = json.loads(json.dumps(test_key))
    saved_reference = load_cache(reference_cache) if reference_cache.is_file() else None
    if args.reuse_rows and saved_reference is not None and saved_reference["key"] == test_key:
        log("supervised restorer: reusing its test measurement of an earlier call")
        reference = saved_reference["measured"]
    else:
        log("measuring the supervised restorer on the test faces")
        reference = {
            sampler[0]: measure(supervised, test_faces, sampler, seeds, scorers) for sampler in samplers
        }
        torch.save({"key": test_key, "measured": reference}, reference_cache)

    names = args.rows if args.ablation else ["custom"]
    measured: dict[str, dict[str, Measured]] = {"supervised": reference}
    summaries: dict[str, dict | None] = {"supervised": None}
    configs: dict[str, RLConfig] = {}
    for position, name in enumerate(names):
        config = rl_config(args, sizes, ROWS.get(name) if args.ablation else None)
        # the measurement's key: the row's config before any --finish-by cut, the test set, the sizes
        key = json.loads(
            json.dumps(
                {
                    "config": config.to_dict(),
                    "test": test_key,
                    "rl_inputs": sizes.rl_inputs,
                    "guard": sizes.guard_inputs,
                    **(
                        {
                            "relabel": [
                                args.relabel_rounds,
                                args.relabel_inputs,
                                args.relabel_steps,
                                args.relabel_repeat,
                            ]
                        }
                        if args.relabel_rounds
                        else {}
                    ),
                }
            )
        )
        tag = name if args.seed == 0 else f"{name}_seed{args.seed}"
        cache = rows_dir / f"{tag}.pt"
        if args.reuse_rows and cache.is_file():
            saved = load_cache(cache)
            if saved["key"] == key:
                log(f"RL row {name}: reusing the measurement of an earlier call")
                measured[name], summaries[name] = saved["measured"], saved["summary"]
                configs[name] = RLConfig.from_dict(saved.get("config", saved["key"]["config"]))
                continue
        if args.finish_by:
            left = hh_mm(args.finish_by) - utc_minutes()
            remaining = len(names) - position
            budget = max(3.0, min(config.max_minutes or 1e9, left / remaining - args.eval_minutes))
            if budget < (config.max_minutes or 1e9):
                log(f"RL row {name}: budget cut from {config.max_minutes} to {budget:.1f} min (--finish-by)")
                config = dataclasses.replace(config, max_minutes=round(budget, 2))
        configs[name] = config
        if args.relabel_rounds and ROWS.get(name, ROWS["learned"]).learned:
            tuned, summary = relabelled_row(
                tag,
                config,
                restorer_dir,
                reward_dir,
                manifest,
                work,
                faces=reward_faces,
                annotator=annotator,
                args=args,
            )
        else:
            tuned, summary = run_row(tag, config, restorer_dir, reward_dir, manifest, work)
        measured[name] = {
            sampler[0]: measure(tuned, test_faces, sampler, seeds, scorers) for sampler in samplers
        }
        summaries[name] = summary
        torch.save(
            {"key": key, "config": config.to_dict(), "measured": measured[name], "summary": summary}, cache
        )

    lines = [
        "rl_gain"
        + (" --ablation" if args.ablation else "")
        + f": on-policy RL of the tiny restorer ({RLConfig.preset(PRESET).policy_update} unless --policy-update"
        " says otherwise, KL to the reference) against a reward model learned from simulated judgments",
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores (shared), torch {torch.__version__},"
        f" {torch.get_num_threads()} threads; started {started_at}; run"
        f" {'--quick (sizes too small to mean anything)' if args.quick else 'full'}",
        "command: "
        + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]] if argv is None else ["rl_gain.py", *argv]),
        f"supervised restorer: {restorer_note}",
        f"oracle (annotators' utility and the report's score; RL never calls it): {oracle_definition(annotator)}",
        (
            "guard's held-out evaluator (early stop, --keep-best; RLConfig.held_out_evaluator, "
            "rl_trainer.guard.default_held_out): "
            + (
                f"{guard_name} = minus the seed-0 random-trunk LPIPS distance to the HQ"
                if guard_evaluator == "perceptual"
                else f"{fidelity_evaluator(4, linear=linear_guard).name} = the PSNR between the LQ and the"
                f" restoration degraded again{' by the blur and resizes only' if linear_guard else ''} (never the HQ)"
            )
            + "; "
            + (
                "NOT the oracle"
                if guard_distance.name != args.oracle
                else "THE ORACLE ITSELF: not an honest run"
            )
        ),
        *reward_lines(reward_info),
        f"RL preset {PRESET}: "
        + json.dumps(
            {k: v for k, v in RLConfig.preset(PRESET).to_dict().items() if k != "version"}, sort_keys=True
        ),
    ]
    preset_values = RLConfig.preset(PRESET).to_dict()
    for name, config in configs.items():
        changed = {k: v for k, v in config.to_dict().items() if preset_values.get(k) != v}
        lines.append(f"  row {name}: preset with {json.dumps(changed, sort_keys=True)}")
    lines.append(
        f"RL inputs {sizes.rl_inputs} (synthetic train), guard {sizes.guard_inputs} val faces; test: {sizes.test_inputs}"
        f" faces x {seeds} seeds (synthetic test split, gfpgan preset), same seeds for every model"
    )
    lines.append(
        "columns: oracle win = share of test images with lower oracle badness than the supervised restorer's of the"
        " same face and seed (ties half); badness = mean oracle badness; dH = solution entropy change; d learned ="
        " learned reward change; RM acc = the reward model's accuracy vs the noise-free oracle on the policy's own"
        " samples (pairs supervised/policy of one face and seed and policy/policy across seeds, those beyond the"
        " tie margin); d lpips0 = change of the guard's distance"
    )
    lines.append("")
    figures_by_sampler = {}
    for label, _, _ in samplers:
        figures = {
            name: row_figures(
                measured[name][label], reference[label], sizes.test_inputs, scorers, name == "supervised"
            )
            for name in measured
        }
        figures_by_sampler[label] = figures
        lines += table_lines(label, figures, summaries, configs)
        lines += verdict_lines(figures)
        lines.append("")
    lines += sharpening_lines(reference[samplers[0][0]], test_faces, scorers)
    lines.append("")
    lines.append(
        "fixed RL terms vs the oracle on the policies' own test samples (every model above, deterministic sampler;"
        " 'pairs agree': within-face pairs the term orders as the noise-free oracle, pairs within the tie margin left"
        " out):"
    )
    first = samplers[0][0]
    lines += correlation_lines(
        {name: measured[name][first] for name in measured}, sizes.test_inputs, scorers.margin
    )
    lines.append("")
    for name, row_summary in summaries.items():
        if row_summary is None:
            continue
        watched = (
            "minus lpips seed-0"
            if name in configs and configs[name].held_out_evaluator == "perceptual"
            else "observation PSNR"
        )
        lines.append(
            f"training curve of row {name} (guard evaluations on val: held-out = {watched}, h-o win = its win"
            f" rate vs the supervised restorer, H ratio = entropy / the supervised's); {row_summary['message']};"
            f" {row_summary['trajectories_per_s']:.2f} trajectories/s"
        )
        lines += row_summary["curve"]
        lines += [f"  relabelled: {line}" for line in row_summary.get("relabel", [])]
    lines.append(f"total wall time {(time.perf_counter() - total_started) / 60:.1f} min")
    report = "\n".join(lines) + "\n"
    print(report)
    default_name = "rl_gain_ablation" if args.ablation else "rl_gain"
    name = args.results_name or (default_name + ("_quick" if args.quick else ""))
    results = REPO_ROOT / "benchmarks" / "results" / f"{name}.txt"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(report)


if __name__ == "__main__":
    main()
