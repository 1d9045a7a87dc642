"""What may be put in use: a candidate restorer the human leaderboard finds worse than the one in use is not
promoted (once enough new-vs-in-use judgments exist), and a new reward model only replaces the one in use when
it is not worse on held-out judgments; every decision's event says why. The finished jobs are rows with the
outputs their runners give (no model runs here)."""

from __future__ import annotations

import pytest

from annotation_web.accounts.models import Role, User
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.models import Candidate, FaceInput, Outcome, Pair
from annotation_web.loop import selectors, services
from annotation_web.loop.models import LoopEvent, LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.loop.test_leaderboard import _judgment, save_all
from tests.annotation_web.training.test_ml_loop import engineer_client

Decision = LoopEvent.Decision


@pytest.fixture
def project(make_project):
    project = make_project(pairs=0)
    # The loop is off: a tick applies the finished job's result and starts nothing else.
    services.loop_policy_update(project=project, user=None, changes={"enabled": False})
    return project


@pytest.fixture
def versions(project):
    in_use = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="tiny", version=1)
    candidate = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="tiny", version=2, parent=in_use)
    LoopState.objects.create(project=project, restorer=in_use, candidate=candidate, generated_from=in_use)
    return in_use, candidate


def _judged(project, *, candidate, in_use, candidate_wins: int, in_use_wins: int, ties: int = 0) -> None:
    """New-vs-in-use pairs on inputs of their own, judged by fresh annotators (one judgment each)."""
    outcomes = [Outcome.A] * candidate_wins + [Outcome.B] * in_use_wins + [Outcome.TIE] * ties
    annotators = User.objects.bulk_create(
        [User(username=f"judge-{project.pk}-{k}", role=Role.ANNOTATOR) for k in range(len(outcomes))]
    )
    judgments = []
    for index, (outcome, annotator) in enumerate(zip(outcomes, annotators, strict=True)):
        face_input = FaceInput.objects.create(
            project=project, source_name=f"{index}.png", content_hash=f"j{index}", lq_key="lq"
        )
        mine = Candidate.objects.create(
            face_input=face_input, model_version=candidate, image_key=f"c/{index}a"
        )
        theirs = Candidate.objects.create(
            face_input=face_input, model_version=in_use, image_key=f"c/{index}b"
        )
        pair = Pair.objects.create(
            project=project, face_input=face_input, candidate_a=mine, candidate_b=theirs, open_slots=0
        )
        judgments.append(_judgment(pair, annotator, outcome))
    save_all(judgments)


def _finished_evaluation(project, *, candidate, in_use, mine: dict, theirs: dict) -> Job:
    """A finished evaluation job with these measures of the candidate (`mine`) and of the restorer in use."""
    job = Job.objects.create(
        kind="evaluate",
        project=project,
        state=JobState.SUCCEEDED,
        params={"candidate_id": candidate.pk, "in_use_id": in_use.pk},
        outputs={"candidate_id": candidate.pk, "in_use_id": in_use.pk, "candidate": mine, "in_use": theirs},
    )
    LoopState.objects.filter(project=project).update(job=job)
    return job


def _evaluated(project, *, candidate, in_use) -> Job:
    """A finished evaluation in which the held-out evaluator finds the candidate a little better."""
    scores = {"evaluator": "identity_sharpness", "win_rate_vs_first": 0.6, "psnr": 24.0}
    return _finished_evaluation(
        project,
        candidate=candidate,
        in_use=in_use,
        mine={**scores, "held_out": 0.52},
        theirs={**scores, "held_out": 0.50, "win_rate_vs_first": 0.5, "psnr": 24.05},
    )


def _evaluated_by_fidelity(
    project,
    *,
    candidate,
    in_use,
    observation_drop: float,
    learned_gain: float,
    evaluator: str = "observation_psnr",
) -> Job:
    """A finished evaluation by an observation PSNR (dB, the preference preset's guard), with the learned reward
    of the reward model in use; the candidate's PSNR against the HQ drops 0.1 dB."""
    scores = {"evaluator": evaluator, "win_rate_vs_first": 0.2}
    return _finished_evaluation(
        project,
        candidate=candidate,
        in_use=in_use,
        mine={
            **scores,
            "held_out": 30.0 - observation_drop,
            "psnr": 23.9,
            "learned_reward": 0.1 + learned_gain,
        },
        theirs={**scores, "held_out": 30.0, "psnr": 24.0, "learned_reward": 0.1, "win_rate_vs_first": 0.5},
    )


