"""The loop driven by its tick alone on tiny configs: first restorer → generation → judgments → reward model →
RL candidate → evaluation → promotion or not, every decision a recorded event; failures change nothing in use;
engineers promote and roll back (jobs run eagerly in this process, as in tests/annotation_web/training)."""

from __future__ import annotations

import pytest

from annotation_web import ml_bridge
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Candidate, Pair
from annotation_web.loop import evaluation, services
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from annotation_web.training import services as training
from tests.annotation_web.conftest import face_png
from tests.annotation_web.training.test_ml_loop import engineer_client, judge_everything

Decision = LoopEvent.Decision

TINY_POLICY = {
    "enabled": True,
    "restorer_config": "test",
    "restorer_overrides": {"max_steps": 2, "validate_every": 2, "checkpoint_every": 2},
    "min_new_judgments": 4,
    "reward_size": "tiny",
    "reward_max_steps": 5,
    "rl_preset": "test",
    "rl_overrides": {"max_steps": 1, "eval_every": 1, "checkpoint_every": 1, "entropy_seeds": 2},
    "samples_per_input": 3,
    "pairs_budget": 6,
    "num_steps": 2,
    "eval_seeds": 1,
    "psnr_drop_limit_db": 100.0,
}


@pytest.fixture
def loop_project(make_project):
    project = make_project(pairs=0, resolution=32)  # the tiny test restorer works at 32 px
    faces = [SourceFile(f"{seed}.png", face_png(seed, size=40)) for seed in range(6)]
    imports.face_inputs_import(project=project, source=faces)
    services.loop_policy_update(project=project, user=None, changes=TINY_POLICY)
    return project


@pytest.fixture
def restorer_folder(tmp_path):
    from restorer.model import Restorer, tiny_test_config

    folder = tmp_path / "restorer"
    Restorer(tiny_test_config()).save_pretrained(folder, metrics={"note": "untrained tiny test restorer"})
    return folder


def tick(project, eager_jobs):
    """One tick; the job it starts runs to its end in this process (a failing job's error is on its row)."""
    try:
        with eager_jobs():
            return services.loop_tick(project=project)
    except Exception:  # noqa: BLE001 - the eager job re-raises what its row recorded
        return LoopEvent.objects.filter(project=project).order_by("-pk").first()


def state_of(project) -> LoopState:
    return LoopState.objects.get(project=project)


def decisions(project) -> list[tuple[str, str]]:
    return [(e.decision, e.reason) for e in LoopEvent.objects.filter(project=project).order_by("pk")]


@pytest.mark.django_db
def test_a_full_round_driven_by_the_tick_alone(loop_project, make_user, eager_jobs):
    project = loop_project
    started = tick(project, eager_jobs)
    assert started.decision == Decision.STARTED and "train_restorer" in started.reason
    first_job = Job.objects.get(pk=started.job_id)
    assert first_job.state == JobState.SUCCEEDED, first_job.error
    assert first_job.progress_done >= 1 and "step" in first_job.log_tail

    generating = tick(project, eager_jobs)  # the restorer is put in use, then its candidates are generated
    first = state_of(project).restorer
    assert first is not None and "generate" in generating.reason and "eta 1" in generating.reason
    assert VersionChange.objects.get(project=project, kind=ModelKind.RESTORER).action == "put_in_use"
    generated = Job.objects.get(pk=generating.job_id)
    assert generated.state == JobState.SUCCEEDED, generated.error
    assert generated.params["eta"] == 1.0
    held_out = state_of(project).held_out_input_ids
    assert len(held_out) == 1

    skipped = tick(project, eager_jobs)
    assert skipped.decision == Decision.SKIPPED and skipped.reason == "skipped: 0 new judgments < 4"
    assert tick(project, eager_jobs).pk == skipped.pk  # the same decision is recorded once

    assert judge_everything(project, make_user) >= 4
    reward_started = tick(project, eager_jobs)
    assert reward_started.decision == Decision.STARTED and "train_reward" in reward_started.reason
    rl_started = tick(project, eager_jobs)
    assert "train_rl" in rl_started.reason and state_of(project).reward is not None
    rl_job = Job.objects.get(pk=rl_started.job_id)
    assert rl_job.state == JobState.SUCCEEDED, rl_job.error
    assert rl_job.params["exclude_input_ids"] == held_out  # the held-out inputs are never given to RL

    evaluating = tick(project, eager_jobs)
    candidate = ModelVersion.objects.get(pk=rl_job.outputs["restorer_id"])
    assert "evaluate" in evaluating.reason and str(candidate) in evaluating.reason
    assert state_of(project).restorer == first  # a candidate is not in use
    evaluated = Job.objects.get(pk=evaluating.job_id)
    assert evaluated.state == JobState.SUCCEEDED, evaluated.error

    tick(project, eager_jobs)
    verdict = LoopEvent.objects.filter(
        project=project, decision__in=[Decision.PROMOTED, Decision.NOT_PROMOTED]
    ).get()
    assert "held-out" in verdict.reason and "PSNR" in verdict.reason and verdict.round == 1
    assert set(verdict.inputs) >= {"candidate", "in_use"}
    state = state_of(project)
    assert state.round == 2 and state.candidate is None
    if verdict.decision == Decision.PROMOTED:
        assert state.restorer == candidate
        follow_up = Job.objects.filter(project=project, kind=training.GENERATE).order_by("-pk").first()
        assert follow_up.params["restorer_id"] == candidate.pk
        assert follow_up.params["cross_version_restorer_id"] == first.pk
    else:
        assert state.restorer == first
    kinds = [job.kind for job in Job.objects.filter(project=project).order_by("pk")]
    assert kinds[:5] == ["train_restorer", "generate", "train_reward", "train_rl", "evaluate"]
    assert all(job.created_by is None for job in Job.objects.filter(project=project))  # no manual job


