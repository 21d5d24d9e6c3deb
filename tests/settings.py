"""Settings for the test suite: the real settings, pointed at the test Redis.

pytest-django imports this before any conftest runs, so the environment is set here: the app
under test uses ``TEST_REDIS_URL`` (never a developer's own ``REDIS_URL``) for its data, cache
and Celery broker.
"""

import os

TEST_REDIS_URL = os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_CELERY_BROKER_URL", TEST_REDIS_URL)
os.environ["CELERY_RESULT_BACKEND"] = TEST_REDIS_URL
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("HTTPS", "0")

from shop.settings import *  # noqa: E402,F403

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise warns when missing)
# No collectstatic before tests: plain storage, so templates can name any static file.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
