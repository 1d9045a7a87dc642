"""`annotation_web.jobs` is the ground floor of the web: it imports no other app of the project (nor the ML
bridge). Checked on the source (every `import`, at module level or inside a function), so a lazy import inside a
runner counts too. The same contract is in pyproject.toml for import-linter."""

from __future__ import annotations

import ast
from pathlib import Path

import annotation_web

WEB = Path(annotation_web.__file__).resolve().parent
JOBS = WEB / "jobs"
# Every app of the project but jobs itself, and the bridge to the ML packages.
FORBIDDEN = sorted(
    {f"annotation_web.{path.parent.name}" for path in WEB.glob("*/apps.py") if path.parent.name != "jobs"}
    | {"annotation_web.ml_bridge"}
)


def imported_modules(source: str, module: str) -> set[str]:
    """The absolute names of the modules `source` (the text of `module`) imports."""
    package = module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def violations(source: str, module: str) -> list[str]:
    return sorted(
        name
        for name in imported_modules(source, module)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    )


def test_the_forbidden_list_knows_the_apps():
    assert {
        "annotation_web.accounts",
        "annotation_web.labeling",
        "annotation_web.training",
        "annotation_web.registry",
        "annotation_web.ml_bridge",
    } <= set(FORBIDDEN)
    assert "annotation_web.jobs" not in FORBIDDEN


def test_jobs_imports_no_other_app_of_the_project():
    found = {}
    for path in sorted(JOBS.rglob("*.py")):
        module = "annotation_web." + ".".join(path.relative_to(WEB).with_suffix("").parts)
        bad = violations(path.read_text(), module)
        if bad:
            found[str(path.relative_to(WEB.parent))] = bad
    assert not found, f"jobs must not import other apps: {found}"


def test_the_check_catches_a_deliberately_wrong_import():
    wrong = (
        "from annotation_web.jobs.models import Job\n"
        "def runner(job):\n"
        "    from annotation_web.labeling.services import face_inputs_import\n"
        "    import annotation_web.training.services\n"
        "    from ..registry import models\n"
    )
    assert violations(wrong, "annotation_web.jobs.runners") == [
        "annotation_web.labeling.services",
        "annotation_web.labeling.services.face_inputs_import",
        "annotation_web.registry",
        "annotation_web.registry.models",
        "annotation_web.training.services",
    ]
    assert (
        violations("from annotation_web.errors import ServiceError\n", "annotation_web.jobs.services") == []
    )
