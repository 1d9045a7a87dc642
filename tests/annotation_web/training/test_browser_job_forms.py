"""An engineer starts a generation from its form in a real browser (Chromium via Playwright), by keyboard, lands
on the job's page, and watches the job finish there without a reload (a worker's run, done here by the test)."""

from __future__ import annotations

import pytest

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import job_run
from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Pair
from annotation_web.labeling.pairs import project_create
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    browser_storage,
    log_in,
    page,
    pytestmark,
    synthetic_face_png,
)
from tests.annotation_web.test_browser import (
    screenshot as _shot,
)
from tests.annotation_web.training.test_ml_loop import tiny_restorer  # noqa: F401 - fixture


@pytest.mark.django_db(transaction=True)
def test_an_engineer_starts_a_generation_from_its_form_and_watches_it_finish(
    page,  # noqa: F811
    live_server,
    browser_storage,  # noqa: F811
    tiny_restorer,  # noqa: F811
):
    project = project_create(name="Form project", slug="forms-browser", overlap=1, resolution=32)
    imports.face_inputs_import(
        project=project, source=[SourceFile(f"face-{i}.png", synthetic_face_png(i)) for i in range(3)]
    )
    engineer = user_create(username="form-engineer", password=PASSWORD, role=Role.ENGINEER)
    membership_add(user=engineer, project=project)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    form_path = f"/projects/{project.slug}/jobs/new/generate/"

    def expected(msg) -> bool:
        # The browser's own request for /favicon.ico (the app has none), and the form answered 400 on purpose.
        where = msg.location.get("url", "")
        return where.endswith("/favicon.ico") or (where.endswith(form_path) and "status of 400" in msg.text)

    page.on(
        "console", lambda msg: errors.append(msg.text) if msg.type == "error" and not expected(msg) else None
    )

    log_in(page, live_server.url, username=engineer.username, next_path=f"/projects/{project.slug}/jobs/new/")
    assert "3 face inputs" in page.inner_text("#fact-inputs")
    _shot(page, "job-kinds.png")
    # From the list of kinds to the generate form, by keyboard.
    page.locator(f'a[href="{form_path}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}{form_path}")
    # The first field has the focus; no restorer is in use yet, so the engineer picks one.
    assert page.evaluate("() => document.activeElement.id") == "id_restorer_id"
    page.select_option("#id_restorer_id", str(tiny_restorer.pk))
    page.fill("#id_samples_per_input", "2")
    page.fill("#id_num_steps", "2")
    page.fill("#id_eta", "1")
    # A bad value first: shown beside its field, nothing queued.
    page.fill("#id_agreement_share", "3")
    page.locator("#id_agreement_share").press("Enter")
    page.wait_for_selector('p.field-error[data-field="agreement_share"]')
    assert "less than or equal to 1" in page.inner_text('p.field-error[data-field="agreement_share"]')
    assert not Job.objects.exists()
    _shot(page, "generate-form-error.png")
    # Corrected, Enter submits: the job's page.
    assert page.input_value("#id_num_steps") == "2"  # what was typed is kept
    assert "1 field to correct" in page.inner_text("#form-errors")
    # The focus is on the field to correct: select its text, type over it, Enter.
    assert page.evaluate("() => document.activeElement.id") == "id_agreement_share"
    page.keyboard.press("Control+A")
    page.keyboard.type("0.5")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/jobs/*/")
    job = Job.objects.get()
    assert page.url == f"{live_server.url}/jobs/{job.pk}/"
    assert job.kind == "generate" and job.params["restorer_id"] == tiny_restorer.pk
    assert job.params["samples_per_input"] == 2 and job.params["agreement_share"] == 0.5
    assert page.inner_text("#job-state") == "Queued"

    # A worker runs it (here, in the test's thread); the open page follows it to the end.
    page.evaluate("() => { window.__notReloaded = true; }")
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    page.wait_for_function("() => document.getElementById('job-state').textContent === 'Succeeded'")
    assert page.evaluate("() => window.__notReloaded === true")
    _shot(page, "generated-job-succeeded.png")
    assert Pair.objects.filter(project=project).count() == len(job.outputs["pair_ids"]) > 0
    assert errors == []
