"""Is the simulated annotators' oracle a copy of anything RL optimises? Correlations and preference agreements.

The ``identity_sharpness`` oracle (``reward_model.oracle_features``: dlib face-descriptor distance to the HQ +
band-pass sharpness mismatch + worst-window artifact) is meant to be seen by RL only through its judgments. This
benchmark scores one pool of candidates with it, with the old oracle (``lpips_randtrunk``: LPIPS heads on a random
AlexNet trunk of seed 0) and with every fixed term of RL that scores an image:

- ``lq_consistency``: ``rl_trainer.rewards.observation_consistency``, minus the MSE between the LQ and the
  candidate degraded again with the input's exact recorded degradation;
- ``perceptual_rl_1`` / ``perceptual_rl_5``: minus ``rl_trainer.train.perceptual_reward_distance(n)`` (LPIPS heads
  on random trunks of seeds 1..n; ``RLConfig`` defaults to 1 trunk, ``benchmarks/rl_gain.py`` uses 5);
- ``guard_held_out``: the hacking guard's held-out evaluator as ``rl_trainer.train`` builds it when every input
  has its HQ (``default_held_out`` over ``restorer.metrics.PerceptualDistance()``);
- ``agreement``: ``rl_trainer.rewards.group_agreement`` (minus the squared distance to the other samples of the
  same input), defined only among the restorer's samples of one input.

The KL term is a property of the policy against its reference, not of an image (and 0 for the supervised
restorer's own samples), so it has no per-candidate score here.

Candidates, per input (a real offline face degraded by a seeded ``gfpgan`` draw): the LQ (bicubic-upscaled back
to 64 px, as the restorer receives it), classical restorations (``restorer.classical``, sharpen 0 / 0.6 / 1.5),
the supervised restorer's stochastic samples (``/tmp/pref-artifacts/restorer_tiny``, the RL sampler: eta 1,
``--rollout-steps``) and edited versions of them (the recipe of ``rl_gain.edited_versions``: an unsharp mask of
strength in [-0.8, 1.5] and noise of std in [0, 0.03]), graded mixes ``a * HQ + (1 - a) * classical`` with noise,
and blurred / noisy / over-sharpened HQ. Without a restorer artifact the samples are left out (and the output
says so). The HQ itself only appears in the ordering table, never in a correlation. Faces: synthetic *test*
faces (DCGAN of gan-face-generate: research use only) and the faces of scikit-image's LFW subset (25x25 grey,
upsampled to 64).

Reported, with each score oriented so that higher is better: Pearson and Spearman over the pooled candidates,
the mean within-input Spearman (what a group-normalised RL advantage and a pairwise judgment see), and the share
of within-input pairs on which the term prefers the same candidate as the new oracle's noise-free preference;
the same against the old oracle; then the reliable annotator's agreement with its noise-free preference at the
default temperature, tie margin and both-bad threshold.

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/oracle_independence.py

Writes its report to ``benchmarks/results/oracle_independence.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from restorer.classical import classical_restore, unsharp_mask
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import DegradationParams, apply_degradation, instruction_text, sample_degradation
from restorer.metrics import PerceptualDistance
from reward_model.oracle import DEFAULTS_BY_DISTANCE, OracleAnnotator
from reward_model.oracle_features import IdentitySharpnessScore

RESOLUTION = 64
DEFAULT_RESTORER = Path("/tmp/pref-artifacts/restorer_tiny")
RESULTS = Path(__file__).resolve().parent / "results" / "oracle_independence.txt"
NEW, OLD = "oracle_identity_sharpness", "oracle_lpips_randtrunk"


@dataclass(frozen=True)
class BenchConfig:
    synthetic_inputs: int = 24
    lfw_inputs: int = 8
    samples_per_input: int = 4  # the RL group size
    rollout_steps: int = 8  # rl_gain's default
    restorer: str = str(DEFAULT_RESTORER)
    degradation_preset: str = "gfpgan"
    seed: int = 0


@dataclass
class Pool:
    """Every candidate as one row; ``scores[name][row]`` is higher-is-better."""

    input_of: list[str]
    kind_of: list[str]
    images: torch.Tensor  # [N, 3, R, R]
    hq: torch.Tensor  # [N, 3, R, R], each row's own original
    lq: torch.Tensor  # [N, 3, R, R], each row's own input
    degradations: list[DegradationParams]
    scores: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def lfw_faces(count: int) -> torch.Tensor:
    from skimage.data import lfw_subset  # scikit-image ships the images (a test extra of the project)

    grey = torch.tensor(lfw_subset()[:count], dtype=torch.float32)  # the first 100 of the subset are faces
    faces = grey[:, None].repeat(1, 3, 1, 1) * 2 - 1
    return F.interpolate(faces, size=RESOLUTION, mode="bicubic", align_corners=False).clamp(-1, 1)


def load_restorer(path: str):
    from restorer.artifacts import ArtifactError
    from restorer.model import Restorer

    try:
        return Restorer.from_pretrained(path), None
    except (ArtifactError, FileNotFoundError, OSError) as error:
        return None, str(error).splitlines()[0]


def edited(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """rl_gain's stand-ins for other model versions: unsharp mask of strength in [-0.8, 1.5], noise std [0, 0.03]."""
    strength = (torch.rand(len(images), generator=generator) * 2.3 - 0.8).view(-1, 1, 1, 1)
    noise_std = (torch.rand(len(images), generator=generator) * 0.03).view(-1, 1, 1, 1)
    noise = torch.randn(images.shape, generator=generator) * noise_std
    return (unsharp_mask(images, strength, sigma=1.0) + noise).clamp(-1, 1)


