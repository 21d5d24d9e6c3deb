"""Load-test servers: the real settings (read from the environment), plus the baseline route.

Everything else — DEBUG, HTTPS, throttles, lock waits, fault injection — comes from the same
environment variables shop.settings reads, so a load-test server is configured like production.
"""

from shop.settings import *  # noqa: F403

ROOT_URLCONF = "loadtest.urls"

# First, so it also covers the order endpoint's fast lane, which answers below it.
MIDDLEWARE = ["loadtest.lock_batch.LockBatchOverride", *MIDDLEWARE]  # noqa: F405