def _verdict(project) -> LoopEvent:
    services.loop_tick(project=project)
    return LoopEvent.objects.get(project=project, decision__in=[Decision.PROMOTED, Decision.NOT_PROMOTED])


@pytest.mark.django_db
def test_a_candidate_people_find_worse_is_not_promoted(project, versions):
    in_use, candidate = versions
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=5, in_use_wins=22, ties=3)
    _evaluated(project, candidate=candidate, in_use=in_use)
    verdict = _verdict(project)
    assert verdict.decision == Decision.NOT_PROMOTED
    assert verdict.reason.startswith(
        f"not promoted restorer {candidate}: the human leaderboard finds it worse"
    )
    assert "from 30 new-vs-in-use judgments" in verdict.reason
    humans = verdict.inputs["leaderboard"]
    assert humans["consulted"] and humans["worse"] and humans["judgments"] == 30 and humans["needed"] == 20
    lower, upper = humans["interval"]
    assert lower <= humans["difference"] <= upper < 0
    state = LoopState.objects.get(project=project)
    assert state.restorer == in_use and state.candidate is None and state.round == 2


@pytest.mark.django_db
def test_a_candidate_people_prefer_is_promoted_and_the_event_cites_the_leaderboard(project, versions):
    in_use, candidate = versions
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=18, in_use_wins=7)
    _evaluated(project, candidate=candidate, in_use=in_use)
    verdict = _verdict(project)
    assert verdict.decision == Decision.PROMOTED, verdict.reason
    assert "leaderboard +" in verdict.reason and "from 25 new-vs-in-use judgments" in verdict.reason
    assert verdict.inputs["leaderboard"]["interval"][1] > 0
    assert LoopState.objects.get(project=project).restorer == candidate


