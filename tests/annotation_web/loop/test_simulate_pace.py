"""`simulate_annotators` at a person's pace says why it stopped (queue dry, or the per-annotator cap) and, with
--forever, waits for new pairs instead of stopping (the demo's annotators run that way)."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command

from annotation_web.labeling.management.commands.simulate_annotators import Command, SimulatedAnnotator
from annotation_web.labeling.models import Judgment
from tests.annotation_web.test_simulate_annotators import build_project, sim_storage  # noqa: F401


def run(live_server, slug: str, **options) -> str:
    out = io.StringIO()
    call_command(
        "simulate_annotators",
        project=slug,
        base_url=live_server.url,
        stdout=out,
        stderr=io.StringIO(),
        **options,
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_paced_run_says_the_cap_is_per_annotator_and_when_the_queue_ran_dry(live_server, sim_storage):  # noqa: F811
    project = build_project("sim-paced", faces=1)  # 6 pairs
    started = time.monotonic()
    capped = run(live_server, project.slug, count=2, judgments=2, pace=0.2)
    assert time.monotonic() - started >= 0.2  # 2 judgments each at ~0.2 s, side by side
    assert Judgment.objects.filter(pair__project=project).count() == 4
    assert "reached --judgments 2 (per annotator)" in capped and "is per annotator" in capped
    dry = run(live_server, project.slug, count=1, judgments=50)
    # (pairs the capped annotators still hold stay reserved: this one judges what is left, then says so)
    assert "ran dry after" in dry and "; the queue ran dry" in dry


def test_forever_waits_on_an_empty_queue_and_says_so_once():
    command = Command(stdout=io.StringIO())
    command.slug, command.forever, command.poll, command.pace = "demo", True, 5.0, 0.0
    annotator = SimulatedAnnotator(username="sim-1", token="t", oracle=None)
    command._queue_dry(annotator)
    command._queue_dry(annotator)
    assert not annotator.done and annotator.due > time.monotonic() + 4
    said = command.stdout.getvalue()
    assert said.count("ran dry") == 1 and "asking again every 5 s" in said
    command._served(annotator)
    assert "judging again" in command.stdout.getvalue() and not annotator.dry
