import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation_web.accounts import authentication
from annotation_web.accounts.services import token_for_user


@pytest.mark.django_db
def test_token_is_remembered_briefly_then_checked_again(
    annotator, monkeypatch, django_assert_max_num_queries
):
    authentication.forget_tokens()
    key = token_for_user(user=annotator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/projects/").status_code == 200
    with django_assert_max_num_queries(2):  # the project list only: no token lookup
        assert client.get("/api/projects/").status_code == 200
    Token.objects.filter(key=key).delete()
    assert client.get("/api/projects/").status_code == 200  # still remembered
    # past the cache time, measured from the real clock (a fixed fake time fails on a machine up for hours)
    later = authentication.time.monotonic() + authentication.TOKEN_CACHE_SECONDS + 1.0
    monkeypatch.setattr(authentication.time, "monotonic", lambda: later)
    assert client.get("/api/projects/").status_code in (401, 403)  # forgotten after the cache time
    assert APIClient(HTTP_AUTHORIZATION="Token wrong").get("/api/projects/").status_code in (401, 403)
    authentication.forget_tokens()
