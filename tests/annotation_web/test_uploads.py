"""Uploads a hostile engineer (or a stolen engineer token) could send: formats Pillow must never open, corrupt
zip members, oversized images and bodies, S3 objects too large to read, and raw uploads that outlive their
import."""

from __future__ import annotations

import io
import os
import struct
import uuid
import zipfile
import zlib

import pytest
from PIL import Image, ImageFile
from rest_framework.test import APIClient

from annotation_web.accounts.services import token_for_user
from annotation_web.jobs.models import Job
from annotation_web.labeling import imports
from annotation_web.labeling.import_jobs import import_job_create, import_job_run
from annotation_web.labeling.ingest import ImportRejected, iter_zip, probe_image, validate_image
from annotation_web.storage import get_storage
from tests.annotation_web.conftest import face_png


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=user)}")
    return client


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a valid IHDR) with no pixel data: only a decoder would notice."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def eps_bytes() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n%%EOF\n"


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 80, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_are_accepted(fmt):
    assert validate_image(f"face.{fmt.lower()}", image_bytes(fmt)).size == (32, 32)


@pytest.mark.parametrize(
    "data", [eps_bytes(), image_bytes("BMP"), image_bytes("TIFF"), image_bytes("GIF"), image_bytes("PPM")]
)
def test_other_formats_are_never_opened(data, monkeypatch):
    from PIL import EpsImagePlugin

    def ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript must never run on an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript, raising=False)
    with pytest.raises(ImportRejected, match="PNG, JPEG or WebP only"):
        validate_image("face.png", data)


def test_a_huge_image_is_refused_from_its_header_without_decoding(monkeypatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImportRejected, match="6000x6600 pixels is over"):
        probe_image("big.png", png_header_only(6000, 6600))


