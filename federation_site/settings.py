"""Settings of a federation node.

Read once, from three places: the environment (DATABASE_URL, DEBUG, ...), the repository's
`.sudocode/secrets.env` (DJANGO_SECRET_KEY and tokens; gitignored) and, through `federation_site.config`,
`.sudocode/federation.config.json` (the federation's declared, git-tracked truth).
"""

from __future__ import annotations

import hashlib
import os
import secrets as _random
from pathlib import Path

import environ

from federation_site import logs as _logs
from federation_site.node import REPO_ENV, RepoLayout, RepoNotFound, find_repo
from federation_site.secrets import get_secret

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# The repository this node serves. The CLI resolves it (--repo, SUDOCODE_REPO, walking up from the current
# directory) and passes it in the environment; `manage.py` inside a repository finds it the same way.
try:
    SUDOCODE_REPO: Path | None = find_repo(explicit=os.environ.get(REPO_ENV) or None)
except RepoNotFound:
    if os.environ.get(REPO_ENV):
        raise
    SUDOCODE_REPO = None
_layout = RepoLayout(SUDOCODE_REPO) if SUDOCODE_REPO else None
_secrets_path = _layout.secrets_path if _layout else BASE_DIR / "var" / "secrets.env"

DEBUG = env.bool("DEBUG", default=False)

# A real key comes from secrets.env (written by `sudocode-fed init`) or the environment. Commands that sign
# nothing (the CLI's reads and writes) run with a throwaway key; `serve` refuses to start with one.
SECRET_KEY = get_secret(_secrets_path, "DJANGO_SECRET_KEY") or ""
SECRET_KEY_IS_EPHEMERAL = not SECRET_KEY
if not SECRET_KEY:
    SECRET_KEY = "ephemeral-" + _random.token_urlsafe(40)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Cookies are per host, not per port: nodes on one host (the demo's :8000 and :8001) would share `sessionid`
# and `csrftoken` and log each other out. Each node's cookies carry a short hash of its repository's path
# (stable across restarts and ports); SESSION_COOKIE_NAME / CSRF_COOKIE_NAME in the environment override them.
_COOKIE_SUFFIX = hashlib.sha256(str(SUDOCODE_REPO or BASE_DIR).encode()).hexdigest()[:10]
SESSION_COOKIE_NAME = env.str("SESSION_COOKIE_NAME", default=f"sessionid_{_COOKIE_SUFFIX}")
CSRF_COOKIE_NAME = env.str("CSRF_COOKIE_NAME", default=f"csrftoken_{_COOKIE_SUFFIX}")

# The CLI runs a lighter profile: our apps only, no web stack and no django.contrib app (only pages and their
# logins use them), so `issue list` starts fast (issue 16). Their tables are made by the first `serve` or `staff
# add`, which run the whole profile: `runtime.ensure_schema` migrates the apps of the profile it runs in.
CLI_PROFILE = env.bool("SUDOCODE_FED_CLI", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tracker",
    "events",
    "federation",
    "remotes",
    "requests_app",
    "subscriptions",
    "audit",
    "alerts",
    "dashboard",
    "agents",
]
if CLI_PROFILE:
    INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("django.contrib.")]
else:
    INSTALLED_APPS = [
        "daphne",
        *INSTALLED_APPS,
        "rest_framework",
        "django_filters",
        "drf_spectacular",
        "drf_spectacular_sidecar",
        "channels",
        "corsheaders",
        "csp",
    ]

MIDDLEWARE = [
    "federation_site.middleware.LogContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "federation_site.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "federation_site.middleware.NodeStateMiddleware",
    "dashboard.middleware.DataProblemsMiddleware",
    "federation.middleware.BandwidthMiddleware",
]

ROOT_URLCONF = "federation_site.urls"

# --- security headers and CORS (issue 17) ---------------------------------------------------------------------
# Pages run only our own static files: no inline script, style attribute or event handler (json_script data
# blocks are data, not script). The API docs add what Swagger UI needs (federation_site/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],  # fetches and the live pages' WebSocket, to this node only
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"  # for browsers without frame-ancestors
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# CORS for the API only, and for no origin unless federation.config.json lists it (`cors.allowed_origins`, read
# on each request by federation.apps' check_request_enabled receiver, so an edit applies without a restart).
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type", "x-correlation-id", "a2a-version"]
CORS_EXPOSE_HEADERS = ["x-correlation-id", "retry-after"]
# `serve --certfile --keyfile` (TLS): browsers are told to use HTTPS only, and cookies never travel in clear.
SERVES_TLS = env.bool("SUDOCODE_FED_TLS", default=False)
if SERVES_TLS:
    SECURE_HSTS_SECONDS = 365 * 24 * 3600  # sent on HTTPS answers only (SecurityMiddleware)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

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
                "federation_site.context_processors.node",
                "dashboard.context_processors.data_problems_banner",
                "dashboard.context_processors.alerts_banner",
            ],
        },
    },
]

WSGI_APPLICATION = "federation_site.wsgi.application"
ASGI_APPLICATION = "federation_site.asgi.application"

