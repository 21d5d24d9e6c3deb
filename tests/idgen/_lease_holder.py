"""A process that leases a worker id, prints it and its first id, and holds on until stdin closes.

Run as ``python -m tests.idgen._lease_holder REDIS_URL TTL_MS KEY_PREFIX``. Exits cleanly
(releasing the lease through ``atexit``) when stdin reaches EOF; tests SIGKILL it to simulate a
crash.
"""

import sys

import redis

from idgen import Snowflake


def main() -> None:
    url, ttl_ms, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    gen = Snowflake(redis=redis.Redis.from_url(url), lease_ttl_ms=ttl_ms, key_prefix=prefix)
    first = gen.next_id()
    print(gen.worker_id, first, flush=True)
    sys.stdin.read()  # hold the lease until the parent closes our stdin (or kills us)
    gen.next_id()  # still valid after a long hold: the heartbeat kept the lease


if __name__ == "__main__":
    main()