def blur(images: torch.Tensor, factor: float) -> torch.Tensor:
    small = F.interpolate(images, scale_factor=1 / factor, mode="bilinear", antialias=True)
    return F.interpolate(small, size=images.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


def build_pool(config: BenchConfig, restorer) -> Pool:
    from restorer import sampling

    generator = torch.Generator().manual_seed(config.seed)
    sources = [
        ("syn", synthetic_faces(split_seeds("test", config.synthetic_inputs), RESOLUTION)),
        ("lfw", lfw_faces(config.lfw_inputs)),
    ]
    rows: list[tuple[str, str, torch.Tensor, torch.Tensor, torch.Tensor, DegradationParams]] = []
    for source, faces in sources:
        for index, hq in enumerate(faces):
            input_id = f"{source}{index}"
            params = sample_degradation(
                config.degradation_preset, seed=config.seed * 1_000_003 + len(rows), resolution=RESOLUTION
            )
            lq = apply_degradation(hq, params)
            batch_lq = lq[None]
            classical = {level: classical_restore(batch_lq, sharpen=level)[0] for level in (0.0, 0.6, 1.5)}
            candidates: dict[str, torch.Tensor] = {"hq": hq, "lq_bicubic": lq}
            candidates.update({f"classical_s{level}": image for level, image in classical.items()})
            if restorer is not None:
                k = config.samples_per_input
                with torch.no_grad():
                    out = sampling.sample(
                        restorer,
                        batch_lq.repeat(k, 1, 1, 1),
                        [instruction_text(params)] * k,
                        num_steps=config.rollout_steps,
                        eta=1.0,
                        seeds=[config.seed * 7919 + 100 * len(rows) + c for c in range(k)],
                    )
                samples = out.images.clamp(-1, 1)
                candidates.update({f"restorer_sample{c}": image for c, image in enumerate(samples)})
                candidates.update(
                    {f"restorer_edited{c}": image for c, image in enumerate(edited(samples, generator))}
                )
            alpha = float(torch.rand((), generator=generator))
            mix = alpha * hq + (1 - alpha) * classical[0.6]
            mix_noise = 0.04 * float(torch.rand((), generator=generator))
            candidates["hq_classical_mix"] = (
                mix + mix_noise * torch.randn(mix.shape, generator=generator)
            ).clamp(-1, 1)
            candidates["hq_blurred"] = blur(hq[None], 1.0 + 2.0 * float(torch.rand((), generator=generator)))[
                0
            ]
            noise_std = 0.02 + 0.08 * float(torch.rand((), generator=generator))
            candidates["hq_noisy"] = (hq + noise_std * torch.randn(hq.shape, generator=generator)).clamp(
                -1, 1
            )
            candidates["hq_oversharpened"] = unsharp_mask(
                hq[None], 1.0 + 2.0 * float(torch.rand((), generator=generator))
            )[0].clamp(-1, 1)
            for kind, image in candidates.items():
                rows.append((input_id, kind, image, hq, lq, params))
    return Pool(
        input_of=[r[0] for r in rows],
        kind_of=[r[1] for r in rows],
        images=torch.stack([r[2] for r in rows]),
        hq=torch.stack([r[3] for r in rows]),
        lq=torch.stack([r[4] for r in rows]),
        degradations=[r[5] for r in rows],
    )


def batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x, y, size: int = 128) -> np.ndarray:
    with torch.no_grad():
        return torch.cat(
            [fn(x[i : i + size], y[i : i + size]).detach().float().cpu() for i in range(0, len(x), size)]
        ).numpy()


