"""Reward learning from simulated judgments: accuracy vs. number of judgments, random vs. uncertainty-chosen pairs.

Data: synthetic 64x64 faces (DCGAN of gan-face-generate, trained on DigiFace1M: research use only), each
degraded with the "gfpgan" preset into an LQ input. Every input gets K candidates of graded quality: a mix
``alpha * HQ + (1 - alpha) * classical_restore(LQ, sharpen)`` plus Gaussian noise, with alpha, sharpen and
the noise drawn per candidate. This stands in for restorations of different quality (no trained diffusion
restorer is needed).

Annotators: the oracle of ``reward_model.oracle`` ("reliable" kind: Bradley-Terry noise at a known
temperature, ties within a margin, "both bad" past a threshold; five annotator ids) under the project's
perceptual distance (``restorer.metrics.PerceptualDistance``; offline that is ``lpips_randtrunk``, not LPIPS).

Reported on held-out inputs (never judged): pairwise accuracy of the reward model against the oracle's
noise-free preference (the candidate truly closer to the HQ), for 250 / 1,000 / 2,000 / 4,000 judgments,
with random pairs and with pairs chosen by ensemble disagreement, and the noise ceiling: the expected
accuracy of one noisy annotator's answer on the same pairs (tie / both-bad answers count half). Training
time is wall-clock on this machine.

Random pairs: drawn with replacement (a repeat is a new label), one model per budget trained from scratch on
a nested prefix. Uncertainty pairs (``--selection``, a preset of ``reward_model.selection.SELECTION_PRESETS``,
each option overridable): a random cold start of ``cold_start`` of the first budget, then rounds that double
the labelled set; each round scores every pool pair with the previous round's ensemble and takes the highest
``acquisition`` score (a pair's score divided by 1 + its labels so far), at most ``spread`` times the even
share per input, plus a ``random_fraction`` share, and the model is warm-started from the previous round.
``--random-fraction 1`` runs that same loop with random pairs (``loop_random``): the same rounds, warm
starts and training steps, so that the comparison with it isolates the choice of pairs. The progress lines
give cumulative training steps.

Pools (``--pool``): ``graded`` (above), ``versions`` (a restorer's own close samples beside older versions'
clearly worse ones, see :func:`versions_candidates`) or ``redundant`` (most inputs ordered by one easy lesson,
a minority by their noise, see :func:`redundant_candidates`). Every pair is binned by its difficulty for the oracle,
P(one answer is the noise-free preference) = sigmoid(|d_a - d_b| / temperature): easy >= 0.99, medium
0.9-0.99, hard < 0.9 (plus tie and both-bad); the pool's shares are printed before training, held-out accuracy
per bin after, and the uncertainty run's informative picks per bin. ``--save-json`` keeps a run's accuracies;
``--summary A.json B.json ...`` prints their medians per arm and target 3 (uncertainty pairs >= 3 points over
random pairs at 250 and 500 judgments) against each baseline present.

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/reward_learning.py [options]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from restorer.classical import classical_restore
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import apply_degradation, sample_degradation
from restorer.metrics import PerceptualDistance
from reward_model.data import ImageBank
from reward_model.model import RewardConfig, RewardModel
from reward_model.oracle import DISTANCE_NAMES, OracleAnnotator, distance_by_name
from reward_model.selection import (
    ACQUISITIONS,
    SELECTION_PRESETS,
    CandidatePair,
    SelectionConfig,
    all_pairs,
    select_pairs_from_rewards,
    selection_preset,
)
from reward_model.simulated import simulated_judgments
from reward_model.train import TrainConfig, member_rewards_for, train

RESOLUTION = 64


@dataclass
class Dataset:
    images: dict[str, torch.Tensor]  # storage key -> image (LQ and candidates) at RESOLUTION
    distance: dict[str, float]  # candidate key -> perceptual distance to its HQ
    candidates: dict[str, list[str]]  # input id -> candidate keys
    lq_key: dict[str, str]  # input id -> LQ key


SHARPEN_LEVELS = (0.0, 0.5, 1.0, 1.5)
POOLS = ("graded", "versions", "redundant")
# share of a redundant pool's inputs whose candidates differ only in their noise
FINE_SHARE = 0.3
FINE_NOISE = 0.08  # the fine inputs' noisiest candidate's σ


def graded_candidates(hq, bases, shape, generator):
    """Today's pool: every candidate's alpha ~ U[0, 1], sharpening level and noise (σ ~ U[0, 0.08]) drawn alone."""
    n_inputs = shape[0]
    alpha = torch.rand(shape, generator=generator)[..., None, None, None]
    level = torch.randint(len(SHARPEN_LEVELS), shape, generator=generator)
    noise = 0.08 * torch.rand(shape, generator=generator)[..., None, None, None]
    base = bases[torch.arange(n_inputs)[:, None], level]
    candidates = alpha * hq[:, None] + (1 - alpha) * base
    return (candidates + noise * torch.randn(candidates.shape, generator=generator)).clamp(-1, 1)


def versions_candidates(hq, bases, shape, generator):
    """A restorer's own samples beside older versions' samples, as a loop that keeps its history would pool them.

    The first half of each input's candidates are samples of the current restorer: one look per input (one
    sharpening level), alpha 0.75 ± 0.08 and noise σ ≤ 0.015, so they are close to each other (the hard pairs
    the RL needs ranked). The rest are one sample each of older versions v = 1, 2, ...: alpha 0.45 (v - 1) / n
    ± 0.05 (n older versions), any sharpening level, noise σ 0.04-0.08: clearly worse than the current samples
    and graded among themselves.
    """
    n_inputs, k = shape
    n_current = (k + 1) // 2
    n_old = k - n_current
    rows = torch.arange(n_inputs)[:, None]
    current_level = torch.randint(len(SHARPEN_LEVELS), (n_inputs, 1), generator=generator).expand(
        -1, n_current
    )
    current_alpha = 0.75 + 0.08 * (2 * torch.rand((n_inputs, n_current), generator=generator) - 1)
    current_noise = 0.015 * torch.rand((n_inputs, n_current), generator=generator)
    old_level = torch.randint(len(SHARPEN_LEVELS), (n_inputs, n_old), generator=generator)
    version = torch.arange(n_old, dtype=torch.float32)[None]
    old_alpha = 0.45 * version / max(n_old, 1) + 0.05 * (
        2 * torch.rand((n_inputs, n_old), generator=generator) - 1
    )
    old_noise = 0.04 + 0.04 * torch.rand((n_inputs, n_old), generator=generator)
    level = torch.cat([current_level, old_level], dim=1)
    alpha = torch.cat([current_alpha, old_alpha.clamp(0, 1)], dim=1)[..., None, None, None]
    noise = torch.cat([current_noise, old_noise], dim=1)[..., None, None, None]
    candidates = alpha * hq[:, None] + (1 - alpha) * bases[rows, level]
    return (candidates + noise * torch.randn(candidates.shape, generator=generator)).clamp(-1, 1)


def redundant_candidates(hq, bases, shape, generator, *, fine_share=FINE_SHARE, fine_noise=FINE_NOISE):
    """Most inputs teach one lesson many times; a minority teach another, as a loop's pool is made.

    A share ``1 - fine_share`` of the inputs are "coarse": their candidates are one sharpening level at alphas
    spread evenly over [0, 0.6] (jitter ± 0.03), noise-free, so every pair is ordered by how much of the face
    came back, a lesson a few labels teach. The rest are "fine": every candidate at alpha 0.9 with noise σ
    spread evenly over [0, fine_noise] (jitter ± fine_noise / 20), ordered by their noise, which a model that
    learnt "more detail is better" from the coarse inputs ranks backwards. Random pairs spend most labels
    re-teaching the coarse lesson; pairs a model is unsure of go where the fine one is still unlearnt.
    """
    n_inputs, k = shape
    rows = torch.arange(n_inputs)[:, None]
    fine = (torch.rand((n_inputs, 1), generator=generator) < fine_share).expand(-1, k)
    order = torch.argsort(torch.rand(shape, generator=generator), dim=1)
    spread = torch.linspace(0, 1, k)[order]
    jitter = 2 * torch.rand(shape, generator=generator) - 1
    level = torch.randint(len(SHARPEN_LEVELS), (n_inputs, 1), generator=generator).expand(-1, k)
    alpha = torch.where(fine, torch.full(shape, 0.9), 0.6 * spread + 0.03 * jitter).clamp(0, 1)
    noise_sigma = torch.where(fine, fine_noise * (spread + jitter / 20), torch.zeros(shape)).clamp(min=0)
    candidates = (
        alpha[..., None, None, None] * hq[:, None] + (1 - alpha[..., None, None, None]) * bases[rows, level]
    )
    noise = noise_sigma[..., None, None, None] * torch.randn(candidates.shape, generator=generator)
    return (candidates + noise).clamp(-1, 1)


POOL_MAKERS = {
    "graded": graded_candidates,
    "versions": versions_candidates,
    "redundant": redundant_candidates,
}


def pool_options(args) -> dict[str, float]:
    if args.pool != "redundant":
        return {}
    return {"fine_share": args.fine_share, "fine_noise": args.fine_noise}


def build_dataset(
    split: str,
    n_inputs: int,
    candidates_per_input: int,
    *,
    seed: int,
    distance,
    pool: str = "graded",
    pool_options: Mapping[str, float] | None = None,
) -> Dataset:
    seeds = split_seeds(split, n_inputs)
    hq = synthetic_faces(seeds, RESOLUTION)
    generator = torch.Generator().manual_seed(seed)
    lq = torch.stack(
        [
            apply_degradation(
                face, sample_degradation("gfpgan", seed=seed * 1_000_003 + i, resolution=RESOLUTION)
            )
            for i, face in enumerate(hq)
        ]
    )
    bases = torch.stack([classical_restore(lq, sharpen=level) for level in SHARPEN_LEVELS], dim=1)
    shape = (n_inputs, candidates_per_input)
    candidates = POOL_MAKERS[pool](hq, bases, shape, generator, **(pool_options or {}))
    flat_hq = hq[:, None].expand_as(candidates).reshape(-1, 3, RESOLUTION, RESOLUTION)
    flat_candidates = candidates.reshape(-1, 3, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        distances = torch.cat(
            [
                distance(flat_candidates[i : i + 256], flat_hq[i : i + 256])
                for i in range(0, len(flat_hq), 256)
            ]
        ).view(shape)

    data = Dataset({}, {}, {}, {})
    for i, face_seed in enumerate(seeds):
        input_id = f"{split}{face_seed}"
        data.lq_key[input_id] = f"inputs/{input_id}/lq.png"
        data.images[data.lq_key[input_id]] = lq[i]
        keys = [f"samples/bench/{input_id}/{k}.png" for k in range(candidates_per_input)]
        data.images.update(zip(keys, candidates[i]))
        data.distance.update(zip(keys, distances[i].tolist()))
        data.candidates[input_id] = keys
    return data


# five annotators of the same kind and noise
ANNOTATORS = [f"annotator{index}" for index in range(5)]


def judge(
    pairs: list[CandidatePair], data: Dataset, oracle: OracleAnnotator, rng: np.random.Generator, start: int
):
    """The oracle's judgments of ``pairs``; ``start``: how many judgments came before (the annotator rota)."""
    return simulated_judgments(
        pairs,
        oracle,
        distances=data.distance,
        lq_keys=data.lq_key,
        annotators=ANNOTATORS,
        rng=rng,
        first_annotator=start,
        model="bench",
    )


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def test_pairs(data: Dataset) -> list[CandidatePair]:
    return [p for p in all_pairs(data.candidates) if data.distance[p.a_key] != data.distance[p.b_key]]


