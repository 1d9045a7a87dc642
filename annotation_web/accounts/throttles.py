"""Throttles of the credential endpoints: per client address and per user name.

A guesser with one address and many names is stopped by the first, a guesser with many addresses and one name
by the second. The client address is REMOTE_ADDR unless `REST_FRAMEWORK["NUM_PROXIES"]` says how many proxies
in front may be trusted (DRF's `get_ident`), so X-Forwarded-For cannot pick a fresh address per try.
Both work on a DRF request and on a plain Django one (the login page).
"""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.throttling import SimpleRateThrottle


def submitted_username(request: Any) -> str:
    """The user name a login attempt names, lowercased; '' when the body does not name one."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    value = data.get("username") if hasattr(data, "get") else None
    return value.strip().lower()[:150] if isinstance(value, str) else ""


class LoginClientThrottle(SimpleRateThrottle):
    scope = "login_client"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUserThrottle(SimpleRateThrottle):
    scope = "login_user"

    def get_cache_key(self, request, view):
        username = submitted_username(request)
        if not username:
            return None
        # Hashed: any string a client sends makes a safe cache key of fixed length.
        digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


def login_throttles() -> list[SimpleRateThrottle]:
    return [LoginClientThrottle(), LoginUserThrottle()]


def login_wait_seconds(request: Any) -> float | None:
    """None when the attempt may go on; else how long to wait (every throttle counts the attempt)."""
    # The view is unused by these throttles' keys (the login page has no DRF view to pass).
    waits = [t.wait() or 1.0 for t in login_throttles() if not t.allow_request(request, None)]  # type: ignore[arg-type]
    return max(waits) if waits else None
