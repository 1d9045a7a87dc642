from celery import shared_task

from annotation_web.labeling.queue import reservations_release_expired


@shared_task(acks_late=True)
def release_expired_reservations() -> int:
    return reservations_release_expired()
