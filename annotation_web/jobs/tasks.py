from __future__ import annotations

from celery import shared_task

from annotation_web.jobs import services


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
)
def run_job(self, job_id: int) -> None:
    services.job_run(job_id=job_id)
