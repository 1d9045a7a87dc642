from __future__ import annotations

from celery import shared_task

from annotation_web.loop import services


@shared_task
def loop_tick_all() -> None:
    services.loop_tick_enabled()
