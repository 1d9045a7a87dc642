"""One storage for every file the platform keeps: a local folder by default, S3 in production.

Keys are POSIX-style relative paths (`inputs/<project>/<hash>/lq.png`). Keys are internal: annotators never
see one (their image URLs are per-reservation handles, `labeling.views.reservation_image`). `url` gives
engineers' tools a presigned (S3) or signed (local, `labeling.views.storage_file`) link.

What must never change once written (candidate images, model artifacts) is written with `put_new`, which
refuses to replace an existing object (`StorageExists`) instead of silently overwriting it.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from django.conf import settings
from django.core import signing
from django.urls import reverse

URL_SIGNING_SALT = "storage-url"
STREAM_CHUNK_BYTES = 1 << 20


class StorageKeyError(ValueError):
    pass


class StorageMissing(KeyError):
    pass


class StorageExists(FileExistsError):
    """`put_new` on a key that already holds an object: what was written once is never replaced."""


def validate_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key or key.endswith("/"):
        raise StorageKeyError(f"invalid storage key {key!r}")
    return str(path)


class BlobStorage(Protocol):
    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...
    def put_new(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...
    def put_stream(self, key: str, source: BinaryIO, *, content_type: str | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def url(self, key: str, *, ttl_seconds: int | None = None) -> str: ...


class LocalStorage:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename so a reader never sees half a file and a full disk leaves the old file intact.
        tmp = path.with_name(path.name + ".partial")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def put_new(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A private temporary file, then a hard link to the key: link(2) fails when the key exists (atomic
        # put-if-absent, like O_EXCL) and a reader never sees half a file.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.link(tmp_name, path)
        except FileExistsError as exc:
            raise StorageExists(key) from exc
        finally:
            os.unlink(tmp_name)

    def put_stream(self, key: str, source: BinaryIO, *, content_type: str | None = None) -> None:
        """Like `put`, from a file object read in chunks: a large upload never sits whole in memory."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        try:
            with tmp.open("wb") as handle:
                shutil.copyfileobj(source, handle, STREAM_CHUNK_BYTES)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageMissing(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix
        search_root = base if base.is_dir() else base.parent
        if not search_root.exists():
            return
        for path in sorted(search_root.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def url(self, key: str, *, ttl_seconds: int | None = None) -> str:
        token = signing.dumps(validate_key(key), salt=URL_SIGNING_SALT, compress=True)
        return reverse("storage-file", kwargs={"token": token})


def local_key_from_token(token: str, *, max_age: int) -> str:
    return signing.loads(token, salt=URL_SIGNING_SALT, max_age=max_age)


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
        public_endpoint_url: str | None = None,
    ):
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3}
        )
        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=config,
        )

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.client.put_object(Bucket=self.bucket, Key=validate_key(key), Body=data, ContentType=content_type)

    def put_new(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        from botocore.exceptions import ClientError

        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        try:
            # A conditional write: the server refuses it when the key exists (SeaweedFS and AWS S3 both
            # honour If-None-Match: *; tests/annotation_web/labeling/test_immutability.py checks it).
            self.client.put_object(
                Bucket=self.bucket,
                Key=validate_key(key),
                Body=data,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
            }:
                raise StorageExists(key) from exc
            raise

    def put_stream(self, key: str, source: BinaryIO, *, content_type: str | None = None) -> None:
        """Like `put`, from a file object: boto3 sends it in multipart chunks, never whole in memory."""
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.client.upload_fileobj(
            source, self.bucket, validate_key(key), ExtraArgs={"ContentType": content_type}
        )

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=validate_key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise StorageMissing(key) from exc
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=validate_key(key))
            return True
        except ClientError:
            return False

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def url(self, key: str, *, ttl_seconds: int | None = None) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": validate_key(key)},
            ExpiresIn=ttl_seconds or settings.STORAGE_URL_TTL_SECONDS,
        )


def build_storage() -> BlobStorage:
    if settings.STORAGE_BACKEND == "s3":
        storage = S3Storage(
            bucket=settings.S3_BUCKET,
            endpoint_url=settings.S3_ENDPOINT_URL,
            access_key=settings.S3_ACCESS_KEY,
            secret_key=settings.S3_SECRET_KEY,
            region=settings.S3_REGION,
        )
        storage.ensure_bucket()
        return storage
    if settings.STORAGE_BACKEND == "local":
        return LocalStorage(settings.STORAGE_LOCAL_ROOT)
    raise ValueError(f"PREF_STORAGE must be 'local' or 's3', not {settings.STORAGE_BACKEND!r}")


@functools.cache
def _cached_storage(backend: str, root: str, bucket: str, endpoint: str | None) -> BlobStorage:
    return build_storage()


def get_storage() -> BlobStorage:
    """The configured storage; cached per configuration so tests that override settings get their own."""
    return _cached_storage(
        settings.STORAGE_BACKEND,
        str(settings.STORAGE_LOCAL_ROOT),
        settings.S3_BUCKET,
        settings.S3_ENDPOINT_URL,
    )
