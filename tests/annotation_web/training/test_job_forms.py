"""The engineers' job forms (`/projects/<slug>/jobs/new/<kind>/`): each kind queues its job with the params the
form was given, through the API's own serializer and service; a bad value is shown on the form and queues
nothing; annotators and managers are refused; a project the engineer is not a member of does not exist for them.
And the two job endpoints the forms brought (train-restorer, evaluate)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from html import unescape

import pytest
from django.test import Client

from annotation_web import ml_bridge
from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.models import JudgmentSnapshot
from annotation_web.labeling.pairs import project_create
from annotation_web.loop.models import LoopPolicy, LoopState
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.conftest import face_png
from tests.annotation_web.training.test_ml_loop import engineer_client, judge_everything

KINDS = ["import", "train-restorer", "generate", "train-reward", "train-rl", "evaluate"]


def form_url(project, kind: str) -> str:
    return f"/projects/{project.slug}/jobs/new/{kind}/"


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fake_version(kind: str, name: str, *, made_by_job: Job | None = None) -> ModelVersion:
    """A version with an artifact key (what the forms and the services check; nothing here loads it)."""
    return ModelVersion.objects.create(
        kind=kind,
        name=name,
        version=ModelVersion.objects.filter(kind=kind, name=name).count() + 1,
        artifact_key=f"models/{kind}/{name}/0123abcd/",
        made_by_job=made_by_job,
    )


def queued_job(response) -> Job:
    shown = re.findall(r'class="field-error"[^>]*>([^<]*)<|<li>([^<]*)</li>', response.content.decode())
    assert response.status_code == 302, shown
    match = re.fullmatch(r"/jobs/(\d+)/", response["Location"])
    assert match, response["Location"]
    job = Job.objects.get(pk=int(match.group(1)))
    assert job.state == JobState.QUEUED
    return job


def field_errors(response, name: str) -> list[str]:
    html = response.content.decode()
    return [
        unescape(text)
        for text in re.findall(rf'<p class="field-error" data-field="{name}">([^<]*)</p>', html)
    ]


@pytest.fixture
def rewards(db):
    return fake_version(ModelKind.REWARD, "reward-a")


@pytest.fixture
def in_use(project_with_faces, tiny_restorer, rewards):
    """The loop's state of the project: the tiny restorer and the reward model in use, two held-out inputs."""
    held_out = sorted(project_with_faces.inputs.values_list("pk", flat=True))[:2]
    return LoopState.objects.create(
        project=project_with_faces, restorer=tiny_restorer, reward=rewards, held_out_input_ids=held_out
    )


# --- each kind queues its job ---------------------------------------------------------------------------------


def test_the_generate_form_queues_a_generation_with_its_options(project_with_faces, in_use, engineer):
    project = project_with_faces
    page = browser_for(engineer).get(form_url(project, "generate"))
    assert page.status_code == 200
    html = page.content.decode()
    # What the job will use: the versions in use, preselected.
    assert str(in_use.restorer) in html and str(in_use.reward) in html
    assert f'<option value="{in_use.restorer.pk}" selected>' in html
    ids = sorted(project.inputs.values_list("pk", flat=True))[:2]
    response = browser_for(engineer).post(
        form_url(project, "generate"),
        {
            "restorer_id": in_use.restorer.pk,
            "reward_id": "",
            "input_ids": ", ".join(map(str, ids)),
            "samples_per_input": "3",
            "num_steps": "2",
            "eta": "0.5",
            "seed": "7",
            "acquisition": "information",
            "spread": "2",
            "agreement_share": "0.25",
        },
    )
    job = queued_job(response)
    assert job.kind == "generate" and job.project == project and job.created_by == engineer
    assert job.params["restorer_id"] == in_use.restorer.pk and job.params["reward_id"] is None
    assert job.params["input_ids"] == ids and job.params["pairs_budget"] == 2 * len(ids)
    assert (job.params["samples_per_input"], job.params["num_steps"], job.params["seed"]) == (3, 2, 7)
    assert job.params["eta"] == 0.5 and job.params["acquisition"] == "information"
    assert job.params["spread"] == 2.0 and job.params["agreement_share"] == 0.25
    assert "max_per_input" not in job.params and "cross_version_fill" not in job.params


