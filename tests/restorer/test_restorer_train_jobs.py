"""What a training job needs of ``restorer.train.train``: a stop on request that a rerun resumes from, log lines,
and a device by name."""

import dataclasses
import itertools

import pytest
import torch
from safetensors.torch import load_file

from restorer.artifacts import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE
from restorer.train import named_config, train


def _config(**changes):
    return dataclasses.replace(
        named_config("test"), max_steps=6, checkpoint_every=3, validate_every=1000, crop_size=16, **changes
    )


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_a_run_stopped_on_request_resumes_to_the_uninterrupted_result(faces, tmp_path):
    train(_config(), out_dir=tmp_path / "straight", faces=faces, progress=False, device="cpu")

    calls = itertools.count()
    lines: list[str] = []
    stopped = train(
        _config(),
        out_dir=tmp_path / "split",
        faces=faces,
        progress=False,
        should_stop=lambda: next(calls) >= 4,  # asked before every step: stop before step 5
        on_log=lines.append,
        device="cpu",
    )
    assert stopped.stopped and stopped.steps == 4
    assert stopped.metrics == {"steps": 4.0, "max_steps": 6.0}
    assert not any((tmp_path / "split" / name).exists() for name in (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE))
    assert (tmp_path / "split" / "checkpoints" / "step_00000004" / "state.json").is_file()
    assert lines == ["stopped on request at step 4 of 6; rerun to resume from the checkpoint"]

    lines.clear()
    resumed = train(_config(), out_dir=tmp_path / "split", faces=faces, progress=False, on_log=lines.append)
    assert not resumed.stopped and resumed.steps == 6
    assert lines == ["resumed from checkpoint at step 4 of 6"]
    straight = load_file(str(tmp_path / "straight" / WEIGHTS_FILE))
    split = load_file(str(tmp_path / "split" / WEIGHTS_FILE))
    assert straight.keys() == split.keys()
    assert all(torch.allclose(straight[k], split[k], atol=1e-6) for k in straight)


def test_an_unknown_or_missing_device_fails_before_training(faces, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        train(_config(), out_dir=tmp_path, faces=faces, progress=False, device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(_config(), out_dir=tmp_path, faces=faces, progress=False, device="cuda")
    assert not (tmp_path / "checkpoints").exists()
