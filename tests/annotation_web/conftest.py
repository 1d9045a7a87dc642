from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import user_create
from annotation_web.labeling.models import Candidate, FaceInput, Pair
from annotation_web.labeling.pairs import gold_pair_create, pair_create, project_create
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.storage import _cached_storage

_counter = itertools.count()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite: the test database is a file, not shared memory, so that threads (the concurrency tests) each
    open their own connection to it and wait for its write lock, as the web and worker processes do."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and not database.get("TEST", {}).get("NAME"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture(autouse=True)
def local_storage(settings, tmp_path):
    """Every test gets its own storage folder (S3 tests override this with the S3 settings)."""
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_LOCAL_ROOT = tmp_path / "storage"
    _cached_storage.cache_clear()
    yield settings.STORAGE_LOCAL_ROOT
    _cached_storage.cache_clear()


@pytest.fixture(autouse=True)
def fresh_throttles():
    """The throttles count in the default cache (per process): each test starts with no attempts counted."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _join_all_projects(user) -> None:
    from annotation_web.accounts.services import membership_add
    from annotation_web.labeling.models import Project

    for project in Project.objects.all():
        membership_add(user=user, project=project)


@pytest.fixture
def make_user(db):
    """A user who belongs to every project of the test (those made before and after it by `make_project`);
    tests of membership itself make their outsiders with `user_create`."""

    def make(role: str = Role.ANNOTATOR, username: str | None = None):
        user = user_create(username=username or f"user{next(_counter)}", password="pw-123456", role=role)
        _join_all_projects(user)
        return user

    return make


@pytest.fixture
def annotator(make_user):
    return make_user(Role.ANNOTATOR, "ann")


@pytest.fixture
def engineer(make_user):
    return make_user(Role.ENGINEER, "eng")


def face_png(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    face = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 2.6) ** 2).astype(np.float32)
    image = np.stack([face * 200 + 30, face * 160 + 40, face * 140 + 50], axis=-1)
    image += rng.normal(0, 12, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_project(db):
    def make(
        *,
        pairs: int = 5,
        overlap: int = 1,
        gold: int = 0,
        gold_rate: float = 0.0,
        ttl: int = 300,
        slug=None,
        resolution: int = 64,
    ):
        """A project with `pairs` pairs on separate inputs; image keys are placeholders (no files needed)."""
        project = project_create(
            name="Test project",
            slug=slug or f"p{next(_counter)}",
            overlap=overlap,
            gold_rate=gold_rate,
            reservation_ttl_seconds=ttl,
            resolution=resolution,
        )
        version_a, _ = ModelVersion.objects.get_or_create(kind=ModelKind.CLASSICAL, name="a")
        version_b, _ = ModelVersion.objects.get_or_create(kind=ModelKind.CLASSICAL, name="b")
        for index in range(pairs + gold):
            face_input = FaceInput.objects.create(
                project=project,
                source_name=f"f{index}.png",
                content_hash=f"{project.slug}-{index}",
                lq_key=f"in/{index}/lq.png",
                hq_key=f"in/{index}/hq.png",
            )
            a = Candidate.objects.create(
                face_input=face_input, model_version=version_a, image_key=f"s/{index}/a.png"
            )
            b = Candidate.objects.create(
                face_input=face_input, model_version=version_b, image_key=f"s/{index}/b.png"
            )
            if index < pairs:
                pair_create(a=a, b=b, batch="b1" if index % 2 == 0 else "b2")
            else:
                gold_pair_create(better=a, worse=b)
        # Every user made so far belongs to it (outsiders in the membership tests are made afterwards).
        from annotation_web.accounts.models import ProjectMembership, User

        ProjectMembership.objects.bulk_create(
            [ProjectMembership(user=user, project=project) for user in User.objects.all()]
        )
        return project

    return make


def gold_pairs(project) -> list[Pair]:
    return list(Pair.objects.filter(project=project, is_gold=True))