def test_the_reward_form_shows_the_snapshot_size_and_queues_on_a_frozen_snapshot(
    make_project, engineer, make_user
):
    project = make_project(pairs=3)
    judged = judge_everything(project, make_user, count=1)
    assert judged == 3
    page = browser_for(engineer).get(form_url(project, "train-reward"))
    assert page.status_code == 200
    assert "3 judgments (non-skip, gold included) would be frozen now" in page.content.decode()
    response = browser_for(engineer).post(
        form_url(project, "train-reward"), {"size": "tiny", "max_steps": "5", "seed": "3", "name": ""}
    )
    job = queued_job(response)
    snapshot = JudgmentSnapshot.objects.get(project=project)
    assert job.kind == "train_reward" and snapshot.count == 3
    assert job.params["snapshot_id"] == snapshot.pk
    assert (job.params["size"], job.params["max_steps"], job.params["seed"]) == ("tiny", 5, 3)
    assert job.params["name"] == project.slug and "compare_with_reward_id" not in job.params


def test_the_rl_form_shows_the_presets_and_queues_with_preset_and_overrides(
    project_with_faces, in_use, engineer
):
    project = project_with_faces
    page = browser_for(engineer).get(form_url(project, "train-rl"))
    html = page.content.decode()
    # The presets with their values, as the RL config gives them.
    tiny = ml_bridge.rl_config_validate(preset="tiny", overrides={})
    row = re.search(r"<tr><td><code>max_steps</code></td>(.*?)</tr>", html)
    assert row and f"<td>{tiny['max_steps']}</td>" in row.group(1)
    # The held-out inputs are left out by default, as the loop does.
    assert f'value="{", ".join(map(str, in_use.held_out_input_ids))}"' in html
    response = browser_for(engineer).post(
        form_url(project, "train-rl"),
        {
            "restorer_id": in_use.restorer.pk,
            "reward_id": in_use.reward.pk,
            "preset": "test",
            "overrides": '{"max_steps": 2, "kl_weight": 0.05}',
            "exclude_input_ids": " ".join(map(str, in_use.held_out_input_ids)),
        },
    )
    job = queued_job(response)
    assert job.kind == "train_rl"
    assert (job.params["restorer_id"], job.params["reward_id"]) == (in_use.restorer.pk, in_use.reward.pk)
    assert job.params["preset"] == "test" and job.params["overrides"] == {"max_steps": 2, "kl_weight": 0.05}
    assert job.params["exclude_input_ids"] == in_use.held_out_input_ids


def test_the_restorer_form_queues_supervised_training(project_with_faces, engineer):
    project = project_with_faces
    page = browser_for(engineer).get(form_url(project, "train-restorer"))
    assert "Named training configs" in page.content.decode()
    response = browser_for(engineer).post(
        form_url(project, "train-restorer"),
        {"config": "test", "overrides": '{"max_steps": 3}', "name": "first"},
    )
    job = queued_job(response)
    assert job.kind == "train_restorer"
    assert (job.params["config"], job.params["overrides"], job.params["name"]) == (
        "test",
        {"max_steps": 3},
        "first",
    )


def test_the_evaluate_form_queues_the_candidate_against_the_restorer_in_use(
    project_with_faces, in_use, engineer
):
    project = project_with_faces
    candidate = fake_version(ModelKind.RESTORER, "tiny-rl")
    in_use.candidate = candidate
    in_use.save()
    page = browser_for(engineer).get(form_url(project, "evaluate"))
    assert f'<option value="{candidate.pk}" selected>' in page.content.decode()
    response = browser_for(engineer).post(
        form_url(project, "evaluate"), {"candidate_id": candidate.pk, "seeds": "3", "num_steps": "4"}
    )
    job = queued_job(response)
    assert job.kind == "evaluate"
    assert job.params == {
        "candidate_id": candidate.pk,
        "in_use_id": in_use.restorer.pk,
        "reward_id": in_use.reward.pk,
        "input_ids": in_use.held_out_input_ids,
        "seeds": 3,
        "num_steps": 4,
        # left to the form's default: what the loop policy's RL guard watches (tiny_preference: fidelity)
        "held_out_evaluator": "fidelity",
        # the in-use restorer is its lineage's root, so no third row is scored
        "baseline_id": None,
    }


