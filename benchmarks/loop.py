"""The loop running itself, as `infra/demo.sh` runs it (SQLite, local files, the filesystem broker, one worker
on both queues and the beat under `manage.py run_workers`, the demo's loop policy), with simulated annotators
judging over HTTP: how long each round takes and what the loop decided in it, from its recorded events.

    ~/.venvs/pref-restore/bin/python benchmarks/loop.py [--rounds 3] [--minutes 75] [--pace 1.0]

A round ends with the evaluation of an RL candidate (promoted or not, the event says why). Prints, per round,
the jobs with their durations, the reward model's held-out accuracy and its comparison with the one in use,
the candidate's held-out and PSNR deltas, and the decision; then every loop event with its time; then the
restorer in use after each round on test faces the loop never saw, scored by the annotators' own oracle (win rate
against the first restorer, PSNR and entropy changes) and the human leaderboard at the end; `--measure-only DIR`
prints those two for a folder kept with `--keep`. Exits 1 when fewer than `--rounds` rounds finished within
`--minutes`. Heavy (2 cores): run it under the shared lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Settings of the installation that would point the run at a server instead of the embedded defaults.
SERVER_SETTINGS = ("DATABASE_URL", "CELERY_BROKER_URL", "PREF_STORAGE", "PREF_S3_ENDPOINT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )


def platform_env(var: Path) -> dict[str, str]:
    """The environment of the demo's embedded platform on the folder `var`."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
    env.update(
        PREF_VAR_DIR=str(var), DJANGO_DEBUG="1", PREF_DEMO="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"
    )
    return env


# Printed by `manage.py shell`: the project's human leaderboard as its API returns it.
LEADERBOARD_SCRIPT = (
    "import json; from annotation_web.labeling.models import Project;"
    " from annotation_web.loop.selectors import project_leaderboard_data;"
    " print(json.dumps(project_leaderboard_data(project=Project.objects.get(slug='demo'))))"
)


def leaderboard_lines(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """The human leaderboard at the end of the run (Bradley-Terry with ties over the restorer versions, fitted
    on the simulated annotators' judgments of cross-version pairs, bootstrap intervals), and its versions best
    first."""
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", LEADERBOARD_SCRIPT],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(output.strip().splitlines()[-1])

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.3f}"

    lines = [
        "",
        f"human leaderboard at the end ({data['model']}; {data['level']:.0%} bootstrap intervals,"
        f" {data['resamples']} resamples; {data['judgments']} judgments; excluded: {data['excluded']}):",
    ]
    for row in data["versions"]:
        low, high = row["interval"]
        lines.append(
            f"  {row['rank']:>2}. {row['version']:<24} score {number(row['score'])}"
            f" [{number(low)}, {number(high)}]  judgments {row['judgments']}"
            f" (won {row['wins']}, lost {row['losses']}, tied {row['ties']}){'  in use' if row['in_use'] else ''}"
        )
    if not data["versions"]:
        lines.append("  (no cross-version judgments yet)")
    return lines, [str(row["version"]) for row in data["versions"]]


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-u", "manage.py", *args],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its children
    )


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Stopped(Exception):
    """SIGTERM: the platform is stopped and what ran so far is reported (a second SIGTERM ends it at once)."""


def stop_on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Stopped