@pytest.fixture
def restorer_in_use(loop_project, restorer_folder, engineer):
    version = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder)
    services.loop_promote(project=loop_project, user=engineer, restorer_id=version.pk, reason="the first one")
    LoopState.objects.filter(project=loop_project).update(generated_from=version)
    return version


@pytest.mark.django_db
def test_a_failed_job_leaves_the_versions_in_use_unchanged(loop_project, restorer_in_use, eager_jobs):
    broken = ModelVersion.objects.create(
        kind=ModelKind.REWARD, name="r", artifact_key="models/reward/r/missing/"
    )
    LoopState.objects.filter(project=loop_project).update(reward=broken)
    started = tick(loop_project, eager_jobs)
    assert "train_rl" in started.reason
    assert Job.objects.get(pk=started.job_id).state == JobState.FAILED

    failed = tick(loop_project, eager_jobs)
    failure = LoopEvent.objects.get(project=loop_project, decision=Decision.FAILED)
    assert f"train_rl job {started.job_id} failed" in failure.reason
    assert "versions in use unchanged" in failure.reason and str(restorer_in_use) in failure.reason
    state = state_of(loop_project)
    assert state.restorer == restorer_in_use and state.reward == broken and state.candidate is None
    assert failed.decision == Decision.WAITING and "last train_rl job failed" in failed.reason
    assert Job.objects.filter(project=loop_project, kind="train_rl").count() == 1


def _with_candidate(project, restorer_folder) -> ModelVersion:
    candidate = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder)
    LoopState.objects.filter(project=project).update(candidate=candidate)
    return candidate


@pytest.mark.django_db
def test_a_candidate_that_does_not_pass_is_not_promoted_and_the_event_says_why(
    loop_project,
    restorer_in_use,
    restorer_folder,
    eager_jobs,
):
    candidate = _with_candidate(loop_project, restorer_folder)
    services.loop_policy_update(project=loop_project, user=None, changes={"psnr_drop_limit_db": -1.0})
    assert "evaluating candidate" in tick(loop_project, eager_jobs).reason
    tick(loop_project, eager_jobs)
    verdict = LoopEvent.objects.get(project=loop_project, decision=Decision.NOT_PROMOTED)
    assert (
        verdict.reason.startswith(f"not promoted restorer {candidate}: ") and "PSNR drops" in verdict.reason
    )
    assert "> limit -1 dB" in verdict.reason
    assert state_of(loop_project).restorer == restorer_in_use


