"""The Celery app. Embedded default: a broker on the filesystem, so a worker needs no server."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_web.settings")

app = Celery("annotation_web")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _configure_filesystem_broker() -> None:
    from django.conf import settings

    if not str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        return
    folder = settings.CELERY_FILESYSTEM_BROKER_DIR
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }


_configure_filesystem_broker()
app.autodiscover_tasks(["annotation_web.labeling", "annotation_web.jobs", "annotation_web.loop"])


def _consumed_queues(consumer) -> list[str]:
    return sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)


@worker_ready.connect
def _announce_worker(sender=None, **_: object) -> None:
    from annotation_web.jobs.workers import worker_presence_start

    worker_presence_start(name=sender.hostname, queues=_consumed_queues(sender))


@worker_shutdown.connect
def _retire_worker(sender=None, **_: object) -> None:
    from annotation_web.jobs.workers import worker_presence_stop

    worker_presence_stop(name=sender.hostname)
