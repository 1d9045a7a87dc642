"""Errors raised by the reward model package; both are ValueErrors so callers can treat bad input uniformly."""

from __future__ import annotations


class ArtifactError(ValueError):
    """A reward model artifact directory is missing, corrupt, or was written by another kind of model."""


class ExportFormatError(ValueError):
    """A preference export (JSONL) is empty or a line does not follow the export schema."""