def test_an_evaluation_judges_by_the_evaluator_asked_for_else_by_the_policys_rl_guard(
    project_with_faces, in_use, engineer
):
    project = project_with_faces
    candidate = fake_version(ModelKind.RESTORER, "tiny-rl")
    url = form_url(project, "evaluate")
    chosen = browser_for(engineer).post(
        url, {"candidate_id": candidate.pk, "held_out_evaluator": "perceptual"}
    )
    assert queued_job(chosen).params["held_out_evaluator"] == "perceptual"

    LoopPolicy.objects.update_or_create(project=project, defaults={"rl_preset": "tiny"})
    followed = browser_for(engineer).post(url, {"candidate_id": candidate.pk})
    assert queued_job(followed).params["held_out_evaluator"] == "perceptual"  # the tiny preset's guard

    jobs_before = Job.objects.count()
    refused = browser_for(engineer).post(url, {"candidate_id": candidate.pk, "held_out_evaluator": "oracle"})
    assert refused.status_code == 400
    assert "oracle" in refused.content.decode()
    assert Job.objects.count() == jobs_before


def test_the_web_names_the_same_held_out_evaluators_as_rl_trainer():
    from rl_trainer.config import HELD_OUT_EVALUATORS

    assert ml_bridge.HELD_OUT_EVALUATORS == HELD_OUT_EVALUATORS


def test_the_web_names_the_fidelity_evaluator_as_rl_trainer_does():
    # promotion reads a score by this name as dB (loop.services._decide_promotion)
    from rl_trainer.guard import fidelity_evaluator

    assert ml_bridge.OBSERVATION_PSNR == fidelity_evaluator(4).name
    assert ml_bridge.LINEAR_OBSERVATION_PSNR == fidelity_evaluator(4, linear=True).name
    from rl_trainer.config import FIDELITY_EVALUATORS

    assert ml_bridge.FIDELITY_EVALUATORS == FIDELITY_EVALUATORS


def test_the_import_form_queues_an_upload_or_an_s3_prefix(make_project, engineer, local_storage):
    project = make_project(pairs=0)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for seed in range(2):
            zipped.writestr(f"face-{seed}.png", face_png(seed))
    archive.seek(0)
    archive.name = "faces.zip"
    job = queued_job(
        browser_for(engineer).post(form_url(project, "import"), {"file": archive, "batch": "week-1"})
    )
    assert job.kind == "import" and job.params["file_count"] == 2 and job.params["batch"] == "week-1"
    assert job.params["upload_name"] == "faces.zip" and (local_storage / job.params["upload_key"]).is_file()
    job = queued_job(
        browser_for(engineer).post(form_url(project, "import"), {"s3_prefix": "s3://faces/incoming/"})
    )
    assert job.params["s3_prefix"] == "s3://faces/incoming/"


# --- bad values are shown and queue nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ('{"no_such_setting": 1}', "'no_such_setting' is not a setting of an RL run"),
        ('{"max_steps": 1000000}', "max_steps must be at most"),
        ('{"learning_rate": "fast"}', "learning_rate must be a float"),
        ('{"max_steps": 2', "not valid JSON"),
    ],
)
def test_a_bad_rl_override_is_shown_on_the_form_and_queues_nothing(
    project_with_faces, in_use, engineer, overrides, message
):
    response = browser_for(engineer).post(
        form_url(project_with_faces, "train-rl"),
        {
            "restorer_id": in_use.restorer.pk,
            "reward_id": in_use.reward.pk,
            "preset": "tiny",
            "overrides": overrides,
        },
    )
    assert response.status_code == 400
    errors = field_errors(response, "overrides")
    assert any(message in error for error in errors), errors
    assert 'aria-invalid="true"' in response.content.decode()
    # What was typed is kept, so it can be corrected.
    assert overrides.replace('"', "&quot;") in response.content.decode()
    assert not Job.objects.exists()


