"""The queue's two paths: tests that use `queue_path` run once per path this database has.

PostgreSQL: "sql" (the one-statement raw SQL of `labeling.queue_sql`, the ORM for the rest) and "orm" (no raw
SQL at all). SQLite: "orm" only ("sql" is an error there; `test_sqlite.py` runs these suites on SQLite).
After each such test, `queue_invariant_violations` must find nothing in any project.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from annotation_web.labeling.models import Project
from annotation_web.labeling.queue import queue_invariant_violations
from annotation_web.storage import _cached_storage
from tests.annotation_web.test_storage_s3 import ENDPOINT


def queue_paths() -> list[str]:
    engine = django_settings.DATABASES["default"]["ENGINE"]
    return ["sql", "orm"] if engine == "django.db.backends.postgresql" else ["orm"]


def pytest_generate_tests(metafunc):
    if "queue_path" in metafunc.fixturenames:
        metafunc.parametrize("queue_path", queue_paths(), indirect=True)


def assert_queue_invariant() -> None:
    violations = [v for project in Project.objects.all() for v in queue_invariant_violations(project=project)]
    assert not violations, "queue invariant broken:\n" + "\n".join(violations[:20])


@pytest.fixture
def queue_path(request, settings, db):
    """Forces the queue path for the test (`settings.PREF_QUEUE_PATH`); checks the invariant afterwards."""
    settings.PREF_QUEUE_PATH = request.param
    yield request.param
    assert_queue_invariant()


@pytest.fixture(params=["local", "s3"])
def any_storage(request, settings):
    """The test runs twice: on the local folder, and on the real S3 server when infra/test.sh started one."""
    if request.param == "s3":
        if not ENDPOINT:
            pytest.skip("needs the S3 server that infra/test.sh starts (PREF_TEST_S3_ENDPOINT)")
        settings.STORAGE_BACKEND = "s3"
        settings.S3_ENDPOINT_URL = ENDPOINT
        settings.S3_ACCESS_KEY = os.environ.get("PREF_S3_ACCESS_KEY", "pref-key")
        settings.S3_SECRET_KEY = os.environ.get("PREF_S3_SECRET_KEY", "pref-secret")
        settings.S3_BUCKET = "pref-test"
        _cached_storage.cache_clear()
    yield request.param
    _cached_storage.cache_clear()
