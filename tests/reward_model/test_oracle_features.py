"""The identity_sharpness oracle on real offline faces: it orders degradations, is deterministic, its annotator
kinds behave, and its preferences are not those of the random-trunk LPIPS family that RL and the guard use."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from restorer.classical import classical_restore, unsharp_mask
from restorer.data import split_seeds, synthetic_faces
from restorer.degradations import DegradationParams, apply_degradation
from restorer.metrics import PerceptualDistance
from reward_model.oracle import (
    DEFAULTS_BY_DISTANCE,
    KINDS,
    OracleAnnotator,
    distance_by_name,
    noise_free_preference,
    oracle_by_name,
)
from reward_model.oracle_features import (
    IdentitySharpnessConfig,
    IdentitySharpnessScore,
    OracleFeaturesUnavailableError,
    face_models_folder,
    local_artifact,
    sharpness_mismatch,
)

RESOLUTION = 64


def degradation(strength: str, seed: int) -> DegradationParams:
    """A fixed mild or heavy draw of the restorer's own degradation pipeline (σ in pixels at 64 px)."""
    if strength == "mild":
        return DegradationParams("gfpgan", RESOLUTION, 0.4, 0.4, 0.0, 1.5, 3.0, 90, seed)
    return DegradationParams("heavy", RESOLUTION, 1.2, 1.2, 0.0, 4.0, 15.0, 40, seed)


def degrade(faces: torch.Tensor, strength: str) -> torch.Tensor:
    return torch.stack([apply_degradation(face, degradation(strength, i)) for i, face in enumerate(faces)])


def gaussian_noise(faces: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(seed))
    return (faces + std * noise).clamp(-1, 1)


