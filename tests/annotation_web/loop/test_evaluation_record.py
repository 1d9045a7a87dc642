"""The evaluate job's fuller measurement, stored on the candidate's version (`metrics["evaluation"]`): PSNR,
SSIM and perceptual distance against the HQ, solution entropy over seeds, the learned reward of the reward model
in use, identity similarity where available, with the inputs' ids and the version it was measured against;
nothing is written by an evaluation that no longer holds its job."""

from __future__ import annotations

import math

import pytest

from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.services import JobStopped
from annotation_web.loop import evaluation, services
from annotation_web.loop.models import LoopEvent, LoopState
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from tests.annotation_web.loop import test_loop
from tests.annotation_web.loop.test_loop import _with_candidate, tick

# The loop tests' fixtures, used here under the same names.
loop_project = test_loop.loop_project
restorer_folder = test_loop.restorer_folder
restorer_in_use = test_loop.restorer_in_use


@pytest.fixture
def reward_in_use(loop_project, tmp_path):
    from reward_model.model import CONFIG_PRESETS, RewardModel

    folder = tmp_path / "reward"
    RewardModel(CONFIG_PRESETS["tiny"]).save_pretrained(folder, metrics={"note": "untrained tiny reward"})
    version = model_version_register(kind=ModelKind.REWARD, name="tiny-reward", folder=folder)
    LoopState.objects.filter(project=loop_project).update(reward=version, tuned_with=version)
    return version


def _face_recognition_available() -> bool:
    try:
        import face_recognition  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.django_db
def test_the_evaluation_is_stored_on_the_candidate(
    loop_project,
    restorer_in_use,
    restorer_folder,
    reward_in_use,
    eager_jobs,
):
    services.loop_policy_update(project=loop_project, user=None, changes={"eval_seeds": 2})
    candidate = _with_candidate(loop_project, restorer_folder)
    started = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=started.job_id)
    assert job.kind == evaluation.EVALUATE and job.state == JobState.SUCCEEDED, job.error
    assert job.params["reward_id"] == reward_in_use.pk

    record = ModelVersion.objects.get(pk=candidate.pk).metrics["evaluation"]
    held_out = LoopState.objects.get(project=loop_project).held_out_input_ids
    assert record["inputs"] == held_out and record["seeds"] == 2 and record["num_steps"] == 2
    assert record["against"] == restorer_in_use.pk and record["job"] == job.pk
    assert record["reward_id"] == reward_in_use.pk
    for name in ("psnr", "ssim", "perceptual", "entropy", "learned_reward", "held_out"):
        assert isinstance(record[name], float) and math.isfinite(record[name]), name
        assert isinstance(record["in_use"][name], float), name
    assert -1.0 <= record["ssim"] <= 1.0 and record["perceptual"] >= 0.0 and record["entropy"] >= 0.0
    assert record["perceptual_metric"] in ("lpips_alex", "lpips_randtrunk")
    assert record["hq_inputs"] == len(held_out) and record["images"] == 2 * len(held_out)
    # The same weights restore the same images: every measure of the candidate is the one in use's.
    assert record["psnr"] == pytest.approx(record["in_use"]["psnr"])
    assert record["learned_reward"] == pytest.approx(record["in_use"]["learned_reward"])
    if _face_recognition_available():
        assert record["identity_metric"].startswith("face_recognition")
    else:
        assert record["identity"] is None and record["identity_metric"].startswith("not available")

    # Promotion still decides from the job's outputs (held-out evaluator and PSNR).
    tick(loop_project, eager_jobs)
    verdict = LoopEvent.objects.get(project=loop_project, decision=LoopEvent.Decision.NOT_PROMOTED)
    assert "it restores the held-out inputs exactly as" in verdict.reason
    assert verdict.inputs["candidate"]["ssim"] == pytest.approx(record["ssim"])


@pytest.mark.django_db
def test_without_a_reward_model_or_a_second_seed_those_measures_are_null(
    loop_project, restorer_in_use, restorer_folder, eager_jobs
):
    candidate = _with_candidate(loop_project, restorer_folder)  # eval_seeds 1, no reward model in use
    tick(loop_project, eager_jobs)
    record = ModelVersion.objects.get(pk=candidate.pk).metrics["evaluation"]
    assert record["seeds"] == 1 and record["entropy"] is None
    assert record["learned_reward"] is None and record["reward_id"] is None
    assert isinstance(record["ssim"], float)


