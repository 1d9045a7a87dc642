import io

import pytest
import torch
from PIL import Image

from restorer.classical import classical_restore, unsharp_mask
from restorer.data import SYNTHETIC_SPLITS, load_face_folder, load_face_image, split_seeds, synthetic_faces
from restorer.images import pil_to_tensor, png_bytes, tensor_to_pil
from restorer.metrics import PerceptualDistance, psnr, solution_entropy, ssim


def test_synthetic_faces_are_deterministic_by_seed_and_independent_of_batch():
    faces = synthetic_faces([5, 6, 7])
    assert faces.shape == (3, 3, 64, 64)
    assert faces.min() >= -1 and faces.max() <= 1 and faces.std() > 0.1
    alone = synthetic_faces([6])
    assert torch.allclose(alone[0], faces[1], atol=1e-5)
    assert not torch.allclose(faces[0], faces[2])
    assert synthetic_faces([5], resolution=32).shape == (1, 3, 32, 32)


def test_splits_never_overlap():
    ranges = sorted(SYNTHETIC_SPLITS.values(), key=lambda r: r.start)
    for earlier, later in zip(ranges, ranges[1:]):
        assert earlier.stop <= later.start
    assert split_seeds("val", 2) == [SYNTHETIC_SPLITS["val"].start, SYNTHETIC_SPLITS["val"].start + 1]
    with pytest.raises(ValueError, match="unknown split"):
        split_seeds("training", 1)


def test_pil_round_trip_is_exact_on_quantised_values():
    t = torch.randint(0, 256, (3, 8, 10)).float() / 127.5 - 1
    assert torch.allclose(pil_to_tensor(tensor_to_pil(t)), t, atol=1e-6)
    assert torch.allclose(pil_to_tensor(Image.open(io.BytesIO(png_bytes(t)))), t, atol=1e-6)


def test_load_face_image_crops_to_a_square_and_rejects_non_images(tmp_path):
    Image.new("RGB", (120, 80), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    face = load_face_image(tmp_path / "a.png", 32)
    assert face.shape == (3, 32, 32) and torch.allclose(face[0], torch.ones(32, 32))
    with pytest.raises(ValueError, match="cannot read an image"):
        load_face_image(tmp_path / "b.jpg", 32)
    with pytest.raises(ValueError, match="cannot read"):
        load_face_folder(tmp_path, 32)


def test_classical_restore_keeps_shape_and_sharpens_edges():
    step = torch.zeros(1, 3, 32, 32) - 0.5
    step[..., 16:] = 0.5
    smooth = classical_restore(step, sharpen=0.0)
    sharp = classical_restore(step, sharpen=1.0)
    assert sharp.shape == step.shape
    # An unsharp mask overshoots at the edge; plain smoothing does not.
    assert sharp.max() > smooth.max()


def test_unsharp_mask_sharpens_softens_per_image_and_leaves_flat_images_alone():
    step = torch.zeros(2, 3, 32, 32) - 0.5
    step[..., 16:] = 0.5
    amounts = torch.tensor([1.0, -0.5]).view(2, 1, 1, 1)
    out = unsharp_mask(step, amounts)
    assert out[0].max() > 0.5  # overshoot at the edge, not clamped
    assert out[1].max() <= 0.5 and (out[1] - step[1]).abs().max() > 0.05  # softened edge
    assert torch.equal(unsharp_mask(step, 0.0), step)
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(unsharp_mask(flat, 1.5), flat, atol=1e-6)


def test_metrics_rank_closer_images_better():
    x = synthetic_faces([1, 2])
    near, far = x + 0.02 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)
    assert (psnr(x, near) > psnr(x, far)).all()
    assert (ssim(x, near) > ssim(x, far)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2))
    distance = PerceptualDistance()
    assert distance.name in {"lpips_alex", "lpips_randtrunk"}
    assert (distance(x, near) < distance(x, far)).all()
    assert solution_entropy(torch.stack([x, x])) == 0.0
    assert solution_entropy(torch.stack([x, far])) > 0.05


def test_a_seeded_trunk_is_its_own_distance_and_the_same_in_every_instance():
    x = synthetic_faces([1, 2, 3])
    near, far = x + 0.02 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)
    evaluators = PerceptualDistance()
    seeded, seeded_again = PerceptualDistance(trunk_seed=1), PerceptualDistance(trunk_seed=1)
    assert seeded.name == "lpips_randtrunk_seed1" != evaluators.name
    assert torch.equal(seeded(x, near), seeded_again(x, near))
    assert not torch.allclose(seeded(x, near), evaluators(x, near))
    assert (seeded(x, near) < seeded(x, far)).all()
