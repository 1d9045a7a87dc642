"""Which workers are alive, and for which queues: each worker process writes its `WorkerPresence` row every
`WORKER_HEARTBEAT_SECONDS` from a thread (started by Celery's `worker_ready` signal, see
`annotation_web.celery`) and deletes it when it shuts down cleanly. A killed worker's row simply grows old."""

from __future__ import annotations

import os
import socket
import threading

from django.conf import settings
from django.db import connection
from django.utils import timezone

from annotation_web.jobs.models import WorkerPresence

_stop = threading.Event()


def worker_presence_write(*, name: str, queues: list[str], started_at=None) -> None:
    now = timezone.now()
    WorkerPresence.objects.update_or_create(
        name=name,
        defaults={
            "queues": sorted(queues),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "last_seen_at": now,
        },
        create_defaults={
            "queues": sorted(queues),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": started_at or now,
            "last_seen_at": now,
        },
    )


def worker_presence_start(*, name: str, queues: list[str]) -> threading.Thread:
    """Announce this worker now, then every few seconds until `worker_presence_stop`."""
    started_at = timezone.now()
    worker_presence_write(name=name, queues=queues, started_at=started_at)
    _stop.clear()

    def beat() -> None:
        try:
            while not _stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
                worker_presence_write(name=name, queues=queues, started_at=started_at)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name="worker-presence", daemon=True)
    thread.start()
    return thread


def worker_presence_stop(*, name: str) -> None:
    _stop.set()
    WorkerPresence.objects.filter(name=name).delete()
