"""Choosing which pairs of candidates to send to annotators: the ones that teach the reward model most.

Most pairs are chosen by **disagreement**: the BALD score of the ensemble (see :mod:`reward_model.ensemble`),
the information a label is expected to carry about the model. Where the model has a single member, BALD is
zero everywhere and the **Bradley–Terry uncertainty** ``p (1 - p)`` is used instead. A share of the budget
(``random_fraction``) is always drawn uniformly at random, so that accuracy measured on those labels stays
an unbiased estimate over all pairs, and so that the model keeps seeing pairs it is (wrongly) sure about.
Before any reward model exists every pair is random (``cold_start``). A pair already judged ``n`` times has
its score divided by ``n + 1``, so a pair is asked again only if it stays much more informative than the
rest. Every selected pair records its ``reason`` and ``score``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from reward_model.ensemble import RewardEnsemble, pair_statistics

Reason = Literal["disagreement", "bt_uncertainty", "random", "cold_start"]


@dataclass(frozen=True)
class CandidatePair:
    input_id: str
    a_key: str
    b_key: str


@dataclass(frozen=True)
class SelectedPair:
    input_id: str
    a_key: str
    b_key: str
    reason: Reason
    score: float  # the acquisition score (BALD or p(1-p), after the repeat discount); 0 for random picks
    p_a_beats_b: float | None  # the ensemble's prediction when the pair was chosen, None at cold start
    spread: float | None


@dataclass(frozen=True)
class CandidateSet:
    """K candidates restored from one degraded input: ``candidates`` maps storage key -> image [3, H, W]."""

    input_id: str
    lq: Tensor
    candidates: Mapping[str, Tensor]


def all_pairs(candidate_keys: Mapping[str, Sequence[str]]) -> list[CandidatePair]:
    """Every unordered pair of candidates of the same input; ``candidate_keys`` maps input id -> keys."""
    return [
        CandidatePair(input_id, a_key, b_key)
        for input_id, keys in candidate_keys.items()
        for a_key, b_key in itertools.combinations(keys, 2)
    ]


def select_pairs_from_rewards(
    pairs: Sequence[CandidatePair],
    member_rewards: Mapping[str, Tensor] | None,
    *,
    budget: int,
    random_fraction: float = 0.2,
    seed: int = 0,
    label_counts: Mapping[tuple[str, str], int] | None = None,
) -> list[SelectedPair]:
    """Pick ``budget`` distinct pairs given each candidate's member rewards ``[K]`` (keyed by candidate key).

    ``member_rewards=None`` means no reward model yet: all picks are random (``cold_start``).
    ``label_counts`` maps ``(a_key, b_key)`` (either order) to how many judgments the pair already has.
    """
    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
    rng = np.random.default_rng(seed)
    budget = min(budget, len(pairs))
    if budget <= 0:
        return []
    if member_rewards is None:
        order = rng.permutation(len(pairs))[:budget]
        return [
            SelectedPair(pairs[i].input_id, pairs[i].a_key, pairs[i].b_key, "cold_start", 0.0, None, None)
            for i in order
        ]

    rewards_a = torch.stack([member_rewards[pair.a_key] for pair in pairs])
    rewards_b = torch.stack([member_rewards[pair.b_key] for pair in pairs])
    stats = pair_statistics(rewards_a, rewards_b)
    p, spread = stats["p_a_beats_b"], stats["spread"]
    if rewards_a.shape[-1] > 1:
        reason: Reason = "disagreement"
        scores = stats["bald"]
    else:
        reason = "bt_uncertainty"
        scores = p * (1 - p)
    counts = label_counts or {}
    repeats = torch.tensor(
        [counts.get((pair.a_key, pair.b_key), 0) + counts.get((pair.b_key, pair.a_key), 0) for pair in pairs],
        dtype=scores.dtype,
    )
    scores = scores / (1 + repeats)

    n_random = int(round(budget * random_fraction))
    n_informative = budget - n_random
    # Ties in the score are broken at random, not by position, so no input is favoured by its order.
    jitter = torch.from_numpy(rng.random(len(pairs))).to(scores.dtype) * 1e-9
    informative = torch.argsort(scores + jitter, descending=True)[:n_informative].tolist()
    chosen = set(informative)
    remaining = np.array([i for i in range(len(pairs)) if i not in chosen], dtype=np.int64)
    random_picks = rng.choice(remaining, size=min(n_random, len(remaining)), replace=False).tolist()

    selected = [
        SelectedPair(
            pairs[i].input_id,
            pairs[i].a_key,
            pairs[i].b_key,
            reason,
            float(scores[i]),
            float(p[i]),
            float(spread[i]),
        )
        for i in informative
    ]
    selected += [
        SelectedPair(
            pairs[i].input_id, pairs[i].a_key, pairs[i].b_key, "random", 0.0, float(p[i]), float(spread[i])
        )
        for i in random_picks
    ]
    return selected


def select_pairs(
    candidate_sets: Sequence[CandidateSet],
    ensemble: RewardEnsemble | None,
    *,
    budget: int,
    random_fraction: float = 0.2,
    seed: int = 0,
    label_counts: Mapping[tuple[str, str], int] | None = None,
    batch_size: int = 64,
) -> list[SelectedPair]:
    """Choose ``budget`` pairs among all within-input pairs of ``candidate_sets`` (see module docstring)."""
    keys = {candidate_set.input_id: list(candidate_set.candidates) for candidate_set in candidate_sets}
    pairs = all_pairs(keys)
    if ensemble is None:
        return select_pairs_from_rewards(
            pairs, None, budget=budget, random_fraction=random_fraction, seed=seed
        )
    flat = [
        (candidate_set.lq, key, image)
        for candidate_set in candidate_sets
        for key, image in candidate_set.candidates.items()
    ]
    member_rewards: dict[str, Tensor] = {}
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        lq = torch.stack([item[0] for item in chunk])
        x = torch.stack([item[2] for item in chunk])
        for (_, key, _), rewards in zip(chunk, ensemble.member_rewards(lq, x)):
            member_rewards[key] = rewards
    return select_pairs_from_rewards(
        pairs,
        member_rewards,
        budget=budget,
        random_fraction=random_fraction,
        seed=seed,
        label_counts=label_counts,
    )
