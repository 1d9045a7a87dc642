"""The ML loop as jobs on tiny models: restorer candidates → judgments → reward model → pairs that teach most
→ RL fine-tune, with lineage recorded at every step (the worker runs eagerly here; see test_celery_worker)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation_web.accounts.services import token_for_user
from annotation_web.celery import app
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling import imports, judgments, queue
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Pair
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from tests.annotation_web.conftest import face_png


@pytest.fixture
def eager_jobs(settings, django_capture_on_commit_callbacks):
    """Runs the jobs a request queues when its transaction commits, in this process."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    app.conf.task_always_eager = False


@pytest.fixture
def tiny_restorer(tmp_path):
    from restorer.model import Restorer, tiny_test_config

    folder = tmp_path / "restorer"
    Restorer(tiny_test_config()).save_pretrained(folder, metrics={"note": "untrained tiny test restorer"})
    return model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=folder)


def engineer_client(engineer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    return client


def judge_everything(project, make_user, count: int = 2) -> int:
    judged = 0
    for _ in range(count):
        user = make_user()
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            choice = "left" if (reservation.pk.int % 3) else "tie"
            judgments.judgment_submit(
                annotator=user,
                reservation_id=reservation.pk,
                choice=choice,
                idempotency_key=str(reservation.pk),
            )
            judged += 1
    return judged


def run_job(client, url: str, body: dict, eager_jobs) -> Job:
    with eager_jobs():
        response = client.post(url, body, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == JobState.SUCCEEDED, job.error
    return job


@pytest.mark.django_db
def test_generate_judge_train_reward_select_and_fine_tune(
    make_project, make_user, engineer, tiny_restorer, eager_jobs
):
    project = make_project(pairs=0, resolution=32)  # the tiny test restorer works at 32 px
    faces = [SourceFile(f"{seed}.png", face_png(seed, size=40)) for seed in range(4)]
    imports.face_inputs_import(project=project, source=faces)
    client = engineer_client(engineer)
    base = f"/api/projects/{project.slug}/jobs"

    generated = run_job(
        client,
        f"{base}/generate/",
        {"restorer_id": tiny_restorer.pk, "samples_per_input": 3, "num_steps": 2, "pairs_budget": 8},
        eager_jobs,
    )
    pairs = Pair.objects.filter(project=project, is_gold=False)
    assert generated.outputs["candidates"] == 12 and pairs.count() == 8
    assert set(pairs.values_list("selection_reason", flat=True)) == {"cold_start"}  # no reward model yet
    assert generated.progress_done == generated.progress_total == 4

    assert judge_everything(project, make_user) == 8
    trained = run_job(client, f"{base}/train-reward/", {"size": "tiny", "max_steps": 5}, eager_jobs)
    reward = ModelVersion.objects.get(pk=trained.outputs["reward_id"])
    assert reward.kind == ModelKind.REWARD and reward.version == 1
    assert reward.config["lineage"]["judgments"] == 8 and reward.config["lineage"]["project"] == project.slug
    assert "val_accuracy" in reward.metrics or reward.metrics

    chosen = run_job(
        client,
        f"{base}/generate/",
        {
            "restorer_id": tiny_restorer.pk,
            "reward_id": reward.pk,
            "samples_per_input": 4,
            "num_steps": 2,
            "pairs_budget": 6,
            "random_fraction": 0.34,
            "seed": 1,
        },
        eager_jobs,
    )
    new_pairs = Pair.objects.filter(pk__in=chosen.outputs["pair_ids"])
    reasons = set(new_pairs.values_list("selection_reason", flat=True))
    assert "random" in reasons and reasons & {"disagreement", "bt_uncertainty"}
    assert all(p.selection_score is not None for p in new_pairs)

    tuned_job = run_job(
        client,
        f"{base}/train-rl/",
        {
            "restorer_id": tiny_restorer.pk,
            "reward_id": reward.pk,
            "preset": "test",
            "overrides": {"max_steps": 1, "eval_every": 1, "checkpoint_every": 1, "entropy_seeds": 2},
        },
        eager_jobs,
    )
    tuned = ModelVersion.objects.get(pk=tuned_job.outputs["restorer_id"])
    assert tuned.parent == tiny_restorer and tuned.version == 2
    assert tuned.config["lineage"]["reward_id"] == reward.pk
    assert tuned_job.outputs["summary"]["steps"] == 1

    registry = client.get("/api/models/?kind=restorer").json()["results"]
    assert [(m["version"], m["parent"]) for m in registry] == [(1, None), (2, tiny_restorer.pk)]


@pytest.mark.django_db
def test_ml_jobs_refuse_bad_requests_clearly(make_project, engineer, make_user, tiny_restorer):
    project = make_project(pairs=0)
    client = engineer_client(engineer)
    base = f"/api/projects/{project.slug}/jobs"
    no_inputs = client.post(f"{base}/generate/", {"restorer_id": tiny_restorer.pk}, format="json")
    assert no_inputs.status_code == 400 and "no inputs" in no_inputs.json()["detail"]
    unknown = client.post(
        f"{base}/train-rl/", {"restorer_id": tiny_restorer.pk, "reward_id": 999}, format="json"
    )
    assert unknown.status_code == 404
    reward = ModelVersion.objects.create(kind=ModelKind.REWARD, name="r", artifact_key="models/reward/r/v1/")
    wrong_size = client.post(
        f"{base}/train-rl/", {"restorer_id": tiny_restorer.pk, "reward_id": reward.pk}, format="json"
    )
    assert wrong_size.status_code == 400 and "works at 32 px" in wrong_size.json()["detail"]
    no_judgments = client.post(f"{base}/train-reward/", {}, format="json")
    assert no_judgments.status_code == 400 and "no judgments" in no_judgments.json()["detail"]
    annotator = APIClient()
    annotator.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=make_user())}")
    assert (
        annotator.post(f"{base}/generate/", {"restorer_id": tiny_restorer.pk}, format="json").status_code
        == 403
    )
    assert annotator.get("/api/models/").status_code == 403
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_cancelling_a_queued_job(make_project, engineer, tiny_restorer):
    project = make_project(pairs=0)
    imports.face_inputs_import(project=project, source=[SourceFile("a.png", face_png(1))])
    client = engineer_client(engineer)
    job = client.post(
        f"/api/projects/{project.slug}/jobs/generate/", {"restorer_id": tiny_restorer.pk}, format="json"
    ).json()
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"/api/jobs/{job['id']}/cancel/")
    assert again.status_code == 400 and "already cancelled" in again.json()["detail"]
    from annotation_web.jobs.runs import job_run

    job_run(job_id=job["id"])  # a late delivery of the task does nothing
    assert Job.objects.get(pk=job["id"]).state == JobState.CANCELLED


def test_rl_jobs_and_the_loop_default_to_the_recipe_that_learns_from_the_preferences():
    from annotation_web.loop.models import LoopPolicy
    from annotation_web.training.api import RL_PRESETS, RLRequest
    from rl_trainer.config import RLConfig

    assert RLRequest().fields["preset"].default == "tiny_preference" and "tiny_preference" in RL_PRESETS
    assert LoopPolicy().rl_preset == "tiny_preference"
    assert RLConfig.preset("tiny_preference").policy_update == "reward_ranked"
