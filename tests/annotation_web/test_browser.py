"""The judging page in a real browser: Debian's Chromium driven by Playwright against the live server.

An annotator logs in through the login page and judges every pair of a small project with the keyboard
alone; the test then reads the judgments back from the database and checks that each key press landed on
the reservation that was on screen, mapped from the screen side to the stored a/b through `shown_left`.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_create
from annotation_web.labeling import imports, pairs
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Judgment, Outcome, Pair, Reservation, ReservationState
from annotation_web.storage import _cached_storage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-pw-123"
# Every key the page documents, in the order the annotator presses them; the screen choice each one means.
KEY_CHOICES = [
    ("ArrowLeft", "left"),
    ("ArrowRight", "right"),
    ("1", "left"),
    ("2", "right"),
    ("ArrowDown", "tie"),
    ("T", "tie"),
    ("B", "both_bad"),
    ("S", "skip"),
    ("t", "tie"),
    ("b", "both_bad"),
]
WAIT_MS = 15_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"
    ),
]


@pytest.fixture(scope="module")
def browser(django_db_setup):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running on this thread; Django's ORM calls made by the
    # test itself (the live server answers from its own thread) would otherwise refuse to run beside it.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_storage(settings, tmp_path):
    """The files the live server hands to the browser live in this test's own folder."""
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_LOCAL_ROOT = tmp_path / "browser-storage"
    _cached_storage.cache_clear()
    yield settings.STORAGE_LOCAL_ROOT
    _cached_storage.cache_clear()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    yield page
    context.close()


def synthetic_face_png(seed: int, size: int = 40) -> bytes:
    """A bright disc on a dark, noisy background: enough of a 'face' for the degradation pipeline."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 2.8) ** 2).astype(np.float32)
    image = np.stack([disc * 190 + 35, disc * 150 + 45, disc * 120 + 55], axis=-1) + rng.normal(
        0, 10, (size, size, 3)
    )
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def build_project(*, faces: int, with_gold: bool):
    """A project built the way the platform builds one: import, classical candidates, all pairs, a gold pair.

    gold_rate 1 makes the gold pair the first one served (then the ordinary queue), so the run is deterministic.
    """
    project = pairs.project_create(
        name="Browser project", slug="browser", overlap=1, gold_rate=1.0 if with_gold else 0.0, resolution=32
    )
    report = imports.face_inputs_import(
        project=project,
        source=[SourceFile(f"face-{i}.png", synthetic_face_png(i)) for i in range(faces)],
        batch="b1",
    )
    assert len(report.imported) == faces, report.as_dict()
    for input_id in report.imported:
        face_input = project.inputs.get(pk=input_id)
        candidates = pairs.classical_candidates_create(face_input=face_input)
        pairs.pairs_create_all_for_input(face_input=face_input, candidates=candidates, batch="b1")
    if with_gold:
        assert (
            pairs.gold_pair_create_for_input(face_input=project.inputs.get(pk=report.imported[0])) is not None
        )
    return project


# Set to a folder to keep screenshots of the pages the browser tests visit.
SCREENSHOTS = os.environ.get("PREF_BROWSER_SCREENSHOTS", "")


def screenshot(page, name: str) -> None:  # noqa: F811 - the fixture's name
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def collect_errors(page) -> list[str]:  # noqa: F811 - the fixture's name
    """The page's uncaught errors and console errors from now on; the browser's own request for /favicon.ico
    (the app has none) is not the page's error."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    return errors


