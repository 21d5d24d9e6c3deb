"""Django settings for seckill, read from the environment.

Safe by default: DEBUG is off unless ``DEBUG=1``; with DEBUG off a SECRET_KEY must be given and
the secure-cookie / HSTS / SSL-redirect settings are on (``HTTPS=0`` turns them off for a plain
HTTP deployment such as the local run or a load test on loopback).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from seckill.infrastructure.redis_urls import cluster_startup_nodes, is_cluster_url
from shop.env import database_config, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SECKILL_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if DEBUG else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: docs work offline
    "shop",
    "seckill",
    "seckill.lab",
]

# The response headers' middleware comes first, so they also go on the answers of the two
# short-circuits below it: the order endpoint's fast lane (a token-authenticated order needs
# no session, CSRF, messages or URL resolution: seckill.api.fast_lane) and static files.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "seckill.api.fast_lane.OrderFastLane",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

# Content-Security-Policy: scripts only from our own static files (no page has an inline script;
# Swagger UI's start-up script is served as a file), so an injected <script> does not run.
# Inline styles stay allowed: the sale cards' style="" swatches and bars, and ReDoc's
# run-time styles; ReDoc's search runs in a blob: worker.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "worker-src": [CSP.SELF, "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DB_POOL_MAX_SIZE: PostgreSQL connections per process (0 = no pool, one per thread).
DATABASES = {
    "default": database_config(
        os.environ.get("DATABASE_URL"), VAR_DIR / "db.sqlite3", env_int("DB_POOL_MAX_SIZE", 16)
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS_URL=redis+cluster://host:port[,host:port...] runs the app on a Redis Cluster
# (seckill.infrastructure.redis_client); the broker must then be RabbitMQ (see below).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLUSTER = is_cluster_url(REDIS_URL)
if REDIS_CLUSTER:
    try:
        cluster_startup_nodes(REDIS_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL: {exc}") from None
# Fail fast when Redis is away: a flash-sale request must never hang on a dead socket.
REDIS_SOCKET_TIMEOUT = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "2.0"))
REDIS_CONNECT_TIMEOUT = float(os.environ.get("REDIS_CONNECT_TIMEOUT", "0.5"))

# Nothing of the app uses Django's cache (throttles, tokens and sales have their own Redis
# keys); on a cluster it stays in memory, since Django's Redis cache speaks to one server.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        if REDIS_CLUSTER
        else {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cache",
            "OPTIONS": {
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
            },
        }
    )
}

# kombu (Celery's messaging) cannot use a Redis Cluster as broker or result store: a cluster
# deployment names RabbitMQ, and keeps no task results (no task of the app returns one).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or ("" if REDIS_CLUSTER else REDIS_URL)
if not CELERY_BROKER_URL or is_cluster_url(CELERY_BROKER_URL):
    raise ImproperlyConfigured(
        "Celery cannot use a Redis Cluster as its broker (kombu has no cluster transport): "
        "set CELERY_BROKER_URL to RabbitMQ, e.g. CELERY_BROKER_URL=amqp://guest:guest@"
        "127.0.0.1:5672//"
    )
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or (
    None if REDIS_CLUSTER else REDIS_URL
)
if CELERY_RESULT_BACKEND and is_cluster_url(CELERY_RESULT_BACKEND):
    raise ImproperlyConfigured(
        "Celery cannot keep results on a Redis Cluster: leave CELERY_RESULT_BACKEND unset "
        "(the app reads no task result) or name a single Redis (redis://host:port/db)"
    )
# A queue name of one's own (tests on a shared RabbitMQ; several deployments on one vhost).
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or "celery"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis transport: a task left unacknowledged by a dead worker is redelivered after
# visibility_timeout. Long on purpose (no task may run longer); queued redis_atomic orders do not
# wait for it: the sweep drains whatever is older than 30 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_EXPIRES = 3600

# The flash-sale engine (seckill/). Seconds unless named otherwise.
SECKILL_LOCK_TTL = float(os.environ.get("SECKILL_LOCK_TTL", "5.0"))  # item lock lease
SECKILL_LOCK_WAIT = float(os.environ.get("SECKILL_LOCK_WAIT", "0.2"))  # then 429 busy
# Group commit: the item lock's holder decides up to this many queued lock/lock_fenced orders in
# one transaction; 1 = one order per lock hold (the plain read-modify-write).
SECKILL_LOCK_BATCH = env_int("SECKILL_LOCK_BATCH", 64)
SECKILL_NAIVE_LOCK_TTL = float(os.environ.get("SECKILL_NAIVE_LOCK_TTL", "1.0"))
SECKILL_PAYMENT_WINDOW = env_int("SECKILL_PAYMENT_WINDOW", 15 * 60)  # unpaid orders expire
# Unpaid orders expire at the first sweep after their pay-by time (seckill.lifecycle).
SECKILL_EXPIRY_SWEEP_INTERVAL = float(os.environ.get("SECKILL_EXPIRY_SWEEP_INTERVAL", "10"))
SECKILL_RECONCILE_INTERVAL = float(os.environ.get("SECKILL_RECONCILE_INTERVAL", "30"))
SECKILL_PURCHASE_TOKEN_TTL = env_int("SECKILL_PURCHASE_TOKEN_TTL", 30)
SECKILL_WORKER_ID = os.environ.get("SECKILL_WORKER_ID") or None  # else leased from Redis
# idgen's per-host worker-id locks (default: a directory under /tmp per Redis namespace)
SECKILL_IDGEN_LOCK_DIR = os.environ.get("SECKILL_IDGEN_LOCK_DIR") or None
# Fault injection for tests and the teaching demo: a pause inside the critical section, between
# reading the stock and writing it. 0 in production.
SECKILL_CRITICAL_SECTION_DELAY = float(os.environ.get("SECKILL_CRITICAL_SECTION_DELAY", "0"))
# Fault injection: a redis_atomic drain holds its lock this long before writing, so a fault
# scenario can kill the worker mid-drain for certain. 0 in production.
SECKILL_DRAIN_DELAY = float(os.environ.get("SECKILL_DRAIN_DELAY", "0"))

CELERY_BEAT_SCHEDULE = {
    "seckill-sweep": {"task": "seckill.sweep", "schedule": SECKILL_EXPIRY_SWEEP_INTERVAL},
    "seckill-reconcile": {"task": "seckill.reconcile", "schedule": SECKILL_RECONCILE_INTERVAL},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
# What the pages put before a price (the API gives plain decimal strings).
SHOP_CURRENCY_SYMBOL = os.environ.get("SHOP_CURRENCY_SYMBOL", "$")
# A styled page (JSON under /api/) instead of Django's bare CSRF failure page.
CSRF_FAILURE_VIEW = "shop.error_views.csrf_failure"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "shop.static_storage.StaticStorage"
        )
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "seckill.api.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "seckill.api.openapi.ErrorDocumentingSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "seckill.api.exception_handler.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "seckill.api.parsers.BoundedJSONParser",  # deep nesting is a 400, not a RecursionError
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # GCRA in Redis (seckill.rate_limit): N/period = a burst of N, then one per period/N.
    # Redis down: fail open to a per-process limiter of the same rate (never a 500).
    "DEFAULT_THROTTLE_RATES": {
        "order": os.environ.get("SECKILL_THROTTLE_ORDER", "60/min"),
        "order_ip": os.environ.get("SECKILL_THROTTLE_ORDER_IP", "1200/min"),
        "auth": os.environ.get("SECKILL_THROTTLE_AUTH", "30/min"),
        # Asking for a purchase pass has budgets of its own, so a token-gated purchase spends
        # one unit of the order budget, not two.
        "purchase_token": os.environ.get("SECKILL_THROTTLE_PURCHASE_TOKEN", "60/min"),
        "purchase_token_ip": os.environ.get("SECKILL_THROTTLE_PURCHASE_TOKEN_IP", "1200/min"),
    },
    # Behind a proxy, the number of proxies whose X-Forwarded-For entries to trust.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "seckill API",
    "DESCRIPTION": "Flash-sale order API: sales, orders, payment. Errors are "
    '{"error": {"code", "message"}}; order ids are strings.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files, never a CDN: /api/docs/ works offline and under a CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Orders and lab runs both have a "status" enum: name each, instead of a generated hash.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "seckill.models.OrderStatus",
        "LabRunStatusEnum": "seckill.lab.models.RunStatus",
    },
}

# Production hardening, on whenever DEBUG is off (HTTPS=0 for plain-HTTP deployments).
HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
