"""The compare page (`/projects/<slug>/compare/`): two restorer versions of a project side by side, their metrics
at the registry's precision, the paired held-out evaluation, the human leaderboard's verdict on planted
judgments, the same inputs' images through signed URLs; promote and roll back from it with who, when and why;
who may read and who may act; and the gallery an evaluation stores for it."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image

from annotation_web.accounts.models import Role, User
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.models import Candidate, FaceInput, Outcome, Pair
from annotation_web.labeling.pairs import project_create
from annotation_web.loop import evaluation, selectors
from annotation_web.loop.models import LoopEvent, LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import get_storage
from tests.annotation_web.loop import test_loop
from tests.annotation_web.loop.test_leaderboard import _judgment, save_all
from tests.annotation_web.loop.test_loop import _with_candidate, tick

# The loop tests' fixtures (a tiny restorer in use on a 32 px project), for the evaluation's gallery.
loop_project = test_loop.loop_project
restorer_folder = test_loop.restorer_folder
restorer_in_use = test_loop.restorer_in_use

INPUTS = 6
ANNOTATORS = 10
# Of each annotator's judgment of a (old, new) pair, the share that prefers the new version.
NEW_WINS = 0.85


def png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def plant_comparison(project, *, judged: bool = True) -> dict:
    """Two restorers made by the project's jobs: `old` in use, `new` its candidate, evaluated against `old`
    with a gallery; their candidates on `INPUTS` inputs (every image stored), judged by `ANNOTATORS` people
    who prefer `new` `NEW_WINS` of the time when `judged`."""
    storage = get_storage()
    faces = []
    for index in range(INPUTS):
        face = FaceInput.objects.create(
            project=project,
            source_name=f"face-{index}.png",
            content_hash=f"{project.slug}-cmp-{index}",
            lq_key=f"inputs/{project.slug}/{index}/lq.png",
            hq_key=f"inputs/{project.slug}/{index}/hq.png" if index % 2 == 0 else "",
        )
        storage.put(face.lq_key, png(100 + index))
        if face.hq_key:
            storage.put(face.hq_key, png(200 + index))
        faces.append(face)
    old = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="cmp",
        version=1,
        made_by_job=Job.objects.create(kind="train_restorer", project=project, state=JobState.SUCCEEDED),
        metrics={"val_psnr": 24.5, "steps": 4000.0, "loss": 0.0000123},
    )
    evaluate_job = Job.objects.create(kind="evaluate", project=project, state=JobState.SUCCEEDED)
    gallery_images = []
    for face in faces[:3]:
        row = {"input": face.pk}
        for role, seed in (("in_use", 300), ("candidate", 400)):
            key = f"gallery/test/{face.pk}/{role}.png"
            storage.put(key, png(seed + face.pk))
            row[role] = key
        gallery_images.append(row)
    new = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="cmp",
        version=2,
        parent=old,
        made_by_job=Job.objects.create(kind="train_rl", project=project, state=JobState.SUCCEEDED),
        metrics={
            "rl": {"steps": 40},
            "evaluation": {
                "psnr": 25.25,
                "ssim": 0.8125,
                "held_out": 0.625,
                "in_use": {"psnr": 24.0, "ssim": 0.75, "held_out": 0.5},
                "against": old.pk,
                "job": evaluate_job.pk,
                "inputs": [face.pk for face in faces[:3]],
                "seeds": 2,
                "num_steps": 20,
                "gallery": {"seed": 0, "num_steps": 20, "project": project.pk, "images": gallery_images},
            },
        },
    )
    LoopState.objects.update_or_create(project=project, defaults={"restorer": old, "candidate": new})
    VersionChange.objects.create(
        project=project, kind="restorer", action="put_in_use", version=old, reason="the first restorer"
    )
    pairs = []
    for face in faces:
        a = Candidate.objects.create(
            face_input=face, model_version=old, image_key=f"c/{project.slug}-{face.pk}-old.png"
        )
        b = Candidate.objects.create(
            face_input=face, model_version=new, image_key=f"c/{project.slug}-{face.pk}-new.png"
        )
        storage.put(a.image_key, png(500 + face.pk))
        storage.put(b.image_key, png(600 + face.pk))
        pairs.append(
            Pair.objects.create(project=project, face_input=face, candidate_a=a, candidate_b=b, open_slots=0)
        )
    if judged:
        rng = np.random.default_rng(7)
        annotators = User.objects.bulk_create(
            [User(username=f"cmp-{project.pk}-{k}", role=Role.ANNOTATOR) for k in range(ANNOTATORS)]
        )
        save_all(
            [
                _judgment(pair, annotator, Outcome.B if rng.random() < NEW_WINS else Outcome.A)
                for annotator in annotators
                for pair in pairs
            ]
        )
    return {"old": old, "new": new, "faces": faces, "gallery": gallery_images}


@pytest.fixture
def project(make_project):
    return make_project(pairs=0, slug="cmp")


@pytest.fixture
def planted(project):
    return plant_comparison(project)


def page_text(response) -> str:
    """The page's visible text, whitespace folded (what a reader sees, for assertions on sentences)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_compare_page_shows_both_versions_metrics_and_the_leaderboard_verdict(
    client, planted, engineer, project
):
    old, new = planted["old"], planted["new"]
    login(client, engineer)
    response = client.get(f"/projects/{project.slug}/compare/")  # defaults: in use (A) against its candidate
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'id="version-a" data-version="{old.pk}"' in html
        and f'id="version-b" data-version="{new.pk}"' in html
    )
    text = page_text(response)
    # Every metric of either, at the registry's precision ("4000", not "4000.0"), "—" where one has none.
    metrics = dict(re.findall(r'<tr data-metric="([^"]+)"><td>[^<]*</td><td class="num">([^<]*)</td>', html))
    assert metrics["val_psnr"] == "24.5" and metrics["steps"] == "4000" and metrics["loss"] == "1.23e-05"
    assert metrics["evaluation.psnr"] == "—"  # A has no evaluation of its own
    assert "evaluation.gallery.seed" not in metrics  # the gallery is images, not figures
    # The paired evaluation: B measured against A, B − A per measure, with units.
    psnr_row = re.search(r'<tr data-measure="psnr">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', psnr_row) == ["24", "25.25", "+1.25"]
    assert "dB" in psnr_row
    assert "B was evaluated against A" in text and "the same 3 held-out inputs, 2 seeds each" in text

    # The verdict: what the fitted board says of the planted judgments (the new one wins 85% of them).
    board = selectors.project_leaderboard(project=project)
    difference, lower, upper = board.difference(old.pk, new.pk)
    assert upper < 0 < -difference  # B clearly ahead on these data
    judged = INPUTS * ANNOTATORS
    assert f"B ({new}) ahead, {judged} judgments of A-vs-B pairs" in text
    assert f"{difference:+.2f}" in text and f"[{lower:+.2f}, {upper:+.2f}]" in text

    # Swapped, the same verdict from the other side.
    swapped = page_text(client.get(f"/projects/{project.slug}/compare/?a={new.pk}&b={old.pk}"))
    assert f"A ({new}) ahead, {judged} judgments of A-vs-B pairs" in swapped
    assert "A was evaluated against B" in swapped
    # One side chosen: the other comes from the defaults, never the same version.
    only_b = client.get(f"/projects/{project.slug}/compare/?b={old.pk}").content.decode()
    assert f'id="version-a" data-version="{new.pk}"' in only_b
    assert f'id="version-b" data-version="{old.pk}"' in only_b


