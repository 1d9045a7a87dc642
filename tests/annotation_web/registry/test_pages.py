"""The model registry's pages: who reads which versions, status from the loop, lineage both ways, metrics at
a readable precision with units, bounded queries."""

from __future__ import annotations

import re

import pytest

from annotation_web.accounts.models import Role
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.pairs import project_create
from annotation_web.loop.model_pages import metric_rows, metric_text
from annotation_web.loop.models import LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion

pytestmark = pytest.mark.django_db


def listed(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-version="(\d+)">', response.content.decode())]


def made_by(project, kind="train_rl") -> Job:
    return Job.objects.create(kind=kind, project=project, state=JobState.SUCCEEDED)


@pytest.fixture
def registry(make_project, engineer):
    """A lineage in the engineer's project (restorer v1 -> v2 -> v3, v2 tuned against a reward model trained
    on a snapshot), a shared classical version, and a restorer another project's job made."""
    mine = make_project(pairs=0, slug="mine")  # also makes the shared classical versions a, b
    theirs = project_create(name="Theirs", slug="theirs")
    reward = ModelVersion.objects.create(
        kind=ModelKind.REWARD,
        name="mine",
        artifact_key="models/reward/mine/abc/",
        made_by_job=made_by(mine, "train_reward"),
        config={
            "lineage": {
                "project": "mine",
                "judgments": 225,
                "snapshot_id": 11,
                "snapshot_number": 3,
                "snapshot_sha256": "f" * 64,
            }
        },
        metrics={"val_pairwise_accuracy": 0.8125, "val_log_loss": 0.000032, "n_val_judgments": 48.0},
    )
    v1 = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="mine",
        version=1,
        made_by_job=made_by(mine, "train_restorer"),
        metrics={"val_psnr": 24.31234, "steps": 4000.0, "loss": 0.0000123},
    )
    v2 = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="mine",
        version=2,
        parent=v1,
        made_by_job=made_by(mine),
        config={"lineage": {"parent_restorer_id": v1.pk, "reward_id": reward.pk, "project": "mine"}},
        metrics={
            "rl": {"steps": 40, "stop_reason": "max_steps", "final": {"kl": 0.0213}, "rl_config": {"lr": 1}}
        },
    )
    v3 = ModelVersion.objects.create(
        kind=ModelKind.RESTORER, name="mine", version=3, parent=v2, made_by_job=made_by(mine)
    )
    foreign = ModelVersion.objects.create(
        kind=ModelKind.RESTORER, name="theirs", version=1, made_by_job=made_by(theirs)
    )
    LoopState.objects.create(project=mine, restorer=v2, reward=reward, candidate=v3)
    VersionChange.objects.create(
        project=mine, kind="restorer", action="promote", version=v2, previous=v1, reason="better"
    )
    # Another project's loop says nothing to this engineer.
    LoopState.objects.create(project=theirs, restorer=v1)
    Job.objects.create(kind="train_rl", project=mine, params={"restorer_id": v2.pk, "reward_id": reward.pk})
    return {"reward": reward, "v1": v1, "v2": v2, "v3": v3, "foreign": foreign}


@pytest.fixture
def eng_client(client, engineer):
    client.force_login(engineer)
    return client


def test_metric_text_prints_whole_numbers_as_integers_and_small_ones_in_scientific_notation():
    assert metric_text(4000.0) == "4000"
    assert metric_text(12) == "12"
    assert metric_text(0.0000321) == "3.21e-05"
    assert metric_text(0.0) == "0"
    assert metric_text(24.31234) == "24.31"
    assert metric_text(0.8125) == "0.8125"
    assert metric_text(12345.678) == "12345.7"
    assert metric_text(True) == "yes"
    rows = {row["key"]: row for row in metric_rows({"val_psnr": 24.3, "rl": {"steps": 40, "history": [1]}})}
    assert rows["val_psnr"]["unit"] == "dB" and rows["rl.steps"]["unit"] == "steps"
    assert "rl.history" not in rows


def test_the_list_shows_visible_versions_with_parent_status_and_key_metrics(eng_client, registry):
    response = eng_client.get("/models/")
    assert response.status_code == 200
    shown = listed(response)
    for name in ("reward", "v1", "v2", "v3"):
        assert registry[name].pk in shown
    assert registry["foreign"].pk not in shown  # made by another project's job
    classical = ModelVersion.objects.filter(kind=ModelKind.CLASSICAL).values_list("pk", flat=True)
    assert set(classical) <= set(shown)  # shared versions (made by no project's job)
    html = response.content.decode()

    def row(version) -> str:
        return html.split(f'<tr data-version="{version.pk}">')[1].split("</tr>")[0]

    v2_row = row(registry["v2"])
    assert "mine@v2" in v2_row and f'href="/models/{registry["v1"].pk}/"' in v2_row
    assert ">in use</span>" in row(registry["v2"]) and ">in use</span>" in row(registry["reward"])
    assert ">candidate</span>" in row(registry["v3"])
    assert ">retired</span>" in row(registry["v1"])  # promoted over; in use elsewhere only in another project
    assert "val_psnr <strong>24.31</strong>" in row(registry["v1"]) and "dB" in row(registry["v1"])
    assert "steps <strong>4000</strong>" in row(registry["v1"])
    assert "val_pairwise_accuracy <strong>0.8125</strong>" in row(registry["reward"])
    assert "rl.steps <strong>40</strong>" in row(registry["v2"])  # nested metrics found, not an empty cell
    assert listed(eng_client.get("/models/?kind=reward")) == [registry["reward"].pk]


