"""The restorer: an autoregressive instruction integrator feeding a conditional diffusion UNet.

* **Integrator** (MetaQuery style): a small GPT-2-style causal decoder trained from scratch reads
  ``[LQ patch embeddings][instruction tokens][N learnable query tokens]``; the final hidden states of the
  query tokens, projected, are the dense latent queries. Causality puts the queries last, so they see the
  whole input and nothing sees them.
* **Diffusion UNet** (diffusers ``UNet2DConditionModel``): the noisy state is concatenated with the LQ
  image, and cross-attention reads the latent queries. ``use_integrator=False`` swaps the queries for a
  learned constant (same UNet, LQ conditioning only): the ablation.

Recipe choices that matter on a CPU budget:

* the diffusion state is the **residual over the (bicubically upsampled) LQ**, divided by
  ``residual_scale``: the model only has to learn what the LQ lacks. ``residual_scale`` sets how much of
  the trajectory is a regression: the residual of a gfpgan-degraded 64-px face has an RMS of ~0.09, so at
  scale 0.15 the state has unit variance (a textbook diffusion), while at scale 2-4 it stays below the
  noise until the last DDIM steps and sampling stays close to the MMSE restoration (low solution entropy,
  the paper's determinism claim). A recipe sweep at the CPU budget showed why this matters: with scale 2,
  20 DDIM steps lost 1.3 dB against 1 step, almost all of it the seed-to-seed spread (per-pixel std 0.023);
  at scale 4 (14 CPU minutes) the spread was 0.015 and 20 steps still cost 0.7 dB against 1 step; the spread
  a well-fitted model passes on from the initial noise shrinks like 1 / scale, so the ``tiny`` config uses
  scale 8, and the UNet predicts the residual in image units
  (``predict_image_residual``) so that a larger scale does not shrink the target it has to learn;
* sampling returns the model's clean estimate at the last step (``restorer.sampling``), not a state that
  still holds ᾱ_0's sliver of noise (a per-pixel std floor of ~0.0065 × scale / 2);
* the UNet predicts **x0** (``prediction_type="sample"``): at high noise this is a regression to the
  MMSE restoration, which is what PSNR rewards, and low-noise steps add detail;
* the UNet runs on a **pixel-unshuffled** image (``patch_size`` 2: 64×64×3 -> 32×32×12), four times
  cheaper than full resolution with the same receptive field in pixels.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import GPT2Config, GPT2Model
from transformers.utils import logging as transformers_logging

from restorer.artifacts import (
    ArtifactError,
    load_weights,
    read_config,
    read_metrics,
    reject_unknown_fields,
    write_artifact,
)
from restorer.tokenizer import VOCAB_VERSION, InstructionTokenizer

CONFIG_KIND = "restorer"
CONFIG_VERSION = 1


@dataclass(frozen=True)
class RestorerConfig:
    resolution: int = 64
    seed: int = 0
    # integrator
    use_integrator: bool = True
    num_queries: int = 8
    integrator_width: int = 64
    integrator_layers: int = 2
    integrator_heads: int = 4
    max_text_tokens: int = 48
    lq_patch_grid: int = 4
    # diffusion UNet
    patch_size: int = 2
    block_out_channels: tuple[int, ...] = (64, 96, 128)
    cross_attention_levels: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1
    attention_head_dim: int = 16
    norm_num_groups: int = 16
    cross_attention_dim: int = 64
    # also pool the latent queries into the UNet's time embedding (diffusers' "text" addition embedding), so
    # they modulate every ResNet block, not only the levels with cross-attention
    query_time_embedding: bool = True
    # diffusion process
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    residual_scale: float = 0.5
    # the UNet's output is the residual in image units (then divided by residual_scale into the state): the
    # output layer's scale then does not depend on residual_scale, so a large scale trains as fast as a small one
    predict_image_residual: bool = True
    vocab_version: int = VOCAB_VERSION
    version: int = CONFIG_VERSION
    kind: str = field(default=CONFIG_KIND)

    def __post_init__(self) -> None:
        if len(self.block_out_channels) != len(self.cross_attention_levels):
            raise ValueError("block_out_channels and cross_attention_levels need one entry per UNet level")
        if self.resolution % (self.patch_size * 2 ** (len(self.block_out_channels) - 1)):
            raise ValueError(f"resolution {self.resolution} must divide by patch_size × 2^(levels - 1)")
        if self.resolution % self.lq_patch_grid:
            raise ValueError(
                f"resolution {self.resolution} must divide by lq_patch_grid {self.lq_patch_grid}"
            )
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"every channel width must divide by norm_num_groups {self.norm_num_groups}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        data["cross_attention_levels"] = list(self.cross_attention_levels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorerConfig:
        reject_unknown_fields(cls, data, message="unknown restorer config fields")
        values = dict(data)
        # configs saved before these fields existed describe UNets without the query time embedding whose
        # output is the state itself
        values.setdefault("query_time_embedding", False)
        values.setdefault("predict_image_residual", False)
        for name in ("block_out_channels", "cross_attention_levels"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> RestorerConfig:
        return dataclasses.replace(self, **changes)


class InstructionIntegrator(nn.Module):
    """Causal decoder over [LQ patches][instruction][queries] -> ``[B, num_queries, cross_attention_dim]``."""

    def __init__(self, config: RestorerConfig, vocab_size: int, pad_id: int, bos_id: int) -> None:
        super().__init__()
        self.config = config
        num_patches = config.lq_patch_grid**2
        positions = num_patches + config.max_text_tokens + config.num_queries
        gpt_config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=positions,
            n_embd=config.integrator_width,
            n_layer=config.integrator_layers,
            n_head=config.integrator_heads,
            n_inner=4 * config.integrator_width,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=bos_id,
            eos_token_id=bos_id,
            pad_token_id=pad_id,
        )
        self.decoder = GPT2Model(gpt_config)
        patch_pixels = 3 * (config.resolution // config.lq_patch_grid) ** 2
        self.patch_embedding = nn.Linear(patch_pixels, config.integrator_width)
        self.queries = nn.Parameter(torch.randn(config.num_queries, config.integrator_width) * 0.02)
        self.to_latent = nn.Linear(config.integrator_width, config.cross_attention_dim)

    def forward(self, lq: torch.Tensor, token_ids: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        batch = lq.shape[0]
        patch = self.config.resolution // self.config.lq_patch_grid
        patches = F.unfold(lq, kernel_size=patch, stride=patch).transpose(1, 2)  # [B, grid², 3·p²]
        patch_tokens = self.patch_embedding(patches)
        text_tokens = self.decoder.wte(token_ids)
        query_tokens = self.queries[None].expand(batch, -1, -1)
        embeds = torch.cat([patch_tokens, text_tokens, query_tokens], dim=1)
        mask = torch.cat(
            [
                torch.ones(batch, patch_tokens.shape[1], dtype=token_mask.dtype, device=lq.device),
                token_mask,
                torch.ones(batch, self.config.num_queries, dtype=token_mask.dtype, device=lq.device),
            ],
            dim=1,
        )
        hidden = self.decoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return self.to_latent(hidden[:, -self.config.num_queries :])


def _build_unet(config: RestorerConfig) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.cross_attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.cross_attention_levels))
    pixels_per_patch = 3 * config.patch_size**2
    return UNet2DConditionModel(
        sample_size=config.resolution // config.patch_size,
        in_channels=2 * pixels_per_patch,  # noisy state + LQ, both pixel-unshuffled
        out_channels=pixels_per_patch,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DCrossAttn" if config.cross_attention_levels[-1] else None,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        cross_attention_dim=config.cross_attention_dim,
        attention_head_dim=config.attention_head_dim,
        addition_embed_type="text" if config.query_time_embedding else None,
        addition_embed_type_num_heads=max(1, config.cross_attention_dim // config.attention_head_dim),
    )


def _random_crops(
    hq: torch.Tensor, lq: torch.Tensor, size: int, align: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random square of each HQ/LQ pair; offsets on the pixel-unshuffle grid (as at inference)."""
    positions = (hq.shape[-1] - size) // align + 1
    offsets = torch.randint(0, positions, (hq.shape[0], 2), generator=generator) * align
    hq_crops, lq_crops = [], []
    for image_hq, image_lq, (top, left) in zip(hq, lq, offsets.tolist()):
        hq_crops.append(image_hq[:, top : top + size, left : left + size])
        lq_crops.append(image_lq[:, top : top + size, left : left + size])
    return torch.stack(hq_crops), torch.stack(lq_crops)


