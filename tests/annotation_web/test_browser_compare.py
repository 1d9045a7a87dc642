"""The compare page in a real browser (Chromium via Playwright): an engineer opens it, sees both versions, their
images (served through signed URLs) and the leaderboard's verdict, promotes the candidate with a reason from the
keyboard, and the page then shows the new version in use with who and why; no console errors."""

from __future__ import annotations

import pytest

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.labeling.pairs import project_create
from annotation_web.loop.models import LoopState, VersionChange
from tests.annotation_web.loop.test_compare_page import plant_comparison
from tests.annotation_web.test_browser import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    browser_storage,
    collect_errors,
    log_in,
    page,
    pytestmark,
)
from tests.annotation_web.test_browser import (
    screenshot as _shot,
)


@pytest.mark.django_db(transaction=True)
def test_an_engineer_compares_two_versions_and_promotes_one(page, live_server, browser_storage):  # noqa: F811
    project = project_create(name="Compare project", slug="compare-browser")
    engineer = user_create(username="comparing-engineer", password=PASSWORD, role=Role.ENGINEER)
    membership_add(user=engineer, project=project)
    planted = plant_comparison(project)
    old, new = planted["old"], planted["new"]
    errors = collect_errors(page)

    log_in(page, live_server.url, username=engineer.username, next_path=f"/projects/{project.slug}/compare/")
    assert page.get_attribute("#version-a", "data-version") == str(old.pk)
    assert page.get_attribute("#version-b", "data-version") == str(new.pk)
    assert "in use" in page.inner_text("#version-a .version-status")
    assert "candidate" in page.inner_text("#version-b .version-status")
    assert f"B ({new}) ahead" in page.inner_text("#verdict-headline")
    # Every image of the same inputs loaded (signed URLs of the local storage, nothing from elsewhere).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#images img')].every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert page.locator("#images img").count() == 3 * 3 + 2  # LQ, A, B for 3 inputs; HQ for the 2 known
    assert page.is_disabled("#promote-a")  # A is in use already
    _shot(page, "compare-before.png")

    # By keyboard: the reason, then Tab to "Promote B" (the disabled "Promote A" is skipped), Enter.
    page.focus("#reason")
    page.keyboard.type("people prefer it; held-out PSNR +1.25 dB")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "promote-b"
    page.keyboard.press("Enter")
    page.wait_for_selector("#change")
    assert "change=" in page.url
    change_text = page.inner_text("#change")
    assert f"{new.name}@v{new.version}" in change_text and engineer.username in change_text
    assert "people prefer it; held-out PSNR +1.25 dB" in change_text
    assert page.inner_text("#in-use") == f"{new.name}@v{new.version}"
    assert "in use" in page.inner_text("#version-b .version-status")
    assert page.is_disabled("#promote-b") and page.is_enabled("#promote-a")
    _shot(page, "compare-promoted.png")

    assert LoopState.objects.get(project=project).restorer_id == new.pk
    change = VersionChange.objects.filter(project=project, action="promote").get()
    assert change.by_id == engineer.pk and change.reason == "people prefer it; held-out PSNR +1.25 dB"
    assert errors == []
