from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotation_web.jobs.models import ALLOWED_TRANSITIONS, TERMINAL_STATES, Job, JobState
from annotation_web.labeling.errors import StorageUnavailable

LOG_TAIL_CHARS = 8000


class JobTransitionError(ValueError):
    pass


def _locked(job_id: int) -> Job:
    return Job.objects.select_for_update().get(pk=job_id)


@transaction.atomic
def job_transition(*, job_id: int, to_state: str, error: str = "") -> Job:
    job = _locked(job_id)
    if to_state not in ALLOWED_TRANSITIONS[job.state]:
        raise JobTransitionError(f"job {job.pk} cannot go from {job.state} to {to_state}")
    job.state = to_state
    now = timezone.now()
    if to_state == JobState.RUNNING and job.started_at is None:
        job.started_at = now
    if to_state in TERMINAL_STATES:
        job.finished_at = now
    if error:
        job.error = error[-LOG_TAIL_CHARS:]
    job.save()
    return job


@transaction.atomic
def job_report_progress(*, job_id: int, done: int, total: int, log_line: str = "") -> None:
    job = _locked(job_id)
    job.progress_done, job.progress_total = done, total
    if log_line:
        job.log_tail = (job.log_tail + log_line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    job.save(update_fields=["progress_done", "progress_total", "log_tail"])


@transaction.atomic
def job_finish(*, job_id: int, outputs: dict) -> Job:
    job = _locked(job_id)
    job.outputs = outputs
    job.save(update_fields=["outputs"])
    return job_transition(job_id=job_id, to_state=JobState.SUCCEEDED)


@transaction.atomic
def import_job_create(
    *,
    project,
    user,
    upload_name: str = "",
    upload_bytes: bytes | None = None,
    s3_prefix: str = "",
    batch: str = "",
    instruction: str = "",
) -> Job:
    """Keep the upload in storage and queue the import; the worker reads it back by key."""
    import hashlib
    import io
    import zipfile

    from annotation_web.jobs.models import JobKind
    from annotation_web.storage import get_storage

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
            from annotation_web.labeling.ingest import validate_image

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
    job = Job.objects.create(kind=JobKind.IMPORT, project=project, created_by=user, params=params)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job


def job_enqueue(*, job_id: int) -> None:
    from annotation_web.jobs.tasks import run_job

    run_job.delay(job_id)