def test_a_restorer_of_another_project_is_refused(project_with_faces, in_use, engineer):
    elsewhere = project_create(name="Elsewhere", slug="elsewhere", resolution=32)
    membership_add(user=engineer, project=elsewhere)
    maker = Job.objects.create(kind="train_rl", project=elsewhere, state=JobState.SUCCEEDED)
    theirs = fake_version(ModelKind.RESTORER, "elsewhere-rl", made_by_job=maker)
    response = browser_for(engineer).post(
        form_url(project_with_faces, "train-rl"),
        {"restorer_id": theirs.pk, "reward_id": in_use.reward.pk, "preset": "tiny"},
    )
    assert response.status_code == 400
    assert field_errors(response, "restorer_id") == [
        f"no restorer version {theirs.pk} in project {project_with_faces.slug}"
    ]
    # Not offered on the form either; and the same refusal from the API.
    assert (
        f'value="{theirs.pk}"'
        not in browser_for(engineer).get(form_url(project_with_faces, "generate")).content.decode()
    )
    api = engineer_client(engineer).post(
        f"/api/projects/{project_with_faces.slug}/jobs/generate/", {"restorer_id": theirs.pk}, format="json"
    )
    # Another project's version reads as an unknown one: 404, as everywhere in the API.
    assert api.status_code == 404
    assert (
        api.json()["detail"]
        == f"restorer_id: no restorer version {theirs.pk} in project {project_with_faces.slug}"
    )
    assert Job.objects.filter(kind="train_rl").count() == 1  # the maker only


def test_a_version_without_artifact_is_refused_beside_its_field(project_with_faces, in_use, engineer):
    classical = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="no-artifact")
    response = browser_for(engineer).post(
        form_url(project_with_faces, "generate"), {"restorer_id": classical.pk}
    )
    assert response.status_code == 400
    assert field_errors(response, "restorer_id") == [f"{classical} has no artifact to load"]
    assert not Job.objects.exists()


def test_out_of_range_and_unreadable_values_are_shown_beside_their_fields(
    project_with_faces, in_use, engineer
):
    response = browser_for(engineer).post(
        form_url(project_with_faces, "generate"),
        {"restorer_id": in_use.restorer.pk, "samples_per_input": "40", "eta": "2", "input_ids": "1, two"},
    )
    assert response.status_code == 400
    assert field_errors(response, "input_ids") == ["not whole numbers: two"]
    response = browser_for(engineer).post(
        form_url(project_with_faces, "generate"),
        {
            "restorer_id": in_use.restorer.pk,
            "samples_per_input": "40",
            "eta": "2",
            "max_per_input": "2",
            "spread": "1",
        },
    )
    assert response.status_code == 400
    assert field_errors(response, "samples_per_input") == ["Ensure this value is less than or equal to 16."]
    assert field_errors(response, "eta") == ["Ensure this value is less than or equal to 1.0."]
    assert not Job.objects.exists()


def test_a_service_refusal_is_shown_and_queues_nothing(project_with_faces, engineer, tiny_restorer):
    # No judgments yet: the reward service refuses; no held-out inputs yet: evaluation is refused.
    response = browser_for(engineer).post(form_url(project_with_faces, "train-reward"), {"size": "tiny"})
    assert response.status_code == 400 and "the project has no judgments yet" in response.content.decode()
    candidate = fake_version(ModelKind.RESTORER, "tiny-rl")
    response = browser_for(engineer).post(
        form_url(project_with_faces, "evaluate"),
        {"candidate_id": candidate.pk, "against_id": tiny_restorer.pk},
    )
    assert response.status_code == 400 and "has no held-out inputs yet" in response.content.decode()
    response = browser_for(engineer).post(
        form_url(project_with_faces, "import"), {"s3_prefix": "s3://a/b/", "file": io.BytesIO(b"x")}
    )
    assert response.status_code == 400 and "send exactly one of" in response.content.decode()
    assert not Job.objects.exists()


