"""The model registry: every model version whose outputs are judged or that training made, with its lineage.

A version's artifact (config, weights, metrics) lives in the storage under `ModelVersion.artifact_key`
(`models/<kind>/<name>/<upload id>/`, written once before the row points at it; see `registry.artifacts`).
Versions are created only by `registry.services`, numbered per (kind, name) from 1.
"""

from __future__ import annotations

from django.db import models


class ModelKind(models.TextChoices):
    RESTORER = "restorer", "Diffusion restorer"
    CLASSICAL = "classical", "Classical restoration (not a learned model)"
    REFERENCE = "reference", "Reference image (HQ original or a degraded copy)"
    REWARD = "reward", "Reward model"


# Kinds whose versions carry a trained artifact folder in the storage.
ARTIFACT_KINDS = (ModelKind.RESTORER, ModelKind.REWARD)


class ModelVersion(models.Model):
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    artifact_key = models.CharField(max_length=500, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The job that registered it: one version per job, however often the job's task is delivered or resumed.
    made_by_job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="made_version"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "name", "version"], name="model_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}@v{self.version}"
