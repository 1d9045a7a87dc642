"""`manage.py simulate_annotators` against the live server: judgments land through the API, and the oracle's
answers reach the right candidate through the screen side (a careful simulator picks the HQ-closer one)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from annotation_web import ml_bridge
from annotation_web.labeling import imports, pairs
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Judgment, Outcome, Pair
from annotation_web.registry.models import ModelKind
from annotation_web.registry.services import model_version_get_or_create
from annotation_web.storage import _cached_storage, get_storage

# Candidates are the HQ plus Gaussian noise of these strengths (stored as the candidate's seed): the less
# noise, the closer to the HQ, so the better side of every pair is known by construction.
NOISE_LEVELS = (0, 8, 16, 28)
# lpips_randtrunk units: the smallest distance gap between two levels is ~0.001, so the answers are near certain.
CAREFUL_TEMPERATURE = 0.0001


@pytest.fixture
def sim_storage(settings, tmp_path):
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_LOCAL_ROOT = tmp_path / "sim-storage"
    _cached_storage.cache_clear()
    yield settings.STORAGE_LOCAL_ROOT
    _cached_storage.cache_clear()


def disc_face_png(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 2.8) ** 2).astype(np.float32)
    image = np.stack([disc * 190 + 35, disc * 150 + 45, disc * 120 + 55], axis=-1) + rng.normal(
        0, 10, (size, size, 3)
    )
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_png(hq_png: bytes, sigma: float, seed: int) -> bytes:
    hq = np.asarray(Image.open(io.BytesIO(hq_png)).convert("RGB"), dtype=np.float32)
    noisy = hq + np.random.default_rng(seed).normal(0, sigma, hq.shape) if sigma else hq
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_face_png(seed: int) -> bytes:
    buffer = io.BytesIO()
    ml_bridge.synthetic_face_images([seed], resolution=64)[0].save(buffer, format="PNG")
    return buffer.getvalue()


def build_project(slug: str, faces: int = 2, real_faces: bool = False):
    """Discs by default (fast); `real_faces`: synthetic faces, which a face-recognition oracle can align."""
    resolution = 64 if real_faces else 32
    face_png = synthetic_face_png if real_faces else disc_face_png
    project = pairs.project_create(
        name="Simulated", slug=slug, overlap=1, gold_rate=0.0, resolution=resolution
    )
    report = imports.face_inputs_import(
        project=project, source=[SourceFile(f"{slug}-{i}.png", face_png(i)) for i in range(faces)]
    )
    assert len(report.imported) == faces, report.as_dict()
    storage = get_storage()
    for face_input in project.inputs.all():
        hq_png = storage.get(face_input.hq_key)
        candidates = []
        for sigma in NOISE_LEVELS:
            model_version = model_version_get_or_create(kind=ModelKind.CLASSICAL, name=f"noise-{sigma}")
            png = noisy_png(hq_png, sigma, seed=face_input.pk * 100 + sigma)
            candidates.append(
                pairs.candidate_store(face_input=face_input, model_version=model_version, seed=sigma, png=png)
            )
        pairs.pairs_create_all_for_input(face_input=face_input, candidates=candidates)
    return project


def agreement_with_less_noise(judgments) -> tuple[int, int]:
    """(strict preferences for the less noisy candidate, strict preferences)."""
    strict = [j for j in judgments if j.outcome in (Outcome.A, Outcome.B)]
    agree = 0
    for judgment in strict:
        a, b = judgment.pair.candidate_a, judgment.pair.candidate_b
        better = Outcome.A if a.seed < b.seed else Outcome.B
        agree += judgment.outcome == better
    return agree, len(strict)


def simulate(live_server, slug: str, kind: str, count: int = 2) -> None:
    call_command(
        "simulate_annotators",
        project=slug,
        count=count,
        kind=kind,
        oracle="default",  # the perceptual distance CAREFUL_TEMPERATURE is in units of
        base_url=live_server.url,
        judgments=50,
        temperature=CAREFUL_TEMPERATURE,
        tie_margin=CAREFUL_TEMPERATURE / 10,
        both_bad_threshold=1.0,  # far above any distance here: no pair is "both bad"
        verbosity=0,
    )


@pytest.mark.django_db(transaction=True)
def test_reliable_simulators_judge_every_pair_over_http_and_pick_the_hq_closer_side(live_server, sim_storage):
    project = build_project("sim-reliable")
    pair_count = Pair.objects.filter(project=project).count()
    assert pair_count == 12

    simulate(live_server, project.slug, "reliable")

    judgments = list(
        Judgment.objects.filter(pair__project=project).select_related(
            "annotator", "pair__candidate_a", "pair__candidate_b"
        )
    )
    assert len(judgments) == pair_count  # overlap 1: every pair judged once, then the queue was empty
    assert {j.annotator.username for j in judgments} == {"sim-reliable-1", "sim-reliable-2"}
    assert all(j.annotator.role == "annotator" for j in judgments)
    assert {j.shown_left for j in judgments} == {"a", "b"}  # both orientations were served
    agree, strict = agreement_with_less_noise(judgments)
    assert strict >= 9
    assert agree / strict >= 0.8, f"{agree}/{strict} strict preferences for the less noisy candidate"
    assert all(j.client_duration_ms is not None for j in judgments)


@pytest.mark.django_db(transaction=True)
def test_adversarial_simulator_reverses_preferences_and_users_are_reused(live_server, sim_storage):
    project = build_project("sim-adversarial")

    simulate(live_server, project.slug, "adversarial", count=1)
    simulate(live_server, project.slug, "adversarial", count=1)  # queue empty now: nothing more, same user

    judgments = list(
        Judgment.objects.filter(pair__project=project).select_related(
            "annotator", "pair__candidate_a", "pair__candidate_b"
        )
    )
    assert {j.annotator.username for j in judgments} == {"sim-adversarial-1"}
    assert len(judgments) == Pair.objects.filter(project=project).count()
    agree, strict = agreement_with_less_noise(judgments)
    assert strict >= 9 and agree / strict <= 0.2, f"{agree}/{strict}"


@pytest.mark.django_db(transaction=True)
def test_unknown_project_is_a_clear_error(live_server, sim_storage):
    with pytest.raises(CommandError, match="does not serve project"):
        simulate(live_server, "no-such-project", "reliable", count=1)


@pytest.mark.django_db(transaction=True)
def test_by_default_the_simulators_judge_by_the_identity_oracle_that_no_rl_term_computes(
    live_server, sim_storage
):
    project = build_project("sim-identity", real_faces=True)
    out = io.StringIO()
    call_command(
        "simulate_annotators",
        project=project.slug,
        count=1,
        base_url=live_server.url,
        judgments=50,
        temperature=0.005,  # identity_sharpness units: its level gaps here are ~0.1, so answers are near certain
        tie_margin=0.0005,
        both_bad_threshold=10.0,
        stdout=out,
    )

    assert "(oracle identity_sharpness)" in out.getvalue()
    judgments = list(
        Judgment.objects.filter(pair__project=project).select_related(
            "pair__candidate_a", "pair__candidate_b"
        )
    )
    assert len(judgments) == Pair.objects.filter(project=project).count()
    agree, strict = agreement_with_less_noise(judgments)
    assert strict >= 9 and agree / strict >= 0.8, (
        f"{agree}/{strict} strict preferences for the less noisy face"
    )


@pytest.mark.django_db(transaction=True)
def test_an_unknown_oracle_is_refused_before_anything_is_judged(live_server, sim_storage):
    project = build_project("sim-unknown-oracle")
    with pytest.raises(CommandError, match="oracle"):
        call_command("simulate_annotators", project=project.slug, oracle="psnr", base_url=live_server.url)
    assert not Judgment.objects.filter(pair__project=project).exists()
