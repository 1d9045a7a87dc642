"""Frozen, versioned judgment snapshots: what a reward model was trained on, kept so that it can be retrained
from exactly its data.

A snapshot holds the rows of the preference export (`selectors.preference_export_rows`, gold rows included,
skips not) up to a judgment id, as the export gave them when the snapshot was taken. They are written once to
the storage as canonical JSONL (one row a line, keys sorted, no spaces) under a random key
(`exports/<project>/snapshots/<uuid>.jsonl`, put-if-absent), and the row records their ids, count and sha256.
`judgment_snapshot_rows` reads them back and checks the hash, so later judgments, a pair turned gold by
consensus or any other change in the database never change what a snapshot gives.

Numbers are 1, 2, … per project, allocated by the unique constraint on (project, number) and retried when a
concurrent snapshot took the number (as model-version numbers are). The file goes first, the row after: a crash
in between leaves an orphan file under a random key, never a row pointing at nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet

from annotation_web.errors import NotFound, ServiceError
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.models import JudgmentSnapshot, Project
from annotation_web.labeling.selectors import EXPORT_SCHEMA_VERSION, preference_export_rows
from annotation_web.storage import get_storage

# Attempts at the next number before giving up (each lost race means another snapshot was made).
NUMBER_ATTEMPTS = 20


class SnapshotCorrupt(ServiceError):
    status = 500
    code = "snapshot_corrupt"


def canonical_line(row: dict) -> bytes:
    """One export row as the canonical JSONL line the snapshot's hash is taken over."""
    return json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def canonical_jsonl(rows: Iterable[dict]) -> bytes:
    return b"".join(canonical_line(row) for row in rows)


def export_rows_up_to(*, project: Project, up_to_judgment_id: int) -> Iterator[dict]:
    """The preference export's rows with a judgment id ≤ `up_to_judgment_id`: what the reward job exports."""
    for row in preference_export_rows(project=project):
        if int(row["judgment_id"]) <= up_to_judgment_id:
            yield row


def _next_number(project: Project) -> int:
    highest = JudgmentSnapshot.objects.filter(project=project).aggregate(Max("number"))["number__max"]
    return (highest or 0) + 1


@transaction.atomic
def judgment_snapshot_create(*, project: Project, up_to_judgment_id: int) -> JudgmentSnapshot:
    """Freeze the export rows of `project` up to `up_to_judgment_id` as its next snapshot."""
    rows = list(export_rows_up_to(project=project, up_to_judgment_id=up_to_judgment_id))
    if not rows:
        raise LabelingError(
            f"project {project.slug} has no judgments up to id {up_to_judgment_id} to snapshot"
        )
    data = canonical_jsonl(rows)
    key = f"exports/{project.slug}/snapshots/{uuid.uuid4().hex}.jsonl"
    get_storage().put_new(key, data, content_type="application/x-ndjson")
    fields = {
        "project": project,
        "up_to_judgment_id": up_to_judgment_id,
        "judgment_ids": [int(row["judgment_id"]) for row in rows],
        "count": len(rows),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows_key": key,
        "schema_version": EXPORT_SCHEMA_VERSION,
    }
    for _ in range(NUMBER_ATTEMPTS):
        try:
            # A savepoint: the unique constraint refuses a number another transaction holds (waiting for it to
            # commit or roll back), and only this attempt is rolled back.
            with transaction.atomic():
                return JudgmentSnapshot.objects.create(number=_next_number(project), **fields)
        except IntegrityError:
            continue
    raise ServiceError(f"could not allocate a snapshot number for project {project.slug}; try again")


def judgment_snapshot_bytes(snapshot: JudgmentSnapshot) -> bytes:
    """The snapshot's canonical JSONL as stored, after checking it against its sha256."""
    data = get_storage().get(snapshot.rows_key)
    if hashlib.sha256(data).hexdigest() != snapshot.sha256:
        raise SnapshotCorrupt(f"{snapshot}: the stored rows do not match their sha256 {snapshot.sha256}")
    return data


def judgment_snapshot_rows(snapshot: JudgmentSnapshot) -> Iterator[dict]:
    """The export rows the snapshot froze, in judgment order (hash checked first)."""
    for line in judgment_snapshot_bytes(snapshot).splitlines():
        yield json.loads(line)


def judgment_snapshot_verify(snapshot: JudgmentSnapshot) -> dict:
    """The hash check: whether the stored rows still match the snapshot's sha256 (`stored_ok`), and whether the
    export would still give the same rows today (`database_unchanged`: false after, say, a pair turned gold by
    consensus; the snapshot itself keeps its rows either way)."""
    try:
        judgment_snapshot_bytes(snapshot)
        stored_ok = True
    except SnapshotCorrupt:
        stored_ok = False
    today = canonical_jsonl(
        export_rows_up_to(project=snapshot.project, up_to_judgment_id=snapshot.up_to_judgment_id)
    )
    return {
        "stored_ok": stored_ok,
        "database_unchanged": hashlib.sha256(today).hexdigest() == snapshot.sha256,
    }


def judgment_snapshot_list(*, project: Project) -> QuerySet[JudgmentSnapshot]:
    return (
        JudgmentSnapshot.objects.filter(project=project)
        .select_related("project")
        .defer("judgment_ids")
        .order_by("number")
    )


def judgment_snapshot_get(*, project: Project, number: int) -> JudgmentSnapshot:
    snapshot = JudgmentSnapshot.objects.filter(project=project, number=number).first()
    if snapshot is None:
        raise NotFound(f"project {project.slug} has no judgment snapshot {number}")
    return snapshot