# Difficulty of a pair: the probability that one answer of the oracle is the noise-free preference,
# sigmoid(|d_a - d_b| / temperature). "easy" pairs teach little once the model ranks them (an answer is almost
# surely right and the model is soon sure too); "hard" ones are where a reward model's errors sit.
DIFFICULTY_BINS = (("easy", 0.99, 1.01), ("medium", 0.9, 0.99), ("hard", 0.0, 0.9))


def difficulty(pair: CandidatePair, data: Dataset, oracle: OracleAnnotator) -> str:
    d_a, d_b = data.distance[pair.a_key], data.distance[pair.b_key]
    if min(d_a, d_b) > oracle.both_bad_threshold:
        return "both_bad"
    if abs(d_a - d_b) <= oracle.tie_margin:
        return "tie"
    p = 1.0 / (1.0 + math.exp(-abs(d_a - d_b) / oracle.temperature))
    return next(name for name, low, high in DIFFICULTY_BINS if low <= p < high)


def difficulty_shares(pairs: list[CandidatePair], data: Dataset, oracle: OracleAnnotator) -> dict[str, float]:
    counts = Counter(difficulty(pair, data, oracle) for pair in pairs)
    names = [name for name, _, _ in DIFFICULTY_BINS] + ["tie", "both_bad"]
    return {name: counts[name] / max(len(pairs), 1) for name in names}


