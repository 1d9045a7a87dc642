"""Fixtures of the reward model tests (helpers live in tests/reward_model/toy.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from reward_model.oracle import OracleAnnotator, _L1GradientDistance
from tests.reward_model.toy import ToyData, make_toy_data

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmark_module(stem: str):
    """A benchmark script imported as a module (benchmarks/ is not a package), removed again after its tests."""
    spec = importlib.util.spec_from_file_location(f"{stem}_under_test", BENCHMARKS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def rl_gain():
    yield from _benchmark_module("rl_gain")


@pytest.fixture(scope="module")
def reward_learning():
    yield from _benchmark_module("reward_learning")


@pytest.fixture(scope="session")
def toy_data() -> ToyData:
    return make_toy_data(40)


@pytest.fixture(scope="session")
def toy_oracle_factory():
    def factory(kind: str, seed: int = 0) -> OracleAnnotator:
        return OracleAnnotator(
            kind,
            temperature=0.02,
            tie_margin=0.005,
            both_bad_threshold=10.0,
            seed=seed,
            distance=_L1GradientDistance(),
        )

    return factory


@pytest.fixture(autouse=True)
def single_thread():
    """These tests run many tiny ops; on the shared 2-core machine one thread is faster than two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
