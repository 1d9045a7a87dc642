"""Pair-selection options of the generate job, passed through `ml_bridge.choose_pairs` to
`reward_model.selection.select_pairs`: the acquisition score, the per-input cap (fixed or as `spread` times the
even share) and the judgments each pair already has; validated when the job is queued."""

from __future__ import annotations

import pytest

from annotation_web import ml_bridge
from annotation_web.labeling.errors import LabelingError
from annotation_web.loop import services as loop_services
from annotation_web.registry.models import ModelKind
from annotation_web.registry.services import model_version_register
from annotation_web.training import services
from tests.annotation_web.conftest import face_png


@pytest.fixture
def tiny_reward(tmp_path):
    from reward_model.model import CONFIG_PRESETS, RewardModel

    folder = tmp_path / "reward"
    RewardModel(CONFIG_PRESETS["tiny"]).save_pretrained(folder, metrics={"note": "untrained tiny reward"})
    return folder


def _candidate_sets(inputs: int, per_input: int) -> list[tuple[str, bytes, dict[str, bytes]]]:
    return [
        (
            f"i{i}",
            face_png(100 + i, size=32),
            {f"i{i}/c{k}": face_png(10 * i + k, size=32) for k in range(per_input)},
        )
        for i in range(inputs)
    ]


def test_choose_pairs_caps_the_pairs_of_one_input(tiny_reward):
    sets = _candidate_sets(inputs=3, per_input=4)  # 6 pairs per input
    common = dict(candidate_sets=sets, reward_dir=str(tiny_reward), budget=6, random_fraction=0.0, seed=0)
    capped = ml_bridge.choose_pairs(**common, max_per_input=2)
    assert sorted(p.input_id for p in capped) == ["i0", "i0", "i1", "i1", "i2", "i2"]
    assert {p.reason for p in capped} == {"disagreement"}
    for acquisition in ("bald", "entropy", "information"):
        assert len(ml_bridge.choose_pairs(**common, acquisition=acquisition)) == 6
    with pytest.raises(ValueError, match="unknown acquisition"):
        ml_bridge.choose_pairs(**common, acquisition="nope")


def test_choose_pairs_asks_again_only_what_stays_informative(tiny_reward):
    sets = _candidate_sets(inputs=1, per_input=3)
    common = dict(candidate_sets=sets, reward_dir=str(tiny_reward), budget=1, random_fraction=0.0, seed=0)
    best = ml_bridge.choose_pairs(**common)[0]
    judged_often = {(best.a_key, best.b_key): 10**6}  # divides its score by a million and one
    again = ml_bridge.choose_pairs(**common, label_counts=judged_often)[0]
    assert {again.a_key, again.b_key} != {best.a_key, best.b_key}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"acquisition": "nope"}, "acquisition must be one of bald, entropy, information"),
        ({"max_per_input": 0}, "max_per_input must be a whole number of at least 1"),
        ({"max_per_input": 1.5}, "max_per_input must be a whole number"),
        ({"max_per_input": True}, "max_per_input must be a whole number"),
        ({"spread": -1.0}, "spread must be a number of at least 0"),
        ({"spread": float("nan")}, "spread must be a number of at least 0"),
        ({"max_per_input": 2, "spread": 2.0}, "give max_per_input or spread, not both"),
    ],
)
def test_generation_job_create_refuses_bad_selection_options(
    project_with_faces, tiny_restorer, engineer, options, message
):
    with pytest.raises(LabelingError, match=message):
        services.generation_job_create(
            project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, **options
        )


@pytest.mark.django_db
def test_the_generate_job_passes_its_options_to_choose_pairs(
    project_with_faces, tiny_restorer, engineer, tiny_reward, monkeypatch
):
    from annotation_web.jobs.runs import job_run

    reward = model_version_register(kind=ModelKind.REWARD, name="tiny-reward", folder=tiny_reward)
    seen: list[dict] = []
    choose = ml_bridge.choose_pairs

    def spy(**kwargs):
        seen.append(kwargs)
        return choose(**kwargs)

    monkeypatch.setattr(ml_bridge, "choose_pairs", spy)
    job = services.generation_job_create(
        project=project_with_faces,
        user=engineer,
        restorer_id=tiny_restorer.pk,
        reward_id=reward.pk,
        num_steps=2,
        eta=1.0,
        pairs_budget=6,
        acquisition="information",
        spread=1.0,
    )
    assert job.params["acquisition"] == "information" and job.params["spread"] == 1.0
    assert "max_per_input" not in job.params
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    (call,) = seen
    inputs = len(call["candidate_sets"])
    # spread 1.0: the even share of 6 pairs over the inputs that can be paired, rounded up
    assert call["max_per_input"] == -(-6 // inputs) and call["acquisition"] == "information"
    assert call["label_counts"] == {}  # new candidates: no pair of them was judged yet

    fixed = services.generation_job_create(
        project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, max_per_input=1
    )
    assert fixed.params["max_per_input"] == 1 and fixed.params["acquisition"] == "bald"


@pytest.mark.django_db
def test_the_loop_generates_with_the_reward_benchmarks_best_selection(project_with_faces, tiny_restorer):
    from annotation_web.loop.models import LoopState

    loop_services.loop_policy_update(project=project_with_faces, user=None, changes={"enabled": True})
    LoopState.objects.create(project=project_with_faces, restorer=tiny_restorer)
    event = loop_services.loop_tick(project=project_with_faces)
    assert "generate" in event.reason
    params = event.job.params
    preset = ml_bridge.pair_selection_preset(loop_services.LOOP_PAIR_SELECTION)
    assert loop_services.LOOP_PAIR_SELECTION == "small_budget"
    assert params["acquisition"] == preset["acquisition"] == "information"
    assert params["spread"] == preset["spread"] == 2.0
    assert params["random_fraction"] == preset["random_fraction"] == 0.2
