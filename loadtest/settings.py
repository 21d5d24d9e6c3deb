"""Load-test servers: the real settings (read from the environment), plus the baseline route.

Everything else — DEBUG, HTTPS, throttles, lock waits, fault injection — comes from the same
environment variables shop.settings reads, so a load-test server is configured like production.
``CELERY_TASK_DEFAULT_QUEUE`` gives a run a Celery queue of its own on a shared broker (RabbitMQ).
"""

import os

from shop.settings import *  # noqa: F403

ROOT_URLCONF = "loadtest.urls"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or "celery"