def query(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def loop_round(db: Path) -> int:
    rows = query(db, "SELECT round FROM loop_loopstate")
    return int(rows[0]["round"]) if rows else 1


def seconds_since(start_iso: str, moment: str | None) -> float | None:
    from datetime import datetime

    if not moment:
        return None
    return (datetime.fromisoformat(moment) - datetime.fromisoformat(start_iso)).total_seconds()


def minutes(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:5.1f}"


def report(
    db: Path, *, wanted: int, started: float, wall: float, args: argparse.Namespace
) -> tuple[str, int]:
    events = query(db, "SELECT * FROM loop_loopevent ORDER BY id")
    jobs = {row["id"]: row for row in query(db, "SELECT * FROM jobs_job ORDER BY id")}
    versions = {row["id"]: row for row in query(db, "SELECT * FROM registry_modelversion")}
    judgments = query(db, "SELECT COUNT(*) AS n, MIN(created_at) AS first FROM labeling_judgment")[0]
    origin = events[0]["created_at"] if events else None
    # a round ends with the decision on an evaluated RL candidate (a reward model kept out is "not_promoted" too)
    finished = [
        e
        for e in events
        if e["decision"] in ("promoted", "not_promoted")
        and e["job_id"] in jobs
        and jobs[e["job_id"]]["kind"] == "evaluate"
    ]
    lines = [
        "loop benchmark: the loop of infra/demo.sh running itself (embedded defaults, demo policy), "
        f"{args.annotators} reliable and {args.noisy} noisy simulated annotators (oracle {args.oracle}, reward_model"
        f".oracle at its default temperature; pace {args.pace:g} s a judgment)",
        f"machine: {platform.machine()} CPU, {os.cpu_count()} cores; {args.faces} demo faces; "
        f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; wall {wall / 60:.1f} min",
        f"rounds finished: {len(finished)} of {wanted} wanted; judgments: {judgments['n']}; "
        f"loop events: {len(events)}",
        "",
        "per round (times: minutes from the loop's first event):",
    ]
    for number in range(1, max((e["round"] for e in events), default=0) + 1):
        in_round = [e for e in events if e["round"] == number]
        started_jobs = [
            jobs[e["job_id"]] for e in in_round if e["decision"] == "started" and e["job_id"] in jobs
        ]
        lines.append(f"  round {number}:")
        for job in started_jobs:
            took = None
            if job["started_at"] and job["finished_at"]:
                took = seconds_since(job["started_at"], job["finished_at"])
            outputs = json.loads(job["outputs"] or "{}")
            detail = ""
            if job["kind"] == "train_reward" and "reward_id" in outputs:
                metrics = outputs.get("metrics") or {}
                detail = (
                    f"val acc {metrics.get('val_pairwise_accuracy')}, on {outputs.get('judgments')} judgments"
                )
                if outputs.get("comparison"):
                    detail += f"; vs in use on the same held-out judgments: {outputs['comparison']}"
            elif job["kind"] == "train_rl":
                summary = outputs.get("summary") or {}
                detail = f"{summary.get('steps', '?')} steps, {summary.get('stop_reason', '?')}"
            elif job["kind"] == "generate" and "pair_ids" in outputs:
                detail = f"{len(outputs['pair_ids'])} pairs"
            lines.append(
                f"    {job['kind']:<15} job {job['id']:<4} {job['state']:<10} queued at "
                f"{minutes(seconds_since(origin, job['created_at']))} min, ran {minutes(took)} min  {detail}"
            )
        for event in in_round:
            if event["decision"] in ("promoted", "not_promoted", "rolled_back") or (
                event["decision"] == "applied" and "reward model" in event["reason"]
            ):
                lines.append(
                    f"    -> {event['decision']} at {minutes(seconds_since(origin, event['created_at']))} min: "
                    f"{event['reason']}"
                )
    in_use = query(db, "SELECT restorer_id, reward_id FROM loop_loopstate")
    if in_use:
        restorer = versions.get(in_use[0]["restorer_id"])
        reward = versions.get(in_use[0]["reward_id"])
        lines.append(
            f"in use at the end: restorer {restorer['name'] + '@v' + str(restorer['version']) if restorer else 'none'}, "
            f"reward model {reward['name'] + '@v' + str(reward['version']) if reward else 'none'}"
        )
    lines += ["", "every loop event (minutes, round, decision, reason):"]
    for event in events:
        if event["decision"] == "waiting":
            continue
        lines.append(
            f"  {minutes(seconds_since(origin, event['created_at']))}  r{event['round']}  "
            f"{event['decision']:<12} {event['reason'][:220]}"
        )
    verdict = "met" if len(finished) >= wanted else "NOT MET"
    lines.append(
        f"verdict: {len(finished)} rounds finished in {wall / 60:.1f} min (wanted {wanted}): {verdict}"
    )
    return "\n".join(lines), 0 if len(finished) >= wanted else 1


def in_use_by_round(db: Path) -> list[tuple[int, int]]:
    """(round, the restorer in use when the round ended) for each finished round, after (0, the first one)."""
    changes = query(
        db, "SELECT version_id, created_at FROM loop_versionchange WHERE kind = 'restorer' ORDER BY id"
    )
    ends = query(
        db,
        "SELECT e.round, MAX(e.created_at) AS at FROM loop_loopevent e JOIN jobs_job j ON j.id = e.job_id"
        " WHERE e.decision IN ('promoted', 'not_promoted') AND j.kind = 'evaluate' GROUP BY e.round ORDER BY e.round",
    )
    rows = [(0, int(changes[0]["version_id"]))] if changes else []
    for end in ends:
        before = [change for change in changes if change["created_at"] <= end["at"]]
        if before:
            rows.append((int(end["round"]), int(before[-1]["version_id"])))
    return rows


ORACLE_FILE = "oracle.txt"  # in the run folder: the distance its simulated annotators judged by


def run_oracle(var: Path) -> str:
    """The oracle a run's annotators used; folders kept before it was recorded used the default distance."""
    path = var / ORACLE_FILE
    return path.read_text().strip() if path.exists() else "default"


def win_share(bad, reference_bad) -> float:
    """Share of images with a lower oracle badness than the reference's of the same face and seed, ties half."""
    return float(((bad < reference_bad).float() + 0.5 * (bad == reference_bad).float()).mean())


def oracle_lines(
    var: Path, db: Path, *, faces: int, seeds: int, eta: float = 0.0
) -> tuple[list[str], list[tuple[str, float, float]]]:
    """The restorer in use after each round on faces the loop never saw, scored by the simulated annotators'
    own oracle without its noise: win rate against the first restorer, PSNR, solution entropy; and per round
    (the first restorer's "round 0" first) the version's name, its win rate and its PSNR change. `eta`: the
    sampler's (0, deterministic, as evaluations and deployment sample; 1 as the loop's generations do, the
    images the annotators judge)."""
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import rl_gain  # the RL benchmark's test faces, sampler and scoring

    from restorer.images import quantize
    from restorer.metrics import psnr, solution_entropy
    from restorer.model import Restorer
    from reward_model.oracle import distance_by_name, distance_name

    rounds = in_use_by_round(db)
    if not rounds:
        return ["oracle measure: no restorer was ever in use"], []
    versions = {
        int(row["id"]): row
        for row in query(
            db, "SELECT id, kind, name, version, artifact_key, parent_id FROM registry_modelversion"
        )
    }
    # every RL candidate too, promoted or not: a gate that refuses what the oracle prefers shows here
    candidates = [
        version_id
        for version_id, row in versions.items()
        if row["kind"] == "restorer" and row["parent_id"] is not None
    ]
    distance = distance_by_name(run_oracle(var))
    # the sampler the platform deploys: the policy's steps, as its generations and evaluations sample
    num_steps = int(query(db, "SELECT num_steps FROM loop_looppolicy")[0]["num_steps"])
    test = rl_gain.make_faces("test", faces)
    measured: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}
    terms: dict[int, dict[str, torch.Tensor]] = {}
    for version_id in [version for _, version in rounds] + candidates:
        if version_id in measured:
            continue
        folder = var / "storage" / versions[version_id]["artifact_key"].rstrip("/")
        model = Restorer.from_pretrained(folder, device="cpu").eval()
        samples, _ = rl_gain.evaluate(model, test, num_steps=num_steps, eta=eta, seeds=seeds)
        flat = quantize(samples.reshape(-1, *samples.shape[2:]))
        hq = test.hq.repeat(seeds, 1, 1, 1)
        measured[version_id] = (
            rl_gain.badness(distance, flat, hq),
            psnr(flat, hq),
            float(solution_entropy(samples)),
        )
        if hasattr(distance, "components"):
            terms[version_id] = weighted_terms(distance, flat, hq)
    first_bad, first_psnr, first_entropy = measured[rounds[0][1]]
    lines = [
        "",
        f"the restorer in use after each round, on {faces} synthetic test faces (rl_gain's test split, gfpgan"
        f" degradations; never in the loop) x {seeds} seeds, {'deterministic ' if eta == 0 else ''}sampler (eta {eta:g}, the policy's {num_steps} steps), scored by the"
        f" simulated annotators' oracle without its noise ({distance_name(distance)} against the HQ, a badness,"
        " lower is better):"
        " win = share of images with a lower badness than the first restorer's (ties half)",
        "  round  restorer           oracle win  badness  PSNR dB   dPSNR      dH",
    ]
    per_round = []
    for number, version_id in rounds:
        bad, values, entropy = measured[version_id]
        win = win_share(bad, first_bad)
        row = versions[version_id]
        lines.append(
            f"  {number:>5}  {row['name'] + '@v' + str(row['version']):<18} {win:>10.3f}  {float(bad.mean()):.4f}"
            f"  {float(values.mean()):7.2f}  {float(values.mean() - first_psnr.mean()):+6.2f}"
            f"  {100 * (entropy / first_entropy - 1):+5.1f}%"
        )
        per_round.append((f"{row['name']}@v{row['version']}", win, float(values.mean() - first_psnr.mean())))
    in_use_ever = {version for _, version in rounds}
    lines += [
        "every RL candidate on the same images (win against its parent and against the first restorer):",
        "  candidate          parent              win vs parent  win vs first  dPSNR vs parent      dH  promoted",
    ]
    for version_id in sorted(candidates):
        row, parent = versions[version_id], versions[int(versions[version_id]["parent_id"])]
        bad, values, entropy = measured[version_id]
        parent_measure = measured.get(int(row["parent_id"]))
        if parent_measure is None:
            continue  # a parent that was never in use nor a candidate (an imported restorer)
        parent_bad, parent_values, parent_entropy = parent_measure
        lines.append(
            f"  {row['name'] + '@v' + str(row['version']):<18} {parent['name'] + '@v' + str(parent['version']):<18}"
            f"  {win_share(bad, parent_bad):>13.3f}  {win_share(bad, first_bad):>12.3f}"
            f"  {float(values.mean() - parent_values.mean()):>+15.2f}  {100 * (entropy / parent_entropy - 1):+5.1f}%"
            f"  {'yes' if version_id in in_use_ever else 'no'}"
        )
    if terms:
        lines += worse_image_lines(
            versions, sorted(candidates), measured, terms, first=rounds[0][1], faces=faces
        )
    return lines, per_round


