"""Restorer quality on held-out synthetic faces: bicubic vs. no-integrator ablation vs. full restorer.

For each seed, trains the ``tiny`` config twice on synthetic faces: the full restorer for half of the
wall-clock budget, then the no-integrator ablation for the same number of steps. Under one seed the two runs
are paired: the same UNet init (``restorer.model`` builds the UNet first), the same batches, timesteps and
noise (``restorer.train``), so the conditioning is the only difference; the ablation's cheaper steps are not
turned into extra steps. Then evaluates both and the bicubic baseline on held-out faces of the test split
degraded with the ``gfpgan`` preset: PSNR, SSIM, the perceptual distance (``lpips_randtrunk`` offline), and
solution entropy; plus training images/s and sampling images/s (20 DDIM steps). With several ``--seeds``
the summary gives the full-minus-ablation difference per seed and its mean: unpaired, one pair's difference
was within the seed-to-seed spread of either model (about 0.3 dB at ~1,700 steps).

Run from the repo root, under the shared lock on the team's machine::

    flock /tmp/pref-heavy.lock ~/.venvs/pref-restore/bin/python benchmarks/restorer_quality.py

The trained artifacts are left in ``--artifacts`` (outside git) for reuse; ``--reuse`` skips training when
they are already there. Nothing here asserts on time: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restorer.evaluate import evaluate, synthetic_evaluation_set  # noqa: E402
from restorer.model import Restorer  # noqa: E402
from restorer.train import named_config, train  # noqa: E402


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train-minutes",
        type=float,
        default=28.0,
        help="per seed: the full model trains for half of it (14 min); the ablation for as many steps",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (one full/ablation pair each)"
    )
    parser.add_argument("--artifacts", default="/tmp/pref-artifacts", help="where the trained models go")
    parser.add_argument("--count", type=int, default=256, help="held-out inputs")
    parser.add_argument(
        "--train-faces", type=int, help="synthetic training faces (default: the tiny config's)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is faster on shared cores)"
    )
    parser.add_argument("--entropy-inputs", type=int, default=16)
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate existing artifacts instead of retraining"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    benchmark_started = time.perf_counter()

    base = named_config("tiny")
    if args.train_faces:
        base = dataclasses.replace(base, train_faces=args.train_faces)
    minutes_each = args.train_minutes / 2
    print("# restorer quality benchmark")
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, no GPU"
        if not torch.cuda.is_available()
        else "machine: CUDA GPU"
    )
    print(
        f"training: config 'tiny' ({base.model.resolution}x{base.model.resolution}, UNet channels "
        f"{base.model.block_out_channels}, batch {base.batch_size}, preset {base.preset}), full model "
        f"{minutes_each:.1f} min wall time, ablation the same steps, synthetic train split ({base.train_faces} faces)"
    )
    data = synthetic_evaluation_set(args.count, preset="gfpgan", resolution=base.model.resolution)
    differences: dict[int, dict[str, float]] = {}
    beats_bicubic_perceptually = 0
    for seed in args.seeds:
        suffix = "" if seed == 0 else f"_seed{seed}"
        runs = {
            "full": (Path(args.artifacts) / f"restorer_tiny{suffix}", base.model.replace(seed=seed)),
            "no_integrator": (
                Path(args.artifacts) / f"restorer_tiny_no_integrator{suffix}",
                base.model.replace(seed=seed, use_integrator=False),
            ),
        }
        print(f"\n## seed {seed}")
        train_rates: dict[str, float] = {}
        full_steps: int | None = None
        for name, (out_dir, model_config) in runs.items():
            if args.reuse and (out_dir / "model.safetensors").is_file():
                metrics = Restorer.read_metrics(out_dir)
                print(f"  {name}: reused {out_dir} ({metrics.get('steps', 0):.0f} steps)")
            else:
                shutil.rmtree(out_dir, ignore_errors=True)
                if full_steps is None:  # the full model: a wall-clock budget
                    budget = {"max_minutes": minutes_each, "max_steps": 100_000}
                else:  # the ablation: the full model's step count (its LR schedule then ends where that one did)
                    budget = {"max_minutes": None, "max_steps": full_steps}
                config = dataclasses.replace(base, model=model_config, seed=seed, **budget)
                started = time.perf_counter()
                result = train(config, out_dir=out_dir, progress=False)
                metrics = result.metrics
                print(
                    f"  {name}: {result.steps} steps in {(time.perf_counter() - started) / 60:.1f} min, "
                    f"final loss {result.final_loss:.4f}, val PSNR {metrics['val_psnr']:.2f} dB "
                    f"(bicubic {metrics['val_psnr_bicubic']:.2f}) -> {out_dir}"
                )
            full_steps = full_steps or int(metrics.get("steps", 0))
            train_rates[name] = float(metrics.get("train_images_per_second", float("nan")))

        evaluation_started = time.perf_counter()
        restorers = {name: Restorer.from_pretrained(out_dir) for name, (out_dir, _) in runs.items()}
        table = evaluate(restorers, data, num_steps=20, entropy_seeds=8, entropy_inputs=args.entropy_inputs)
        print()
        print(table.format())
        print(
            f"evaluation wall time {(time.perf_counter() - evaluation_started) / 60:.1f} min, "
            f"benchmark so far {(time.perf_counter() - benchmark_started) / 60:.1f} min"
        )
        for name, rate in train_rates.items():
            print(f"training images/s ({name}): {rate:.1f}")
        rows = {row.method: row.metrics for row in table.rows}
        lp = table.perceptual_name
        full, ablation, bicubic = rows["full"], rows["no_integrator"], rows["bicubic"]
        differences[seed] = {
            "psnr_vs_bicubic": full["psnr"] - bicubic["psnr"],
            "psnr_vs_ablation": full["psnr"] - ablation["psnr"],
            "perceptual_vs_ablation": full[lp] - ablation[lp],
        }
        beats_bicubic_perceptually += full[lp] < bicubic[lp]
        print("targets (this seed):")
        print(
            f"  full beats bicubic on {lp}: {verdict(full[lp] < bicubic[lp])} "
            f"({full[lp]:.4f} vs {bicubic[lp]:.4f})"
        )
        print(
            f"  full at least matches bicubic PSNR: {verdict(full['psnr'] >= bicubic['psnr'])} "
            f"({full['psnr'] - bicubic['psnr']:+.2f} dB; +1 dB is the mark to aim at)"
        )
        print(
            f"  full beats the no-integrator ablation: "
            f"{verdict(full['psnr'] > ablation['psnr'] and full[lp] < ablation[lp])} "
            f"(PSNR {full['psnr'] - ablation['psnr']:+.2f} dB, {lp} {full[lp] - ablation[lp]:+.4f}, lower is better)"
        )

    if len(differences) > 1:
        print("\n## over seeds (full minus ablation, paired per seed)")
        for seed, diff in differences.items():
            print(
                f"  seed {seed}: PSNR vs bicubic {diff['psnr_vs_bicubic']:+.2f} dB, vs ablation "
                f"{diff['psnr_vs_ablation']:+.3f} dB, {lp} vs ablation {diff['perceptual_vs_ablation']:+.5f}"
            )
        mean = {
            key: statistics.fmean(d[key] for d in differences.values())
            for key in next(iter(differences.values()))
        }
        wins = sum(d["psnr_vs_ablation"] > 0 for d in differences.values())
        print(
            f"  mean: PSNR vs bicubic {mean['psnr_vs_bicubic']:+.2f} dB, vs ablation {mean['psnr_vs_ablation']:+.3f} dB "
            f"(full ahead on {wins} of {len(differences)} seeds), {lp} vs ablation {mean['perceptual_vs_ablation']:+.5f}; "
            f"full beats bicubic on {lp} on {beats_bicubic_perceptually} of {len(differences)} seeds"
        )
    print(f"whole benchmark {(time.perf_counter() - benchmark_started) / 60:.1f} min")


if __name__ == "__main__":
    main()