def model_accuracy(
    model: RewardModel, data: Dataset, bank: ImageBank, oracle: OracleAnnotator
) -> dict[str, float]:
    """Accuracy against the noise-free preference on all held-out pairs ("all") and per difficulty bin."""
    pairs = test_pairs(data)
    lq = bank.lookup([data.lq_key[p.input_id] for p in pairs])
    reward_a = member_rewards_for(model, bank, lq, bank.lookup([p.a_key for p in pairs])).mean(1)
    reward_b = member_rewards_for(model, bank, lq, bank.lookup([p.b_key for p in pairs])).mean(1)
    truly_a = torch.tensor([data.distance[p.a_key] < data.distance[p.b_key] for p in pairs])
    correct = (reward_a > reward_b) == truly_a
    bins = [difficulty(pair, data, oracle) for pair in pairs]
    accuracy = {"all": float(correct.float().mean())}
    for name in sorted(set(bins)):
        mask = torch.tensor([b == name for b in bins])
        accuracy[name] = float(correct[mask].float().mean())
    return accuracy


def noise_ceiling(data: Dataset, oracle: OracleAnnotator) -> float:
    """Expected accuracy of one answer of ``oracle`` on the test pairs (tie / both-bad answers count half)."""
    scores = []
    for pair in test_pairs(data):
        d_a, d_b = data.distance[pair.a_key], data.distance[pair.b_key]
        if min(d_a, d_b) > oracle.both_bad_threshold or abs(d_a - d_b) <= oracle.tie_margin:
            scores.append(0.5)
        else:
            scores.append(1.0 / (1.0 + math.exp(-abs(d_a - d_b) / oracle.temperature)))
    return statistics.fmean(scores)


