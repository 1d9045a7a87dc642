"""API tokens: hashed at rest (knox), expiring, and revoked at once on a password change, a deactivation, a
deletion or a role change (an earlier in-process memory of tokens kept them working for 30 s)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.django_db
def test_a_token_is_stored_only_as_a_hash_and_answers_in_one_query(annotator, django_assert_max_num_queries):
    token = token_for_user(user=annotator)
    stored = AuthToken.objects.get(user=annotator)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128
    assert stored.expiry is not None and stored.expiry > timezone.now() + timedelta(hours=1)
    client = client_with(token)
    assert client.get("/api/projects/").status_code == 200
    with django_assert_max_num_queries(3):  # the token with its user (one join), then the project list
        assert client.get("/api/projects/").status_code == 200


@pytest.mark.django_db
def test_an_expired_token_is_refused(annotator):
    token = token_for_user(user=annotator)
    AuthToken.objects.filter(user=annotator).update(expiry=timezone.now() - timedelta(seconds=1))
    response = client_with(token).get("/api/projects/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert not AuthToken.objects.filter(user=annotator).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["delete_token", "password", "deactivate", "delete_user"])
def test_a_revoked_token_stops_working_at_once(annotator, change):
    token = token_for_user(user=annotator)
    client = client_with(token)
    assert client.get("/api/projects/").status_code == 200
    if change == "delete_token":
        AuthToken.objects.filter(user=annotator).delete()
    elif change == "password":
        annotator.set_password("a-new-password-42")
        annotator.save()
        assert not AuthToken.objects.filter(user=annotator).exists()
    elif change == "deactivate":
        annotator.is_active = False
        annotator.save()
        assert not AuthToken.objects.filter(user=annotator).exists()
    else:
        annotator.delete()
    assert client.get("/api/projects/").status_code == 401  # no grace period


@pytest.mark.django_db
def test_a_demoted_engineer_loses_engineer_endpoints_at_once(engineer, make_project):
    project = make_project(pairs=1)
    client = client_with(token_for_user(user=engineer))
    assert client.get(f"/api/projects/{project.slug}/pairs/").status_code == 200
    engineer.role = Role.ANNOTATOR
    engineer.save(update_fields=["role"])
    assert client.get(f"/api/projects/{project.slug}/pairs/").status_code == 403


@pytest.mark.django_db
def test_malformed_tokens_are_401_not_500(annotator):
    for header in ["Token wrong", "Token", "Token a b", "Token \xff\xfe"]:
        response = APIClient(HTTP_AUTHORIZATION=header).get("/api/projects/")
        assert response.status_code == 401, (header, response.status_code)
        assert response.json()["error"]
