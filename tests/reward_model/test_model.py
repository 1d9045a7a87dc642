import json

import pytest
import torch

from restorer.artifacts import ArtifactError
from reward_model.model import CONFIG_PRESETS, RewardConfig, RewardModel

TINY = RewardConfig(resolution=16, channels=(4, 8), ensemble_size=2)


def images(n=3, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator) * 2 - 1


def test_reward_is_one_scalar_per_image_and_members_average_to_it():
    model = RewardModel(TINY)
    lq, x = images(), images(seed=1)
    members = model.member_rewards(lq, x)
    assert members.shape == (3, 2)
    assert torch.allclose(model(lq, x), members.mean(1))


def test_inputs_of_another_size_are_resized():
    model = RewardModel(TINY)
    assert model(images(size=40), images(size=40, seed=1)).shape == (3,)


def test_reward_depends_on_the_lq_input_unless_disabled():
    x = images(seed=1)
    with_lq = RewardModel(TINY)
    assert not torch.allclose(with_lq(images(seed=2), x), with_lq(images(seed=3), x))
    without_lq = RewardModel(RewardConfig(resolution=16, channels=(4, 8), ensemble_size=2, use_lq=False))
    assert torch.allclose(without_lq(images(seed=2), x), without_lq(images(seed=3), x))


def test_bad_shapes_are_refused():
    model = RewardModel(TINY)
    with pytest.raises(ValueError, match="candidates"):
        model(images(2), torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="does not match"):
        model(images(2), images(3))


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="ensemble_size"):
        RewardConfig(ensemble_size=0)


def test_save_and_load_gives_the_same_rewards(tmp_path):
    model = RewardModel(TINY)
    model.save_pretrained(tmp_path / "artifact", metrics={"val_pairwise_accuracy": 0.8})
    assert {p.name for p in (tmp_path / "artifact").iterdir()} == {
        "config.json",
        "model.safetensors",
        "metrics.json",
    }
    loaded = RewardModel.from_pretrained(tmp_path / "artifact")
    assert loaded.config == TINY
    lq, x = images(), images(seed=1)
    assert torch.allclose(loaded(lq, x), model.eval()(lq, x))
    assert json.loads((tmp_path / "artifact" / "metrics.json").read_text())["val_pairwise_accuracy"] == 0.8


def test_presets_build():
    for config in CONFIG_PRESETS.values():
        assert RewardModel(config).config == config


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="no config.json"):
        RewardModel.from_pretrained(tmp_path)


def test_corrupt_weights_are_a_clear_error(tmp_path):
    RewardModel(TINY).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ArtifactError, match="not a readable safetensors"):
        RewardModel.from_pretrained(tmp_path)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    RewardModel(TINY).save_pretrained(tmp_path)
    bigger = RewardConfig(resolution=16, channels=(4, 8, 16), ensemble_size=2)
    (tmp_path / "config.json").write_text(json.dumps(bigger.to_dict()))
    with pytest.raises(ArtifactError, match="do not match"):
        RewardModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ('{"kind": "restorer", "version": 1}', "kind is 'restorer'"),
        ("{not json", "not valid JSON"),
        ('{"kind": "reward_model", "version": 99}', "version 99"),
        ('{"kind": "reward_model", "version": 1, "colour": "red"}', "unknown field"),
    ],
)
def test_foreign_or_broken_config_is_a_clear_error(tmp_path, config_text, message):
    RewardModel(TINY).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(config_text)
    with pytest.raises(ArtifactError, match=message):
        RewardModel.from_pretrained(tmp_path)


def test_residual_input_feeds_the_change_to_the_lq_as_three_more_channels():
    config = RewardConfig(resolution=16, channels=(4, 8), ensemble_size=2, residual_input=True)
    model = RewardModel(config)
    lq, x = images(), images(seed=1)
    inputs = model._encoder_input(lq, x)
    assert inputs.shape[1] == 9
    assert torch.equal(inputs[:, 6:], x - lq)
    assert model.members[0].features[0].in_channels == 9
    with pytest.raises(ValueError, match="residual_input needs use_lq"):
        RewardConfig(use_lq=False, residual_input=True)


def test_group_norm_normalises_every_convolution_of_every_member():
    plain = RewardModel(TINY)
    normed = RewardModel(RewardConfig(resolution=16, channels=(4, 8), ensemble_size=2, group_norm=True))
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in normed.modules())
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in normed.modules()) == convs == 6
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in plain.modules())
    # a normalised net's output does not depend on the scale of its first layer's weights
    lq, x = images(), images(seed=1)
    before = normed.eval()(lq, x)
    with torch.no_grad():
        for member in normed.members:
            member.features[0].weight.mul_(7.0)
            member.features[0].bias.mul_(7.0)
    assert torch.allclose(normed(lq, x), before, atol=1e-4)


def test_artifacts_saved_before_the_new_options_load_as_plain_nets(tmp_path):
    model = RewardModel(TINY)
    model.save_pretrained(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    data = json.loads(config_path.read_text())
    del data["residual_input"], data["group_norm"]
    config_path.write_text(json.dumps(data))
    loaded = RewardModel.from_pretrained(tmp_path / "old")
    assert not loaded.config.residual_input and not loaded.config.group_norm
    lq, x = images(), images(seed=1)
    assert torch.allclose(loaded(lq, x), model.eval()(lq, x))


def test_presets_use_the_normalised_residual_encoder():
    assert all(config.group_norm and config.residual_input for config in CONFIG_PRESETS.values())


def test_reward_models_and_restorers_share_one_artifact_mechanism(tmp_path):
    from restorer.model import Restorer, tiny_test_config

    RewardModel(TINY).save_pretrained(tmp_path / "reward")
    Restorer(tiny_test_config(block_out_channels=(8, 16))).save_pretrained(tmp_path / "restorer")
    # one error type, whichever model reads whichever artifact
    with pytest.raises(ArtifactError, match="describes a 'restorer' model, not a 'reward_model' artifact"):
        RewardModel.from_pretrained(tmp_path / "restorer")
    with pytest.raises(ArtifactError, match="describes a 'reward_model' model, not a 'restorer' artifact"):
        Restorer.from_pretrained(tmp_path / "reward")
    config = json.loads((tmp_path / "reward" / "config.json").read_text())
    assert (config["kind"], config["version"], config["seed"]) == ("reward_model", 1, TINY.seed)
