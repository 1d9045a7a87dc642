"""Simulated judgments: an oracle annotator's answers on candidate pairs, as rows of the preference export.

The benchmarks (``reward_learning``, ``rl_gain``) label candidates with :class:`reward_model.oracle.OracleAnnotator`
instead of people. They measure each candidate's distance to its HQ once, then ask the oracle about pairs;
:func:`simulated_judgments` turns those answers into the same :class:`JudgmentRow` objects the web exports, so
``reward_model.train`` sees simulated and real labels alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from reward_model.export import JudgmentRow, Side
from reward_model.oracle import OracleAnnotator
from reward_model.selection import CandidatePair

# every simulated judgment carries the same timestamp, so that a run's export is the same file every time
SIMULATED_AT = "2026-11-26T00:00:00Z"


def simulated_judgments(
    pairs: Iterable[CandidatePair],
    oracle: OracleAnnotator,
    *,
    distances: Mapping[str, float],
    lq_keys: Mapping[str, str],
    annotators: Sequence[str],
    rng: np.random.Generator,
    first_annotator: int = 0,
    model: str | None = None,
) -> list[JudgmentRow]:
    """One judgment of each pair (a pair listed twice is judged twice: a repeat is a new label).

    ``distances`` maps every candidate key to its distance to the HQ, ``lq_keys`` every input id to the key of its
    LQ. Judgment ``n`` is credited to ``annotators[(first_annotator + n) % len(annotators)]`` (several ids of the
    one oracle: its noise, many names), and its screen sides are drawn from ``rng``, one draw per judgment, so
    that a side bias of the oracle acts on what was shown left. ``model`` is recorded as both candidates' model.
    """
    if not annotators:
        raise ValueError("simulated judgments need at least one annotator id")
    rows = []
    for n, pair in enumerate(pairs):
        shown_left: Side = "a" if rng.random() < 0.5 else "b"
        outcome = oracle.judge_distances(distances[pair.a_key], distances[pair.b_key], shown_left=shown_left)
        rows.append(
            JudgmentRow(
                pair_id=f"{pair.a_key}|{pair.b_key}",
                input_id=pair.input_id,
                lq_key=lq_keys[pair.input_id],
                a_key=pair.a_key,
                b_key=pair.b_key,
                outcome=outcome,
                annotator_id=annotators[(first_annotator + n) % len(annotators)],
                is_gold=False,
                shown_left=shown_left,
                duration_ms=None,
                created_at=SIMULATED_AT,
                a_model=model,
                b_model=model,
                a_seed=None,
                b_seed=None,
            )
        )
    return rows