def weighted_terms(distance, images, hq, chunk: int = 128) -> dict:
    """The oracle's terms as they enter its badness (weight times term), per image: what made it worse."""
    import torch

    with torch.no_grad():
        parts = [
            distance.components(images[i : i + chunk], hq[i : i + chunk])
            for i in range(0, len(images), chunk)
        ]
    config = distance.config
    weights = {
        "identity": config.identity_weight,
        "sharpness": config.sharpness_weight,
        "artifact": config.artifact_weight,
    }
    return {name: weight * torch.cat([part[name] for part in parts]) for name, weight in weights.items()}


def mean_text(values, mask) -> str:
    return f"{float(values[mask].mean()):+7.3f}" if bool(mask.any()) else "      -"


def worse_image_lines(versions, candidates, measured, terms, *, first: int, faces: int) -> list[str]:
    """Which test images each RL candidate makes worse than the first restorer, whether they are the same
    faces from one candidate to the next, and which of the oracle's terms made them worse: where the win rate
    meets its ceiling."""
    import torch

    first_bad = measured[first][0]
    lines = [
        "",
        "the images each RL candidate makes worse than the first restorer (image = test face x seed; the"
        " oracle's weighted terms, candidate minus first, mean over those images | over the images it makes better):",
        "  candidate          worse  faces  both seeds  first's badness there (all)   identity          sharpness"
        "         artifact",
    ]
    worse_faces: dict[int, set[int]] = {}
    for version_id in candidates:
        bad = measured[version_id][0]
        worse = bad > first_bad
        better = bad < first_bad
        face_of = torch.arange(len(bad)) % faces  # images are seed-major: image i is face i mod faces
        worse_faces[version_id] = {int(face) for face in face_of[worse]}
        per_face = worse.reshape(-1, faces)
        both = int(per_face.all(dim=0).sum())
        row = versions[version_id]
        change = {name: terms[version_id][name] - terms[first][name] for name in terms[first]}
        columns = "  ".join(
            f"{mean_text(change[name], worse)} | {mean_text(change[name], better)}"
            for name in ("identity", "sharpness", "artifact")
        )
        lines.append(
            f"  {row['name'] + '@v' + str(row['version']):<18} {int(worse.sum()):>5}  {len(worse_faces[version_id]):>5}"
            f"  {both:>10}  {float(first_bad[worse].mean()) if bool(worse.any()) else float('nan'):>19.3f}"
            f" ({float(first_bad.mean()):.3f})   {columns}"
        )
    if len(worse_faces) >= 2:
        sets = list(worse_faces.values())
        shared = set.intersection(*sets)
        lines.append(
            f"  faces made worse by every candidate: {len(shared)} of {faces}; by any: {len(set.union(*sets))};"
            " pairwise shared / union: "
            + ", ".join(
                f"{len(sets[i] & sets[j])}/{len(sets[i] | sets[j])}"
                for i in range(len(sets))
                for j in range(i + 1, len(sets))
            )
        )
    return lines


