import pytest
import torch
import torch.nn.functional as F

from restorer.degradations import apply_degradation, sample_degradation
from rl_trainer.config import RLConfigError
from rl_trainer.guard import HackingGuard, fidelity_evaluator
from rl_trainer.rewards import (
    CompositeReward,
    group_agreement,
    learned_reward,
    observation_consistency,
    shifted,
)


def smooth(count: int, seed: int, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator) * 1.6 - 0.8
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def test_observation_consistency_re_applies_the_recorded_degradation():
    hq = smooth(2, seed=0)
    params = [sample_degradation("gfpgan", seed=seed, resolution=32) for seed in (5, 6)]
    lq = torch.stack([apply_degradation(image, p) for image, p in zip(hq, params)])
    # the original explains its observation exactly: same blur, resize, noise draw and JPEG
    assert torch.allclose(
        observation_consistency(lq, hq, params, fallback_factor=4), torch.zeros(2), atol=1e-6
    )
    wrong = smooth(2, seed=1)
    assert (observation_consistency(lq, wrong, params, fallback_factor=4) < -1e-3).all()


def test_without_params_consistency_compares_low_passed_images():
    hq = smooth(2, seed=0)
    # an LQ with all the HQ's low frequencies: the fallback ignores the detail a restorer may add
    lq = F.interpolate(F.avg_pool2d(hq, 4), scale_factor=4, mode="nearest")
    detailed = hq + 0.2 * torch.sign(torch.randn(hq.shape, generator=torch.Generator().manual_seed(0)))
    consistency = observation_consistency(lq, detailed, [None, None], fallback_factor=4)
    assert (consistency.abs() < 1e-2).all()
    assert (observation_consistency(lq, -hq, [None, None], fallback_factor=4) < -0.05).all()


def test_each_term_is_reported_apart_and_weighted_into_the_total():
    lq, images, hq = smooth(4, 0), smooth(4, 1), smooth(4, 2)
    reward = CompositeReward(
        lambda lq, x: x.mean(dim=(1, 2, 3)),
        learned_weight=2.0,
        consistency_weight=3.0,
        perceptual_weight=5.0,
        perceptual=lambda x, y: (x - y).abs().mean(dim=(1, 2, 3)),
    )
    has_hq = torch.tensor([True, True, False, True])
    breakdown = reward(lq, images, hq=hq, has_hq=has_hq, degradations=[None] * 4)
    assert set(breakdown.terms) == {"learned", "consistency", "perceptual"}
    assert breakdown.terms["perceptual"][2] == 0  # no HQ known: no perceptual term for that input
    expected = (
        2 * breakdown.terms["learned"]
        + 3 * breakdown.terms["consistency"]
        + 5 * breakdown.terms["perceptual"]
    )
    assert torch.allclose(breakdown.total, expected)
    assert set(breakdown.means(group_size=2)) >= {"reward/learned", "reward/learned_spread", "reward/total"}


def test_normalised_terms_make_weights_independent_of_units():
    lq, images = smooth(4, 0), smooth(4, 1)

    def breakdown(scale: float):
        reward = CompositeReward(lambda lq, x: scale * x.mean(dim=(1, 2, 3)), consistency_weight=1.0)
        return reward(lq, images, degradations=[None] * 4)

    assert torch.allclose(
        breakdown(1.0).normalized_total(2), breakdown(1000.0).normalized_total(2), atol=1e-4
    )
    assert not torch.allclose(breakdown(1.0).total, breakdown(1000.0).total)


def test_fidelity_evaluator_is_the_observation_psnr():
    hq = smooth(2, seed=0)
    params = [sample_degradation("gfpgan", seed=seed, resolution=32) for seed in (5, 6)]
    lq = torch.stack([apply_degradation(image, p) for image, p in zip(hq, params)])
    evaluator = fidelity_evaluator(fallback_downsample=4)
    good = evaluator(lq, hq, hq, params)
    bad = evaluator(lq, smooth(2, seed=1), hq, params)
    assert (good > 50).all() and (bad < good).all()


