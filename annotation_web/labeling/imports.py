"""Importing faces: validate each image, store its HQ, degrade it, store the LQ, record the input.

Not one transaction: files are written first, then one row per face in its own transaction, so a bad file
or a crash never loses the faces imported before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction

from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import FaceInput, Project


@dataclass
class ImportReport:
    imported: list[int]
    duplicates: list[str]
    rejected: list[str]
    stopped_after: int | None = None  # files read before a stop (cancel), when the import stopped early

    def as_dict(self) -> dict:
        report = {
            "imported": len(self.imported),
            "input_ids": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }
        if self.stopped_after is not None:
            report["stopped_after_files"] = self.stopped_after
        return report


def face_input_import(
    *, project: Project, name: str, data: bytes, batch: str = "", extra_instruction: str = ""
) -> FaceInput | None:
    """Validate one image, store its HQ, degrade it, store the LQ; None when the project already has it."""
    import hashlib

    from annotation_web import ml_bridge
    from annotation_web.labeling.ingest import validate_image
    from annotation_web.storage import get_storage

    content_hash = hashlib.sha256(data).hexdigest()
    if FaceInput.objects.filter(project=project, content_hash=content_hash).exists():
        return None
    image = validate_image(name, data)
    degraded = ml_bridge.degrade_face(
        image,
        preset=project.degradation_preset,
        seed=int(content_hash[:8], 16),
        resolution=project.resolution,
        extra_instruction=extra_instruction,
    )
    storage = get_storage()
    base = f"inputs/{project.slug}/{content_hash[:2]}/{content_hash}"
    # Files first, row last: a crash in between leaves orphan files under a content key, never a row
    # pointing at nothing; the next import of the same file rewrites the same keys.
    storage.put(f"{base}/hq.png", degraded.hq_png, content_type="image/png")
    storage.put(f"{base}/lq.png", degraded.lq_png, content_type="image/png")
    with transaction.atomic():
        face_input, created = FaceInput.objects.get_or_create(
            project=project,
            content_hash=content_hash,
            defaults={
                "source_name": name[:500],
                "hq_key": f"{base}/hq.png",
                "lq_key": f"{base}/lq.png",
                "degradation": degraded.degradation,
                "instruction": degraded.instruction,
                "batch": batch,
            },
        )
    return face_input if created else None


def face_inputs_import(
    *,
    project: Project,
    source: Iterable[SourceFile],
    batch: str = "",
    extra_instruction: str = "",
    on_progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImportReport:
    """Import every image of a source (see `labeling.ingest`); bad files are reported, never fatal. When
    `should_stop()` says so (a cancel), the import stops after the current file."""
    from annotation_web.labeling.ingest import ImportRejected

    report = ImportReport(imported=[], duplicates=[], rejected=[])
    for index, item in enumerate(source, start=1):
        if item.error:
            report.rejected.append(item.error)
        else:
            try:
                face_input = face_input_import(
                    project=project,
                    name=item.name,
                    data=item.data,
                    batch=batch,
                    extra_instruction=extra_instruction,
                )
            except ImportRejected as exc:
                report.rejected.append(str(exc))
            else:
                if face_input is None:
                    report.duplicates.append(item.name)
                else:
                    report.imported.append(face_input.pk)
        if on_progress is not None:
            on_progress(index, item.name)
        if should_stop is not None and should_stop():
            report.stopped_after = index
            break
    return report