def target_lines(per_round: list[tuple[str, float, float]], ranking: list[str]) -> list[str]:
    """The issue's targets for the loop, each met or not: the in-use restorer's oracle win rate rises round over
    round and is >= 65 % after the last with PSNR within -0.5 dB; the leaderboard orders the versions as the
    oracle does."""
    if len(per_round) < 2:
        return ["", "targets: no RL round to judge"]
    wins = [win for _, win, _ in per_round]
    rising = all(later > earlier for earlier, later in zip(wins, wins[1:]))
    name, last_win, last_psnr = per_round[-1]
    oracle_win = {version: win for version, win, _ in per_round}  # the leaderboard says "restorer:<name>"
    names = [version.split(":", 1)[-1] for version in ranking]
    ranked = [version for version in names if version in oracle_win]
    by_oracle = sorted(ranked, key=lambda version: -oracle_win[version])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    return [
        "",
        f"target: the win rate rises round over round ({' -> '.join(f'{w:.3f}' for w in wins)}): {verdict(rising)}",
        f"target: win >= 0.65 after round {len(per_round) - 1} with PSNR >= -0.5 dB ({name}:"
        f" {last_win:.3f}, {last_psnr:+.2f} dB): {verdict(last_win >= 0.65 and last_psnr >= -0.5)}",
        f"target: the leaderboard orders the versions as the oracle does (leaderboard {' > '.join(ranked) or '-'};"
        f" oracle {' > '.join(by_oracle) or '-'}): {verdict(len(ranked) >= 2 and ranked == by_oracle)}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds to wait for")
    parser.add_argument("--minutes", type=float, default=75.0, help="give up after this long")
    parser.add_argument("--faces", type=int, default=40)
    parser.add_argument("--annotators", type=int, default=3, help="reliable simulated annotators")
    parser.add_argument("--noisy", type=int, default=1, help="noisy simulated annotators beside them")
    parser.add_argument(
        "--oracle",
        default="identity_sharpness",
        help="the simulated annotators' distance to the HQ (reward_model.oracle.DISTANCE_NAMES); the default is"
        " one no RL term, reward-model input or guard computes",
    )
    parser.add_argument("--pace", type=float, default=1.0, help="seconds a simulated judgment takes")
    parser.add_argument("--policy", default="{}", help="JSON policy fields over the demo's (loop_enable)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (its path is printed)")
    parser.add_argument("--results-name", default="loop", help="report file under benchmarks/results")
    parser.add_argument("--test-faces", type=int, default=64, help="faces of the oracle measure")
    parser.add_argument("--test-seeds", type=int, default=2, help="seeds of the oracle measure")
    parser.add_argument(
        "--measure-only",
        type=Path,
        help="a folder kept by an earlier run (--keep): print its oracle measure and leaderboard, and exit",
    )
    parser.add_argument(
        "--measure-eta",
        type=float,
        default=0.0,
        help="the oracle measure's sampler eta (0: as evaluations sample; 1: as the annotators' pairs are made)",
    )
    args = parser.parse_args()
    if args.measure_only:
        folder = args.measure_only
        lines, per_round = oracle_lines(
            folder, folder / "db.sqlite3", faces=args.test_faces, seeds=args.test_seeds, eta=args.measure_eta
        )
        board, ranking = leaderboard_lines(platform_env(folder))
        print("\n".join(lines + board + target_lines(per_round, ranking)))
        return 0

    var = Path(tempfile.mkdtemp(prefix="pref-loop-bench-"))
    env = platform_env(var)
    db = var / "db.sqlite3"
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "demo_setup", "--faces", str(args.faces))
    manage(env, "loop_enable", "--project", "demo", "--demo", "--policy", args.policy)
    (var / ORACLE_FILE).write_text(args.oracle)
    port = free_port()
    started = time.time()
    loads: list[float] = []  # the machine's 1-minute load average while it ran (2 cores: 2 is full)
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # without it the platform's processes outlive the run
    processes = [
        start(env, var / "worker.log", "run_workers", "--queues", "default,train", "--beat"),
        start(env, var / "server.log", "runserver", f"127.0.0.1:{port}", "--noreload"),
    ]
    try:
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:  # the server answers before the annotators start
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        for kind, count in (("reliable", args.annotators), ("noisy", args.noisy)):
            if count < 1:
                continue
            processes.append(
                start(
                    env,
                    var / f"annotators-{kind}.log",
                    "simulate_annotators",
                    "--project",
                    "demo",
                    "--kind",
                    kind,
                    "--count",
                    str(count),
                    "--oracle",
                    args.oracle,
                    "--forever",
                    "--poll",
                    "5",
                    "--pace",
                    str(args.pace),
                    "--base-url",
                    f"http://127.0.0.1:{port}",
                )
            )
        seen = 0
        while time.monotonic() < deadline:
            time.sleep(10)
            loads.append(os.getloadavg()[0])
            events = query(
                db, "SELECT id, round, decision, reason FROM loop_loopevent WHERE id > ? ORDER BY id", seen
            )
            for event in events:
                seen = int(event["id"])
                if event["decision"] != "waiting":
                    print(
                        f"[{(time.time() - started) / 60:5.1f} min] r{event['round']} {event['reason'][:160]}"
                    )
            if loop_round(db) > args.rounds:
                break
            dead = [p for p in processes[:2] if p.poll() is not None]
            if dead:
                print(f"a platform process stopped (exit {dead[0].returncode}); see {var}", file=sys.stderr)
                break
    except Stopped:
        print(
            f"stopped (SIGTERM) after {(time.time() - started) / 60:.1f} min: reporting what ran",
            file=sys.stderr,
        )
    finally:
        stop(processes)
    text, status = report(db, wanted=args.rounds, started=started, wall=time.time() - started, args=args)
    if loads:
        text += f"\nload average while it ran (1 min, {os.cpu_count()} cores): median {statistics.median(loads):.1f}, max {max(loads):.1f}"
    command = "loop.py " + " ".join(sys.argv[1:])
    text = f"command: {command}\n{text}\n"
    results = REPO / "benchmarks" / "results" / f"{args.results_name}.txt"
    results.write_text(text)  # the rounds are on record even if the measure below fails
    lines, per_round = oracle_lines(
        var, db, faces=args.test_faces, seeds=args.test_seeds, eta=args.measure_eta
    )
    board, ranking = leaderboard_lines(env)
    text += "\n".join(lines + board + target_lines(per_round, ranking)) + "\n"
    print(text)
    results.write_text(text)
    print(f"written to {results}; run folder {var}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        import shutil

        shutil.rmtree(var, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