@pytest.mark.django_db
def test_without_judgments_the_two_are_not_separated_yet(client, make_project, engineer):
    project = make_project(pairs=0, slug="unjudged")
    plant_comparison(project, judged=False)
    login(client, engineer)
    text = page_text(client.get(f"/projects/{project.slug}/compare/"))
    assert "not separated yet, 0 judgments of A-vs-B pairs" in text
    assert "no judgments of cross-version pairs yet" in text


@pytest.mark.django_db
def test_the_same_inputs_are_shown_through_signed_urls_from_the_evaluation_gallery_else_the_candidates(
    client, planted, engineer, project
):
    old, new = planted["old"], planted["new"]
    login(client, engineer)
    html = client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b={new.pk}").content.decode()
    assert 'data-source="evaluation"' in html
    rows = re.findall(r'<tr data-input="(\d+)">(.*?)</tr>', html, re.S)
    assert [int(pk) for pk, _ in rows] == [row["input"] for row in planted["gallery"]]
    storage = get_storage()
    faces = {face.pk: face for face in planted["faces"]}
    for pk, row in rows:
        face = faces[int(pk)]
        gallery = next(g for g in planted["gallery"] if g["input"] == face.pk)
        sources = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', row)
        served = {alt: client.get(unescape(src)) for src, alt in sources}
        by_role = {
            "degraded (LQ)": face.lq_key,
            "restored by A": gallery["in_use"],
            "restored by B": gallery["candidate"],
            "original (HQ)": face.hq_key,
        }
        for alt, response in served.items():
            key = next(key for role, key in by_role.items() if role in alt)
            assert response.status_code == 200 and response.content == storage.get(key), alt
        assert ("original (HQ)" in " ".join(served)) == bool(face.hq_key)  # HQ where known
        assert all("/files/" in src and "gallery" not in src for src, _ in sources)  # signed, key not shown

    # Two versions of which neither was evaluated against the other: the candidates both generated.
    third = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="cmp",
        version=3,
        made_by_job=Job.objects.create(kind="train_rl", project=project, state=JobState.SUCCEEDED),
    )
    for face in planted["faces"][:2]:
        Candidate.objects.create(face_input=face, model_version=third, image_key=f"c/third-{face.pk}.png")
    html = client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b={third.pk}").content.decode()
    assert 'data-source="candidates"' in html
    assert [int(pk) for pk in re.findall(r'<tr data-input="(\d+)">', html)] == [
        face.pk for face in planted["faces"][:2]
    ]
    assert "Neither version was evaluated against the other" in html


