"""The preference export as Parquet (`GET /api/projects/<slug>/export/?format=parquet`): the same rows, columns
and column order as the JSONL export, in any number of row groups, with the schema version in the file."""

from __future__ import annotations

import io
import json

import pytest

from annotation_web.accounts.models import Role
from annotation_web.labeling import judgments, queue, selectors
from annotation_web.labeling.models import Judgment, Outcome
from tests.annotation_web.training.test_ml_loop import engineer_client

pq = pytest.importorskip("pyarrow.parquet")


def judge(project, user, choices: list[str]) -> None:
    for choice in choices:
        reservation = queue.pair_reserve_next(annotator=user, project=project)
        assert reservation is not None
        judgments.judgment_submit(
            annotator=user, reservation_id=reservation.pk, choice=choice, idempotency_key=str(reservation.pk)
        )


def jsonl_rows(client, slug: str, query: str = "") -> list[dict]:
    response = client.get(f"/api/projects/{slug}/export/{query}")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def parquet_table(client, slug: str, query: str = "?format=parquet"):
    response = client.get(f"/api/projects/{slug}/export/{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == f'attachment; filename="{slug}-preferences.parquet"'
    return pq.read_table(io.BytesIO(b"".join(response.streaming_content)))


@pytest.fixture
def judged(make_project, make_user):
    """Six pairs, one gold (served first: gold rate 1), judged by two annotators with every outcome and a skip."""
    project = make_project(pairs=6, gold=1, gold_rate=1.0, overlap=2)
    judge(project, make_user(), ["left", "right", "tie", "both_bad", "skip", "left"])
    judge(project, make_user(), ["right", "tie", "left"])
    assert Judgment.objects.filter(pair__project=project, outcome=Outcome.SKIP).count() == 1
    assert Judgment.objects.filter(pair__project=project, is_gold=True).exists()
    return project


@pytest.mark.django_db
def test_parquet_rows_equal_the_jsonl_rows(judged, engineer, monkeypatch):
    # Two rows a row group: the writer's batches must join into one table in order.
    monkeypatch.setattr(selectors, "EXPORT_PARQUET_ROW_GROUP", 2)
    client = engineer_client(engineer)
    rows = jsonl_rows(client, judged.slug)
    assert len(rows) == 8  # nine judgments, one a skip
    table = parquet_table(client, judged.slug)
    assert table.column_names == list(rows[0])  # the JSONL's columns, in its order
    assert table.to_pylist() == rows
    assert pq.ParquetFile(io.BytesIO(_bytes(client, judged.slug))).num_row_groups == 4
    assert (
        table.schema.metadata[b"pref_restore_export_schema_version"]
        == str(rows[0]["schema_version"]).encode()
    )
    # Without gold, both the same too.
    no_gold = jsonl_rows(client, judged.slug, "?include_gold=false")
    assert 0 < len(no_gold) < len(rows) and not any(row["is_gold"] for row in no_gold)
    assert parquet_table(client, judged.slug, "?format=parquet&include_gold=false").to_pylist() == no_gold
    # `format=jsonl` is the default spelled out.
    assert jsonl_rows(client, judged.slug, "?format=jsonl") == rows


def _bytes(client, slug: str) -> bytes:
    return b"".join(client.get(f"/api/projects/{slug}/export/?format=parquet").streaming_content)


@pytest.mark.django_db
def test_an_empty_export_is_a_parquet_file_with_the_columns_and_no_rows(make_project, engineer):
    project = make_project(pairs=2)
    table = parquet_table(engineer_client(engineer), project.slug)
    assert table.num_rows == 0
    assert table.column_names == [name for name, _ in selectors.EXPORT_PARQUET_COLUMNS]


@pytest.mark.django_db
def test_an_unknown_format_is_refused_and_refusals_stay_json(judged, engineer, make_user):
    client = engineer_client(engineer)
    bad = client.get(f"/api/projects/{judged.slug}/export/?format=csv")
    assert bad.status_code == 400 and "one of jsonl, parquet" in json.dumps(bad.json())
    refused = engineer_client(make_user(Role.ANNOTATOR)).get(
        f"/api/projects/{judged.slug}/export/?format=parquet"
    )
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    missing = client.get("/api/projects/no-such-project/export/?format=parquet")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
