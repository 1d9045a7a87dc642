"""The `import` job kind: an upload (one image or a zip) or an S3 prefix becomes face inputs, in a worker.

`import_job_create` keeps the upload in the storage and queues the job; `import_job_run` (registered in
`LabelingConfig.ready()`) reads it back by key and imports it.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from annotation_web.accounts.models import User
from annotation_web.errors import ServiceError, StorageUnavailable
from annotation_web.jobs.kinds import Progress, ShouldStop
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_create
from annotation_web.labeling.imports import face_inputs_import
from annotation_web.labeling.ingest import SourceFile, iter_s3_prefix, iter_zip, probe_image
from annotation_web.labeling.models import Project
from annotation_web.storage import STREAM_CHUNK_BYTES, get_storage

KIND = "import"


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    user: User | None,
    upload_name: str = "",
    upload: BinaryIO | None = None,
    s3_prefix: str = "",
    batch: str = "",
    instruction: str = "",
) -> Job:
    """Keep the upload in storage and queue the import; the worker reads it back by key.

    `upload` is a seekable file object (Django keeps large uploads in a temporary file): it is hashed,
    inspected and copied to the storage in chunks, so a 200 MB zip never sits whole in the web process.
    """
    params: dict = {"batch": batch, "instruction": instruction}
    if upload is not None:
        digest = _sha256_of(upload)
        is_zip = zipfile.is_zipfile(upload)
        upload.seek(0)
        # A key of its own per job (the digest plus a random part): each import deletes its upload when it
        # ends, which must not take the file from another job importing the same bytes.
        key = f"uploads/{project.slug}/{digest}-{uuid.uuid4().hex[:12]}{'.zip' if is_zip else ''}"
        params.update(upload_key=key, upload_name=upload_name, upload_is_zip=is_zip)
        if is_zip:
            with zipfile.ZipFile(upload) as archive:
                params["file_count"] = sum(1 for m in archive.infolist() if not m.is_dir())
        else:
            # Refuse a non-image or an oversized one now, from its header only: decoding is the worker's job.
            # A single image is capped far below the upload limit, so reading it here is cheap.
            probe_image(upload_name or "upload", upload.read(settings.IMPORT_MAX_IMAGE_BYTES + 1))
            params["file_count"] = 1
        upload.seek(0)
        try:
            get_storage().put_stream(key, upload)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not keep the upload ({exc.strerror or exc}); nothing was imported"
            ) from exc
    else:
        params["s3_prefix"] = s3_prefix
    return job_create(kind=KIND, project=project, user=user, params=params)


def _sha256_of(source: BinaryIO) -> str:
    digest = hashlib.sha256()
    source.seek(0)
    for chunk in iter(lambda: source.read(STREAM_CHUNK_BYTES), b""):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


def import_job_run(*, job: Job, progress: Progress, should_stop: ShouldStop) -> dict:
    if job.project is None:
        raise ServiceError(f"import job {job.pk} has no project")
    params = job.params
    if params.get("s3_prefix"):
        source = iter_s3_prefix(params["s3_prefix"])
    else:
        data = get_storage().get(params["upload_key"])
        if params.get("upload_is_zip"):
            source = iter_zip(io.BytesIO(data))
        else:
            source = iter([SourceFile(params.get("upload_name", "upload"), data)])
    total = params.get("file_count") or 0

    def on_progress(done: int, name: str) -> None:
        progress(done, max(total, done), f"{done}: {name}")

    try:
        report = face_inputs_import(
            project=job.project,
            source=source,
            batch=params.get("batch", ""),
            extra_instruction=params.get("instruction", ""),
            on_progress=on_progress,
            should_stop=should_stop,
        )
    finally:
        # The raw upload is kept only until its import ends (done or failed); a worker that dies mid-import
        # never gets here, so the redelivered job still finds it.
        if params.get("upload_key"):
            _upload_delete(params["upload_key"])
    return report.as_dict()


def _upload_delete(key: str) -> None:
    try:
        get_storage().delete(key)
    except (OSError, KeyError):
        pass  # already gone (a second run of the same job): nothing to keep
