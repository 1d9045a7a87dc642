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
a nested prefix. Uncertainty pairs: a random cold start of half the first budget, then rounds that double
the labelled set; each round scores every pool pair with the previous round's ensemble and takes the
highest BALD (a pair's score divided by 1 + its labels so far), at most ``--spread`` times the even share
per input, plus a random share, and the model is warm-started from the previous round. For a fair
comparison the progress lines give each model's training steps (of its last round, for the uncertainty
pairs; compare the cumulative steps of the rounds, so that a gain is not just more training).

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/reward_learning.py [options]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from restorer.classical import classical_restore
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import apply_degradation, sample_degradation
from restorer.metrics import PerceptualDistance
from reward_model.data import ImageBank
from reward_model.model import RewardConfig, RewardModel
from reward_model.oracle import DEFAULTS_BY_DISTANCE, OracleAnnotator
from reward_model.selection import CandidatePair, all_pairs, select_pairs_from_rewards
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


def build_dataset(split: str, n_inputs: int, candidates_per_input: int, *, seed: int, distance) -> Dataset:
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
    alpha = torch.rand(shape, generator=generator)[..., None, None, None]
    level = torch.randint(len(SHARPEN_LEVELS), shape, generator=generator)
    noise = 0.08 * torch.rand(shape, generator=generator)[..., None, None, None]
    base = bases[torch.arange(n_inputs)[:, None], level]
    candidates = alpha * hq[:, None] + (1 - alpha) * base
    candidates = (candidates + noise * torch.randn(candidates.shape, generator=generator)).clamp(-1, 1)
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


def model_accuracy(model: RewardModel, data: Dataset, bank: ImageBank) -> float:
    pairs = test_pairs(data)
    lq = bank.lookup([data.lq_key[p.input_id] for p in pairs])
    reward_a = member_rewards_for(model, bank, lq, bank.lookup([p.a_key for p in pairs])).mean(1)
    reward_b = member_rewards_for(model, bank, lq, bank.lookup([p.b_key for p in pairs])).mean(1)
    truly_a = torch.tensor([data.distance[p.a_key] < data.distance[p.b_key] for p in pairs])
    return float(((reward_a > reward_b) == truly_a).float().mean())


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
            model_accuracy(result.model, test, bank),
            time.perf_counter() - started,
            result.metrics["steps"],
        )
        print(
            f"  random      {budget:5d} judgments: accuracy {results[budget][0]:.3f}  ({results[budget][1]:.0f} s, "
            f"{results[budget][2]} steps)",
            flush=True,
        )
    return results


