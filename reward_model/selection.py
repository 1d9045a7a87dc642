"""Choosing which pairs of candidates to send to annotators: the ones that teach the reward model most.

Most pairs are chosen by **disagreement**: the BALD score of the ensemble (see :mod:`reward_model.ensemble`),
the information a label is expected to carry about the model. Where the model has a single member, BALD is
zero everywhere and the **Bradley–Terry uncertainty** ``p (1 - p)`` is used instead. A share of the budget
(``random_fraction``) is always drawn uniformly at random, so that accuracy measured on those labels stays
an unbiased estimate over all pairs, and so that the model keeps seeing pairs it is (wrongly) sure about.
Before any reward model exists every pair is random (``cold_start``). A pair already judged ``n`` times has
its score divided by ``n + 1``, so a pair is asked again only if it stays much more informative than the
rest. ``max_per_input`` spreads a batch over inputs: at most that many informative pairs of one input per
call (the best of each input first), because pairs of the same input share candidates and so largely
teach the same thing, and a batch that piles onto the few inputs the model is least sure of wastes labels.
Every selected pair records its ``reason`` and ``score``.

``acquisition`` names the score of the informative picks (:data:`ACQUISITIONS`):

- ``bald``: the ensemble's BALD (mutual information of the label and the members), the default;
- ``entropy``: the binary entropy of the mean preference ``H(mean p)`` (closeness to a coin flip, whatever
  the members say; what a single model's uncertainty gives, but from the ensemble mean);
- ``information``: BALD times ``4 mean_p (1 - mean_p)``, disagreement where the mean preference is also
  close to 0.5, so that a pair the members merely rank with different confidence (all sure a wins, by
  different margins) does not outrank a pair they truly split on.

:class:`SelectionConfig` bundles these options with the loop's cold start, and :data:`SELECTION_PRESETS`
names the measured ones (``benchmarks/reward_learning.py`` compares them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from reward_model.ensemble import RewardEnsemble, binary_entropy, pair_statistics

Reason = Literal["disagreement", "bt_uncertainty", "random", "cold_start"]
Acquisition = Literal["bald", "entropy", "information"]
ACQUISITIONS: tuple[str, ...] = get_args(Acquisition)


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


@dataclass(frozen=True)
class SelectionConfig:
    """How an active-learning loop chooses pairs: the options of :func:`select_pairs_from_rewards` plus the loop's
    own. ``cold_start``: the share of the first round's labels drawn at random before any model is trained;
    ``spread``: informative picks per input per round at most ``spread`` times the even share (0: no cap)."""

    acquisition: Acquisition = "bald"
    random_fraction: float = 0.2
    spread: float = 2.0
    cold_start: float = 0.5

    def __post_init__(self) -> None:
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(
                f"unknown acquisition {self.acquisition!r}; expected one of {', '.join(ACQUISITIONS)}"
            )
        if not 0.0 <= self.random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction}")
        if self.spread < 0:
            raise ValueError(f"spread must be non-negative, got {self.spread}")
        if not 0.0 < self.cold_start <= 1.0:
            raise ValueError(f"cold_start must be in (0, 1], got {self.cold_start}")

    def max_per_input(self, new_pairs: int, n_inputs: int) -> int | None:
        """The per-input cap of a round of ``new_pairs`` over ``n_inputs`` inputs (``None``: no cap)."""
        if self.spread <= 0 or n_inputs <= 0:
            return None
        return max(1, math.ceil(self.spread * new_pairs / n_inputs))


# The measured configurations (benchmarks/results/reward_learning.txt); "bald" is what the loop used first.
SELECTION_PRESETS: dict[str, SelectionConfig] = {
    "bald": SelectionConfig(),
    # BALD damped where the mean preference is far from 0.5 (fewer easy picks). On the benchmark's graded pool it
    # beat random pairs drawn through the same loop by +2.3 / +2.5 points at 250 / 500 judgments (median of 5
    # seeds), BALD by +2.1 / +2.0 (3 seeds): both short of +3 (benchmarks/results/reward_learning.txt).
    "small_budget": SelectionConfig(acquisition="information"),
}


def selection_preset(name: str) -> SelectionConfig:
    if name not in SELECTION_PRESETS:
        raise ValueError(f"unknown selection preset {name!r}; expected one of {', '.join(SELECTION_PRESETS)}")
    return SELECTION_PRESETS[name]


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
    max_per_input: int | None = None,
    acquisition: Acquisition | str = "bald",
) -> list[SelectedPair]:
    """Pick ``budget`` distinct pairs given each candidate's member rewards ``[K]`` (keyed by candidate key).

    ``member_rewards=None`` means no reward model yet: all picks are random (``cold_start``).
    ``label_counts`` maps ``(a_key, b_key)`` (either order) to how many judgments the pair already has.
    ``max_per_input`` caps the informative picks per input (``None``: no cap); when the cap leaves the budget
    short, the best of the capped-out pairs fill it. ``acquisition``: the informative score (module docstring);
    a single-member model always uses ``p (1 - p)``.
    """
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; expected one of {', '.join(ACQUISITIONS)}")
    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
    if max_per_input is not None and max_per_input < 1:
        raise ValueError(f"max_per_input must be at least 1, got {max_per_input}")
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
        if acquisition == "bald":
            scores = stats["bald"]
        elif acquisition == "entropy":
            scores = binary_entropy(p)
        else:
            scores = stats["bald"] * 4 * p * (1 - p)
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
    ranked = torch.argsort(scores + jitter, descending=True).tolist()
    if max_per_input is None:
        informative = ranked[:n_informative]
    else:
        per_input: dict[str, int] = {}
        informative, overflow = [], []
        for i in ranked:
            if len(informative) == n_informative:
                break
            taken = per_input.get(pairs[i].input_id, 0)
            if taken < max_per_input:
                per_input[pairs[i].input_id] = taken + 1
                informative.append(i)
            else:
                overflow.append(i)
        informative += overflow[: n_informative - len(informative)]
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
    max_per_input: int | None = None,
    acquisition: Acquisition | str = "bald",
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
        max_per_input=max_per_input,
        acquisition=acquisition,
    )
