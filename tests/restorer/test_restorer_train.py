import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from restorer.model import Restorer
from restorer.sampling import sample
from restorer.train import TrainConfig, load_train_config, named_config, train, training_batch, training_pairs


def _config(**changes) -> TrainConfig:
    # constant learning rate, no validation mid-run: a resumed run must match an uninterrupted one
    base = dataclasses.replace(
        named_config("test"),
        warmup_steps=0,
        min_lr_ratio=1.0,
        validate_every=1000,
        checkpoint_every=3,
        crop_size=16,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_batches_are_a_pure_function_of_seed_and_step(faces):
    config = _config()
    pairs = training_pairs(config, faces)
    assert torch.equal(pairs.lq, training_pairs(config, faces).lq)
    assert not torch.equal(pairs.lq, pairs.hq)
    hq_a, lq_a, text_a = training_batch(config, pairs, step=5)
    hq_b, lq_b, text_b = training_batch(config, pairs, step=5)
    assert torch.equal(hq_a, hq_b) and torch.equal(lq_a, lq_b) and text_a == text_b
    hq_c, _, _ = training_batch(config, pairs, step=6)
    assert not torch.equal(hq_a, hq_c)
    assert all("restore the face" in t for t in text_a)


def test_resumed_training_matches_an_uninterrupted_run_and_writes_an_artifact(faces, tmp_path):
    straight = train(_config(max_steps=6), out_dir=tmp_path / "straight", faces=faces, progress=False)
    assert straight.steps == 6
    train(_config(max_steps=3), out_dir=tmp_path / "resumed", faces=faces, progress=False)
    resumed = train(_config(max_steps=6), out_dir=tmp_path / "resumed", faces=faces, progress=False)
    assert resumed.steps == 6
    weights_straight = load_file(str(tmp_path / "straight" / "model.safetensors"))
    weights_resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.allclose(weights_straight[k], weights_resumed[k], atol=1e-6) for k in weights_straight)

    metrics = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert {"val_psnr", "val_psnr_bicubic", "steps", "train_images_per_second"} <= set(metrics)
    assert list((tmp_path / "straight" / "validation").glob("*.png"))
    assert list((tmp_path / "straight" / "tensorboard").glob("events.out.tfevents.*"))
    restorer = Restorer.from_pretrained(tmp_path / "straight")
    lq = faces[:2]
    out = sample(restorer, lq, ["a", "b"], num_steps=2, seeds=[0, 1])
    assert out.images.shape == lq.shape


def test_training_configs_load_by_name_or_json_and_reject_mistakes(tmp_path):
    tiny = named_config("tiny")
    assert tiny.model.resolution == 64 and tiny.max_minutes is not None and tiny.max_minutes <= 15
    assert named_config("base").model.resolution >= 128
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"base": "tiny", "max_steps": 7, "model": {"use_integrator": False}}))
    custom = load_train_config(str(path))
    assert (
        custom.max_steps == 7
        and custom.model.use_integrator is False
        and custom.batch_size == tiny.batch_size
    )
    path.write_text(json.dumps({"max_stepz": 7}))
    with pytest.raises(ValueError, match="unknown training config fields"):
        load_train_config(str(path))
    with pytest.raises(ValueError, match="unknown training config"):
        load_train_config("huge")


def test_command_line_trains_the_test_config(tmp_path, capsys):
    from restorer.train import main

    main(["--config", "test", "--max-steps", "2", "--out", str(tmp_path / "run"), "--no-integrator"])
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :])["steps"] == 2
    restorer = Restorer.from_pretrained(tmp_path / "run")
    assert restorer.config.use_integrator is False
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2


def test_a_corrupt_checkpoint_stops_resuming_with_a_clear_error(faces, tmp_path):
    from restorer.artifacts import ArtifactError

    train(_config(max_steps=3), out_dir=tmp_path / "run", faces=faces, progress=False)
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("step_*")
    (checkpoint / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="corrupt or incomplete"):
        train(_config(max_steps=6), out_dir=tmp_path / "run", faces=faces, progress=False)
