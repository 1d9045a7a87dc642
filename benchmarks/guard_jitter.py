"""How much does the RL guard's observation PSNR of one face move under noise nobody can see?

The loop's RL guard stops a run where one of its held-out faces loses `fidelity_face_budget_db` (1 dB in the demo
policy) of observation PSNR: the restoration degraded again by the input's own recorded degradation (blur,
resize, noise, JPEG) against the LQ. This benchmark takes a run folder kept by `benchmarks/loop.py --keep` and one
RL candidate of it, rebuilds that run's guard faces (its inputs manifest and `eval_fraction`), restores them with
the candidate's parent at the guard's seeds and adds Gaussian pixel noise of a few sizes, all below one 8-bit
level but the last: a measure of fidelity should fall little and steadily as the noise grows.

    python benchmarks/guard_jitter.py FOLDER VERSION [--sigmas 1e-5,1e-4,1e-3,4e-3]
        [--evaluators fidelity,fidelity_linear]

(VERSION: the restorer version number of the candidate, e.g. 3 for demo@v3; images in [-1, 1], so one 8-bit
level is 2 / 255 = 0.0078.) Prints, for each fidelity evaluator (`RLConfig.held_out_evaluator`: "fidelity"
through the exact degradation, "fidelity_linear" through its blur and resizes only), each guard face's
observation PSNR, its drop at every noise size, and its drop in the candidate's own images (what RL changed).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="a run folder kept by benchmarks/loop.py --keep")
    parser.add_argument("version", type=int, help="an RL candidate's restorer version number")
    parser.add_argument("--sigmas", default="1e-5,1e-4,1e-3,4e-3")
    parser.add_argument("--evaluators", default="fidelity,fidelity_linear")
    args = parser.parse_args()
    sigmas = [float(value) for value in args.sigmas.split(",")]
    evaluators = args.evaluators.split(",")

    import dataclasses

    import loop
    import torch

    from restorer.metrics import PerceptualDistance
    from restorer.model import Restorer
    from reward_model.model import RewardModel
    from rl_trainer.config import RLConfig
    from rl_trainer.guard import default_held_out
    from rl_trainer.manifest import load_inputs, read_manifest, split_entries
    from rl_trainer.rewards import learned_reward
    from rl_trainer.trainer import RLTrainer

    torch.set_num_threads(2)
    rows = loop.query(
        args.folder / "db.sqlite3",
        "SELECT artifact_key FROM registry_modelversion WHERE kind = 'restorer' AND version = ?",
        args.version,
    )
    if not rows:
        print(f"no restorer version {args.version} in {args.folder}")
        return 1
    metrics = json.loads((args.folder / "storage" / rows[0][0] / "metrics.json").read_text())
    rl = metrics.get("rl")
    if rl is None:
        print(f"restorer version {args.version} was not made by RL")
        return 1
    config = RLConfig.from_dict(rl["rl_config"])
    policy = Restorer.from_pretrained(Path(rl["parent_restorer"]), device="cpu")
    reward_model = (
        RewardModel.from_pretrained(Path(rl["reward_model"]), device="cpu").eval().requires_grad_(False)
    )
    _, eval_entries = split_entries(read_manifest(Path(rl["inputs_manifest"])), config.eval_fraction)
    eval_inputs = load_inputs(eval_entries, int(policy.config.resolution))
    distance = PerceptualDistance(device="cpu")
    held_out = default_held_out(eval_inputs, config, distance, "lpips")
    candidate = Restorer.from_pretrained(args.folder / "storage" / rows[0][0], device="cpu")
    trainer = RLTrainer(
        config,
        policy,
        copy.deepcopy(policy),
        learned_reward(reward_model),
        train_inputs=eval_inputs,
        eval_inputs=eval_inputs,
        held_out=held_out,
    )
    inputs = trainer.eval_inputs
    seeds = trainer._evaluation_seeds(0)
    images = trainer.generate(inputs, seeds)
    candidate_images = trainer.generate(inputs, seeds, module=candidate.eval())
    print(
        f"guard jitter: the observation PSNR of the guard faces of restorer v{args.version}'s RL run (guard:"
        f" {held_out.name}), restored by its parent at the guard's seeds (eta {config.eval_eta:g},"
        f" {config.eval_steps} steps), plus Gaussian pixel noise; and restored by v{args.version} itself"
    )
    print(f"machine: {platform.machine()} CPU; folder {args.folder}; {len(inputs.ids)} guard faces")
    print("  face                 " + "".join(f"{name:>9}" for name in inputs.ids))
    print(
        "  JPEG quality         "
        + "".join(f"{getattr(d, 'jpeg_quality', '-')!s:>9}" for d in inputs.degradations)
    )
    for name in evaluators:
        evaluator = default_held_out(
            eval_inputs, dataclasses.replace(config, held_out_evaluator=name), distance, "lpips"
        )

        def score(x: torch.Tensor) -> torch.Tensor:
            return evaluator(inputs.lq, x, inputs.hq, inputs.degradations).float()  # noqa: B023

        base = score(images)
        print(f"  {evaluator.name}")
        print("    dB                 " + "".join(f"{float(value):9.2f}" for value in base))
        generator = torch.Generator().manual_seed(0)
        for sigma in sigmas:
            noisy = (images + sigma * torch.randn(images.shape, generator=generator)).clamp(-1, 1)
            drop = base - score(noisy)
            print(f"    drop, sigma {sigma:<6g}" + "".join(f"{float(value):9.2f}" for value in drop))
        drop = base - score(candidate_images)
        print(f"    drop, v{args.version:<13}" + "".join(f"{float(value):9.2f}" for value in drop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
