"""Fixtures of the reward model tests (helpers live in tests/reward_model/toy.py)."""

from __future__ import annotations

import pytest
import torch

from reward_model.oracle import OracleAnnotator, _L1GradientDistance
from tests.reward_model.toy import ToyData, make_toy_data


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
