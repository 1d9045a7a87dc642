from __future__ import annotations

from celery import shared_task

from annotation_web.jobs import reaper, runs


@shared_task(bind=True, acks_late=True)
def run_job(self, job_id: int) -> None:
    # No autoretry: a failure is recorded on the job (retry is an engineer's action); a dead worker is the
    # lease's business (jobs.runs, jobs.reaper).
    runs.job_run(job_id=job_id, worker=runs.worker_name(self.request.hostname))


@shared_task
def reap_jobs() -> dict:
    reaped = reaper.jobs_reap()
    return {"requeued": reaped.requeued, "failed": reaped.failed, "resent": reaped.resent}