def test_the_linear_fidelity_evaluator_moves_smoothly_where_the_exact_round_trip_jumps():
    # near-exact restorations of faces whose LQ went through noise and JPEG: through the exact round trip a change
    # below an 8-bit level (2/255 in [-1, 1]) flips JPEG bins, and a guard face's PSNR jumps by dB
    from restorer.data import synthetic_faces

    hq = synthetic_faces(list(range(8)), 64)
    params = [sample_degradation("gfpgan", seed=100 + index, resolution=64) for index in range(8)]
    lq = torch.stack([apply_degradation(image, p) for image, p in zip(hq, params)])
    restored = hq + 0.01 * (F.avg_pool2d(hq, 3, stride=1, padding=1) - hq)
    invisible = restored + 1e-3 * torch.randn(hq.shape, generator=torch.Generator().manual_seed(1))
    exact, linear = fidelity_evaluator(4), fidelity_evaluator(4, linear=True)
    assert exact.name == "observation_psnr" and linear.name == "linear_observation_psnr"
    exact_jump = exact(lq, restored, hq, params) - exact(lq, invisible, hq, params)
    linear_jump = linear(lq, restored, hq, params) - linear(lq, invisible, hq, params)
    assert float(exact_jump.abs().max()) > 1.0
    assert float(linear_jump.abs().max()) < 0.05
    # the LQ's noise and JPEG are a floor: the original itself does not explain its observation exactly
    assert (linear(lq, hq, hq, params) < 60).all()
    # and it still sees what the degradation keeps: a darker face, a shifted one
    assert (linear(lq, restored, hq, params) - linear(lq, restored - 0.1, hq, params) > 1.0).all()
    shifted_face = torch.roll(restored, shifts=4, dims=-1)
    assert (linear(lq, restored, hq, params) - linear(lq, shifted_face, hq, params) > 1.0).all()


@pytest.mark.parametrize(
    ("evaluations", "fires"),
    [
        ([(1, 5), (2, 4), (3, 3)], True),  # reward up, held-out down twice in a row
        ([(1, 5), (2, 4), (3, 6), (4, 5)], False),  # the streak is broken
        ([(1, 5), (2, 6), (3, 7)], False),  # both rise: no hacking
    ],
)
def test_the_guard_counts_consecutive_divergent_evaluations(evaluations, fires):
    guard = HackingGuard(patience=2)
    results = [guard.update(learned, held_out) for learned, held_out in evaluations]
    assert results[-1] is fires and not any(results[:-1])


def test_agreement_scores_each_sample_against_the_rest_of_its_own_group():
    consensus = smooth(1, seed=0)
    outlier = smooth(1, seed=1)
    group = torch.cat([consensus, consensus, consensus, outlier])
    identical = smooth(1, seed=2).expand(4, -1, -1, -1)
    scores = group_agreement(torch.cat([group, identical]), group_size=4)
    # every seed gives the same image: nothing to gain
    assert torch.allclose(scores[4:], torch.zeros(4), atol=1e-12)
    assert int(scores[:4].argmin()) == 3  # the sample that disagrees scores lowest in its group
    assert (scores[:3] < 0).all() and torch.allclose(scores[0], scores[1])
    with pytest.raises(ValueError, match="groups of >= 2"):
        group_agreement(group, group_size=3)


def test_the_best_sample_target_pulls_the_others_towards_it_and_not_it_towards_them():
    images = torch.cat([smooth(1, seed) for seed in range(4)]).requires_grad_(True)
    quality = torch.tensor([0.1, 0.9, 0.3, 0.2])  # sample 1 is the group's best
    scores = group_agreement(images, 4, differentiable=True, target="best", quality=quality)
    expected = -((images.detach() - images.detach()[1]) ** 2).flatten(1).mean(dim=1)
    assert torch.allclose(scores.detach(), expected)
    assert float(scores[1].detach()) == 0.0
    scores.sum().backward()
    # the target is held fixed: the best sample gets no gradient, each other one a pull towards it
    assert float(images.grad[1].abs().max()) == 0.0
    step = images.grad[0]  # ascent direction of sample 0
    assert float((step * (images.detach()[1] - images.detach()[0])).sum()) > 0
    with pytest.raises(ValueError, match="quality score per image"):
        group_agreement(images, 4, target="best")
    with pytest.raises(ValueError, match="agreement target"):
        group_agreement(images, 4, target="median")


def test_the_composite_reward_picks_the_best_sample_by_the_other_weighted_terms():
    images = torch.cat([smooth(1, seed) for seed in range(4)])
    darkest = int(images.mean(dim=(1, 2, 3)).argmin())
    hq = (images[darkest] + 0.01).expand(4, -1, -1, -1)
    # the learned reward prefers bright images, the perceptual term (weighted more) images close to HQ
    learned = CompositeReward(
        lambda lq, x: x.mean(dim=(1, 2, 3)), agreement_weight=1.0, agreement_target="best"
    )
    by_brightness = int(images.mean(dim=(1, 2, 3)).argmax())
    assert float(learned(images, images, group_size=4).terms["agreement"][by_brightness]) == 0.0
    closeness = CompositeReward(
        lambda lq, x: x.mean(dim=(1, 2, 3)),
        learned_weight=1e-6,
        perceptual_weight=1.0,
        perceptual=lambda x, y: ((x - y) ** 2).flatten(1).mean(dim=1),
        agreement_weight=1.0,
        agreement_target="best",
    )
    closest = int(((images - hq) ** 2).flatten(1).mean(dim=1).argmin())
    assert closest != by_brightness
    breakdown = closeness(images, images, hq=hq, group_size=4)
    assert float(breakdown.terms["agreement"][closest]) == 0.0
    assert (breakdown.terms["agreement"][torch.arange(4) != closest] < 0).all()
    with pytest.raises(ValueError, match="agreement target"):
        CompositeReward(None, learned_weight=0.0, agreement_target="median")


