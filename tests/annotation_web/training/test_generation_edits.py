"""The RL's proposals shown to people: a generation with `edit_strengths` stores unsharp masks of each input's
first sample beside its samples, pairs them like any candidate of the version, never uses them for
new-vs-other-version pairs, and refuses strengths it should not make; the loop asks for the edits its
reward-ranked RL preset ranks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from annotation_web import ml_bridge
from annotation_web.jobs.runs import job_run
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.models import Candidate, Pair
from annotation_web.loop import services as loop_services
from annotation_web.loop.models import LoopState
from annotation_web.storage import get_storage
from annotation_web.training import services
from rl_trainer.config import RLConfig
from tests.annotation_web.conftest import face_png


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def test_an_edit_is_the_rl_trainers_unsharp_mask_of_the_image():
    from restorer.classical import unsharp_mask
    from restorer.images import pil_to_tensor

    png = face_png(3, size=32)
    softer, sharper = ml_bridge.edited_pngs(png, strengths=[-1.0, 1.0], sigma=1.0)
    image = pil_to_tensor(Image.open(io.BytesIO(png)))[None]
    expected = ((unsharp_mask(image, 1.0, sigma=1.0).clamp(-1, 1)[0] + 1) * 127.5).permute(1, 2, 0)
    assert np.abs(_pixels(sharper) - expected.numpy()).max() <= 1.0  # rounding to 8 bits
    original = _pixels(png)
    # a blur lowers the local contrast that a sharpening raises
    contrast = [
        float(np.abs(np.diff(x, axis=1)).mean()) for x in (_pixels(softer), original, _pixels(sharper))
    ]
    assert contrast[0] < contrast[1] < contrast[2]


@pytest.fixture
def other_version(tmp_path):
    """Another (untrained, differently initialised) restorer whose candidates the new ones are paired with."""
    import torch

    from annotation_web.registry.models import ModelKind
    from annotation_web.registry.services import model_version_register
    from restorer.model import Restorer, tiny_test_config

    torch.manual_seed(123)
    folder = tmp_path / "other-restorer"
    Restorer(tiny_test_config()).save_pretrained(folder, metrics={"note": "another untrained tiny restorer"})
    return model_version_register(kind=ModelKind.RESTORER, name="other", folder=folder)


@pytest.mark.django_db
def test_a_generation_pairs_the_samples_with_their_edits_and_keeps_edits_out_of_cross_version_pairs(
    project_with_faces, tiny_restorer, engineer, other_version
):
    # the earlier version's generation made edits too: they are its newest candidates of each input
    earlier = services.generation_job_create(
        project=project_with_faces,
        user=engineer,
        restorer_id=other_version.pk,
        num_steps=2,
        eta=1.0,
        edit_strengths=[2.0],
    )
    job_run(job_id=earlier.pk)
    job = services.generation_job_create(
        project=project_with_faces,
        user=engineer,
        restorer_id=tiny_restorer.pk,
        num_steps=2,
        eta=1.0,
        pairs_budget=40,
        random_fraction=1.0,
        edit_strengths=[1.0, -0.5],
        cross_version_restorer_id=other_version.pk,
        cross_version_fraction=0.5,
    )
    assert job.params["edit_strengths"] == [-0.5, 1.0] and job.params["edit_sigma"] == 1.0
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    inputs = project_with_faces.inputs.count()
    assert job.outputs["edited_candidates"] == 2 * inputs

    generation = f"job-{job.pk}"
    edits = Candidate.objects.filter(model_version=tiny_restorer, generation__startswith=f"{generation}-edit")
    assert sorted(set(edits.values_list("generation", flat=True))) == [
        f"{generation}-edit+1",
        f"{generation}-edit-0.5",
    ]
    storage = get_storage()
    for edit in edits:
        sample = Candidate.objects.get(
            face_input=edit.face_input, model_version=tiny_restorer, generation=generation, seed=edit.seed
        )
        difference = np.abs(_pixels(storage.get(edit.image_key)) - _pixels(storage.get(sample.image_key)))
        assert difference.mean() >= services.MIN_PAIR_DIFFERENCE  # a person can tell them apart

    pairs = Pair.objects.filter(pk__in=job.outputs["pair_ids"]).select_related("candidate_a", "candidate_b")
    edit_ids = set(edits.values_list("pk", flat=True))
    with_an_edit = [p for p in pairs if {p.candidate_a_id, p.candidate_b_id} & edit_ids]
    assert with_an_edit, "edits are paired with the samples and each other"
    assert all(p.candidate_a.model_version_id == p.candidate_b.model_version_id for p in with_an_edit)
    cross = [p for p in pairs if p.selection_reason == "cross_version"]
    assert cross and not [p for p in cross if {p.candidate_a_id, p.candidate_b_id} & edit_ids]
    # sample against sample: neither side is an edit, of this version or of the earlier one
    assert all(
        "-edit" not in p.candidate_a.generation and "-edit" not in p.candidate_b.generation for p in cross
    )
    assert {p.candidate_b.model_version_id for p in cross} == {other_version.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"edit_strengths": [0.0]}, "non-zero"),
        ({"edit_strengths": [3.0]}, "within"),
        ({"edit_strengths": [0.1 * k for k in range(1, 10)]}, "at most 8"),
        ({"edit_strengths": [1.0], "edit_sigma": 0.0}, "edit_sigma"),
    ],
)
def test_a_generation_refuses_edits_it_should_not_make(
    project_with_faces, tiny_restorer, engineer, options, message
):
    with pytest.raises(LabelingError, match=message):
        services.generation_job_create(
            project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, **options
        )


@pytest.mark.django_db
def test_the_loop_shows_people_the_proposals_its_rl_preset_ranks(project_with_faces, tiny_restorer):
    loop_services.loop_policy_update(
        project=project_with_faces, user=None, changes={"enabled": True, "rl_preset": "tiny_preference"}
    )
    LoopState.objects.create(project=project_with_faces, restorer=tiny_restorer)
    event = loop_services.loop_tick(project=project_with_faces)
    assert "generate" in event.reason
    ranked = RLConfig.preset("tiny_preference")
    assert ranked.policy_update == "reward_ranked"
    proposals = [s for s in ranked.ranked_edit_strengths if s != 0]
    strengths = event.job.params["edit_strengths"]
    assert set(proposals) <= set(strengths)
    # and where a run compounds them: beyond the strongest of each sign, up to twice it
    assert max(strengths) == min(2 * max(proposals), ml_bridge.EDIT_STRENGTH_LIMIT) > max(proposals)
    assert min(strengths) == max(2 * min(proposals), -ml_bridge.EDIT_STRENGTH_LIMIT) < min(proposals)
    assert strengths == sorted(strengths) and len(strengths) <= ml_bridge.MAX_EDITS
    assert event.job.params["edit_sigma"] == ranked.ranked_edit_sigma
    # proposals of one sign reach further on that side only, within the limit
    one_sided = ml_bridge.rl_proposal_edits(
        preset="tiny_preference", overrides={"ranked_edit_strengths": [0.0, 0.5, 1.5]}
    )
    assert one_sided is not None and one_sided["strengths"] == [0.5, 1.5, 2.0]
    # an RL update that ranks no proposals asks for none
    assert ml_bridge.rl_proposal_edits(preset="tiny", overrides={"policy_update": "ddpo"}) is None
