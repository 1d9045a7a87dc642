"""A reward job trains on the frozen snapshot it was queued with: judgments made later, or a rerun of the job,
change nothing, and the model's lineage names the snapshot whose rows reproduce its training set exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from annotation_web.jobs.models import JobState
from annotation_web.jobs.runs import job_run
from annotation_web.labeling.models import Judgment, JudgmentSnapshot
from annotation_web.labeling.snapshots import judgment_snapshot_rows
from annotation_web.registry.models import ModelVersion
from annotation_web.training import services
from tests.annotation_web.training.test_ml_loop import judge_everything


@pytest.mark.django_db
def test_the_reward_model_is_trained_on_exactly_its_snapshot(
    judged_project, engineer, make_user, tiny_restorer
):
    job = services.reward_job_create(project=judged_project, user=engineer, size="tiny", max_steps=3)
    snapshot = JudgmentSnapshot.objects.get(pk=job.params["snapshot_id"])
    frozen = list(judgment_snapshot_rows(snapshot))
    assert snapshot.count == len(frozen) == Judgment.objects.filter(pair__project=judged_project).count()

    more = services.generation_job_create(
        project=judged_project, user=engineer, restorer_id=tiny_restorer.pk, num_steps=2, eta=1.0, seed=7
    )
    job_run(job_id=more.pk)
    assert judge_everything(judged_project, make_user) > 0  # judgments after the job was queued

    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    version = ModelVersion.objects.get(pk=job.outputs["reward_id"])
    lineage = version.config["lineage"]
    assert lineage["snapshot_id"] == snapshot.pk and lineage["snapshot_sha256"] == snapshot.sha256
    assert job.outputs["snapshot"] == {
        "number": snapshot.number,
        "sha256": snapshot.sha256,
        "count": snapshot.count,
    }
    export = Path(settings.VAR_DIR) / "reward-runs" / job.params["run_id"] / "judgments.jsonl"
    trained_on = [json.loads(line) for line in export.read_text().splitlines()]
    assert trained_on == frozen and lineage["judgments"] == len(frozen)
