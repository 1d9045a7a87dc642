import pytest
import torch
from PIL import Image

from restorer.degradations import (
    MIN_LQ_SIDE,
    PRESETS,
    DegradationParams,
    apply_degradation,
    degrade_image,
    instruction_text,
    sample_degradation,
)
from restorer.images import pil_to_tensor, tensor_to_pil


def _smooth_face(resolution: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij"
    )
    disc = (xx**2 + yy**2 < 0.5).float()
    return torch.stack([disc * 0.8 - 0.4, xx * 0.5, yy * 0.5 - disc * 0.3])


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("resolution", [64, 512])
def test_draws_are_reproducible_and_inside_the_scaled_ranges(preset, resolution):
    ranges = PRESETS[preset].at_resolution(resolution)
    for seed in range(40):
        params = sample_degradation(preset, seed=seed, resolution=resolution)
        assert params == sample_degradation(preset, seed=seed, resolution=resolution)
        for sigma in (params.blur_sigma_x, params.blur_sigma_y):
            assert ranges.blur_sigma[0] <= sigma <= ranges.blur_sigma[1]
        assert ranges.downscale[0] <= params.downscale <= ranges.downscale[1]
        assert resolution / params.downscale >= MIN_LQ_SIDE - 1e-9
        assert ranges.noise_sigma[0] <= params.noise_sigma <= ranges.noise_sigma[1]
        assert ranges.jpeg_quality[0] <= params.jpeg_quality <= ranges.jpeg_quality[1]
    draws = {sample_degradation(preset, seed=s, resolution=resolution).blur_sigma_x for s in range(10)}
    assert len(draws) > 1


def test_ranges_are_the_papers_at_512_and_scaled_at_64():
    at_512 = PRESETS["heavy"].at_resolution(512)
    assert at_512 == PRESETS["heavy"]
    at_64 = PRESETS["gfpgan"].at_resolution(64)
    assert at_64.blur_sigma == pytest.approx((0.1 / 8, 10 / 8))
    assert at_64.downscale == pytest.approx((0.8, 4.0))
    assert PRESETS["heavy"].at_resolution(64).downscale == pytest.approx((4.0, 4.0))


def test_apply_is_reproducible_from_params_alone_and_actually_degrades():
    hq = _smooth_face()
    params = sample_degradation("heavy", seed=3, resolution=64)
    rebuilt = DegradationParams.from_dict(params.to_dict())
    lq_a = apply_degradation(hq, params)
    lq_b = apply_degradation(hq, rebuilt)
    assert torch.equal(lq_a, lq_b)
    assert lq_a.shape == hq.shape
    assert lq_a.min() >= -1 and lq_a.max() <= 1
    assert (lq_a - hq).abs().mean() > 0.01
    other_seed = apply_degradation(hq, sample_degradation("heavy", seed=4, resolution=64))
    assert not torch.equal(lq_a, other_seed)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown degradation preset"):
        sample_degradation("nope", seed=0, resolution=64)
    with pytest.raises(ValueError, match="drawn for 64"):
        apply_degradation(torch.zeros(3, 32, 32), sample_degradation("gfpgan", seed=0, resolution=64))
    with pytest.raises(ValueError, match="missing"):
        DegradationParams.from_dict({"preset": "gfpgan"})


def test_degrade_image_crops_resizes_and_returns_its_params():
    wide = tensor_to_pil(torch.nn.functional.interpolate(_smooth_face(96)[None], size=(96, 160))[0])
    assert wide.size == (160, 96)
    lq, params = degrade_image(wide, preset="gfpgan", seed=11, resolution=64)
    assert isinstance(lq, Image.Image) and lq.size == (64, 64)
    assert params == sample_degradation("gfpgan", seed=11, resolution=64)
    again, _ = degrade_image(wide, preset="gfpgan", seed=11, resolution=64)
    assert torch.equal(pil_to_tensor(lq), pil_to_tensor(again))


def test_instruction_text_describes_the_draw_and_keeps_user_text():
    strong = DegradationParams("heavy", 64, 1.6, 1.6, 0.0, 6.2, 18.0, 40, 0)
    text = instruction_text(strong, extra="  keep   the glasses ")
    assert text.startswith("severe blur, 6x downsampled, very noisy, severe jpeg; restore the face")
    assert text.endswith("; keep the glasses")
    mild = DegradationParams("gfpgan", 512, 0.2, 0.2, 0.0, 1.0, 0.0, 98, 0)
    assert instruction_text(mild).startswith("no blur, not downsampled, no noise, light jpeg")
