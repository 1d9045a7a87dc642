"""Which projects a user may act on: those they are a member of (`accounts.ProjectMembership`); all of them
for a superuser. A project the user is not a member of answers like one that does not exist (404), so its
name is not confirmed to outsiders."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from annotation_web.accounts.models import User
from annotation_web.errors import NotFound
from annotation_web.labeling.models import Project, Reservation


def projects_visible(*, user: User | AnonymousUser) -> QuerySet[Project]:
    projects = Project.objects.order_by("name")
    if user.is_superuser:
        return projects
    if not user.is_authenticated:
        return projects.none()
    return projects.filter(memberships__user=user)


def project_get_for_member(*, user: User | AnonymousUser, slug: str) -> Project:
    project = projects_visible(user=user).filter(slug=slug).first()
    if project is None:
        raise NotFound(f"no project {slug!r}")
    return project


def reservation_outside_membership(*, user: User, reservation_id: UUID | str) -> bool:
    """Whether the reservation exists but lies in a project the user no longer belongs to (one query)."""
    if user.is_superuser:
        return False
    return (
        Reservation.objects.filter(pk=reservation_id).exclude(pair__project__memberships__user=user).exists()
    )