@pytest.mark.django_db
def test_promote_from_the_page_records_who_when_and_why_and_shows_the_new_version_in_use(
    client, planted, engineer, project
):
    old, new = planted["old"], planted["new"]
    login(client, engineer)
    before = timezone.now()
    response = client.post(
        f"/projects/{project.slug}/compare/promote/",
        {"a": old.pk, "b": new.pk, "version": new.pk, "reason": "people prefer it 85% of the time"},
    )
    assert response.status_code == 302
    change = VersionChange.objects.filter(project=project, action="promote").get()
    assert change.version == new and change.previous == old and change.by == engineer
    assert change.reason == "people prefer it 85% of the time"
    assert before <= change.created_at <= timezone.now() + timedelta(seconds=1)
    assert LoopState.objects.get(project=project).restorer == new
    event = LoopEvent.objects.get(project=project, decision=LoopEvent.Decision.PROMOTED)
    assert engineer.username in event.reason and "people prefer it" in event.reason

    shown = client.get(response["Location"])
    text = page_text(shown)
    assert f"Promote restorer {new.name}@v{new.version} (was {old.name}@v{old.version}) by eng at" in text
    assert "people prefer it 85% of the time" in text
    card_b = re.search(r'id="version-b".*?</section>', shown.content.decode(), re.S).group(0)
    assert "status-in-use" in card_b
    assert 'id="promote-b" disabled' in shown.content.decode()

    # Roll back from the same page: the old one is back, recorded with its reason.
    rolled = client.post(
        f"/projects/{project.slug}/loop/rollback/",
        {"a": old.pk, "b": new.pk, "back": "compare", "kind": "restorer", "reason": "artifacts on faces"},
    )
    assert rolled.status_code == 302 and rolled["Location"].startswith(f"/projects/{project.slug}/compare/")
    assert LoopState.objects.get(project=project).restorer == old
    back = VersionChange.objects.filter(project=project, action="rollback").get()
    assert back.version == old and back.by == engineer and back.reason == "artifacts on faces"


