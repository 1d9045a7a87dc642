"""A human leaderboard: Bradley–Terry with ties (Davidson 1970) over model versions, with bootstrap intervals.

Pure numpy, no Django: the loop's selectors gather the judgments, this module fits them.

Davidson's model gives version i a strength π_i = exp(θ_i) and the ties one parameter ν = exp(η):

    P(i preferred to j) = π_i / D,   P(tie) = ν √(π_i π_j) / D,   D = π_i + π_j + ν √(π_i π_j).

`log D` is a log-sum-exp of three linear functions of (θ, η), so the log-likelihood is concave and Newton's
method converges in a few steps. A weak Gaussian prior (precision `prior_precision` on every θ and on η)
keeps the fit finite when a version never lost or never won, when the comparisons do not connect every version,
or when nobody said "tie"; it also centres the scores (Σθ = 0 at the optimum, as the likelihood ignores a common
shift). Scores are the centred log-strengths θ: a difference d means odds of e^d to 1 between the two
(ties aside).

Intervals: percentile bootstrap over judgments. The fit depends on the judgments only through the counts of
each (pair of versions, outcome) cell, so resampling N judgments with replacement is drawing those counts from
a multinomial with the observed shares, and all resamples are fitted at once (a batch of Newton steps).
The difference of two versions gets its own bootstrap interval (`Leaderboard.difference`), which is narrower
than what the two separate intervals suggest (their scores move together).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Outcome codes of `judgment_counts`: the first version preferred, the second, or a tie.
FIRST, SECOND, TIE = 0, 1, 2
# The three outcomes as linear functions of (θ_i, θ_j, η): log π_i, log π_j, log ν + (log π_i + log π_j) / 2.
_OUTCOME_MAP = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 1.0]])


@dataclass(frozen=True)
class VersionScore:
    version: Hashable
    score: float
    lower: float
    upper: float
    judgments: int
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class Leaderboard:
    """Versions best first; `samples[b, k]` is the centred score of `versions[k]` (order of the input) in
    bootstrap resample b."""

    versions: tuple[Hashable, ...]
    rows: tuple[VersionScore, ...]
    tie_strength: float  # ν
    judgments: int
    resamples: int
    seed: int
    samples: np.ndarray = field(repr=False)
    pair_judgments: dict[tuple[Hashable, Hashable], int] = field(repr=False, default_factory=dict)

    def score_of(self, version: Hashable) -> VersionScore:
        return next(row for row in self.rows if row.version == version)

    def judgments_between(self, first: Hashable, second: Hashable) -> int:
        """Judgments of pairs that compared these two versions directly."""
        return self.pair_judgments.get((first, second), 0) + self.pair_judgments.get((second, first), 0)

    def difference(
        self, first: Hashable, second: Hashable, *, level: float = 0.95
    ) -> tuple[float, float, float]:
        """score(first) − score(second) and its bootstrap interval (computed on the difference itself)."""
        i, j = self.versions.index(first), self.versions.index(second)
        point = self.score_of(first).score - self.score_of(second).score
        if self.samples.shape[0] == 0:
            return point, float("-inf"), float("inf")
        lower, upper = _percentiles(self.samples[:, i] - self.samples[:, j], level)
        return point, float(lower), float(upper)


def _percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2 * 100
    return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)


def judgment_counts(
    judgments: Sequence[tuple[Hashable, Hashable, int, int]],
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """(first version, second version, outcome code, count) rows → the versions (sorted by their str), the
    pairs of version indices (P, 2) with i < j, and the counts (P, 3) of [i preferred, j preferred, tie].
    Rows of one version against itself are left out (they say nothing of the order)."""
    versions = sorted({v for first, second, _, _ in judgments for v in (first, second)}, key=str)
    index = {v: k for k, v in enumerate(versions)}
    cells: dict[tuple[int, int], np.ndarray] = {}
    for first, second, outcome, count in judgments:
        i, j = index[first], index[second]
        if i == j or count <= 0:
            continue
        if i > j:
            i, j = j, i
            outcome = {FIRST: SECOND, SECOND: FIRST, TIE: TIE}[outcome]
        cells.setdefault((i, j), np.zeros(3))[outcome] += count
    pairs = np.array(sorted(cells), dtype=np.int64).reshape(-1, 2)
    counts = np.array([cells[(i, j)] for i, j in pairs.tolist()], dtype=np.float64).reshape(-1, 3)
    return versions, pairs, counts


def davidson_fit(
    pairs: np.ndarray,
    counts: np.ndarray,
    n_versions: int,
    *,
    prior_precision: float = 0.01,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum a posteriori θ (B, V) and η (B,) for a batch of count tables `counts` (B, P, 3) (or one, (P, 3)),
    by damped Newton steps; `pairs` (P, 2) holds the version indices of each row of the tables."""
    single = counts.ndim == 2
    counts = (counts[None] if single else counts).astype(np.float64)
    batch = counts.shape[0]
    dim = n_versions + 1  # θ, then η
    # One-hot map of each pair's local coordinates (θ_i, θ_j, η) into the full parameter vector.
    embed = np.zeros((len(pairs), 3, dim))
    embed[np.arange(len(pairs)), 0, pairs[:, 0]] = 1.0
    embed[np.arange(len(pairs)), 1, pairs[:, 1]] = 1.0
    embed[:, 2, n_versions] = 1.0
    # Each pair's outcome rows as linear functions of the full vector: (P, 3 outcomes, dim).
    design = np.einsum("ok,pkd->pod", _OUTCOME_MAP, embed)
    totals = counts.sum(axis=-1)  # (B, P)
    # The observed part of the gradient is constant: Σ counts × design.
    observed = np.einsum("bpo,pod->bd", counts, design)
    params = np.zeros((batch, dim))

    def objective(x: np.ndarray) -> np.ndarray:
        logits = np.einsum("pod,bd->bpo", design, x)
        log_d = np.logaddexp.reduce(logits, axis=-1)
        return (
            np.einsum("bpo,bpo->b", counts, logits)
            - np.einsum("bp,bp->b", totals, log_d)
            - 0.5 * prior_precision * (x**2).sum(-1)
        )

    current = objective(params)
    for _ in range(max_iter):
        logits = np.einsum("pod,bd->bpo", design, params)
        probs = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))  # (B, P, 3)
        mean_row = np.einsum("bpo,pod->bpd", probs, design)  # E[design row] per pair
        gradient = observed - np.einsum("bp,bpd->bd", totals, mean_row) - prior_precision * params
        second = np.einsum("bpo,pod,poe->bpde", probs, design, design) - np.einsum(
            "bpd,bpe->bpde", mean_row, mean_row
        )
        # (A whisker of ridge keeps the system solvable without a prior: the likelihood ignores a common shift.)
        hessian = np.einsum("bp,bpde->bde", totals, second) + max(prior_precision, 1e-9) * np.eye(dim)
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        # Damped: halve a step that would lower the objective (rare: the objective is concave).
        scale = np.ones(batch)
        for _ in range(30):
            trial = objective(params + scale[:, None] * step)
            worse = trial < current - 1e-12
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        params = params + scale[:, None] * step
        current = objective(params)
        if np.abs(scale[:, None] * step).max() < tol:
            break
    theta, eta = params[:, :n_versions], params[:, n_versions]
    theta = theta - theta.mean(axis=1, keepdims=True)
    return (theta[0], eta[0]) if single else (theta, eta)  # type: ignore[return-value]