@pytest.mark.django_db
def test_the_leaderboard_is_consulted_only_from_the_policys_number_of_judgments(project, versions, engineer):
    in_use, candidate = versions
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=0, in_use_wins=12)
    _evaluated(project, candidate=candidate, in_use=in_use)
    verdict = _verdict(project)
    assert verdict.decision == Decision.PROMOTED
    assert "leaderboard not consulted (12 new-vs-in-use judgments < 20)" in verdict.reason
    assert verdict.inputs["leaderboard"] == {
        "consulted": False,
        "worse": False,
        "judgments": 12,
        "needed": 20,
    }

    # With the threshold lowered (an engineer's setting), the same judgments refuse the next candidate.
    client = engineer_client(engineer)
    changed = client.put(
        f"/api/projects/{project.slug}/loop/", {"leaderboard_min_judgments": 10}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["leaderboard_min_judgments"] == 10
    assert (
        client.put(
            f"/api/projects/{project.slug}/loop/", {"leaderboard_min_judgments": 0}, format="json"
        ).status_code
        == 400
    )
    LoopEvent.objects.all().delete()
    LoopState.objects.filter(project=project).update(restorer=in_use, candidate=candidate)
    _evaluated(project, candidate=candidate, in_use=in_use)
    assert _verdict(project).decision == Decision.NOT_PROMOTED


# --- reward models -----------------------------------------------------------------------------------------


def _reward(version: int, *, accuracy: float | None, up_to: int, n_val: int = 40) -> ModelVersion:
    metrics = {"n_val_judgments": n_val} | (
        {"val_pairwise_accuracy": accuracy} if accuracy is not None else {}
    )
    return ModelVersion.objects.create(
        kind=ModelKind.REWARD,
        name="r",
        version=version,
        metrics=metrics,
        config={"lineage": {"up_to_judgment_id": up_to, "judgments": up_to}},
    )


def _trained(project, reward: ModelVersion, **outputs) -> Job:
    job = Job.objects.create(
        kind="train_reward",
        project=project,
        state=JobState.SUCCEEDED,
        outputs={"reward_id": reward.pk, "judgments": 100, "metrics": reward.metrics, **outputs},
    )
    LoopState.objects.filter(project=project).update(job=job)
    return job


@pytest.mark.django_db
def test_the_first_reward_model_is_put_in_use(project, versions):
    first = _reward(1, accuracy=0.6, up_to=10)
    _trained(project, first)
    services.loop_tick(project=project)
    assert LoopState.objects.get(project=project).reward == first
    event = LoopEvent.objects.get(project=project, decision=Decision.APPLIED)
    assert event.reason == f"reward model {first} in use: trained on 100 judgments by job {event.job_id}"


@pytest.mark.django_db
def test_a_reward_model_worse_on_held_out_judgments_is_not_put_in_use(project, versions):
    in_use = _reward(1, accuracy=0.72, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use, tuned_with=in_use)
    worse = _reward(2, accuracy=0.64, up_to=50)
    _trained(project, worse)
    services.loop_tick(project=project)
    event = LoopEvent.objects.get(project=project, decision=Decision.NOT_PROMOTED)
    assert event.reason.startswith(f"reward model {worse} not put in use (trained on 100 judgments")
    assert "held-out pairwise accuracy 0.640 < 0.720" in event.reason
    assert "each on its own validation judgments (40 and 40; no shared held-out set)" in event.reason
    assert f"{in_use} stays in use" in event.reason
    assert event.inputs["comparison"]["beats"] is False
    state = LoopState.objects.get(project=project)
    assert state.reward == in_use and state.reward_trained == worse and state.tuned_with == in_use
    assert not VersionChange.objects.filter(project=project, kind=ModelKind.REWARD).exists()
    # New judgments are counted from the model trained last, so it is not retrained at once.
    assert services._latest_reward(state) == worse
    assert selectors.judgments_since(project=project, reward=services._latest_reward(state)) == 0


@pytest.mark.django_db
def test_a_reward_model_that_is_not_worse_is_put_in_use(project, versions):
    in_use = _reward(1, accuracy=0.70, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use)
    better = _reward(2, accuracy=0.74, up_to=50)
    _trained(project, better)
    services.loop_tick(project=project)
    state = LoopState.objects.get(project=project)
    assert state.reward == better and state.reward_trained == better
    event = LoopEvent.objects.get(project=project, decision=Decision.APPLIED)
    assert "held-out pairwise accuracy 0.740 >= 0.700" in event.reason
    change = VersionChange.objects.get(project=project, kind=ModelKind.REWARD)
    assert change.previous == in_use and "0.740 >= 0.700" in change.reason


@pytest.mark.django_db
def test_a_comparison_on_the_same_held_out_judgments_decides_when_the_job_made_one(project, versions):
    in_use = _reward(1, accuracy=0.60, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use)
    # Its own validation accuracy is higher, but on the shared held-out judgments it loses.
    new = _reward(2, accuracy=0.90, up_to=50)
    _trained(project, new, comparison={"in_use_id": in_use.pk, "new": 0.55, "in_use": 0.61, "judgments": 80})
    services.loop_tick(project=project)
    event = LoopEvent.objects.get(project=project, decision=Decision.NOT_PROMOTED)
    assert "0.550 < 0.610" in event.reason and "on the same 80 held-out judgments" in event.reason
    assert LoopState.objects.get(project=project).reward == in_use


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("only_new", "only_in_use", "tolerance_se", "put_in_use", "said"),
    [
        # 72 judgments, 0.611 against 0.625: 1 judgment apart of 21 where they differ, SE 0.064
        (
            10,
            11,
            1.0,
            True,
            "(-0.014, -0.000 less one judgment for continuity: within 1 standard error of the",
        ),
        # one judgment apart and the only one where they differ: an SE of 1 / 72 and no evidence
        (0, 1, 1.0, True, "on 0 + 1 judgments only one of the two ranks right"),
        # the same shortfall with no tolerance: today's point estimate
        (10, 11, 0.0, False, "0.611 < 0.625"),
        # 0.514 against 0.653: 10 judgments apart of 16, SE 0.053: well past the noise
        (3, 13, 1.0, False, "(-0.139, -0.125 less one judgment for continuity: more than 1 standard error"),
    ],
)
def test_a_reward_model_that_trails_within_the_noise_of_the_shared_judgments_is_put_in_use(
    project, versions, only_new, only_in_use, tolerance_se, put_in_use, said
):
    in_use = _reward(1, accuracy=0.80, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use)
    services.loop_policy_update(project=project, user=None, changes={"reward_tolerance_se": tolerance_se})
    new = _reward(2, accuracy=0.70, up_to=50)
    n, right_by_both = 72, 34
    comparison = {
        "in_use_id": in_use.pk,
        "judgments": n,
        "new": (right_by_both + only_new) / n,
        "in_use": (right_by_both + only_in_use) / n,
        "only_new": only_new,
        "only_in_use": only_in_use,
    }
    _trained(project, new, comparison=comparison)
    services.loop_tick(project=project)
    state = LoopState.objects.get(project=project)
    event = LoopEvent.objects.get(
        project=project, decision=Decision.APPLIED if put_in_use else Decision.NOT_PROMOTED
    )
    assert (state.reward == new) is put_in_use, event.reason
    assert said in event.reason and "on the same 72 held-out judgments" in event.reason, event.reason
    assert event.inputs["comparison"]["beats"] is put_in_use


