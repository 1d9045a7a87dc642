"""The loop: `loop_tick` reads a project's policy and state and starts the next job of the round, recording
every decision as a `LoopEvent` with its reason; promote and roll back are engineer actions, recorded with who,
when and why.

A round: train the first restorer (once) → generate candidates from the restorer in use → annotators judge →
train a reward model once enough new judgments exist → RL-tune the restorer in use against it → evaluate the
candidate on the held-out inputs → promote it when it passes (else say why) → generate from what is in use.
The loop runs one job at a time per project and never two jobs of a kind; a failed job changes nothing in use.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from annotation_web import ml_bridge
from annotation_web.accounts.models import User
from annotation_web.errors import NotFound, ServiceError
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.models import FaceInput, Pair, Project
from annotation_web.loop import evaluation, selectors
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.training import services as training

logger = logging.getLogger(__name__)
Decision = LoopEvent.Decision
ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
# A kind whose job failed is not started again before this pause (a broken setting must not fill the queue).
RETRY_AFTER = timedelta(minutes=10)
POLICY_FIELDS = tuple(
    f.name
    for f in LoopPolicy._meta.get_fields()
    if f.concrete and f.name not in ("id", "project", "updated_by", "updated_at")
)


# --- policy ------------------------------------------------------------------------------------------------


@transaction.atomic
def loop_policy_update(*, project: Project, user: User | None, changes: dict[str, Any]) -> LoopPolicy:
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise ServiceError(f"not a setting of the loop policy: {', '.join(unknown)}")
    policy, _ = LoopPolicy.objects.select_for_update().get_or_create(project=project)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.updated_by = user
    policy.save()
    return policy


# --- state and events --------------------------------------------------------------------------------------


def _state_locked(project: Project) -> LoopState:
    LoopState.objects.get_or_create(project=project)
    return LoopState.objects.select_for_update().get(project=project)


def _event(
    *,
    state: LoopState,
    decision: str,
    reason: str,
    inputs: dict[str, Any] | None = None,
    job: Job | None = None,
    repeat: bool = True,
) -> LoopEvent:
    """Record a decision. `repeat=False`: a decision identical to the project's latest one is not recorded
    again (a tick every 20 s that keeps waiting for the same job says so once)."""
    if not repeat:
        last = LoopEvent.objects.filter(project_id=state.project_id).order_by("-pk").first()
        if last is not None and last.decision == decision and last.reason == reason:
            return last
    event = LoopEvent.objects.create(
        project_id=state.project_id,
        round=state.round,
        decision=decision,
        reason=reason,
        inputs=inputs or {},
        job=job,
    )
    # The worker's log tells the loop's story too (the demo points there).
    logger.info("loop %s round %s %s: %s", state.project_id, state.round, decision, reason)
    return event


def _in_use_text(state: LoopState) -> str:
    return f"restorer {state.restorer or 'none'}, reward model {state.reward or 'none'}"


def _version_set(
    *, state: LoopState, version: ModelVersion, action: str, by: User | None, reason: str
) -> VersionChange:
    """Put `version` in use (restorer or reward model, by its kind) and record who, when and why."""
    if version.kind == ModelKind.RESTORER:
        previous = state.restorer
        if previous is not None and previous != version:
            state.previous_restorer = previous
        state.restorer = version
        # Every change of the restorer in use (promotion, roll back) is followed by a generation from it.
        state.generated_from = None
        if state.candidate_id == version.pk:
            state.candidate = None
    elif version.kind == ModelKind.REWARD:
        previous = state.reward
        state.reward = version
    else:
        raise ServiceError(f"{version} is neither a restorer nor a reward model")
    state.save()
    return VersionChange.objects.create(
        project_id=state.project_id,
        kind=version.kind,
        action=action,
        version=version,
        previous=previous,
        by=by,
        reason=reason,
    )


def _held_out_ids(*, project: Project, policy: LoopPolicy, state: LoopState) -> list[int]:
    """The project's held-out inputs: chosen once (seeded by the project), never given to RL."""
    if state.held_out_input_ids:
        return list(state.held_out_input_ids)
    ids = sorted(FaceInput.objects.filter(project=project).values_list("pk", flat=True))
    if len(ids) < 3:  # RL needs two inputs of its own
        return []
    count = min(len(ids) - 2, max(1, round(len(ids) * policy.held_out_fraction)))
    state.held_out_input_ids = sorted(random.Random(project.pk).sample(ids, count))
    state.save(update_fields=["held_out_input_ids"])
    return list(state.held_out_input_ids)


# --- the tick ----------------------------------------------------------------------------------------------


