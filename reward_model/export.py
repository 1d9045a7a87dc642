"""Reader and writer for the preference export: JSONL, one judgment a line (docs/contracts.md, "Preference export").

Every row carries ``schema_version``. The reader is strict: an empty file, a line that is not a JSON
object, a missing or mistyped field, an unknown outcome or a newer schema version raises
:class:`ExportFormatError` naming the file and line, because silently training on half-parsed judgments
is worse than refusing to train.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from reward_model.errors import ExportFormatError

EXPORT_SCHEMA_VERSION = 1

Outcome = Literal["a", "b", "tie", "both_bad"]
Side = Literal["a", "b"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
SIDES: tuple[str, ...] = get_args(Side)


@dataclass(frozen=True)
class JudgmentRow:
    """One exported judgment: annotator ``annotator_id`` compared candidates ``a_key`` and ``b_key``
    (storage keys of PNGs) restored from ``lq_key``, and answered ``outcome``."""

    pair_id: str
    input_id: str
    lq_key: str
    a_key: str
    b_key: str
    outcome: Outcome
    annotator_id: str
    is_gold: bool
    shown_left: Side
    duration_ms: int | None
    created_at: str
    a_model: str | None
    b_model: str | None
    a_seed: int | None
    b_seed: int | None
    schema_version: int = EXPORT_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


_STRING_FIELDS = ("pair_id", "input_id", "lq_key", "a_key", "b_key", "annotator_id", "created_at")
_OPTIONAL_STRING_FIELDS = ("a_model", "b_model")
_OPTIONAL_INT_FIELDS = ("duration_ms", "a_seed", "b_seed")


def _parse_row(record: Any, where: str) -> JudgmentRow:
    if not isinstance(record, dict):
        raise ExportFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ExportFormatError(f"{where}: missing or non-integer 'schema_version'")
    if version > EXPORT_SCHEMA_VERSION or version < 1:
        raise ExportFormatError(
            f"{where}: schema_version {version} is not supported (this reader knows 1..{EXPORT_SCHEMA_VERSION})"
        )
    expected = {f.name for f in fields(JudgmentRow)}
    missing = sorted(expected - record.keys())
    if missing:
        raise ExportFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    for name in _STRING_FIELDS:
        if not isinstance(record[name], str) or not record[name]:
            raise ExportFormatError(
                f"{where}: field '{name}' must be a non-empty string, got {record[name]!r}"
            )
    for name in _OPTIONAL_STRING_FIELDS:
        if record[name] is not None and not isinstance(record[name], str):
            raise ExportFormatError(f"{where}: field '{name}' must be a string or null, got {record[name]!r}")
    for name in _OPTIONAL_INT_FIELDS:
        value = record[name]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ExportFormatError(f"{where}: field '{name}' must be an integer or null, got {value!r}")
    if record["outcome"] not in OUTCOMES:
        raise ExportFormatError(
            f"{where}: outcome {record['outcome']!r} is not one of {', '.join(OUTCOMES)}"
            " (skips are not exported as preferences)"
        )
    if record["shown_left"] not in SIDES:
        raise ExportFormatError(f"{where}: shown_left {record['shown_left']!r} is not 'a' or 'b'")
    if not isinstance(record["is_gold"], bool):
        raise ExportFormatError(f"{where}: field 'is_gold' must be true or false, got {record['is_gold']!r}")
    if record["a_key"] == record["b_key"]:
        raise ExportFormatError(f"{where}: a_key and b_key are the same image {record['a_key']!r}")
    return JudgmentRow(**{name: record[name] for name in expected})


def read_judgments(path: str | Path) -> list[JudgmentRow]:
    """Read every judgment of a JSONL export; blank lines are allowed, anything else malformed is not."""
    path = Path(path)
    if not path.is_file():
        raise ExportFormatError(f"{path}: no such export file")
    rows: list[JudgmentRow] = []
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ExportFormatError(f"{where}: not valid JSON ({error.msg})") from error
            rows.append(_parse_row(record, where))
    if not rows:
        raise ExportFormatError(f"{path}: the export holds no judgments")
    return rows


def write_judgments(path: str | Path, rows: Iterable[JudgmentRow]) -> int:
    """Write judgments as JSONL (the same format the web exports); returns the number of rows written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row.to_json() + "\n")
            count += 1
    return count
