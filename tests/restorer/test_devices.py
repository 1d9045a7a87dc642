import pytest
import torch

from restorer.devices import resolve_device


@pytest.mark.parametrize("name", [None, "", "auto", " AUTO "])
def test_auto_picks_the_gpu_when_there_is_one(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(name) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(name) == "cuda"


def test_named_devices_are_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == "cpu" and resolve_device("CPU") == "cpu"
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="has 2 CUDA devices"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "mps", "cuda:", "cuda:x", "cpu:0", "tpu"])
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(name)
