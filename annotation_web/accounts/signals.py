"""Revoking credentials at once: a password change or a deactivation deletes the user's API tokens.

(Sessions need nothing: Django checks the password hash in the session on every request and refuses inactive
users.) Connected in `AccountsConfig.ready()`.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from annotation_web.accounts.models import User


@receiver(pre_save, sender=User)
def _remember_credentials(sender: type[User], instance: User, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if instance.pk is None or (
        update_fields is not None and not {"password", "is_active"} & set(update_fields)
    ):
        instance._revoke_tokens = False  # type: ignore[attr-defined]
        return
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    instance._revoke_tokens = before is not None and (  # type: ignore[attr-defined]
        before["password"] != instance.password or (before["is_active"] and not instance.is_active)
    )


@receiver(post_save, sender=User)
def _revoke_tokens(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    if getattr(instance, "_revoke_tokens", False):
        from annotation_web.accounts.services import tokens_revoke

        tokens_revoke(user=instance)
        instance._revoke_tokens = False  # type: ignore[attr-defined]
