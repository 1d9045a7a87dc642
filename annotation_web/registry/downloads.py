"""A model version's artifact as one zip download (`GET /api/models/<id>/artifact.zip`).

The zip holds every file the registration uploaded under the version's `artifact_key` prefix (config, weights,
metrics: `registry.artifacts.artifact_upload`), under one folder named after the version, so that unzipping it
gives a folder `from_pretrained` loads. It is written while it is sent: one stored file at a time is read from the
storage (local folder or S3) and compressed into the response, never the whole archive in memory or on disk.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

from annotation_web.errors import NotFound
from annotation_web.registry.models import ModelVersion
from annotation_web.storage import get_storage


def artifact_download_name(*, version: ModelVersion) -> str:
    """The archive's name and its top folder: kind, name and version (`restorer-tiny-v3`)."""
    return f"{version.kind}-{version.name}-v{version.version}"


def artifact_file_keys(*, version: ModelVersion) -> list[tuple[str, str]]:
    """(name inside the artifact folder, storage key) of every stored file of the version's artifact, by name;
    NotFound when the version has no artifact (classical and reference versions) or its prefix holds none."""
    prefix = version.artifact_key
    if not prefix:
        raise NotFound(f"{version} has no artifact files (only trained models have one)")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    files = sorted((key[len(prefix) :], key) for key in get_storage().list(prefix) if key.startswith(prefix))
    if not files:
        raise NotFound(f"{version}: no artifact files under its key")
    return files


class _Chunks:
    """A write-only, unseekable file for `zipfile`: what it is given is collected until `take()` hands it on
    (zipfile then writes each member's sizes after its data, in a data descriptor)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def artifact_zip_chunks(*, files: list[tuple[str, str]], folder: str) -> Iterator[bytes]:
    """The zip of `files` (name, storage key) under `folder/`, as the chunks of the response: one stored file,
    read and compressed, per chunk, then the zip's central directory."""
    storage = get_storage()
    sink = _Chunks()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, key in files:
            archive.writestr(f"{folder}/{name}", storage.get(key))
            yield sink.take()
    yield sink.take()