def test_the_agreement_term_is_weighted_into_the_total_and_needs_groups():
    lq, images = smooth(4, 0), smooth(4, 1)
    reward = CompositeReward(lambda lq, x: x.mean(dim=(1, 2, 3)), agreement_weight=2.0)
    breakdown = reward(lq, images, group_size=2)
    assert set(breakdown.terms) == {"learned", "agreement"}
    assert torch.allclose(breakdown.total, breakdown.terms["learned"] + 2 * breakdown.terms["agreement"])
    with pytest.raises(ValueError, match="group_size"):
        reward(lq, images)


def test_the_differentiable_total_equals_the_scored_one_and_carries_a_gradient_into_every_term():
    hq = smooth(4, seed=0)
    params = [sample_degradation("gfpgan", seed=seed, resolution=32) for seed in (1, 2, 3, 4)]
    lq = torch.stack([apply_degradation(image, p) for image, p in zip(hq, params)])
    images = smooth(4, seed=5)
    reward = CompositeReward(
        lambda lq, x: x.mean(dim=(1, 2, 3)),
        learned_weight=1.0,
        consistency_weight=2.0,
        perceptual_weight=3.0,
        perceptual=lambda x, y: (x - y).abs().mean(dim=(1, 2, 3)),
        agreement_weight=4.0,
    )
    options = {
        "hq": hq,
        "has_hq": torch.tensor([True, False, True, True]),
        "degradations": params,
        "group_size": 2,
    }
    scored = reward(lq, images, **options)
    leaf = images.clone().requires_grad_(True)
    graded = reward.differentiable(lq, leaf, **options)
    # same values: the exact re-degradation (noise draw and JPEG included) is kept, only its gradient is smooth
    assert torch.allclose(graded.total.detach(), scored.total, atol=1e-6)
    for name in scored.terms:
        assert torch.allclose(graded.terms[name], scored.terms[name], atol=1e-6)
    for name in ("learned", "consistency", "perceptual", "agreement"):
        single = CompositeReward(
            reward.learned,
            learned_weight=float(name == "learned"),
            consistency_weight=float(name == "consistency"),
            perceptual_weight=float(name == "perceptual"),
            perceptual=reward.perceptual,
            agreement_weight=float(name == "agreement"),
        )
        leaf = images.clone().requires_grad_(True)
        single.differentiable(lq, leaf, **options).total.sum().backward()
        assert leaf.grad is not None and float(leaf.grad.abs().sum()) > 0, name
    # a step along the consistency gradient brings the re-degraded image closer to the LQ
    leaf = images.clone().requires_grad_(True)
    consistency = observation_consistency(lq, leaf, params, fallback_factor=4, differentiable=True)
    consistency.sum().backward()
    stepped = (images + 0.5 * leaf.grad / leaf.grad.abs().max()).clamp(-1, 1)
    after = observation_consistency(lq, stepped, params, fallback_factor=4)
    assert float(after.sum()) > float(consistency.detach().sum())


def test_the_guard_with_hq_watches_the_seed_0_random_trunk_lpips_and_not_the_identity_oracle():
    """rl_gain scores with the identity_sharpness oracle; the guard must be another function (here: the old
    oracle, LPIPS heads on the seed-0 random trunk), so the oracle never chooses a step."""
    from restorer.metrics import RANDOM_TRUNK_SEED, PerceptualDistance
    from rl_trainer.config import RLConfig
    from rl_trainer.guard import default_held_out
    from tests.rl_trainer.rl_standin import make_inputs

    inputs = make_inputs(3, size=32)
    distance = PerceptualDistance(trunk_seed=RANDOM_TRUNK_SEED)
    guard = default_held_out(inputs, RLConfig.preset("tiny"), distance, "lpips_randtrunk")
    assert guard.name == "oracle_neg_lpips_randtrunk" and "identity" not in guard.name
    images = smooth(3, seed=5)
    expected = -distance(images, inputs.hq)
    assert torch.allclose(guard(inputs.lq, images, inputs.hq, inputs.degradations), expected)