def score_pool(pool: Pool, group_size: int, timings: dict[str, float]) -> list[str]:
    """Fills ``pool.scores``; returns notes on what could not be computed."""
    from rl_trainer.config import RLConfig
    from rl_trainer.manifest import RLInputs
    from rl_trainer.rewards import group_agreement, observation_consistency
    from rl_trainer.train import default_held_out, perceptual_reward_distance

    notes = []
    started = time.perf_counter()
    new_oracle = IdentitySharpnessScore()
    parts = new_oracle.components(pool.images, pool.hq)
    pool.scores[NEW] = -new_oracle.combine(parts).numpy()
    for name, values in parts.items():
        pool.scores[f"  new: {name}"] = -values.numpy()
    timings["identity_sharpness"] = time.perf_counter() - started

    started = time.perf_counter()
    pool.scores[OLD] = -batched(PerceptualDistance(trunk_seed=0), pool.images, pool.hq)
    config = RLConfig()
    pool.scores["lq_consistency"] = observation_consistency(
        pool.lq, pool.images, pool.degradations, fallback_factor=config.fallback_downsample
    ).numpy()
    for trunks in (1, 5):
        pool.scores[f"perceptual_rl_{trunks}"] = -batched(
            perceptual_reward_distance(trunks), pool.images, pool.hq
        )
    # the guard as rl_trainer.train wires it: default_held_out over the default PerceptualDistance
    distance = PerceptualDistance()
    inputs = RLInputs(
        ids=[str(i) for i in range(len(pool.images))],
        lq=pool.lq,
        hq=pool.hq,
        has_hq=torch.ones(len(pool.images), dtype=torch.bool),
        degradations=list(pool.degradations),
        instructions=[""] * len(pool.images),
    )
    guard = default_held_out(inputs, config, distance, distance.name)
    with torch.no_grad():
        pool.scores["guard_held_out"] = guard(pool.lq, pool.images, pool.hq, pool.degradations).numpy()
    notes.append(f"guard_held_out is rl_trainer's {guard.name}")
    # agreement: among the restorer's own samples of one input only
    sample_rows = [i for i, kind in enumerate(pool.kind_of) if kind.startswith("restorer_sample")]
    agreement = np.full(len(pool.images), np.nan)
    if sample_rows:  # build_pool appends each input's samples together, so consecutive groups are inputs
        agreement[sample_rows] = group_agreement(pool.images[sample_rows], group_size).numpy()
    else:
        notes.append("agreement: no restorer samples, not computed")
    pool.scores["agreement"] = agreement
    timings["other terms"] = time.perf_counter() - started
    return notes


def within_input_pairs(pool: Pool, rows: list[int]) -> list[tuple[int, int]]:
    by_input: dict[str, list[int]] = {}
    for row in rows:
        by_input.setdefault(pool.input_of[row], []).append(row)
    return [pair for members in by_input.values() for pair in itertools.combinations(members, 2)]