@pytest.mark.django_db
def test_the_import_api_refuses_a_huge_image_in_the_web_process_without_decoding(
    make_project, engineer, monkeypatch
):
    project = make_project(pairs=0)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the web process decoded an upload")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    upload = io.BytesIO(png_header_only(6000, 6600))
    upload.name = "big.png"
    response = client_for(engineer).post(
        f"/api/projects/{project.slug}/imports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400 and "pixel" in str(response.json()["detail"])
    assert not Job.objects.exists()


def zip_with_a_corrupt_member(corruption: str) -> bytes:
    members = {"a.png": face_png(1), "bad.png": face_png(2), "c.png": face_png(3)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        info = archive.getinfo("bad.png")
    if corruption == "crc":
        # flip bytes in the compressed data of the member
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 40
        raw[start : start + 8] = bytes(b ^ 0xFF for b in raw[start : start + 8])
    else:  # a size header that lies: the central directory claims half the real size
        header = raw.find(b"bad.png", raw.find(b"PK\x01\x02")) - 46
        assert raw[header : header + 4] == b"PK\x01\x02"
        struct.pack_into("<I", raw, header + 24, info.file_size // 2)
    return bytes(raw)


@pytest.mark.django_db
@pytest.mark.parametrize("corruption", ["crc", "size"])
def test_a_corrupt_zip_member_fails_that_member_only(make_project, corruption):
    project = make_project(pairs=0)
    report = imports.face_inputs_import(
        project=project, source=iter_zip(io.BytesIO(zip_with_a_corrupt_member(corruption)))
    )
    assert len(report.imported) == 2, report.as_dict()  # a.png and c.png, the one after the bad member too
    assert len(report.rejected) == 1 and report.rejected[0].startswith("bad.png"), report.rejected


@pytest.mark.django_db
def test_a_multipart_body_over_the_cap_is_refused_by_content_length_before_it_is_read(
    make_project, engineer, settings, monkeypatch
):
    from rest_framework import parsers

    settings.IMPORT_MAX_UPLOAD_BYTES = 10_000
    project = make_project(pairs=0)

    def no_parsing(self, *args, **kwargs):
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(parsers.MultiPartParser, "parse", no_parsing)
    upload = io.BytesIO(b"PK" + os.urandom(200_000))
    upload.name = "faces.zip"
    response = client_for(engineer).post(
        f"/api/projects/{project.slug}/imports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_raw_upload_is_deleted_when_its_import_ends(make_project, engineer):
    project = make_project(pairs=0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", face_png(11))
        archive.writestr("b.png", b"not an image")
    job = import_job_create(
        project=project, user=engineer, upload_name="f.zip", upload=io.BytesIO(buffer.getvalue())
    )
    key = job.params["upload_key"]
    storage = get_storage()
    assert storage.exists(key)
    outputs = import_job_run(job=job, progress=lambda done, total, line: None, should_stop=lambda: False)
    assert outputs["imported"] == 1 and len(outputs["rejected"]) == 1
    assert not storage.exists(key)


@pytest.mark.django_db
def test_two_imports_of_the_same_bytes_keep_their_own_uploads(make_project, engineer):
    project = make_project(pairs=0)
    first = import_job_create(
        project=project, user=engineer, upload_name="a.png", upload=io.BytesIO(face_png(5))
    )
    second = import_job_create(
        project=project, user=engineer, upload_name="a.png", upload=io.BytesIO(face_png(5))
    )
    assert first.params["upload_key"] != second.params["upload_key"]
    import_job_run(job=first, progress=lambda done, total, line: None, should_stop=lambda: False)
    assert get_storage().exists(second.params["upload_key"])


class _ReadRecorder(io.BytesIO):
    """A file object that remembers its largest single read (a read of everything counts as its size)."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


def _large_zip(member_bytes: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("face.png", face_png(7))
        archive.writestr("padding.bin", os.urandom(member_bytes))
    return buffer.getvalue()


@pytest.mark.django_db
def test_a_large_upload_is_streamed_to_storage_in_chunks(make_project, engineer):
    from annotation_web.storage import STREAM_CHUNK_BYTES

    project = make_project(pairs=0)
    payload = _large_zip(6 * STREAM_CHUNK_BYTES)
    upload = _ReadRecorder(payload)
    job = import_job_create(project=project, user=engineer, upload_name="big.zip", upload=upload)
    assert get_storage().get(job.params["upload_key"]) == payload
    assert job.params["file_count"] == 2
    # Never the whole 6 MB at once: hashing, inspecting and storing all read it a chunk at a time.
    assert 0 < upload.largest_read <= STREAM_CHUNK_BYTES < len(payload)


S3_ENDPOINT = os.environ.get("PREF_TEST_S3_ENDPOINT")


@pytest.mark.s3
@pytest.mark.skipif(not S3_ENDPOINT, reason="needs the S3 server (PREF_TEST_S3_ENDPOINT)")
@pytest.mark.django_db
def test_s3_imports_cap_the_object_size_before_reading(settings, make_project, monkeypatch):
    from annotation_web.labeling.ingest import iter_s3_prefix
    from annotation_web.storage import S3Storage

    settings.S3_ENDPOINT_URL = S3_ENDPOINT
    settings.S3_ACCESS_KEY = os.environ.get("PREF_S3_ACCESS_KEY", "pref-key")
    settings.S3_SECRET_KEY = os.environ.get("PREF_S3_SECRET_KEY", "pref-secret")
    settings.IMPORT_MAX_S3_OBJECT_BYTES = 50_000
    source = S3Storage(
        bucket="pref-test",
        endpoint_url=S3_ENDPOINT,
        access_key=settings.S3_ACCESS_KEY,
        secret_key=settings.S3_SECRET_KEY,
        region="us-east-1",
    )
    source.ensure_bucket()
    prefix = f"t-{uuid.uuid4().hex[:8]}/faces/"
    source.put(f"{prefix}a.png", face_png(1))
    source.put(f"{prefix}huge.png", b"\x89PNG" + os.urandom(200_000))
    source.put(f"{prefix}c.png", face_png(3))
    fetched: list[str] = []

    class SpyingS3Storage(S3Storage):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            real_get_object = self.client.get_object

            def get_object(**call):
                fetched.append(call["Key"])
                return real_get_object(**call)

            self.client.get_object = get_object

    monkeypatch.setattr("annotation_web.storage.S3Storage", SpyingS3Storage)
    files = list(iter_s3_prefix(f"s3://pref-test/{prefix}"))
    by_name = {f.name.rsplit("/", 1)[1]: f for f in files}
    assert by_name["huge.png"].error and "over the 50000-byte limit" in by_name["huge.png"].error
    assert not by_name["a.png"].error and not by_name["c.png"].error
    assert f"{prefix}a.png" in fetched and f"{prefix}huge.png" not in fetched  # never fetched
