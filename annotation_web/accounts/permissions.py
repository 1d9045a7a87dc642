"""The role permissions live in `annotation_web.permissions` (so that `jobs`, below every app, can use them)."""

from annotation_web.permissions import IsEngineer, IsEngineerOrManager

__all__ = ["IsEngineer", "IsEngineerOrManager"]
