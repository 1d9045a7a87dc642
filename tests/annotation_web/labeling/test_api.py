"""The REST API: what each role may see and do, and clear 4xx answers to bad requests."""

import io
import json

import pytest
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user
from annotation_web.jobs.models import Job
from annotation_web.labeling.models import Judgment, Pair


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=user)}")
    return client


@pytest.mark.django_db
def test_annotator_flow_next_submit_with_next_and_stats(make_project, annotator):
    project = make_project(pairs=3, gold=2, gold_rate=0.5)
    client = client_for(annotator)
    served = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"]
    assert set(served) == {
        "reservation",
        "expires_at",
        "reference_url",
        "left_url",
        "right_url",
        "instruction",
    }
    # Nothing tells the browser which side is which model, or which pair is gold.
    body = json.dumps(served)
    for leak in ("gold", "model", '"a"', "candidate", "shown_left"):
        assert leak not in body
    judged = 0
    while served is not None:
        response = client.post(
            "/api/judgments/",
            {
                "reservation": served["reservation"],
                "choice": "left",
                "idempotency_key": f"k{judged}",
                "client_duration_ms": 850,
                "next": {"exclude": []},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        judged += 1
        served = response.json()["next"]["pair"]
    assert judged >= 3
    stats = client.get(f"/api/projects/{project.slug}/me/stats/").json()
    assert stats["left_in_queue"] == 0 and stats["judged_today"] == judged
    assert Judgment.objects.filter(annotator=annotator, client_duration_ms=850).count() == judged


@pytest.mark.django_db
def test_repeated_submit_over_http_returns_200_and_the_same_judgment(make_project, annotator):
    project = make_project(pairs=2)
    client = client_for(annotator)
    reservation = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"][
        "reservation"
    ]
    body = {"reservation": reservation, "choice": "tie", "idempotency_key": "abc"}
    first = client.post("/api/judgments/", body, format="json")
    second = client.post("/api/judgments/", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["judgment_id"] == second.json()["judgment_id"]
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
def test_bad_requests_get_clear_4xx(make_project, make_user):
    project = make_project(pairs=2)
    owner, other = make_user(), make_user()
    client = client_for(owner)
    reservation = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"][
        "reservation"
    ]
    cases = [
        (
            client,
            {"reservation": "00000000-0000-0000-0000-000000000000", "choice": "left", "idempotency_key": "a"},
            404,
        ),
        (client_for(other), {"reservation": reservation, "choice": "left", "idempotency_key": "b"}, 403),
        (client, {"reservation": reservation, "choice": "a", "idempotency_key": "c"}, 400),
        (client, {"reservation": "not-a-uuid", "choice": "left", "idempotency_key": "d"}, 400),
        (client, {"choice": "left"}, 400),
    ]
    for api_client, body, status in cases:
        response = api_client.post("/api/judgments/", body, format="json")
        assert response.status_code == status, (body, response.content)
        assert "error" in response.json() and response.json()["detail"]
    malformed = client.post("/api/judgments/", data="{not json", content_type="application/json")
    assert malformed.status_code == 400 and "JSON" in str(malformed.json()["detail"])
    assert client.post("/api/projects/no-such/next/", {}, format="json").status_code == 404
    assert Judgment.objects.count() == 0


@pytest.mark.django_db
def test_roles_are_enforced_on_every_engineer_endpoint(make_project, annotator, engineer, make_user):
    project = make_project(pairs=1, gold=1)
    manager = make_user(Role.MANAGER)
    engineer_only = [
        f"/api/projects/{project.slug}/pairs/",
        f"/api/projects/{project.slug}/judgments/",
        f"/api/projects/{project.slug}/export/",
        "/api/jobs/",
    ]
    for url in engineer_only:
        assert client_for(annotator).get(url).status_code == 403, url
        assert client_for(engineer).get(url).status_code == 200, url
    assert client_for(annotator).get(f"/api/projects/{project.slug}/agreement/").status_code == 403
    assert client_for(manager).get(f"/api/projects/{project.slug}/agreement/").status_code == 200
    assert client_for(annotator).post(f"/api/projects/{project.slug}/imports/", {}).status_code == 403
    assert APIClient().post(f"/api/projects/{project.slug}/next/", {}, format="json").status_code in (
        401,
        403,
    )
    pairs = client_for(engineer).get(f"/api/projects/{project.slug}/pairs/").json()["results"]
    assert any(p["is_gold"] and p["gold_outcome"] in ("a", "b") for p in pairs)


@pytest.mark.django_db
def test_session_writes_need_the_csrf_token(make_project, annotator):
    project = make_project(pairs=1)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(annotator)
    refused = client.post(f"/api/projects/{project.slug}/next/", {}, format="json")
    assert refused.status_code == 403 and "CSRF" in str(refused.json()["detail"])
    page = client.get(f"/annotate/{project.slug}/")
    token = page.cookies["csrftoken"].value
    accepted = client.post(f"/api/projects/{project.slug}/next/", {}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200 and accepted.json()["pair"] is not None


@pytest.mark.django_db
def test_export_streams_the_contract_rows_without_skips(make_project, make_user, engineer):
    project = make_project(pairs=3, overlap=2)
    from annotation_web.labeling import judgments, queue

    for user in (make_user(), make_user()):
        choices = iter(["left", "skip", "both_bad"])
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            judgments.judgment_submit(
                annotator=user,
                reservation_id=reservation.pk,
                choice=next(choices, "tie"),
                idempotency_key=str(reservation.pk),
            )
    response = client_for(engineer).get(f"/api/projects/{project.slug}/export/")
    assert response.status_code == 200 and response.streaming
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    expected = {
        "pair_id",
        "input_id",
        "lq_key",
        "a_key",
        "b_key",
        "outcome",
        "annotator_id",
        "is_gold",
        "shown_left",
        "duration_ms",
        "created_at",
        "a_model",
        "b_model",
        "a_seed",
        "b_seed",
        "schema_version",
    }
    assert rows and all(expected <= set(row) for row in rows)
    assert all(row["outcome"] in {"a", "b", "tie", "both_bad"} for row in rows)
    assert len(rows) == Judgment.objects.exclude(outcome="skip").count()
    assert Judgment.objects.filter(outcome="skip").count() >= 1
    pair = Pair.objects.get(pk=rows[0]["pair_id"])
    assert rows[0]["a_key"] == pair.candidate_a.image_key


@pytest.mark.django_db
def test_agreement_endpoint_reports_alpha_per_project_and_batch(make_project, make_user, engineer):
    from annotation_web.labeling import judgments, queue

    project = make_project(pairs=4, overlap=2)
    for user in (make_user(), make_user()):
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            choice = "left" if reservation.shown_left == "a" else "right"  # both always pick `a`
            judgments.judgment_submit(
                annotator=user,
                reservation_id=reservation.pk,
                choice=choice,
                idempotency_key=str(reservation.pk),
            )
    data = client_for(engineer).get(f"/api/projects/{project.slug}/agreement/").json()
    assert data["agreement"]["pairs_with_two_or_more"] == 4
    assert {b["batch"] for b in data["agreement"]["per_batch"]} == {"b1", "b2"}
    assert all(a["rate"] == 1.0 for a in data["agreement"]["per_annotator_majority_agreement"])


@pytest.mark.django_db
def test_openapi_schema_is_served(annotator):
    client = client_for(annotator)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/judgments/" in schema.json()["paths"]


@pytest.mark.django_db
def test_oversized_upload_is_refused_before_any_job(make_project, engineer, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000
    project = make_project(pairs=0)
    upload = io.BytesIO(b"PK" + b"0" * 5000)
    upload.name = "faces.zip"
    response = client_for(engineer).post(
        f"/api/projects/{project.slug}/imports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400 and "over 1000 bytes" in str(response.json()["detail"])
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_throttling_answers_429(make_project, annotator, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import UserRateThrottle

    cache.clear()
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    project = make_project(pairs=1)
    client = client_for(annotator)
    statuses = [client.get(f"/api/projects/{project.slug}/me/stats/").status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    cache.clear()


@pytest.mark.django_db
def test_dashboard_for_managers_shows_pace_answers_agreement_and_annotators(
    make_project, make_user, annotator
):
    from annotation_web.labeling import judgments, queue

    project = make_project(pairs=4, overlap=2, gold=1, gold_rate=0.5)
    for user in (make_user(username="alice"), make_user(username="bob")):
        while (reservation := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            judgments.judgment_submit(
                annotator=user,
                reservation_id=reservation.pk,
                choice="tie",
                idempotency_key=str(reservation.pk),
            )
    manager = make_user(Role.MANAGER)
    data = client_for(manager).get(f"/api/projects/{project.slug}/dashboard/").json()
    assert data["pairs"] == 4 and data["pairs_complete"] == 4 and data["judgments"] == 8
    assert {row["outcome"]: row["count"] for row in data["outcomes"]}["tie"] == 8
    assert data["per_day"][-1]["judgments"] >= 8 and len(data["per_day"]) == 14
    assert {row["annotator"] for row in data["annotators"]} == {"alice", "bob"}

    from django.test import Client

    browser = Client()
    browser.force_login(manager)
    page = browser.get(f"/dashboard/{project.slug}/")
    assert page.status_code == 200
    assert 'id="plot-judgments-per-day"' in page.content.decode()
    assert "alice" in browser.get(f"/dashboard/{project.slug}/people/").content.decode()
    browser.force_login(annotator)
    assert browser.get(f"/dashboard/{project.slug}/").status_code == 403
    assert client_for(annotator).get(f"/api/projects/{project.slug}/dashboard/").status_code == 403
