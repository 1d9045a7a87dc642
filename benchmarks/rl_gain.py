"""On-policy RL of the tiny restorer against a reward model learned from simulated judgments: what it gains.

Pipeline (every phase is what the platform does, at CPU scale):

1. **Supervised restorer**: ``/tmp/pref-artifacts/restorer_tiny`` when it holds a loadable restorer artifact
   (left there by ``restorer.train --config tiny``), else one is trained here with the same ``tiny`` config for
   ``--restorer-minutes``.
2. **Inputs**: synthetic 64x64 faces (DCGAN of gan-face-generate, trained on DigiFace1M: research use only),
   degraded with the ``gfpgan`` preset; RL inputs from the synthetic *train* split (seeds the restorer's pool
   never used), the guard's held-out inputs from *val*, the report's held-out inputs from *test*.
3. **Reward model from simulated judgments**: the supervised restorer samples K candidates per input with its
   stochastic RL sampler (the distribution RL will move); ``--edited-share`` of them are replaced by edited
   versions (unsharp mask or blur of random strength, added noise: stand-ins for the other model versions a
   real candidate pool holds, since one restorer's samples of an input are nearly identical), a reliable
   oracle annotator of ``reward_model.oracle``
   (Bradley-Terry noise at its default temperature, ties, both-bad) judges every pair, and
   ``reward_model.train`` fits a reward model. Its pairwise accuracy against the noise-free oracle on
   candidates of held-out inputs is printed.
4. **RL**: ``rl_trainer.train`` (the job runner's entry point) on a JSONL manifest, for a fixed budget in
   rollouts and minutes. Reward = learned reward + observation consistency (the input's own degradation
   re-applied to the restoration, compared with the LQ) + agreement (closeness to the other samples of the
   same input: the determinism goal) + perceptual fidelity to HQ (the RL inputs are synthetic, so their HQ
   is known). ``--update reward_backprop`` (default) follows the gradient of their weighted sum through the
   last denoising step, with weights in each term's own units (``UPDATE_DEFAULTS``: chosen so that each term's
   gradient on the UNet is of a similar size); ``--update ddpo`` standardises each term within its group and
   uses DDPO's clipped ratio. Agreement pulls each seed towards its group's best sample by the other terms
   (``--agreement-target best``), not towards the group's smoother mean. The KL leash (weight 20) holds the policy
   where the reward's gradient is consistent: at weight 1 the KL kept growing and the win rate eroded (runs E2
   and E4 in ``benchmarks/results/rl_gain.txt``). The perceptual term is ``rl_trainer``'s: LPIPS heads on random trunks of *other
   seeds* than the oracle's (five by default for reward_backprop: an ensemble resists being over-optimised), so
   RL never climbs the oracle's own distance; the report says how often the two distances agree on which of two
   samples is closer. ``--learned-weight 0`` or ``--perceptual-weight 0`` show what each teaches on its own.
   Every 10 steps the guard evaluates 48 *val* inputs: learned reward, the oracle's score and its win rate
   against the supervised restorer, and solution entropy over 2 seeds. ``--keep-best`` (default) hands back the
   policy of the evaluation with the best val win rate among those whose val entropy is at most
   ``--keep-best-entropy-ratio`` (0.65) of the supervised restorer's (early stopping on val; test faces unseen).
5. **Report** on held-out test inputs, supervised vs RL-tuned, same seeds: win rate under the noise-free
   oracle (closer to HQ under the oracle's distance; ties count half), PSNR and ``lpips_randtrunk`` to HQ
   (the LPIPS heads on a random AlexNet trunk: no ImageNet weights offline, so this is *not* LPIPS), the
   learned reward, solution entropy (mean per-pixel std across seeds), samples/s. Two samplers: the
   deterministic DDIM sampler (eta 0, 20 steps; what the restorer's evaluation uses) and the stochastic
   sampler RL trained (eta 1, the rollout step count).

Heavy: run it under the shared lock (2-core CPU)::

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/rl_gain.py [--quick]

Writes its report to ``benchmarks/results/rl_gain.txt`` (``--quick``: ``rl_gain_quick.txt``).
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

import numpy as np
import torch

from restorer import sampling
from restorer.artifacts import ArtifactError
from restorer.classical import unsharp_mask
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import apply_degradation, instruction_text, sample_degradation
from restorer.images import quantize, tensor_to_pil
from restorer.metrics import PerceptualDistance, psnr, solution_entropy
from restorer.model import Restorer
from reward_model.data import ImageBank
from reward_model.model import RewardConfig, RewardModel
from reward_model.oracle import OracleAnnotator
from reward_model.selection import CandidatePair
from reward_model.simulated import simulated_judgments
from reward_model.train import TrainConfig as RewardTrainConfig
from reward_model.train import train as train_reward_model
from rl_trainer.config import RLConfig
from rl_trainer.guard import oracle_evaluator, win_rate
from rl_trainer.manifest import write_manifest
from rl_trainer.rewards import perceptual_reward_distance
from rl_trainer.train import train as train_rl

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOLUTION = 64
DEFAULT_RESTORER = Path("/tmp/pref-artifacts/restorer_tiny")
RL_SEED_OFFSET = 900_000  # synthetic train seeds far beyond the restorer's training pool


@dataclasses.dataclass(frozen=True)
class Sizes:
    rl_inputs: int
    guard_inputs: int
    test_inputs: int
    reward_check_inputs: int  # val inputs whose candidate pairs check the reward model
    reward_inputs: int
    candidates: int
    reward_steps: int
    eval_seeds: int
    rl_max_steps: int


FULL = Sizes(
    rl_inputs=48,
    guard_inputs=48,
    test_inputs=96,
    reward_check_inputs=12,
    reward_inputs=192,
    candidates=6,
    reward_steps=800,
    eval_seeds=4,
    rl_max_steps=200,
)
QUICK = Sizes(
    rl_inputs=8,
    guard_inputs=2,
    test_inputs=4,
    reward_check_inputs=2,
    reward_inputs=8,
    candidates=4,
    reward_steps=40,
    eval_seeds=2,
    rl_max_steps=2,
)


UPDATE_DEFAULTS: dict[str, dict[str, float]] = {
    "reward_backprop": {
        "learning_rate": 1e-5,
        "kl_weight": 20.0,
        "learned_weight": 0.3,
        "consistency_weight": 1000.0,
        "perceptual_weight": 5000.0,
        "perceptual_trunks": 5,
        "agreement_weight": 3e6,
        "pessimism": 1.0,
    },
    "ddpo": {
        "learning_rate": 1e-4,
        "kl_weight": 0.01,
        "learned_weight": 1.0,
        "consistency_weight": 0.5,
        "perceptual_weight": 1.0,
        "perceptual_trunks": 1,
        "agreement_weight": 1.0,
        "pessimism": 0.0,
    },
}


def rl_config(args: argparse.Namespace, sizes: Sizes) -> RLConfig:
    return RLConfig.preset(
        "tiny",
        seed=0,
        max_steps=sizes.rl_max_steps,
        max_minutes=args.rl_minutes,
        inputs_per_step=4,
        group_size=4,
        rollout_steps=args.rollout_steps,
        eta=1.0,
        inner_epochs=1,
        minibatch_size=8,
        train_timestep_fraction=0.5,
        policy_update=args.update,
        learning_rate=args.learning_rate,
        clip_range=args.clip_range,
        kl_weight=args.kl_weight,
        learned_reward_weight=args.learned_weight,
        learned_reward_pessimism=args.pessimism,
        consistency_weight=args.consistency_weight,
        perceptual_weight=args.perceptual_weight,
        perceptual_trunks=args.perceptual_trunks,
        agreement_weight=args.agreement_weight,
        agreement_target=args.agreement_target,
        normalize_reward_terms=args.normalize_terms,
        use_lora=args.lora,
        eval_every=args.eval_every if not args.quick else 1,
        eval_inputs=sizes.guard_inputs,
        eval_steps=args.rollout_steps,
        eval_eta=0.0,
        eval_fraction=0.0,
        hacking_patience=3,
        keep_best=args.keep_best,
        keep_best_entropy_ratio=(
            args.keep_best_entropy_ratio if args.keep_best and args.eval_entropy_seeds else None
        ),
        entropy_seeds=0,
        eval_entropy_seeds=args.eval_entropy_seeds,
        checkpoint_every=5,
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


# ------------------------------------------------------------------------------------------ reward model


def edited_versions(samples: torch.Tensor, share: float, *, seed: int) -> torch.Tensor:
    """Replace ``share`` of a group's samples by sharpened or softened, and noisier, versions of themselves.

    The restorer's own samples of one input are nearly identical (its solution entropy is ~1e-3), so judgments
    between them alone are noise. Real candidate pools hold model versions that differ in sharpness and
    noise (checkpoints of different ages, other samplers); these edits stand in for them: an unsharp mask of
    strength in [-0.8, 1.5] (negative: towards a blur) and Gaussian noise of std in [0, 0.03], drawn per
    candidate. The first sample of each group is always kept as the restorer made it.
    """
    generator = torch.Generator().manual_seed(seed)
    count = samples.shape[0]
    edited = samples.clone()
    chosen = [i for i in range(1, count) if torch.rand((), generator=generator) < share]
    if not chosen:
        return edited
    picked = samples[chosen]
    strength = (torch.rand(len(chosen), generator=generator) * 2.3 - 0.8).view(-1, 1, 1, 1)
    noise_std = (torch.rand(len(chosen), generator=generator) * 0.03).view(-1, 1, 1, 1)
    noise = torch.randn(picked.shape, generator=generator) * noise_std
    edited[chosen] = (unsharp_mask(picked, strength, sigma=1.0) + noise).clamp(-1.0, 1.0)
    return edited


def build_reward_model(
    restorer: Restorer, faces: Faces, held_out: Faces, args: argparse.Namespace, sizes: Sizes, work: Path
) -> tuple[Path, dict]:
    distance = PerceptualDistance()
    oracle = OracleAnnotator(
        "reliable",
        temperature=args.annotator_temperature,
        tie_margin=args.tie_margin,
        seed=0,
        distance=distance,
    )
    images: dict[str, torch.Tensor] = {}
    started = time.perf_counter()

    def candidates_for(batch: Faces, seed_base: int) -> tuple[dict[str, list[str]], dict[str, float]]:
        keys_of_input: dict[str, list[str]] = {}
        distances: dict[str, float] = {}
        k = sizes.candidates
        per_call = 4  # inputs per sampler call: batches of 4 * K images keep the CPU busy
        for first in range(0, len(batch.ids), per_call):
            chunk = range(first, min(first + per_call, len(batch.ids)))
            with torch.no_grad():
                out = sampling.sample(
                    restorer,
                    batch.lq[list(chunk)].repeat_interleave(k, dim=0),
                    [batch.instructions[index] for index in chunk for _ in range(k)],
                    num_steps=args.rollout_steps,
                    eta=1.0,
                    seeds=[seed_base + 100 * index + c for index in chunk for c in range(k)],
                )
            for position, index in enumerate(chunk):
                input_id = batch.ids[index]
                samples = out.images[position * k : (position + 1) * k]
                if args.edited_share > 0:
                    samples = edited_versions(samples, args.edited_share, seed=seed_base + index)
                samples = quantize(samples)
                keys = [f"samples/sup/{input_id}/{c}.png" for c in range(k)]
                images[f"inputs/{input_id}/lq.png"] = batch.lq[index]
                images.update(zip(keys, samples))
                d = distance(samples, batch.hq[index : index + 1].expand_as(samples))
                distances.update(zip(keys, d.tolist()))
                keys_of_input[input_id] = keys
        return keys_of_input, distances

    train_candidates, train_distances = candidates_for(faces, 10_000_000)
    test_candidates, test_distances = candidates_for(held_out, 20_000_000)
    generated = time.perf_counter() - started
    # every pair of an input's candidates, judged judgments_per_pair times (annotators reliable0, reliable1, ...)
    pairs = [
        CandidatePair(input_id, a_key, b_key)
        for input_id, keys in train_candidates.items()
        for a_key, b_key in itertools.combinations(keys, 2)
        for _ in range(args.judgments_per_pair)
    ]
    rows = simulated_judgments(
        pairs,
        oracle,
        distances=train_distances,
        lq_keys={input_id: f"inputs/{input_id}/lq.png" for input_id in train_candidates},
        annotators=[f"reliable{annotator}" for annotator in range(args.judgments_per_pair)],
        rng=np.random.default_rng(0),
        model="supervised",
    )
    # the reward_learning benchmark's model (32 px, 4 members): at 64 px fitting is ~4x slower on this CPU
    channels = (16, 32, 64) if args.reward_resolution <= 32 else (16, 32, 64, 64)
    reward_config = RewardConfig(
        resolution=args.reward_resolution,
        channels=channels,
        ensemble_size=4,
        residual_input=True,
        group_norm=True,
    )
    config = RewardTrainConfig(reward=reward_config, max_steps=sizes.reward_steps, eval_every=50, patience=4)
    out = work / "reward"
    shutil.rmtree(out, ignore_errors=True)
    fit_started = time.perf_counter()
    result = train_reward_model(
        config,
        judgments=rows,
        images=ImageBank(images, reward_config.resolution),
        out_dir=out,
        progress=False,
    )
    fit_seconds = time.perf_counter() - fit_started

    # accuracy on candidate pairs of held-out inputs against the noise-free oracle
    model = result.model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for index, input_id in enumerate(held_out.ids):
            keys = test_candidates[input_id]
            stack = torch.stack([images[key] for key in keys])
            rewards = model(held_out.lq[index : index + 1].expand_as(stack), stack).tolist()
            for (i, a_key), (j, b_key) in itertools.combinations(enumerate(keys), 2):
                if test_distances[a_key] == test_distances[b_key]:
                    continue
                total += 1
                correct += (rewards[i] > rewards[j]) == (test_distances[a_key] < test_distances[b_key])
    info = {
        "judgments": len(rows),
        "train_inputs": len(faces.ids),
        "candidates_per_input": sizes.candidates,
        "annotator": f"reliable, temperature {args.annotator_temperature}, tie margin {args.tie_margin}",
        "reward_resolution": args.reward_resolution,
        "held_out_pair_accuracy": correct / max(total, 1),
        "held_out_pairs": total,
        "candidate_seconds": generated,
        "fit_seconds": fit_seconds,
        "validation": {k: v for k, v in result.metrics.items() if isinstance(v, float | int)},
    }
    return out, info


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


# ------------------------------------------------------------------------------------------------ report


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


def compare(
    supervised: torch.Tensor,
    tuned: torch.Tensor,
    faces: Faces,
    reward: RewardModel,
    distance: PerceptualDistance,
    term_distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    seeds, count = supervised.shape[:2]
    hq = faces.hq.unsqueeze(0).expand(seeds, -1, -1, -1, -1).reshape(-1, 3, RESOLUTION, RESOLUTION)
    lq = faces.lq.unsqueeze(0).expand(seeds, -1, -1, -1, -1).reshape(-1, 3, RESOLUTION, RESOLUTION)
    figures: dict[str, float] = {}
    # the RL guard's own held-out evaluator and win rate, here on the test faces: minus the oracle's distance
    oracle_score = oracle_evaluator(distance, distance.name)
    scores, distances, term_distances = {}, {}, {}
    for name, samples in (("sup", supervised), ("rl", tuned)):
        flat = quantize(samples.reshape(-1, 3, RESOLUTION, RESOLUTION))
        scores[name] = oracle_score(lq, flat, hq, [None] * len(flat))
        distances[name] = -scores[name]
        term_distances[name] = term_distance(flat, hq)
        figures[f"{name}_psnr"] = float(psnr(flat, hq).mean())
        figures[f"{name}_lpips_randtrunk"] = float(distances[name].mean())
        with torch.no_grad():
            figures[f"{name}_reward"] = float(reward(lq, flat).mean())
        figures[f"{name}_entropy"] = solution_entropy(samples)
    # how close the RL's perceptual reward term is to the oracle: do they pick the same image of each pair?
    term_rl, term_sup = term_distances["rl"], term_distances["sup"]
    decided = (distances["rl"] != distances["sup"]) & (term_rl != term_sup)
    same_pick = ((distances["rl"] < distances["sup"]) == (term_rl < term_sup)) & decided
    figures["term_oracle_agreement"] = float(same_pick.sum()) / max(int(decided.sum()), 1)
    figures["win_rate"] = win_rate(scores["rl"], scores["sup"])  # closer to HQ under the oracle, ties half
    figures["comparisons"] = float(len(scores["rl"]))
    return figures


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs (minutes)")
    parser.add_argument("--restorer", default=str(DEFAULT_RESTORER))
    parser.add_argument("--restorer-minutes", type=float, default=10.0)
    parser.add_argument("--work", default="/tmp/pref-artifacts/rl_bench")
    parser.add_argument("--rl-minutes", type=float, default=18.0)
    parser.add_argument("--rollout-steps", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, help="default: 1e-5 (reward_backprop), 1e-4 (ddpo)")
    parser.add_argument("--clip-range", type=float, default=0.01)
    parser.add_argument("--kl-weight", type=float, help="default: 20 (reward_backprop), 0.01 (ddpo)")
    parser.add_argument(
        "--learned-weight",
        type=float,
        help="weight of the learned reward; default 0.3 (reward_backprop), 1 (ddpo)",
    )
    parser.add_argument(
        "--consistency-weight", type=float, help="default: 1000 (reward_backprop, raw MSE units), 0.5 (ddpo)"
    )
    parser.add_argument(
        "--agreement-weight",
        type=float,
        help="weight of agreement with the other samples of the group (the determinism term);"
        " default 3e6 (reward_backprop, raw MSE units), 1 (ddpo)",
    )
    parser.add_argument(
        "--agreement-target",
        choices=["mean", "best"],
        default="best",
        help="agree with the mean of the other samples of the group, or with its best sample by the other terms",
    )
    parser.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hand back the policy of the guard evaluation with the best held-out win rate against the reference"
        " (val inputs, never the test faces)",
    )
    parser.add_argument(
        "--keep-best-entropy-ratio",
        type=float,
        default=0.65,
        help="with --keep-best: only guard evaluations whose solution entropy is at most this share of the"
        " supervised restorer's compete (needs --eval-entropy-seeds)",
    )
    parser.add_argument(
        "--eval-entropy-seeds",
        type=int,
        default=2,
        help="seeds per val input for the solution entropy at every guard evaluation (0: off, else >= 2)",
    )
    parser.add_argument("--eval-every", type=int, default=10, help="RL steps between guard evaluations")
    parser.add_argument("--guard-inputs", type=int, help="val inputs of the guard's evaluations (default 48)")
    parser.add_argument(
        "--perceptual-weight",
        type=float,
        help="weight of the perceptual distance to HQ (rl_trainer's seeded trunks, not the oracle's); 0: off;"
        " default 5000 (reward_backprop, raw LPIPS units), 1 (ddpo)",
    )
    parser.add_argument(
        "--perceptual-trunks",
        type=int,
        help="random LPIPS trunks the perceptual term averages; default 5 (reward_backprop), 1 (ddpo)",
    )
    parser.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (rank 4) instead of the whole UNet"
    )
    parser.add_argument(
        "--update",
        choices=["ddpo", "reward_backprop"],
        default="reward_backprop",
        help="policy update: the reward's gradient through the last denoising step, or DDPO's clipped ratio",
    )
    parser.add_argument("--rl-inputs", type=int, help="RL training inputs (default 48)")
    parser.add_argument(
        "--rl-steps", type=int, help="RL steps at most (default 200; --rl-minutes may end it first)"
    )
    parser.add_argument("--test-inputs", type=int, help="held-out test faces of the report (default 96)")
    parser.add_argument("--eval-seeds", type=int, help="seeds per test face (default 4; >= 2)")
    parser.add_argument(
        "--pessimism",
        type=float,
        help="learned reward = ensemble mean - this x member std; default 1 (reward_backprop), 0 (ddpo)",
    )
    parser.add_argument(
        "--normalize-terms",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise each reward term within its group before weighting (unit-free weights)",
    )
    parser.add_argument("--judgments-per-pair", type=int, default=2)
    parser.add_argument("--reward-inputs", type=int, help="inputs judged for the reward model (default 192)")
    parser.add_argument("--reward-steps", type=int, help="reward model training steps (default 800)")
    parser.add_argument(
        "--edited-share",
        type=float,
        default=0.6,
        help="share of each input's candidates replaced by sharpened/softened, noisier edits (0: samples only)",
    )
    parser.add_argument(
        "--reuse-reward", action="store_true", help="reuse the reward model of an earlier run"
    )
    parser.add_argument("--finish-by", default=None, help="UTC HH:MM: shorten the RL budget to end by then")
    parser.add_argument("--give-up-after", default=None, help="UTC HH:MM: do nothing when started later")
    parser.add_argument("--results-name", default=None, help="report file name under benchmarks/results")
    parser.add_argument(
        "--annotator-temperature",
        type=float,
        default=0.0005,
        help="oracle's Bradley-Terry noise (careful annotators: samples of one input differ subtly)",
    )
    parser.add_argument(
        "--tie-margin", type=float, default=0.0001, help="oracle answers tie within this distance"
    )
    parser.add_argument("--reward-resolution", type=int, default=64)
    parser.add_argument("--eval-minutes", type=float, default=5.0, help="time kept for the final evaluation")
    args = parser.parse_args()
    # reward_backprop follows the raw weighted sum's gradient, so its weights are in the terms' own units (chosen
    # so that each term's gradient on the UNet is of a similar size); ddpo standardises each term in its group
    defaults = UPDATE_DEFAULTS[args.update]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.give_up_after:
        hours, minutes = (int(part) for part in args.give_up_after.split(":"))
        now = time.gmtime()
        if now.tm_hour * 60 + now.tm_min > hours * 60 + minutes:
            log(f"started after {args.give_up_after} UTC: too late for a meaningful RL budget; not running")
            return
    sizes = QUICK if args.quick else FULL
    if args.reward_inputs:
        sizes = dataclasses.replace(sizes, reward_inputs=max(args.reward_inputs, sizes.rl_inputs))
    size_options = {
        "rl_max_steps": args.rl_steps,
        "test_inputs": args.test_inputs,
        "eval_seeds": args.eval_seeds,
        "rl_inputs": args.rl_inputs,
        "guard_inputs": args.guard_inputs,
        "reward_steps": args.reward_steps,
    }
    sizes = dataclasses.replace(sizes, **{name: value for name, value in size_options.items() if value})
    if args.quick:
        args.rl_minutes = min(args.rl_minutes, 2.0)
    torch.manual_seed(0)
    work = Path(args.work) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    total_started = time.perf_counter()

    restorer_dir, restorer_note = supervised_restorer(args, work)
    supervised = Restorer.from_pretrained(restorer_dir)
    log(f"restorer: {restorer_note}")

    rl_faces = make_faces("train", sizes.rl_inputs, offset=RL_SEED_OFFSET)
    reward_faces = make_faces("train", sizes.reward_inputs, offset=RL_SEED_OFFSET)  # RL inputs are among them
    reward_check = make_faces("val", sizes.reward_check_inputs, offset=100)
    guard_faces = make_faces("val", sizes.guard_inputs)
    test_faces = make_faces("test", sizes.test_inputs)

    log("reward model: sampling candidates, simulated judgments, fitting")
    reward_key = {
        "annotator": [args.annotator_temperature, args.tie_margin],
        "reward_resolution": args.reward_resolution,
        "restorer": str(restorer_dir),
        # what the reward model is fitted and checked on (not the RL run's own sizes)
        "sizes": {
            key: value
            for key, value in dataclasses.asdict(sizes).items()
            if key in ("reward_inputs", "candidates", "reward_steps", "reward_check_inputs")
        },
        "rollout_steps": args.rollout_steps,
        "judgments_per_pair": args.judgments_per_pair,
        "edited_share": args.edited_share,
        "reward_encoder": "residual input, group norm",
    }
    cached = work / "reward_info.json"
    if args.reuse_reward and cached.is_file() and json.loads(cached.read_text()).get("key") == reward_key:
        reward_dir, reward_info = work / "reward", json.loads(cached.read_text())["info"]
        log("reward model: reusing the one fitted by an earlier run with the same settings")
    else:
        reward_dir, reward_info = build_reward_model(
            supervised, reward_faces, reward_check, args, sizes, work
        )
        cached.write_text(json.dumps({"key": reward_key, "info": reward_info}))
    log(f"reward model: {json.dumps(reward_info)}")

    manifest = write_inputs(rl_faces, guard_faces, work / "inputs")
    if args.finish_by:
        # a shared machine: shrink the RL budget so that the whole run ends by the given UTC time
        hours, minutes = (int(part) for part in args.finish_by.split(":"))
        now = time.gmtime()
        left = (hours * 60 + minutes) - (now.tm_hour * 60 + now.tm_min + now.tm_sec / 60)
        budget = max(4.0, min(args.rl_minutes, left - args.eval_minutes))
        if budget < args.rl_minutes:
            log(
                f"RL budget cut from {args.rl_minutes} to {budget:.1f} minutes to finish by {args.finish_by} UTC"
            )
        args.rl_minutes = budget
    config = rl_config(args, sizes)
    rl_out = work / "rl_out"
    shutil.rmtree(rl_out, ignore_errors=True)
    log(f"RL: {config.max_steps} steps at most, {config.max_minutes} minutes")
    result = train_rl(
        config, policy_dir=restorer_dir, reward_dir=reward_dir, inputs_manifest=manifest, out_dir=rl_out
    )
    log(f"RL: {result.message}")
    tuned = Restorer.from_pretrained(rl_out)

    log("evaluating on held-out test inputs")
    distance = PerceptualDistance()
    term_distance = perceptual_reward_distance(args.perceptual_trunks)
    reward = RewardModel.from_pretrained(reward_dir).eval()
    tables = {}
    speeds = {}
    for label, steps, eta in (
        ("deterministic (eta 0, 20 steps)", 20, 0.0),
        (f"RL sampler (eta 1, {args.rollout_steps} steps)", args.rollout_steps, 1.0),
    ):
        sup_samples, sup_speed = evaluate(
            supervised, test_faces, num_steps=steps, eta=eta, seeds=sizes.eval_seeds
        )
        rl_samples, rl_speed = evaluate(tuned, test_faces, num_steps=steps, eta=eta, seeds=sizes.eval_seeds)
        tables[label] = compare(sup_samples, rl_samples, test_faces, reward, distance, term_distance)
        speeds[label] = (sup_speed + rl_speed) / 2

    rollout_speed = (
        statistics.median(h["sampling_samples_per_s"] for h in result.history) if result.history else 0.0
    )
    rl_speed = statistics.median(h["samples_per_s"] for h in result.history) if result.history else 0.0
    step_seconds = statistics.median(h["step_seconds"] for h in result.history) if result.history else 0.0
    first_eval, last_eval = result.evaluations[0], result.evaluations[-1]
    lines = [
        f"rl_gain: on-policy RL of the tiny restorer, update {config.policy_update} ("
        + (
            "the reward's gradient through the last denoising step, KL to reference"
            if config.policy_update == "reward_backprop"
            else "DDPO clipped ratio, GRPO group advantages, KL to reference"
        )
        + ")",
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores (shared), torch {torch.__version__},"
        f" {torch.get_num_threads()} threads; run {'--quick (sizes too small to mean anything)' if args.quick else 'full'}",
        f"supervised restorer: {restorer_note}",
        f"reward model: {reward_info['judgments']} simulated judgments (reliable oracle, {args.judgments_per_pair} per"
        f" pair) on {reward_info['candidates_per_input']} candidates of {reward_info['train_inputs']} inputs (stochastic"
        f" samples, {args.edited_share:.0%} of them replaced by sharpened/softened, noisier edits);"
        f" held-out pair accuracy vs noise-free oracle {reward_info['held_out_pair_accuracy']:.3f}"
        f" ({reward_info['held_out_pairs']} pairs); candidates {reward_info['candidate_seconds']:.0f} s,"
        f" fit {reward_info['fit_seconds']:.0f} s",
        "RL config: "
        + json.dumps({k: v for k, v in config.to_dict().items() if k not in ("version",)}, sort_keys=True),
        f"RL budget: {result.rollouts} rollouts ({result.steps} steps x {config.samples_per_step} trajectories x"
        f" {config.rollout_steps} denoising steps) in {result.seconds / 60:.1f} min; stop: {result.stop_reason}"
        f" ({result.message})",
        f"RL speed: {rl_speed:.2f} trajectories/s end to end (sampling, reward, updates), {rollout_speed:.2f} samples/s"
        f" while sampling, {step_seconds:.1f} s per RL step (medians)",
        f"guard (val inputs, learned reward / held-out {last_eval.get('eval/held_out') is not None and 'oracle -lpips_randtrunk'}):"
        f" step 0 {first_eval['eval/learned_reward']:.4f} / {first_eval.get('eval/held_out', float('nan')):.4f},"
        f" step {int(last_eval['step'])} {last_eval['eval/learned_reward']:.4f} / {last_eval.get('eval/held_out', float('nan')):.4f}"
        f" ({sizes.guard_inputs} val inputs)",
        "policy handed back: "
        + (
            f"step {result.selected_step} of {result.steps} (--keep-best: best held-out win rate against the"
            " supervised restorer on the guard's val inputs; the test faces play no part)"
            if result.selected_step is not None
            else f"step {result.rolled_back_to_step if result.rolled_back_to_step is not None else result.steps}"
        ),
        f"held-out test inputs: {sizes.test_inputs} faces x {sizes.eval_seeds} seeds (synthetic test split, gfpgan preset)",
        "",
    ]
    header = f"{'sampler':<34} {'model':<11} {'PSNR dB':>8} {'lpips_randtrunk':>16} {'learned r':>10} {'entropy':>9} {'win vs sup':>11}"
    lines.append(header)
    for label, figures in tables.items():
        for name, tag in (("supervised", "sup"), ("RL-tuned", "rl")):
            win = f"{figures['win_rate']:.3f}" if tag == "rl" else ""
            lines.append(
                f"{label:<34} {name:<11} {figures[f'{tag}_psnr']:>8.2f} {figures[f'{tag}_lpips_randtrunk']:>16.4f}"
                f" {figures[f'{tag}_reward']:>10.4f} {figures[f'{tag}_entropy']:>9.4f} {win:>11}"
            )
        lines.append(f"{'':<34} sampling {speeds[label]:.2f} images/s")
    lines.append("")
    for label, figures in tables.items():
        psnr_change = figures["rl_psnr"] - figures["sup_psnr"]
        entropy_change = figures["rl_entropy"] / max(figures["sup_entropy"], 1e-12) - 1
        lines.append(
            f"{label}: win rate {figures['win_rate']:.1%} (target >= 65%: {verdict(figures['win_rate'] >= 0.65)}),"
            f" PSNR change {psnr_change:+.2f} dB (limit -0.5 dB: {verdict(psnr_change >= -0.5)}),"
            f" learned reward gain {figures['rl_reward'] - figures['sup_reward']:+.4f},"
            f" solution entropy {entropy_change:+.1%} (target <= -30%: {verdict(entropy_change <= -0.30)})"
        )
        lines.append(
            f"  the perceptual reward term ({term_distance.name}) picks the oracle's choice in"
            f" {figures['term_oracle_agreement']:.1%} of these supervised/RL pairs"
        )
    lines.append("")
    lines.append(
        "training curve (guard evaluations on val inputs: held-out = oracle -lpips_randtrunk, h-o win = its win"
        " rate against the supervised restorer, H ratio = solution entropy / the supervised restorer's; step"
        " metrics averaged since the previous evaluation):"
    )
    lines.append(
        f"{'step':>5} {'learned r':>10} {'held-out':>9} {'h-o win':>8} {'H ratio':>8} {'rollout r':>10} {'consist.':>9} {'r spread':>9} {'agree.':>9}"
        f" {'percept.':>9} {'KL':>8} {'clip frac':>9} {'approx KL old':>13}"
    )
    previous = 0
    for evaluation in result.evaluations:
        step = int(evaluation["step"])
        window = [h for h in result.history if previous < h["step"] <= step]
        previous = step

        def mean_of(name: str, rows: list = window) -> float:
            values = [row[name] for row in rows if name in row]
            return statistics.fmean(values) if values else float("nan")

        lines.append(
            f"{step:>5} {evaluation['eval/learned_reward']:>10.4f} {evaluation.get('eval/held_out', float('nan')):>9.5f}"
            f" {evaluation.get('eval/held_out_win', float('nan')):>8.3f}"
            f" {evaluation.get('eval/entropy_ratio', float('nan')):>8.3f}"
            f" {mean_of('reward/learned'):>10.4f} {mean_of('reward/consistency'):>9.5f} {mean_of('reward/learned_spread'):>9.4f}"
            f" {mean_of('reward/agreement'):>9.2e} {mean_of('reward/perceptual'):>9.5f}"
            f" {mean_of('kl'):>8.4f} {mean_of('clip_fraction'):>9.3f} {mean_of('approx_kl_to_old'):>13.2e}"
        )
    lines.append(f"total wall time {(time.perf_counter() - total_started) / 60:.1f} min")
    report = "\n".join(lines) + "\n"
    print(report)
    name = args.results_name or ("rl_gain_quick" if args.quick else "rl_gain")
    results = REPO_ROOT / "benchmarks" / "results" / f"{name}.txt"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(report)


if __name__ == "__main__":
    main()