@pytest.mark.django_db
def test_a_promotion_without_a_reason_or_of_an_unknown_version_is_refused_and_changes_nothing(
    client, planted, engineer, project
):
    old, new = planted["old"], planted["new"]
    login(client, engineer)
    url = f"/projects/{project.slug}/compare/promote/"
    refused = client.post(url, {"a": old.pk, "b": new.pk, "version": new.pk, "reason": "   "})
    assert refused.status_code == 400
    assert "reason: This field may not be blank." in page_text(refused)
    assert client.post(url, {"a": old.pk, "b": new.pk, "version": "x", "reason": "why"}).status_code == 400
    assert (
        client.post(url, {"a": old.pk, "b": new.pk, "version": 999_999, "reason": "why"}).status_code == 404
    )
    # A rollback with nothing before the version in use: refused with why, the typed reason kept.
    refused = client.post(
        f"/projects/{project.slug}/loop/rollback/",
        {"a": old.pk, "b": new.pk, "back": "compare", "reason": "try it"},
    )
    assert refused.status_code == 400 and "has no earlier restorer to roll back to" in page_text(refused)
    assert ">try it</textarea>" in refused.content.decode()
    assert LoopState.objects.get(project=project).restorer == old
    assert not VersionChange.objects.filter(project=project).exclude(action="put_in_use").exists()


@pytest.mark.django_db
def test_a_version_of_another_project_cannot_be_compared_or_promoted(client, planted, engineer, project):
    theirs = project_create(name="Theirs", slug="theirs-cmp")
    foreign = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="theirs",
        made_by_job=Job.objects.create(kind="train_rl", project=theirs, state=JobState.SUCCEEDED),
    )
    login(client, engineer)
    old = planted["old"]
    assert client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b={foreign.pk}").status_code == 404
    assert client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b=999999").status_code == 404
    reward = ModelVersion.objects.create(kind=ModelKind.REWARD, name="not-a-restorer")
    assert client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b={reward.pk}").status_code == 404
    promoted = client.post(
        f"/projects/{project.slug}/compare/promote/",
        {"a": old.pk, "b": foreign.pk, "version": foreign.pk, "reason": "sneaky"},
    )
    assert promoted.status_code == 404
    assert LoopState.objects.get(project=project).restorer == old
    # Bad input is a clear 400.
    same = client.get(f"/projects/{project.slug}/compare/?a={old.pk}&b={old.pk}")
    assert same.status_code == 400 and "a and b are the same version" in page_text(same)
    garbage = client.get(f"/projects/{project.slug}/compare/?a=1;drop&b={old.pk}")
    assert garbage.status_code == 400 and "a must be a model version id" in page_text(garbage)
    # A project the engineer is not a member of answers like one that does not exist.
    assert client.get(f"/projects/{theirs.slug}/compare/").status_code == 404


@pytest.mark.django_db
def test_annotators_are_refused_and_managers_read_but_cannot_promote(client, planted, make_user, project):
    old, new = planted["old"], planted["new"]
    compare = f"/projects/{project.slug}/compare/?a={old.pk}&b={new.pk}"
    promote = f"/projects/{project.slug}/compare/promote/"
    rollback = f"/projects/{project.slug}/loop/rollback/"
    body = {"a": old.pk, "b": new.pk, "version": new.pk, "reason": "because", "back": "compare"}

    login(client, make_user(Role.ANNOTATOR, "judge"))
    assert client.get(compare).status_code == 403
    assert client.post(promote, body).status_code == 403
    assert client.post(rollback, body).status_code == 403
    assert client.get(f"/models/{new.pk}/").status_code == 403

    login(client, make_user(Role.MANAGER, "boss"))
    read = client.get(compare)
    assert read.status_code == 200 and "Managers read this page" in page_text(read)
    assert 'id="promote-a"' not in read.content.decode()
    assert client.post(promote, body).status_code == 403
    assert client.post(rollback, body).status_code == 403
    assert LoopState.objects.get(project=project).restorer == old
    assert not VersionChange.objects.filter(project=project).exclude(action="put_in_use").exists()

    client.logout()
    assert client.get(compare).status_code == 302  # to the login page


