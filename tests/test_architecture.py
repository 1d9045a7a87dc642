"""The import contracts of pyproject.toml (run by `lint-imports` in infra/test.sh) hold on the tree, and fail
on a copy of it with one deliberately wrong import: a check that could not fail would prove nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("annotation_web", "restorer", "reward_model", "rl_trainer")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is installed by infra/test.sh"
)


def _copy_of_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
        )
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    return target


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so the contracts are checked against it, not against the checkout.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def _plant(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.fixture(scope="module")
def clean_result(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    return _lint_imports(_copy_of_tree(tmp_path_factory.mktemp("clean")))


def test_the_tree_keeps_every_contract(clean_result):
    assert clean_result.returncode == 0, clean_result.stdout + clean_result.stderr
    assert "6 kept, 0 broken" in clean_result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken_contract"),
    [
        ("restorer/metrics.py", "import django.conf", "The ML packages know nothing of the web"),
        (
            "restorer/images.py",
            "import reward_model.export",
            "ML layers: rl_trainer -> reward_model -> restorer",
        ),
        (
            "annotation_web/labeling/selectors.py",
            "import restorer.images",
            "Only annotation_web.ml_bridge imports the ML packages",
        ),
        (
            "annotation_web/jobs/services.py",
            "import annotation_web.labeling.models",
            "jobs is the ground floor: it imports no other app of the project",
        ),
        (
            "annotation_web/registry/selectors.py",
            "import annotation_web.loop.models",
            "The registry knows nothing of what uses it: training and the loop",
        ),
        (
            "annotation_web/training/services.py",
            "import annotation_web.loop.selectors",
            "The loop sits above training: training's job kinds and services never import it",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(tmp_path, module, wrong_import, broken_contract):
    tree = _copy_of_tree(tmp_path)
    _plant(tree / module, wrong_import)
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert f"{broken_contract} BROKEN" in result.stdout, result.stdout
    assert "1 broken" in result.stdout, result.stdout
