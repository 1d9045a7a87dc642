import json

import pytest

from reward_model.errors import ExportFormatError
from reward_model.export import EXPORT_SCHEMA_VERSION, JudgmentRow, read_judgments, write_judgments


def make_row(**overrides) -> dict:
    row = {
        "pair_id": "p1",
        "input_id": "in1",
        "lq_key": "lq/in1.png",
        "a_key": "samples/m/in1/0.png",
        "b_key": "samples/m/in1/1.png",
        "outcome": "a",
        "annotator_id": "ann1",
        "is_gold": False,
        "shown_left": "b",
        "duration_ms": 1234,
        "created_at": "2026-11-26T09:00:00Z",
        "a_model": "m",
        "b_model": "m",
        "a_seed": 0,
        "b_seed": 1,
        "schema_version": EXPORT_SCHEMA_VERSION,
    }
    row.update(overrides)
    return row


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_round_trip_keeps_every_field(tmp_path):
    rows = [
        JudgmentRow(**make_row()),
        JudgmentRow(**make_row(pair_id="p2", outcome="both_bad", a_model=None)),
    ]
    path = tmp_path / "export.jsonl"
    assert write_judgments(path, rows) == 2
    assert read_judgments(path) == rows


def test_blank_lines_are_allowed(tmp_path):
    path = write_lines(
        tmp_path / "e.jsonl", [json.dumps(make_row()), "", json.dumps(make_row(outcome="tie"))]
    )
    assert [row.outcome for row in read_judgments(path)] == ["a", "tie"]


def test_empty_export_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ExportFormatError, match="no judgments"):
        read_judgments(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ExportFormatError, match="no such export"):
        read_judgments(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps(make_row(outcome="skip")), "outcome 'skip'"),
        (json.dumps(make_row(shown_left="middle")), "shown_left"),
        (json.dumps(make_row(is_gold="yes")), "is_gold"),
        (json.dumps(make_row(duration_ms="12")), "duration_ms"),
        (json.dumps(make_row(a_key="")), "a_key"),
        (json.dumps(make_row(b_key="samples/m/in1/0.png")), "same image"),
        (
            json.dumps({k: v for k, v in make_row().items() if k != "annotator_id"}),
            "missing field.*annotator_id",
        ),
        (json.dumps({k: v for k, v in make_row().items() if k != "schema_version"}), "schema_version"),
        (json.dumps(make_row(schema_version=EXPORT_SCHEMA_VERSION + 1)), "not supported"),
    ],
)
def test_malformed_line_names_its_line_number(tmp_path, bad_line, message):
    path = write_lines(tmp_path / "e.jsonl", [json.dumps(make_row()), bad_line])
    with pytest.raises(ExportFormatError, match=message) as raised:
        read_judgments(path)
    assert "line 2" in str(raised.value)
    assert isinstance(raised.value, ValueError)