def compare(pool: Pool, rows: list[int], term: str, reference: str) -> dict[str, float]:
    x, y = pool.scores[term][rows], pool.scores[reference][rows]
    keep = ~np.isnan(x)
    rows = [r for r, k in zip(rows, keep) if k]
    x, y = x[keep], y[keep]
    by_input: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        by_input.setdefault(pool.input_of[row], []).append(position)
    within = [stats.spearmanr(x[p], y[p])[0] for p in by_input.values() if len(p) >= 3]
    pairs = within_input_pairs(pool, rows)
    a = pool.scores[term]
    b = pool.scores[reference]
    decided = [(i, j) for i, j in pairs if a[i] != a[j] and b[i] != b[j]]
    same = sum((a[i] > a[j]) == (b[i] > b[j]) for i, j in decided)
    return {
        "n": len(rows),
        "pearson": float(stats.pearsonr(x, y)[0]),
        "spearman": float(stats.spearmanr(x, y)[0]),
        "within_spearman": float(np.nanmean(within)) if within else math.nan,
        "pair_agreement": same / len(decided) if decided else math.nan,
        "pairs": len(decided),
    }


def table(pool: Pool, rows: list[int], title: str) -> list[str]:
    def columns(result: dict[str, float] | None) -> str:
        if result is None:
            return f"{'(itself)':>38s}"
        return (
            f"{result['pearson']:7.3f} {result['spearman']:8.3f} {result['within_spearman']:7.3f}"
            f" {result['pair_agreement']:11.3f}"
        )

    heading = f"{'pearson':>7s} {'spearman':>8s} {'within':>7s} {'pairs agree':>11s}"
    lines = [
        title,
        f"  {'term (higher = better)':26s} {'n':>4s} | vs new oracle: {heading} | vs old oracle: {heading}",
    ]
    for term in pool.scores:
        if term == NEW or np.isnan(pool.scores[term][rows]).all():
            continue
        new = compare(pool, rows, term, NEW)
        old = compare(pool, rows, term, OLD) if term != OLD else None
        lines.append(
            f"  {term:26s} {new['n']:4d} |                {columns(new)} |                {columns(old)}"
        )
    return lines


def annotator_calibration(pool: Pool, rows: list[int], label: str) -> str:
    """A reliable annotator at the defaults: agreement with its noise-free preference, ties, both-bad shares."""
    temperature, tie_margin, both_bad = DEFAULTS_BY_DISTANCE["identity_sharpness"]
    badness = -pool.scores[NEW]
    pairs = within_input_pairs(pool, rows)
    annotator = OracleAnnotator(
        "reliable",
        temperature=temperature,
        tie_margin=tie_margin,
        both_bad_threshold=both_bad,
        seed=0,
        distance=lambda x, y: torch.zeros(len(x)),  # judge_distances only: the scores are computed above
    )
    counts = {"agree": 0, "strict": 0, "tie": 0, "both_bad": 0}
    for i, j in pairs:
        outcome = annotator.judge_distances(float(badness[i]), float(badness[j]))
        if outcome in ("tie", "both_bad"):
            counts[outcome] += 1
            continue
        counts["strict"] += 1
        counts["agree"] += int((outcome == "a") == (badness[i] < badness[j]))
    deltas = [abs(badness[i] - badness[j]) for i, j in pairs]
    agreement = f"{counts['agree'] / counts['strict']:.1%}" if counts["strict"] else "-"
    careful_margin = float(np.percentile(deltas, 2))
    return (
        f"  {label}: {len(pairs)} within-input pairs, median |score difference| {np.median(deltas):.4f};"
        f" reliable annotator (T {temperature}, tie margin {tie_margin}, both-bad {both_bad}): agrees with"
        f" the noise-free preference on {agreement} of its {counts['strict']} strict answers,"
        f" ties {counts['tie'] / len(pairs):.1%}, both bad {counts['both_bad'] / len(pairs):.1%};"
        f" a careful annotator for these pairs: tie margin {careful_margin:.2g} (2 % ties), temperature"
        f" {temperature_for_agreement([d for d in deltas if d > careful_margin], 0.88):.2g} (88 % of the rest)"
    )


