"""A manager opens every dashboard page in a real browser (Chromium via Playwright): every plot's canvas is
drawn by the vendored Chart.js from its data block, with no console error and no page error (the site's
Content-Security-Policy would refuse an inline script or a script from elsewhere, and say so in the console)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.dashboards.conftest import plant
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    collect_errors,
    log_in,
    page,
    pytestmark,
    screenshot,
)

PAGES = ["", "people/", "models/", "jobs/"]


@pytest.mark.django_db(transaction=True)
def test_a_manager_sees_every_plot_drawn_without_errors(page, live_server, make_project, make_user):  # noqa: F811
    from annotation_web.labeling.models import Pair

    project = make_project(pairs=8, gold=2)
    annotators = [make_user(Role.ANNOTATOR, f"seen{i}") for i in range(2)]
    for index, pair in enumerate(Pair.objects.filter(project=project).order_by("pk")):
        for number, annotator in enumerate(annotators):
            plant(
                pair=pair, annotator=annotator, outcome="ab"[(index + number) % 2], shown_left="ab"[index % 2]
            )
    base = ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="r",
        metrics={"val_psnr": 24.0},
        config={"lineage": {"project": project.slug}},
    )
    ModelVersion.objects.create(
        kind=ModelKind.RESTORER,
        name="r",
        version=2,
        parent=base,
        metrics={"rl": {"final": {"reward/total": 1.0}, "entropy_before": 0.1, "entropy_after": 0.08}},
        config={"lineage": {"project": project.slug}},
    )
    Job.objects.create(
        kind="train_rl",
        project=project,
        state=JobState.RUNNING,
        started_at=timezone.now() - timedelta(minutes=3),
    )
    manager = user_create(username="reading-manager", password=PASSWORD, role=Role.MANAGER)
    membership_add(user=manager, project=project)
    errors = collect_errors(page)
    log_in(page, live_server.url, username=manager.username, next_path=f"/dashboard/{project.slug}/")
    for path in PAGES:
        page.goto(f"{live_server.url}/dashboard/{project.slug}/{path}")
        canvases = page.locator("canvas[data-plot]")
        assert canvases.count() >= 2, path
        page.wait_for_function(
            "() => [...document.querySelectorAll('canvas[data-plot]')].every((c) => c.dataset.rendered === 'true')"
        )
        for index in range(canvases.count()):
            canvas = canvases.nth(index)
            name = canvas.get_attribute("data-plot")
            # Chart.js keeps a chart per canvas; one that drew has a size and is registered.
            drawn = page.evaluate(
                "(name) => { const c = document.getElementById('plot-' + name);"
                " return !!window.Chart.getChart(c) && c.width > 0 && c.height > 0; }",
                name,
            )
            assert drawn, f"{path or 'dataset'}: {name}"
        assert not errors, f"{path or 'dataset'}: {errors}"
        screenshot(page, f"dashboard-{path.strip('/') or 'dataset'}.png")
    # the tabs reach each other by keyboard: the People tab is a link
    page.goto(f"{live_server.url}/dashboard/{project.slug}/")
    page.locator('nav.tabs a:has-text("People")').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/dashboard/{project.slug}/people/")
    assert page.locator("#annotators").is_visible()
    assert not errors, errors