# SQLite in the repository (gitignored) by default; DATABASE_URL switches to PostgreSQL for scale-out.
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
else:
    # No repository (manage.py makemigrations in the project itself): nothing to keep, so nothing on disk.
    _db_path = _layout.db_path if _layout else ":memory:"
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _db_path,
            # Kept open across requests (a web process answers them on one thread): opening one costs each
            # request ~2 ms of CPU (connect, WAL and synchronous pragmas). Django still closes a broken one.
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # WAL lets readers (the web process) run while a writer (the CLI) commits; IMMEDIATE takes the
                # write lock when a transaction starts, so two writers queue instead of failing mid-way.
                "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Static files are served from the finders (below), so a node needs no collectstatic step; STATIC_ROOT is only
# for a deployment that wants one.
STATIC_ROOT = env.str("STATIC_ROOT", default=None)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "dashboard:home"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "sudocode federation node",
    "DESCRIPTION": "The REST API of one sudocode federation node. See PROTOCOL.md for the messages.",
    "VERSION": "0.1.0",
    # 3.1: the A2A message schemas are JSON Schema (pydantic's), which 3.1 embeds as it is.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, so /api/docs/ works on a machine without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The channel layer only wakes WebSocket consumers (they read the outbox themselves): in memory, inside one web
# process, by default; Redis when CHANNEL_LAYER_URL says so (the scale-out profile: several web processes, and
# wake-ups from the Celery worker). Nodes sharing one Redis database need distinct CHANNEL_LAYER_PREFIXes.
CHANNEL_LAYER_URL = env.str("CHANNEL_LAYER_URL", default="")
if CHANNEL_LAYER_URL and not CHANNEL_LAYER_URL.startswith(("redis://", "rediss://", "unix://")):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"CHANNEL_LAYER_URL={CHANNEL_LAYER_URL!r}: expected a Redis URL like redis://127.0.0.1:6379/1 (or leave it "
        "unset for the in-memory layer of a single web process)"
    )
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [CHANNEL_LAYER_URL],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="sudocode-fed"),
            },
        }
        if CHANNEL_LAYER_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}
# How often each web process looks at the outbox's head for events that woke nobody here (committed by the CLI,
# or by another process when the layer is in memory). 0 turns the look off (then only the layer wakes consumers).
WEBSOCKET_POLL_SECONDS = env.float("WEBSOCKET_POLL_SECONDS", default=0.1)

# Only for the A2A conformance kit (`serve --a2a-conformance`): A2A messages that carry no federation message
# go to the kit's executor (agents/a2a_conformance.py) instead of being answered with help. Never in production.
A2A_CONFORMANCE = env.bool("FEDERATION_A2A_CONFORMANCE", default=False)

# Celery: the filesystem transport by default (no server; kombu needs its folders made, see
# federation_site.workers), Redis when CELERY_BROKER_URL says so. Results are not kept: tasks record their
# outcome in rows.
_celery_dir = (_layout.sudocode_dir if _layout else BASE_DIR / "var") / "celery"
# ("filesystem://localhost/": kombu warns on every connection when the URL names no host.)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "refresh-node-state": {"task": "tracker.tasks.refresh_node_state", "schedule": 2.0},
    "commit-pending": {"task": "tracker.tasks.commit_pending", "schedule": 10.0},
    "deliver-due": {"task": "requests_app.tasks.deliver_due", "schedule": 2.0},
    "poll-outgoing-requests": {"task": "requests_app.tasks.poll_outgoing", "schedule": 5.0},
    "resume-approved-requests": {"task": "requests_app.tasks.resume_approved", "schedule": 10.0},
    # Also how events committed by the CLI (which wakes nobody) go out: keep it short, it is one cheap query.
    "deliver-webhooks": {"task": "subscriptions.tasks.deliver_due", "schedule": 0.5},
    # The watching side: auto-subscriptions follow the references (also queued when they change), pushes
    # retry while a remote is down, and blocked issues follow their remote blockers (a repair loop).
    "sync-outgoing-subscriptions": {"task": "subscriptions.tasks.sync_outgoing", "schedule": 60.0},
    "push-outgoing-subscriptions": {"task": "subscriptions.tasks.push_outgoing_due", "schedule": 5.0},
    "reconcile-blocked-issues": {"task": "subscriptions.tasks.reconcile_blocked", "schedule": 30.0},
    # Retention (config `retention`): old outbox events, received events, audit rows (archived first).
    "prune-retention": {"task": "subscriptions.tasks.prune_retention", "schedule": 3600.0},
    # The seed's alerts (fire, resolve, notify), and the upkeep of the metrics page's rollups.
    "evaluate-alerts": {"task": "alerts.tasks.evaluate", "schedule": 30.0},
    "deliver-alerts": {"task": "alerts.tasks.deliver_due", "schedule": 5.0},
    "prune-audit-rollups": {"task": "audit.tasks.prune_rollups", "schedule": 600.0},
}

# Under `serve` (SUDOCODE_LOG_FORMAT=json|text): structured lines through structlog (federation_site/logs.py), INFO
# and up by default. CLI commands: plain warnings on stderr, and structlog is never imported.
_LOG_FORMAT = _logs.log_format()
if _LOG_FORMAT:
    LOGGING = _logs.logging_config(_LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
else:
    LOGGING = _logs.plain_logging_config(env.str("LOG_LEVEL", default="WARNING"))