@pytest.mark.django_db
def test_a_copy_of_the_restorer_in_use_is_not_promoted(
    loop_project, restorer_in_use, restorer_folder, eager_jobs
):
    candidate = _with_candidate(
        loop_project, restorer_folder
    )  # the same weights: what RL hands back at worst
    tick(loop_project, eager_jobs)
    tick(loop_project, eager_jobs)
    verdict = LoopEvent.objects.get(project=loop_project, decision=Decision.NOT_PROMOTED)
    assert f"not promoted restorer {candidate}: it restores the held-out inputs exactly as" in verdict.reason
    assert verdict.inputs["candidate"]["win_rate_vs_first"] == 0.5


@pytest.mark.django_db
def test_a_candidate_that_passes_is_promoted(
    loop_project,
    restorer_in_use,
    restorer_folder,
    eager_jobs,
    monkeypatch,
):
    scores = ml_bridge.restorer_held_out_scores

    def candidate_slightly_better(**kwargs):
        in_use, candidate = scores(**kwargs)
        return [
            in_use,
            {**candidate, "held_out": candidate["held_out"] + 0.001, "psnr": candidate["psnr"] - 0.1},
        ]

    monkeypatch.setattr(ml_bridge, "restorer_held_out_scores", candidate_slightly_better)
    candidate = _with_candidate(loop_project, restorer_folder)
    tick(loop_project, eager_jobs)
    after = tick(loop_project, eager_jobs)
    promoted = LoopEvent.objects.get(project=loop_project, decision=Decision.PROMOTED, job__isnull=False)
    assert promoted.reason.startswith(f"promoted restorer {candidate}: held-out")
    assert "+0.001" in promoted.reason and "PSNR -0.10 dB" in promoted.reason
    assert state_of(loop_project).restorer == candidate
    change = VersionChange.objects.filter(project=loop_project).first()
    assert change.action == "promote" and change.by is None and change.previous == restorer_in_use
    assert after.decision == Decision.STARTED and "generate" in after.reason  # from the promoted restorer


@pytest.mark.django_db
def test_roll_back_restores_the_previous_version_and_the_next_generation_uses_it(
    loop_project,
    restorer_in_use,
    restorer_folder,
    engineer,
    eager_jobs,
):
    client = engineer_client(engineer)
    base = f"/api/projects/{loop_project.slug}/loop"
    second = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder)
    promoted = client.post(
        f"{base}/promote/", {"restorer_id": second.pk, "reason": "looks better"}, format="json"
    )
    assert promoted.status_code == 200, promoted.content
    assert state_of(loop_project).restorer == second

    rolled = client.post(f"{base}/rollback/", {"reason": "annotators dislike it"}, format="json")
    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["by"] == engineer.username and rolled.json()["reason"] == "annotators dislike it"
    assert state_of(loop_project).restorer == restorer_in_use
    generating = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=generating.job_id)
    assert job.kind == "generate" and job.params["restorer_id"] == restorer_in_use.pk, job.error
    assert job.state == JobState.SUCCEEDED, job.error
    new = Candidate.objects.filter(generation=f"job-{job.pk}")
    assert new.exists() and set(new.values_list("model_version_id", flat=True)) == {restorer_in_use.pk}

    history = client.get(f"{base}/events/").json()
    assert [c["action"] for c in history["versions_in_use"]] == ["rollback", "promote", "promote"]
    assert any(e["decision"] == "rolled_back" for e in history["events"])
    nothing = client.post(f"{base}/rollback/", {"reason": "again", "kind": "reward"}, format="json")
    assert nothing.status_code == 400 and "no reward" in nothing.json()["detail"]


@pytest.mark.django_db
def test_one_job_of_a_kind_per_project(loop_project, restorer_in_use, make_user, eager_jobs):
    reward = ModelVersion.objects.create(kind=ModelKind.REWARD, name="r", artifact_key="models/reward/r/v1/")
    LoopState.objects.filter(project=loop_project).update(reward=reward)
    manual = Job.objects.create(kind="train_rl", project=loop_project, state=JobState.RUNNING)
    event = services.loop_tick(project=loop_project)
    assert event.decision == Decision.WAITING and event.reason == f"waiting: train_rl job {manual.pk} running"
    assert Job.objects.filter(project=loop_project, kind="train_rl").count() == 1

    Job.objects.filter(pk=manual.pk).update(state=JobState.SUCCEEDED)
    started = services.loop_tick(project=loop_project)  # not eager: the loop's own job stays queued
    assert started.decision == Decision.STARTED
    waiting = services.loop_tick(project=loop_project)
    assert waiting.reason == f"waiting: train_rl job {started.job_id} queued"


