"""Token authentication with a short in-process memory of valid tokens.

The judging loop sends a request per judgment; looking the token up in the database each time is a large
share of a request's cost. A token is remembered for `TOKEN_CACHE_SECONDS`: a deleted token or a deactivated
user stops working within that time, not at once.
"""

from __future__ import annotations

import time

from rest_framework.authentication import TokenAuthentication

TOKEN_CACHE_SECONDS = 30.0
_MAX_REMEMBERED = 10_000

_remembered: dict[str, tuple[float, object, object]] = {}


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        now = time.monotonic()
        hit = _remembered.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        user, token = super().authenticate_credentials(key)
        if len(_remembered) >= _MAX_REMEMBERED:
            _remembered.clear()
        _remembered[key] = (now + TOKEN_CACHE_SECONDS, user, token)
        return user, token


def forget_tokens() -> None:
    _remembered.clear()