def loop_tick_enabled() -> list[LoopEvent]:
    """One scheduled tick of every enabled policy (the beat task) whose interval (`tick_seconds`) has passed;
    one project's error does not stop the others."""
    events = []
    for project in Project.objects.filter(pk__in=selectors.loop_enabled_project_ids()):
        try:
            event = loop_tick(project=project, scheduled=True)
        except Exception:  # noqa: BLE001 - logged; the next tick tries again
            logger.exception("loop tick of project %s failed", project.slug)
            continue
        if event is not None:
            events.append(event)
    return events


# A scheduled tick counts as due this much early: the beat fires every PREF_LOOP_TICK_SECONDS, but a tick runs
# when a worker takes it, so two ticks one beat apart may be recorded a little less than a beat apart.
TICK_SLACK = timedelta(seconds=2)


@transaction.atomic
def loop_tick(*, project: Project, scheduled: bool = False) -> LoopEvent | None:
    """Apply the result of the loop's job when it finished, then decide the next step; returns the decision.

    `scheduled` (the beat): a project ticked less than its policy's `tick_seconds` ago is left alone, nothing
    recorded, and None returned. A tick by hand (an engineer, a test) always runs."""
    policy = selectors.loop_policy_get(project=project)
    state = _state_locked(project)
    now = timezone.now()
    if (
        scheduled
        and state.ticked_at is not None
        and now - state.ticked_at + TICK_SLACK < timedelta(seconds=policy.tick_seconds)
    ):
        return None
    state.ticked_at = now
    state.save(update_fields=["ticked_at"])
    if state.job_id is not None:
        job = Job.objects.get(pk=state.job_id)
        if job.state in ACTIVE_STATES:
            return _event(
                state=state,
                decision=Decision.WAITING,
                reason=f"waiting: {job.kind} job {job.pk} {job.state}",
                job=job,
                repeat=False,
            )
        _apply_finished(state=state, policy=policy, job=job)
    if not policy.enabled:
        return _event(
            state=state,
            decision=Decision.SKIPPED,
            reason="skipped: the loop is off for this project",
            repeat=False,
        )
    return _next_step(project=project, policy=policy, state=state)


def _apply_finished(*, state: LoopState, policy: LoopPolicy, job: Job) -> LoopEvent:
    state.job = None
    state.save(update_fields=["job"])
    if job.state != JobState.SUCCEEDED:
        state.failures = {**state.failures, job.kind: timezone.now().isoformat()}
        state.save(update_fields=["failures"])
        first_line = (job.error or "no error recorded").strip().splitlines()[0][:300]
        return _event(
            state=state,
            decision=Decision.FAILED,
            reason=f"{job.kind} job {job.pk} {job.state}: {first_line}; versions in use unchanged ({_in_use_text(state)})",
            job=job,
        )
    outputs = job.outputs
    if job.kind == training.TRAIN_RESTORER:
        version = ModelVersion.objects.get(pk=outputs["restorer_id"])
        _version_set(
            state=state,
            version=version,
            action=VersionChange.Action.PUT_IN_USE,
            by=None,
            reason=f"first restorer, trained by job {job.pk}",
        )
        return _event(
            state=state,
            decision=Decision.APPLIED,
            reason=f"restorer {version} in use (trained by job {job.pk})",
            inputs=outputs.get("metrics", {}),
            job=job,
        )
    if job.kind == training.GENERATE:
        state.generated_from_id = outputs["restorer_id"]
        state.save(update_fields=["generated_from"])
        refused = outputs.get("refused_indistinguishable", 0)
        return _event(
            state=state,
            decision=Decision.APPLIED,
            reason=(
                f"{len(outputs['pair_ids'])} new pairs to judge from {outputs['candidates']} candidates"
                f"{_edits_text(outputs)} "
                f"({outputs.get('indistinguishable_candidates', 0)} candidates too like another of their input, "
                f"{refused} indistinguishable pairs refused)"
            ),
            job=job,
        )
    if job.kind == training.TRAIN_REWARD:
        return _apply_reward(state=state, policy=policy, job=job)
    if job.kind == training.TRAIN_RL:
        state.tuned_with_id = job.params["reward_id"]
        if "restorer_id" not in outputs:
            state.save(update_fields=["tuned_with"])
            return _event(
                state=state,
                decision=Decision.FAILED,
                reason=f"train_rl job {job.pk} made no restorer; versions in use unchanged",
                job=job,
            )
        state.candidate_id = outputs["restorer_id"]
        state.save(update_fields=["tuned_with", "candidate"])
        candidate = ModelVersion.objects.get(pk=outputs["restorer_id"])
        return _event(
            state=state,
            decision=Decision.APPLIED,
            reason=f"candidate restorer {candidate} (not in use until it passes evaluation)",
            job=job,
        )
    if job.kind == evaluation.EVALUATE:
        return _decide_promotion(state=state, policy=policy, job=job)
    return _event(state=state, decision=Decision.APPLIED, reason=f"{job.kind} job {job.pk} finished", job=job)