def temperature_for_agreement(deltas: list[float], target: float) -> float:
    """The Bradley-Terry temperature at which the mean of sigmoid(|d| / T) over the pairs is ``target``."""
    values = np.asarray([d for d in deltas if d > 0])
    low, high = 1e-9, 10.0
    for _ in range(100):  # bisection in log space: the mean agreement falls as T grows
        middle = math.sqrt(low * high)
        if float(np.mean(1.0 / (1.0 + np.exp(-values / middle)))) > target:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def ordering(pool: Pool) -> list[str]:
    groups: dict[str, list[int]] = {}
    for row, kind in enumerate(pool.kind_of):
        family = "".join(ch for ch in kind if not ch.isdigit()) if kind.startswith("restorer") else kind
        groups.setdefault(family, []).append(row)
    columns = [
        NEW,
        "  new: identity",
        "  new: sharpness",
        "  new: artifact",
        OLD,
        "lq_consistency",
        "perceptual_rl_5",
    ]
    header = [
        "identity_sharpness",
        "identity",
        "sharpness",
        "artifact",
        "old lpips_rt",
        "lq_consist.",
        "percept_rl5",
    ]
    lines = [
        "mean score by candidate kind (badness: lower is better; sorted by the new oracle)",
        f"  {'kind':20s} {'n':>4s} " + " ".join(f"{h:>18s}" for h in header),
    ]
    for family, rows in sorted(groups.items(), key=lambda item: -float(np.mean(pool.scores[NEW][item[1]]))):
        values = [0.0 - float(np.mean(pool.scores[c][rows])) for c in columns]  # 0.0 -: no "-0" for the HQ
        lines.append(f"  {family:20s} {len(rows):4d} " + " ".join(f"{v:18.4g}" for v in values))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = BenchConfig()
    for field in dataclasses.fields(BenchConfig):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=type(getattr(defaults, field.name)),
            default=getattr(defaults, field.name),
        )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    config = BenchConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchConfig)})
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.perf_counter()
    restorer, restorer_error = load_restorer(config.restorer)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    pool = build_pool(config, restorer)
    timings["candidates (incl. restorer sampling)"] = time.perf_counter() - t
    notes = score_pool(pool, config.samples_per_input, timings)

    not_hq = [i for i, kind in enumerate(pool.kind_of) if kind != "hq"]
    policy = [i for i, kind in enumerate(pool.kind_of) if kind.startswith("restorer")]
    samples_only = [i for i, kind in enumerate(pool.kind_of) if kind.startswith("restorer_sample")]
    lines = [
        "oracle_independence: is the identity_sharpness oracle a copy of a fixed RL term?",
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__},"
        f" {torch.get_num_threads()} threads, python {platform.python_version()}",
        f"config: {dataclasses.asdict(config)}",
        "restorer: "
        + ("loaded" if restorer is not None else f"none ({restorer_error}): no restorer samples"),
        f"inputs: {config.synthetic_inputs} synthetic test faces + {config.lfw_inputs} LFW faces, each degraded by a"
        f" seeded {config.degradation_preset} draw; {len(pool.images)} candidates ({len(not_hq)} without the HQs)",
        "new oracle = identity + 0.35 sharpness + 2.5 artifact (reward_model.oracle_features; the dlib descriptor"
        " distance under the HQ's alignment, band-energy log-ratio in nats, worst-5% window band-pass RMS);"
        " old oracle = lpips_randtrunk (seed-0 random AlexNet trunk). 'within': mean Spearman over the candidates"
        " of one input; 'pairs agree': share of within-input pairs on which the term prefers what the new"
        " oracle's noise-free preference does (ties left out).",
        *(f"note: {n}" for n in notes),
        "",
        *ordering(pool),
        "",
        *table(pool, not_hq, "all candidates except the HQs"),
    ]
    if policy:
        lines += [
            "",
            *table(pool, policy, "the policy's distribution: restorer samples and their edited versions"),
        ]
        lines += [
            "",
            *table(pool, samples_only, "the restorer's raw samples only (what RL's groups hold at step 0)"),
        ]
    lines += ["", "annotator calibration at the identity_sharpness defaults:"]
    lines.append(annotator_calibration(pool, not_hq, "all candidates except the HQs"))
    if policy:
        lines.append(annotator_calibration(pool, policy, "restorer samples and their edited versions"))
        lines.append(annotator_calibration(pool, samples_only, "raw restorer samples"))
    timings["total"] = time.perf_counter() - started
    lines += ["", "timings: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items())]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
