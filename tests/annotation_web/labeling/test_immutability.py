"""What was judged never changes: candidate images and model artifacts are written once under keys of their own,
and model-version numbers are allocated race-free."""

from __future__ import annotations

import io
import json
import threading
import uuid

import pytest
from django.db import connection

from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import _claim
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Candidate
from annotation_web.registry import services
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import S3Storage, StorageExists, get_storage
from annotation_web.training.services import generation_run
from tests.annotation_web.conftest import face_png


def test_put_new_never_replaces_what_was_written(any_storage):
    storage = get_storage()
    key = f"t-{uuid.uuid4().hex[:8]}/c/{uuid.uuid4().hex}.png"
    storage.put_new(key, b"first")
    with pytest.raises(StorageExists):
        storage.put_new(key, b"second")
    assert storage.get(key) == b"first"
    if isinstance(storage, S3Storage):
        # The server itself refuses the conditional write (If-None-Match: *), not a look-up before it.
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError, match="PreconditionFailed"):
            storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"third", IfNoneMatch="*")
        assert storage.get(key) == b"first"
    else:
        assert not [p for p in storage.local_path(key).parent.iterdir() if p.name.endswith(".partial")]
    storage.delete(key)


@pytest.fixture
def tiny_restorer(tmp_path):
    from restorer.model import Restorer, tiny_test_config

    folder = tmp_path / "restorer"
    Restorer(tiny_test_config()).save_pretrained(folder, metrics={"note": "untrained tiny test restorer"})
    return services.model_version_register(kind=ModelKind.RESTORER, name="tiny", folder=folder)


@pytest.mark.django_db
def test_a_second_generation_job_never_rewrites_the_first_ones_images(make_project, tiny_restorer):
    project = make_project(pairs=0, resolution=32)
    imports.face_inputs_import(
        project=project, source=[SourceFile(f"{i}.png", face_png(i, size=40)) for i in range(2)]
    )
    input_ids = list(project.inputs.values_list("pk", flat=True))
    storage = get_storage()

    def generate(num_steps: int) -> Job:
        job = Job.objects.create(
            kind="generate",
            project=project,
            params={
                "restorer_id": tiny_restorer.pk,
                "input_ids": input_ids,
                "seed": 7,
                "samples_per_input": 2,
                "num_steps": num_steps,
                "pairs_budget": 2,
            },
        )
        return run_as_worker(job)

    def run_as_worker(job: Job) -> Job:
        claimed = _claim(job_id=job.pk, worker="test:1")
        assert claimed is not None
        claimed.outputs = generation_run(job=claimed, progress=lambda *args: None, should_stop=lambda: False)
        return claimed

    first = generate(num_steps=2)
    first_images = {
        c.pk: (c.image_key, storage.get(c.image_key))
        for c in Candidate.objects.filter(generation=f"job-{first.pk}")
    }
    assert len(first_images) == 4
    second = generate(num_steps=3)  # same restorer, same seeds, other settings

    for pk, (key, data) in first_images.items():
        assert Candidate.objects.get(pk=pk).image_key == key
        assert storage.get(key) == data  # byte-identical
    second_set = Candidate.objects.filter(generation=f"job-{second.pk}")
    assert second_set.count() == 4
    assert not {c.image_key for c in second_set} & {key for key, _ in first_images.values()}
    assert sorted(second_set.values_list("seed", flat=True)) == sorted(
        Candidate.objects.filter(pk__in=first_images).values_list("seed", flat=True)
    )
    # The settings matter (so an overwrite would have shown): the same seed sampled with more steps differs.
    first_by_sample = {
        (c.face_input_id, c.seed): first_images[c.pk][1]
        for c in Candidate.objects.filter(pk__in=first_images)
    }
    assert any(storage.get(c.image_key) != first_by_sample[(c.face_input_id, c.seed)] for c in second_set)
    # Rerunning a job (its worker died, its lease expired) finds its candidates and leaves their bytes alone.
    Job.objects.filter(pk=first.pk).update(state=JobState.RUNNING, lease_expires_at=None)
    again = run_as_worker(first)
    assert again.attempt == 2 and again.outputs["candidates"] == 4
    assert {
        c.pk: (c.image_key, storage.get(c.image_key))
        for c in Candidate.objects.filter(generation=f"job-{first.pk}")
    } == first_images


def artifact_folder(tmp_path, name: str, weights: bytes):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"resolution": 32}))
    (folder / "metrics.json").write_text(json.dumps({"loss": 0.5}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


@pytest.mark.django_db(transaction=True)
def test_two_registrations_of_one_name_racing_get_two_versions_with_their_own_weights(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the race needs two connections to PostgreSQL")
    folders = {
        name: artifact_folder(tmp_path, name, f"weights of {name}".encode()) for name in ("one", "two")
    }
    # Both registrations reach the storage before either makes its row (or waits 3 s for the other).
    barrier = threading.Barrier(2, timeout=3)
    upload = services.artifact_upload

    def racing_upload(**kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return upload(**kwargs)

    monkeypatch.setattr(services, "artifact_upload", racing_upload)
    results: dict[str, object] = {}

    def register(name: str) -> None:
        try:
            results[name] = services.model_version_register(
                kind=ModelKind.REWARD, name="raced", folder=folders[name]
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(name,)) for name in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(isinstance(v, ModelVersion) for v in results.values()), results
    versions = {name: ModelVersion.objects.get(pk=v.pk) for name, v in results.items()}
    assert sorted(v.version for v in versions.values()) == [1, 2]
    storage = get_storage()
    for name, version in versions.items():
        assert storage.get(version.artifact_key + "model.safetensors") == f"weights of {name}".encode()
    assert versions["one"].artifact_key != versions["two"].artifact_key


@pytest.mark.django_db
def test_candidates_under_telling_keys_from_before_are_moved_to_random_keys(make_project):
    from django.core.management import call_command

    project = make_project(pairs=1, gold=1)
    storage = get_storage()
    old = {}
    for candidate in Candidate.objects.filter(face_input__project=project):
        storage.put(candidate.image_key, f"image {candidate.pk}".encode())
        old[candidate.pk] = candidate.image_key
    out = io.StringIO()
    call_command("rekey_candidates", project=project.slug, stdout=out)
    assert out.getvalue().startswith("4 candidate images moved")
    for candidate in Candidate.objects.filter(pk__in=old):
        assert candidate.image_key != old[candidate.pk] and candidate.image_key.startswith("c/")
        assert storage.get(candidate.image_key) == f"image {candidate.pk}".encode()
    from annotation_web.labeling.pairs import candidates_rekey

    assert candidates_rekey(project=project) == 0  # nothing left to move