@pytest.mark.django_db
def test_too_few_shared_judgments_fall_back_to_each_models_own_validation_and_say_so(project, versions):
    in_use = _reward(1, accuracy=0.60, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use)
    new = _reward(2, accuracy=0.65, up_to=50)
    _trained(project, new, comparison={"in_use_id": in_use.pk, "new": None, "in_use": None, "judgments": 4})
    services.loop_tick(project=project)
    event = LoopEvent.objects.get(project=project, decision=Decision.APPLIED)
    assert "0.650 >= 0.600" in event.reason
    assert (
        "each on its own validation judgments (40 and 40; only 4 shared held-out a/b judgments)"
        in event.reason
    )


@pytest.mark.django_db
def test_the_loop_asks_a_reward_job_to_compare_with_the_model_in_use(project, versions):
    in_use_restorer, candidate = versions
    reward = _reward(1, accuracy=0.6, up_to=0)
    ModelVersion.objects.filter(pk=reward.pk).update(artifact_key="models/reward/r/1/")
    LoopState.objects.filter(project=project).update(
        reward=reward, tuned_with=reward, candidate=None, generated_from=in_use_restorer
    )
    services.loop_policy_update(project=project, user=None, changes={"enabled": True, "min_new_judgments": 5})
    _judged(project, candidate=candidate, in_use=in_use_restorer, candidate_wins=3, in_use_wins=3)
    event = services.loop_tick(project=project)
    assert event.decision == Decision.STARTED and "train_reward" in event.reason, event.reason
    assert Job.objects.get(pk=event.job_id).params["compare_with_reward_id"] == reward.pk


@pytest.mark.django_db
def test_a_reward_model_without_a_validation_accuracy_does_not_displace_one_with_it(project, versions):
    in_use = _reward(1, accuracy=0.60, up_to=10)
    LoopState.objects.filter(project=project).update(reward=in_use)
    _trained(project, _reward(2, accuracy=None, up_to=50, n_val=0))
    services.loop_tick(project=project)
    event = LoopEvent.objects.get(project=project, decision=Decision.NOT_PROMOTED)
    assert "no validation accuracy for" in event.reason
    assert LoopState.objects.get(project=project).reward == in_use


# --- probation: the human guard of an automatic round --------------------------------------------------------


def _promoted_by_the_loop(project, versions, *, by=None) -> LoopState:
    in_use, candidate = versions
    services.loop_policy_update(
        project=project, user=None, changes={"enabled": True, "leaderboard_min_judgments": 20}
    )
    state = LoopState.objects.get(project=project)
    services._version_set(
        state=state, version=candidate, action=VersionChange.Action.PROMOTE, by=by, reason="passed evaluation"
    )
    return LoopState.objects.get(project=project)


@pytest.mark.django_db
def test_a_restorer_the_loop_promoted_is_rolled_back_when_people_find_it_worse(project, versions):
    in_use, candidate = versions
    _promoted_by_the_loop(project, versions)
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=4, in_use_wins=26)
    event = services.loop_tick(project=project)
    assert event.decision == Decision.ROLLED_BACK
    assert event.reason.startswith(f"rolled back restorer {candidate} -> {in_use}: the human leaderboard")
    assert "from 30 new-vs-in-use judgments" in event.reason
    assert event.inputs["leaderboard"]["worse"] is True
    state = LoopState.objects.get(project=project)
    assert state.restorer == in_use and state.previous_restorer == candidate
    change = VersionChange.objects.get(pk=event.inputs["version_change"])
    assert change.action == VersionChange.Action.ROLLBACK and change.by is None and change.version == in_use
    # Back in use by a rollback, the old restorer is not on probation against the rolled-back one.
    assert services._probation_check(policy=selectors.loop_policy_get(project=project), state=state) is None