@pytest.mark.django_db
def test_generation_refuses_pairs_of_indistinguishable_images(loop_project, restorer_in_use, eager_jobs):
    identical = {f"k{i}": face_png(1) for i in range(3)}
    assert training._distinct(identical) == {"k0": identical["k0"]}
    assert not training.images_distinguishable(face_png(1), face_png(1))
    assert training.images_distinguishable(face_png(1), face_png(2))


@pytest.mark.django_db
def test_the_policy_api(loop_project, engineer, make_user):
    client = engineer_client(engineer)
    url = f"/api/projects/{loop_project.slug}/loop/"
    got = client.get(url).json()
    assert got["enabled"] is True and got["min_new_judgments"] == 4 and got["state"]["round"] == 1
    changed = client.put(url, {"min_new_judgments": 50, "auto_promote": False}, format="json")
    assert changed.status_code == 200 and changed.json()["min_new_judgments"] == 50
    assert changed.json()["updated_by"] == engineer.pk
    bad = client.put(url, {"rl_overrides": {"no_such_field": 1}}, format="json")
    assert bad.status_code == 400 and "no_such_field" in str(bad.json())
    bad_size = client.put(url, {"reward_size": "huge"}, format="json")
    assert bad_size.status_code == 400
    assert got["reward_tolerance_se"] == 1.0
    for tolerance, status in ((-0.5, 400), (6.0, 400), (0.0, 200)):
        answer = client.put(url, {"reward_tolerance_se": tolerance}, format="json")
        assert answer.status_code == status, answer.json()
    assert LoopPolicy.objects.get(project=loop_project).reward_tolerance_se == 0.0
    events = client.get(f"{url}events/")
    assert events.status_code == 200 and events.json()["events"] == []
    annotator = engineer_client(make_user())
    assert annotator.get(url).status_code == 403 and annotator.put(url, {}, format="json").status_code == 403
    assert Pair.objects.filter(project=loop_project).count() == 0


@pytest.mark.django_db
def test_loop_enable_turns_the_demo_policy_on(loop_project):
    from django.core.management import call_command

    call_command(
        "loop_enable", project=loop_project.slug, demo=True, policy='{"min_new_judgments": 7}', stdout=None
    )
    policy = services.selectors.loop_policy_get(project=loop_project)
    assert policy.enabled and policy.restorer_config == "tiny" and policy.min_new_judgments == 7
    # its generations and evaluations sample as its RL's rollouts do: RL tunes the sampler it runs
    rl = ml_bridge.rl_config_validate(preset=policy.rl_preset, overrides=policy.rl_overrides)
    assert policy.num_steps == rl["rollout_steps"] and rl["eval_steps"] == rl["rollout_steps"]
    # its RL stops where one held-out face falls past a budget, not only the mean: a mean hides a ruined face
    assert rl["held_out_evaluator"] == "fidelity_linear" and rl["fidelity_face_budget_db"] is not None
    # and it reads fidelity through the degradation's blur and resizes, where invisible changes cannot flip JPEG
    # bins; the evaluation that decides promotion judges by the same
    assert evaluation.policy_held_out_evaluator(policy) == "fidelity_linear"
    # and the budgets, not the rule that reads any fall of fidelity while the reward rises as a hack, end its runs
    assert rl["hacking_patience"] == 0
    # and a run past a budget goes back within it with smaller steps before it hands back its start
    assert rl["fidelity_backoffs"] >= 1
    # and its ranked targets keep a face unedited where the reward model's members disagree about the edit
    assert rl["ranked_edit_confidence"] > 0
    call_command("loop_enable", project=loop_project.slug, off=True)
    assert not services.selectors.loop_policy_get(project=loop_project).enabled


