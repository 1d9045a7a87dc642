"""The judging page keeps its reservations honest: the pair on screen is renewed while the annotator is there,
and a prefetched pair's clock starts when it is shown, not when it was fetched (Chromium via Playwright)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.labeling.models import Judgment, Reservation, ReservationState
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    browser_storage,
    build_project,
    log_in,
    page,
    pytestmark,
    wait_for_fresh_pair,
)

TTL_SECONDS = 4


@pytest.mark.django_db(transaction=True)
def test_the_pair_on_screen_stays_reserved_and_a_prefetched_ones_clock_starts_when_shown(
    page,  # noqa: F811 - the fixture imported above
    live_server,
    browser_storage,  # noqa: F811 - the fixture imported above
):
    project = build_project(faces=2, with_gold=False)
    project.reservation_ttl_seconds = TTL_SECONDS
    project.save(update_fields=["reservation_ttl_seconds"])
    annotator = user_create(username="renewing-annotator", password=PASSWORD, role=Role.ANNOTATOR)
    membership_add(user=annotator, project=project)
    assert PASSWORD
    log_in(page, live_server.url, username=annotator.username, next_path=f"/annotate/{project.slug}/")
    on_screen = wait_for_fresh_pair(page, set())
    assert page.get_attribute("#stage", "data-expires-at")

    def reservation(pk) -> Reservation:
        return Reservation.objects.get(pk=pk)

    # Shown: its clock started on the server. The prefetched one waits unseen, its clock not started.
    deadline = time.monotonic() + 10
    while reservation(on_screen).shown_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reservation(on_screen).shown_at is not None
    deadline = time.monotonic() + 10
    while Reservation.objects.filter(annotator=annotator).count() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    prefetched = Reservation.objects.filter(annotator=annotator).exclude(pk=on_screen).get()
    assert prefetched.shown_at is None

    # Three TTLs with the annotator at the page: the pair on screen is still theirs, renewed all along.
    for _ in range(3 * TTL_SECONDS * 2):
        page.mouse.move(10, 10 + _ % 5)
        time.sleep(0.5)
    held = reservation(on_screen)
    assert held.state == ReservationState.ACTIVE and held.expires_at > timezone.now()
    assert held.expires_at > held.created_at + timedelta(seconds=2 * TTL_SECONDS)

    page.keyboard.press("ArrowLeft")
    shown_next = wait_for_fresh_pair(page, {on_screen})
    assert shown_next == str(prefetched.pk)
    deadline = time.monotonic() + 10
    while reservation(prefetched.pk).shown_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    started = reservation(prefetched.pk)
    # Its clock started when shown (after it waited unseen for three TTLs), and its deadline with it.
    assert started.shown_at - started.created_at > timedelta(seconds=2 * TTL_SECONDS)
    assert started.expires_at > started.shown_at
    page.wait_for_function("() => document.getElementById('saving').textContent === ''")
    judged = Judgment.objects.get(reservation_id=on_screen)
    assert judged.annotator == annotator
    assert "error" not in (page.get_attribute("#flash", "class") or "")
