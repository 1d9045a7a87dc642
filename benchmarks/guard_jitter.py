"""How much does the RL guard's observation PSNR of one face move under noise nobody can see?

The loop's RL guard stops a run where one of its held-out faces loses `fidelity_face_budget_db` (1 dB in the demo
policy) of observation PSNR: the restoration degraded again by the input's own recorded degradation (blur,
resize, noise, JPEG) against the LQ. This benchmark takes a run folder kept by `benchmarks/loop.py --keep` and one
RL candidate of it, rebuilds that run's guard faces (its inputs manifest and `eval_fraction`), restores them with
the candidate's parent at the guard's seeds and adds Gaussian pixel noise of a few sizes, all below one 8-bit
level but the last: a measure of fidelity should fall little and steadily as the noise grows.

    python benchmarks/guard_jitter.py FOLDER VERSION [--sigmas 1e-5,1e-4,1e-3,4e-3]

(VERSION: the restorer version number of the candidate, e.g. 3 for demo@v3; images in [-1, 1], so one 8-bit
level is 2 / 255 = 0.0078.) Prints each guard face's observation PSNR, JPEG quality and drop at every noise size.
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
    args = parser.parse_args()
    sigmas = [float(value) for value in args.sigmas.split(",")]

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
    held_out = default_held_out(eval_inputs, config, PerceptualDistance(device="cpu"), "lpips")
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
    images = trainer.generate(inputs, trainer._evaluation_seeds(0))
    base = held_out(inputs.lq, images, inputs.hq, inputs.degradations).float()
    print(
        f"guard jitter: {held_out.name} of the guard faces of restorer v{args.version}'s RL run, restored by its"
        f" parent at the guard's seeds (eta {config.eval_eta:g}, {config.eval_steps} steps), plus Gaussian pixel noise"
    )
    print(f"machine: {platform.machine()} CPU; folder {args.folder}; {len(inputs.ids)} guard faces")
    print("  face             " + "".join(f"{name:>9}" for name in inputs.ids))
    print(
        "  JPEG quality     "
        + "".join(f"{getattr(d, 'jpeg_quality', '-')!s:>9}" for d in inputs.degradations)
    )
    print("  dB               " + "".join(f"{float(value):9.2f}" for value in base))
    generator = torch.Generator().manual_seed(0)
    for sigma in sigmas:
        noisy = (images + sigma * torch.randn(images.shape, generator=generator)).clamp(-1, 1)
        drop = base - held_out(inputs.lq, noisy, inputs.hq, inputs.degradations).float()
        print(f"  drop, sigma {sigma:<6g}" + "".join(f"{float(value):9.2f}" for value in drop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
