"""A reward job given the model in use scores both models on the same held-out judgments: on the inputs the new
model held out, those the one in use did not train on (on faces it held out too, or made after it was
trained); the loop reads that comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from annotation_web.jobs.models import JobState
from annotation_web.jobs.runs import job_run
from annotation_web.labeling.models import Judgment
from annotation_web.registry.artifacts import artifact_local_dir
from annotation_web.registry.models import ModelVersion
from annotation_web.training import services
from reward_model.compare import MIN_SHARED_JUDGMENTS, shared_rows
from reward_model.export import read_judgments
from tests.annotation_web.training.test_ml_loop import judge_everything


@pytest.mark.django_db
def test_the_new_reward_model_and_the_one_in_use_meet_on_judgments_neither_trained_on(
    judged_project, engineer, make_user, tiny_restorer
):
    first = services.reward_job_create(project=judged_project, user=engineer, size="tiny", max_steps=3)
    job_run(job_id=first.pk)
    first.refresh_from_db()
    assert first.state == JobState.SUCCEEDED, first.error
    in_use = ModelVersion.objects.get(pk=first.outputs["reward_id"])
    trained_up_to = in_use.config["lineage"]["up_to_judgment_id"]

    for seed in (11, 12):  # judgments made after the model in use was trained
        more = services.generation_job_create(
            project=judged_project,
            user=engineer,
            restorer_id=tiny_restorer.pk,
            num_steps=2,
            eta=1.0,
            seed=seed,
        )
        job_run(job_id=more.pk)
        judge_everything(judged_project, make_user)
    assert Judgment.objects.filter(pair__project=judged_project, pk__gt=trained_up_to).exists()

    # Seeded by the round, as the loop seeds it: the split keeps its own seed.
    second = services.reward_job_create(
        project=judged_project,
        user=engineer,
        size="tiny",
        max_steps=3,
        seed=1,
        compare_with_reward_id=in_use.pk,
    )
    job_run(job_id=second.pk)
    second.refresh_from_db()
    assert second.state == JobState.SUCCEEDED, second.error
    comparison = second.outputs["comparison"]
    assert comparison["in_use_id"] == in_use.pk and comparison["judged_after_id"] == trained_up_to

    # The same judgments counted independently: of the snapshot, non-gold a/b answers on the inputs the new
    # model held out, on faces the one in use held out too or made after it was trained.
    run = Path(settings.VAR_DIR) / "reward-runs" / second.params["run_id"]
    exported = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    unseen_ids = {int(row["judgment_id"]) for row in exported if int(row["judgment_id"]) > trained_up_to}
    assert unseen_ids and min(unseen_ids) > trained_up_to
    new_dir = ModelVersion.objects.get(pk=second.outputs["reward_id"])
    rows = shared_rows(
        new_dir=run / "artifact",
        trained_on=read_judgments(run / "judgments.jsonl"),
        unseen=read_judgments(run / "unseen-by-in-use.jsonl"),
        in_use_dir=artifact_local_dir(prefix=in_use.artifact_key),
    )
    assert comparison["judgments"] == sum(row.outcome in ("a", "b") for row in rows)
    # The stable split held out the same faces for both models: their earlier judgments count as well.
    unseen_only = shared_rows(
        new_dir=run / "artifact",
        trained_on=read_judgments(run / "judgments.jsonl"),
        unseen=read_judgments(run / "unseen-by-in-use.jsonl"),
    )
    assert len(rows) > len(unseen_only)
    assert new_dir.config["lineage"]["up_to_judgment_id"] > trained_up_to
    if comparison["judgments"] >= MIN_SHARED_JUDGMENTS:
        assert 0.0 <= comparison["new"] <= 1.0 and 0.0 <= comparison["in_use"] <= 1.0
    else:
        assert comparison["new"] is None and comparison["in_use"] is None


@pytest.mark.django_db
def test_comparing_with_a_model_that_is_not_a_reward_model_is_refused(
    judged_project, engineer, tiny_restorer
):
    from annotation_web.errors import ServiceError

    with pytest.raises(ServiceError):
        services.reward_job_create(
            project=judged_project, user=engineer, size="tiny", compare_with_reward_id=tiny_restorer.pk
        )