@pytest.mark.django_db
def test_probation_ends_once_people_do_not_find_it_worse(project, versions):
    in_use, candidate = versions
    _promoted_by_the_loop(project, versions)
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=16, in_use_wins=14)
    event = services.loop_tick(project=project)
    assert event.decision == Decision.APPLIED and event.inputs["probation_passed"] == candidate.pk
    assert f"restorer {candidate} kept after probation against {in_use}" in event.reason
    assert LoopState.objects.get(project=project).restorer == candidate
    services.loop_tick(project=project)
    assert LoopEvent.objects.filter(project=project, inputs__probation_passed=candidate.pk).count() == 1


@pytest.mark.django_db
def test_probation_waits_for_enough_judgments(project, versions):
    in_use, candidate = versions
    state = _promoted_by_the_loop(project, versions)
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=1, in_use_wins=15)
    policy = selectors.loop_policy_get(project=project)
    assert services._probation_check(policy=policy, state=state) is None  # 16 judgments < 20
    assert LoopState.objects.get(project=project).restorer == candidate


@pytest.mark.django_db
def test_an_engineers_promotion_is_not_rolled_back_by_the_loop(project, versions, engineer):
    in_use, candidate = versions
    state = _promoted_by_the_loop(project, versions, by=engineer)
    _judged(project, candidate=candidate, in_use=in_use, candidate_wins=0, in_use_wins=25)
    policy = selectors.loop_policy_get(project=project)
    assert services._probation_check(policy=policy, state=state) is None
    assert LoopState.objects.get(project=project).restorer == candidate


@pytest.mark.django_db
def test_the_api_will_not_promote_a_version_another_projects_job_made(
    project, versions, make_project, engineer
):
    other = make_project(pairs=0)
    theirs = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="theirs", version=1)
    Job.objects.create(kind="train_rl", project=other, state=JobState.SUCCEEDED)
    ModelVersion.objects.filter(pk=theirs.pk).update(made_by_job=Job.objects.filter(project=other).get())
    client = engineer_client(engineer)
    refused = client.post(
        f"/api/projects/{project.slug}/loop/promote/",
        {"restorer_id": theirs.pk, "reason": "borrowing"},
        format="json",
    )
    assert refused.status_code == 404, refused.content
    assert LoopState.objects.get(project=project).restorer == versions[0]
    # A version registered by hand (no job) is shared and may be promoted anywhere.
    shared = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="shared", version=1)
    accepted = client.post(
        f"/api/projects/{project.slug}/loop/promote/",
        {"restorer_id": shared.pk, "reason": "the shared baseline"},
        format="json",
    )
    assert accepted.status_code in (200, 201), accepted.content
    assert LoopState.objects.get(project=project).restorer == shared


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("observation_drop", "learned_gain", "refusal"),
    [
        (0.3, 0.02, None),
        # the learned reward is reported, not required: people have the last word, on probation
        (0.3, -0.01, None),
        (0.7, 0.02, "held-out {evaluator} drops 0.70 dB > limit 0.5 dB"),
    ],
)
@pytest.mark.parametrize("evaluator", ["observation_psnr", "linear_observation_psnr"])
def test_a_fidelity_evaluator_in_db_gets_the_psnr_limit_and_the_learned_reward_is_reported(
    project, versions, observation_drop, learned_gain, refusal, evaluator
):
    # preference RL lowers the observation PSNR a little: "not worse" there would refuse every candidate
    in_use, candidate = versions
    _evaluated_by_fidelity(
        project,
        candidate=candidate,
        in_use=in_use,
        observation_drop=observation_drop,
        learned_gain=learned_gain,
        evaluator=evaluator,
    )
    verdict = _verdict(project)
    state = LoopState.objects.get(project=project)
    if refusal is None:
        assert verdict.decision == Decision.PROMOTED, verdict.reason
        assert f"learned reward {learned_gain:+.4g}" in verdict.reason
        assert state.restorer == candidate
    else:
        assert verdict.decision == Decision.NOT_PROMOTED
        assert refusal.format(evaluator=evaluator) in verdict.reason
        assert "held-out evaluator worse" not in verdict.reason
        assert state.restorer == in_use


