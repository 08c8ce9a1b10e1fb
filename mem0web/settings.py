"""Mem0 settings, driven by the environment.

Nothing set → the embedded default: SQLite under var/, in-memory channel layer, in-process agent bus,
local block store, Celery tasks run eagerly. `DATABASE_URL` → PostgreSQL; `REDIS_URL` → Redis for the
channel layer, the agent bus, rate limits and the Celery broker. Only this module reads os.environ.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


VAR_DIR = Path(env_str("MEM0_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
PRODUCTION = env_bool("MEM0_PRODUCTION")


def env_secret(name: str) -> str:
    """A secret from NAME, or the file named by NAME_FILE; the embedded default generates one into var/."""
    if os.environ.get(name):
        return os.environ[name]
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when MEM0_PRODUCTION=1")
    path = VAR_DIR / name.lower()
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def env_optional_secret(name: str) -> str:
    """A secret from NAME or the file named by NAME_FILE; empty when neither is set (the feature is off)."""
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return os.environ.get(name, "")


SECRET_KEY = env_secret("SECRET_KEY")
API_KEY_PEPPER = env_secret("MEM0_KEY_PEPPER")
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "billing",
    "sandboxes",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "mem0web.urls"
APPEND_SLASH = False
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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
WSGI_APPLICATION = "mem0web.wsgi.application"
ASGI_APPLICATION = "mem0web.asgi.application"

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Requests hand their connection back at the end (and while a run is awaited), so a pool shared
        # by the worker threads keeps connections open without one per thread.
        DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": env_int("MEM0_DB_POOL_SIZE", 20),
                                                    "timeout": 10},
                                           # Parameters bound by the server, and statements prepared on their
                                           # second use per connection: PostgreSQL planned every statement
                                           # anew otherwise (0.1-0.9 ms each; bench/api.py runs three per run).
                                           "server_side_binding": True, "prepare_threshold": 1}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "mem0.sqlite3",
            # WAL + a busy timeout let the web process and the embedded agent threads share the file.
            # IMMEDIATE: a transaction takes the write lock when it begins, so two that read then write
            # wait for each other (busy timeout) instead of failing with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        }
    }
# Django's own database backends, not django_prometheus's wrappers: their per-query label lookups cost
# ~10 % of a run request's CPU (py-spy, bench/api.py). Request metrics still come from the middleware.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"pool_class": "mem0web.redispool.SharedConnectionPool"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Agent bus: Redis Streams when REDIS_URL (or MEM0_BUS_URL) is set, else the in-process bus with an embedded agent.
MEM0_BUS_URL = env_str("MEM0_BUS_URL", REDIS_URL)
MEM0_BUS_PREFIX = env_str("MEM0_BUS_PREFIX", "mem0")
MEM0_EMBEDDED_AGENT = env_bool("MEM0_EMBEDDED_AGENT", default=not MEM0_BUS_URL)
MEM0_AGENT_STATE_DIR = env_str("MEM0_AGENT_STATE_DIR", str(VAR_DIR / "agent"))
MEM0_BLOCKSTORE_DIR = env_str("MEM0_BLOCKSTORE_DIR", str(VAR_DIR / "blocks"))
MEM0_S3_BUCKET = env_str("MEM0_S3_BUCKET")
MEM0_S3_ENDPOINT_URL = env_str("MEM0_S3_ENDPOINT_URL")
MEM0_S3_PREFIX = env_str("MEM0_S3_PREFIX", "mem0/")
MEM0_S3_STORAGE_CLASS = env_str("MEM0_S3_STORAGE_CLASS", "STANDARD")
MEM0_S3_COLD_CLASS = env_str("MEM0_S3_COLD_CLASS", "GLACIER")
MEM0_S3_SSE = env_str("MEM0_S3_SSE")
MEM0_S3_KMS_KEY_ID = env_str("MEM0_S3_KMS_KEY_ID")
MEM0_COLD_AFTER_DAYS = env_int("MEM0_COLD_AFTER_DAYS", 30)
# Bearer token a Prometheus scrape sends for /metrics; unset: only signed-in staff see it (mem0web/metrics.py).
MEM0_METRICS_TOKEN = env_optional_secret("MEM0_METRICS_TOKEN")
MEM0_MAX_CODE_BYTES = env_int("MEM0_MAX_CODE_BYTES", 256 * 1024)
# Worker threads per web process (mem0web/handlers.py): a waiting run holds one for its duration.
MEM0_WEB_THREADS = env_int("MEM0_WEB_THREADS", 256)
MEM0_MAX_FILE_BYTES = env_int("MEM0_MAX_FILE_BYTES", 32 * 1024 * 1024)
# Request bodies are capped before they are read (mem0web/bodylimit.py): every endpoint at this, except the
# file upload (MEM0_MAX_FILE_BYTES); over it, 413 payload_too_large.
MEM0_MAX_JSON_BYTES = env_int("MEM0_MAX_JSON_BYTES", 1024 * 1024)
# Live output streams (SSE, websockets): the reader threads shared by a web process's streams, and how many
# streams one organisation may hold open in a process (sandboxes/stream_slots.py); over it, 429 rate_limited.
MEM0_STREAM_READERS = env_int("MEM0_STREAM_READERS", 256)
MEM0_STREAMS_PER_ORG = env_int("MEM0_STREAMS_PER_ORG", 32)
# Largest websocket message a consumer takes (a run request: code is capped at MEM0_MAX_CODE_BYTES).
MEM0_MAX_WS_MESSAGE_BYTES = env_int("MEM0_MAX_WS_MESSAGE_BYTES", MEM0_MAX_CODE_BYTES + 64 * 1024)
MEM0_CAPTURE_BYTES = env_int("MEM0_CAPTURE_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MEM0_MAX_FILE_BYTES + 1024

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    "reap-sandboxes": {"task": "sandboxes.tasks.reap_sandboxes", "schedule": 30.0},
    "sweep-dead-agents": {"task": "sandboxes.tasks.sweep_dead_agents", "schedule": 10.0},
    "meter-sandbox-cpu": {"task": "sandboxes.tasks.meter_sandbox_cpu", "schedule": 300.0},
    "tier-snapshots": {"task": "sandboxes.tasks.tier_snapshots", "schedule": 3600.0},
    "gc-chunks": {"task": "sandboxes.tasks.gc_chunks", "schedule": 3600.0},
    "roll-up-usage": {"task": "billing.tasks.roll_up_usage", "schedule": 300.0},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Console sign-in and sign-up (accounts/throttles.py, accounts/backends.py, accounts/views.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
MEM0_SIGNIN_FAILURES_PER_ACCOUNT = env_int("MEM0_SIGNIN_FAILURES_PER_ACCOUNT", 5)
MEM0_SIGNIN_FAILURES_PER_ADDRESS = env_int("MEM0_SIGNIN_FAILURES_PER_ADDRESS", 30)
MEM0_SIGNIN_LOCKOUT_SECONDS = env_int("MEM0_SIGNIN_LOCKOUT_SECONDS", 15 * 60)
# The embedded default serves one machine whose every client is 127.0.0.1: looser per-address limits there.
MEM0_SIGNUPS_PER_ADDRESS_PER_HOUR = env_int("MEM0_SIGNUPS_PER_ADDRESS_PER_HOUR", 5 if PRODUCTION else 30)
MEM0_FREE_ORGS_PER_ADDRESS = env_int("MEM0_FREE_ORGS_PER_ADDRESS", 3 if PRODUCTION else 100)
MEM0_FREE_ORGS_WINDOW_DAYS = env_int("MEM0_FREE_ORGS_WINDOW_DAYS", 30)
# A new account stays inactive until the link mailed to it is followed (signed, expiring); on by default
# in production. Without it (the embedded default) sign-up signs in at once.
MEM0_SIGNUP_CONFIRMATION = env_bool("MEM0_SIGNUP_CONFIRMATION", PRODUCTION)
MEM0_SIGNUP_CONFIRM_SECONDS = env_int("MEM0_SIGNUP_CONFIRM_SECONDS", 2 * 24 * 3600)
MEM0_THROTTLE_NAMESPACE = env_str("MEM0_THROTTLE_NAMESPACE", "v1")  # tests use a fresh one per test
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION
                        else "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Mem0 <no-reply@localhost>")
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.APIKeyAuthentication",
        "accounts.authentication.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["billing.throttling.PlanRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["mem0web.bodylimit.LimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "mem0web.openapi.Mem0AutoSchema",
    "EXCEPTION_HANDLER": "mem0web.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mem0 API",
    "DESCRIPTION": "Secure sandboxed code execution: sandboxes, executions, forks, snapshots.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # 3.1: full JSON Schema, so env and metadata can say which keys they accept (patternProperties).
    "OAS_VERSION": "3.1.0",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"kv": {"format": "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