# --- who may use the forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.MANAGER])
def test_annotators_and_managers_are_refused_every_form(project_with_faces, make_user, role):
    user = make_user(role)
    client = browser_for(user)
    assert client.get(f"/projects/{project_with_faces.slug}/jobs/new/").status_code == 403
    for kind in KINDS:
        assert client.get(form_url(project_with_faces, kind)).status_code == 403, kind
        assert (
            client.post(form_url(project_with_faces, kind), {"s3_prefix": "s3://a/b/"}).status_code == 403
        ), kind
    assert not Job.objects.exists()


def test_an_engineer_cannot_start_a_job_on_a_project_they_are_not_a_member_of(
    project_with_faces, tiny_restorer
):
    outsider = user_create(username="outsider-eng", password="pw-123456", role=Role.ENGINEER)
    client = browser_for(outsider)
    assert client.get(f"/projects/{project_with_faces.slug}/jobs/new/").status_code == 404
    for kind in KINDS:
        assert client.get(form_url(project_with_faces, kind)).status_code == 404, kind
    assert (
        client.post(form_url(project_with_faces, "generate"), {"restorer_id": tiny_restorer.pk}).status_code
        == 404
    )
    assert client.post(form_url(project_with_faces, "import"), {"s3_prefix": "s3://a/b/"}).status_code == 404
    assert not Job.objects.exists()


def test_the_kinds_page_lists_every_form_with_what_is_in_use(project_with_faces, in_use, engineer):
    page = browser_for(engineer).get(f"/projects/{project_with_faces.slug}/jobs/new/")
    html = page.content.decode()
    for kind in KINDS:
        assert f'href="{form_url(project_with_faces, kind)}"' in html
    assert str(in_use.restorer) in html and "2 held out for evaluation" in html
    assert browser_for(engineer).get(form_url(project_with_faces, "no-such-kind")).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(project_with_faces):
    response = Client().get(form_url(project_with_faces, "generate"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- the API endpoints of train-restorer and evaluate ---------------------------------------------------------


def test_the_restorer_and_evaluate_endpoints_queue_and_refuse_as_the_forms_do(
    project_with_faces, in_use, engineer
):
    client = engineer_client(engineer)
    base = f"/api/projects/{project_with_faces.slug}/jobs"
    response = client.post(
        f"{base}/train-restorer/", {"config": "test", "overrides": {"max_steps": 2}}, format="json"
    )
    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).params["overrides"] == {"max_steps": 2}
    bad = client.post(
        f"{base}/train-restorer/", {"config": "test", "overrides": {"no_such": 1}}, format="json"
    )
    assert bad.status_code == 400 and "no_such not a setting of restorer training" in json.dumps(bad.json())
    candidate = fake_version(ModelKind.RESTORER, "tiny-rl")
    response = client.post(f"{base}/evaluate/", {"candidate_id": candidate.pk}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["params"]["in_use_id"] == in_use.restorer.pk
    itself = client.post(f"{base}/evaluate/", {"candidate_id": in_use.restorer.pk}, format="json")
    assert itself.status_code == 400 and "against itself" in itself.json()["detail"]
    assert Job.objects.count() == 2


def test_form_posts_share_the_api_job_rate_limit(project_with_faces, in_use, engineer, monkeypatch):
    from annotation_web.training import pages

    # Two job requests a minute for the forms; the API's request below counts against the same budget.
    monkeypatch.setattr(pages._JobFormThrottle, "THROTTLE_RATES", {"jobs": "2/min"})
    api = engineer_client(engineer).post(
        f"/api/projects/{project_with_faces.slug}/jobs/train-restorer/", {"config": "test"}, format="json"
    )
    assert api.status_code == 202
    client = browser_for(engineer)
    queued_job(client.post(form_url(project_with_faces, "train-restorer"), {"config": "test"}))
    refused = client.post(form_url(project_with_faces, "train-restorer"), {"config": "test"})
    assert refused.status_code == 429 and "Too many job requests" in refused.content.decode()
    assert Job.objects.count() == 2
