"""Importing faces: folder, zip, API upload; every bad file is refused with a reason and nothing is lost."""

import io
import zipfile

import pytest
from PIL import Image
from rest_framework.test import APIClient

from annotation_web.accounts.services import token_for_user
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import iter_folder, iter_zip
from annotation_web.labeling.models import FaceInput, Pair
from annotation_web.storage import get_storage
from restorer.degradations import DegradationParams
from tests.annotation_web.conftest import face_png


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.django_db
def test_folder_import_stores_hq_and_lq_with_recorded_degradation(make_project, tmp_path):
    project = make_project(pairs=0)
    folder = tmp_path / "faces"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.png").write_bytes(face_png(1))
    (folder / "sub" / "two.jpg").write_bytes(face_png(2))
    (folder / "notes.txt").write_text("not an image")
    report = imports.face_inputs_import(project=project, source=iter_folder(folder), batch="b1")
    assert len(report.imported) == 2 and not report.rejected
    storage = get_storage()
    for face_input in FaceInput.objects.filter(project=project):
        params = DegradationParams.from_dict(face_input.degradation)
        assert params.preset == "gfpgan" and params.resolution == project.resolution
        assert 60 <= params.jpeg_quality <= 100
        assert face_input.instruction
        lq = Image.open(io.BytesIO(storage.get(face_input.lq_key)))
        hq = Image.open(io.BytesIO(storage.get(face_input.hq_key)))
        assert lq.size == hq.size == (project.resolution, project.resolution)
    again = imports.face_inputs_import(project=project, source=iter_folder(folder))
    assert len(again.duplicates) == 2 and not again.imported
    assert FaceInput.objects.filter(project=project).count() == 2


@pytest.mark.django_db
def test_zip_import_refuses_path_tricks_and_non_images_but_keeps_the_rest(make_project, settings):
    settings.IMPORT_MAX_IMAGE_BYTES = 50_000
    project = make_project(pairs=0)
    archive = make_zip(
        {
            "good/a.png": face_png(3),
            "../escape.png": face_png(4),
            "/abs.png": face_png(5),
            "fake.png": b"this is not a png",
            "huge.png": b"\x89PNG" + b"0" * 60_000,
            "tiny.png": face_png(6, size=8),
            "__MACOSX/._a.png": b"junk",
        }
    )
    report = imports.face_inputs_import(project=project, source=iter_zip(io.BytesIO(archive)))
    assert len(report.imported) == 1
    reasons = " | ".join(report.rejected)
    assert "../escape.png: unsafe path" in reasons and "/abs.png: unsafe path" in reasons
    assert "fake.png: not a readable image" in reasons
    assert "huge.png" in reasons and "over the limit" in reasons
    assert "tiny.png" in reasons and "smaller than" in reasons
    assert len(report.rejected) == 5


@pytest.mark.django_db
def test_import_command_makes_candidates_pairs_and_gold(make_project, tmp_path):
    from django.core.management import call_command

    project = make_project(pairs=0)
    folder = tmp_path / "faces"
    folder.mkdir()
    for seed in range(3):
        (folder / f"{seed}.png").write_bytes(face_png(seed + 10))
    out = io.StringIO()
    call_command(
        "import_faces",
        str(folder),
        project=project.slug,
        classical_candidates=True,
        gold=True,
        stdout=out,
        verbosity=0,
    )
    assert "imported 3" in out.getvalue()
    assert (
        Pair.objects.filter(project=project, is_gold=False).count() == 9
    )  # 3 classical candidates -> 3 pairs each
    gold = Pair.objects.filter(project=project, is_gold=True)
    assert gold.count() == 3
    for pair in gold:
        better = pair.candidate_a if pair.gold_outcome == "a" else pair.candidate_b
        assert better.model_version.name == "hq-original"


@pytest.mark.django_db
def test_import_api_queues_a_job_that_imports_the_zip(
    make_project, engineer, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from annotation_web.celery import app

    app.conf.task_always_eager = True
    try:
        project = make_project(pairs=0)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
        upload = io.BytesIO(make_zip({"x.png": face_png(20), "y.png": face_png(21), "bad.png": b"nope"}))
        upload.name = "faces.zip"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/projects/{project.slug}/imports/", {"file": upload, "batch": "api"}, format="multipart"
            )
        assert response.status_code == 202, response.content
        job = Job.objects.get(pk=response.json()["id"])
        assert job.state == JobState.SUCCEEDED, job.error
        assert job.outputs["imported"] == 2 and len(job.outputs["rejected"]) == 1
        assert job.progress_done == 3
        assert FaceInput.objects.filter(project=project, batch="api").count() == 2
    finally:
        app.conf.task_always_eager = False


@pytest.mark.django_db
def test_import_api_refuses_a_non_image_and_a_wrong_payload(make_project, engineer):
    project = make_project(pairs=0)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    upload = io.BytesIO(b"%PDF-1.4 definitely not an image")
    upload.name = "face.png"
    response = client.post(f"/api/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "not a readable image" in response.json()["detail"]
    both_missing = client.post(f"/api/projects/{project.slug}/imports/", {}, format="json")
    assert both_missing.status_code == 400
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_full_disk_fails_clearly_and_leaves_no_half_imported_input(make_project, engineer, monkeypatch):
    import errno

    from annotation_web.storage import LocalStorage

    project = make_project(pairs=0)

    def disk_full(self, key, data, *, content_type=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStorage, "put", disk_full)
    monkeypatch.setattr(LocalStorage, "put_stream", disk_full)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    upload = io.BytesIO(face_png(30))
    upload.name = "face.png"
    response = client.post(f"/api/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 507 and "No space left" in response.json()["detail"]
    assert not Job.objects.exists()
    # An import already running when the disk fills up: the file fails, no row points at a missing image.
    with pytest.raises(OSError):
        imports.face_inputs_import(project=project, source=iter_folder_of_one(face_png(31)))
    assert not FaceInput.objects.filter(project=project).exists()


def iter_folder_of_one(data: bytes):
    from annotation_web.labeling.ingest import SourceFile

    yield SourceFile("one.png", data)
