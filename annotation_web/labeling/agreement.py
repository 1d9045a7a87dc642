"""Agreement statistics over nominal judgments (a, b, tie, both_bad are four categories)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

Unit = TypeVar("Unit", bound=Hashable)
Coder = TypeVar("Coder", bound=Hashable)


def krippendorff_alpha_nominal(units: Mapping[Unit, Iterable[str]]) -> float | None:
    """Krippendorff's alpha for nominal data; `units` maps a unit (a pair) to the values coders gave it.

    Units with fewer than two values carry no information on agreement and are left out. Returns None when
    no unit is pairable or when every value is the same category (alpha is undefined there).
    """
    coincidences: defaultdict[tuple[str, str], float] = defaultdict(float)
    for values in units.values():
        counts = Counter(values)
        m = sum(counts.values())
        if m < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidences[(c, k)] += pairs / (m - 1)
    n_total = sum(coincidences.values())
    if n_total <= 1:
        return None
    marginals: defaultdict[str, float] = defaultdict(float)
    for (c, _), value in coincidences.items():
        marginals[c] += value
    observed_disagreement = sum(v for (c, k), v in coincidences.items() if c != k) / n_total
    expected_disagreement = sum(
        marginals[c] * marginals[k] for c in marginals for k in marginals if c != k
    ) / (n_total * (n_total - 1))
    if expected_disagreement == 0:
        return None
    return 1.0 - observed_disagreement / expected_disagreement


def agreement_with_majority(judgments: Iterable[tuple[Unit, Coder, str]]) -> dict[Coder, dict]:
    """Per annotator: how often their answer equals the majority of the *other* annotators of the pair.

    `judgments` are (pair, annotator, outcome). Pairs where the others have no strict majority are not counted.
    """
    by_pair: dict[Unit, list[tuple[Coder, str]]] = {}
    for pair, annotator, outcome in judgments:
        by_pair.setdefault(pair, []).append((annotator, outcome))
    result: dict[Coder, dict] = {}
    for entries in by_pair.values():
        for annotator, outcome in entries:
            others = Counter(o for a, o in entries if a != annotator)
            if not others:
                continue
            (top, top_count), *rest = others.most_common()
            if rest and rest[0][1] == top_count:
                continue
            stats = result.setdefault(annotator, {"compared": 0, "agreed": 0})
            stats["compared"] += 1
            stats["agreed"] += int(outcome == top)
    for stats in result.values():
        stats["rate"] = stats["agreed"] / stats["compared"] if stats["compared"] else None
    return result