def test_the_beat_ticks_the_loop_and_the_worker_knows_the_task(settings):
    from annotation_web.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["loop-tick"]
    assert entry["schedule"] <= 30 and entry["options"]["expires"] <= entry["schedule"]
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert entry["task"] in app.tasks


@pytest.mark.django_db
def test_the_beat_task_ticks_every_enabled_policy(loop_project, make_project):
    from annotation_web.loop.tasks import loop_tick_all

    services.loop_policy_update(project=make_project(pairs=0), user=None, changes={"enabled": False})
    loop_tick_all()  # not eager: the started job stays queued
    assert LoopEvent.objects.get().project == loop_project
    assert Job.objects.get().kind == "train_restorer"


@pytest.mark.django_db
def test_generation_fills_its_budget_with_cross_version_pairs(loop_project, restorer_in_use, eager_jobs):
    """A near-deterministic restorer's samples are too alike to pair: the loop's generation pairs them with
    other versions' candidates of the same input (here the classical ones) so annotators still get pairs."""
    from annotation_web.labeling import pairs

    for face_input in loop_project.inputs.all():
        pairs.classical_candidates_create(face_input=face_input)
    with eager_jobs():
        job = training.generation_job_create(
            project=loop_project,
            user=None,
            restorer_id=restorer_in_use.pk,
            samples_per_input=2,
            pairs_budget=12,
            num_steps=2,
            eta=1.0,
            cross_version_fill=True,
        )
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    made = Pair.objects.filter(pk__in=job.outputs["pair_ids"])
    cross = made.filter(selection_reason="cross_version")
    assert made.count() <= 12 and cross.count() == 6  # one per input, the budget's rest
    assert all(p.candidate_b.model_version.kind == ModelKind.CLASSICAL for p in cross)
    # offered in the generation's shuffled order of its inputs, not theirs
    inputs = list(loop_project.inputs.order_by("pk"))
    expected = [i.pk for i in training.cross_version_order(inputs, seed=0, job_id=job.pk)]
    assert [p.face_input_id for p in cross.order_by("pk")] == expected[: cross.count()]


def test_cross_version_pairs_spread_over_the_faces_from_one_generation_to_the_next():
    # 40 faces, 15 cross-version pairs a generation: in the inputs' own order every generation took faces 1-15
    faces = list(range(40))
    firsts = [
        tuple(sorted(training.cross_version_order(faces, seed=0, job_id=job_id)[:15]))
        for job_id in range(2, 12)
    ]
    assert sorted(training.cross_version_order(faces, seed=0, job_id=2)) == faces  # every face, once
    assert training.cross_version_order(faces, seed=0, job_id=6) == training.cross_version_order(
        faces, seed=0, job_id=6
    )
    assert len(set(firsts)) == len(firsts) and tuple(range(15)) not in firsts
    assert set().union(*firsts) == set(faces)


@pytest.mark.django_db
def test_cross_version_pairs_skip_a_parent_whose_candidates_are_twins(
    loop_project, restorer_in_use, restorer_folder
):
    """RL may move a restorer by less than a grey level: its parent's candidate is a twin of the new one, so the
    pair goes to the next older version that differs visibly (here a classical restoration)."""
    from annotation_web.labeling import pairs

    face_input = loop_project.inputs.order_by("pk").first()
    pairs.classical_candidates_create(face_input=face_input)
    child = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder)
    twin_png = face_png(11, size=32)
    parent_candidate = pairs.candidate_store(
        face_input=face_input, model_version=restorer_in_use, seed=1, png=twin_png
    )
    mine = pairs.candidate_store(face_input=face_input, model_version=child, seed=1, png=twin_png)
    made, refused = training._cross_version_pairs(
        inputs=[face_input], new={mine.image_key: mine}, restorer=child, other_id=None, count=1, batch="x"
    )
    pair = Pair.objects.get(pk=made[0])
    assert (
        pair.candidate_a == mine
        and pair.candidate_b.model_version.kind == ModelKind.CLASSICAL
        and refused == 0
    )
    only_parent, refused = training._cross_version_pairs(
        inputs=[face_input],
        new={mine.image_key: mine},
        restorer=child,
        other_id=restorer_in_use.pk,
        count=1,
        batch="x",
    )
    assert only_parent == [] and refused == 1 and parent_candidate.model_version == restorer_in_use
