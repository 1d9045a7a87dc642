from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    ENGINEER = "engineer", "ML engineer"
    MANAGER = "manager", "Manager"


class User(AbstractUser):
    """Every person of the platform; engineers and managers may annotate as well."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    @property
    def is_engineer(self) -> bool:
        return self.role == Role.ENGINEER or self.is_superuser

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER or self.is_superuser