def _edits_text(outputs: dict[str, Any]) -> str:
    edited = outputs.get("edited_candidates", 0)
    return f" and {edited} edits of them (the RL's proposals)" if edited else ""


def _apply_reward(*, state: LoopState, policy: LoopPolicy, job: Job) -> LoopEvent:
    """A new reward model is put in use when none is, or when it is not worse than the one in use on held-out
    judgments (beyond `policy.reward_tolerance_se` where both were scored on the same ones); otherwise it stays
    out of use (RL keeps tuning against the one in use) and the event says why."""
    outputs = job.outputs
    version = ModelVersion.objects.get(pk=outputs["reward_id"])
    state.reward_trained = version
    state.save(update_fields=["reward_trained"])
    trained = f"trained on {outputs['judgments']} judgments by job {job.pk}"
    metrics = {
        k: v
        for k, v in (outputs.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    in_use = state.reward
    comparison = (
        _reward_comparison(
            new=version, in_use=in_use, outputs=outputs, tolerance_se=policy.reward_tolerance_se
        )
        if in_use
        else None
    )
    inputs = {**metrics, **({"comparison": comparison} if comparison else {})}
    if comparison is not None and not comparison["beats"]:
        return _event(
            state=state,
            decision=Decision.NOT_PROMOTED,
            reason=f"reward model {version} not put in use ({trained}): {comparison['text']}; {in_use} stays in use",
            inputs=inputs,
            job=job,
        )
    reason = trained + (f"; {comparison['text']}" if comparison else "")
    _version_set(state=state, version=version, action=VersionChange.Action.PUT_IN_USE, by=None, reason=reason)
    return _event(
        state=state,
        decision=Decision.APPLIED,
        reason=f"reward model {version} in use: {reason}",
        inputs=inputs,
        job=job,
    )


def _reward_comparison(
    *, new: ModelVersion, in_use: ModelVersion, outputs: dict[str, Any], tolerance_se: float = 0.0
) -> dict[str, Any]:
    """Whether `new` beats (is not worse than) `in_use` on held-out judgments.

    Where the job scored both models on the same held-out judgments (`outputs["comparison"]`: `new` and
    `in_use` pairwise accuracies, `judgments`, `in_use_id`), that decides: with the discordant counts
    (`only_new`, `only_in_use`), `new` is worse only when it trails by more than `tolerance_se` standard errors
    of the paired difference (it was trained on more judgments, so a difference within the noise goes to it).
    Otherwise each model's own validation accuracy (`val_pairwise_accuracy` of its metrics, judgments of inputs
    it did not train on) is compared, which the text says: the two validation sets differ. A tie goes to the
    new model; a new model without a validation accuracy never displaces one that has one."""
    same = outputs.get("comparison") or {}
    allowed, noise, decided = 0.0, "", None
    if same.get("in_use_id") == in_use.pk and same.get("new") is not None and same.get("in_use") is not None:
        mine, theirs = float(same["new"]), float(same["in_use"])
        basis = f"on the same {same.get('judgments', '?')} held-out judgments"
        if tolerance_se > 0 and same.get("only_new") is not None and same.get("only_in_use") is not None:
            judgments, only_new, only_in_use = (
                int(same["judgments"]),
                int(same["only_new"]),
                int(same["only_in_use"]),
            )
            se = ml_bridge.accuracy_difference_se(
                judgments=judgments, only_new=only_new, only_in_use=only_in_use
            )
            # McNemar's continuity correction: a lead of one judgment is no evidence (with 0 + 1 discordant
            # judgments the error is 1 / n, and one judgment refused a model, loop_cross_shuffled.txt)
            corrected = max(0, only_in_use - only_new - 1) / judgments
            allowed = tolerance_se * se
            decided = corrected <= allowed
            if mine < theirs:
                within = "within" if decided else "more than"
                noise = (
                    f" ({mine - theirs:+.3f}, {-corrected:+.3f} less one judgment for continuity: {within}"
                    f" {tolerance_se:g} standard error{'s' if tolerance_se != 1 else ''} of the paired"
                    f" difference, {se:.3f}, on {only_new} + {only_in_use} judgments only one of the two ranks"
                    " right)"
                )
    else:
        mine_raw = (new.metrics or {}).get("val_pairwise_accuracy")
        theirs_raw = (in_use.metrics or {}).get("val_pairwise_accuracy")
        shared_note = (
            f"only {same['judgments']} shared held-out a/b judgments"
            if same.get("in_use_id") == in_use.pk and "judgments" in same
            else "no shared held-out set"
        )
        basis = (
            f"each on its own validation judgments ({(new.metrics or {}).get('n_val_judgments', '?')} and "
            f"{(in_use.metrics or {}).get('n_val_judgments', '?')}; {shared_note})"
        )
        if theirs_raw is None:
            return {
                "beats": True,
                "basis": basis,
                "text": f"{in_use} has no validation accuracy to compare with",
            }
        if mine_raw is None:
            return {
                "beats": False,
                "basis": basis,
                "text": f"no validation accuracy for {new}, against {float(theirs_raw):.3f} for {in_use}",
            }
        mine, theirs = float(mine_raw), float(theirs_raw)
    beats = decided if decided is not None else mine >= theirs
    relation = ">=" if mine >= theirs else "<"
    return {
        "beats": beats,
        "new": mine,
        "in_use": theirs,
        "allowed_shortfall": allowed,
        "basis": basis,
        "text": f"held-out pairwise accuracy {mine:.3f} {relation} {theirs:.3f} of {in_use}{noise}, {basis}",
    }


def _decide_promotion(*, state: LoopState, policy: LoopPolicy, job: Job) -> LoopEvent:
    """A candidate passes when the held-out evaluator is not worse than for the restorer in use, its PSNR
    drops by at most the policy's limit, and, once people judged enough new-vs-in-use pairs
    (`policy.leaderboard_min_judgments`), the human leaderboard does not find it worse; the round ends here,
    promoted or not.

    A held-out evaluator that is itself a fidelity in dB (the observation PSNR, which never reads the HQ) gets
    the policy's PSNR limit too: preference RL trades a little fidelity for what people prefer, so "not worse"
    there would refuse every candidate it makes. The learned reward of the reward model in use is reported, not
    required to rise: on the loop benchmark it scored a candidate the annotators' oracle preferred at 0.852
    lower than its parent (-0.22, benchmarks/results/loop_fidelity_budget.txt); what people prefer is
    the human leaderboard's to say, on probation."""
    outputs = job.outputs
    candidate = ModelVersion.objects.get(pk=outputs["candidate_id"])
    if "candidate" not in outputs or "in_use" not in outputs:  # a stopped evaluation measured nothing
        return _event(
            state=state,
            decision=Decision.WAITING,
            reason=f"evaluation job {job.pk} of {candidate} ended without scores; it is evaluated again",
            job=job,
        )
    mine, theirs = outputs["candidate"], outputs["in_use"]
    held_out_delta = mine["held_out"] - theirs["held_out"]
    psnr_delta = mine["psnr"] - theirs["psnr"]
    summary = (
        f"held-out {mine['evaluator']} {held_out_delta:+.4g} (win rate {mine['win_rate_vs_first']:.2f}), "
        f"PSNR {psnr_delta:+.2f} dB against {theirs_name(outputs)}"
    )
    refusals = []
    if held_out_delta == 0 and psnr_delta == 0:
        # RL may hand back its parent (keep_best found nothing better): a copy is not a new restorer.
        refusals.append("it restores the held-out inputs exactly as the restorer in use does")
    limit = policy.psnr_drop_limit_db
    if mine["evaluator"] in ml_bridge.OBSERVATION_PSNRS:
        if -held_out_delta > limit:
            refusals.append(
                f"held-out {mine['evaluator']} drops {-held_out_delta:.2f} dB > limit {limit:g} dB"
            )
        learned, theirs_learned = mine.get("learned_reward"), theirs.get("learned_reward")
        if learned is not None and theirs_learned is not None:
            summary += f", learned reward {learned - theirs_learned:+.4g}"
    elif held_out_delta < 0:
        refusals.append(f"held-out evaluator worse than in use ({held_out_delta:+.4g})")
    if -psnr_delta > limit:
        refusals.append(f"PSNR drops {-psnr_delta:.2f} dB > limit {limit:g} dB")
    baseline, baseline_limit = outputs.get("baseline"), policy.baseline_psnr_drop_limit_db
    if baseline is not None and outputs.get("baseline_id") != outputs["in_use_id"]:
        baseline_name = str(ModelVersion.objects.get(pk=outputs["baseline_id"]))
        summary += f", PSNR {mine['psnr'] - baseline['psnr']:+.2f} dB against the baseline {baseline_name}"
    if (
        baseline is not None
        and baseline_limit is not None
        and baseline["psnr"] - mine["psnr"] > baseline_limit
    ):
        refusals.append(
            f"PSNR drops {baseline['psnr'] - mine['psnr']:.2f} dB against the baseline > limit {baseline_limit:g} dB"
        )
    humans = _leaderboard_verdict(
        project_id=state.project_id, candidate=candidate, in_use_id=outputs["in_use_id"], policy=policy
    )
    summary += f"; {humans['text']}"
    if humans["worse"]:
        refusals.append(
            f"the human leaderboard finds it worse than in use (upper end {humans['interval'][1]:+.2f} < 0)"
        )
    inputs = {
        "candidate": mine,
        "in_use": theirs,
        "psnr_drop_limit_db": policy.psnr_drop_limit_db,
        "baseline": baseline,
        "baseline_psnr_drop_limit_db": baseline_limit,
        "leaderboard": {k: v for k, v in humans.items() if k != "text"},
    }
    state.candidate = None
    state.save(update_fields=["candidate"])
    if refusals:
        event = _event(
            state=state,
            decision=Decision.NOT_PROMOTED,
            reason=f"not promoted restorer {candidate}: {'; '.join(refusals)} ({summary})",
            inputs=inputs,
            job=job,
        )
    elif not policy.auto_promote:
        event = _event(
            state=state,
            decision=Decision.NOT_PROMOTED,
            reason=f"restorer {candidate} passed ({summary}); auto_promote is off: an engineer promotes it",
            inputs=inputs,
            job=job,
        )
    else:
        reason = f"promoted restorer {candidate}: {summary}"
        _version_set(
            state=state, version=candidate, action=VersionChange.Action.PROMOTE, by=None, reason=reason
        )
        event = _event(state=state, decision=Decision.PROMOTED, reason=reason, inputs=inputs, job=job)
    state.round += 1
    state.save(update_fields=["round"])
    return event


def _leaderboard_verdict(
    *, project_id: int, candidate: ModelVersion, in_use_id: int, policy: LoopPolicy
) -> dict[str, Any]:
    """What people say of the candidate against the restorer in use: consulted once they judged at least
    `policy.leaderboard_min_judgments` pairs of the two; "worse" when the upper end of the bootstrap interval of
    score(candidate) − score(in use) is below zero."""
    board = selectors.project_leaderboard(project=Project.objects.get(pk=project_id))
    judged = board.judgments_between(candidate.pk, in_use_id)
    needed = policy.leaderboard_min_judgments
    if judged < needed or judged == 0:
        return {
            "consulted": False,
            "worse": False,
            "judgments": judged,
            "needed": needed,
            "text": f"leaderboard not consulted ({judged} new-vs-in-use judgments < {needed})",
        }
    difference, lower, upper = board.difference(candidate.pk, in_use_id, level=selectors.LEADERBOARD_LEVEL)
    return {
        "consulted": True,
        "worse": upper < 0,
        "judgments": judged,
        "needed": needed,
        "difference": difference,
        "interval": [lower, upper],
        "text": (
            f"leaderboard {difference:+.2f} [{lower:+.2f}, {upper:+.2f}] against in use "
            f"from {judged} new-vs-in-use judgments"
        ),
    }


def _probation_check(*, policy: LoopPolicy, state: LoopState) -> LoopEvent | None:
    """A restorer the loop promoted is on probation against the one it replaced: its generations queue pairs of
    the two for people to judge, and once they judged `policy.leaderboard_min_judgments` of them the leaderboard
    decides. Found worse, it is rolled back (the automatic round's human guard: a candidate has no human
    judgments before its evaluation); not worse, probation ends and the event says so."""
    current, previous = state.restorer, state.previous_restorer
    if current is None or previous is None or policy.leaderboard_min_judgments == 0:
        return None
    arrival = (
        VersionChange.objects.filter(project_id=state.project_id, kind=ModelKind.RESTORER, version=current)
        .order_by("-pk")
        .first()
    )
    on_probation = (
        arrival is not None
        and arrival.action == VersionChange.Action.PROMOTE
        and arrival.by_id is None
        and arrival.previous_id == previous.pk
    )
    if not on_probation:
        return None
    if LoopEvent.objects.filter(project_id=state.project_id, inputs__probation_passed=current.pk).exists():
        return None
    judged = selectors.judgments_between(project_id=state.project_id, first=current.pk, second=previous.pk)
    if judged < policy.leaderboard_min_judgments:
        return None
    verdict = _leaderboard_verdict(
        project_id=state.project_id, candidate=current, in_use_id=previous.pk, policy=policy
    )
    if not verdict["consulted"]:
        return None
    leaderboard = {k: v for k, v in verdict.items() if k != "text"}
    if not verdict["worse"]:
        return _event(
            state=state,
            decision=Decision.APPLIED,
            reason=f"restorer {current} kept after probation against {previous}: {verdict['text']}",
            inputs={"probation_passed": current.pk, "leaderboard": leaderboard},
        )
    reason = (
        f"rolled back restorer {current} -> {previous}: the human leaderboard finds it worse than the restorer "
        f"it replaced (upper end {verdict['interval'][1]:+.2f} < 0; {verdict['text']})"
    )
    change = _version_set(
        state=state, version=previous, action=VersionChange.Action.ROLLBACK, by=None, reason=reason
    )
    return _event(
        state=state,
        decision=Decision.ROLLED_BACK,
        reason=reason,
        inputs={"version_change": change.pk, "leaderboard": leaderboard},
    )


# The share of the policy's PSNR limit an RL run of the loop may spend on its own held-out inputs: the
# evaluation that decides promotion measures other inputs and seeds, and reads a few tenths of a dB apart.
RL_FIDELITY_SHARE = 0.6


def baseline_psnr_spent(restorer: ModelVersion) -> float:
    """How many dB of PSNR a restorer lost against its lineage's root on the held-out inputs, as its own
    evaluation measured (0 for a restorer without one: the root, or one an engineer put in use unevaluated)."""
    record = (restorer.metrics or {}).get("evaluation") or {}
    if "psnr" not in record:
        return 0.0
    root = record.get("baseline") or record.get("in_use") or {}
    return max(0.0, float(root.get("psnr", record["psnr"])) - float(record["psnr"]))


def rl_overrides(policy: LoopPolicy, restorer: ModelVersion | None = None) -> dict[str, Any]:
    """The RL settings of the policy's runs: its `rl_overrides`, and, where the run's guard watches fidelity in dB
    (`held_out_evaluator` "fidelity" or "fidelity_linear") and the overrides leave `fidelity_budget_db` out, a budget of
    `RL_FIDELITY_SHARE` of the PSNR limit: the run stops before it makes a candidate that promotion must refuse.
    With a limit against the baseline, the budget is that share of what is left of it for `restorer` (the one
    RL starts from) where that is less; once nothing is left, the per-promotion one (promotion then says why
    it refuses)."""
    overrides = dict(policy.rl_overrides)
    if "fidelity_budget_db" in overrides or policy.psnr_drop_limit_db <= 0:
        return overrides
    try:
        config = ml_bridge.rl_config_validate(preset=policy.rl_preset, overrides=overrides)
    except ValueError:
        return overrides  # the RL job is refused with the reason when it is created
    if config["held_out_evaluator"] not in ml_bridge.FIDELITY_EVALUATORS:
        return overrides
    allowed = policy.psnr_drop_limit_db
    if policy.baseline_psnr_drop_limit_db is not None and restorer is not None:
        left = policy.baseline_psnr_drop_limit_db - baseline_psnr_spent(restorer)
        if 0 < left < allowed:
            allowed = left
    return {**overrides, "fidelity_budget_db": round(RL_FIDELITY_SHARE * allowed, 3)}


def theirs_name(outputs: dict[str, Any]) -> str:
    return str(ModelVersion.objects.get(pk=outputs["in_use_id"]))


def _next_step(*, project: Project, policy: LoopPolicy, state: LoopState) -> LoopEvent:
    held_out = _held_out_ids(project=project, policy=policy, state=state)
    if state.restorer is None:
        return _start(
            state=state,
            kind=training.TRAIN_RESTORER,
            reason=f"no restorer in use: training the first one ({policy.restorer_config})",
            create=lambda: training.restorer_training_job_create(
                project=project, user=None, config=policy.restorer_config, overrides=policy.restorer_overrides
            ),
        )
    probation = _probation_check(policy=policy, state=state)
    if probation is not None:
        return probation
    restorer = state.restorer
    if state.candidate is not None:
        candidate = state.candidate
        if not held_out:
            return _event(
                state=state,
                decision=Decision.WAITING,
                reason="waiting: evaluation needs at least 3 inputs (1 held out)",
                repeat=False,
            )
        # Against the restorer in use, on the held-out inputs, the learned reward of the reward model in use.
        return _start(
            state=state,
            kind=evaluation.EVALUATE,
            reason=f"evaluating candidate {candidate} against {restorer} on {len(held_out)} held-out inputs",
            create=lambda: evaluation.evaluation_job_create(
                project=project,
                user=None,
                candidate_id=candidate.pk,
                seeds=policy.eval_seeds,
                num_steps=policy.num_steps,
                held_out_evaluator=evaluation.policy_held_out_evaluator(policy),
            ),
        )
    if state.generated_from_id != restorer.pk:
        cross = state.previous_restorer_id if policy.cross_version_fraction > 0 else None
        return _start(
            state=state,
            kind=training.GENERATE,
            reason=f"restorer {restorer} in use has no candidates yet: generating (eta {policy.eta:g})"
            + (f", with new-vs-previous pairs against {state.previous_restorer}" if cross else ""),
            create=lambda: _generation_create(project=project, policy=policy, state=state, cross=cross),
        )
    if state.reward is not None and state.tuned_with_id != state.reward_id:
        reward = state.reward
        return _start(
            state=state,
            kind=training.TRAIN_RL,
            reason=f"reward model {reward} is newer than {restorer}'s tuning: RL ({policy.rl_preset}) against it",
            create=lambda: training.rl_job_create(
                project=project,
                user=None,
                restorer_id=restorer.pk,
                reward_id=reward.pk,
                preset=policy.rl_preset,
                overrides=rl_overrides(policy, restorer),
                exclude_input_ids=held_out,
            ),
        )
    new = selectors.judgments_since(project=project, reward=_latest_reward(state))
    if new >= policy.min_new_judgments:
        return _start(
            state=state,
            kind=training.TRAIN_REWARD,
            reason=f"{new} new judgments >= {policy.min_new_judgments}: training a reward model",
            inputs={"new_judgments": new},
            create=lambda: training.reward_job_create(
                project=project,
                user=None,
                size=policy.reward_size,
                max_steps=policy.reward_max_steps,
                seed=state.round,
                compare_with_reward_id=state.reward_id,
            ),
        )
    if not Pair.objects.filter(project=project, is_gold=False, open_slots__gt=0).exists():
        # Annotators have nothing left to judge: more pairs from the restorer in use (new seeds), unless its last
        # generation made none (a restorer whose samples are all alike would only repeat that).
        last = (
            Job.objects.filter(project=project, kind=training.GENERATE, created_by=None)
            .order_by("-pk")
            .first()
        )
        if last is None or last.state != JobState.SUCCEEDED or last.outputs.get("pair_ids"):
            return _start(
                state=state,
                kind=training.GENERATE,
                reason=f"the queue is empty with {new} new judgments < {policy.min_new_judgments}: more pairs from {restorer}",
                create=lambda: _generation_create(project=project, policy=policy, state=state, cross=None),
            )
    return _event(
        state=state,
        decision=Decision.SKIPPED,
        reason=f"skipped: {new} new judgments < {policy.min_new_judgments}",
        inputs={"new_judgments": new},
        repeat=False,
    )


def _latest_reward(state: LoopState) -> ModelVersion | None:
    """Of the reward model in use and the one the loop trained last (which may have stayed out of use), the one
    trained on the newer judgments: new judgments are counted from it."""

    def mark(version: ModelVersion | None) -> int:
        return int((version.config.get("lineage") or {}).get("up_to_judgment_id", 0)) if version else -1

    return max((state.reward, state.reward_trained), key=mark)


# How the loop's generations choose pairs: the selection preset that did best in the reward benchmark,
# "small_budget" of reward_model.selection.SELECTION_PRESETS (acquisition "information", i.e. BALD x 4 p (1 - p),
# informative picks per input capped at spread 2.0 times the even share, random share 0.2; the policy's
# `random_fraction` sets the last). benchmarks/results/reward_learning.txt (2026-12-01, graded pool) calls it the
# best preset: +2.3 / +2.5 points of held-out accuracy over random pairs drawn through the same loop at 250 / 500
# judgments (0.874 / 0.890 against 0.851 / 0.865, medians of 5 seeds), where "bald" gave +2.1 / +2.0 (3 seeds).
# The benchmark also divides a pair's score by 1 + its judgments so far (label_counts): the generation job does.
LOOP_PAIR_SELECTION = "small_budget"


def _generation_create(*, project: Project, policy: LoopPolicy, state: LoopState, cross: int | None) -> Job:
    restorer = state.restorer
    if restorer is None:
        raise ServiceError("no restorer in use to generate from")
    # A seed per loop generation: new samples each time, never the bytes of candidates already judged.
    seed = Job.objects.filter(project=project, kind=training.GENERATE).count() + 1
    selection = ml_bridge.pair_selection_preset(LOOP_PAIR_SELECTION)
    # A reward-ranked RL run ranks unsharp masks of the restorer's samples: people judge such edits beside the
    # samples, so that the reward model it tunes against has learnt which of them they prefer.
    edits = ml_bridge.rl_proposal_edits(preset=policy.rl_preset, overrides=policy.rl_overrides) or {}
    return training.generation_job_create(
        project=project,
        user=None,
        restorer_id=restorer.pk,
        reward_id=state.reward_id,
        samples_per_input=policy.samples_per_input,
        pairs_budget=policy.pairs_budget,
        random_fraction=policy.random_fraction,
        num_steps=policy.num_steps,
        eta=policy.eta,
        seed=seed,
        cross_version_restorer_id=cross,
        cross_version_fraction=policy.cross_version_fraction,
        cross_version_fill=True,
        acquisition=selection["acquisition"],
        spread=selection["spread"],
        agreement_share=policy.agreement_share,
        edit_strengths=edits.get("strengths"),
        edit_sigma=edits.get("sigma", 1.0),
    )


def _start(
    *,
    state: LoopState,
    kind: str,
    reason: str,
    create: Callable[[], Job],
    inputs: dict[str, Any] | None = None,
) -> LoopEvent:
    """Start a job of `kind` unless one of that kind runs for the project (the loop's or an engineer's) or the
    last one failed a moment ago."""
    busy = (
        Job.objects.filter(project_id=state.project_id, kind=kind, state__in=ACTIVE_STATES)
        .order_by("pk")
        .first()
    )
    if busy is not None:
        return _event(
            state=state,
            decision=Decision.WAITING,
            reason=f"waiting: {kind} job {busy.pk} {busy.state}",
            job=busy,
            repeat=False,
        )
    failed_at = state.failures.get(kind)
    if failed_at and datetime.fromisoformat(failed_at) + RETRY_AFTER > timezone.now():
        retry = datetime.fromisoformat(failed_at) + RETRY_AFTER
        return _event(
            state=state,
            decision=Decision.WAITING,
            reason=f"waiting: the last {kind} job failed; retrying after {retry:%H:%M:%S} UTC",
            repeat=False,
        )
    try:
        job = create()
    except ServiceError as exc:
        return _event(
            state=state, decision=Decision.SKIPPED, reason=f"skipped {kind}: {exc.message}", repeat=False
        )
    state.job = job
    state.save(update_fields=["job"])
    return _event(
        state=state,
        decision=Decision.STARTED,
        reason=f"started {kind} job {job.pk}: {reason}",
        inputs=inputs,
        job=job,
    )


# --- engineer actions --------------------------------------------------------------------------------------


@transaction.atomic
def loop_promote(
    *, project: Project, user: User, restorer_id: int | None = None, reward_id: int | None = None, reason: str
) -> VersionChange:
    """Put a restorer or a reward model in use by hand (a candidate the loop did not promote, or any version)."""
    if (restorer_id is None) == (reward_id is None):
        raise ServiceError("give exactly one of restorer_id and reward_id")
    kind = ModelKind.RESTORER if restorer_id is not None else ModelKind.REWARD
    wanted = restorer_id if restorer_id is not None else reward_id
    version = (
        ModelVersion.objects.filter(pk=wanted, kind=kind).select_related("made_by_job").first()
        if wanted is not None
        else None
    )
    # Another project's version is not this project's to promote (the registry's rule: a version a job made
    # belongs to that job's project; one registered by hand is shared).
    made_by = version.made_by_job if version is not None else None
    if version is None or (made_by is not None and made_by.project_id not in (None, project.pk)):
        raise NotFound(f"no {kind} version {wanted}")
    if kind == ModelKind.RESTORER and version.config.get("resolution") not in (None, project.resolution):
        raise ServiceError(
            f"{version} works at {version.config['resolution']} px, not the project's {project.resolution} px"
        )
    state = _state_locked(project)
    change = _version_set(
        state=state, version=version, action=VersionChange.Action.PROMOTE, by=user, reason=reason
    )
    _event(
        state=state,
        decision=Decision.PROMOTED,
        reason=f"promoted {kind} {version} by {user.username}: {reason}",
        inputs={"version_change": change.pk},
    )
    return change


@transaction.atomic
def loop_rollback(
    *, project: Project, user: User, kind: str = ModelKind.RESTORER, reason: str
) -> VersionChange:
    """Put back the version that was in use before the current one (of `kind`), as its last promotion recorded."""
    if kind not in (ModelKind.RESTORER, ModelKind.REWARD):
        raise ServiceError("kind is restorer or reward")
    state = _state_locked(project)
    current = state.restorer if kind == ModelKind.RESTORER else state.reward
    if current is None:
        raise ServiceError(f"no {kind} in use to roll back")
    # The change that brought the current version in (not a rollback: rolling back twice goes further back).
    arrival = (
        VersionChange.objects.filter(project=project, kind=kind, version=current)
        .exclude(action=VersionChange.Action.ROLLBACK)
        .order_by("-pk")
        .first()
    )
    if arrival is None or arrival.previous is None:
        raise ServiceError(f"{current} has no earlier {kind} to roll back to")
    change = _version_set(
        state=state, version=arrival.previous, action=VersionChange.Action.ROLLBACK, by=user, reason=reason
    )
    _event(
        state=state,
        decision=Decision.ROLLED_BACK,
        reason=f"rolled back {kind} {current} -> {arrival.previous} by {user.username}: {reason}",
        inputs={"version_change": change.pk},
    )
    return change
