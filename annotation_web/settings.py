"""Settings read the environment and fall back to the embedded defaults (SQLite, local files,
a Celery broker on the filesystem), so a fresh machine runs the platform without any server."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PREF_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Fails closed: debug pages (settings, SQL, paths) only when asked for, and no server without a real secret
# key unless it is a debug one (the demo sets DJANGO_DEBUG=1 explicitly).
DEBUG = env_bool("DJANGO_DEBUG", False)
DEV_SECRET_KEY = "embedded-default-secret-key-for-local-use-only"
MIN_SECRET_KEY_LENGTH = 50
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not DEBUG and (
    not SECRET_KEY
    or SECRET_KEY == DEV_SECRET_KEY
    or len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY.startswith("django-insecure-")
):
    raise RuntimeError(
        f"DJANGO_SECRET_KEY must be set to a random string of at least {MIN_SECRET_KEY_LENGTH} characters "
        "when DJANGO_DEBUG is off (for a local debug server set DJANGO_DEBUG=1)"
    )
if not SECRET_KEY:
    SECRET_KEY = DEV_SECRET_KEY
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
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotation_web.accounts",
    "annotation_web.jobs",
    "annotation_web.registry",
    "annotation_web.labeling",
    "annotation_web.training",
    "annotation_web.loop",
    "annotation_web.dashboards",
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
    "annotation_web.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "annotation_web.urls"
WSGI_APPLICATION = "annotation_web.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
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

# Uploads: refuse oversized bodies before they reach a view. A request body (not a file) over this is refused
# (413 from the API); files over FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file, not to memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
DATA_UPLOAD_MAX_NUMBER_FILES = 5
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("PREF_IMPORT_MAX_UPLOAD_BYTES", str(200 * 1024 * 1024)))
IMPORT_MAX_IMAGE_BYTES = int(os.environ.get("PREF_IMPORT_MAX_IMAGE_BYTES", str(20 * 1024 * 1024)))
# The original's pixel cap, checked from the header before any decoding (a face needs far fewer pixels).
IMPORT_MAX_IMAGE_PIXELS = int(os.environ.get("PREF_IMPORT_MAX_IMAGE_PIXELS", str(16_000_000)))
# The largest S3 object an import reads (checked from the listing before the object is fetched).
IMPORT_MAX_S3_OBJECT_BYTES = int(os.environ.get("PREF_IMPORT_MAX_S3_OBJECT_BYTES", str(20 * 1024 * 1024)))
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
# Two queues, chosen per job kind (annotation_web.jobs.kinds): `default` (imports, beat tasks, light work) and
# `train` (generation, training, evaluation): `celery -A annotation_web worker -Q train` on a GPU host.
CELERY_TASK_DEFAULT_QUEUE = "default"
# Device of the ML calls a worker makes ("auto": CUDA when present, else the CPU).
PREF_DEVICE = os.environ.get("PREF_DEVICE", "auto")
# Leases of running jobs (annotation_web.jobs.runs): renewed every heartbeat; a run not renewed for the lease
# lost its worker and is taken over or queued again by the reaper (every JOB_REAP_SECONDS); a QUEUED job's
# message is sent again after JOB_RESEND_SECONDS (the filesystem broker drops a killed worker's message).
JOB_HEARTBEAT_SECONDS = float(os.environ.get("PREF_JOB_HEARTBEAT_SECONDS", "5"))
JOB_LEASE_SECONDS = float(os.environ.get("PREF_JOB_LEASE_SECONDS", "60"))
JOB_REAP_SECONDS = float(os.environ.get("PREF_JOB_REAP_SECONDS", "15"))
JOB_RESEND_SECONDS = float(os.environ.get("PREF_JOB_RESEND_SECONDS", "300"))
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("PREF_WORKER_HEARTBEAT_SECONDS", "10"))
WORKER_ALIVE_SECONDS = float(os.environ.get("PREF_WORKER_ALIVE_SECONDS", "30"))
# Redis redelivers a message not acknowledged within the visibility timeout, even while its job still runs:
# keep it above the longest hard time limit of a job kind (25 h, train_rl), so that only dead workers' messages
# come back (and the lease makes even those harmless).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("PREF_VISIBILITY_TIMEOUT", str(26 * 3600)))
}
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {
        "task": "annotation_web.jobs.tasks.reap_jobs",
        "schedule": JOB_REAP_SECONDS,
        "options": {"expires": JOB_REAP_SECONDS},
    },
    # The loop: every enabled project's policy is evaluated (annotation_web.loop.services.loop_tick). A tick
    # that waited behind a long job in a one-process worker is dropped, not run in a burst.
    "loop-tick": {
        "task": "annotation_web.loop.tasks.loop_tick_all",
        "schedule": float(os.environ.get("PREF_LOOP_TICK_SECONDS", "20")),
        "options": {"expires": float(os.environ.get("PREF_LOOP_TICK_SECONDS", "20"))},
    },
    "release-expired-reservations": {
        "task": "annotation_web.labeling.tasks.release_expired_reservations",
        "schedule": float(os.environ.get("PREF_RELEASE_INTERVAL_SECONDS", "30")),
    },
}

REST_FRAMEWORK = {
    # Token first: an anonymous call is answered 401 with `WWW-Authenticate: Token` (the first class's header).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation_web.accounts.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON (the import endpoint adds multipart for its upload): a form body, whose fields all
    # fall back to their defaults, is refused with 415.
    "DEFAULT_PARSER_CLASSES": ["annotation_web.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "annotation_web.api_errors.ErrorDocumentingAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("PREF_THROTTLE_ANON", "120/min"),
        "user": os.environ.get("PREF_THROTTLE_USER", "3000/min"),
        # Credentials: per client address and per user name, so neither many names from one address nor one
        # name from many addresses gets more guesses.
        "login_client": os.environ.get("PREF_THROTTLE_LOGIN_CLIENT", "20/min"),
        "login_user": os.environ.get("PREF_THROTTLE_LOGIN_USER", "10/min"),
        "jobs": os.environ.get("PREF_THROTTLE_JOBS", "20/min"),
    },
    # The client address of the throttles: REMOTE_ADDR unless a count of trusted proxies is set, so a client
    # cannot pick its own address through X-Forwarded-For (DRF's default, None, takes the header as sent).
    "NUM_PROXIES": int(os.environ.get("DJANGO_NUM_PROXIES") or 0),
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
    # The docs and the schema are for logged-in users only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Request and response components apart: the request ones carry what the API refuses (minLength 1 for
    # the strings that may not be blank, read-only fields left out).
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"OutcomeEnum": "annotation_web.labeling.models.Outcome"},
    # The schema documents the API (/api/...); the image URLs under /files/ are not part of it.
    "PREPROCESSING_HOOKS": ["annotation_web.api_errors.only_api_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "annotation_web.api_errors.strings_without_nul",
    ],
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Tokens are stored as hashes (knox) and expire; a password change or deactivation deletes them (accounts).
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=float(os.environ.get("PREF_TOKEN_TTL_HOURS", "12"))),
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_LIMIT_PER_USER": None,
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

# HTTPS (README, "Production"): DJANGO_HTTPS=1 turns on the redirect, HSTS and secure cookies; behind a proxy
# that terminates TLS, DJANGO_PROXY_SSL_HEADER=1 trusts its X-Forwarded-Proto (only set it behind such a proxy:
# a client could send the header itself).
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600))) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = HTTPS and env_bool("DJANGO_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = HTTPS or env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The pages load everything from this origin (no CDN); images come from here or from the storage's presigned
# URLs (PREF_CSP_IMG_SRC adds the S3 origin in production).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # The templates keep their CSS in <style> blocks; scripts stay 'self' only (no inline script).
        "style-src 'self' 'unsafe-inline'",
        f"img-src 'self' data: blob: {os.environ.get('PREF_CSP_IMG_SRC', '')}".strip(),
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Only the demo configuration may create the demo users with their published password (demo_setup).
DEMO = env_bool("PREF_DEMO", False)

# The dashboards' annotator flags (annotation_web.dashboards.selectors.people): too fast (a median time per
# answer below this, over at least this many answers) and side-biased (a two-sided binomial test of the screen
# side chosen, over at least this many decisive answers).
DASHBOARD_TOO_FAST_MEDIAN_SECONDS = float(os.environ.get("PREF_DASHBOARD_TOO_FAST_MEDIAN_SECONDS", "1.5"))
DASHBOARD_TOO_FAST_MIN_ANSWERS = 10
DASHBOARD_SIDE_BIAS_P_VALUE = 0.01
DASHBOARD_SIDE_BIAS_MIN_DECISIVE = 20