def log_in(page, base_url: str, *, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")  # keyboard alone, here too
    page.wait_for_url(f"{base_url}{next_path}")


def wait_for_fresh_pair(page, seen: set[str]) -> str:
    """Wait until the stage shows a reservation not judged yet, with all three images loaded; return its id."""
    page.wait_for_function(
        """(seen) => {
            const stage = document.getElementById('stage');
            if (stage.hidden || !stage.dataset.reservation || seen.includes(stage.dataset.reservation)) return false;
            return ['reference-img', 'left-img', 'right-img'].every((id) => {
                const img = document.getElementById(id);
                return img.complete && img.naturalWidth > 0;
            });
        }""",
        arg=sorted(seen),
    )
    return page.get_attribute("#stage", "data-reservation")


def expected_outcome(choice: str, shown_left: str) -> str:
    if choice == "left":
        return shown_left
    if choice == "right":
        return "b" if shown_left == "a" else "a"
    return choice


@pytest.mark.django_db(transaction=True)
def test_annotator_judges_every_pair_by_keyboard_and_the_database_agrees(page, live_server, browser_storage):
    project = build_project(faces=3, with_gold=True)
    pair_count = Pair.objects.filter(project=project).count()
    assert pair_count == 10  # 3 inputs x 3 classical candidates -> 9 pairs, plus the gold pair
    annotator = user_create(username="keyboard-annotator", password=PASSWORD, role=Role.ANNOTATOR)
    membership_add(user=annotator, project=project)
    browser_errors: list[str] = []
    page.on("pageerror", lambda exc: browser_errors.append(str(exc)))

    log_in(page, live_server.url, username=annotator.username, next_path=f"/annotate/{project.slug}/")

    # The on-screen hints name every key.
    hints = page.locator("#hints")
    hints.wait_for(state="visible")
    hint_keys = set(hints.locator("kbd").all_inner_texts())
    assert {"←", "→", "1", "2", "↓", "T", "B", "S"} <= hint_keys, hint_keys
    hint_text = hints.inner_text()
    for label in ("Left", "Right", "Tie", "Both bad", "Skip"):
        assert label in hint_text, f"hint {label!r} missing from {hint_text!r}"
    assert "←" in page.inner_text("figure.left figcaption") and "→" in page.inner_text(
        "figure.right figcaption"
    )

    pressed: list[tuple[str, str]] = []  # (reservation on screen, screen choice)
    seen: set[str] = set()
    for key, choice in KEY_CHOICES[:pair_count]:
        reservation = wait_for_fresh_pair(page, seen)
        page.keyboard.press(key)
        seen.add(reservation)
        pressed.append((reservation, choice))

    empty = page.locator("#empty")
    empty.wait_for(state="visible")
    assert "No pairs left" in empty.inner_text()
    assert page.locator("#stage").is_hidden()
    page.wait_for_function("() => document.getElementById('saving').textContent === ''")
    preferences = sum(1 for _, choice in pressed if choice != "skip")
    page.wait_for_function(
        "(n) => document.getElementById('judged-today').textContent === String(n)"
        " && document.getElementById('left-in-queue').textContent === '0'",
        arg=preferences,
    )
    assert "error" not in (page.get_attribute("#flash", "class") or "")
    assert browser_errors == []

    judgments = {
        str(j.reservation_id): j for j in Judgment.objects.filter(annotator=annotator).select_related("pair")
    }
    assert (
        len(judgments) == len(pressed) == pair_count
    )  # every key press landed once, nothing lost or doubled
    assert len({j.pair_id for j in judgments.values()}) == pair_count
    for reservation_id, choice in pressed:
        judgment = judgments[reservation_id]
        reservation = Reservation.objects.get(pk=reservation_id)
        assert reservation.state == ReservationState.SUBMITTED
        assert judgment.shown_left == reservation.shown_left
        assert judgment.outcome == expected_outcome(choice, reservation.shown_left), (
            choice,
            judgment.shown_left,
        )
        assert judgment.client_duration_ms is not None

    gold = [j for j in judgments.values() if j.is_gold]
    assert len(gold) == 1 and gold[0].gold_correct == (gold[0].outcome == gold[0].pair.gold_outcome)
    skipped = [j for j in judgments.values() if j.outcome == Outcome.SKIP]
    assert len(skipped) == 1 and skipped[0].gold_correct is None
    # A skip is recorded but is no preference: the pair counts no judgment and is open again.
    skipped_pair = Pair.objects.get(pk=skipped[0].pair_id)
    assert (skipped_pair.judgment_count, skipped_pair.open_slots) == (0, 1)
    for judgment in judgments.values():
        if judgment.outcome != Outcome.SKIP and not judgment.is_gold:
            assert Pair.objects.get(pk=judgment.pair_id).judgment_count == 1
