"""The reward benchmark's redundant pool: most inputs teach one easy lesson (how much of the face came back), a
minority another (which candidate is noisier), so that pairs chosen by uncertainty have somewhere to go."""

from __future__ import annotations

import torch


def test_coarse_inputs_are_noise_free_blends_and_fine_ones_differ_only_in_noise(reward_learning):
    n_inputs, k, size = 200, 6, 8
    generator = torch.Generator().manual_seed(0)
    hq = torch.rand(n_inputs, 3, size, size, generator=generator) * 1.6 - 0.8
    bases = (
        torch.rand(n_inputs, len(reward_learning.SHARPEN_LEVELS), 3, size, size, generator=generator) * 1.6
        - 0.8
    )
    candidates = reward_learning.redundant_candidates(
        hq, bases, (n_inputs, k), torch.Generator().manual_seed(1)
    )
    assert candidates.shape == (n_inputs, k, 3, size, size)

    fine, coarse = [], []
    for i in range(n_inputs):
        # a fine input's candidates sit on 0.9 HQ + 0.1 base of one level, up to their noise
        levels = [0.9 * hq[i] + 0.1 * bases[i, level] for level in range(bases.shape[1])]
        residual = (
            torch.stack([(candidates[i] - blend).std(dim=(1, 2, 3)) for blend in levels]).min(dim=0).values
        )
        top = reward_learning.FINE_NOISE
        if bool((residual < 1.5 * top).all()) and float(residual.max() - residual.min()) > 0.5 * top:
            fine.append(residual)
        else:
            coarse.append(i)
    assert abs(len(fine) / n_inputs - reward_learning.FINE_SHARE) < 0.1
    # noise levels are spread over [0, FINE_NOISE]: one clean candidate, one at the top
    for residual in fine:
        assert float(residual.min()) < 0.1 * top and float(residual.max()) > 0.8 * top

    # a coarse input's candidates are exact blends of HQ and one base: solving for alpha leaves no noise
    for i in coarse:
        exact = False
        for level in range(bases.shape[1]):
            direction = (hq[i] - bases[i, level]).flatten()
            offsets = (candidates[i] - bases[i, level]).flatten(1)
            alpha = offsets @ direction / direction.dot(direction)
            leftover = offsets - alpha[:, None] * direction
            if float(leftover.abs().max()) < 1e-4:
                exact = True
                assert float(alpha.min()) < 0.1 and float(alpha.max()) > 0.5  # spread over [0, 0.6]
        assert exact, f"input {i} is neither a noise-free blend nor a noisy copy"