def blurred(faces: torch.Tensor, factor: float) -> torch.Tensor:
    small = F.interpolate(faces, scale_factor=1 / factor, mode="bilinear", antialias=True)
    return F.interpolate(small, size=faces.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


def lfw_faces(count: int) -> torch.Tensor:
    """The first faces of scikit-image's LFW subset (25x25 grey, shipped with the package), upsampled to 64."""
    skimage_data = pytest.importorskip("skimage.data")
    grey = torch.tensor(skimage_data.lfw_subset()[:count], dtype=torch.float32)  # the first 100 are faces
    faces = grey[:, None].repeat(1, 3, 1, 1) * 2 - 1
    return F.interpolate(faces, size=RESOLUTION, mode="bicubic", align_corners=False).clamp(-1, 1)


@pytest.fixture(scope="module")
def score() -> IdentitySharpnessScore:
    return IdentitySharpnessScore()


@pytest.fixture(scope="module")
def synthetic() -> torch.Tensor:
    return synthetic_faces(split_seeds("test", 6), RESOLUTION)


@pytest.mark.parametrize("source", ["synthetic", "lfw"])
def test_ranks_hq_above_mild_above_heavy_degradation_on_every_face(score, synthetic, source):
    faces = synthetic if source == "synthetic" else lfw_faces(6)
    hq_score = score(faces, faces)
    assert torch.allclose(hq_score, torch.zeros_like(hq_score), atol=1e-4)
    for mild, heavy in (
        (degrade(faces, "mild"), degrade(faces, "heavy")),
        (gaussian_noise(faces, 0.02), gaussian_noise(faces, 0.12)),
        (blurred(faces, 1.5), blurred(faces, 4.0)),
    ):
        mild_score, heavy_score = score(mild, faces), score(heavy, faces)
        assert bool((mild_score > hq_score + 0.02).all()), (mild_score, hq_score)
        assert bool((heavy_score > mild_score + 0.05).all()), (heavy_score, mild_score)


def test_classical_restoration_of_the_lq_sits_between_hq_and_heavy(score, synthetic):
    lq = degrade(synthetic, "mild")
    restored = classical_restore(lq)
    heavy_lq = degrade(synthetic, "heavy")
    assert bool((score(restored, synthetic) < score(heavy_lq, synthetic)).all())


def test_identity_tells_faces_apart(score, synthetic):
    # a face is farther from another person's HQ than from its own mildly degraded version
    own = score.components(degrade(synthetic, "mild"), synthetic)["identity"]
    other = score.components(synthetic.roll(1, dims=0), synthetic)["identity"]
    assert bool((other > own + 0.1).all()), (own, other)
    assert float(other.mean()) > 0.5  # dlib's same-person threshold is 0.6


def test_sharpness_penalises_blur_and_over_sharpening_and_artifact_is_local(synthetic):
    config = IdentitySharpnessConfig()
    assert bool((sharpness_mismatch(blurred(synthetic, 2.0), synthetic, config) > 0.3).all())
    assert bool((sharpness_mismatch(unsharp_mask(synthetic, 2.0), synthetic, config) > 0.3).all())
    assert torch.allclose(sharpness_mismatch(synthetic, synthetic, config), torch.zeros(len(synthetic)))
    # the same noise energy in one 16x16 patch costs more than spread thinly over the whole face
    local = synthetic.clone()
    patch = (..., slice(24, 40), slice(24, 40))
    local[patch] += 0.4 * torch.randn(local[patch].shape, generator=torch.Generator().manual_seed(1))
    spread = gaussian_noise(synthetic, 0.4 / 4)  # 16x fewer pixels in the patch: std / 4 is the same energy
    assert bool(
        (local_artifact(local, synthetic, config) > 2 * local_artifact(spread, synthetic, config)).all()
    )


def test_deterministic_across_instances_batches_and_threads(score, synthetic):
    candidates = degrade(synthetic, "mild")
    first = score(candidates, synthetic)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fresh = IdentitySharpnessScore()(candidates, synthetic)
    finally:
        torch.set_num_threads(previous_threads)
    one_by_one = torch.cat(
        [score(candidates[i : i + 1], synthetic[i : i + 1]) for i in range(len(synthetic))]
    )
    assert torch.equal(first, fresh)
    assert torch.allclose(first, one_by_one, atol=1e-6)
    assert torch.equal(first, score(candidates, synthetic))


def candidate_pool(faces: torch.Tensor) -> torch.Tensor:
    """``[N, 6, 3, H, W]``: six candidates per face of about the same overall damage, in different ways."""
    lq = degrade(faces, "mild")
    return torch.stack(
        [
            classical_restore(lq, sharpen=0.0),
            classical_restore(lq, sharpen=1.5),
            gaussian_noise(faces, 0.06),
            blurred(faces, 2.0),
            unsharp_mask(faces, 2.5).clamp(-1, 1),
            (0.5 * faces + 0.5 * classical_restore(degrade(faces, "heavy"))).clamp(-1, 1),
        ],
        dim=1,
    )


def test_preferences_are_not_those_of_the_random_trunk_lpips_family(score, synthetic):
    pool = candidate_pool(synthetic)
    flat = pool.flatten(0, 1)
    references = synthetic.repeat_interleave(pool.shape[1], dim=0)
    ours = score(flat, references).view(pool.shape[:2])
    # trunk 0: the old oracle and the guard's evaluator; trunks 1, 2: the RL's perceptual term
    for trunk_seed in (0, 1, 2):
        theirs = PerceptualDistance(trunk_seed=trunk_seed)(flat, references).view(pool.shape[:2])
        pairs = [(n, i, j) for n in range(len(synthetic)) for i, j in itertools.combinations(range(6), 2)]
        disagree = sum(
            noise_free_preference(float(ours[n, i]), float(ours[n, j]))
            != noise_free_preference(float(theirs[n, i]), float(theirs[n, j]))
            for n, i, j in pairs
        )
        assert disagree / len(pairs) >= 0.15, (trunk_seed, disagree, len(pairs))


@pytest.fixture(scope="module")
def judged_images(synthetic):
    """(hq, a good candidate, a bad one, another bad one) of one face."""
    hq = synthetic[0]
    return (
        hq,
        degrade(synthetic[:1], "mild")[0],
        blurred(synthetic[:1], 4.0)[0],
        degrade(synthetic[:1], "heavy")[0],
    )


def answers(annotator: OracleAnnotator, hq, a, b, n: int = 300, shown_left="a") -> Counter:
    d_a, d_b = annotator.distances(hq, a, b)  # judge() recomputes them; the same numbers, n times faster here
    return Counter(annotator.judge_distances(d_a, d_b, shown_left=shown_left) for _ in range(n))


def test_the_annotator_kinds_behave_on_real_images(score, judged_images):
    hq, good, bad, worse = judged_images

    def make(kind, **settings):
        return OracleAnnotator(kind, distance=score, seed=3, **settings)

    assert make("reliable").judge(hq, good, bad) == "a"
    assert answers(make("reliable"), hq, good, bad)["a"] > 0.95 * 300
    assert answers(make("adversarial"), hq, good, bad)["b"] > 0.95 * 300
    spam = answers(make("spammer"), hq, good, bad, n=2000)
    assert 0.38 < spam["a"] / 2000 < 0.52 and 0.38 < spam["b"] / 2000 < 0.52
    # the worse candidate shown on the left: half the answers click it anyway
    left_biased = answers(make("left_biased", side_bias=0.5), hq, bad, good, n=2000)
    assert 0.4 < left_biased["a"] / 2000 < 0.6
    assert set(answers(make("reliable"), hq, good, good)) == {"tie"}
    assert set(answers(make("reliable"), hq, bad, worse)) == {"both_bad"}
    # noisy: 4x the temperature, so closer candidates are confused more often than by a reliable annotator
    close = 0.7 * good + 0.3 * bad
    assert (
        answers(make("noisy"), hq, good, close, n=2000)["a"]
        < answers(make("reliable"), hq, good, close, n=2000)["a"]
    )


def test_selectable_by_name_with_its_own_defaults():
    annotator = oracle_by_name("identity_sharpness", "noisy", seed=1)
    temperature, tie_margin, both_bad = DEFAULTS_BY_DISTANCE["identity_sharpness"]
    assert annotator.describe()["distance"] == "identity_sharpness"
    assert annotator.temperature == pytest.approx(4 * temperature)
    assert (annotator.tie_margin, annotator.both_bad_threshold) == (tie_margin, both_bad)
    assert (
        OracleAnnotator("reliable", distance="identity_sharpness").describe()["distance"]
        == "identity_sharpness"
    )
    for kind in KINDS:
        assert oracle_by_name("l1_gradient", kind).kind == kind
    with pytest.raises(ValueError, match="unknown oracle distance"):
        distance_by_name("psnr")


def test_lpips_randtrunk_by_name_is_the_old_oracle():
    by_name = distance_by_name("lpips_randtrunk")
    assert by_name.name == "lpips_randtrunk"
    assert (
        OracleAnnotator("reliable", distance="lpips_randtrunk").temperature
        == DEFAULTS_BY_DISTANCE["lpips_randtrunk"][0]
    )
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 2, 3, 32, 32, generator=generator) * 2 - 1
    assert torch.equal(by_name(x, y), PerceptualDistance(trunk_seed=0)(x, y))


def test_missing_face_models_are_reported_not_replaced(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(OracleFeaturesUnavailableError, match="face_recognition_models"):
        face_models_folder()
