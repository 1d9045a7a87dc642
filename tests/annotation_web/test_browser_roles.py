"""An annotator in a real browser (Chromium via Playwright) is refused every engineer and manager page, and
the header shows them no link to one. The pages are found from the URL configuration, so a page added later
without a refusal check fails here until it is listed with its arguments."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.pairs import project_create
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    log_in,
    page,
    pytestmark,
)

# Pages annotators use, and pages that are not the app's (the admin refuses them itself).
ANNOTATOR_PAGES = {"home", "annotate", "reservation-image", "storage-file", "login", "logout"}
# POST-only actions of the engineer pages: refused on GET as on POST; a GET of them is no page to read.
ACTIONS = {"loop-compare-promote", "loop-rollback"}


def _page_names(patterns, prefix: str = "") -> dict[str, str]:
    names: dict[str, str] = {}
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue
            names.update(_page_names(entry.url_patterns, prefix + str(entry.pattern)))
        elif isinstance(entry, URLPattern) and entry.name:
            route = prefix + str(entry.pattern)
            if not route.startswith("api/") and entry.name not in ANNOTATOR_PAGES | ACTIONS:
                names[entry.name] = route
    return names


def _paths(project, job, version) -> dict[str, str]:
    slug = project.slug
    return {
        "jobs": "/jobs/",
        "job-detail": f"/jobs/{job.pk}/",
        "models": "/models/",
        "model-detail": f"/models/{version.pk}/",
        "dashboard": f"/dashboard/{slug}/",
        "dashboard-people": f"/dashboard/{slug}/people/",
        "dashboard-models": f"/dashboard/{slug}/models/",
        "dashboard-jobs": f"/dashboard/{slug}/jobs/",
        "dashboard-csv": f"/dashboard/{slug}/data/judgments-per-day.csv",
        "dashboard-json": f"/dashboard/{slug}/data/outcomes.json",
        "job-new": f"/projects/{slug}/jobs/new/",
        "job-new-kind": f"/projects/{slug}/jobs/new/generate/",
        "loop-compare": f"/projects/{slug}/compare/",
        "loop-page": f"/projects/{slug}/loop/",
    }


@pytest.mark.django_db(transaction=True)
def test_an_annotator_is_refused_every_engineer_and_manager_page(page, live_server):  # noqa: F811
    project = project_create(name="Roles project", slug="roles-browser")
    annotator = user_create(username="curious-annotator", password=PASSWORD, role=Role.ANNOTATOR)
    membership_add(user=annotator, project=project)
    job = Job.objects.create(kind="generate", project=project, state=JobState.SUCCEEDED)
    version = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="tiny", version=1)
    paths = _paths(project, job, version)
    assert set(_page_names(get_resolver().url_patterns)) == set(paths), "list every new page here"

    log_in(page, live_server.url, username=annotator.username, next_path=f"/annotate/{project.slug}/")
    header = page.inner_text("header")
    assert "Jobs" not in header and "Models" not in header  # no engineer navigation for annotators
    for name, path in paths.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 403, (name, path, response and response.status)
        assert "<canvas" not in page.content() and project.name not in page.content(), name  # nothing shown
    # Downloads of the API refuse the annotator's session too.
    for path in (f"/api/models/{version.pk}/artifact.zip", f"/api/projects/{project.slug}/export/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 403, (path, response and response.status)
