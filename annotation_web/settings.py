"""Settings read the environment and fall back to the embedded defaults (SQLite, local files,
a Celery broker on the filesystem), so a fresh machine runs the platform without any server."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PREF_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "embedded-default-secret-key-for-local-use-only"
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "annotation_web.accounts",
    "annotation_web.jobs",
    "annotation_web.registry",
    "annotation_web.labeling",
    "annotation_web.training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "annotation_web.urls"
WSGI_APPLICATION = "annotation_web.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "annotation_web" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker) share the file: wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "PREF_PG_SERVER_SIDE_BINDING", True
):
    # Server-side binding lets psycopg 3 prepare the statements the judging loop repeats (planning them each
    # time was a large share of PostgreSQL's CPU per judgment).
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The queue's statements (labeling.queue_sql): "auto" runs the one-statement raw SQL on PostgreSQL and the ORM
# elsewhere; "sql" forces the raw SQL (an error on any other database); "orm" forces the ORM everywhere.
PREF_QUEUE_PATH = os.environ.get("PREF_QUEUE_PATH", "auto").strip().lower()
if PREF_QUEUE_PATH not in ("auto", "sql", "orm"):
    raise RuntimeError(f"PREF_QUEUE_PATH must be auto, sql or orm, not {PREF_QUEUE_PATH!r}")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Static files straight from the apps (no collectstatic step on a fresh machine), also with DEBUG off.
WHITENOISE_USE_FINDERS = True

# Uploads: refuse oversized bodies before they reach a view.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("PREF_IMPORT_MAX_UPLOAD_BYTES", str(200 * 1024 * 1024)))
IMPORT_MAX_IMAGE_BYTES = int(os.environ.get("PREF_IMPORT_MAX_IMAGE_BYTES", str(20 * 1024 * 1024)))
IMPORT_MAX_IMAGE_PIXELS = int(os.environ.get("PREF_IMPORT_MAX_IMAGE_PIXELS", str(40_000_000)))
IMPORT_MIN_IMAGE_SIDE = int(os.environ.get("PREF_IMPORT_MIN_IMAGE_SIDE", "16"))

# Storage of every file (HQ, LQ, candidates, artifacts, exports): a local folder or S3.
STORAGE_BACKEND = os.environ.get("PREF_STORAGE", "local")  # "local" | "s3"
STORAGE_LOCAL_ROOT = Path(os.environ.get("PREF_STORAGE_ROOT", VAR_DIR / "storage"))
S3_BUCKET = os.environ.get("PREF_S3_BUCKET", "pref-restore")
S3_ENDPOINT_URL = os.environ.get("PREF_S3_ENDPOINT_URL") or None
S3_ACCESS_KEY = os.environ.get("PREF_S3_ACCESS_KEY") or None
S3_SECRET_KEY = os.environ.get("PREF_S3_SECRET_KEY") or None
S3_REGION = os.environ.get("PREF_S3_REGION", "us-east-1")
STORAGE_URL_TTL_SECONDS = int(os.environ.get("PREF_STORAGE_URL_TTL", "3600"))

# Celery: a filesystem broker by default (no server); Redis or RabbitMQ in production.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_FILESYSTEM_BROKER_DIR = Path(os.environ.get("PREF_BROKER_DIR", VAR_DIR / "broker"))
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "release-expired-reservations": {
        "task": "annotation_web.labeling.tasks.release_expired_reservations",
        "schedule": float(os.environ.get("PREF_RELEASE_INTERVAL_SECONDS", "30")),
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotation_web.accounts.authentication.CachedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("PREF_THROTTLE_ANON", "120/min"),
        "user": os.environ.get("PREF_THROTTLE_USER", "3000/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotation_web.api_errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pref-Restore platform API",
    "DESCRIPTION": "Pairwise judgments of restored faces, imports and preference exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("REDIS_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_CACHE_URL"],
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PREF_LOG_LEVEL", "WARNING")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
