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


class ProjectMembership(models.Model):
    """Who belongs to which project: every role acts only on its own projects (superusers on all).

    The role says what a user may do; the membership says where. The project is named by its label so that
    accounts, below labeling, does not import it.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.project_id}"