def test_the_detail_page_shows_lineage_both_ways_the_maker_and_the_snapshot(eng_client, registry):
    v1, v2, v3, reward = registry["v1"], registry["v2"], registry["v3"], registry["reward"]
    html = eng_client.get(f"/models/{v2.pk}/").content.decode()
    ancestors = html.split('id="ancestors"')[1].split("</section>")[0]
    descendants = html.split('id="descendants"')[1].split("</section>")[0]
    assert f'href="/models/{v1.pk}/"' in ancestors and f'href="/models/{v3.pk}/"' not in ancestors
    assert f'href="/models/{v3.pk}/"' in descendants
    assert f'href="/jobs/{v2.made_by_job_id}/"' in html.split('id="made-by"')[1].split("</dd>")[0]
    assert f'href="/models/{reward.pk}/"' in html.split('id="tuned-against"')[1]
    assert "rl.final.kl" in html and "0.0213" in html and "max_steps" in html
    assert "rl.rl_config" not in html

    deep = eng_client.get(f"/models/{v3.pk}/").content.decode()
    chain = deep.split('id="ancestors"')[1].split("</section>")[0]
    assert chain.index(f"/models/{v2.pk}/") < chain.index(f"/models/{v1.pk}/")  # parent first, then up
    top = (
        eng_client.get(f"/models/{v1.pk}/")
        .content.decode()
        .split('id="descendants"')[1]
        .split("</section>")[0]
    )
    assert f"/models/{v2.pk}/" in top and f"/models/{v3.pk}/" in top and "2 generations down" in top

    rhtml = eng_client.get(f"/models/{reward.pk}/").content.decode()
    snapshot = rhtml.split('id="snapshot"')[1].split("</dd>")[0]
    assert "#3" in snapshot and "225 judgments" in snapshot
    assert 'href="/api/projects/mine/snapshots/3/export.jsonl"' in snapshot
    assert f'href="/models/{v2.pk}/"' in rhtml  # a restorer tuned against it
    assert "used-by" in rhtml  # the RL job that took it as an input
    assert "3.20e-05" in rhtml and ">48<" in rhtml  # a small loss, a whole count
    assert "models/reward/mine/abc/" in rhtml
    assert f'href="/api/models/{reward.pk}/artifact.zip"' in rhtml  # the artifact's download


def test_versions_of_other_projects_answer_404_annotators_403_managers_read_anonymous_users_log_in(
    client, registry, annotator, engineer, make_user
):
    client.force_login(engineer)
    assert client.get(f"/models/{registry['foreign'].pk}/").status_code == 404
    assert client.get("/models/999999/").status_code == 404
    client.force_login(annotator)
    assert client.get("/models/").status_code == 403
    assert client.get(f"/models/{registry['v1'].pk}/").status_code == 403
    manager = make_user(Role.MANAGER, "boss")
    client.force_login(manager)
    assert client.get(f"/models/{registry['v1'].pk}/").status_code == 200
    html = client.get("/models/").content.decode()
    assert 'href="/models/"' in html and 'href="/jobs/"' not in html  # no jobs link for a manager
    client.logout()
    for url in ("/models/", f"/models/{registry['v1'].pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"


def test_the_pages_read_a_bounded_number_of_queries(eng_client, registry, django_assert_max_num_queries):
    parent = registry["v3"]
    for number in range(4, 30):  # a long line of RL rounds
        parent = ModelVersion.objects.create(
            kind=ModelKind.RESTORER, name="mine", version=number, parent=parent
        )
    # session, user, count, rows (parent and maker joined), loop states, version changes
    with django_assert_max_num_queries(7):
        assert len(listed(eng_client.get("/models/"))) > 30
    # session, user, version, statuses (2), id tree, lineage rows, used by jobs, the evaluation of a candidate
    # against it (its gallery, when it has none of its own)
    with django_assert_max_num_queries(10):
        html = eng_client.get(f"/models/{parent.pk}/").content.decode()
    assert html.count('href="/models/') >= 28
