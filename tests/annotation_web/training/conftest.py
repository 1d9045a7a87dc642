"""Fixtures of the ML jobs' tests: a project with faces, and one whose generated pairs were all judged."""

from __future__ import annotations

import pytest

from annotation_web.labeling import imports
from annotation_web.labeling.ingest import SourceFile
from annotation_web.training import services
from tests.annotation_web.conftest import face_png
from tests.annotation_web.training.test_ml_loop import judge_everything, tiny_restorer  # noqa: F401


@pytest.fixture
def project_with_faces(make_project):
    project = make_project(pairs=0, resolution=32)
    faces = [SourceFile(f"{seed}.png", face_png(seed, size=40)) for seed in range(3)]
    imports.face_inputs_import(project=project, source=faces)
    return project


@pytest.fixture
def judged_project(project_with_faces, tiny_restorer, engineer, make_user):  # noqa: F811
    from annotation_web.jobs.runs import job_run

    generated = services.generation_job_create(
        project=project_with_faces, user=engineer, restorer_id=tiny_restorer.pk, num_steps=2, eta=1.0
    )
    job_run(job_id=generated.pk)
    assert judge_everything(project_with_faces, make_user) > 0
    return project_with_faces