@pytest.mark.django_db
def test_a_cancelled_evaluation_writes_nothing_on_the_candidate(
    loop_project, restorer_in_use, restorer_folder, eager_jobs, monkeypatch
):
    from annotation_web import ml_bridge
    from annotation_web.jobs.services import job_cancel

    candidate = _with_candidate(loop_project, restorer_folder)
    scores = ml_bridge.restorer_held_out_scores

    def cancelled_meanwhile(**kwargs):
        rows = scores(**kwargs)
        job = Job.objects.filter(kind=evaluation.EVALUATE, project=loop_project).get()
        job_cancel(job_id=job.pk)
        return rows

    monkeypatch.setattr(ml_bridge, "restorer_held_out_scores", cancelled_meanwhile)
    started = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=started.job_id)
    assert job.state == JobState.CANCELLED
    assert "evaluation" not in ModelVersion.objects.get(pk=candidate.pk).metrics

    # A run that finds its job gone at the commit (the cancel came after its last check) writes nothing either.
    monkeypatch.undo()
    job.refresh_from_db()
    with pytest.raises(JobStopped):
        evaluation.evaluation_run(job=job, progress=lambda *args: None, should_stop=lambda: False)
    assert "evaluation" not in ModelVersion.objects.get(pk=candidate.pk).metrics


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("preset", "overrides", "evaluator", "name"),
    [
        ("tiny_preference", {}, "fidelity", "observation_psnr"),
        (
            "tiny_preference",
            {"held_out_evaluator": "fidelity_linear"},
            "fidelity_linear",
            "linear_observation_psnr",
        ),
        ("test", {}, "perceptual", "oracle_neg_lpips_randtrunk"),
    ],
)
def test_the_evaluation_judges_by_what_the_rl_runs_guard_watched(
    loop_project, restorer_in_use, restorer_folder, eager_jobs, preset, overrides, evaluator, name
):
    # the preference recipe's guard watches the observation PSNR, not the LPIPS distance to the HQ (which grows
    # with the sharpening people prefer): promotion must not veto what the run's own guard let through
    services.loop_policy_update(
        project=loop_project, user=None, changes={"rl_preset": preset, "rl_overrides": overrides}
    )
    candidate = _with_candidate(loop_project, restorer_folder)
    job = Job.objects.get(pk=tick(loop_project, eager_jobs).job_id)
    assert job.kind == evaluation.EVALUATE and job.state == JobState.SUCCEEDED, job.error
    assert job.params["held_out_evaluator"] == evaluator
    record = ModelVersion.objects.get(pk=candidate.pk).metrics["evaluation"]
    assert record["evaluator"] == name and record["in_use"]["evaluator"] == name


@pytest.mark.django_db
def test_the_evaluation_measures_the_lineages_root_and_promotion_bounds_the_drop_against_it(
    loop_project, restorer_folder, engineer, eager_jobs
):
    # the restorer in use is an RL child of the first one (the baseline); the candidate, of the one in use
    root = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder)
    in_use = model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder, parent=root)
    services.loop_promote(project=loop_project, user=engineer, restorer_id=in_use.pk, reason="an RL child")
    LoopState.objects.filter(project=loop_project).update(generated_from=in_use)
    candidate = model_version_register(
        kind=ModelKind.RESTORER, name="tiny", folder=restorer_folder, parent=in_use
    )
    LoopState.objects.filter(project=loop_project).update(candidate=candidate)
    # a limit no candidate can meet (a negative drop), so that the refusal can only come from the baseline
    services.loop_policy_update(
        project=loop_project, user=None, changes={"baseline_psnr_drop_limit_db": -1.0}
    )
    started = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=started.job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.params["baseline_id"] == root.pk and job.outputs["baseline_id"] == root.pk
    record = ModelVersion.objects.get(pk=candidate.pk).metrics["evaluation"]
    assert record["baseline_id"] == root.pk
    assert record["baseline"]["psnr"] == pytest.approx(record["in_use"]["psnr"])  # the same weights

    tick(loop_project, eager_jobs)
    verdict = LoopEvent.objects.get(project=loop_project, decision=LoopEvent.Decision.NOT_PROMOTED)
    assert "dB against the baseline > limit -1 dB" in verdict.reason
    assert f"dB against the baseline {root}" in verdict.reason
    assert verdict.inputs["baseline_psnr_drop_limit_db"] == -1.0
