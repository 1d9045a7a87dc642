"""What was judged never changes, in the queue: lowering the overlap never over-serves a pair, a late judgment
is kept when its pair still has room (else a clear 410), and the page's reservation is renewed while shown.

Each test runs on both queue paths (`queue_path`); the conftest checks the queue invariant after each."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation_web.labeling import judgments, pairs, queue
from annotation_web.labeling.errors import Expired
from annotation_web.labeling.models import Judgment, Pair, Reservation
from annotation_web.labeling.queue import queue_invariant_violations


def expire(reservation_id) -> None:
    Reservation.objects.filter(pk=reservation_id).update(expires_at=timezone.now() - timedelta(seconds=1))


def submit(user, reserved, choice: str = "left"):
    return judgments.judgment_submit(
        annotator=user, reservation_id=reserved.pk, choice=choice, idempotency_key=f"{reserved.pk}-{choice}"
    )


@pytest.mark.django_db
def test_lowering_the_overlap_below_what_is_judged_and_held_never_over_serves(
    make_project, make_user, queue_path
):
    project = make_project(pairs=1, overlap=3)
    judged, holder, late = make_user(), make_user(), make_user()
    submit(judged, queue.pair_reserve_next(annotator=judged, project=project))
    held = queue.pair_reserve_next(annotator=holder, project=project)
    project = pairs.project_set_overlap(project=project, overlap=1)  # 1 judged + 1 held > 1
    assert queue_invariant_violations(project=project) == []
    assert Pair.objects.get(pk=held.pair_id).open_slots == 0

    expire(held.pk)
    assert queue.reservations_release_expired(project=project) == 1
    # The expired slot is not a slot: the pair has all the judgments it wants.
    assert Pair.objects.get(pk=held.pair_id).open_slots == 0
    assert queue.pair_reserve_next(annotator=late, project=project) is None
    assert queue_invariant_violations(project=project) == []
    assert Judgment.objects.filter(pair_id=held.pair_id).count() == 1


@pytest.mark.django_db
def test_a_skip_on_a_pair_beyond_its_lowered_overlap_gives_no_slot_back(make_project, make_user, queue_path):
    project = make_project(pairs=1, overlap=2)
    first, second, third = make_user(), make_user(), make_user()
    submit(first, queue.pair_reserve_next(annotator=first, project=project))
    held = queue.pair_reserve_next(annotator=second, project=project)
    project = pairs.project_set_overlap(project=project, overlap=1)
    submit(second, held, choice="skip")
    assert Pair.objects.get(pk=held.pair_id).open_slots == 0
    assert queue.pair_reserve_next(annotator=third, project=project) is None
    # Raising it again opens exactly the slots the new overlap leaves.
    project = pairs.project_set_overlap(project=project, overlap=3)
    assert Pair.objects.get(pk=held.pair_id).open_slots == 2


@pytest.mark.django_db
def test_the_checker_still_sees_a_pair_served_beyond_a_lowered_overlap(make_project, make_user, queue_path):
    project = make_project(pairs=1, overlap=2)
    first, second = make_user(), make_user()
    submit(first, queue.pair_reserve_next(annotator=first, project=project))
    project = pairs.project_set_overlap(project=project, overlap=1)
    assert queue_invariant_violations(project=project) == []
    # A reservation made behind the queue's back after the change: that is over-serving, and is reported.
    pair = Pair.objects.get(project=project)
    rogue = Reservation.objects.create(
        pair=pair,
        annotator=second,
        shown_left="a",
        created_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert f"pair {pair.pk}: 1 judged + 1 held exceed the overlap 1" in queue_invariant_violations(
        project=project
    )
    Reservation.objects.filter(pk=rogue.pk).update(state="expired")


@pytest.mark.django_db
@pytest.mark.parametrize("released", [False, True], ids=["still-held", "released"])
def test_a_late_judgment_is_kept_when_the_pair_has_room(make_project, make_user, queue_path, released):
    project = make_project(pairs=2, overlap=1)
    annotator = make_user()
    reserved = queue.pair_reserve_next(annotator=annotator, project=project)
    expire(reserved.pk)
    if released:
        queue.reservations_release_expired(project=project)
        assert Pair.objects.get(pk=reserved.pair_id).open_slots == 1
    result = submit(annotator, reserved)
    assert result.created and result.pair_id == reserved.pair_id
    assert Judgment.objects.filter(reservation_id=reserved.pk, annotator=annotator).exists()
    assert Reservation.objects.get(pk=reserved.pk).state == "submitted"
    assert Pair.objects.get(pk=reserved.pair_id).open_slots == 0


@pytest.mark.django_db
def test_a_late_judgment_without_room_is_a_clear_410(make_project, make_user, queue_path):
    project = make_project(pairs=1, overlap=1)
    late, other = make_user(), make_user()
    reserved = queue.pair_reserve_next(annotator=late, project=project)
    expire(reserved.pk)
    taken = queue.pair_reserve_next(annotator=other, project=project)  # releases it, then takes the slot
    assert taken.pair_id == reserved.pair_id
    client = APIClient()
    client.force_login(late)
    response = client.post(
        "/api/judgments/",
        {"reservation": str(reserved.pk), "choice": "left", "idempotency_key": "late"},
        format="json",
    )
    assert response.status_code == 410
    assert "expired" in response.json()["detail"] and "not recorded" in response.json()["detail"]
    with pytest.raises(Expired):
        submit(late, reserved)
    assert not Judgment.objects.filter(annotator=late).exists()


@pytest.mark.django_db
def test_renewing_the_pair_on_screen_and_starting_a_prefetched_pairs_clock(
    make_project, make_user, queue_path
):
    project = make_project(pairs=3, overlap=1, ttl=60)
    annotator, stranger = make_user(), make_user()
    client = APIClient()
    client.force_login(annotator)
    first = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"]
    prefetched = client.post(
        f"/api/projects/{project.slug}/next/", {"exclude": [first["reservation"]]}, format="json"
    ).json()["pair"]
    assert first["expires_at"] and prefetched["expires_at"]

    # The prefetched pair waited unseen for 50 s; shown now, its clock and its deadline start now.
    long_ago = timezone.now() - timedelta(seconds=50)
    Reservation.objects.filter(pk=prefetched["reservation"]).update(
        created_at=long_ago, expires_at=long_ago + timedelta(seconds=60)
    )
    url = f"/api/reservations/{prefetched['reservation']}/renew/"
    renewed = client.post(url, {"shown": True}, format="json")
    assert renewed.status_code == 200, renewed.content
    row = Reservation.objects.get(pk=prefetched["reservation"])
    assert row.shown_at is not None and row.expires_at > timezone.now() + timedelta(seconds=55)
    assert datetime.fromisoformat(renewed.json()["expires_at"]) == row.expires_at
    response = client.post(
        "/api/judgments/",
        {"reservation": prefetched["reservation"], "choice": "left", "idempotency_key": "p"},
        format="json",
    )
    assert response.status_code == 201
    assert Judgment.objects.get(reservation_id=prefetched["reservation"]).server_duration_ms < 20_000

    # Only its annotator renews it; a judged one is not renewed; one released with room is taken again.
    assert APIClient().post(
        f"/api/reservations/{first['reservation']}/renew/", {}, format="json"
    ).status_code in (
        401,
        403,
    )
    other = APIClient()
    other.force_login(stranger)
    assert other.post(f"/api/reservations/{first['reservation']}/renew/", {}, format="json").status_code in (
        403,
        404,
    )
    assert client.post(url, {}, format="json").status_code == 409
    expire(first["reservation"])
    queue.reservations_release_expired(project=project)
    again = client.post(f"/api/reservations/{first['reservation']}/renew/", {}, format="json")
    assert again.status_code == 200
    assert Reservation.objects.get(pk=first["reservation"]).state == "active"


@pytest.mark.django_db
def test_renewing_a_released_reservation_whose_pair_is_full_is_a_410(make_project, make_user, queue_path):
    project = make_project(pairs=1, overlap=1)
    annotator, other = make_user(), make_user()
    reserved = queue.pair_reserve_next(annotator=annotator, project=project)
    expire(reserved.pk)
    assert queue.pair_reserve_next(annotator=other, project=project).pair_id == reserved.pair_id
    client = APIClient()
    client.force_login(annotator)
    response = client.post(f"/api/reservations/{reserved.pk}/renew/", {"shown": True}, format="json")
    assert response.status_code == 410 and "expired" in response.json()["detail"]


@pytest.mark.django_db
def test_taking_a_released_reservation_back_never_exceeds_what_one_annotator_may_hold(
    make_project, make_user, queue_path
):
    project = make_project(pairs=4, overlap=1)
    annotator = make_user()
    first = queue.pair_reserve_next(annotator=annotator, project=project)
    expire(first.pk)
    queue.reservations_release_expired(project=project)
    held = [queue.pair_reserve_next(annotator=annotator, project=project)]
    held.append(
        queue.pair_reserve_next(annotator=annotator, project=project, exclude_reservations=[held[0].pk])
    )
    client = APIClient()
    client.force_login(annotator)
    response = client.post(f"/api/reservations/{first.pk}/renew/", {}, format="json")
    assert response.status_code == 409 and "already hold 2" in response.json()["detail"]
    assert Reservation.objects.get(pk=first.pk).state == "expired"