@pytest.mark.django_db
def test_an_evaluator_that_is_not_in_db_may_not_get_worse_at_all(project, versions):
    in_use, candidate = versions
    job = _evaluated(project, candidate=candidate, in_use=in_use)
    job.outputs["candidate"]["held_out"] = 0.49  # 0.01 below the restorer in use
    job.save(update_fields=["outputs"])
    verdict = _verdict(project)
    assert verdict.decision == Decision.NOT_PROMOTED
    assert "held-out evaluator worse than in use (-0.01)" in verdict.reason


@pytest.mark.django_db
def test_the_loops_rl_runs_get_a_fidelity_budget_within_the_promotion_limit(project):
    policy = services.loop_policy_update(
        project=project,
        user=None,
        changes={
            "rl_preset": "tiny_preference",
            "rl_overrides": {"max_minutes": 5.0},
            "psnr_drop_limit_db": 0.5,
        },
    )
    assert services.rl_overrides(policy) == {"max_minutes": 5.0, "fidelity_budget_db": 0.3}
    # an engineer's own budget wins
    policy = services.loop_policy_update(
        project=project, user=None, changes={"rl_overrides": {"fidelity_budget_db": 0.45}}
    )
    assert services.rl_overrides(policy) == {"fidelity_budget_db": 0.45}
    # the observation PSNR through the degradation's linear part is in dB too
    policy = services.loop_policy_update(
        project=project, user=None, changes={"rl_overrides": {"held_out_evaluator": "fidelity_linear"}}
    )
    assert services.rl_overrides(policy) == {
        "held_out_evaluator": "fidelity_linear",
        "fidelity_budget_db": 0.3,
    }
    # a guard that does not watch a score in dB gets none (the budget would not validate there)
    policy = services.loop_policy_update(
        project=project, user=None, changes={"rl_preset": "tiny", "rl_overrides": {}}
    )
    assert services.rl_overrides(policy) == {}


@pytest.mark.django_db
def test_the_rl_budget_is_a_share_of_what_is_left_against_the_baseline(project, versions):
    in_use, _ = versions
    policy = services.loop_policy_update(
        project=project,
        user=None,
        changes={
            "rl_preset": "tiny_preference",
            "psnr_drop_limit_db": 0.5,
            "baseline_psnr_drop_limit_db": 0.5,
        },
    )
    # the root has spent nothing: the per-promotion share
    assert services.rl_overrides(policy, in_use) == {"fidelity_budget_db": 0.3}
    # a restorer whose evaluation measured it 0.35 dB below the root: 0.6 x the 0.15 dB left
    in_use.metrics = {"evaluation": {"psnr": 24.0, "baseline": {"psnr": 24.35}, "in_use": {"psnr": 24.1}}}
    assert services.baseline_psnr_spent(in_use) == pytest.approx(0.35)
    assert services.rl_overrides(policy, in_use) == {"fidelity_budget_db": 0.09}
    # its parent was the root (no baseline row): measured against the restorer in use then
    in_use.metrics = {"evaluation": {"psnr": 24.0, "baseline": None, "in_use": {"psnr": 24.1}}}
    assert services.rl_overrides(policy, in_use) == {"fidelity_budget_db": 0.24}
    # nothing left: the per-promotion share, and promotion refuses what goes past the baseline's limit
    in_use.metrics = {"evaluation": {"psnr": 23.0, "baseline": {"psnr": 24.0}}}
    assert services.rl_overrides(policy, in_use) == {"fidelity_budget_db": 0.3}


@pytest.mark.django_db
@pytest.mark.parametrize(("limit", "promoted"), [(None, True), (0.5, False), (1.0, True)])
def test_a_candidate_past_the_baseline_limit_is_not_promoted(project, versions, limit, promoted):
    in_use, candidate = versions
    root = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="tiny", version=0)
    ModelVersion.objects.filter(pk=in_use.pk).update(parent=root)
    services.loop_policy_update(project=project, user=None, changes={"baseline_psnr_drop_limit_db": limit})
    job = _evaluated(project, candidate=candidate, in_use=in_use)  # candidate 24.0 dB, in use 24.05 dB
    job.outputs.update(baseline_id=root.pk, baseline={"psnr": 24.6, "held_out": 0.5})
    job.save(update_fields=["outputs"])
    verdict = _verdict(project)
    assert f"PSNR -0.60 dB against the baseline {root}" in verdict.reason
    assert (verdict.decision == Decision.PROMOTED) == promoted, verdict.reason
    if not promoted:
        assert "PSNR drops 0.60 dB against the baseline > limit 0.5 dB" in verdict.reason
