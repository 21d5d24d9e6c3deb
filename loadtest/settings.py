"""Load-test servers: the real settings (read from the environment), plus the baseline route.

Everything else — DEBUG, HTTPS, throttles, lock waits, fault injection — comes from the same
environment variables shop.settings reads, so a load-test server is configured like production.
"""

from shop.settings import *  # noqa: F403

ROOT_URLCONF = "loadtest.urls"

MIDDLEWARE = [*MIDDLEWARE, "loadtest.lock_batch.LockBatchOverride"]  # noqa: F405
