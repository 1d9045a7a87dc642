"""Errors of the reward model package. A broken artifact raises ``restorer.artifacts.ArtifactError``, the one
artifact error of the platform's models."""

from __future__ import annotations


class ExportFormatError(ValueError):
    """A preference export (JSONL) is empty or a line does not follow the export schema."""
