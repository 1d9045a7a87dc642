"""The real S3 server (SeaweedFS, started by infra/test.sh): storage, presigned URLs, import from a prefix."""

import io
import os
import uuid

import httpx
import pytest

from annotation_web.labeling import imports
from annotation_web.labeling.ingest import iter_s3_prefix
from annotation_web.storage import S3Storage, StorageMissing, _cached_storage, get_storage
from tests.annotation_web.conftest import face_png

ENDPOINT = os.environ.get("PREF_TEST_S3_ENDPOINT")
pytestmark = [
    pytest.mark.s3,
    pytest.mark.skipif(
        not ENDPOINT, reason="needs the S3 server that infra/test.sh starts (PREF_TEST_S3_ENDPOINT)"
    ),
]


@pytest.fixture
def s3_settings(settings):
    settings.STORAGE_BACKEND = "s3"
    settings.S3_ENDPOINT_URL = ENDPOINT
    settings.S3_ACCESS_KEY = os.environ.get("PREF_S3_ACCESS_KEY", "pref-key")
    settings.S3_SECRET_KEY = os.environ.get("PREF_S3_SECRET_KEY", "pref-secret")
    # One bucket for all tests (each bucket costs the server new volumes); keys carry a per-test prefix.
    settings.S3_BUCKET = "pref-test"
    _cached_storage.cache_clear()
    yield settings
    _cached_storage.cache_clear()


def test_put_get_list_delete_and_presigned_url(s3_settings):
    storage = get_storage()
    assert isinstance(storage, S3Storage)
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    key = f"{prefix}samples/m/1/0.png"
    storage.put(key, face_png(1))
    assert storage.get(key) == face_png(1)
    assert list(storage.list(prefix)) == [key]
    url = storage.url(key)
    assert "X-Amz-Signature" in url
    assert httpx.get(url).content == face_png(1)
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403
    storage.delete(key)
    with pytest.raises(StorageMissing):
        storage.get(key)


@pytest.mark.django_db
def test_import_from_an_s3_prefix_into_s3_storage(s3_settings, make_project):
    storage = get_storage()
    prefix = f"t-{uuid.uuid4().hex[:8]}/incoming/faces/"
    for seed in range(3):
        storage.put(f"{prefix}{seed}.png", face_png(seed))
    storage.put(f"{prefix}readme.txt", b"not a face")
    storage.put(f"{prefix}broken.png", b"broken")
    project = make_project(pairs=0)
    report = imports.face_inputs_import(
        project=project, source=iter_s3_prefix(f"s3://{s3_settings.S3_BUCKET}/{prefix}")
    )
    assert len(report.imported) == 3 and len(report.rejected) == 1
    face_input = project.inputs.first()
    assert storage.exists(face_input.lq_key) and storage.exists(face_input.hq_key)
    served = httpx.get(storage.url(face_input.lq_key))
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    assert io.BytesIO(served.content).getbuffer().nbytes > 100


def test_a_stream_larger_than_one_part_arrives_whole(s3_settings):
    """`put_stream` (large uploads) goes through boto3's multipart upload: every part must land, in order."""
    storage = get_storage()
    key = f"t-{uuid.uuid4().hex[:8]}/uploads/big.zip"
    payload = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MiB multipart threshold
    storage.put_stream(key, io.BytesIO(payload))
    assert storage.get(key) == payload
    storage.delete(key)
