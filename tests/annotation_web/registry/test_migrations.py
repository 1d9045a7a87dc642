"""Moving ModelVersion from labeling to registry keeps every row, id and foreign key (on the database the
tests run on: PostgreSQL in CI, SQLite on a fresh machine)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("labeling", "0001_initial"), ("registry", None)]


def migrate(targets):
    """Migrate to `targets`; the models as they were at the named (not unapplied) migrations."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state([t for t in targets if t[1]]).apps


def table_names() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.mark.django_db(transaction=True)
def test_model_versions_and_their_candidates_survive_the_move_to_registry():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = migrate(BEFORE)
        assert "labeling_modelversion" in table_names() and "registry_modelversion" not in table_names()
        OldVersion = old.get_model("labeling", "ModelVersion")
        project = old.get_model("labeling", "Project").objects.create(name="P", slug="migrated")
        face_input = old.get_model("labeling", "FaceInput").objects.create(
            project=project, source_name="a.png", content_hash="h", lq_key="lq"
        )
        parent = OldVersion.objects.create(kind="restorer", name="r", version=1, artifact_key="models/r/v1/")
        child = OldVersion.objects.create(
            kind="restorer", name="r", version=2, parent=parent, metrics={"x": 1}
        )
        candidate = old.get_model("labeling", "Candidate").objects.create(
            face_input=face_input, model_version=child, seed=3, image_key="k"
        )
        ContentType = old.get_model("contenttypes", "ContentType")
        content_type = ContentType.objects.filter(model="modelversion").first()

        new = migrate(latest)

        assert "registry_modelversion" in table_names() and "labeling_modelversion" not in table_names()
        from annotation_web.labeling.models import Candidate
        from annotation_web.registry.models import ModelVersion

        moved = ModelVersion.objects.get(pk=child.pk)
        assert (moved.kind, moved.name, moved.version, moved.metrics) == ("restorer", "r", 2, {"x": 1})
        assert moved.parent_id == parent.pk and moved.parent.artifact_key == "models/r/v1/"
        assert Candidate.objects.get(pk=candidate.pk).model_version == moved
        # The foreign key still holds in the database itself: the version of a candidate cannot go.
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {ModelVersion._meta.db_table} WHERE id = %s", [moved.pk])
        # A new version gets a fresh id (the id sequence came along with the table).
        fresh = ModelVersion.objects.create(kind="reward", name="new")
        assert fresh.pk > child.pk
        if content_type is not None:
            types = new.get_model("contenttypes", "ContentType").objects
            assert types.get(pk=content_type.pk).app_label == "registry"
            assert not types.filter(app_label="labeling", model="modelversion").exists()
    finally:
        migrate(latest)
