from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token

from annotation_web.accounts.models import Role, User


@transaction.atomic
def user_create(*, username: str, password: str, role: str = Role.ANNOTATOR, email: str = "") -> User:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    user = User(username=username, email=email, role=role)
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


def token_for_user(*, user: User) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
