"""schemathesis over the API's own OpenAPI schema, with its default checks: every response is one the schema
documents (status, content type, body), schema-valid input is never refused with a 5xx, invalid input is
refused, and no input reaches a 500."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from annotation_web.accounts.models import Role  # noqa: E402
from annotation_web.accounts.services import membership_add, token_for_user, user_create  # noqa: E402
from annotation_web.labeling.pairs import project_create  # noqa: E402


@pytest.fixture
def auth_headers(db):
    engineer = user_create(username="schema-eng", password="pw-123456", role=Role.ENGINEER)
    project = project_create(name="Schema", slug="schema", overlap=1, gold_rate=0.0)
    membership_add(user=engineer, project=project)
    return {"Authorization": f"Token {token_for_user(user=engineer)}"}


@pytest.fixture
def api_schema(auth_headers):
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    # As Django's test client does: the WSGI handler would close the test's connection after each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json", get_wsgi_application(), headers=auth_headers
        )
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_the_api_agrees_with_its_schema(api_schema, auth_headers):
    # Each operation in turn (schemathesis' own pytest plugin does not load on this pytest).
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 10
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(headers=auth_headers)

        try:
            check()
        except Exception as exc:  # collect them all: one report of every operation that disagrees
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
