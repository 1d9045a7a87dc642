"""Model versions are made in one place and numbered one way, whichever door a caller uses; the registry's
command and API read and write through its selectors and services."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation_web.accounts.services import token_for_user
from annotation_web.errors import NotFound, ServiceError
from annotation_web.labeling.models import Candidate
from annotation_web.registry import selectors, services
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import get_storage


def artifact_folder(tmp_path, name: str = "artifact"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"resolution": 32}))
    (folder / "metrics.json").write_text(json.dumps({"loss": 0.5}))
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-1.pt").write_bytes(b"not uploaded")
    return folder


@pytest.fixture
def creations(monkeypatch):
    """Every call of the one creation path, by the kind and name it was asked for."""
    seen: list[tuple[str, str]] = []
    create = services._model_version_create

    def spy(**kwargs):
        seen.append((kwargs["kind"], kwargs["name"]))
        return create(**kwargs)

    monkeypatch.setattr(services, "_model_version_create", spy)
    return seen


@pytest.mark.django_db
def test_both_doors_go_through_the_one_creation_path(tmp_path, creations):
    services.model_version_get_or_create(kind=ModelKind.CLASSICAL, name="bicubic")
    services.model_version_get_or_create(kind=ModelKind.CLASSICAL, name="bicubic")  # found: nothing made
    services.model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=artifact_folder(tmp_path))
    assert creations == [(ModelKind.CLASSICAL, "bicubic"), (ModelKind.RESTORER, "tiny")]
    assert ModelVersion.objects.count() == 2


@pytest.mark.django_db
def test_both_doors_number_versions_the_same_way(tmp_path):
    # A name first made without an artifact: version 1; registering an artifact under it makes version 2.
    first = services.model_version_get_or_create(kind=ModelKind.RESTORER, name="shared", description="seed")
    registered = services.model_version_register(
        kind=ModelKind.RESTORER, name="shared", folder=artifact_folder(tmp_path), parent=first
    )
    assert (first.version, registered.version) == (1, 2)
    # Artifacts live under a prefix of their own upload (written before the row points at it).
    assert registered.parent == first and re.fullmatch(
        r"models/restorer/shared/[0-9a-f]{32}/", registered.artifact_key
    )
    # A name first registered: version 1, and asking for version 1 by the other door answers that very row.
    fresh = services.model_version_register(
        kind=ModelKind.REWARD, name="fresh", folder=artifact_folder(tmp_path, "r")
    )
    assert fresh.version == 1
    assert services.model_version_get_or_create(kind=ModelKind.REWARD, name="fresh") == fresh
    # Numbers count per (kind, name).
    other = services.model_version_register(
        kind=ModelKind.REWARD, name="other", folder=artifact_folder(tmp_path, "o")
    )
    again = services.model_version_register(
        kind=ModelKind.REWARD, name="fresh", folder=artifact_folder(tmp_path, "r2")
    )
    assert (other.version, again.version) == (1, 2)


@pytest.mark.django_db
def test_register_uploads_the_artifact_and_records_its_config_metrics_and_lineage(tmp_path):
    version = services.model_version_register(
        kind=ModelKind.REWARD,
        name="rm",
        folder=artifact_folder(tmp_path),
        lineage={"judgments": 3},
        description="trained",
    )
    storage = get_storage()
    assert version.artifact_key.startswith("models/reward/rm/")
    assert sorted(storage.list(version.artifact_key)) == [
        version.artifact_key + "config.json",
        version.artifact_key + "metrics.json",
        version.artifact_key + "model.safetensors",
    ]
    assert version.config == {"resolution": 32, "lineage": {"judgments": 3}}
    assert version.metrics == {"loss": 0.5} and version.description == "trained"


@pytest.mark.django_db
def test_a_failed_upload_leaves_no_version_behind(tmp_path, monkeypatch):
    def broken_upload(*, folder, prefix):
        raise OSError("storage down")

    monkeypatch.setattr(services, "artifact_upload", broken_upload)
    with pytest.raises(OSError):
        services.model_version_register(kind=ModelKind.RESTORER, name="x", folder=artifact_folder(tmp_path))
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_refusals(tmp_path):
    with pytest.raises(ServiceError, match="only restorer and reward"):
        services.model_version_register(kind=ModelKind.CLASSICAL, name="x", folder=artifact_folder(tmp_path))
    with pytest.raises(ServiceError, match="no config.json"):
        services.model_version_register(kind=ModelKind.RESTORER, name="x", folder=tmp_path)
    with pytest.raises(ServiceError, match="unknown model kind"):
        services.model_version_get_or_create(kind="nonsense", name="x")
    assert not ModelVersion.objects.exists()
    with pytest.raises(NotFound):
        selectors.model_version_loadable(pk=999, kind=ModelKind.RESTORER)
    bare = services.model_version_get_or_create(kind=ModelKind.RESTORER, name="bare")
    with pytest.raises(ServiceError, match="no artifact to load"):
        selectors.model_version_loadable(pk=bare.pk, kind=ModelKind.RESTORER)


@pytest.mark.django_db
def test_candidates_point_at_registry_versions(make_project):
    project = make_project(pairs=1)
    candidate = Candidate.objects.filter(face_input__project=project).select_related("model_version").first()
    assert isinstance(candidate.model_version, ModelVersion)
    assert (
        ModelVersion._meta.app_label == "registry" and ModelVersion._meta.db_table == "registry_modelversion"
    )
    assert candidate.model_version.candidates.filter(pk=candidate.pk).exists()


@pytest.mark.django_db
def test_register_model_command(tmp_path, capsys):
    call_command("register_model", str(artifact_folder(tmp_path)), kind="restorer", name="cmd")
    parent = ModelVersion.objects.get(name="cmd")
    call_command(
        "register_model", str(artifact_folder(tmp_path, "b")), kind="restorer", name="cmd", parent=parent.pk
    )
    child = ModelVersion.objects.get(name="cmd", version=2)
    assert child.parent == parent
    assert f"registered restorer:cmd@v2 (id {child.pk})" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no model version 999"):
        call_command(
            "register_model", str(artifact_folder(tmp_path, "c")), kind="restorer", name="cmd", parent=999
        )
    with pytest.raises(CommandError, match="not an artifact folder"):
        call_command("register_model", str(tmp_path), kind="reward", name="cmd")


@pytest.mark.django_db
def test_model_list_api(tmp_path, engineer):
    restorer = services.model_version_register(
        kind=ModelKind.RESTORER, name="tiny", folder=artifact_folder(tmp_path), lineage={"job": 7}
    )
    services.model_version_get_or_create(kind=ModelKind.CLASSICAL, name="bicubic")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=engineer)}")
    everything = client.get("/api/models/").json()["results"]
    assert [(m["kind"], m["name"], m["version"]) for m in everything] == [
        ("classical", "bicubic", 1),
        ("restorer", "tiny", 1),
    ]
    only = client.get("/api/models/?kind=restorer").json()["results"]
    assert only == [
        {
            "id": restorer.pk,
            "kind": "restorer",
            "name": "tiny",
            "version": 1,
            "description": "",
            "artifact_key": restorer.artifact_key,
            "parent": None,
            "lineage": {"job": 7},
            "metrics": {"loss": 0.5},
            "created_at": only[0]["created_at"],
        }
    ]
