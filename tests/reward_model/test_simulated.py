"""Simulated judgments: an oracle's answers on candidate pairs become export rows the trainer can read."""

import numpy as np
import pytest

from reward_model.export import read_judgments, write_judgments
from reward_model.oracle import OracleAnnotator, _L1GradientDistance
from reward_model.selection import CandidatePair
from reward_model.simulated import simulated_judgments

DISTANCES = {"face0/good": 0.1, "face0/bad": 0.9, "face1/good": 0.2, "face1/bad": 0.8}
LQ_KEYS = {"face0": "face0/lq.png", "face1": "face1/lq.png"}
PAIRS = [
    CandidatePair("face0", "face0/good", "face0/bad"),
    CandidatePair("face1", "face1/bad", "face1/good"),
    CandidatePair("face0", "face0/good", "face0/bad"),  # listed twice: judged twice
]


def careful_oracle(kind: str = "reliable") -> OracleAnnotator:
    return OracleAnnotator(
        kind,
        temperature=1e-3,
        tie_margin=1e-4,
        both_bad_threshold=10.0,
        seed=0,
        distance=_L1GradientDistance(),
    )


def judgments(oracle, **overrides):
    settings = {
        "distances": DISTANCES,
        "lq_keys": LQ_KEYS,
        "annotators": ["ann0", "ann1"],
        "rng": np.random.default_rng(0),
        "model": "bench",
    }
    return simulated_judgments(PAIRS, oracle, **{**settings, **overrides})


def test_every_pair_gets_the_oracles_answer_as_an_export_row(tmp_path):
    rows = judgments(careful_oracle())
    assert [row.outcome for row in rows] == ["a", "b", "a"]  # the candidate closer to the HQ wins
    assert [row.annotator_id for row in rows] == ["ann0", "ann1", "ann0"]
    assert [row.lq_key for row in rows] == ["face0/lq.png", "face1/lq.png", "face0/lq.png"]
    assert all(row.a_model == row.b_model == "bench" and not row.is_gold for row in rows)
    # the rows are valid preference export rows: they survive the strict reader
    write_judgments(tmp_path / "export.jsonl", rows)
    assert read_judgments(tmp_path / "export.jsonl") == rows


def test_simulated_judgments_are_repeatable_and_draw_the_screen_sides_from_the_rng():
    first = judgments(careful_oracle("left_biased"))
    again = judgments(careful_oracle("left_biased"))
    assert first == again
    many = simulated_judgments(
        PAIRS * 20,
        careful_oracle(),
        distances=DISTANCES,
        lq_keys=LQ_KEYS,
        annotators=[f"ann{i}" for i in range(5)],
        rng=np.random.default_rng(1),
        first_annotator=3,
    )
    assert {row.shown_left for row in many} == {"a", "b"}
    assert many[0].annotator_id == "ann3" and many[2].annotator_id == "ann0"  # the rota continues at 3
    with pytest.raises(ValueError, match="at least one annotator"):
        judgments(careful_oracle(), annotators=[])
