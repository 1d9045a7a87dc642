"""Model artifacts live in the storage under `models/<kind>/<name>/<upload id>/`; training code wants folders.

Uploads copy a finished artifact folder into the storage under a prefix of its own (a fresh random upload
id), written once (`put_new`); the version row is made only after, pointing at that prefix, so no version
ever points at half an upload or at another registration's files. Downloads fill a local cache under
`$PREF_VAR_DIR/artifact-cache/` once per prefix (artifacts never change after they are written).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings

from annotation_web.storage import LocalStorage, get_storage


def artifact_prefix(*, kind: str, name: str) -> str:
    """A prefix no other upload uses: two registrations of one name never write into each other's files."""
    return f"models/{kind}/{name}/{uuid.uuid4().hex}/"


def artifact_upload(*, folder: Path, prefix: str) -> list[str]:
    storage = get_storage()
    keys = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not relative.startswith("checkpoints/"):
            key = prefix + relative
            storage.put_new(key, path.read_bytes())
            keys.append(key)
    if not keys:
        raise ValueError(f"{folder} holds no artifact files")
    return keys


def artifact_local_dir(*, prefix: str) -> Path:
    """A local folder holding the artifact at `prefix` (the storage's own folder when storage is local)."""
    storage = get_storage()
    if isinstance(storage, LocalStorage):
        return storage.local_path(prefix.rstrip("/") + "/config.json").parent
    cache = Path(settings.VAR_DIR) / "artifact-cache" / prefix
    if (cache / ".complete").exists():
        return cache
    staging = Path(tempfile.mkdtemp(prefix="artifact-", dir=_ensure(cache.parent)))
    for key in storage.list(prefix):
        target = staging / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get(key))
    (staging / ".complete").touch()
    if cache.exists():
        shutil.rmtree(cache)
    staging.rename(cache)
    return cache


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
