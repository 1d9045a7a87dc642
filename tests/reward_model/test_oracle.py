from collections import Counter

import pytest
import torch

from reward_model.oracle import (
    DEFAULTS_BY_DISTANCE,
    KINDS,
    OracleAnnotator,
    _L1GradientDistance,
    noise_free_preference,
)


def oracle(kind, **kwargs):
    settings = {"temperature": 0.05, "tie_margin": 0.01, "both_bad_threshold": 1.0, "seed": 0}
    settings.update(kwargs)
    return OracleAnnotator(kind, distance=_L1GradientDistance(), **settings)


def answers(annotator, distance_a, distance_b, n=400, shown_left="a"):
    return Counter(annotator.judge_distances(distance_a, distance_b, shown_left=shown_left) for _ in range(n))


def test_reliable_prefers_the_candidate_closer_to_hq():
    counts = answers(oracle("reliable"), 0.2, 0.4)
    assert counts["a"] > 0.95 * 400
    assert noise_free_preference(0.2, 0.4) == "a"


def test_noise_follows_the_bradley_terry_temperature():
    # sigmoid(0.05 / 0.05) = 0.73 for a reliable annotator; the noisy kind is 4x hotter: sigmoid(0.25) = 0.56.
    reliable = answers(oracle("reliable"), 0.30, 0.35, n=2000)["a"] / 2000
    noisy = answers(oracle("noisy"), 0.30, 0.35, n=2000)["a"] / 2000
    assert abs(reliable - 0.73) < 0.04
    assert abs(noisy - 0.56) < 0.04


def test_tie_within_the_margin_and_both_bad_when_both_are_far():
    assert set(answers(oracle("reliable"), 0.300, 0.305)) == {"tie"}
    assert set(answers(oracle("reliable"), 1.5, 2.5)) == {"both_bad"}
    assert "both_bad" not in answers(oracle("reliable"), 0.5, 2.5)  # one good candidate is enough


def test_adversarial_answers_inverted():
    assert answers(oracle("adversarial"), 0.2, 0.4)["b"] > 0.95 * 400


def test_spammer_ignores_the_images():
    counts = answers(oracle("spammer"), 0.2, 0.9, n=2000)
    assert 0.38 < counts["a"] / 2000 < 0.52 and 0.38 < counts["b"] / 2000 < 0.52


def test_left_biased_favours_the_left_side():
    annotator = oracle("left_biased", side_bias=0.5)
    left_is_worse = answers(annotator, 0.4, 0.2, n=2000, shown_left="a")  # a is worse and on the left
    assert 0.4 < left_is_worse["a"] / 2000 < 0.6
    assert answers(annotator, 0.4, 0.2, n=2000, shown_left="b")["b"] > 0.95 * 2000


def test_same_seed_same_answers():
    first = [oracle("noisy", seed=7).judge_distances(0.3, 0.32) for _ in range(1)]
    runs = [
        [a.judge_distances(0.3, 0.32) for _ in range(50)]
        for a in (oracle("noisy", seed=7), oracle("noisy", seed=7))
    ]
    assert runs[0] == runs[1] and first[0] == runs[0][0]


def test_judge_measures_images_against_the_hq():
    hq = torch.zeros(3, 16, 16)
    close = hq + 0.05 * torch.randn(3, 16, 16)
    far = hq + 0.5 * torch.randn(3, 16, 16)
    annotator = oracle("reliable", both_bad_threshold=100.0)
    assert annotator.judge(hq, close, far) == "a"
    assert annotator.judge(hq, far, close, shown_left="b") == "b"
    distance_close, distance_far = annotator.distances(hq, close, far.unsqueeze(0))
    assert distance_close < distance_far


def test_every_kind_is_constructible_and_bad_settings_are_refused():
    for kind in KINDS:
        assert oracle(kind).kind == kind
    with pytest.raises(ValueError, match="unknown annotator kind"):
        oracle("sleepy")
    with pytest.raises(ValueError, match="temperature"):
        oracle("reliable", temperature=0.0)
    with pytest.raises(ValueError, match="shown_left"):
        oracle("reliable").judge_distances(0.1, 0.2, shown_left="middle")


def test_settings_default_to_the_scale_of_the_distance_in_use():
    annotator = OracleAnnotator("noisy", distance=_L1GradientDistance())
    temperature, tie_margin, both_bad = DEFAULTS_BY_DISTANCE["l1_gradient"]
    assert annotator.temperature == pytest.approx(4 * temperature)
    assert (annotator.tie_margin, annotator.both_bad_threshold) == (tie_margin, both_bad)
    assert OracleAnnotator("reliable", temperature=0.5, distance=_L1GradientDistance()).temperature == 0.5


def test_default_distance_is_the_projects_perceptual_distance():
    annotator = OracleAnnotator("reliable", seed=0)
    assert annotator.describe()["distance"] in ("lpips_randtrunk", "lpips_alex")
    generator = torch.Generator().manual_seed(0)
    hq = torch.rand(3, 32, 32, generator=generator) * 2 - 1
    slightly_noisy = (hq + 0.02 * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
    very_noisy = (hq + 0.4 * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
    distance_a, distance_b = annotator.distances(hq, slightly_noisy, very_noisy)
    assert distance_a < distance_b