@pytest.mark.django_db
def test_the_model_page_links_to_the_comparison_and_shows_the_gallery(client, planted, engineer, project):
    old, new = planted["old"], planted["new"]
    login(client, engineer)
    html = client.get(f"/models/{new.pk}/").content.decode()
    assert f'href="/projects/{project.slug}/compare/?a={old.pk}&amp;b={new.pk}"' in html
    assert 'id="gallery"' in html
    assert [int(pk) for pk in re.findall(r'<tr data-input="(\d+)">', html)] == [
        row["input"] for row in planted["gallery"]
    ]
    src = re.search(r'alt="input \d+ restored by this version"', html)
    assert src is not None
    # The version in use links to its candidate; its gallery is its side of the candidate's evaluation.
    html = client.get(f"/models/{old.pk}/").content.decode()
    assert f'href="/projects/{project.slug}/compare/?a={old.pk}&amp;b={new.pk}"' in html
    assert 'id="gallery"' in html
    assert f'href="/models/{new.pk}/"' in html  # shown beside the candidate it was measured against
    assert [int(pk) for pk in re.findall(r'<tr data-input="(\d+)">', html)] == [
        row["input"] for row in planted["gallery"]
    ]
    # Its own outputs (the in-use side of that evaluation), not the candidate's.
    shown = re.findall(r'<img src="([^"]+)" alt="input \d+ restored by this version"', html)
    assert [client.get(unescape(src)).content for src in shown] == [
        get_storage().get(row["in_use"]) for row in planted["gallery"]
    ]


@pytest.mark.django_db
def test_an_evaluation_stores_a_gallery_of_both_restorers_on_the_held_out_inputs(
    client, loop_project, restorer_in_use, restorer_folder, eager_jobs, engineer
):
    candidate = _with_candidate(loop_project, restorer_folder)
    started = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=started.job_id)
    assert job.kind == evaluation.EVALUATE and job.state == JobState.SUCCEEDED, job.error
    record = ModelVersion.objects.get(pk=candidate.pk).metrics["evaluation"]
    held_out = LoopState.objects.get(project=loop_project).held_out_input_ids
    gallery = record["gallery"]
    assert gallery["seed"] == evaluation.GALLERY_SEED and gallery["num_steps"] == record["num_steps"]
    assert [row["input"] for row in gallery["images"]] == sorted(held_out)[: evaluation.GALLERY_INPUTS]
    storage = get_storage()
    for row in gallery["images"]:
        assert row["candidate"] != row["in_use"]
        for role in ("candidate", "in_use"):
            assert row[role].startswith(f"gallery/{candidate.pk}/")
            assert not row[role].startswith(restorer_in_use.artifact_key)
            image = Image.open(io.BytesIO(storage.get(row[role])))
            assert image.format == "PNG" and image.size == (32, 32)  # the tiny restorer's resolution
        # The same weights, the same seed, deterministic sampling: the same image twice.
        assert storage.get(row["candidate"]) == storage.get(row["in_use"])
    # The compare page then shows these images for the two.
    login(client, engineer)
    html = client.get(
        f"/projects/{loop_project.slug}/compare/?a={restorer_in_use.pk}&b={candidate.pk}"
    ).content.decode()
    assert 'data-source="evaluation"' in html
    assert len(re.findall(r'alt="input \d+ restored by [AB]"', html)) == 2 * len(gallery["images"])
