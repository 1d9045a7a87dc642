"""The settings of the test run and of the type checker (pyproject.toml: pytest's DJANGO_SETTINGS_MODULE,
`[tool.django-stubs]`): the real settings, debug off as in production, with a random secret key put into the
environment when none is set (the settings refuse to start without one). The processes the tests start
(workers, `manage.py`) inherit the key. Never serve with it: the key changes with every run."""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", "test-run-" + secrets.token_urlsafe(48))

from annotation_web.settings import *  # noqa: E402,F403
