"""The rl_gain benchmark's sharpening ladder: pool candidates that differ from one sample only along the axis the
learned reward was hacked on (over-sharpening), so the annotators' answers on them teach where it stops helping."""

from __future__ import annotations

import torch


def test_the_ladder_spans_blur_to_strong_over_sharpening_of_one_image(rl_gain):
    from restorer.classical import unsharp_mask

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 32, 32, generator=generator) * 1.6 - 0.8
    rungs = rl_gain.sharpening_ladder(image, 5, torch.Generator().manual_seed(1))
    assert rungs.shape == (5, 3, 32, 32)
    assert rungs.min() >= -1 and rungs.max() <= 1
    # high-frequency energy grows rung by rung: the strengths are stratified from a blur to a strong sharpening
    residual = [float((rung - image).abs().mean()) for rung in rungs]
    detail = [float((rung - unsharp_mask(rung[None], -1.0, sigma=1.0)[0]).pow(2).mean()) for rung in rungs]
    base_detail = float((image - unsharp_mask(image[None], -1.0, sigma=1.0)[0]).pow(2).mean())
    assert detail[0] < base_detail < detail[-1]
    assert residual[-1] > residual[1]
    # the same generator state gives the same ladder (the pool is reproducible)
    again = rl_gain.sharpening_ladder(image, 5, torch.Generator().manual_seed(1))
    assert torch.equal(rungs, again)


def test_ladder_pairs_are_their_own_family_and_the_pool_counts_them(rl_gain):
    assert rl_gain.pair_family("policy", "sharpened") == "sharpening"
    assert rl_gain.pair_family("sharpened", "sharpened") == "sharpening"
    assert rl_gain.pair_family("sharpened", "classical") == "classical"
    assert rl_gain.pair_family("policy", "edited") == "on-policy"
    assert rl_gain.pair_family("policy", "policy") == "raw"
    spec = rl_gain.PoolSpec(3, (2,), 3, 1, 5)
    assert spec.size == 13
    assert rl_gain.PoolSpec(3, (2,), 3, 1).size == 8  # no ladder unless asked for
