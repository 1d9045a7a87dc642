"""What a hostile client tried on the API (issue "Trust in the data", "Also found by hostile probes"), each
answered with a JSON 4xx and never a 500: deep JSON, huge bodies, a changed idempotent resubmit, job requests
out of bounds or too many, forged file tokens, anonymous calls, brute-forced passwords, and the schema's word
against the responses."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user, user_create
from annotation_web.jobs.models import Job
from annotation_web.labeling.models import Judgment
from annotation_web.storage import URL_SIGNING_SALT

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # 200 KB
HUGE_BODY = b'{"username": "' + b"x" * (10 * 1024 * 1024) + b'"}'


def client_for(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=user)}")
    return client


def assert_json_error(response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert "json" in response["Content-Type"], response["Content-Type"]
    body = response.json()
    assert body["error"] and "detail" in body
    return body


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_not_a_recursion_error(annotator):
    anonymous = APIClient(raise_request_exception=False)
    assert_json_error(
        anonymous.generic("POST", "/api/auth/token/", DEEP_JSON, content_type="application/json"), 400
    )
    assert_json_error(
        client_for(annotator).generic("POST", "/api/judgments/", DEEP_JSON, content_type="application/json"),
        400,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/judgments/"])
def test_a_10_mb_body_gets_the_api_json_error_not_an_html_page(annotator, path):
    client = client_for(annotator) if path == "/api/judgments/" else APIClient(raise_request_exception=False)
    response = client.generic("POST", path, HUGE_BODY, content_type="application/json")
    assert_json_error(response, 413)


@pytest.mark.django_db
def test_unknown_api_urls_and_methods_answer_json(annotator):
    client = client_for(annotator)
    assert_json_error(client.get("/api/no-such-endpoint/"), 404)
    assert_json_error(client.delete("/api/projects/"), 405)
    assert_json_error(
        client.post("/api/projects/nope/next/", b"{", content_type="application/json"), 400, 404
    )
    assert_json_error(client.post("/api/judgments/", b"\xff\xfe", content_type="application/json"), 400)


@pytest.mark.django_db
def test_resubmitting_a_key_with_another_choice_echoes_what_was_stored(make_project, annotator):
    project = make_project(pairs=2)
    client = client_for(annotator)
    reservation = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"][
        "reservation"
    ]
    first = client.post(
        "/api/judgments/",
        {"reservation": reservation, "choice": "left", "idempotency_key": "k1"},
        format="json",
    )
    assert first.status_code == 201 and first.json()["choice"] == "left"
    again = client.post(
        "/api/judgments/",
        {"reservation": reservation, "choice": "right", "idempotency_key": "k1"},
        format="json",
    )
    # Never "200 with the new choice": either the stored answer comes back, or the change is refused.
    assert (again.status_code == 200 and again.json()["choice"] == "left") or again.status_code in (409, 422)
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
def test_job_requests_are_validated_before_anything_is_queued(make_project, engineer):
    project = make_project(pairs=1)
    client = client_for(engineer)
    base = f"/api/projects/{project.slug}/jobs"
    refused = [
        # a form body would leave every field to its default: JSON objects only
        client.post(f"{base}/train-reward/", b"[]", content_type="multipart/form-data; boundary=x"),
        client.post(f"{base}/train-reward/", {}, format="multipart"),
        client.post(f"{base}/train-reward/", [], format="json"),
        client.post(f"{base}/train-reward/", {"max_steps": 27_708_713_317_055}, format="json"),
        client.post(f"{base}/train-reward/", {"max_steps": 0}, format="json"),
        client.post(f"{base}/train-reward/", {"seed": -1}, format="json"),
        client.post(f"{base}/generate/", {"restorer_id": 1, "num_steps": 10**9}, format="json"),
        client.post(
            f"{base}/train-rl/", {"restorer_id": 1, "reward_id": 2, "overrides": {"x": 1}}, format="json"
        ),
        client.post(
            f"{base}/train-rl/",
            {"restorer_id": 1, "reward_id": 2, "overrides": {"max_steps": 10**12}},
            format="json",
        ),
        client.post(
            f"{base}/train-rl/",
            {"restorer_id": 1, "reward_id": 2, "overrides": {"group_size": "many"}},
            format="json",
        ),
        client.post(
            f"{base}/train-rl/", {"restorer_id": 1, "reward_id": 2, "overrides": {"eta": 0}}, format="json"
        ),
        client.post(
            f"{base}/train-rl/",
            {"restorer_id": 1, "reward_id": 2, "overrides": {"version": 99}},
            format="json",
        ),
        client.post(f"{base}/train-rl/", {"restorer_id": 1, "reward_id": 2, "overrides": []}, format="json"),
    ]
    for index, response in enumerate(refused):
        assert response.status_code in (400, 415), (index, response.status_code, response.content[:200])
        assert_json_error(response, 400, 415)
    assert not Job.objects.exists()


def test_known_rl_overrides_with_valid_values_pass_the_bridge():
    from annotation_web import ml_bridge

    config = ml_bridge.rl_config_validate(
        preset="test", overrides={"max_steps": 3, "eta": 0.5, "use_lora": True}
    )
    assert config["max_steps"] == 3 and config["use_lora"] is True


@pytest.mark.django_db
def test_job_creation_is_rate_limited(make_project, engineer, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    # The throttle reads its rates from a class attribute bound at import: patch that (monkeypatch puts the
    # original dict back, so later tests are not throttled at 3 jobs a minute).
    rates = {**ScopedRateThrottle.THROTTLE_RATES, "jobs": "3/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    project = make_project(pairs=1)
    client = client_for(engineer)
    statuses = [
        client.post(
            f"/api/projects/{project.slug}/jobs/train-reward/", {"size": "tiny"}, format="json"
        ).status_code
        for _ in range(5)
    ]
    assert statuses[:3] != [429] * 3 and statuses[3:] == [429, 429], statuses


@pytest.mark.django_db
@pytest.mark.parametrize("payload", ["inputs", "inputs/a\x00b.png", 12, ["inputs/x.png"], {"k": "v"}])
def test_forged_file_tokens_are_a_404_not_a_500(annotator, local_storage, payload):
    (local_storage / "inputs").mkdir(parents=True, exist_ok=True)
    client = Client(raise_request_exception=False)
    client.force_login(annotator)
    token = signing.dumps(payload, salt=URL_SIGNING_SALT, compress=True)
    assert client.get(f"/files/{token}/").status_code == 404


@pytest.mark.django_db
def test_anonymous_api_calls_get_401_with_www_authenticate(make_project):
    project = make_project(pairs=1)
    client = APIClient(raise_request_exception=False)
    for method, path in [
        ("get", "/api/projects/"),
        ("post", f"/api/projects/{project.slug}/next/"),
        ("post", "/api/judgments/"),
        ("get", "/api/jobs/"),
        ("get", "/api/models/"),
        ("get", "/api/schema/"),
    ]:
        response = getattr(client, method)(
            path, HTTP_ACCEPT="application/json, application/vnd.oai.openapi+json"
        )
        assert_json_error(response, 401)
        assert response["WWW-Authenticate"] == "Token", path


@pytest.mark.django_db
def test_fifty_wrong_passwords_in_a_minute_are_not_all_answered(make_user):
    user_create(username="victim", password="the-right-password-7", role=Role.ANNOTATOR)
    client = APIClient(raise_request_exception=False)
    statuses = [
        client.post(
            "/api/auth/token/", {"username": "victim", "password": f"guess-{i}"}, format="json"
        ).status_code
        for i in range(50)
    ]
    assert statuses[0] == 401 and statuses.count(429) >= 35, statuses
    # the right password does not get through the throttle either
    right = client.post(
        "/api/auth/token/", {"username": "victim", "password": "the-right-password-7"}, format="json"
    )
    assert right.status_code == 429 and right["Retry-After"]


@pytest.mark.django_db
def test_the_user_name_throttle_holds_across_client_addresses_and_ignores_forwarded_for(settings):
    user_create(username="victim", password="the-right-password-7", role=Role.ANNOTATOR)
    statuses = []
    for i in range(20):
        client = APIClient(REMOTE_ADDR=f"10.0.{i}.1", raise_request_exception=False)
        statuses.append(
            client.post(
                "/api/auth/token/", {"username": "VICTIM", "password": "x" * 9}, format="json"
            ).status_code
        )
    assert statuses.count(429) >= 10, statuses
    # one address with a fresh X-Forwarded-For and a fresh user name each time: still one client
    statuses = []
    for i in range(30):
        client = APIClient(HTTP_X_FORWARDED_FOR=f"203.0.113.{i}", raise_request_exception=False)
        statuses.append(
            client.post(
                "/api/auth/token/", {"username": f"name{i}", "password": "x" * 9}, format="json"
            ).status_code
        )
    assert statuses.count(429) >= 10, statuses


@pytest.mark.django_db
def test_the_login_page_is_throttled_too():
    user_create(username="victim", password="the-right-password-7", role=Role.ANNOTATOR)
    client = Client()
    statuses = [
        client.post("/login/", {"username": "victim", "password": f"guess-{i}"}).status_code
        for i in range(30)
    ]
    assert statuses[0] == 200 and statuses.count(429) >= 15, statuses


@pytest.mark.django_db
def test_the_token_endpoint_still_answers_a_token(annotator):
    response = APIClient().post(
        "/api/auth/token/", {"username": "ann", "password": "pw-123456"}, format="json"
    )
    assert response.status_code == 200 and response.json()["token"]
    assert (
        APIClient(HTTP_AUTHORIZATION=f"Token {response.json()['token']}").get("/api/projects/").status_code
        == 200
    )


@pytest.mark.django_db
def test_the_schema_documents_errors_and_nullable_parent(annotator):
    schema = client_for(annotator).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["ModelVersion"]["properties"]["parent"].get("nullable") is True
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"400", "401", "403", "404"} <= documented, (method, path, documented)
    assert "/files/" not in " ".join(schema["paths"])
