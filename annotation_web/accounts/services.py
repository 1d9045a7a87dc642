from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from knox.models import AuthToken

from annotation_web.accounts.models import ProjectMembership, Role, User

if TYPE_CHECKING:  # labeling sits above accounts: its model is named for the type checker only
    from annotation_web.labeling.models import Project


@transaction.atomic
def user_create(*, username: str, password: str, role: str = Role.ANNOTATOR, email: str = "") -> User:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    user = User(username=username, email=email, role=role)
    # The password validators of the settings (length, common passwords, like the user name, all digits).
    validate_password(password, user=user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def user_get_or_create(*, username: str, password: str, role: str = Role.ANNOTATOR) -> User:
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    return user_create(username=username, password=password, role=role)


def token_create(*, user: User) -> tuple[str, datetime | None]:
    """A new API token for the user and its expiry; only its hash is stored, so it is shown once."""
    instance, token = AuthToken.objects.create(user=user)
    return token, instance.expiry


def token_for_user(*, user: User) -> str:
    """A new API token (tokens are hashed at rest: an existing one cannot be read back)."""
    return token_create(user=user)[0]


def tokens_revoke(*, user: User) -> int:
    """Delete every API token of the user (a password change or a deactivation does it at once)."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def membership_add(*, user: User, project: Project) -> ProjectMembership:
    """Let the user act on the project (within what their role allows)."""
    membership, _ = ProjectMembership.objects.get_or_create(user=user, project=project)
    return membership


def membership_remove(*, user: User, project: Project) -> None:
    ProjectMembership.objects.filter(user=user, project=project).delete()
