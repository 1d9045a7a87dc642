"""How well an RL run's fidelity guard foresees the evaluation that decides promotion, in a loop run kept by
`benchmarks/loop.py --keep`.

For every RL run of the loop: the observation PSNR change of its candidate against the restorer it started from
(rl_trainer.guard's "fidelity" evaluator, dB), read three ways, all with deterministic sampling at the policy's
steps:
- the guard's own reading: its held-out faces (the last `eval_fraction` of the run's inputs) at its one seed;
- the same faces at `--seeds` seeds (the guard's seed first), with a bootstrap 95 % interval over the faces;
- the evaluation job's reading on the project's held-out faces (its own seeds), from the database;
and per face the change averaged over the seeds, so that a reader sees whether the faces or the seeds move it, with
the parent's PSNR on that face and the candidate's observation error as a multiple of the parent's.

    ~/.venvs/pref-restore/bin/python benchmarks/guard_fidelity.py RUN_FOLDER [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
from pathlib import Path

import torch

from restorer.model import Restorer
from restorer.sampling import sample
from rl_trainer.config import RLConfig
from rl_trainer.guard import fidelity_evaluator
from rl_trainer.manifest import load_inputs, read_manifest, split_entries
from rl_trainer.trainer import EVAL_SEED_BASE

BOOTSTRAP_RESAMPLES = 2000


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        return list(connection.execute(sql))
    finally:
        connection.close()


def per_face_scores(artifact: Path, entries, config: RLConfig, seeds: int) -> torch.Tensor:
    """[seeds, faces] observation PSNR of one restorer's samples; seed row 0 is the guard's own seed."""
    restorer = Restorer.from_pretrained(str(artifact), device="cpu").eval()
    batch = load_inputs(entries, int(restorer.config.resolution))
    evaluator = fidelity_evaluator(config.fallback_downsample)
    scores = []
    with torch.no_grad():
        for index in range(seeds):
            base = EVAL_SEED_BASE if index == 0 else 7_919 * index
            images = sample(
                restorer,
                batch.lq,
                batch.instructions,
                num_steps=config.eval_steps,
                eta=config.eval_eta,
                seeds=[base + i for i in range(len(batch))],
            ).images
            scores.append(evaluator(batch.lq, images, batch.hq, batch.degradations).float())
    return torch.stack(scores)


def bootstrap_interval(values: torch.Tensor, generator: torch.Generator) -> tuple[float, float]:
    picks = torch.randint(len(values), (BOOTSTRAP_RESAMPLES, len(values)), generator=generator)
    means = values[picks].mean(dim=1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", type=Path)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    db = args.run_folder / "db.sqlite3"
    storage = args.run_folder / "storage"
    artifacts = {
        row["id"]: storage / row["artifact_key"]
        for row in rows(db, "select id, artifact_key from registry_modelversion where artifact_key != ''")
    }
    names = {
        row["id"]: f"{row['name']}@v{row['version']}"
        for row in rows(db, "select id, name, version from registry_modelversion")
    }
    evaluations = {
        json.loads(row["params"])["candidate_id"]: json.loads(row["outputs"])
        for row in rows(
            db, "select params, outputs from jobs_job where kind = 'evaluate' and outputs != '{}'"
        )
    }
    print(f"machine: {platform.machine()} CPU; run folder {args.run_folder}; {args.seeds} seeds")
    generator = torch.Generator().manual_seed(0)
    for job in rows(db, "select id, params, outputs from jobs_job where kind = 'train_rl' order by id"):
        params, outputs = json.loads(job["params"]), json.loads(job["outputs"] or "{}")
        if "restorer_id" not in outputs:
            continue
        config = RLConfig.preset(params["preset"], **params["overrides"])
        manifest = args.run_folder / "rl-runs" / params["run_id"] / "inputs.jsonl"
        _, guard_faces = split_entries(read_manifest(manifest), config.eval_fraction)
        guard_faces = guard_faces[: config.eval_inputs]
        parent, candidate = params["restorer_id"], outputs["restorer_id"]
        before = per_face_scores(artifacts[parent], guard_faces, config, args.seeds)
        change = per_face_scores(artifacts[candidate], guard_faces, config, args.seeds) - before
        # the same squared error costs more dB where it is small: in MSE a face's change is comparable
        mse_ratio = (10 ** (-change / 10)).mean(dim=0)
        per_face = change.mean(dim=0)
        low, high = bootstrap_interval(per_face, generator)
        evaluation = evaluations.get(candidate)
        evaluated = (
            f"{evaluation['candidate']['held_out'] - evaluation['in_use']['held_out']:+.3f} dB"
            if evaluation
            else "not evaluated"
        )
        print(
            f"RL job {job['id']}: {names[candidate]} from {names[parent]}, budget {config.fidelity_budget_db} dB,"
            f" {len(guard_faces)} guard faces"
        )
        print(f"  guard's own reading (1 seed):       {float(change[0].mean()):+.3f} dB")
        print(
            f"  guard faces at {args.seeds} seeds:            {float(change.mean()):+.3f} dB"
            f"  (95 % over faces [{low:+.3f}, {high:+.3f}]; per seed"
            f" {' '.join(f'{float(row.mean()):+.3f}' for row in change)})"
        )
        print(f"  evaluation on the held-out faces:   {evaluated} (against {names[parent]})")
        print(f"  per guard face, mean over seeds:    {' '.join(f'{float(v):+.2f}' for v in per_face)}")
        print(
            f"  the parent's PSNR on each, dB:      {' '.join(f'{float(v):5.1f}' for v in before.mean(dim=0))}"
        )
        print(f"  the candidate's MSE / the parent's: {' '.join(f'{float(v):5.2f}' for v in mse_ratio)}")


if __name__ == "__main__":
    main()
