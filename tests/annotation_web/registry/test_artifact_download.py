"""`GET /api/models/<id>/artifact.zip`: a version's artifact files, exactly and byte for byte, from the local
storage and from the real S3 server; for engineers and managers who may read the version, by token or session;
annotators refused, unknown and other projects' versions not found."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.pairs import project_create
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.registry.services import model_version_register
from annotation_web.storage import _cached_storage, get_storage

S3_ENDPOINT = os.environ.get("PREF_TEST_S3_ENDPOINT")


def artifact_folder(root, *, seed: int) -> dict[str, bytes]:
    """An artifact folder with nested and binary files, plus a checkpoint (never uploaded); its uploaded files."""
    files = {
        "config.json": json.dumps(
            {"kind": "restorer", "version": 1, "seed": seed, "resolution": 32}
        ).encode(),
        "metrics.json": json.dumps({"val_psnr": 27.5 + seed}).encode(),
        "model.safetensors": os.urandom(70_000),
        "tokenizer/vocab.txt": b"face\nrestore\n" * 50,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "step-3.safetensors").write_bytes(b"a checkpoint, not part of the artifact")
    return files


def registered(tmp_path, *, name: str = "dl", seed: int = 0) -> tuple[ModelVersion, dict[str, bytes]]:
    folder = tmp_path / f"artifact-{name}-{seed}"
    folder.mkdir()
    files = artifact_folder(folder, seed=seed)
    return model_version_register(kind=ModelKind.RESTORER, name=name, folder=folder), files


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=user)}")
    return client


def zip_members(response) -> dict[str, bytes]:
    assert response.status_code == 200, response.content[:500] if not response.streaming else ""
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def url(version: ModelVersion | int) -> str:
    return f"/api/models/{version if isinstance(version, int) else version.pk}/artifact.zip"


def check_download(client, version: ModelVersion, files: dict[str, bytes]) -> None:
    response = client.get(url(version))
    folder = f"restorer-{version.name}-v{version.version}"
    assert response["Content-Disposition"] == f'attachment; filename="{folder}.zip"'
    members = zip_members(response)
    assert members == {f"{folder}/{name}": data for name, data in files.items()}


@pytest.mark.django_db
def test_the_zip_holds_exactly_the_artifact_files_from_the_local_storage(tmp_path, make_user):
    version, files = registered(tmp_path, seed=1)
    # A second registration of the same name lives under its own prefix: none of its files may leak in.
    sibling, sibling_files = registered(tmp_path, seed=2)
    assert version.artifact_key != sibling.artifact_key and sibling.version == version.version + 1
    engineer = make_user(Role.ENGINEER)
    check_download(token_client(engineer), version, files)
    check_download(token_client(engineer), sibling, sibling_files)
    # Session auth (the pages' links) for a manager.
    browser = Client()
    browser.force_login(make_user(Role.MANAGER))
    check_download(browser, version, files)


@pytest.fixture
def s3_storage(settings):
    if not S3_ENDPOINT:
        pytest.skip("needs the S3 server that infra/test.sh starts (PREF_TEST_S3_ENDPOINT)")
    settings.STORAGE_BACKEND = "s3"
    settings.S3_ENDPOINT_URL = S3_ENDPOINT
    settings.S3_ACCESS_KEY = os.environ.get("PREF_S3_ACCESS_KEY", "pref-key")
    settings.S3_SECRET_KEY = os.environ.get("PREF_S3_SECRET_KEY", "pref-secret")
    settings.S3_BUCKET = "pref-test"
    _cached_storage.cache_clear()
    yield get_storage()
    _cached_storage.cache_clear()


@pytest.mark.s3
@pytest.mark.django_db
def test_the_zip_holds_exactly_the_artifact_files_from_s3(tmp_path, make_user, s3_storage):
    # A name of its own: the bucket is shared by every test run.
    version, files = registered(tmp_path, name=f"dl-{uuid.uuid4().hex[:8]}", seed=3)
    assert sorted(s3_storage.list(version.artifact_key)) == sorted(version.artifact_key + n for n in files)
    check_download(token_client(make_user(Role.ENGINEER)), version, files)
    check_download(token_client(make_user(Role.MANAGER)), version, files)


@pytest.mark.django_db
def test_annotators_are_refused_and_anonymous_callers_asked_to_authenticate(tmp_path, make_user):
    version, _ = registered(tmp_path)
    refused = token_client(make_user(Role.ANNOTATOR)).get(url(version))
    assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"
    assert APIClient().get(url(version)).status_code == 401


@pytest.mark.django_db
def test_unknown_ids_other_projects_versions_and_versions_without_artifact_are_not_found(tmp_path, make_user):
    engineer = make_user(Role.ENGINEER)
    client = token_client(engineer)
    missing = client.get(url(987654))
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")
    # Made by a job of a project the engineer is not a member of (projects made after the engineer).
    elsewhere = project_create(name="Elsewhere", slug="elsewhere-dl")
    version, _ = registered(tmp_path, name="theirs")
    version.made_by_job = Job.objects.create(kind="train_rl", project=elsewhere, state=JobState.SUCCEEDED)
    version.save()
    assert client.get(url(version)).status_code == 404
    superuser = user_create(username="root-dl", password="pw-123456", role=Role.ENGINEER)
    superuser.is_superuser = True
    superuser.save()
    assert zip_members(token_client(superuser).get(url(version)))
    classical = ModelVersion.objects.create(kind=ModelKind.CLASSICAL, name="bicubic-dl")
    refused = client.get(url(classical))
    assert refused.status_code == 404 and "has no artifact files" in refused.json()["detail"]


@pytest.mark.django_db
def test_a_client_that_asks_for_a_zip_gets_it(tmp_path, make_user):
    version, files = registered(tmp_path)
    response = token_client(make_user(Role.ENGINEER)).get(url(version), HTTP_ACCEPT="application/zip")
    assert len(zip_members(response)) == len(files)
