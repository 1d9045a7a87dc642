"""The torch device a job asked for, by name, checked before any model is built."""

from __future__ import annotations

import re

import torch

AUTO = ("", "auto")


def resolve_device(name: str | None) -> str:
    """``None`` / ``""`` / ``"auto"``: ``"cuda"`` when a GPU is visible, else ``"cpu"``; ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` as given. A CUDA device that is not there, or any other name, is a ``ValueError``: a job that
    asked for a GPU should fail at once rather than train for hours on the CPU."""
    if name is None or name.strip().lower() in AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = name.strip().lower()
    if device == "cpu":
        return device
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available on this machine")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA devices"
        )
    return device
