"""The model figures, read out of `ModelVersion.metrics` by the database: reward accuracy, RL rounds, restorer
metrics, the time line with lineage, and the leaderboard's order on planted judgments."""

from __future__ import annotations

import pytest

from annotation_web.accounts.models import Role
from annotation_web.dashboards.selectors import models
from annotation_web.labeling.models import Candidate, FaceInput
from annotation_web.labeling.pairs import pair_create
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.dashboards.conftest import plant

pytestmark = pytest.mark.django_db


def _version(project, kind, name, number, metrics, parent=None):
    return ModelVersion.objects.create(
        kind=kind,
        name=name,
        version=number,
        parent=parent,
        metrics=metrics,
        config={"lineage": {"project": project.slug}},
    )


def test_reward_accuracy_rl_rounds_restorer_metrics_and_lineage(make_project):
    project = make_project(pairs=1)
    other = make_project(pairs=1)
    _version(other, ModelKind.REWARD, "elsewhere", 1, {"val_pairwise_accuracy": 0.99})
    reward = _version(
        project,
        ModelKind.REWARD,
        "rm",
        1,
        {"val_pairwise_accuracy": 0.71, "n_val_judgments": 40, "val_log_loss": 0.6},
    )
    base = _version(project, ModelKind.RESTORER, "r", 1, {"val_psnr": 24.5, "val_psnr_bicubic": 22.0})
    tuned = _version(
        project,
        ModelKind.RESTORER,
        "r",
        2,
        {
            "rl": {
                "final": {"reward/total": 1.25, "step": 30.0},
                "entropy_before": 0.08,
                "entropy_after": 0.05,
            },
            "evaluation": {
                "psnr": 25.0,
                "held_out": 0.4,
                "win_rate_vs_first": 0.6,
                "in_use": {"psnr": 24.5, "held_out": 0.3},
            },
        },
        parent=base,
    )
    assert models.reward_accuracy_per_version(project=project) == [
        {
            "version": "reward:rm@v1",
            "created": reward.created_at.date().isoformat(),
            "accuracy": 0.71,
            "held_out_judgments": 40,
            "log_loss": 0.6,
        }
    ]
    (round_one,) = models.rl_rounds(project=project)
    assert round_one["version"] == "restorer:r@v2" and round_one["parent"] == "restorer:r@v1"
    assert round_one["learned_reward"] == pytest.approx(1.25)
    assert (round_one["held_out"], round_one["held_out_in_use"], round_one["held_out_win"]) == pytest.approx(
        (0.4, 0.3, 0.6)
    )
    assert (round_one["entropy_before"], round_one["entropy_after"]) == pytest.approx((0.08, 0.05))
    assert round_one["psnr_change"] == pytest.approx(0.5)
    restorers = {row["version"]: row for row in models.restorer_metrics_per_version(project=project)}
    assert restorers["restorer:r@v1"]["val_psnr"] == pytest.approx(24.5)
    assert restorers["restorer:r@v2"]["val_psnr"] is None and restorers["restorer:r@v2"][
        "held_out_psnr"
    ] == pytest.approx(25.0)
    timeline = {row["version"]: row for row in models.version_timeline(project=project)}
    assert timeline["restorer:r@v2"]["parent_id"] == base.pk and timeline["restorer:r@v2"]["id"] == tuned.pk
    # the classical versions its pairs compare belong to it too; the other project's reward model does not
    assert {"classical:a@v1", "classical:b@v1", "reward:rm@v1"} <= set(timeline)
    assert "reward:elsewhere@v1" not in timeline


def test_the_leaderboard_ranks_the_version_people_prefer_first(make_project, make_user):
    project = make_project(pairs=0)
    strong = _version(project, ModelKind.RESTORER, "strong", 1, {})
    weak = _version(project, ModelKind.RESTORER, "weak", 1, {})
    judges = [make_user(Role.ANNOTATOR, f"judge{i}") for i in range(3)]
    for index in range(8):
        face = FaceInput.objects.create(
            project=project, source_name=f"x{index}", content_hash=f"lb{index}", lq_key="k"
        )
        a = Candidate.objects.create(face_input=face, model_version=strong, image_key=f"c/s{index}")
        b = Candidate.objects.create(face_input=face, model_version=weak, image_key=f"c/w{index}")
        pair = pair_create(a=a, b=b)
        strong_side = "a" if pair.candidate_a_id == a.pk else "b"
        for number, judge in enumerate(judges):
            weak_side = "b" if strong_side == "a" else "a"
            plant(pair=pair, annotator=judge, outcome=strong_side if (index + number) % 6 else weak_side)
    board = models.leaderboard(project=project)
    assert [row["version"] for row in board["rows"]] == ["restorer:strong@v1", "restorer:weak@v1"]
    top = board["rows"][0]
    assert top["lower"] <= top["score"] <= top["upper"] and top["wins"] > top["losses"]
