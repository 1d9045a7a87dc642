"""Would the RL's ranked edits help the faces they are applied to? A probe of `RLConfig.ranked_edit_confidence`.

The loop's RL (preset `tiny_preference`, `policy_update="reward_ranked"`) averages each input's samples, proposes
unsharp masks of that consensus, ranks the proposals and the consensus itself by the learned reward (pessimistic
ensemble mean) plus observation consistency, and pulls the policy towards the winner. This benchmark takes a run
folder kept by `benchmarks/loop.py --keep` and, for every reward model the loop put in use and the restorer that
was in use when it was trained (the pair one RL run started from), does that ranking on faces the loop never saw
(rl_gain's 64 synthetic test faces) and asks the simulated annotators' oracle, without its noise, whether each
choice is better than leaving the consensus unedited. It does so for several confidences z: an edit must beat
the unedited image by z standard deviations of the members' gains (times the learned reward's weight).

    python benchmarks/edit_confidence.py FOLDER [--faces 64] [--seeds 4] [--confidences 0,0.5,1,2,4]

Per pair and z: the share of faces edited; the share of the oracle's "leave it" faces (where no proposal beats
the consensus) that the rule leaves; the oracle win of the chosen image against the unedited one (ties half) and
the mean change of the oracle's badness (lower is better). Costs no RL: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4, help="samples averaged into each face's consensus")
    parser.add_argument("--confidences", default="0,0.5,1,2,4")
    args = parser.parse_args()
    confidences = [float(value) for value in args.confidences.split(",")]

    import loop
    import rl_gain
    import torch

    from restorer.classical import unsharp_mask
    from restorer.model import Restorer
    from reward_model.model import RewardModel
    from reward_model.oracle import distance_by_name, distance_name
    from rl_trainer.config import RLConfig
    from rl_trainer.rewards import CompositeReward, learned_reward, members_gain_spread

    torch.set_num_threads(2)
    db = args.folder / "db.sqlite3"
    policy = loop.query(db, "SELECT rl_preset, rl_overrides, num_steps FROM loop_looppolicy")[0]

    config = RLConfig.preset(policy["rl_preset"], **json.loads(policy["rl_overrides"] or "{}"))
    num_steps = int(policy["num_steps"])
    versions = {
        int(row["id"]): row
        for row in loop.query(db, "SELECT id, kind, name, version, artifact_key FROM registry_modelversion")
    }
    rewards = [row for row in versions.values() if row["kind"] == "reward"]
    rewards.sort(key=lambda row: int(row["id"]))
    rounds = loop.in_use_by_round(db)  # (round, restorer in use at its end); round 0: the first restorer
    pairs = [(rounds[i][1], int(reward["id"])) for i, reward in enumerate(rewards) if i < len(rounds)]

    distance = distance_by_name(loop.run_oracle(args.folder))
    test = rl_gain.make_faces("test", args.faces)
    strengths = (0.0,) + tuple(s for s in config.ranked_edit_strengths if s != 0.0)
    print(
        "edit confidence probe: the RL's ranking of unsharp-mask proposals of each face's consensus, judged by the"
        " simulated annotators' oracle without its noise"
    )
    print(
        f"machine: {platform.machine()} CPU; folder {args.folder}; {args.faces} test faces (rl_gain's test split);"
        f" consensus of {args.seeds} samples at eta {config.eta:g}, {num_steps} steps; proposals {strengths}"
        f" (sigma {config.ranked_edit_sigma:g}); ranked by {config.learned_reward_weight:g} x (members' mean - "
        f"{config.learned_reward_pessimism:g} std) + {config.consistency_weight:g} x consistency; oracle"
        f" {distance_name(distance)}"
    )

    def name(version_id: int) -> str:
        return f"{versions[version_id]['name']}@v{versions[version_id]['version']}"

    for restorer_id, reward_id in pairs:
        folder = args.folder / "storage"
        restorer = Restorer.from_pretrained(
            folder / versions[restorer_id]["artifact_key"].rstrip("/"), device="cpu"
        ).eval()
        reward_model = RewardModel.from_pretrained(
            folder / versions[reward_id]["artifact_key"].rstrip("/"), device="cpu"
        ).eval()
        reward_fn = learned_reward(reward_model, pessimism=config.learned_reward_pessimism)
        selection = CompositeReward(
            reward_fn,
            learned_weight=config.learned_reward_weight,
            consistency_weight=config.consistency_weight,
            fallback_downsample=config.fallback_downsample,
        )
        samples, _ = rl_gain.evaluate(restorer, test, num_steps=num_steps, eta=config.eta, seeds=args.seeds)
        consensus = samples.mean(dim=0)
        count, faces = len(strengths), len(test.ids)
        candidates = torch.stack(
            [
                consensus
                if s == 0.0
                else unsharp_mask(consensus, s, sigma=config.ranked_edit_sigma).clamp(-1, 1)
                for s in strengths
            ]
        )  # [K, N, ...]
        flat = candidates.transpose(0, 1).reshape(-1, *consensus.shape[1:])  # face-major
        repeat = [face for face in range(faces) for _ in range(count)]
        with torch.no_grad():
            scores = (
                selection(
                    test.lq[repeat],
                    flat,
                    hq=test.hq[repeat],
                    has_hq=torch.ones(len(repeat), dtype=torch.bool),
                    degradations=[test.params[face] for face in repeat],
                )
                .total.float()
                .view(faces, count)
            )
            members = reward_fn.members(test.lq[repeat], flat).float().view(faces, count, -1)
        spread = members_gain_spread(members)
        bad = rl_gain.badness(distance, flat, test.hq[repeat]).view(faces, count)
        leave = bad.argmin(dim=1) == 0  # no proposal beats the consensus for the oracle
        print(
            f"\n{name(restorer_id)} ranked by reward {name(reward_id)}: the oracle would leave {int(leave.sum())} of"
            f" {faces} faces unedited; its best proposal on the others: strength {float(torch.tensor(strengths)[bad.argmin(dim=1)][~leave].mean()):+.2f} on average"
        )
        print(
            "      z  edited  'leave' faces left  oracle win vs unedited  badness change  edits the oracle likes"
        )
        for z in confidences:
            chosen = (scores - z * config.learned_reward_weight * spread).argmax(dim=1)
            edited = chosen != 0
            picked = bad[torch.arange(faces), chosen]
            win = loop.win_share(picked, bad[:, 0])
            liked = (
                float((picked[edited] < bad[edited, 0]).float().mean())
                if bool(edited.any())
                else float("nan")
            )
            left = float((~edited[leave]).float().mean()) if bool(leave.any()) else float("nan")
            print(
                f"  {z:5.2f}  {float(edited.float().mean()):6.3f}  {left:18.3f}  {win:22.3f}"
                f"  {float((picked - bad[:, 0]).mean()):+14.5f}  {liked:22.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