def test_a_fidelity_guard_never_reads_the_hq_even_when_every_input_has_one():
    from restorer.metrics import PerceptualDistance
    from rl_trainer.config import RLConfig
    from rl_trainer.guard import default_held_out
    from tests.rl_trainer.rl_standin import make_inputs

    inputs = make_inputs(3, size=32)
    config = RLConfig.preset("tiny", held_out_evaluator="fidelity")
    guard = default_held_out(inputs, config, PerceptualDistance(), "lpips_randtrunk")
    assert guard.name == "observation_psnr"
    images = smooth(3, seed=5)
    scores = guard(inputs.lq, images, inputs.hq, inputs.degradations)
    assert torch.equal(scores, guard(inputs.lq, images, torch.zeros_like(inputs.hq), inputs.degradations))
    assert torch.allclose(scores, fidelity_evaluator(4)(inputs.lq, images, inputs.hq, inputs.degradations))
    with pytest.raises(RLConfigError, match="held_out_evaluator"):
        RLConfig.preset("tiny", held_out_evaluator="oracle")


class _PixelProbe(torch.nn.Module):
    """A 'reward model' that reads one exact pixel: the kind of pattern shifted rewards average out."""

    def forward(self, lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 5, 5]


def test_shifted_moves_and_mirrors_and_keeps_the_size():
    image = torch.arange(64.0).view(1, 1, 8, 8)
    moved = shifted(image, 1, 0, flip=False)
    assert moved.shape == image.shape
    assert torch.equal(moved[..., :, 1:], image[..., :, :-1])  # content moved one pixel right
    assert torch.equal(shifted(image, 0, 0, flip=True), image.flip(-1))


def test_an_augmented_learned_reward_spreads_a_single_pixel_exploit_and_keeps_its_gradient():
    images = torch.zeros(2, 3, 16, 16, requires_grad=True)
    lq = torch.zeros(2, 3, 16, 16)
    plain = learned_reward(_PixelProbe())(lq, images)
    plain.sum().backward()
    assert images.grad is not None
    assert int((images.grad != 0).sum()) == 2  # all of it on the one pixel of each image
    images.grad = None
    augmented = learned_reward(_PixelProbe(), augmentations=8, max_shift=2, seed=0)(lq, images)
    augmented.sum().backward()
    spread = images.grad[0, 0].abs()
    assert (
        spread[5, 5] < 1.0 and int((spread > 0).sum()) > 1
    )  # shared with the neighbours it was shifted from
    assert torch.isclose(images.grad.sum(), torch.tensor(2.0))  # the same total: a mean over shifts
    # Seeded: the same config sees the same shifts.
    again = learned_reward(_PixelProbe(), augmentations=8, max_shift=2, seed=0)
    other = learned_reward(_PixelProbe(), augmentations=8, max_shift=2, seed=0)
    probe = torch.rand(2, 3, 16, 16)
    assert torch.equal(again(lq, probe), other(lq, probe))


class _OffsetMembers(torch.nn.Module):
    """Three members that agree on which image is better (brighter) and differ only by their own offsets."""

    offsets = torch.tensor([-1.0, 0.0, 1.0])

    def member_rewards(self, lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3)).unsqueeze(1) * torch.tensor([1.0, 1.0, 1.0]) + self.offsets


def test_centred_disagreement_leaves_members_that_only_differ_by_offsets_unpenalised():
    images = torch.rand(4, 3, 8, 8, requires_grad=True)
    lq = torch.zeros(4, 3, 8, 8)
    raw = learned_reward(_OffsetMembers(), pessimism=1.0)(lq, images)
    centred = learned_reward(_OffsetMembers(), pessimism=1.0, centered_disagreement=True)(lq, images)
    brightness = images.mean(dim=(1, 2, 3))
    # Raw: every image pays the offsets' std (0.816); centred: the members agree, nothing is subtracted.
    assert torch.allclose(raw, brightness - torch.tensor(2 / 3).sqrt(), atol=1e-5)
    assert torch.allclose(centred, brightness, atol=2e-3)  # the floor's 1e-3 only
    centred.sum().backward()
    assert torch.allclose(images.grad, torch.full_like(images, 1 / (3 * 8 * 8)), atol=1e-6)


class _DisagreeingMembers(torch.nn.Module):
    """Two members that rank images oppositely (one likes bright, the other dark)."""

    def member_rewards(self, lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        brightness = images.mean(dim=(1, 2, 3)).unsqueeze(1)
        return torch.cat([brightness + 5.0, -brightness], dim=1)


def test_centred_disagreement_still_penalises_members_that_rank_images_differently():
    images = torch.stack([torch.full((3, 8, 8), level) for level in (0.0, 0.2, 0.4, 0.6)])
    lq = torch.zeros_like(images)
    centred = learned_reward(_DisagreeingMembers(), pessimism=1.0, centered_disagreement=True)(lq, images)
    mean_only = _DisagreeingMembers().member_rewards(lq, images).mean(dim=1)
    penalty = mean_only - centred
    # The images far from the batch's middle are where the two members disagree most.
    assert penalty[0] > penalty[1] > 0.01 and penalty[3] > penalty[2] > 0.01