def leaderboard_fit(
    judgments: Sequence[tuple[Hashable, Hashable, int, int]],
    *,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    prior_precision: float = 0.01,
) -> Leaderboard:
    """Fit the leaderboard on (first version, second version, outcome code, count) rows; intervals from
    `resamples` bootstrap resamples of the judgments (a fixed `seed`: the same data give the same board)."""
    versions, pairs, counts = judgment_counts(judgments)
    n_versions = len(versions)
    total = int(counts.sum())
    if n_versions == 0 or total == 0:
        return Leaderboard((), (), 0.0, 0, resamples, seed, np.zeros((0, 0)), {})
    theta, eta = davidson_fit(pairs, counts, n_versions, prior_precision=prior_precision)
    if resamples > 0:
        rng = np.random.default_rng(seed)
        flat = counts.reshape(-1)
        drawn = rng.multinomial(total, flat / flat.sum(), size=resamples).reshape(resamples, *counts.shape)
        samples, _ = davidson_fit(pairs, drawn, n_versions, prior_precision=prior_precision)
        lower, upper = _percentiles(samples, level)
    else:
        samples = np.zeros((0, n_versions))
        lower, upper = np.full(n_versions, -np.inf), np.full(n_versions, np.inf)
    wins, losses, ties = np.zeros(n_versions), np.zeros(n_versions), np.zeros(n_versions)
    for (i, j), (first, second, tied) in zip(pairs.tolist(), counts.tolist(), strict=True):
        wins[i] += first
        losses[i] += second
        wins[j] += second
        losses[j] += first
        ties[i] += tied
        ties[j] += tied
    rows = [
        VersionScore(
            version=versions[k],
            score=float(theta[k]),
            lower=float(lower[k]),
            upper=float(upper[k]),
            judgments=int(wins[k] + losses[k] + ties[k]),
            wins=int(wins[k]),
            losses=int(losses[k]),
            ties=int(ties[k]),
        )
        for k in range(n_versions)
    ]
    pair_judgments = {
        (versions[i], versions[j]): int(row.sum()) for (i, j), row in zip(pairs.tolist(), counts, strict=True)
    }
    return Leaderboard(
        versions=tuple(versions),
        rows=tuple(sorted(rows, key=lambda row: -row.score)),
        tie_strength=float(np.exp(eta)),
        judgments=total,
        resamples=resamples,
        seed=seed,
        samples=samples,
        pair_judgments=pair_judgments,
    )
