"""Every job kind honours cancel at its next checkpoint of work: generation queues no pairs, reward training, RL
and restorer training register nothing, an import stops after the current file;
what was done is kept on the row, marked partial. A cancel that lands after the last check still writes nothing
(the result is written in `job_commit`, under the job's lock)."""

from __future__ import annotations

import pytest

from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import LeaseKeeper, _claim, _record_outcome
from annotation_web.jobs.services import JobStopped, job_cancel, job_progress_reporter
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.models import Candidate, Pair
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.training import services
from tests.annotation_web.test_celery_worker import zip_of_faces


def run_cancelled_at(job: Job, *, stop_call: int | None, cancel_in_progress_at: int | None = None) -> Job:
    """Run the job's kind in this process as a worker would, the engineer cancelling it when the runner asks
    `should_stop()` for the `stop_call`-th time (or when it reports progress step `cancel_in_progress_at`)."""
    claimed = _claim(job_id=job.pk, worker="test:1")
    assert claimed is not None
    keeper = LeaseKeeper(claimed, soft_time_limit=None, heartbeat=False)
    calls = {"stop": 0}
    report = job_progress_reporter(job_id=job.pk)

    def should_stop() -> bool:
        calls["stop"] += 1
        if calls["stop"] == stop_call:
            job_cancel(job_id=job.pk)
        return keeper.should_stop()

    def progress(done: int, total: int, line: str) -> None:
        report(done, total, line)
        if cancel_in_progress_at is not None and done >= cancel_in_progress_at:
            if Job.objects.get(pk=job.pk).state == JobState.RUNNING:
                job_cancel(job_id=job.pk)

    try:
        outputs = kinds.get(job.kind).runner(job=claimed, progress=progress, should_stop=should_stop)
    except JobStopped:
        outputs = None
    if outputs is not None:
        _record_outcome(claimed, outputs, keeper)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    return job


@pytest.mark.django_db
def test_a_cancelled_generation_queues_no_pairs(project_with_faces, tiny_restorer, engineer):
    job = services.generation_job_create(
        project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, num_steps=2, eta=1.0
    )
    job = run_cancelled_at(job, stop_call=1)
    assert job.outputs["partial"] is True and job.outputs["stopped_after_inputs"] == 1
    assert job.outputs["pair_ids"] == [] and not Pair.objects.filter(project=project_with_faces).exists()
    assert Candidate.objects.filter(generation=f"job-{job.pk}").count() == job.outputs["candidates"] == 4


@pytest.mark.django_db
def test_a_generation_cancelled_after_its_last_check_queues_no_pairs(
    project_with_faces,
    tiny_restorer,
    engineer,
):
    job = services.generation_job_create(
        project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, num_steps=2, eta=1.0
    )
    job = run_cancelled_at(job, stop_call=None, cancel_in_progress_at=3)  # after sampling the last input
    assert not Pair.objects.filter(project=project_with_faces).exists()


@pytest.mark.django_db
def test_cancelled_reward_training_registers_nothing(judged_project, engineer):
    for stop_call, late in ((2, None), (None, 5)):  # mid-training, then after training ended
        job = services.reward_job_create(project=judged_project, user=engineer, size="tiny", max_steps=5)
        job = run_cancelled_at(job, stop_call=stop_call, cancel_in_progress_at=late)
        assert not ModelVersion.objects.filter(kind=ModelKind.REWARD).exists(), (stop_call, late)


@pytest.mark.django_db
def test_cancelled_rl_registers_nothing(project_with_faces, tiny_restorer, engineer, tmp_path):
    from annotation_web.registry.services import model_version_register
    from reward_model.model import CONFIG_PRESETS, RewardModel

    RewardModel(CONFIG_PRESETS["tiny"]).save_pretrained(tmp_path / "reward")
    reward = model_version_register(kind=ModelKind.REWARD, name="r", folder=tmp_path / "reward")
    for stop_call, late in ((2, None), (None, 2)):
        job = services.rl_job_create(
            project=project_with_faces,
            user=engineer,
            restorer_id=tiny_restorer.pk,
            reward_id=reward.pk,
            preset="test",
            overrides={"max_steps": 2, "eval_every": 1000},
        )
        job = run_cancelled_at(job, stop_call=stop_call, cancel_in_progress_at=late)
        assert ModelVersion.objects.filter(kind=ModelKind.RESTORER).count() == 1, (stop_call, late)


@pytest.mark.django_db
def test_cancelled_restorer_training_registers_nothing(make_project, engineer):
    project = make_project(pairs=0, resolution=32)
    job = services.restorer_training_job_create(project=project, user=engineer, config="test")
    run_cancelled_at(job, stop_call=2)
    assert not ModelVersion.objects.filter(kind=ModelKind.RESTORER).exists()


@pytest.mark.django_db
def test_a_cancelled_import_stops_after_the_current_file(make_project, engineer):
    import io

    project = make_project(pairs=0)
    job = import_job_create(
        project=project, user=engineer, upload_name="f.zip", upload=io.BytesIO(zip_of_faces(3))
    )
    job = run_cancelled_at(job, stop_call=1)
    assert job.outputs["imported"] == 1 and job.outputs["stopped_after_files"] == 1 and job.outputs["partial"]
    assert project.inputs.count() == 1
