"""What each kind of job does. A runner is re-entrant: a job that died while running is run again."""

from __future__ import annotations

import traceback

from django.db import transaction

from annotation_web.jobs.models import Job, JobKind, JobState
from annotation_web.jobs.services import job_finish, job_report_progress, job_transition


def _run_import(job: Job) -> dict:
    import io

    from annotation_web.labeling.ingest import iter_s3_prefix, iter_zip
    from annotation_web.labeling.services import face_inputs_import
    from annotation_web.storage import get_storage

    params = job.params
    if params.get("s3_prefix"):
        source = iter_s3_prefix(params["s3_prefix"])
    else:
        data = get_storage().get(params["upload_key"])
        if params.get("upload_is_zip"):
            source = iter_zip(io.BytesIO(data))
        else:
            from annotation_web.labeling.ingest import SourceFile

            source = iter([SourceFile(params.get("upload_name", "upload"), data)])
    total = params.get("file_count") or 0

    def on_progress(done: int, name: str) -> None:
        job_report_progress(job_id=job.pk, done=done, total=max(total, done), log_line=f"{done}: {name}")

    report = face_inputs_import(
        project=job.project,
        source=source,
        batch=params.get("batch", ""),
        extra_instruction=params.get("instruction", ""),
        on_progress=on_progress,
    )
    return report.as_dict()


def _progress_reporter(job: Job):
    def report(done: int, total: int, line: str) -> None:
        job_report_progress(job_id=job.pk, done=done, total=total, log_line=line)

    return report


def _run_generate(job: Job) -> dict:
    from annotation_web.training.services import generation_run

    return generation_run(job=job, progress=_progress_reporter(job))


def _run_train_reward(job: Job) -> dict:
    from annotation_web.training.services import reward_training_run

    return reward_training_run(job=job, progress=_progress_reporter(job))


def _run_train_rl(job: Job) -> dict:
    from annotation_web.training.services import rl_training_run

    return rl_training_run(job=job, progress=_progress_reporter(job))


RUNNERS = {
    JobKind.IMPORT: _run_import,
    JobKind.GENERATE: _run_generate,
    JobKind.TRAIN_REWARD: _run_train_reward,
    JobKind.TRAIN_RL: _run_train_rl,
}


def job_run(*, job_id: int) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.state not in (JobState.QUEUED, JobState.RUNNING):
            return  # finished or cancelled already: a redelivered task does nothing
    job = job_transition(job_id=job_id, to_state=JobState.RUNNING)
    try:
        outputs = RUNNERS[job.kind](job)
    except Exception as exc:  # noqa: BLE001 - the job row records any failure for the engineer to read
        if Job.objects.filter(pk=job_id, state=JobState.RUNNING).exists():
            job_transition(job_id=job_id, to_state=JobState.FAILED, error=f"{exc}\n{traceback.format_exc()}")
        raise
    with transaction.atomic():
        cancelled = Job.objects.select_for_update().get(pk=job_id).state == JobState.CANCELLED
        if cancelled:
            Job.objects.filter(pk=job_id).update(outputs=outputs)
    if not cancelled:
        job_finish(job_id=job_id, outputs=outputs)
