"""The `import` job kind: an upload (one image or a zip) or an S3 prefix becomes face inputs, in a worker.

`import_job_create` keeps the upload in the storage and queues the job; `import_job_run` (registered in
`LabelingConfig.ready()`) reads it back by key and imports it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

from django.db import transaction

from annotation_web.accounts.models import User
from annotation_web.errors import ServiceError, StorageUnavailable
from annotation_web.jobs.kinds import Progress
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_create
from annotation_web.labeling.imports import face_inputs_import
from annotation_web.labeling.ingest import SourceFile, iter_s3_prefix, iter_zip, validate_image
from annotation_web.labeling.models import Project
from annotation_web.storage import get_storage

KIND = "import"


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    user: User | None,
    upload_name: str = "",
    upload_bytes: bytes | None = None,
    s3_prefix: str = "",
    batch: str = "",
    instruction: str = "",
) -> Job:
    """Keep the upload in storage and queue the import; the worker reads it back by key."""
    params: dict = {"batch": batch, "instruction": instruction}
    if upload_bytes is not None:
        digest = hashlib.sha256(upload_bytes).hexdigest()
        is_zip = zipfile.is_zipfile(io.BytesIO(upload_bytes))
        key = f"uploads/{project.slug}/{digest}{'.zip' if is_zip else ''}"
        params.update(upload_key=key, upload_name=upload_name, upload_is_zip=is_zip)
        if is_zip:
            with zipfile.ZipFile(io.BytesIO(upload_bytes)) as archive:
                params["file_count"] = sum(1 for m in archive.infolist() if not m.is_dir())
        else:
            validate_image(upload_name or "upload", upload_bytes)  # refuse a non-image now, not in the worker
            params["file_count"] = 1
        try:
            get_storage().put(key, upload_bytes)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not keep the upload ({exc.strerror or exc}); nothing was imported"
            ) from exc
    else:
        params["s3_prefix"] = s3_prefix
    return job_create(kind=KIND, project=project, user=user, params=params)


def import_job_run(*, job: Job, progress: Progress) -> dict:
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

    report = face_inputs_import(
        project=job.project,
        source=source,
        batch=params.get("batch", ""),
        extra_instruction=params.get("instruction", ""),
        on_progress=on_progress,
    )
    return report.as_dict()
