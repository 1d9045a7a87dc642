"""The loop's generation keeps `agreement_share` of its chosen pairs at overlap 2 (a project overlap of 1
elsewhere), so that every round gives pairs judged twice and agreement stays measured."""

from __future__ import annotations

import pytest

from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.models import Pair
from annotation_web.labeling.queue import queue_invariant_violations
from annotation_web.loop import services
from tests.annotation_web.loop import test_loop
from tests.annotation_web.loop.test_loop import tick
from tests.annotation_web.training.test_ml_loop import judge_everything

loop_project = test_loop.loop_project  # the loop tests' fixtures
restorer_folder = test_loop.restorer_folder
restorer_in_use = test_loop.restorer_in_use


@pytest.mark.django_db
@pytest.mark.parametrize("share", [0.2, 0.5])
def test_the_share_of_new_pairs_at_overlap_two_matches_the_policy(
    loop_project, restorer_in_use, eager_jobs, make_user, share
):
    from annotation_web.loop.models import LoopState

    services.loop_policy_update(
        project=loop_project,
        user=None,
        changes={"agreement_share": share, "pairs_budget": 10, "samples_per_input": 4},
    )
    LoopState.objects.filter(project=loop_project).update(generated_from=None)
    started = tick(loop_project, eager_jobs)
    job = Job.objects.get(pk=started.job_id)
    assert job.kind == "generate" and job.state == JobState.SUCCEEDED, job.error
    assert job.params["agreement_share"] == share
    chosen = Pair.objects.filter(pk__in=job.outputs["pair_ids"]).exclude(selection_reason="cross_version")
    assert chosen.count() >= 5
    twice = chosen.filter(overlap=2)
    assert twice.count() == round(share * chosen.count())
    assert all(p.open_slots == 2 for p in twice)
    assert all(
        p.overlap is None and p.open_slots == loop_project.overlap == 1 for p in chosen.exclude(overlap=2)
    )

    judge_everything(loop_project, make_user, count=3)
    assert all(p.judgment_count == 2 for p in Pair.objects.filter(pk__in=twice))
    assert not queue_invariant_violations(project=loop_project)
