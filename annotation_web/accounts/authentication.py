"""Token authentication: knox tokens, stored as hashes, with an expiry.

Every request reads its token and user from the database (one indexed query, the user joined), so a deleted
token, a deactivated or deleted user and a changed role take effect at once, in every process. (An earlier
in-process memory of tokens kept a deleted user working for 30 s.) A password change or a deactivation
deletes the user's tokens (`accounts.signals`).
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.auth import TokenAuthentication
from rest_framework import exceptions


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("ascii")
        except UnicodeDecodeError as exc:  # knox would raise it as a 500
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from exc
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        # Only this token's own expiry: knox also walks every other token of the user on each request.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