class Restorer(nn.Module):
    """Policy of the platform: ``(LQ, instruction) -> distribution over restorations`` (sampled by
    ``restorer.sampling``). Works in the residual state ``z = (x - lq) / residual_scale``."""

    def __init__(self, config: RestorerConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = InstructionTokenizer()
        if config.vocab_version != VOCAB_VERSION:
            raise ArtifactError(
                f"config uses tokenizer vocabulary v{config.vocab_version}; this code has v{VOCAB_VERSION}"
            )
        # The UNet is built first, so that under one seed the full model and its no-integrator ablation start
        # from the same UNet weights: with the same batches and noise (restorer.train), the conditioning is then
        # the only difference between the two runs, and the comparison is paired.
        self.unet = _build_unet(config)
        self.integrator: InstructionIntegrator | None = None
        self.null_queries: nn.Parameter | None = None
        previous_verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        try:
            if config.use_integrator:
                self.integrator = InstructionIntegrator(
                    config, self.tokenizer.vocab_size, self.tokenizer.pad_id, self.tokenizer.bos_id
                )
            else:
                self.null_queries = nn.Parameter(
                    torch.randn(config.num_queries, config.cross_attention_dim) * 0.02
                )
        finally:
            transformers_logging.set_verbosity(previous_verbosity)

    # --- schedulers (kept apart from the model, built from its config) ---------------------------------
    def train_scheduler(self) -> Any:  # DDPMScheduler (diffusers' decorators hide its methods from mypy)
        return DDPMScheduler(
            num_train_timesteps=self.config.num_train_timesteps,
            beta_schedule=self.config.beta_schedule,
            prediction_type="sample",
            clip_sample=False,
        )

    def sampling_scheduler(self) -> Any:  # DDIMScheduler
        # "trailing" spacing starts at t = T - 1 (pure noise); set_alpha_to_one=False keeps the last step's
        # variance above zero so every step of a stochastic trajectory has a proper log-probability.
        return DDIMScheduler(
            num_train_timesteps=self.config.num_train_timesteps,
            beta_schedule=self.config.beta_schedule,
            prediction_type="sample",
            clip_sample=False,
            set_alpha_to_one=False,
            timestep_spacing="trailing",
        )

    # --- conversions between images and the diffusion state --------------------------------------------
    def to_state(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return (hq - lq) / self.config.residual_scale

    def to_image(self, state: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return (lq + state * self.config.residual_scale).clamp(-1.0, 1.0)

    # --- forward pieces ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_condition(self, lq: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """Dense latent queries ``[B, num_queries, cross_attention_dim]`` (a constant for the ablation)."""
        if len(instructions) != lq.shape[0]:
            raise ValueError(f"need one instruction per image: {len(instructions)} for {lq.shape[0]} images")
        if self.integrator is None:
            assert self.null_queries is not None
            return self.null_queries[None].expand(lq.shape[0], -1, -1)
        ids, mask = self.tokenizer.batch_encode(instructions, self.config.max_text_tokens)
        return self.integrator(lq, ids.to(lq.device), mask.to(lq.device))

    def predict_x0(
        self, state: torch.Tensor, timesteps: torch.Tensor, lq: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """The UNet's estimate of the clean state from the noisy one at ``timesteps`` (``[B]`` or scalar)."""
        p = self.config.patch_size
        unet_input = F.pixel_unshuffle(torch.cat([state, lq], dim=1), p)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(state.shape[0])
        out = cast(Any, self.unet)(unet_input, timesteps, encoder_hidden_states=condition, return_dict=False)[
            0
        ]
        x0 = F.pixel_shuffle(out, p)
        return x0 / self.config.residual_scale if self.config.predict_image_residual else x0

    def training_loss(
        self,
        hq: torch.Tensor,
        lq: torch.Tensor,
        instructions: list[str],
        *,
        scheduler: Any = None,
        generator: torch.Generator | None = None,
        crop_size: int | None = None,
    ) -> torch.Tensor:
        """Denoising loss: MSE between the predicted and the true clean residual at a uniform timestep.

        With ``crop_size`` the UNet sees one random ``crop_size`` square per image (4x cheaper at half the
        side) while the integrator still reads the whole LQ image and the instruction: the latent queries
        are global context, and the convolutional UNet runs on any size at inference.
        """
        scheduler = scheduler or self.train_scheduler()
        condition = self.encode_condition(lq, instructions)
        if crop_size is not None and crop_size < hq.shape[-1]:
            hq, lq = _random_crops(hq, lq, crop_size, self.config.patch_size, generator)
        clean = self.to_state(hq, lq)
        noise = torch.randn(clean.shape, generator=generator, device="cpu").to(clean)
        t = torch.randint(0, self.config.num_train_timesteps, (clean.shape[0],), generator=generator).to(
            clean.device
        )
        noisy = scheduler.add_noise(clean, noise, t)
        predicted = self.predict_x0(noisy, t, lq, condition)
        return F.mse_loss(predicted, clean)

    def forward(
        self,
        hq: torch.Tensor,
        lq: torch.Tensor,
        instructions: list[str],
        *,
        scheduler: Any = None,
        generator: torch.Generator | None = None,
        crop_size: int | None = None,
    ) -> torch.Tensor:
        """The training loss (what a DDP / accelerate wrapper calls); sampling lives in ``restorer.sampling``."""
        return self.training_loss(
            hq, lq, instructions, scheduler=scheduler, generator=generator, crop_size=crop_size
        )

    # --- artifacts (restorer.artifacts: config.json + model.safetensors + metrics.json) --------------------
    def save_pretrained(
        self, directory: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None
    ) -> Path:
        return write_artifact(directory, config=self.config, state_dict=self.state_dict(), metrics=metrics)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, device: str | torch.device = "cpu"
    ) -> Restorer:
        config = read_config(directory, RestorerConfig.from_dict, kind=CONFIG_KIND, version=CONFIG_VERSION)
        model = cls(config)
        load_weights(model, directory)
        return model.to(device).eval()

    @staticmethod
    def read_metrics(directory: str | os.PathLike[str]) -> dict[str, Any]:
        return read_metrics(directory)


def tiny_test_config(**changes: Any) -> RestorerConfig:
    """A restorer small enough for unit tests (milliseconds per step at 32×32)."""
    base = RestorerConfig(
        resolution=32,
        num_queries=4,
        integrator_width=32,
        integrator_layers=1,
        integrator_heads=2,
        max_text_tokens=32,
        lq_patch_grid=2,
        block_out_channels=(16, 32),
        cross_attention_levels=(False, True),
        attention_head_dim=8,
        norm_num_groups=8,
        cross_attention_dim=32,
        num_train_timesteps=100,
    )
    return base.replace(**changes)
