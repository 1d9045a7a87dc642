"""Image quality metrics used by evaluation, the reward model's reports and the benchmarks.

All take ``[B, 3, H, W]`` tensors in [-1, 1] and return one value per image.

The perceptual distance is LPIPS with the AlexNet trunk only when that trunk is already in the torch hub
cache (nothing is downloaded). Offline it falls back to LPIPS' learned linear heads on a *randomly
initialised* AlexNet (``pnet_rand=True``, seeded so it is the same network in every process): a different
metric, always reported as ``lpips_randtrunk`` and never as "LPIPS".
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

RANDOM_TRUNK_SEED = 0


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"need two batches of the same shape [B, C, H, W], got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over the [-1, 1] range (peak-to-peak 2)."""
    _check_pair(x, y)
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(4.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004: 11×11 Gaussian window, σ 1.5), mean over channels."""
    _check_pair(x, y)
    x = (x.float() + 1.0) / 2.0
    y = (y.float() + 1.0) / 2.0
    channels = x.shape[1]
    window = _gaussian_window(min(11, x.shape[-1], x.shape[-2]) | 1).to(x)
    window = window[None, None].repeat(channels, 1, 1, 1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = filt(x), filt(y)
    sigma_xx = filt(x * x) - mu_x**2
    sigma_yy = filt(y * y) - mu_y**2
    sigma_xy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2)
    )
    return ssim_map.flatten(1).mean(1)


def _alexnet_trunk_cached() -> bool:
    hub_dir = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    return any(hub_dir.glob("alexnet-owt-*.pth"))


class PerceptualDistance:
    """LPIPS-style distance, lower is closer. ``.name`` says which variant is computed."""

    def __init__(self, device: str | torch.device = "cpu", *, trunk_seed: int | None = None) -> None:
        """``trunk_seed``: always a random trunk, drawn with this seed (``lpips_randtrunk_seed<N>``): a distance
        that is not the evaluators' own, for a training signal (``rl_trainer``'s perceptual reward term)."""
        import lpips  # imported lazily: it pulls torchvision

        pretrained_trunk = trunk_seed is None and _alexnet_trunk_cached()
        if trunk_seed is None:
            self.name = "lpips_alex" if pretrained_trunk else "lpips_randtrunk"
        else:
            self.name = f"lpips_randtrunk_seed{trunk_seed}"
        # lpips prints its set-up; keep logs of callers clean.
        with (
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(),
            torch.random.fork_rng(devices=[]),
        ):
            warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
            torch.manual_seed(RANDOM_TRUNK_SEED if trunk_seed is None else trunk_seed)
            self._model = lpips.LPIPS(net="alex", pnet_rand=not pretrained_trunk, verbose=False)
        self._model = self._model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distances ``[B]``; differentiable in ``x`` when ``x`` requires grad (the trunk and heads stay frozen)."""
        _check_pair(x, y)
        distance = self._model(x.float().to(self.device), y.float().to(self.device), normalize=False)
        return distance.flatten().cpu()


def solution_entropy(samples: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across S samples ``[S, B, 3, H, W]`` of the same inputs."""
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f"need [S >= 2, B, 3, H, W] samples, got {tuple(samples.shape)}")
    return float(samples.float().std(dim=0, unbiased=False).mean())