def run_active(budgets, pool, test, bank, oracle, args):
    rng = np.random.default_rng(args.seed + 1)
    pairs = all_pairs(pool.candidates)
    first = budgets[0] // 2
    rows = judge([pairs[i] for i in rng.integers(len(pairs), size=first)], pool, oracle, rng, 0)
    reasons: Counter[str] = Counter({"cold_start": first})
    # Rounds: a model on the random cold-start labels, then the labelled set doubles each round (and stops at
    # every reported budget), each round choosing its new pairs with the previous round's model.
    schedule = sorted(set(budgets) | {first * 2**i for i in range(20) if first * 2**i < max(budgets)})
    results, model, total_time = {}, None, 0.0
    for target in schedule:
        started = time.perf_counter()
        if model is not None:
            keys = [key for keys in pool.candidates.values() for key in keys]
            lq_keys = [pool.lq_key[key.split("/")[2]] for key in keys]
            member = member_rewards_for(model, bank, bank.lookup(lq_keys), bank.lookup(keys))
            counts = Counter((row.a_key, row.b_key) for row in rows)
            new_pairs = target - len(rows)
            # Spread each round over the inputs: at most --spread times the even share per input.
            cap = math.ceil(args.spread * new_pairs / len(pool.candidates)) if args.spread > 0 else None
            chosen = select_pairs_from_rewards(
                pairs,
                dict(zip(keys, member)),
                budget=new_pairs,
                random_fraction=args.random_fraction,
                seed=args.seed + target,
                label_counts=counts,
                max_per_input=cap,
            )
            reasons.update(pair.reason for pair in chosen)
            new = [CandidatePair(p.input_id, p.a_key, p.b_key) for p in chosen]
            rows += judge(new, pool, oracle, rng, len(rows))
        config = train_config(len(rows), args, warm_start=model is not None and args.warm_start)
        result = train(
            config,
            judgments=rows,
            images=bank,
            progress=False,
            init_model=model if args.warm_start else None,
        )
        model = result.model
        total_time += time.perf_counter() - started
        if target in budgets:
            results[target] = (model_accuracy(model, test, bank), total_time, result.metrics["steps"])
            print(
                f"  uncertainty {target:5d} judgments: accuracy {results[target][0]:.3f}  ({total_time:.0f} s cumulative, "
                f"{results[target][2]} steps)",
                flush=True,
            )
    return results, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-inputs", type=int, default=400)
    parser.add_argument("--test-inputs", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 1000, 2000, 4000])
    parser.add_argument("--random-budgets", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument("--temperature", type=float, default=DEFAULTS_BY_DISTANCE["lpips_randtrunk"][0])
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
    parser.add_argument("--random-fraction", type=float, default=0.2)
    parser.add_argument(
        "--spread",
        type=float,
        default=2.0,
        help="informative pairs per input per round at most this times the even share (0: no cap)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["random", "active"], default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on the shared 2-core machine one thread trains ~10x faster than two under load",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    distance = PerceptualDistance()
    pool = build_dataset("train", args.pool_inputs, args.candidates, seed=args.seed, distance=distance)
    test = build_dataset("test", args.test_inputs, args.candidates, seed=args.seed + 1, distance=distance)
    bank = ImageBank({**pool.images, **test.images}, resolution=args.resolution)
    oracle = OracleAnnotator(
        "reliable",
        temperature=args.temperature,  # tie margin and both-bad threshold: the defaults for this distance
        seed=args.seed,
        distance=distance,
    )
    ceiling = noise_ceiling(test, oracle)
    outcomes = Counter(
        oracle.judge_distances(pool.distance[p.a_key], pool.distance[p.b_key])
        for p in all_pairs(pool.candidates)
    )
    print(
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"data: {args.pool_inputs} pool inputs + {args.test_inputs} held-out inputs, {args.candidates} candidates each "
        f"({len(test_pairs(test))} held-out pairs), built in {time.perf_counter() - started:.0f} s"
    )
    print(
        f"oracle: distance {distance.name}, temperature {oracle.temperature}, tie margin {oracle.tie_margin}, "
        f"both-bad past {oracle.both_bad_threshold}; answers on all pool pairs: {dict(outcomes)}"
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
        f"pair selection: BALD of the ensemble, {args.random_fraction:.0%} random, "
        f"informative pairs per input per round at most {args.spread:g}x the even share"
    )
    print(f"noise ceiling (one annotator's expected accuracy vs noise-free preference): {ceiling:.3f}")
    random_results = active_results = None
    if args.skip != "random":
        random_results = run_random(args.random_budgets, pool, test, bank, oracle, args)
    if args.skip != "active":
        active_results, reasons = run_active(args.budgets, pool, test, bank, oracle, args)
    print()
    print("judgments | random pairs: accuracy, train s | uncertainty pairs: accuracy, cumulative train s")
    for budget in args.budgets:
        r = (
            f"{random_results[budget][0]:.3f}  {random_results[budget][1]:6.0f}"
            if random_results and budget in random_results
            else "-"
        )
        a = f"{active_results[budget][0]:.3f}  {active_results[budget][1]:6.0f}" if active_results else "-"
        print(f"{budget:9d} | {r:>28} | {a:>30}")
    top = max(args.random_budgets)
    half = top // 2
    if random_results and active_results:
        print(f"pairs chosen in the uncertainty run, by reason: {dict(reasons)}")
        for name, results in (("random", random_results), ("uncertainty", active_results)):
            if top not in results:
                continue
            gap = ceiling - results[top][0]
            print(
                f"target 1 ({name}): within 3 points of the ceiling at {top}: gap {100 * gap:+.1f} points"
                f" -> {verdict(gap <= 0.03)}"
            )
        if half in active_results:
            reached = active_results[half][0] >= random_results[top][0]
            print(
                f"target 2: uncertainty pairs at {half} ({active_results[half][0]:.3f}) reach random pairs at {top} "
                f"({random_results[top][0]:.3f}) -> {verdict(reached)}"
            )
    print(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