def describe_accuracy(accuracy: dict[str, float]) -> str:
    parts = [f"{name} {accuracy[name]:.3f}" for name, _, _ in DIFFICULTY_BINS if name in accuracy]
    return f"accuracy {accuracy['all']:.3f} ({', '.join(parts)})"


def train_config(n_judgments: int, args, *, warm_start: bool = False) -> TrainConfig:
    # --epochs passes over the judgments (--warm-epochs when warm-started from the previous round of active
    # learning), within [--min-steps, --max-steps], at a --lr-schedule learning rate. Validation accuracy
    # picks the best checkpoint; early stopping (--patience evaluations without improvement) only from
    # --stop-after of the steps on: validation accuracy on noisy labels is flat for long stretches while the
    # net is still learning, so an early stop before that cut the first runs short.
    epochs, floor = (args.warm_epochs, args.warm_min_steps) if warm_start else (args.epochs, args.min_steps)
    steps = min(args.max_steps, max(floor, math.ceil(epochs * n_judgments / args.batch_size)))
    return TrainConfig(
        reward=RewardConfig(
            resolution=args.resolution,
            channels=tuple(args.channels),
            ensemble_size=args.ensemble,
            stem_stride=args.stem_stride,
            residual_input=args.residual_input,
            group_norm=args.group_norm,
        ),
        seed=args.seed,
        max_steps=steps,
        batch_size=args.batch_size,
        group_by_input=args.group_by_input,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        warmup_steps=min(50, steps // 10),
        eval_every=args.eval_every,
        patience=args.patience,
        min_steps=int(args.stop_after * steps),
        val_fraction=0.15,
    )


def run_random(budgets, pool, test, bank, oracle, args):
    rng = np.random.default_rng(args.seed)
    pairs = all_pairs(pool.candidates)
    order = [pairs[i] for i in rng.integers(len(pairs), size=max(budgets))]  # with replacement: new labels
    rows = judge(order, pool, oracle, rng, 0)
    results = {}
    for budget in budgets:
        started = time.perf_counter()
        result = train(train_config(budget, args), judgments=rows[:budget], images=bank, progress=False)
        results[budget] = (
            model_accuracy(result.model, test, bank, oracle),
            time.perf_counter() - started,
            result.metrics["steps"],
        )
        print(
            f"  random      {budget:5d} judgments: {describe_accuracy(results[budget][0])}  "
            f"({results[budget][1]:.0f} s, {results[budget][2]} steps)",
            flush=True,
        )
    return results


def run_active(budgets, pool, test, bank, oracle, args, selection: SelectionConfig):
    """The active-learning loop; with ``selection.random_fraction == 1`` every round draws at random (the
    control with the same rounds, warm starts and training steps: only the choice of pairs differs)."""
    label = arm_name(selection)
    rng = np.random.default_rng(args.seed + 1)
    pairs = all_pairs(pool.candidates)
    first = max(1, round(budgets[0] * selection.cold_start))
    rows = judge([pairs[i] for i in rng.integers(len(pairs), size=first)], pool, oracle, rng, 0)
    reasons: Counter[str] = Counter({"cold_start": first})
    # What the chosen pairs were, by the oracle's difficulty (known to the benchmark, never to the selection).
    chosen_difficulty: Counter[str] = Counter()
    # Rounds: a model on the random cold-start labels, then the labelled set doubles each round (and stops at
    # every reported budget), each round choosing its new pairs with the previous round's model.
    schedule = sorted(set(budgets) | {first * 2**i for i in range(20) if first * 2**i < max(budgets)})
    schedule = [target for target in schedule if target >= first]
    results, model, total_time, cumulative_steps, result_rows = {}, None, 0.0, 0, 0
    for target in schedule:
        started = time.perf_counter()
        if model is not None and target > len(rows):
            keys = [key for keys in pool.candidates.values() for key in keys]
            lq_keys = [pool.lq_key[key.split("/")[2]] for key in keys]
            member = member_rewards_for(model, bank, bank.lookup(lq_keys), bank.lookup(keys))
            counts = Counter((row.a_key, row.b_key) for row in rows)
            new_pairs = target - len(rows)
            chosen = select_pairs_from_rewards(
                pairs,
                dict(zip(keys, member)),
                budget=new_pairs,
                random_fraction=selection.random_fraction,
                seed=args.seed + target,
                label_counts=counts,
                max_per_input=selection.max_per_input(new_pairs, len(pool.candidates)),
                acquisition=selection.acquisition,
            )
            reasons.update(pair.reason for pair in chosen)
            new = [CandidatePair(p.input_id, p.a_key, p.b_key) for p in chosen]
            chosen_difficulty.update(
                difficulty(pair, pool, oracle) for pair, p in zip(new, chosen) if p.reason != "random"
            )
            rows += judge(new, pool, oracle, rng, len(rows))
        if model is None or len(rows) > result_rows:
            config = train_config(len(rows), args, warm_start=model is not None and args.warm_start)
            result = train(
                config,
                judgments=rows,
                images=bank,
                progress=False,
                init_model=model if args.warm_start else None,
            )
            model, result_rows = result.model, len(rows)
            cumulative_steps += result.metrics["steps"]
        total_time += time.perf_counter() - started
        if target in budgets:
            results[target] = (model_accuracy(model, test, bank, oracle), total_time, cumulative_steps)
            print(
                f"  {label:11s} {target:5d} judgments: {describe_accuracy(results[target][0])}  "
                f"({total_time:.0f} s, {cumulative_steps} steps cumulative)",
                flush=True,
            )
    return results, reasons, chosen_difficulty


def arm_name(selection: SelectionConfig) -> str:
    return "loop_random" if selection.random_fraction >= 1.0 else "uncertainty"


def selection_from(args) -> SelectionConfig:
    preset = selection_preset(args.selection)
    overrides = {
        name: getattr(args, name)
        for name in ("acquisition", "random_fraction", "spread", "cold_start")
        if getattr(args, name) is not None
    }
    return dataclasses.replace(preset, **overrides)


def small_budget_verdicts(
    baselines: Mapping[str, Mapping[int, Mapping[str, float]]],
    active_results: Mapping[int, Mapping[str, float]],
    budgets,
) -> None:
    """Target 3: uncertainty-chosen pairs at least 3 points over random pairs at the small budgets, against
    each baseline given: ``random`` (a model from scratch per budget, as the random arm trains) and
    ``loop_random`` (random pairs through the same loop: same rounds, warm starts and steps)."""
    for name, random_results in baselines.items():
        for budget in budgets:
            if budget not in random_results or budget not in active_results:
                continue
            margin = active_results[budget]["all"] - random_results[budget]["all"]
            print(
                f"target 3 (vs {name}): uncertainty pairs {active_results[budget]['all']:.3f} vs "
                f"{random_results[budget]['all']:.3f} at {budget}: {100 * margin:+.1f} points (>= +3.0)"
                f" -> {verdict(margin >= 0.03)}"
            )


ARMS = ("random", "loop_random", "uncertainty")


def summary(paths: list[str]) -> None:
    runs = [json.loads(open(path).read()) for path in paths]
    print(
        f"median over {len(runs)} runs: " + "; ".join(f"{run['label']} (seed {run['seed']})" for run in runs)
    )
    medians: dict[str, dict[int, dict[str, float]]] = {}
    for arm in ARMS:
        budgets = sorted({int(b) for run in runs for b in run.get(arm, {})})
        medians[arm] = {}
        for budget in budgets:
            values = [run[arm][str(budget)] for run in runs if str(budget) in run.get(arm, {})]
            medians[arm][budget] = {
                name: statistics.median(v[name] for v in values if name in v) for name in values[0]
            }
            seeds = " / ".join(f"{v['all']:.3f}" for v in values)
            print(
                f"  {arm:11s} {budget:5d} judgments: {describe_accuracy(medians[arm][budget])}  (runs {seeds})"
            )
    baselines = {arm: medians[arm] for arm in ("random", "loop_random") if medians[arm]}
    small_budget_verdicts(baselines, medians["uncertainty"], sorted(medians["uncertainty"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-inputs", type=int, default=400)
    parser.add_argument("--test-inputs", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument(
        "--pool", choices=POOLS, default="graded", help="how the candidates are made (see POOLS)"
    )
    parser.add_argument(
        "--fine-share", type=float, default=FINE_SHARE, help="redundant pool: share of the fine inputs"
    )
    parser.add_argument(
        "--fine-noise", type=float, default=FINE_NOISE, help="redundant pool: the fine inputs' top noise σ"
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 1000, 2000, 4000])
    parser.add_argument("--random-budgets", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument(
        "--oracle",
        choices=DISTANCE_NAMES,
        default="default",
        help="the oracle's distance (reward_model.oracle.distance_by_name); default: the project's perceptual distance",
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="oracle temperature (default: the distance's default)"
    )
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--stem-stride", type=int, default=2)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument(
        "--residual-input", action=argparse.BooleanOptionalAction, default=True, help="also feed x - lq"
    )
    parser.add_argument(
        "--group-norm", action=argparse.BooleanOptionalAction, default=True, help="GroupNorm after convs"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="cosine decay measured worse here: at these step counts the net is still forming its features",
    )
    parser.add_argument("--epochs", type=float, default=16, help="passes over the judgments, from scratch")
    parser.add_argument("--warm-epochs", type=float, default=6, help="passes when warm-started")
    parser.add_argument("--min-steps", type=int, default=200)
    parser.add_argument("--warm-min-steps", type=int, default=150)
    parser.add_argument(
        "--group-by-input", action="store_true", help="batches of whole inputs (cheaper steps)"
    )
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument(
        "--stop-after", type=float, default=0.8, help="no early stop before this share of steps"
    )
    parser.add_argument("--no-warm-start", dest="warm_start", action="store_false")
    parser.add_argument(
        "--selection", choices=sorted(SELECTION_PRESETS), default="bald", help="reward_model.selection preset"
    )
    parser.add_argument("--acquisition", choices=ACQUISITIONS, default=None, help="override the preset's")
    parser.add_argument("--random-fraction", type=float, default=None, help="override the preset's")
    parser.add_argument(
        "--spread",
        type=float,
        default=None,
        help="override the preset's: informative pairs per input per round at most this times the even share (0: no cap)",
    )
    parser.add_argument(
        "--cold-start",
        type=float,
        default=None,
        help="override the preset's: random share of the first budget",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["random", "active"], default=None)
    parser.add_argument("--save-json", default=None, help="also write this run's accuracies here")
    parser.add_argument(
        "--summary",
        nargs="+",
        default=None,
        metavar="JSON",
        help="no run: print the median over the runs saved with --save-json, and the verdicts",
    )
    parser.add_argument(
        "--pool-only", action="store_true", help="no training: the pools' difficulty and the noise ceiling"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on the shared 2-core machine one thread trains ~10x faster than two under load",
    )
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return
    selection = selection_from(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    distance = PerceptualDistance() if args.oracle == "default" else distance_by_name(args.oracle)
    options = pool_options(args)
    pool = build_dataset(
        "train",
        args.pool_inputs,
        args.candidates,
        seed=args.seed,
        distance=distance,
        pool=args.pool,
        pool_options=options,
    )
    test = build_dataset(
        "test",
        args.test_inputs,
        args.candidates,
        seed=args.seed + 1,
        distance=distance,
        pool=args.pool,
        pool_options=options,
    )
    bank = ImageBank({**pool.images, **test.images}, resolution=args.resolution)
    # tie margin and both-bad threshold (and the temperature unless given): the defaults for this distance
    oracle = OracleAnnotator("reliable", temperature=args.temperature, seed=args.seed, distance=distance)
    ceiling = noise_ceiling(test, oracle)
    pool_pairs = all_pairs(pool.candidates)
    outcomes = Counter(
        oracle.judge_distances(pool.distance[p.a_key], pool.distance[p.b_key]) for p in pool_pairs
    )
    print(
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"data: pool {args.pool!r}{f' {options}' if options else ''}, {args.pool_inputs} pool inputs + {args.test_inputs} held-out inputs, "
        f"{args.candidates} candidates each ({len(test_pairs(test))} held-out pairs), built in "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        f"oracle: distance {getattr(distance, 'name', args.oracle)}, temperature {oracle.temperature}, tie margin "
        f"{oracle.tie_margin}, both-bad past {oracle.both_bad_threshold}; answers on all pool pairs: {dict(outcomes)}"
    )
    margins = np.array([abs(pool.distance[p.a_key] - pool.distance[p.b_key]) for p in pool_pairs])
    quantiles = np.quantile(margins / oracle.temperature, [0.1, 0.25, 0.5, 0.75, 0.9])
    print(
        "pool difficulty (P(an answer is the noise-free preference) = sigmoid(|d_a - d_b| / temperature); easy >= 0.99, "
        "medium 0.9-0.99, hard < 0.9): "
        + ", ".join(
            f"{name} {share:.1%}" for name, share in difficulty_shares(pool_pairs, pool, oracle).items()
        )
        + "; |d_a - d_b| / temperature quantiles 10/25/50/75/90 %: "
        + " / ".join(f"{q:.1f}" for q in quantiles)
    )
    print(
        "held-out difficulty: "
        + ", ".join(
            f"{name} {share:.1%}" for name, share in difficulty_shares(test_pairs(test), test, oracle).items()
        )
    )
    print(
        f"reward model: resolution {args.resolution} (stem stride {args.stem_stride}), channels {args.channels}, "
        f"ensemble {args.ensemble}, residual input {args.residual_input}, group norm {args.group_norm}; batch {args.batch_size}, lr {args.learning_rate} {args.lr_schedule}, "
        f"{args.epochs:g} passes from scratch / {args.warm_epochs:g} warm-started ({'on' if args.warm_start else 'off'}), "
        f"steps in [{args.min_steps} ({args.warm_min_steps} warm), {args.max_steps}]"
        f"{', batches of whole inputs' if args.group_by_input else ''}, best checkpoint by validation accuracy every {args.eval_every} "
        f"steps, early stop after {args.patience} without gain past {args.stop_after:.0%} of the steps"
    )
    print(
        f"pair selection (preset {args.selection!r}): {selection.acquisition} of the ensemble, cold start "
        f"{selection.cold_start:.0%} of the first budget at random, then {selection.random_fraction:.0%} random per round, "
        f"informative pairs per input per round at most {selection.spread:g}x the even share"
    )
    print(f"noise ceiling (one annotator's expected accuracy vs noise-free preference): {ceiling:.3f}")
    if args.pool_only:
        return
    random_results = active_results = None
    if args.skip != "random":
        random_results = run_random(args.random_budgets, pool, test, bank, oracle, args)
    if args.skip != "active":
        active_results, reasons, chosen_difficulty = run_active(
            args.budgets, pool, test, bank, oracle, args, selection
        )
    print()
    print("judgments | random pairs: accuracy, train s | uncertainty pairs: accuracy, cumulative train s")
    for budget in sorted(set(args.budgets) | set(args.random_budgets)):
        r = (
            f"{random_results[budget][0]['all']:.3f}  {random_results[budget][1]:6.0f}"
            if random_results and budget in random_results
            else "-"
        )
        a = (
            f"{active_results[budget][0]['all']:.3f}  {active_results[budget][1]:6.0f}"
            if active_results and budget in active_results
            else "-"
        )
        print(f"{budget:9d} | {r:>28} | {a:>30}")
    if active_results:
        total = sum(chosen_difficulty.values())
        print(
            f"pairs chosen in the uncertainty run, by reason: {dict(reasons)}; the informative picks by difficulty: "
            + ", ".join(
                f"{name} {count / max(total, 1):.1%}" for name, count in sorted(chosen_difficulty.items())
            )
        )
    if random_results and active_results:
        top = max(args.random_budgets)
        half = top // 2
        for name, results in (("random", random_results), ("uncertainty", active_results)):
            if top not in results:
                continue
            gap = ceiling - results[top][0]["all"]
            print(
                f"target 1 ({name}): within 3 points of the ceiling at {top}: gap {100 * gap:+.1f} points"
                f" -> {verdict(gap <= 0.03)}"
            )
        if half in active_results and top in random_results:
            reached = active_results[half][0]["all"] >= random_results[top][0]["all"]
            print(
                f"target 2: uncertainty pairs at {half} ({active_results[half][0]['all']:.3f}) reach random pairs at "
                f"{top} ({random_results[top][0]['all']:.3f}) -> {verdict(reached)}"
            )
    if random_results and active_results and arm_name(selection) == "uncertainty":
        small_budget_verdicts(
            {"random": {b: r[0] for b, r in random_results.items()}},
            {b: r[0] for b, r in active_results.items()},
            [b for b in (250, 500) if b in args.budgets],
        )
    if args.save_json:
        record = {
            "label": f"pool {args.pool}, selection {args.selection} {dataclasses.asdict(selection)}",
            "seed": args.seed,
            "random": {str(b): r[0] for b, r in (random_results or {}).items()},
            arm_name(selection): {str(b): r[0] for b, r in (active_results or {}).items()},
        }
        with open(args.save_json, "w") as handle:
            json.dump(record, handle, indent=1)
    print(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
