"""A process that mints snowflake ids non-stop for a while, across whatever Redis does meanwhile.

Run as ``python -m tests.idgen._wipe_minter URL PREFIX TTL_MS LOCK_DIR SECONDS OUT``
(``LOCK_DIR`` "-" turns the per-host locks off: the unsafe variant). Leases once a line arrives
on stdin (so the parent can time it to the moment after a wipe), prints its worker id once it
has minted, writes every id to ``OUT`` (int64s) and a JSON summary to ``OUT.json``.
An id that could not be minted is counted, not fatal: the summary says how many failed.
"""

import json
import sys
import time
from array import array

import redis

from idgen import Snowflake


def main() -> None:
    url, prefix, ttl_ms, lock_dir, seconds, out = sys.argv[1:7]
    sys.stdin.readline()
    gen = Snowflake(
        redis=redis.Redis.from_url(url),
        key_prefix=prefix,
        lease_ttl_ms=int(ttl_ms),
        lock_dir=None if lock_dir == "-" else lock_dir,
    )
    ids = array("q", gen.next_ids(20))
    print(gen.worker_id, flush=True)
    failures: dict[str, int] = {}
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            ids.extend(gen.next_ids(20))
        except Exception as exc:  # counted: a generator that fails for good shows up here
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        time.sleep(0.0005)
    lease = gen._lease
    summary = {"failures": failures, "reclaims": lease.reclaims, "losses": lease.losses}
    with open(out, "wb") as f:
        ids.tofile(f)
    with open(out + ".json", "w") as f:
        json.dump(summary, f)
    gen.close()


if __name__ == "__main__":
    main()
