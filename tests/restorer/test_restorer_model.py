import json

import pytest
import torch

from restorer.artifacts import ArtifactError
from restorer.model import Restorer, RestorerConfig, tiny_test_config
from restorer.sampling import sample, trajectory_log_probs
from restorer.tokenizer import InstructionTokenizer

INSTRUCTIONS = [
    "strong blur, 4x downsampled, noisy, heavy jpeg; restore the face",
    "no blur; keep the glasses",
    "x",
]


def _inputs(batch: int = 3, resolution: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def restorer() -> Restorer:
    torch.manual_seed(0)
    return Restorer(tiny_test_config()).eval()


def test_tokenizer_spells_unknown_words_and_pads():
    tokenizer = InstructionTokenizer()
    known = tokenizer.encode("strong blur")
    assert len(known) == 3  # <bos> + two words
    spelled = tokenizer.encode("zebra")
    assert len(spelled) == 1 + 5 + 1  # <bos> + z-e-b-r-a + <eow>
    ids, mask = tokenizer.batch_encode(["strong blur", "zebra " * 20], max_length=8)
    assert ids.shape == mask.shape == (2, 8)
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and mask[1].all()


def test_integrator_queries_depend_on_the_instruction_and_the_ablation_ignores_it(restorer):
    lq = _inputs(2)
    same_image = torch.cat([lq[:1], lq[:1]])
    queries = restorer.encode_condition(same_image, ["strong blur", "no blur, light jpeg"])
    assert queries.shape == (2, 4, 32)
    assert not torch.allclose(queries[0], queries[1])
    ablation = Restorer(tiny_test_config(use_integrator=False))
    constant = ablation.encode_condition(same_image, ["strong blur", "no blur"])
    assert torch.equal(constant[0], constant[1])


def test_under_one_seed_the_ablation_starts_from_the_full_models_unet():
    # the restorer_quality benchmark pairs the two runs: same batches, same noise, and this same UNet init
    torch.manual_seed(3)
    full = Restorer(tiny_test_config())
    torch.manual_seed(3)
    ablation = Restorer(tiny_test_config(use_integrator=False))
    full_unet, ablation_unet = full.unet.state_dict(), ablation.unet.state_dict()
    assert full_unet.keys() == ablation_unet.keys()
    assert all(torch.equal(full_unet[k], ablation_unet[k]) for k in full_unet)
    torch.manual_seed(4)
    other_seed = Restorer(tiny_test_config()).unet.state_dict()
    assert not all(torch.equal(full_unet[k], other_seed[k]) for k in full_unet)


def test_deterministic_sampling_is_deterministic_and_seeds_matter(restorer):
    lq = _inputs()
    first = sample(restorer, lq, INSTRUCTIONS, num_steps=4, seeds=[1, 2, 3])
    again = sample(restorer, lq, INSTRUCTIONS, num_steps=4, seeds=[1, 2, 3])
    assert torch.equal(first.images, again.images)
    assert first.log_probs is None and first.trajectory is None
    assert first.images.shape == lq.shape and first.images.abs().max() <= 1
    other = sample(restorer, lq, INSTRUCTIONS, num_steps=4, seeds=[4, 5, 6])
    assert not torch.allclose(first.images, other.images)
    # per-sample seeds: an image does not depend on its batch-mates
    alone = sample(restorer, lq[1:2], INSTRUCTIONS[1:2], num_steps=4, seeds=[2])
    assert torch.allclose(alone.images, first.images[1:2], atol=1e-5)


def test_sampling_ends_on_the_clean_estimate(restorer):
    # DDIM with alpha-bar = 1 after the last step: no trace of the initial noise is left in the image beyond
    # what the model's own last estimate keeps
    lq = _inputs()
    out = sample(restorer, lq, INSTRUCTIONS, num_steps=3, seeds=[1, 2, 3], return_trajectory=True)
    noisy = sample(restorer, lq, INSTRUCTIONS, num_steps=3, eta=1.0, seeds=[1, 2, 3], return_trajectory=True)
    with torch.no_grad():
        condition = restorer.encode_condition(lq, INSTRUCTIONS)
        last_estimate = restorer.predict_x0(out.trajectory[:, -2], out.timesteps[-1], lq, condition)
    assert torch.allclose(out.trajectory[:, -1], last_estimate, atol=1e-6)
    assert torch.allclose(out.images, restorer.to_image(last_estimate, lq), atol=1e-6)
    # a stochastic trajectory's last step keeps its noise (and log-probability); the image is the estimate
    with torch.no_grad():
        noisy_estimate = restorer.predict_x0(noisy.trajectory[:, -2], noisy.timesteps[-1], lq, condition)
    assert torch.allclose(noisy.images, restorer.to_image(noisy_estimate, lq), atol=1e-6)
    assert not torch.allclose(noisy.trajectory[:, -1], noisy_estimate, atol=1e-4)


def test_the_unet_predicts_the_residual_in_image_units_whatever_the_residual_scale():
    lq, state, t = _inputs(1), torch.randn(1, 3, 32, 32), torch.tensor(10)
    predictions = []
    for scale in (1.0, 4.0):
        torch.manual_seed(0)
        model = Restorer(tiny_test_config(residual_scale=scale)).eval()
        with torch.no_grad():
            condition = model.encode_condition(lq, INSTRUCTIONS[:1])
            predictions.append(model.predict_x0(state, t, lq, condition) * scale)  # back to image units
    assert torch.allclose(predictions[0], predictions[1], atol=1e-6)


def test_recomputed_log_probs_match_the_recorded_ones_and_carry_gradients(restorer):
    lq = _inputs()
    out = sample(restorer, lq, INSTRUCTIONS, num_steps=4, eta=1.0, seeds=[7, 8, 9], return_trajectory=True)
    assert out.trajectory is not None and out.log_probs is not None
    assert out.trajectory.shape == (3, 5, 3, 32, 32) and out.log_probs.shape == (3, 4)
    recomputed = trajectory_log_probs(restorer, lq, INSTRUCTIONS, out.trajectory, out.timesteps, eta=1.0)
    assert torch.allclose(recomputed, out.log_probs, rtol=1e-4, atol=1e-2)
    recomputed.sum().backward()
    grads = [p.grad for p in restorer.parameters() if p.grad is not None]
    restorer.zero_grad()
    assert grads and any(g.abs().sum() > 0 for g in grads)
    # another policy gives the same trajectory another likelihood
    other = Restorer(tiny_test_config(seed=1))
    with torch.no_grad():
        under_other = trajectory_log_probs(other, lq, INSTRUCTIONS, out.trajectory, out.timesteps, eta=1.0)
    assert not torch.allclose(under_other, out.log_probs, rtol=1e-3)
    with pytest.raises(ValueError, match="eta must be > 0"):
        trajectory_log_probs(restorer, lq, INSTRUCTIONS, out.trajectory, out.timesteps, eta=0.0)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = Restorer(tiny_test_config(block_out_channels=(8, 16)))
    hq = _inputs(4)
    lq = torch.nn.functional.avg_pool2d(hq, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    instructions = ["moderate blur, 4x downsampled"] * 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def fixed_loss() -> float:
        with torch.no_grad():
            return model.training_loss(
                hq, lq, instructions, generator=torch.Generator().manual_seed(123)
            ).item()

    before = fixed_loss()
    for step in range(12):
        loss = model.training_loss(hq, lq, instructions, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_loss() < 0.9 * before


def test_save_load_round_trip_gives_identical_samples(restorer, tmp_path):
    restorer.save_pretrained(tmp_path / "artifact", metrics={"psnr": 1.0})
    loaded = Restorer.from_pretrained(tmp_path / "artifact")
    assert loaded.config == restorer.config
    assert Restorer.read_metrics(tmp_path / "artifact") == {"psnr": 1.0}
    lq = _inputs()
    a = sample(restorer, lq, INSTRUCTIONS, num_steps=3, eta=0.5, seeds=[1, 2, 3])
    b = sample(loaded, lq, INSTRUCTIONS, num_steps=3, eta=0.5, seeds=[1, 2, 3])
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.log_probs, b.log_probs)


def test_corrupt_or_foreign_artifacts_get_clear_errors(restorer, tmp_path):
    with pytest.raises(ArtifactError, match="config.json is missing"):
        Restorer.from_pretrained(tmp_path / "nothing")
    good = restorer.save_pretrained(tmp_path / "good")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"kind": "reward_model", "version": 1}))
    with pytest.raises(ArtifactError, match="'reward_model' model, not a 'restorer'"):
        Restorer.from_pretrained(foreign)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((good / "config.json").read_text())
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ArtifactError, match="corrupt"):
        Restorer.from_pretrained(corrupt)

    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Restorer.from_pretrained(corrupt)

    mismatched = tmp_path / "mismatched"
    Restorer(tiny_test_config(block_out_channels=(8, 16))).save_pretrained(mismatched)
    (mismatched / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(ArtifactError, match="does not match its config"):
        Restorer.from_pretrained(mismatched)
    assert issubclass(ArtifactError, ValueError)


def test_config_round_trips_and_rejects_unknown_fields():
    config = RestorerConfig()
    assert RestorerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown restorer config fields"):
        RestorerConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="must divide"):
        RestorerConfig(resolution=60)


def test_artifacts_saved_before_the_query_time_embedding_still_load(tmp_path):
    old = Restorer(tiny_test_config(query_time_embedding=False))
    old.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["query_time_embedding"]
    del config["predict_image_residual"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = Restorer.from_pretrained(tmp_path / "old")
    assert loaded.config.query_time_embedding is False
    # the UNet of an old artifact predicted the state itself
    assert loaded.config.predict_image_residual is False
